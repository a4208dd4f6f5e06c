"""The Python runner passes the conformance kit of every kind of artifact, on both runtimes,
and the replay reports a kit it does not match (so the same kit can judge other implementations)."""
import json
import subprocess
import sys

import numpy as np
import pytest

from device_harness.conformance import replay
from device_harness.runtimes import RUNNERS
from edgetune.contract.conformance import KIT_FILE, TENSORS_FILE
from helpers.kits import artifact_of, tampered_copy

ARTIFACTS = ["tiny_artifact", "zo_artifact", "tiny_lm", pytest.param("minilm_artifact", marks=pytest.mark.slow)]


@pytest.mark.parametrize("runtime", list(RUNNERS))
@pytest.mark.parametrize("fixture", ARTIFACTS)
def test_runner_passes_the_kit(request, kits, fixture, runtime):
    art, manifest, _ = artifact_of(request, fixture)
    report = replay(art, kits(request, fixture), runtime)
    assert report["failures"] == [], report["failures"][:5]
    assert report["cases"] == ["train", "resume", "nonfinite"]
    # every state tensor of the 4 + 2 accepted steps, their hyper inputs and losses were compared
    n_state = len(manifest.state_specs())
    assert report["checks"] >= 6 * (n_state + 2) + 1


@pytest.mark.parametrize("part, change, reported", [
    ("train/2/state/param.", lambda a: a + 1e-2 * (np.abs(a).max() + 1), "train step 2: param."),
    ("train/1/hyper/noise.U.", lambda a: a + np.float32(1e-6), "train step 1: noise.U."),
    ("tokenize/input_ids", lambda a: a[::-1].copy(), "tokenizer input_ids"),
])
def test_a_kit_the_runner_does_not_match_is_reported(request, kits, tmp_path, part, change, reported):
    fixture = "zo_artifact" if "noise" in part else "tiny_artifact"
    art, _, _ = artifact_of(request, fixture)
    kit_dir = tampered_copy(kits(request, fixture), tmp_path / "kit", part, change)
    report = replay(art, kit_dir, "onnx")
    assert report["failures"] and any(f.startswith(reported) for f in report["failures"]), report["failures"]


def test_conformance_command_exit_codes(request, kits, tmp_path):
    art, _, _ = artifact_of(request, "tiny_artifact")
    kit_dir = kits(request, "tiny_artifact")
    cmd = [sys.executable, "-m", "device_harness.conformance", str(art), str(kit_dir), "--runtime", "onnx"]
    ok = subprocess.run(cmd, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert json.loads(ok.stdout)["failures"] == []
    bad = tmp_path / "kit"
    bad.mkdir()
    (bad / KIT_FILE).write_text("{}")
    (bad / TENSORS_FILE).write_bytes(b"not safetensors")
    out = subprocess.run(cmd[:4] + [str(bad)], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.startswith("error: ") and "Traceback" not in out.stderr
