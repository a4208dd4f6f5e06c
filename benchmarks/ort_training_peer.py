"""The ONNX Runtime training peer: onnxruntime-training's on-device API (generate_artifacts,
then Module/Optimizer) on the same model, trainable set, batch and optimizer as a row of
step_latency.py.

onnxruntime-training ships its own `onnxruntime` module, so it cannot sit beside the
onnxruntime that edgetune pins; its last release (1.19.2) reads ONNX IR <= 10. It runs in
its own virtual environment (`VENV`, built once, ~1 GB; the wheel is ~300 MB), and this
file is also that environment's entry point:

    python ort_training_peer.py generate FORWARD.onnx TRAINABLE.json OUT_DIR
    python ort_training_peer.py train OUT_DIR BATCH.npz --threads N --steps S --max-seconds T --lr LR

Both print one ``RESULT {json}`` line. A failure is reported with the stage it happened in
(venv, export, generate, train), never hidden: `measure` returns {"error": "<stage>: ..."}.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import common  # standard library only: importable in the peer environment too

HERE = Path(__file__).resolve()
VERSION = "1.19.2"
REQUIREMENTS = (f"onnxruntime-training=={VERSION}", "onnx==1.16.2", "numpy<2")  # onnx 1.16 writes IR 10
VENV = HERE.parent / ".work" / f"ort-training-{VERSION}"
OPSET = 17
# ONNX Runtime's gradient builders read these ops' optional outputs (LayerNormalization's mean and
# inverse deviation, Dropout's mask), which the TorchScript exporter leaves out
GRADIENT_OUTPUTS = {"LayerNormalization": 3, "Dropout": 2}


class StageError(RuntimeError):
    """A failure in one stage of the peer; the message starts with the stage."""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:400] if lines else "no output"


# ---------------------------------------------------------------- host side (edgetune's environment)
def venv_python(venv: Path = VENV) -> Path:
    """The peer environment's python, building it first if needed (progress on stdout). A build
    that did not finish is removed and rebuilt: only a finished one has its ``ready`` marker."""
    python, ready = venv / "bin" / "python", venv / "ready"
    if ready.exists() and python.exists():
        return python
    import shutil

    shutil.rmtree(venv, ignore_errors=True)
    print(f"  building the onnxruntime-training {VERSION} environment in {venv} (once; ~300 MB download)", flush=True)
    for cmd in ([sys.executable, "-m", "venv", str(venv)],
                [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *REQUIREMENTS]):
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode:
            raise StageError(f"venv: {' '.join(cmd[:4])} ... failed: {_last_line(p.stderr or p.stdout)}")
    ready.write_text(" ".join(REQUIREMENTS) + "\n")
    return python


def export_forward(model, inputs: dict, path: Path) -> list[str]:
    """``model(*inputs.values()) -> logits`` as ONNX (opset 17, IR <= 10) whose initializers keep
    the parameters' names; -> the names of the trainable ones (requires_grad).

    The TorchScript exporter, as onnxruntime-training's documentation uses it: without constant
    folding (a folded weight loses its name) and in training mode (in eval mode equal
    initializers, such as LoRA's zero B factors, are merged into one). Dropout is set to 0 so the
    graph computes what the eager row computes."""
    import onnx
    import torch

    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    model.train(True)
    names = list(inputs)
    try:
        torch.onnx.export(model, tuple(torch.from_numpy(v) for v in inputs.values()), str(path), input_names=names,
                          output_names=["logits"], opset_version=OPSET, dynamo=False, do_constant_folding=False,
                          training=torch.onnx.TrainingMode.PRESERVE)
    except Exception as e:  # the exporter's own failure, named
        raise StageError(f"export: {type(e).__name__}: {str(e)[:300]}") from e
    proto = onnx.load(str(path))
    for node in proto.graph.node:
        while len(node.output) < GRADIENT_OUTPUTS.get(node.op_type, 0):
            node.output.append(f"{node.output[0]}_gradient_output{len(node.output)}")
    onnx.save(proto, str(path))
    inits = {i.name for i in proto.graph.initializer}
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    missing = [n for n in trainable if n not in inits]
    if missing:
        raise StageError(f"export: trainable parameters {missing[:3]} are not named initializers of the ONNX graph")
    return trainable


def _run_peer(python: Path, stage: str, args: list[str]) -> dict:
    p = subprocess.run([str(python), str(HERE), stage, *args], capture_output=True, text=True)
    line = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")]
    if p.returncode or not line:
        raise StageError(f"{stage}: {_last_line(p.stderr or p.stdout)}")
    return json.loads(line[0][7:])


def measure(model, batch: dict, work: Path, threads: int, steps: int, max_seconds: float, lr: float) -> dict:
    """Build the environment, export ``model``, generate ONNX Runtime's training artifacts (AdamW,
    cross-entropy on ``batch["labels"]``) and time its loop in a fresh process ->
    {"ms_per_step", "steps", "peak_rss_mb", "first_loss", "last_loss", "generate_s"} or {"error"}."""
    import numpy as np

    work.mkdir(parents=True, exist_ok=True)
    try:
        python = venv_python()
        forward = work / "ort_forward.onnx"
        trainable = export_forward(model, {k: v for k, v in batch.items() if k != "labels"}, forward)
        (work / "trainable.json").write_text(json.dumps(trainable))
        gen = _run_peer(python, "generate", [str(forward), str(work / "trainable.json"), str(work / "ort_artifacts")])
        np.savez(work / "batch.npz", **batch)
        res = _run_peer(python, "train", [str(work / "ort_artifacts"), str(work / "batch.npz"), "--threads", str(threads),
                                          "--steps", str(steps), "--max-seconds", str(max_seconds), "--lr", str(lr)])
        return {**res, "generate_s": gen["seconds"]}
    except StageError as e:
        return {"error": str(e)}


# ---------------------------------------------------------------- peer side (the onnxruntime-training environment)
def _training_package():
    """onnxruntime.training without its package __init__, which imports torch for ORTModule; the
    on-device API and the artifact generator need only onnx and numpy (a device has no torch)."""
    import onnxruntime

    pkg = types.ModuleType("onnxruntime.training")
    pkg.__path__ = [str(Path(onnxruntime.__file__).parent / "training")]
    sys.modules["onnxruntime.training"] = pkg


def peer_generate(forward: Path, trainable_json: Path, out: Path) -> dict:
    import onnx

    _training_package()
    from onnxruntime.training import artifacts

    model = onnx.load(str(forward))
    trainable = json.loads(trainable_json.read_text())
    frozen = [i.name for i in model.graph.initializer if i.name not in set(trainable)]
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    artifacts.generate_artifacts(model, requires_grad=trainable, frozen_params=frozen,
                                 loss=artifacts.LossType.CrossEntropyLoss, optimizer=artifacts.OptimType.AdamW,
                                 artifact_directory=str(out))
    return {"seconds": time.perf_counter() - t0}


def peer_train(art: Path, batch_npz: Path, threads: int, steps: int, max_seconds: float, lr: float) -> dict:
    import numpy as np
    import onnxruntime as ort

    _training_package()
    from onnxruntime.training.api import CheckpointState, Module, Optimizer

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    module = Module(str(art / "training_model.onnx"), CheckpointState.load_checkpoint(str(art / "checkpoint")),
                    str(art / "eval_model.onnx"), device="cpu", session_options=opts)
    opt = Optimizer(str(art / "optimizer_model.onnx"), module)
    opt.set_learning_rate(lr)
    with np.load(batch_npz) as z:
        batch = {k: z[k] for k in z.files}
    labels = batch.pop("labels")
    module.train()
    losses = []

    def step() -> float:
        losses.append(float(module(*batch.values(), labels)))
        opt.step()
        module.lazy_reset_grad()
        return losses[-1]

    first_loss, timing = common.timed_steps(step, steps, max_seconds)
    # VmHWM read here: device_harness.runner.rss_mb is not importable in this environment
    peak = int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]) / 1024
    return {**timing, "peak_rss_mb": peak, "first_loss": first_loss, "last_loss": losses[-1],
            "onnxruntime_training": VERSION}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="stage", required=True)
    g = sub.add_parser("generate")
    g.add_argument("forward", type=Path)
    g.add_argument("trainable", type=Path)
    g.add_argument("out", type=Path)
    t = sub.add_parser("train")
    t.add_argument("art", type=Path)
    t.add_argument("batch", type=Path)
    t.add_argument("--threads", type=int, default=os.cpu_count())
    t.add_argument("--steps", type=int, default=20)
    t.add_argument("--max-seconds", type=float, default=60.0)
    t.add_argument("--lr", type=float, default=1e-4)
    a = ap.parse_args()
    res = (peer_generate(a.forward, a.trainable, a.out) if a.stage == "generate" else
           peer_train(a.art, a.batch, a.threads, a.steps, a.max_seconds, a.lr))
    print("RESULT " + json.dumps(res))


if __name__ == "__main__":
    main()
