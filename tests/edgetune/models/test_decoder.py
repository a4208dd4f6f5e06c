"""edgetune's decoder against transformers' own model of each architecture (the reference):
tiny random checkpoints built from each transformers config, loaded from their directory."""
import dataclasses

import pytest
import torch

from edgetune.models.decoder import DecoderForCausalLM
from edgetune.models.hf_checkpoint import load_decoder
from helpers.hf_tiny import DECODER_CONFIGS, hf_model, save_tiny


def _batch(vocab=128, b=2, s=12):
    ids = torch.randint(3, vocab, (b, s), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0  # right padding
    return ids, mask


def _logits(model, ids, mask):
    with torch.no_grad():
        return model(ids, mask)


@pytest.mark.parametrize("name", list(DECODER_CONFIGS))
def test_same_logits_as_transformers(tmp_path, name):
    d = save_tiny(name, tmp_path / name)
    ours, hf = load_decoder(d), hf_model(d)
    ids, mask = _batch()
    got = _logits(ours, ids, mask)
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask).logits
    keep = mask.bool()
    assert float(want[keep].abs().max()) > 0.3  # logits of order 1: the tolerance below means something
    torch.testing.assert_close(got[keep], want[keep], rtol=1e-4, atol=2e-6)
    # The switches this architecture relies on change the logits here: the test exercises them.
    c = ours.config
    for field, off in [("layer_types", []), ("rope_scaling", None), ("final_softcap", None), ("attn_softcap", None),
                       ("norm_offset", 0.0), ("embed_scale", False)]:
        if getattr(c, field) not in (off, None, False) and (field != "layer_types" or "sliding_attention" in c.layer_types):
            plain = DecoderForCausalLM(dataclasses.replace(c, **{field: off}))
            plain.load_state_dict(ours.state_dict())
            assert not torch.allclose(_logits(plain, ids, mask)[keep], got[keep], atol=1e-4), field


def test_tied_and_untied_heads(tmp_path):
    tied = load_decoder(save_tiny("qwen2", tmp_path / "tied"))
    untied = load_decoder(save_tiny("phi3", tmp_path / "untied"))
    assert tied.lm_head is None and tied.config.tie_word_embeddings
    assert untied.lm_head is not None and "lm_head.weight" in untied.state_dict()
