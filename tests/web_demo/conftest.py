import pytest


def _tiny_on(quant: str, tmp_path_factory, demo_data):
    from edgetune.app.classifier import ClassifierPlan, export_classifier

    out = tmp_path_factory.mktemp(f"tiny_{quant}") / "artifact"
    plan = ClassifierPlan(model="tiny", adapter={"method": "lora", "r": 4}, embedding_rows=64, batch_size=4, seq_len=16,
                          quant=quant, optimizer={"name": "adamw", "lr": 1e-2, "weight_decay": 0.0})
    manifest, compiled = export_classifier(plan, demo_data[0], out, formats=("onnx",))
    return out, manifest, compiled


@pytest.fixture(scope="session")
def tiny_int8_artifact(tmp_path_factory, demo_data):
    """The tiny classifier on a frozen int8 base (per output channel), ONNX only."""
    return _tiny_on("int8", tmp_path_factory, demo_data)


@pytest.fixture(scope="session")
def tiny_int4_artifact(tmp_path_factory, demo_data):
    """The tiny classifier on a frozen int4 base (group 32, zero points), ONNX only."""
    return _tiny_on("int4", tmp_path_factory, demo_data)
