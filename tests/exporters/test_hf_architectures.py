"""Every supported Hugging Face architecture, as a tiny random checkpoint directory, through
the user's path: prepare, export, and 3 steps of the exported program against the eager step
(each side fed its own outputs). ONNX for all; ExecuTorch, a minute or more per export, for the
architectures that carry the most switches (benchmarks/architectures.py runs it for all)."""
import pytest

from helpers.hf_tiny import DECODER_CONFIGS, ENCODER_CONFIGS, save_tiny, write_word_data
from helpers.parity_steps import run_parity

EXECUTORCH_TOO = ("gemma3_text", "phi3", "roberta")


def _export(name, tmp_path, formats):
    from edgetune.app.classifier import ClassifierPlan, export_classifier
    from edgetune.app.lm import LMPlan, export_lm

    csv_path, txt_path = write_word_data(tmp_path / "data")
    d = tmp_path / name
    opt = {"name": "adamw", "lr": 1e-2, "weight_decay": 0.0}
    if name in DECODER_CONFIGS:
        save_tiny(name, d)
        plan = LMPlan(model=str(d), batch_size=2, seq_len=16, embedding_rows=8, adapter={"method": "lora", "r": 4},
                      optimizer=opt)
        return export_lm(plan, txt_path, tmp_path / "art", formats)
    save_tiny(name, d, head_labels=["c", "a", "b"])  # its own head: pooled at position 0, last layer pruned
    plan = ClassifierPlan(model=str(d), batch_size=4, seq_len=12, embedding_rows=8, adapter={"method": "lora", "r": 4},
                          optimizer=opt)
    return export_classifier(plan, csv_path, tmp_path / "art", formats)


def _arch_params():
    for name in [*DECODER_CONFIGS, *ENCODER_CONFIGS]:
        if name == "llama-3.1-rope":
            continue  # the same graph as llama but for constant tables
        marks = [pytest.mark.slow] if name in EXECUTORCH_TOO else []
        formats = ("onnx", "executorch") if name in EXECUTORCH_TOO else ("onnx",)
        yield pytest.param(name, formats, marks=marks, id=name)


@pytest.mark.parametrize("name, formats", list(_arch_params()))
def test_exported_step_matches_eager(tmp_path, name, formats):
    manifest, compiled = _export(name, tmp_path, formats)
    report = compiled.prepared.report.to_dict()
    assert {a["method"] for a in report["adapters"]} >= {"lora", "embedding_rows"}
    for runtime in formats:
        ref, state = run_parity(tmp_path / "art", manifest, compiled, runtime, steps=3)
        moved = [k for k in ref if k.startswith("param.") and k.endswith("lora_B") and float(ref[k].abs().max()) > 0]
        assert moved, "LoRA's B never moved: the parity would prove nothing"
