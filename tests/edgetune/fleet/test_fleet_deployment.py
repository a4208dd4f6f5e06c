"""The fleet on Flower's deployment engine: a SuperLink and SuperNodes as real processes on
127.0.0.1, three rounds of the tiny LoRA-SB artifact. The server's result is checked against
the same rounds computed independently here with the device runner."""
import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from device_harness.runner import Trainer
from edgetune.fleet.local import LocalFleet
from edgetune.fleet.server import GLOBAL_FILE, ROUNDS_FILE

HELPER = Path(__file__).resolve().parents[2] / "helpers" / "fleet_faults.py"
ROUNDS, STEPS, PERSONAL = 3, 3, "encoder.word_embeddings.*"


@pytest.fixture(scope="module")
def sb_artifact(tmp_path_factory, demo_data):
    """Tiny classifier with LoRA-SB r=4 (+ embedding rows + head), ONNX, and 3 users' data files."""
    from edgetune.app.classifier import ClassifierPlan, export_classifier

    d = tmp_path_factory.mktemp("fleet")
    plan = ClassifierPlan(model="tiny", adapter={"method": "lora_sb", "r": 4}, embedding_rows=64, batch_size=4,
                          seq_len=16, optimizer={"name": "adamw", "lr": 1e-2, "weight_decay": 0.0})
    manifest, compiled = export_classifier(plan, demo_data[0], d / "artifact", formats=("onnx",))
    with open(demo_data[0], newline="") as f:
        header, *rows = list(csv.reader(f))
    users = []
    for i, n in enumerate((5, 7, 6)):  # unequal sizes: the average is weighted by examples
        users.append(d / f"user{i}.csv")
        with open(users[-1], "w", newline="") as f:
            csv.writer(f).writerows([header] + rows[i * 2:i * 2 + n])
    return d / "artifact", manifest, compiled, users


def reference_rounds(artifact, users_by_round, shared, work: Path) -> dict[str, np.ndarray]:
    """The rounds computed here: each client loads its own state, takes the global shared
    tensors, trains STEPS steps; the new global is the example-weighted mean. One thread, as
    the fleet's clients: the same order of every sum."""
    tr = Trainer(artifact, "onnx", threads=1)
    global_ = {k: v.copy() for k, v in tr.state.items() if k in shared}
    for users in users_by_round:
        total, acc = 0, {k: np.zeros(v.shape, np.float64) for k, v in global_.items()}
        for name, data in users:
            tr.load_state(work / f"{name}.safetensors")
            tr.state.update({k: v.copy() for k, v in global_.items()})
            rows = tr.encode(data)
            n = rows.n
            list(tr.train(rows, STEPS, seed=0, save_every=0, schedule="constant"))
            rows.close()
            total += n
            for k in acc:
                acc[k] += n * tr.state[k].astype(np.float64)
        global_ = {k: (v / total).astype(np.float32) for k, v in acc.items()}
    return global_


@pytest.mark.slow
def test_deployment_engine_three_rounds(sb_artifact, tiny_artifact, tmp_path):
    art, manifest, compiled, users = sb_artifact
    good = [{"artifact": art, "data": u, "state": tmp_path / f"state{i}.safetensors"} for i, u in enumerate(users)]
    faulty = [{"artifact": art, "data": users[0], "state": tmp_path / f"state-{f}.safetensors", "fault": f}
              for f in ("nan", "lie", "drop")]
    foreign = [{"artifact": tiny_artifact[0], "data": users[0], "state": tmp_path / "state-foreign.safetensors"}]
    fleet = LocalFleet(tmp_path / "fleet", good + faulty + foreign, client_app="fleet_faults:app")
    shutil.copy(HELPER, fleet.app_dir)  # the FAB ships the faulty ClientApp
    out = tmp_path / "out"
    with fleet:
        run = fleet.run({"artifact": str(art), "num-rounds": ROUNDS, "local-steps": STEPS, "min-clients": 7,
                         "personal": PERSONAL, "round-timeout": 300.0, "client-threads": 1, "out": str(out)},
                        timeout=900)
    assert run.returncode == 0, run.stdout[-3000:]
    assert fleet.alive() == [], "processes left behind"

    rounds = __import__("json").loads((out / ROUNDS_FILE).read_text())
    assert [r["sampled"] for r in rounds] == [7, 7, 7]
    # good clients + the one that drops in round 3; the foreign artifact's client refuses itself
    assert [r["accepted"] for r in rounds] == [4, 4, 3]
    for r in rounds:
        reasons = sorted(x["reason"] for x in r["refused"])
        assert len(reasons) == 2 and "another artifact" in reasons[0] and "non-finite" in reasons[1], reasons
        assert any("deploy the run's artifact" in x["reason"] for x in r["failed"])
    assert any("stopped responding" in x["reason"] or "node_unavail" in x["reason"] for x in rounds[2]["failed"])

    shared = [t.name for t in manifest.state_specs() if t.name.startswith("param.") and "word_embeddings" not in t.name]
    got = load_file(out / GLOBAL_FILE)
    assert sorted(got) == sorted(shared)  # personal rows never reach the server
    assert rounds[0]["bytes_down_per_client"] > sum(got[k].nbytes for k in got)  # data + .npy headers
    assert rounds[0]["bytes_down_per_client"] < sum(got[k].nbytes for k in got) + 200 * len(got)

    drop = ("drop", users[0])
    by_round = [[(f"u{i}", u) for i, u in enumerate(users)] + ([drop] if r < ROUNDS - 1 else []) for r in range(ROUNDS)]
    want = reference_rounds(art, by_round, set(shared), tmp_path / "reference")
    for k in shared:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6, err_msg=k)

    # LoRA-SB: the averaged cores give exactly the average of the clients' weight updates B R A
    # (the clients' own R after round 3 are in their state files)
    core = next(m for _, m in compiled.prepared.model.named_modules() if hasattr(m, "core_R"))
    name = next(k for k in shared if k.endswith("core_R"))
    client_R = [load_file(tmp_path / f"state{i}.safetensors")[name].astype(np.float64) for i in range(3)]
    n = [5, 7, 6]
    mean_R = sum(w * r for w, r in zip(n, client_R)) / sum(n)
    B, A = core.core_B.numpy().astype(np.float64), core.core_A.numpy().astype(np.float64)
    mean_update = sum(w * (B @ r @ A) for w, r in zip(n, client_R)) / sum(n)
    np.testing.assert_allclose(B @ mean_R @ A, mean_update, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got[name], mean_R, rtol=1e-5, atol=1e-6)
    # personal rows stayed on each client and differ between them
    rows = [load_file(tmp_path / f"state{i}.safetensors")["param.encoder.word_embeddings.rows"] for i in range(3)]
    assert not np.allclose(rows[0], rows[1])


def test_a_run_without_clients_times_out_and_leaves_nothing(sb_artifact, tmp_path):
    art = sb_artifact[0]
    with LocalFleet(tmp_path / "fleet") as fleet:  # a SuperLink, no SuperNode: round 1 waits for clients
        with pytest.raises(TimeoutError, match="did not finish within 20 s"):
            fleet.run({"artifact": str(art), "min-clients": 1}, timeout=20)
    assert fleet.alive() == []
