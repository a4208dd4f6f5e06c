"""Shared fixtures: artifacts are costly to export, so each is built once per session."""
import logging
import warnings

import pytest

warnings.filterwarnings("ignore", category=FutureWarning)
logging.getLogger("torch.onnx").setLevel(logging.ERROR)


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory):
    from edgetune.data.demo import write_demo_data

    return write_demo_data(tmp_path_factory.mktemp("data"), n_train=8, n_test=4)


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory, demo_data):
    """Tiny text classifier (LoRA + embedding rows + head, AdamW), ONNX and ExecuTorch."""
    from edgetune.recipes import ClassifierPlan, export_classifier

    out = tmp_path_factory.mktemp("tiny") / "artifact"
    plan = ClassifierPlan(model="tiny", adapter={"method": "lora", "r": 4}, embedding_rows=64, batch_size=4, seq_len=16,
                          optimizer={"name": "adamw", "lr": 1e-2, "weight_decay": 0.0})
    manifest, compiled = export_classifier(plan, demo_data[0], out)
    return out, manifest, compiled


@pytest.fixture(scope="session")
def minilm_artifact(tmp_path_factory, demo_data):
    """MiniLM-L6, LoRA r=8 on query/value + embedding rows + head, AdamW, ONNX and ExecuTorch."""
    from edgetune.recipes import ClassifierPlan, export_classifier

    out = tmp_path_factory.mktemp("minilm") / "artifact"
    plan = ClassifierPlan(model="minilm", batch_size=4, seq_len=16, embedding_rows=128,
                          optimizer={"name": "adamw", "lr": 1e-4, "weight_decay": 0.01})
    manifest, compiled = export_classifier(plan, demo_data[0], out)
    return out, manifest, compiled
