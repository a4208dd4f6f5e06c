"""The fleet's ClientApp: train the artifact on this client's data with the device runner.

A train message carries the global shared tensors (ArrayRecord "arrays") and the round's
settings (ConfigRecord "config": artifact-id, local-steps, lr, schedule, seed, server-round).
The client loads its own state file (personal tensors and optimizer slots persist there,
replaced atomically), puts the global tensors in, takes ``local-steps`` steps and answers with
its new shared tensors, its number of training examples (the averaging weight) and the
artifact id. An evaluate message scores the client's held-out file with the same merge.
"""
from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from device_harness.runner import Trainer, evaluate
from edgetune.errors import ConfigError
from edgetune.fleet.config import ClientSetup, client_setup, run_settings

app = ClientApp()

# one loaded program per (artifact, runtime) in this process: a simulation worker trains many clients in turn
_TRAINERS: dict[tuple[str, str], Trainer] = {}


def _trainer(setup: ClientSetup, runtime: str, threads: int) -> Trainer:
    key = (str(setup.artifact.resolve()), runtime)
    if key not in _TRAINERS:
        _TRAINERS[key] = Trainer(setup.artifact, runtime, setup.state, threads=threads or None)
    tr = _TRAINERS[key]
    tr.load_state(setup.state)
    return tr


def _merged(msg: Message, context: Context) -> tuple[Trainer, ClientSetup, ConfigRecord]:
    """This client's trainer with the message's shared tensors in its state."""
    s = run_settings(dict(context.run_config))
    setup = client_setup(dict(context.node_config), s)
    setup.state.parent.mkdir(parents=True, exist_ok=True)
    tr = _trainer(setup, s.runtime, s.client_threads)
    cfg = msg.content["config"]
    if cfg["artifact-id"] != tr.manifest.artifact_id:
        raise ConfigError(f"the server trains artifact {cfg['artifact-id']}, this client holds {tr.manifest.artifact_id} "
                          f"at {setup.artifact}; deploy the run's artifact to this client")
    for name, arr in msg.content["arrays"].items():
        if name not in tr.state:
            raise ConfigError(f"the server sent {name!r}, which is not a state tensor of {setup.artifact}")
        value = arr.numpy()
        if value.shape != tr.state[name].shape or value.dtype != tr.state[name].dtype:
            raise ConfigError(f"the server sent {name} as {value.dtype}{list(value.shape)}, the artifact holds "
                              f"{tr.state[name].dtype}{list(tr.state[name].shape)}")
        tr.state[name] = value
    return tr, setup, cfg


def _reply(msg: Message, arrays: dict[str, np.ndarray] | None, metrics: dict, artifact_id: str) -> Message:
    content = RecordDict({"metrics": MetricRecord(metrics), "config": ConfigRecord({"artifact-id": artifact_id})})
    if arrays is not None:
        content["arrays"] = ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in arrays.items()})
    return Message(content=content, reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    tr, setup, cfg = _merged(msg, context)
    rows = tr.encode(setup.data)
    try:
        n = rows.n
        lr = float(cfg["lr"]) or None
        losses = [r.loss for r in tr.train(rows, int(cfg["local-steps"]), lr=lr, seed=int(cfg["seed"]),
                                           save_every=0, schedule=str(cfg["schedule"]))]
    finally:
        rows.close()
    shared = {name: tr.state[name] for name in msg.content["arrays"].keys()}
    return _reply(msg, shared, {"num-examples": n, "train-loss": float(np.mean(losses)), "steps": len(losses)},
                  tr.manifest.artifact_id)


@app.evaluate()
def evaluate_held_out(msg: Message, context: Context) -> Message:
    tr, setup, _ = _merged(msg, context)
    if setup.eval_data is None:
        raise ConfigError(f"client {setup.name} has no held-out file (node config eval-data=, or "
                          f"<partition-id>.eval.csv in the partitions directory)")
    m = evaluate(tr.dir, setup.eval_data, tr.runtime, threads=tr.threads, state=tr.state)
    return _reply(msg, None, {"num-examples": m["examples"], "accuracy": m["accuracy"], "loss": m["loss"]},
                  tr.manifest.artifact_id)

