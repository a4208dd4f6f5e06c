"""The fleet's ServerApp: a Flower strategy over the shared state tensors.

Every reply passes `edgetune.fleet.shared` checks before the strategy sees it: another
artifact's id, a missing, extra or reshaped tensor, a bad weight or a NaN/Inf value is refused
with a logged reason, and the round goes on with the others. A client that has not answered
within ``round-timeout`` seconds (or whose node went offline) is left out of that round.
Each round's record (clients sampled, accepted and refused, tensor bytes each way, seconds)
goes to ``out/rounds.json``; the final shared tensors to ``out/global.safetensors``.
"""
from __future__ import annotations

import json
import time
from logging import INFO, WARNING
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping, FedAdam, FedAvg, Strategy
from flwr.supercore import log

from edgetune.contract import load_manifest
from edgetune.contract.state import resume_or_initial
from edgetune.files import write_atomic
from edgetune.fleet.config import RunSettings, run_settings
from edgetune.fleet.shared import expected_specs, nonfinite, reply_problem, shared_names

GLOBAL_FILE, ROUNDS_FILE = "global.safetensors", "rounds.json"

app = ServerApp()


def _numpy(record: ArrayRecord) -> dict[str, np.ndarray]:
    return {k: a.numpy() for k, a in record.items()}


def wire_bytes(record: ArrayRecord) -> int:
    """Bytes of a record's serialized tensors (each .npy encoded: data and a small header);
    message framing and names are not counted."""
    return int(sum(len(a.data) for a in record.values()))


class Screened(Strategy):
    """Wraps a strategy: refuses bad replies before it aggregates, and keeps a ledger per round."""

    def __init__(self, inner: Strategy, expected: dict, artifact_id: str):
        self.inner, self.expected, self.artifact_id = inner, expected, artifact_id
        self.rounds: list[dict] = []

    def summary(self) -> None:
        self.inner.summary()

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid):
        messages = list(self.inner.configure_train(server_round, arrays, config, grid))
        self.begin_round(server_round, arrays, len(messages))
        return messages

    def begin_round(self, server_round: int, arrays: ArrayRecord, sampled: int) -> None:
        """Open the ledger entry of a round whose ``arrays`` went to ``sampled`` clients."""
        self.rounds.append({"round": server_round, "sampled": sampled, "accepted": 0, "refused": [], "failed": [],
                            "bytes_down_per_client": wire_bytes(arrays), "bytes_up_per_client": 0, "started": time.time()})

    def aggregate_train(self, server_round: int, replies):
        rec = self.rounds[-1]
        ok, up = [], []
        for msg in replies:
            node = int(msg.metadata.src_node_id)
            if msg.has_error():
                rec["failed"].append({"node": node, "reason": str(msg.error.reason)[:300]})
                log(WARNING, "round %d: client %d failed: %s", server_round, node, msg.error.reason)
                continue
            why = self._problem(msg)
            if why is None:
                up.append(wire_bytes(msg.content["arrays"]))
                why = self._values_problem(msg.content["arrays"])
            if why is not None:
                rec["refused"].append({"node": node, "reason": why})
                log(WARNING, "round %d: refused client %d: %s", server_round, node, why)
                continue
            ok.append(msg)
        rec["accepted"] = len(ok)
        rec["bytes_up_per_client"] = int(np.mean(up)) if up else 0
        rec["seconds"] = round(time.time() - rec.pop("started"), 3)
        if not ok:
            log(WARNING, "round %d: no acceptable reply; the shared state is unchanged", server_round)
            return None, None
        return self.inner.aggregate_train(server_round, ok)

    def _problem(self, msg: Message) -> str | None:
        c = msg.content
        if len(c.array_records) != 1 or "arrays" not in c.array_records or "config" not in c.config_records \
                or "metrics" not in c.metric_records:
            return "the reply lacks its arrays, config or metrics record"
        declared = {k: (tuple(a.shape), a.dtype) for k, a in c["arrays"].items()}
        return reply_problem(declared, self.expected, c["config"].get("artifact-id"), self.artifact_id,
                             c["metrics"].get("num-examples"))

    def _values_problem(self, record: ArrayRecord) -> str | None:
        """The payload itself: it must decode to the declared shapes and dtypes, all finite."""
        try:
            values = _numpy(record)
        except Exception as e:  # a payload that is not the .npy it claims: any decoder error refuses it
            return f"tensors do not decode ({type(e).__name__}: {str(e)[:120]})"
        decoded = {k: (v.shape, str(v.dtype)) for k, v in values.items()}
        if decoded != self.expected:
            return f"tensors decode to other shapes or dtypes than declared: {decoded}"[:300]
        return nonfinite(values)

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid):
        return self.inner.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(self, server_round: int, replies):
        good = [m for m in replies if not m.has_error() and m.content.config_records.get("config", {}).get(
            "artifact-id") == self.artifact_id]
        return self.inner.aggregate_evaluate(server_round, good) if good else None


def make_strategy(s: RunSettings) -> Strategy:
    """FedAvg, FedAdam or FedAvg under server-side fixed-clipping differential privacy (its noise
    is scaled for ``min-clients`` sampled clients: with more, each gets more noise than needed)."""
    common = dict(fraction_train=s.fraction_train, fraction_evaluate=s.fraction_evaluate,
                  min_train_nodes=s.min_clients, min_evaluate_nodes=min(s.min_clients, 1) if s.fraction_evaluate else 0,
                  min_available_nodes=s.min_clients)
    if s.strategy == "fedadam":
        return FedAdam(**common, eta=s.server_lr)
    if s.strategy == "dp-fixed":
        return DifferentialPrivacyServerSideFixedClipping(FedAvg(**common), noise_multiplier=s.dp_noise,
                                                          clipping_norm=s.dp_clip, num_sampled_clients=s.min_clients)
    return FedAvg(**common)


def write_global(out: Path, tensors: dict[str, np.ndarray], artifact_id: str, rounds: list[dict]) -> None:
    """The fleet's result: the shared tensors (safetensors, artifact_id and round in its metadata)
    and the rounds' ledger, each replaced atomically."""
    from safetensors.numpy import save

    out.mkdir(parents=True, exist_ok=True)
    meta = {"artifact_id": artifact_id, "round": str(len(rounds))}
    write_atomic(out / GLOBAL_FILE, save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata=meta))
    write_atomic(out / ROUNDS_FILE, (json.dumps(rounds, indent=1) + "\n").encode())


@app.main()
def main(grid: Grid, context: Context) -> None:
    s = run_settings(dict(context.run_config))
    manifest = load_manifest(s.artifact, s.runtime)
    names = shared_names(manifest, s.personal_patterns)
    initial, _ = resume_or_initial(s.artifact, manifest, None)
    arrays = ArrayRecord({n: Array(np.ascontiguousarray(initial[n])) for n in names})
    strategy = Screened(make_strategy(s), expected_specs(manifest, names), manifest.artifact_id)
    round_config = ConfigRecord({"artifact-id": manifest.artifact_id, "local-steps": s.local_steps, "lr": s.lr,
                                 "schedule": s.schedule, "seed": s.seed})
    result = strategy.start(grid, arrays, num_rounds=s.num_rounds, timeout=s.round_timeout,
                            train_config=round_config, evaluate_config=ConfigRecord({"artifact-id": manifest.artifact_id}))
    final = _numpy(result.arrays) if result.arrays is not None else _numpy(arrays)
    if s.out:
        write_global(Path(s.out), final, manifest.artifact_id, strategy.rounds)
    for r in strategy.rounds:
        log(INFO, "round %d: %d sampled, %d accepted, %d refused, %d failed, %d B down + %d B up per client, %.1f s",
                 r["round"], r["sampled"], r["accepted"], len(r["refused"]), len(r["failed"]),
                 r["bytes_down_per_client"], r["bytes_up_per_client"], r.get("seconds", 0))
