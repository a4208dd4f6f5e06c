"""Quantized frozen bases through both runtimes: the step matches eager PyTorch over several
AdamW steps (gradients flow through the integer layers to the adapters below them), and the
artifacts really hold integers (ONNX INT8/UINT4 initializers, smaller files)."""
import onnx
import pytest
import torch

from edgetune import AdamW, EmbeddingRows, FullyTrainable, LoRA, compile_step, prepare
from edgetune.models.decoder import DecoderConfig, DecoderForCausalLM
from edgetune.models.llama import from_gguf
from edgetune.models.tiny import TinyClassifier
from edgetune.quant import Int4Config, Int8Config, quantize
from edgetune.quant.int8_matmul import activation_rounding
from exporters.artifact import ACTIVATION_ROUNDING, export_artifact
from helpers.gguf_files import write_tiny_llama
from helpers.parity_steps import run_parity

# int4 without zero points lowers through the same graph as with them (an offset of -8 * scale),
# so the third case is int8 with integer forward and backward matmuls instead.
QUANTS = {"int8": Int8Config(embeddings=True), "int4_g32_zp": Int4Config(32, True),
          "w8a8g8": Int8Config(compute="int8")}


@pytest.fixture(scope="module", params=sorted(QUANTS))
def quant_classifier(request, tmp_path_factory):
    model = TinyClassifier(vocab=128, max_len=16)
    quantize(model, QUANTS[request.param])
    # LoRA on the first layer only: its gradient has to pass back through every quantized layer above it
    prepared = prepare(model, [LoRA(targets=("layers.0.attention.query",), r=4), FullyTrainable(("head",))])
    compiled = compile_step(prepared, AdamW(lr=1e-3, weight_decay=0.01), batch_size=4, seq_len=16)
    out = tmp_path_factory.mktemp(request.param) / "artifact"
    return out, export_artifact(compiled, out), compiled


@pytest.mark.parametrize("runtime", ["onnx", "executorch"])
def test_quantized_classifier_steps_like_eager(quant_classifier, runtime):
    art, manifest, compiled = quant_classifier
    with activation_rounding(ACTIVATION_ROUNDING.get(runtime, "symmetric")):  # ExecuTorch's: XNNPACK's
        ref, state = run_parity(art, manifest, compiled, runtime, steps=3)
    name = "param.encoder.layers.0.attention.query.lora_A"
    assert float((ref[name] - compiled.initial_state()[name]).abs().max()) > 0  # the low adapter did train


def test_integer_matmuls_reach_onnx(quant_classifier):
    art, manifest, compiled = quant_classifier
    ops = [n.op_type for n in onnx.load(str(art / manifest.step.files["onnx"])).graph.node]
    n_linear = sum(1 for m in compiled.prepared.model.modules() if type(m).__name__ == "QuantLinear")
    if "w8a8" in str(art):  # every quantized linear's forward, and the input-gradient products the loss needs
        assert ops.count("MatMulIntegerToFloat") == ops.count("QuantizeLinear") > n_linear, ops
        assert "DequantizeLinear" not in ops
    else:
        assert "MatMulIntegerToFloat" not in ops


@pytest.fixture(scope="module")
def gguf_lm(tmp_path_factory):
    """A tiny Llama GGUF (Q4_0 / Q4_1 / Q8_0 linears, Q8_0 tied embedding), LoRA + embedding rows."""
    d = tmp_path_factory.mktemp("gguf")
    path, _ = write_tiny_llama(d / "tiny.gguf", hidden=64, ffn=128, layers=2)
    model = from_gguf(path, max_positions=16)
    prepared = prepare(model, [EmbeddingRows(list(range(0, 256, 3)), target="embed_tokens"),
                               LoRA(targets=("q_proj", "v_proj"), r=4)])
    compiled = compile_step(prepared, AdamW(lr=1e-3), batch_size=2, seq_len=16)
    return d / "artifact", export_artifact(compiled, d / "artifact"), compiled


@pytest.mark.parametrize("runtime", ["onnx", "executorch"])
def test_gguf_lm_steps_like_eager(gguf_lm, runtime):
    art, manifest, compiled = gguf_lm
    run_parity(art, manifest, compiled, runtime, steps=3)


def test_onnx_keeps_integer_weights(gguf_lm):
    art, _, compiled = gguf_lm
    m = onnx.load(str(art / "step.onnx"))
    kinds = {}
    for t in m.graph.initializer:
        kinds.setdefault(t.data_type, []).append(tuple(t.dims))
    # every linear's codes: UINT4 for the Q4 blocks, INT8 for Q8_0 linears and the embedding table
    n_q4 = sum(1 for mod in compiled.prepared.model.modules() if getattr(mod, "bits", None) == 4)
    assert len(kinds.get(onnx.TensorProto.UINT4, [])) == n_q4 > 0
    assert (256, 64) in kinds[onnx.TensorProto.INT8]
    # and no float initializer as large as a weight matrix
    assert max(dims[0] * (dims[1] if len(dims) > 1 else 1) for dims in kinds[onnx.TensorProto.FLOAT]) < 64 * 64


def test_quantized_programs_pin_fp32_products_in_the_session(gguf_lm):
    from device_harness.runtimes import open_program
    from exporters.onnx import QDQ_SESSION_CONFIG

    art, manifest, _ = gguf_lm
    for name, spec in manifest.programs.items():
        assert spec.lowering["onnx"]["session_config"] == QDQ_SESSION_CONFIG, name
    opts = open_program(art, manifest, "step", "onnx").session.get_session_options()
    assert opts.get_session_config_entry("session.qdq_matmulnbits_accuracy_level") == "1"


def test_artifacts_shrink_with_the_weights(tmp_path):
    """Inference program files of a model whose weights dominate: int8 and int4 vs fp32, both
    runtimes (the lowerings alone: the step holds the same constants, and its self-checked
    export is covered above)."""
    from exporters.executorch import export_executorch
    from exporters.onnx import export_onnx

    cfg = DecoderConfig(vocab_size=64, hidden_size=256, num_layers=2, num_heads=4, num_kv_heads=4,
                        intermediate_size=512, max_positions=8)
    sizes = {}
    for name, q in [("fp32", None), ("int8", Int8Config()), ("int4", Int4Config(32))]:
        torch.manual_seed(0)
        model = DecoderForCausalLM(cfg)
        if q:
            quantize(model, q)
        compiled = compile_step(prepare(model, [LoRA(targets=("q_proj",), r=2)]), AdamW(), 1, 8)
        ep = compiled.capture("infer")
        export_onnx(ep, compiled.infer_spec(), tmp_path / f"{name}.onnx")
        export_executorch(ep, tmp_path / f"{name}.pte")
        sizes[name] = {fmt: (tmp_path / f"{name}.{ext}").stat().st_size
                       for fmt, ext in (("onnx", "onnx"), ("executorch", "pte"))}
    for fmt in ("onnx", "executorch"):
        # weights: 4 B -> 1 B (+ a scale per row) -> 0.5 B (+ fp32 scale and offset per 32)
        assert sizes["int8"][fmt] < 0.4 * sizes["fp32"][fmt], sizes
        assert sizes["int4"][fmt] < 0.3 * sizes["fp32"][fmt], sizes
