"""Core ML packages: the rewrites match the captured step in eager PyTorch, the features are the
manifest's tensors mapped as the contract says, in its order, and the package is hashed as a tree.
(Core ML's own numbers need macOS: the Swift package's conformance test checks them there.)"""
import shutil

import coremltools as ct
import pytest

from device_harness.runtimes import open_program
from edgetune.contract import ProgramSpec, TensorSpec, load_manifest
from edgetune.contract.coreml import feature_name
from edgetune.errors import ArtifactError, ConfigError, InternalError
from exporters import coreml
from exporters.artifact import export_artifact
from helpers.kits import artifact_of


@pytest.fixture(scope="module")
def coreml_artifact(tmp_path_factory, tiny_artifact):
    """The tiny classifier's step (LoRA, embedding rows through an integer clamp, AdamW) as Core ML."""
    out = tmp_path_factory.mktemp("coreml") / "artifact"
    return out, export_artifact(tiny_artifact[2], out, ("coreml",))


@pytest.mark.parametrize("fixture", ["zo_artifact", "tiny_lm"])
def test_forward_only_and_language_model_steps_convert(request, fixture, tmp_path):
    """LOZO-M's noise and resample inputs; a GGUF Llama's integer blocks, RoPE and causal mask."""
    manifest = export_artifact(artifact_of(request, fixture)[2], tmp_path / "a", ("coreml",))
    assert load_manifest(tmp_path / "a", "coreml").artifact_id == manifest.artifact_id
    for spec in manifest.programs.values():
        _check_features(tmp_path / "a" / spec.files["coreml"], spec)


@pytest.mark.parametrize("program", ["step", "infer"])
def test_features_are_the_manifests_mapped_in_order(coreml_artifact, program):
    art, manifest = coreml_artifact
    spec = manifest.programs[program]
    _check_features(art / spec.files["coreml"], spec)
    assert spec.lowering["coreml"]["compute_precision"] == "float32"
    if program == "step":
        assert {"input_ids", "labels", "lr", "step"} <= {t.name for t in spec.inputs}


def _check_features(package, spec):
    proto = ct.utils.load_spec(str(package))
    inputs = [(f.name, f.type.multiArrayType.dataType, tuple(f.type.multiArrayType.shape))
              for f in proto.description.input]
    int32, float32 = ct.proto.FeatureTypes_pb2.ArrayFeatureType.INT32, ct.proto.FeatureTypes_pb2.ArrayFeatureType.FLOAT32
    want = [(t.name.replace(".", "_"), int32 if t.dtype == "int64" else float32, t.shape or (1,)) for t in spec.inputs]
    assert inputs == want
    assert [f.name for f in proto.description.output] == [t.name.replace(".", "_") for t in spec.outputs]
    main = proto.mlProgram.functions["main"]  # the program itself carries the same names
    assert [i.name for i in main.inputs] == [w[0] for w in want]
    assert list(main.block_specializations[main.opset].outputs) == [f.name for f in proto.description.output]


def test_the_loader_hashes_the_package_as_a_tree(coreml_artifact, tmp_path):
    art, manifest = coreml_artifact
    assert load_manifest(art, "coreml").artifact_id == manifest.artifact_id
    bad = tmp_path / "bad"
    shutil.copytree(art, bad)
    weights = next((bad / "step.mlpackage").rglob("weight.bin"))
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="step.mlpackage does not match manifest.json"):
        load_manifest(bad, "coreml")
    load_manifest(bad, "onnx" if "onnx" in manifest.step.files else None, verify=False)  # the schema still reads
    weights.unlink()
    weights.symlink_to(art / "state.safetensors")
    with pytest.raises(ArtifactError, match="link or special file"):
        load_manifest(bad, "coreml")
    shutil.rmtree(bad / "infer.mlpackage")
    (bad / "infer.mlpackage").write_bytes(b"not a package")
    with pytest.raises(ArtifactError, match="infer.mlpackage is listed in the manifest but missing"):
        load_manifest(bad, "coreml")


def test_a_rewrite_that_changes_the_numbers_is_refused(tiny_artifact, tmp_path, monkeypatch):
    def no_centring(x, shape, weight, bias, eps):  # forgets to subtract the mean
        dims = list(range(x.dim() - len(shape), x.dim()))
        rstd = (x.var(dims, keepdim=True, unbiased=False) + eps).rsqrt()
        return x * rstd * weight + bias, x.mean(dims, keepdim=True), rstd

    monkeypatch.setattr(coreml, "_layer_norm", no_centring)
    with pytest.raises(InternalError, match="the coreml step program differs from eager PyTorch"):
        export_artifact(tiny_artifact[2], tmp_path / "a", ("coreml",))
    assert not (tmp_path / "a").exists()


def test_colliding_feature_names_are_refused(tmp_path):
    spec = ProgramSpec((TensorSpec("param.a.b", (2,), "float32", "state"), TensorSpec("param.a_b", (2,), "float32", "state")),
                       (TensorSpec("logits", (1, 2), "float32", "metric"),))
    with pytest.raises(ConfigError, match=r"two input names .* one Core ML feature name \(\['param_a_b'\]\)"):
        coreml.export_coreml(None, spec, tmp_path / "x.mlpackage")


def test_feature_names_keep_identifiers_and_replace_the_rest():
    assert feature_name("adamw.m.param.layers.0.q.lora_A") == "adamw_m_param_layers_0_q_lora_A"
    assert feature_name("noise.U.x-y é") == "noise_U_x_y__"
    assert feature_name("input_ids") == "input_ids"


def test_the_python_runner_sends_core_ml_to_the_swift_trainer(coreml_artifact):
    art, manifest = coreml_artifact
    with pytest.raises(ConfigError, match=r"runs \['onnx', 'executorch'\], not 'coreml': .*Swift trainer"):
        open_program(art, manifest, "step", "coreml")
