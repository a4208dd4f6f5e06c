"""The server's screen before aggregation, on real Flower messages (built in this process)."""
import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Error, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping, FedAdam, FedAvg
from safetensors import safe_open

from edgetune.fleet.config import run_settings
from edgetune.fleet.server import GLOBAL_FILE, Screened, make_strategy, wire_bytes, write_global

EXPECTED = {"param.a": ((2, 3), "float32"), "param.b": ((4,), "float32")}
ART = "a" * 64


def arrays(value: float, **change) -> dict:
    out = {"param.a": np.full((2, 3), value, np.float32), "param.b": np.full(4, value, np.float32)}
    out.update(change)
    return out


def reply(node: int, tensors: dict, n=10, artifact=ART) -> Message:
    sent = Message(RecordDict({"config": ConfigRecord({})}), dst_node_id=node, message_type="train")
    return Message(RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in tensors.items()}),
                               "metrics": MetricRecord({"num-examples": n}),
                               "config": ConfigRecord({"artifact-id": artifact})}), reply_to=sent)


def test_bad_replies_refused_the_rest_averaged(task_identity):
    s = Screened(FedAvg(), EXPECTED, ART)
    s.begin_round(1, ArrayRecord({k: Array(v) for k, v in arrays(0.0).items()}), 6)
    sent = Message(RecordDict({}), dst_node_id=6, message_type="train")
    replies = [reply(1, arrays(1.0), n=10), reply(2, arrays(4.0), n=30),
               reply(3, arrays(1.0, **{"param.b": np.array([1, np.nan, 1, 1], np.float32)})),
               reply(4, arrays(1.0, **{"param.a": np.ones((1, 3), np.float32)})),
               reply(5, arrays(1.0), artifact="b" * 64),
               Message(Error(code=0, reason="ClientApp raised ConfigError"), reply_to=sent)]
    agg, _ = s.aggregate_train(1, replies)
    got = {k: a.numpy() for k, a in agg.items()}
    np.testing.assert_allclose(got["param.a"], np.full((2, 3), (10 * 1 + 30 * 4) / 40), rtol=1e-6)
    r = s.rounds[0]
    assert (r["sampled"], r["accepted"]) == (6, 2)
    assert {x["node"]: x["reason"] for x in r["refused"]} == {
        3: "param.b holds 1 non-finite values", 4: "param.a is float32[1, 3], expected float32[2, 3]",
        5: f"artifact_id {'b' * 24!r} is not this run's {'a' * 24!r} (another artifact)"}
    assert r["failed"] == [{"node": 6, "reason": "ClientApp raised ConfigError"}]
    assert r["bytes_down_per_client"] == wire_bytes(ArrayRecord({k: Array(v) for k, v in arrays(0.0).items()}))
    assert 40 < r["bytes_up_per_client"] - 40 < 400  # 40 bytes of float32 data, each .npy with its header


def test_a_payload_unlike_its_declaration_is_refused(task_identity):
    s = Screened(FedAvg(), EXPECTED, ART)
    s.begin_round(1, ArrayRecord({k: Array(v) for k, v in arrays(0.0).items()}), 2)
    short = reply(1, arrays(1.0))
    a = short.content["arrays"]["param.b"]
    short.content["arrays"]["param.b"] = Array(dtype=a.dtype, shape=a.shape, stype=a.stype, data=a.data[:-8])
    other = reply(2, arrays(1.0))
    b = Array(np.zeros(5, np.float32))  # declared as the expected [4], holds [5]
    other.content["arrays"]["param.b"] = Array(dtype=b.dtype, shape=(4,), stype=b.stype, data=b.data)
    assert s.aggregate_train(1, [short, other]) == (None, None)
    reasons = [x["reason"] for x in s.rounds[0]["refused"]]
    assert reasons[0].startswith("tensors do not decode (ValueError") and "other shapes" in reasons[1], reasons


def test_no_acceptable_reply_leaves_the_state(task_identity):
    s = Screened(FedAvg(), EXPECTED, ART)
    s.begin_round(1, ArrayRecord({k: Array(v) for k, v in arrays(0.0).items()}), 1)
    assert s.aggregate_train(1, [reply(1, arrays(np.inf))]) == (None, None)
    assert s.rounds[0]["accepted"] == 0


def test_strategies_from_settings():
    assert type(make_strategy(run_settings({}))) is FedAvg
    assert type(make_strategy(run_settings({"strategy": "fedadam", "server-lr": 0.05}))) is FedAdam
    dp = make_strategy(run_settings({"strategy": "dp-fixed", "dp-noise": 0.5, "dp-clip": 2.0, "min-clients": 3}))
    assert type(dp) is DifferentialPrivacyServerSideFixedClipping
    assert (dp.noise_multiplier, dp.clipping_norm, dp.num_sampled_clients) == (0.5, 2.0, 3)


def test_global_file_carries_its_artifact(tmp_path):
    write_global(tmp_path, arrays(2.0), ART, [{"round": 1}, {"round": 2}])
    with safe_open(str(tmp_path / GLOBAL_FILE), "numpy") as f:
        assert f.metadata() == {"artifact_id": ART, "round": "2"}
        np.testing.assert_array_equal(f.get_tensor("param.b"), np.full(4, 2.0, np.float32))
