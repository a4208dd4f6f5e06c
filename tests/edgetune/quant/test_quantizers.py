"""Quantizers against fp32 weights: codes, ranges and SQNR floors on MiniLM-L6 and SmolLM2.

Floors are set just under what was measured (per layer / whole model):
MiniLM int8 per-channel 33.5 / 41 dB mean (its FFN output layers have heavy-tailed
rows), int4 g32 with zero points >= 21.4, g64 >= 19.8, symmetric g32 >= 19.1.
"""
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from edgetune.errors import ConfigError
from edgetune.models.minilm import minilm_path
from edgetune.quant import GGUFFile, quantize_int4, quantize_int8, sqnr_db
from edgetune.quant.weight import pack_nibbles, unpack_nibbles
from helpers.gguf_files import smollm2_path


def whole_sqnr(ws, quant):
    sig = sum(float(w.double().pow(2).sum()) for w in ws)
    noise = sum(float((w.double() - quant(w).dequantize().double()).pow(2).sum()) for w in ws)
    return 10 * np.log10(sig / max(noise, 1e-300))  # exactly 0 when the grid matches (Q4_1 -> int4 g32)


@pytest.fixture(scope="module")
def minilm_weights():
    sd = load_file(str(minilm_path() / "model.safetensors"))
    return [v for k, v in sd.items() if v.ndim == 2 and "embeddings" not in k]


@pytest.fixture(scope="module")
def smollm2_weights():
    f = GGUFFile(smollm2_path())
    return [f.tensor(f"blk.{i}.{n}.weight").dequantize() for i in (0, 15, 29) for n in ("attn_q", "attn_v", "ffn_down")]


CASES = [  # name, quantizer, per-layer floor on MiniLM, whole-model floor (both models)
    ("int8", quantize_int8, 33.0, 35.0),
    ("int4_g32_zp", lambda w: quantize_int4(w, 32, True), 21.0, 21.0),
    ("int4_g64_zp", lambda w: quantize_int4(w, 64, True), 19.5, 19.5),
    ("int4_g32_sym", lambda w: quantize_int4(w, 32, False), 18.5, 18.5),
]


@pytest.mark.parametrize("name,quant,layer_floor,model_floor", CASES, ids=[c[0] for c in CASES])
def test_sqnr_minilm(minilm_weights, name, quant, layer_floor, model_floor):
    worst = min(sqnr_db(w, quant(w).dequantize()) for w in minilm_weights)
    assert worst >= layer_floor, f"{name}: worst layer {worst:.2f} dB"
    assert whole_sqnr(minilm_weights, quant) >= model_floor


@pytest.mark.parametrize("name,quant,layer_floor,model_floor", CASES, ids=[c[0] for c in CASES])
def test_sqnr_smollm2(smollm2_weights, name, quant, layer_floor, model_floor):
    # SmolLM2's weights are Q4_1 already: re-quantizing with int4 g32 + zero points is
    # near lossless (the same grid), so only the other formats say something here.
    assert whole_sqnr(smollm2_weights, quant) >= model_floor


def test_int8_codes_and_scales():
    w = torch.randn(16, 64)
    qw = quantize_int8(w)
    assert qw.q.dtype == torch.int8 and qw.q.abs().max() <= 127
    # each row's largest magnitude lands on +-127
    assert torch.equal(qw.q.abs().amax(1), torch.full((16,), 127, dtype=torch.int8))
    np.testing.assert_allclose(qw.dequantize(), w, atol=float(w.abs().max()) / 254 + 1e-6)


def test_int4_zero_point_covers_the_group_range():
    w = torch.randn(8, 64) + 3.0  # all positive: a symmetric grid would waste half its codes
    qw = quantize_int4(w, 32, True)
    u = unpack_nibbles(qw.q)
    assert int(u.min()) == 0 and int(u.max()) == 15
    g = w.reshape(8, 2, 32)
    assert qw.scale.dtype == qw.offset.dtype == torch.float16  # stored as GGUF stores them
    np.testing.assert_allclose(qw.offset.float(), g.amin(-1), rtol=2 ** -10)
    err = (qw.dequantize() - w).abs().reshape(8, 2, 32).amax(-1)
    # half a step, plus the fp16 rounding of the group minimum
    assert bool((err <= qw.scale.float() / 2 + g.amin(-1).abs() * 2 ** -11 + 1e-6).all())


def test_int4_symmetric_keeps_zero_exact():
    w = torch.randn(4, 64)
    w[:, ::7] = 0.0
    qw = quantize_int4(w, 64, False)
    assert torch.equal(qw.dequantize()[:, ::7], torch.zeros_like(w[:, ::7]))


def test_packing_roundtrip():
    u = torch.randint(0, 16, (5, 34), dtype=torch.uint8)
    assert torch.equal(unpack_nibbles(pack_nibbles(u)), u)
    assert pack_nibbles(torch.tensor([[1, 2]]))[0, 0] == 1 + (2 << 4)  # ONNX UINT4 order: low nibble first


def test_bad_group_is_refused():
    with pytest.raises(ConfigError, match="not a multiple of group=64"):
        quantize_int4(torch.randn(4, 96), 64)
    with pytest.raises(ConfigError, match="choose one of"):
        quantize_int4(torch.randn(4, 96), 48)
