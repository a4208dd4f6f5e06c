"""Shared fixtures: artifacts are costly to export, so each is built once per session."""
import logging
import os
import warnings

import pytest

warnings.filterwarnings("ignore", category=FutureWarning)
logging.getLogger("torch.onnx").setLevel(logging.ERROR)


@pytest.fixture(scope="session", autouse=True)
def export_cache_dir(tmp_path_factory):
    """The CLI's export cache, in the session's own directory (never the user's ~/.cache); the
    CLI's subprocesses inherit it."""
    path = tmp_path_factory.mktemp("export-cache")
    os.environ["EDGETUNE_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory):
    from edgetune.data.demo import write_demo_data

    return write_demo_data(tmp_path_factory.mktemp("data"), n_train=8, n_test=4)


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory, demo_data):
    """Tiny text classifier (LoRA + embedding rows + head, AdamW), ONNX and ExecuTorch."""
    from edgetune.app.classifier import ClassifierPlan, export_classifier

    out = tmp_path_factory.mktemp("tiny") / "artifact"
    plan = ClassifierPlan(model="tiny", adapter={"method": "lora", "r": 4}, embedding_rows=64, batch_size=4, seq_len=16,
                          optimizer={"name": "adamw", "lr": 1e-2, "weight_decay": 0.0})
    manifest, compiled = export_classifier(plan, demo_data[0], out)
    return out, manifest, compiled


@pytest.fixture(scope="session")
def minilm_artifact(tmp_path_factory, demo_data):
    """MiniLM-L6, LoRA r=8 on query/value + embedding rows + head, AdamW, ONNX and ExecuTorch."""
    from edgetune.app.classifier import ClassifierPlan, export_classifier

    out = tmp_path_factory.mktemp("minilm") / "artifact"
    plan = ClassifierPlan(model="minilm", batch_size=4, seq_len=16, embedding_rows=128,
                          optimizer={"name": "adamw", "lr": 1e-4, "weight_decay": 0.01})
    manifest, compiled = export_classifier(plan, demo_data[0], out)
    return out, manifest, compiled


@pytest.fixture(scope="session")
def shared_weights_artifact(tmp_path_factory, tiny_artifact):
    """The tiny classifier's ONNX programs, with a length-8 bucket, their frozen weights in one
    shared file (`exporters.onnx_external`, forced at this size)."""
    from exporters import onnx_external
    from exporters.artifact import export_artifact

    out = tmp_path_factory.mktemp("shared_weights") / "artifact"
    mp = pytest.MonkeyPatch()
    mp.setattr(onnx_external, "MIN_TOTAL_BYTES", 0)
    try:
        manifest = export_artifact(tiny_artifact[2], out, ("onnx",), seq_buckets=(8,))  # self-checked
    finally:
        mp.undo()
    return out, manifest, tiny_artifact[2]


@pytest.fixture(scope="session")
def zo_artifact(tmp_path_factory):
    """Forward-only LOZO-M step (LoRA + all of a tiny classifier without tokenizer), both runtimes."""
    from edgetune import FullyTrainable, LoRA, compile_step, prepare
    from edgetune.models.tiny import TinyClassifier
    from edgetune.step.optimizers import ZerothOrder
    from edgetune.step.zeroth_order import CHECK_EPS
    from exporters.artifact import export_artifact

    prepared = prepare(TinyClassifier(vocab=128, max_len=16), [LoRA(r=4), FullyTrainable()])
    compiled = compile_step(prepared, ZerothOrder(method="lozo_m", lr=1e-2, eps=CHECK_EPS, rank=2, nu=2,
                                                  weight_decay=0.01), 4, 16)
    out = tmp_path_factory.mktemp("zo") / "artifact"
    return out, export_artifact(compiled, out), compiled


@pytest.fixture(scope="session")
def tensor_artifact(tmp_path_factory):
    """A module of tensor inputs (the small image CNN, LoRA on its convolutions + its linear
    layer), ONNX only: the `tensors` task."""
    import torch

    from edgetune import FullyTrainable, LoRA, compile_step, prepare
    from edgetune.step.optimizers import AdamW
    from exporters.artifact import export_artifact
    from helpers.tensor_models import SmallCNN, image_batch

    torch.manual_seed(0)
    x, y = image_batch(4)
    prepared = prepare(SmallCNN(), [LoRA(targets=("conv1", "conv2"), r=2), FullyTrainable(("fc",))])
    compiled = compile_step(prepared, AdamW(lr=1e-2), example_inputs=x, example_targets=y)
    out = tmp_path_factory.mktemp("tensors") / "artifact"
    return out, export_artifact(compiled, out, ("onnx",)), compiled


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory):
    """A tiny Llama GGUF with SmolLM2's tokenizer and integer blocks, LoRA-SB + rows, both runtimes
    -> (dir, gguf, train.txt, held_out.txt, manifest, compiled)."""
    from edgetune.app.lm import LMPlan, export_lm
    from edgetune.data.demo import write_demo_text
    from helpers.gguf_files import smollm2_path, write_tiny_llama

    d = tmp_path_factory.mktemp("lm")
    gguf, _ = write_tiny_llama(d / "tiny.gguf", hidden=64, ffn=128, layers=2, tokenizer_from=smollm2_path())
    train, held = write_demo_text(d / "data")
    plan = LMPlan(model=str(gguf), adapter={"method": "lora_sb", "targets": ["q_proj", "v_proj"], "r": 4,
                                            "n_samples": 8, "init_lr": 1e-2},
                  embedding_rows=64, batch_size=2, seq_len=16, optimizer={"name": "adamw", "lr": 2e-2})
    manifest, compiled = export_lm(plan, train, d / "art", ("onnx", "executorch"))
    return d, gguf, train, held, manifest, compiled


@pytest.fixture(scope="session")
def kits(tmp_path_factory):
    """kits(request, fixture) -> the conformance kit of an artifact fixture, written once per session."""
    from edgetune.app.conformance import write_kit
    from helpers.kits import artifact_of

    made = {}

    def kit(request, fixture):
        if fixture not in made:
            art, _, compiled = artifact_of(request, fixture)
            made[fixture] = tmp_path_factory.mktemp("kit") / fixture
            write_kit(compiled, art, made[fixture])
        return made[fixture]

    return kit


@pytest.fixture(scope="session")
def kotlin_trainer():
    """android_demo's Kotlin trainer compiled for the JVM (`helpers.kotlin`), or a skip naming what is missing."""
    from helpers.kotlin import ROOT, build

    try:
        return build(ROOT / "android_demo" / "trainer" / "build")
    except RuntimeError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def node_trainer():
    """web_demo's TypeScript trainer bundled for Node (`helpers.web`), or a skip naming what is missing."""
    from helpers.web import build

    try:
        return build()
    except RuntimeError as e:
        pytest.skip(str(e))
