"""GGUF blocks are imported bit-exactly: compared with the `gguf` package's own dequantizer."""
import gguf
import numpy as np
import pytest
import torch

from edgetune.errors import ConfigError
from edgetune.quant import GGUFFile, blocks_to_weight
from helpers.gguf_files import smollm2_path


@pytest.mark.parametrize("qtype", ["Q4_0", "Q4_1", "Q8_0"])
def test_blocks_match_gguf_reference(qtype):
    t = getattr(gguf.GGMLQuantizationType, qtype)
    w = np.random.default_rng(0).normal(0, 1, (48, 128)).astype(np.float32)
    raw = gguf.quants.quantize(w, t)
    qw = blocks_to_weight(raw, qtype)
    assert qw.bits == (8 if qtype == "Q8_0" else 4) and qw.group == 32
    np.testing.assert_array_equal(qw.dequantize().numpy(), gguf.quants.dequantize(raw, t))


def test_smollm2_tensors_bit_exact():
    f = GGUFFile(smollm2_path())
    kinds = {}
    for name in f.names():
        kinds.setdefault(f.qtype(name), []).append(name)
    assert set(kinds) == {"Q4_1", "Q8_0", "F32"}
    for name in kinds["Q8_0"] + kinds["Q4_1"][:8]:
        t = f._get(name)
        ref = gguf.quants.dequantize(t.data, t.tensor_type)
        qw = f.tensor(name)
        np.testing.assert_array_equal(qw.dequantize().numpy(), ref, err_msg=name)
        # integer codes are kept: 4 bits per value (+ fp32 scale and offset per 32), 8 for Q8_0
        per_value = 8 * qw.q.numel() * qw.q.element_size() / ref.size
        assert per_value == (4 if qw.bits == 4 else 8)
    norm = f.tensor(kinds["F32"][0])
    assert isinstance(norm, torch.Tensor) and norm.dtype == torch.float32


def test_unsupported_block_type_is_refused():
    raw = np.zeros((2, 22), np.uint8)
    with pytest.raises(ConfigError, match="Q5_0 is not supported"):
        blocks_to_weight(raw, "Q5_0")


def test_not_a_gguf_file(tmp_path):
    p = tmp_path / "x.gguf"
    p.write_bytes(b"not a gguf file at all")
    with pytest.raises(ConfigError, match="not a readable GGUF"):
        GGUFFile(p)
