"""The Kotlin trainer passes the conformance kit on a real ONNX Runtime (JVM): the tokenizer's ids,
the schedule, exact hyper and noise inputs, every loss and state tensor of eager PyTorch's steps
chained on its own outputs, resuming from a state file, rejecting a non-finite step, and a state
file that reads back; and it reports a kit it does not match."""
import numpy as np
import pytest

from helpers.kits import artifact_of, tampered_copy

ARTIFACTS = ["tiny_artifact", "zo_artifact", "tiny_lm", "shared_weights_artifact",
             pytest.param("minilm_artifact", marks=pytest.mark.slow)]


@pytest.mark.parametrize("fixture", ARTIFACTS)
def test_kotlin_trainer_passes_the_kit(request, kits, kotlin_trainer, fixture):
    art, manifest, _ = artifact_of(request, fixture)
    report = kotlin_trainer.conformance(art, kits(request, fixture))
    assert report["failures"] == [], report["failures"][:5]
    assert report["cases"] == ["train", "resume", "nonfinite"]
    # every state tensor of the 4 + 2 accepted steps, their hyper inputs and losses were compared
    assert report["checks"] >= 6 * (len(manifest.state_specs()) + 2) + 1


@pytest.mark.parametrize("part, change, reported", [
    ("train/3/state/param.", lambda a: a + 1e-2 * (np.abs(a).max() + 1), "train step 3: param."),
    ("train/1/hyper/noise.V.", lambda a: a + np.float32(1e-6), "train step 1: noise.V."),
    ("tokenize/attention_mask", lambda a: 1 - a, "tokenizer attention_mask"),
])
def test_a_kit_the_kotlin_trainer_does_not_match_is_reported(request, kits, kotlin_trainer, tmp_path, part, change, reported):
    fixture = "zo_artifact" if "noise" in part else "tiny_artifact"
    art, _, _ = artifact_of(request, fixture)
    kit = tampered_copy(kits(request, fixture), tmp_path / "kit", part, change)
    report = kotlin_trainer.conformance(art, kit)
    assert report["failures"] and any(f.startswith(reported) for f in report["failures"]), report["failures"]
