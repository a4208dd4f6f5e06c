"""The Kotlin trainer's device loop on the JVM with a real ONNX Runtime, end to end on a data file:
a run stopped and resumed ends in the uninterrupted run's state, a non-finite step is rejected
with the state file untouched, and damaged inputs get one error line and change nothing."""
import json

import numpy as np
import pytest

from edgetune.app.conformance import POISON
from edgetune.contract.names import PARAM_PREFIX
from edgetune.contract.state import load_state, resume_or_initial, save_state
from helpers.kotlin import ort_library


def train(kotlin_trainer, art, data, state, *args, check=True):
    out = kotlin_trainer.run("TrainMain", ort_library(), art, data, "--state", state, "--threads", 1, *args, check=check)
    lines = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]
    return out, lines


def test_a_resumed_run_ends_in_the_uninterrupted_runs_state(kotlin_trainer, tiny_artifact, demo_data, tmp_path):
    art, manifest, _ = tiny_artifact
    whole, parts = tmp_path / "whole.safetensors", tmp_path / "parts.safetensors"
    _, lines = train(kotlin_trainer, art, demo_data[0], whole, "--steps", 6, "--save-every", 0)
    steps = [x for x in lines if "loss" in x]
    assert [x["step"] for x in steps] == [1, 2, 3, 4, 5, 6]
    assert lines[0]["event"] == "start" and lines[-1] == {"event": "end", "step": 6, "reason": "done"}
    assert all(np.isfinite(x["loss"]) and x["ms"] > 0 and x["peak_rss_mb"] > 0 for x in steps)
    # stopped after 3 steps (the schedule told the run's full length), then resumed for 3 more
    train(kotlin_trainer, art, demo_data[0], parts, "--steps", 3, "--total-steps", 6)
    _, resumed = train(kotlin_trainer, art, demo_data[0], parts, "--steps", 3, "--total-steps", 6)
    assert resumed[0]["step"] == 3 and [x["step"] for x in resumed if "loss" in x] == [4, 5, 6]
    assert [x["loss"] for x in resumed if "loss" in x] == [x["loss"] for x in steps[3:]]
    a, na = load_state(whole, manifest)
    b, nb = load_state(parts, manifest)
    assert na == nb == 6
    initial, _ = resume_or_initial(art, manifest, None)
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=1e-5, atol=0, err_msg=name)
    assert any(not np.array_equal(a[n], initial[n]) for n in a), "training changed nothing: the comparison is empty"


def test_a_non_finite_step_is_rejected_and_the_state_file_is_unchanged(kotlin_trainer, tiny_artifact, demo_data, tmp_path):
    art, manifest, _ = tiny_artifact
    initial, _ = resume_or_initial(art, manifest, None)
    state = tmp_path / "poisoned.safetensors"
    save_state(state, {k: np.full_like(v, POISON) if k.startswith(PARAM_PREFIX) else v for k, v in initial.items()},
               manifest, 7)
    before = state.read_bytes()
    out, lines = train(kotlin_trainer, art, demo_data[0], state, "--steps", 3, check=False)
    assert out.returncode == 2
    assert out.stderr.startswith("error: step 8: loss=") and out.stderr.count("\n") == 1, out.stderr
    assert "state kept at step 7" in out.stderr
    assert lines[-1] == {"event": "end", "step": 7, "reason": "error"}
    assert state.read_bytes() == before


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(p.read_bytes()[:-4] + b"\0\0\0\1"), "does not match its checksum"),
    (lambda p: p.write_bytes(b"\x10\0\0\0\0\0\0\0{not json}      "), "is corrupt or not safetensors"),
])
def test_a_damaged_state_file_is_refused_and_kept(kotlin_trainer, tiny_artifact, demo_data, tmp_path, damage, message):
    art, manifest, _ = tiny_artifact
    state = tmp_path / "state.safetensors"
    train(kotlin_trainer, art, demo_data[0], state, "--steps", 2)
    damage(state)
    before = state.read_bytes()
    out, _ = train(kotlin_trainer, art, demo_data[0], state, "--steps", 1, check=False)
    assert out.returncode == 2 and out.stderr.startswith("error: ") and message in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1 and state.read_bytes() == before


def test_an_edited_manifest_is_refused(kotlin_trainer, tiny_artifact, demo_data, tmp_path):
    import shutil

    art, _, _ = tiny_artifact
    copy = tmp_path / "art"
    shutil.copytree(art, copy)
    m = copy / "manifest.json"
    m.write_text(m.read_text().replace('"lr": 0.01', '"lr": 0.02', 1))
    out, _ = train(kotlin_trainer, copy, demo_data[0], tmp_path / "s.safetensors", "--steps", 1, check=False)
    assert out.returncode == 2 and "was changed after export" in out.stderr, out.stderr


def test_held_out_accuracy_and_loss_equal_the_python_runners(kotlin_trainer, tiny_artifact, demo_data, tmp_path):
    from device_harness.runner import evaluate

    art, _, _ = tiny_artifact
    state = tmp_path / "state.safetensors"
    train(kotlin_trainer, art, demo_data[0], state, "--steps", 5)
    out = kotlin_trainer.run("ToolsMain", "evaluate", ort_library(), art, demo_data[1], state)
    got = json.loads(out.stdout)
    want = evaluate(art, demo_data[1], "onnx", state)
    assert got["examples"] == want["examples"] and got["accuracy"] == want["accuracy"]
    assert got["loss"] == pytest.approx(want["loss"], rel=1e-5)


def test_running_text_windows_equal_the_python_runners(kotlin_trainer, tiny_lm, tmp_path):
    from edgetune.data.records import iter_text_chunks
    from edgetune.data.rows import encode_windows
    from edgetune.data.text import TextEncoder

    d, _, train_txt, _, manifest, _ = tiny_lm
    art = d / "art"
    text = tmp_path / "mine.txt"  # the demo's writing, then lines of many scripts and a word without spaces
    text.write_text(train_txt.read_text(encoding="utf-8") + "\nCafé 東京 🙂 ΣΊΣΥΦΟΣ\n\n  indented\tline\n" + "x" * 5000,
                    encoding="utf-8")
    out = tmp_path / "windows.json"
    kotlin_trainer.run("ToolsMain", "windows", art, text, out)
    got = json.loads(out.read_text())
    rows = encode_windows(TextEncoder(art / manifest.tokenizer, manifest.seq_len), iter_text_chunks(text))
    try:
        want = rows.take(np.arange(rows.n))
    finally:
        rows.close()
    assert len(got["input_ids"]) == rows.n > 10
    assert got["input_ids"] == want["input_ids"].tolist() and got["attention_mask"] == want["attention_mask"].tolist()


def test_a_language_model_trains_on_running_text(kotlin_trainer, tiny_lm, tmp_path):
    d, _, train_txt, _, _, _ = tiny_lm
    _, lines = train(kotlin_trainer, d / "art", train_txt, tmp_path / "lm.safetensors", "--steps", 3)
    assert [x["step"] for x in lines if "loss" in x] == [1, 2, 3] and all(np.isfinite(x["loss"]) for x in lines if "loss" in x)
    assert lines[-1]["reason"] == "done"
