"""The TypeScript trainer passes the conformance kit on onnxruntime-node: the tokenizer's ids (Tokenizers.js
against `tokenizers`), the schedule, exact hyper inputs, every loss and state tensor of eager PyTorch's
steps chained on its own outputs, resuming from a state file, rejecting a non-finite step, and a state
file that reads back; it reports a kit it does not match. Forward-only noise is numpy's, bit for bit."""
import numpy as np
import pytest

from helpers.kits import artifact_of, tampered_copy

ARTIFACTS = ["tiny_artifact", "tiny_int8_artifact", "tiny_int4_artifact", "zo_artifact", "tiny_lm", "shared_weights_artifact",
             pytest.param("minilm_artifact", marks=pytest.mark.slow)]


@pytest.mark.parametrize("fixture", ARTIFACTS)
def test_node_trainer_passes_the_kit(request, kits, node_trainer, fixture):
    art, manifest, _ = artifact_of(request, fixture)
    report = node_trainer.conformance(art, kits(request, fixture))
    assert report["failures"] == [], report["failures"][:5]
    assert report["cases"] == ["train", "resume", "nonfinite"]
    # every state tensor of the 4 + 2 accepted steps, their hyper inputs and losses were compared
    assert report["checks"] >= 6 * (len(manifest.state_specs()) + 2) + 1


@pytest.mark.parametrize("part, change, reported", [
    ("train/3/state/param.", lambda a: a + 1e-2 * (np.abs(a).max() + 1), "train step 3: param."),
    ("train/2/hyper/lr", lambda a: np.asarray(a * np.float32(1.0000001), np.float32), "train step 2: lr"),
    ("train/1/hyper/noise.V.", lambda a: a + np.float32(1e-6), "train step 1: noise.V."),
    ("tokenize/attention_mask", lambda a: 1 - a, "tokenizer attention_mask"),
])
def test_a_kit_the_node_trainer_does_not_match_is_reported(request, kits, node_trainer, tmp_path, part, change, reported):
    fixture = "zo_artifact" if "noise" in part else "tiny_artifact"
    art, _, _ = artifact_of(request, fixture)
    kit = tampered_copy(kits(request, fixture), tmp_path / "kit", part, change)
    report = node_trainer.conformance(art, kit)
    assert report["failures"] and any(f.startswith(reported) for f in report["failures"]), report["failures"]


@pytest.mark.parametrize("seed, step, n", [(0, 1, 10), (0, 7, 200_000), (12345678901, 3, 50_000), (2**40 + 5, 2**33 + 1, 1000)])
def test_forward_only_noise_is_numpys_bit_for_bit(node_trainer, seed, step, n):
    """PCG64 through SeedSequence and the float32 ziggurat, its tail (|x| > 3.654) included."""
    import base64

    r = node_trainer.run("noise", str(seed), str(step), str(n))
    assert r.returncode == 0, r.stderr
    got = np.frombuffer(base64.b64decode(r.stdout.strip()), np.float32)
    want = np.random.default_rng([seed, step]).standard_normal(n, dtype=np.float32)
    assert got.tobytes() == want.tobytes()


def test_node_train_writes_a_state_python_loads_and_resumes_it(tiny_artifact, demo_data, node_trainer, tmp_path):
    """`train` on the page's notes: one JSON line a step, a state file that edgetune's own loader and
    `edgetune save-adapter --state` accept, and a second run that resumes where the first stopped."""
    import json

    from click.testing import CliRunner

    from edgetune.app.cli import main as edgetune_cli
    from edgetune.app.web import write_notes
    from edgetune.contract.state import load_state

    art, manifest, _ = tiny_artifact
    notes = write_notes(*demo_data, tmp_path / "notes.json")
    state = tmp_path / "trained.safetensors"
    for steps, first in ((3, 1), (2, 4)):
        r = node_trainer.run("train", str(art), str(notes), "--steps", str(steps), "--state", str(state))
        assert r.returncode == 0, r.stderr
        recs = [json.loads(line) for line in r.stdout.splitlines()]
        assert [x["step"] for x in recs] == list(range(first, first + steps))
        assert all(np.isfinite(x["loss"]) and x["ms"] > 0 for x in recs)
    tensors, step = load_state(state, manifest)
    assert step == 5 and set(tensors) == {t.name for t in manifest.state_specs()}
    out = CliRunner().invoke(edgetune_cli, ["save-adapter", str(art), str(tmp_path / "adapter"), "--state", str(state)])
    assert out.exit_code == 0 and (tmp_path / "adapter" / "adapter.safetensors").is_file(), out.output
    bad = tmp_path / "bad.json"
    bad.write_text('{"train": [{"text": "x", "label": "no such folder"}]}')
    r = node_trainer.run("train", str(art), str(bad), "--steps", "1", "--state", str(tmp_path / "other.safetensors"))
    assert r.returncode == 2 and "label \"no such folder\", which is not one of the artifact's labels" in r.stderr
    assert not (tmp_path / "other.safetensors").exists()


def test_a_tensors_artifact_is_refused_by_its_task(tensor_artifact, demo_data, node_trainer, tmp_path):
    from edgetune.app.web import write_notes

    notes = write_notes(*demo_data, tmp_path / "notes.json")
    r = node_trainer.run("train", str(tensor_artifact[0]), str(notes), "--steps", "1", "--state", str(tmp_path / "s"))
    assert r.returncode == 2 and "task 'tensors' is not one of" in r.stderr, r.stderr


def test_the_sources_type_check(node_trainer):
    """tsc --noEmit over web_demo/src, strict (the bundler strips types without checking them)."""
    import subprocess

    from helpers.web import WEB

    r = subprocess.run(["npx", "--no-install", "tsc", "--noEmit", "-p", "."], cwd=WEB, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-1000:]
