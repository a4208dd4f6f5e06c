"""Llama GGUF files read by edgetune against Hugging Face's GGUF loader (the reference)."""
import numpy as np
import torch
from transformers import LlamaForCausalLM as HFLlama

from edgetune.models.llama import from_gguf
from edgetune.quant import QuantEmbedding, QuantLinear
from helpers.gguf_files import smollm2_path, write_tiny_llama


def _batch(vocab, b=2, s=12):
    ids = torch.randint(0, vocab, (b, s), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0  # right padding
    return ids, mask


def _compare(ours, hf, vocab, atol):
    ids, mask = _batch(vocab)
    with torch.no_grad():
        a = ours(ids, mask)
        b = hf(input_ids=ids, attention_mask=mask).logits
    keep = mask.bool()
    np.testing.assert_allclose(a[keep].numpy(), b[keep].numpy(), atol=atol, rtol=1e-4)


def test_tiny_gguf_matches_hf_gguf_loader(tmp_path):
    """A GGUF with Q4_0/Q4_1/Q8_0 blocks and llama.cpp's q/k row permutation: edgetune keeps
    the blocks as integers and gives Hugging Face's (dequantizing) loader's logits."""
    path, _ = write_tiny_llama(tmp_path / "tiny.gguf")
    ours = from_gguf(path)
    kinds = {m.kind for m in ours.modules() if isinstance(m, QuantLinear)}
    assert kinds == {"gguf:Q4_0", "gguf:Q4_1", "gguf:Q8_0"}
    assert isinstance(ours.model.embed_tokens, QuantEmbedding)
    hf = HFLlama.from_pretrained(str(tmp_path), gguf_file="tiny.gguf", dtype=torch.float32,
                                 attn_implementation="eager").eval()
    _compare(ours, hf, 256, atol=1e-4)
    fp32 = from_gguf(path, keep_quantized=False)
    ids, mask = _batch(256)
    with torch.no_grad():
        torch.testing.assert_close(ours(ids, mask), fp32(ids, mask), rtol=0, atol=1e-5)


def test_smollm2_matches_hf():
    p = smollm2_path()
    ours = from_gguf(p)
    hf = HFLlama.from_pretrained(str(p.parent), gguf_file=p.name, dtype=torch.float32,
                                 attn_implementation="eager").eval()
    assert ours.config.num_layers == 30 and ours.config.tie_word_embeddings
    _compare(ours, hf, ours.config.vocab_size, atol=5e-4)  # logits of size ~30 after 30 layers
