"""The kit's golden vectors against references independent of the code that wrote them:
cross-entropy of the model on the kit's batch, numpy's PCG64 for the noise, the train
trajectory for the resume case, the artifact's own state file for the start."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from safetensors.numpy import load_file

from device_harness.conformance import replay
from edgetune.app.cli import main
from edgetune.app.conformance import write_kit
from edgetune.contract.conformance import KIT_FILE, RESUME_FILE, TENSORS_FILE, prefixed, read_kit
from edgetune.contract.names import NOISE_V_PREFIX
from edgetune.contract.state import load_state
from edgetune.errors import ConfigError


@pytest.fixture(scope="module")
def tiny_kit(tiny_artifact, tmp_path_factory):
    art, manifest, compiled = tiny_artifact
    out = tmp_path_factory.mktemp("kit") / "kit"
    write_kit(compiled, art, out)
    kit, tensors = read_kit(out)
    return out, kit, tensors


def test_first_loss_is_the_models_cross_entropy_on_the_batch(tiny_artifact, tiny_kit):
    _, _, compiled = tiny_artifact
    _, kit, tensors = tiny_kit
    step1 = kit["cases"][0]["steps"][0]
    batch = {k: torch.from_numpy(v) for k, v in prefixed(tensors, step1["batch"]).items()}
    with torch.no_grad():
        logits = compiled.prepared.model(batch["input_ids"], batch["attention_mask"])
    assert np.isclose(step1["loss"], float(F.cross_entropy(logits, batch["labels"])), rtol=1e-6)


def test_start_state_is_the_artifacts_and_resume_follows_train(tiny_artifact, tiny_kit):
    art, manifest, _ = tiny_artifact
    out, kit, tensors = tiny_kit
    state0, _ = load_state(art / "state.safetensors", manifest, initial=True)
    train, resume, bad = kit["cases"]
    assert all(np.array_equal(state0[k], v) for k, v in prefixed(tensors, train["start"]).items())
    resumed, step = load_state(out / RESUME_FILE, manifest)
    assert step == resume["start_step"] == 2
    after2 = prefixed(tensors, train["steps"][1]["state"])
    assert all(np.array_equal(after2[k], resumed[k]) for k in resumed)
    for r in resume["steps"]:
        t = next(s for s in train["steps"] if s["step"] == r["step"])
        assert r["loss"] == t["loss"]
    assert bad["steps"][0]["accepted"] is False and "state" not in bad["steps"][0]


def test_zo_noise_is_pcg64_of_seed_and_step_in_input_order(zo_artifact, tmp_path):
    art, manifest, compiled = zo_artifact
    kit = write_kit(compiled, art, tmp_path / "kit", steps=3, resume_at=1)
    tensors = load_file(str(tmp_path / "kit" / TENSORS_FILE))
    noise_specs = manifest.step.of_role("noise")
    for entry in kit["cases"][0]["steps"]:
        rng = np.random.default_rng([kit["seed"], entry["step"]])
        resample = entry["step"] % manifest.optimizer["nu"] == 1  # nu = 2: steps 1, 3, ...
        for spec in noise_specs:
            got = tensors[entry["hyper"] + spec.name]
            if spec.name.startswith(NOISE_V_PREFIX) and not resample:
                assert not got.any()
            else:
                np.testing.assert_array_equal(got, rng.standard_normal(spec.shape, dtype=np.float32))


def test_integer_activation_artifacts_are_refused(tiny_artifact, tmp_path, monkeypatch):
    art, _, compiled = tiny_artifact
    monkeypatch.setattr("edgetune.quant.uses_integer_activations", lambda model: True)
    with pytest.raises(ConfigError, match="integer codes"):
        write_kit(compiled, art, tmp_path / "kit")


def test_cli_writes_a_kit_the_runner_passes(tiny_artifact, tmp_path):
    art, _, _ = tiny_artifact
    res = CliRunner().invoke(main, ["conformance", str(art), str(tmp_path / "kit")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "kit" / KIT_FILE).read_text())["artifact_id"] in res.output
    assert replay(art, tmp_path / "kit", "onnx")["failures"] == []
    again = CliRunner().invoke(main, ["conformance", str(art), str(tmp_path / "kit")])
    assert again.exit_code != 0 and "--overwrite" in again.output
