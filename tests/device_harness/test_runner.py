"""The device-side runner: training, resuming, and bad input that changes nothing on disk."""
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from device_harness.runner import Trainer, encode_arrays, evaluate, main, predict
from edgetune.contract import load_manifest
from edgetune.contract.state import load_state
from edgetune.errors import ArtifactError, BatchError, EdgetuneError, NonFiniteLossError, StateError


@pytest.fixture
def art(tiny_artifact, tmp_path):
    """A private copy of the tiny artifact (tests write state into it)."""
    dst = tmp_path / "art"
    shutil.copytree(tiny_artifact[0], dst)
    return dst


def test_training_lowers_loss_and_resume_continues_exactly(art, demo_data, tmp_path):
    train_csv = demo_data[0]
    straight = Trainer(art, "onnx", tmp_path / "a.safetensors")
    recs = list(straight.train(train_csv, 6, save_every=2, total_steps=6))
    assert [r.step for r in recs] == list(range(1, 7))
    # Same 6 steps as 4 + 2 with a restart in between (the default linear schedule over the
    # same 6 steps): identical state and counter.
    first = Trainer(art, "onnx", tmp_path / "b.safetensors")
    list(first.train(train_csv, 4, save_every=3, total_steps=6))
    resumed = Trainer(art, "onnx", tmp_path / "b.safetensors")
    assert resumed.step == 4
    list(resumed.train(train_csv, 2, total_steps=6))
    manifest = resumed.manifest
    a, na = load_state(tmp_path / "a.safetensors", manifest)
    b, nb = load_state(tmp_path / "b.safetensors", manifest)
    assert na == nb == 6
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_training_lowers_the_loss(art, demo_data, tmp_path):
    # at a constant rate: with the default linear decay 30 steps of this tiny model move less
    losses = [r.loss for r in Trainer(art, "onnx", tmp_path / "l.st").train(demo_data[0], 30, schedule="constant")]
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])


def test_executorch_runner_trains_like_onnx(art, demo_data, tmp_path):
    o = [r.loss for r in Trainer(art, "onnx", tmp_path / "o.st").train(demo_data[0], 3)]
    e = [r.loss for r in Trainer(art, "executorch", tmp_path / "e.st").train(demo_data[0], 3)]
    np.testing.assert_allclose(o, e, rtol=1e-4)


def test_json_lines_and_eval_from_the_command_line(art, demo_data, tmp_path):
    lines = []
    assert main(["train", str(art), str(demo_data[0]), "--steps", "2", "--state", str(tmp_path / "s.st")],
                out=lines.append) == 0
    start, *recs, end = [json.loads(l) for l in lines]
    assert start["event"] == "start" and start["step"] == 0 and start["target"] == 2
    assert [set(r) for r in recs] == [{"step", "loss", "ms", "cpu_ms", "t", "rss_mb", "peak_rss_mb"}] * 2
    assert all(r["ms"] > 0 and r["cpu_ms"] > 0 and r["rss_mb"] > 0 for r in recs) and recs[0]["t"] < recs[1]["t"]
    assert end == {"event": "end", "step": 2, "reason": "done", "energy": end["energy"]}
    # --until finishes the same run: 2 more steps to reach 4, then nothing more to do
    for _ in range(2):
        lines.clear()
        assert main(["train", str(art), str(demo_data[0]), "--until", "4", "--state", str(tmp_path / "s.st")],
                    out=lines.append) == 0
    assert json.loads(lines[0])["step"] == 4 and json.loads(lines[-1])["step"] == 4 and len(lines) == 2
    res = evaluate(art, demo_data[1], "onnx", tmp_path / "s.st")
    assert 0.0 <= res["accuracy"] <= 1.0 and res["examples"] == 20
    # the held-out loss is the mean cross-entropy of the program's logits (torch as the reference)
    import torch

    manifest = load_manifest(art, "onnx")
    arrays = encode_arrays(art, manifest, demo_data[1])
    logits = torch.from_numpy(predict(art, arrays, "onnx", tmp_path / "s.st"))
    labels = torch.from_numpy(arrays["labels"]).long()
    assert res["loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(logits, labels)), rel=1e-5)
    assert res["accuracy"] == int((logits.argmax(-1) == labels).sum()) / len(labels)


def test_onnx_runner_does_not_import_torch(art, demo_data, tmp_path):
    code = ("import sys; from device_harness.runner import main;"
            f"rc = main(['train', {str(art)!r}, {str(demo_data[0])!r}, '--steps', '1', '--state', {str(tmp_path / 'x.st')!r}]);"
            "print('TORCH' if 'torch' in sys.modules else 'NO_TORCH', rc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "NO_TORCH 0"


def test_executorch_run_prints_nothing_on_stderr(art, demo_data, tmp_path):
    """ExecuTorch's C++ start-up lines (CPU detection, thread pool) are the runtime's, not the user's."""
    p = subprocess.run([sys.executable, "-m", "device_harness.runner", "train", str(art), str(demo_data[0]), "--runtime",
                        "executorch", "--steps", "1", "--threads", "1", "--state", str(tmp_path / "x.st")],
                       capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert p.returncode == 0 and p.stderr == "", p.stderr[-2000:]


def test_native_log_is_captured_and_stderr_restored(capfd):
    from device_harness.runtimes import native_log_captured

    with native_log_captured() as log:
        os.write(2, b"[cpuinfo_utils.cpp:125] a runtime line\n")
        assert log() == "[cpuinfo_utils.cpp:125] a runtime line\n"
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"


def _snapshot(path):
    return path.read_bytes() if path.exists() else None


def test_bad_batch_shape_and_dtype_change_nothing(art, demo_data, tmp_path):
    tr = Trainer(art, "onnx", tmp_path / "s.st")
    list(tr.train(demo_data[0], 2))
    before = _snapshot(tmp_path / "s.st")
    state = dict(tr.state)
    b, s = tr.manifest.batch_size, tr.manifest.seq_len
    good = {"input_ids": np.ones((b, s), np.int64), "attention_mask": np.ones((b, s), np.int64),
            "labels": np.zeros(b, np.int64)}
    with pytest.raises(BatchError, match=r"input 'input_ids' has shape \(3, 16\)"):
        tr.train_step({**good, "input_ids": np.ones((b - 1, s), np.int64)})
    with pytest.raises(BatchError, match="dtype int32.*astype"):
        tr.train_step({**good, "attention_mask": good["attention_mask"].astype(np.int32)})
    with pytest.raises(BatchError, match="'labels'.*missing"):
        tr.train_step({k: v for k, v in good.items() if k != "labels"})
    assert tr.step == 2 and all(tr.state[k] is state[k] for k in state)
    assert _snapshot(tmp_path / "s.st") == before


def test_nan_step_is_rejected_and_last_good_state_kept(art, demo_data, tmp_path):
    tr = Trainer(art, "onnx", tmp_path / "s.st")
    list(tr.train(demo_data[0], 3))
    with pytest.raises(NonFiniteLossError, match="rejected and the state kept") as err:
        list(tr.train(demo_data[0], 10, lr=1e30, save_every=0))  # AdamW's update blows up
    bad_step = int(str(err.value).split(":")[0].split()[-1])
    assert tr.step == bad_step - 1
    # What is on disk is the last good state, exactly the one in memory, and it loads.
    on_disk, n = load_state(tmp_path / "s.st", tr.manifest)
    assert n == tr.step
    for k, v in tr.state.items():
        np.testing.assert_array_equal(on_disk[k], v)
    with pytest.raises(EdgetuneError, match="learning rate"):
        tr.train_step({}, lr=1e39)  # overflows float32


def test_missing_corrupt_and_foreign_state(art, tiny_artifact, demo_data, tmp_path):
    manifest = Trainer(art, "onnx").manifest
    with pytest.raises(StateError, match="does not exist"):
        load_state(tmp_path / "nope.st", manifest)
    bad = tmp_path / "bad.st"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(StateError, match="corrupt"):
        Trainer(art, "onnx", bad)
    assert bad.read_bytes().startswith(b"\x10")  # a corrupt file is reported, not overwritten
    # A state file whose artifact id differs.
    from edgetune.contract.state import save_state

    st, _ = load_state(art / "state.safetensors", manifest, initial=True)
    save_state(tmp_path / "other.st", st, replace(manifest, artifact_id="0123456789abcdef"), 5)
    with pytest.raises(StateError, match="belongs to artifact '0123456789abcdef'"):
        Trainer(art, "onnx", tmp_path / "other.st")


def test_manifest_from_another_artifact_is_refused(art, zo_artifact, tmp_path):
    shutil.copyfile(zo_artifact[0] / "manifest.json", art / "manifest.json")
    with pytest.raises(ArtifactError, match="does not match manifest.json"):
        Trainer(art, "onnx")


def test_malformed_manifest_and_unknown_label(art, tmp_path):
    (art / "manifest.json").write_text("{\"format\": \"edgetune.artifact\", \"version\": 99}")
    with pytest.raises(ArtifactError, match="version 99"):
        Trainer(art, "onnx")
    (art / "manifest.json").write_text("not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        Trainer(art, "onnx")


def test_unknown_label_in_data(tiny_artifact, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "hello", "label": "holidays"}\n')
    with pytest.raises(EdgetuneError, match="'holidays'.*known labels"):
        list(Trainer(tiny_artifact[0], "onnx", tmp_path / "s.st").train(data, 1))
    assert not (tmp_path / "s.st").exists()
