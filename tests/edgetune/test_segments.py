"""Gradients by segments with recomputation equal plain autograd's (the reference)."""
import pytest
import torch
from torch.func import functional_call, grad_and_value

from edgetune import EmbeddingRows, LoRA, PiCa, prepare
from edgetune.models.decoder import DecoderConfig, DecoderForCausalLM
from edgetune.step.losses import task_loss
from edgetune.step.segments import HEAD_LOGITS_BYTES, head_chunk, segmented_loss_and_grads

# Gemma-2/3-like switches: per-layer sliding windows with their own rotary base, norms around
# attention and MLP, q/k norms, soft-capped scores and logits, scaled embeddings
GEMMA_LIKE = dict(layer_types=["sliding_attention", "full_attention", "sliding_attention"], sliding_window=4,
                  local_rope_theta=100.0, sandwich_norms=True, qk_norm=True, norm_offset=1.0, embed_scale=True,
                  attn_softcap=5.0, final_softcap=3.0, activation="gelu_tanh")


@pytest.mark.parametrize("chunk, switches, block_rows", [(1, {}, 8192), (5, {}, 8192), (12, {}, 8192), (64, {}, 8192),
                                                       (5, GEMMA_LIKE, 8192), (12, {}, 24), (5, GEMMA_LIKE, 24),
                                                       (5, {"tie_word_embeddings": False}, 24)])
def test_segmented_gradients_match_autograd(chunk, switches, block_rows, monkeypatch):
    """block_rows 24: the tied head's 64 tokens in three ranges, so the loss streams over them
    (the adapted rows fall in all three); a separate lm_head's logits come whole."""
    import edgetune.models.decoder as decoder

    monkeypatch.setattr(decoder, "TABLE_BLOCK_ROWS", block_rows)
    torch.manual_seed(0)
    cfg = DecoderConfig(vocab_size=64, hidden_size=32, num_layers=3, num_heads=4, num_kv_heads=2, intermediate_size=64,
                        max_positions=16, **switches)
    # rows of a tied embedding (used by the first and the last segment), per-layer LoRA, and a
    # PiCa matrix shared by every layer (a tensor under no segment's prefix)
    p = prepare(DecoderForCausalLM(cfg), [EmbeddingRows(list(range(0, 64, 3)), target="embed_tokens"),
                                          LoRA(targets=("q_proj", "down_proj"), r=2), PiCa(targets=("v_proj",), r=2)])
    params = {n: t.detach() + 0.05 * torch.randn_like(t) for n, t in p.trainable().items()}
    ids = torch.randint(0, 64, (2, 12))
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    batch = {"input_ids": ids, "attention_mask": mask}
    blocks = p.model.vocab_blocks()
    assert blocks is None if "tie_word_embeddings" in switches else len(blocks) == -(-64 // block_rows)
    got, loss = segmented_loss_and_grads(p.model, params, batch, chunk=chunk)
    want, ref = grad_and_value(
        lambda pr: task_loss("causal_lm", functional_call(p.model, pr, (ids, mask), strict=False), batch))(params)
    torch.testing.assert_close(loss, ref, rtol=1e-6, atol=1e-6)
    assert set(got) == set(want) and any(n.startswith("pica_shared.") for n in got)
    for n in want:
        torch.testing.assert_close(got[n], want[n], rtol=1e-5, atol=1e-7, msg=n)
        assert float(want[n].abs().max()) > 0, n


@pytest.mark.parametrize("batch, seq, vocab, want", [(4, 128, 49152, 64), (1, 256, 151936, 64), (2, 12, 64, 12),
                                                     (1, 7, 10**8, 1), (3, 100, 5000, 100)])
def test_head_chunks_keep_the_logits_within_budget_in_few_chunks(batch, seq, vocab, want):
    chunk = head_chunk(batch, seq, vocab)
    n = -(-seq // chunk)
    assert chunk == want
    assert chunk == 1 or batch * chunk * vocab * 4 <= HEAD_LOGITS_BYTES
    # one chunk fewer would not fit the budget, and the chunks are spread evenly
    assert n == 1 or batch * -(-seq // (n - 1)) * vocab * 4 > HEAD_LOGITS_BYTES
    assert n * chunk - seq < n


def test_an_integer_index_made_to_wait_stays_exact_when_its_dependency_is_not_finite():
    """The head's targets wait for the chunk's logits through `_after`; they index a gather, so
    a NaN or infinite logit must not move them (the runner then refuses the step's loss)."""
    from edgetune.step.segments import _after

    idx = torch.tensor([[3, 7]])
    out = _after(idx, torch.tensor([float("nan"), 1.0]), torch.tensor([float("inf")]), torch.tensor([-float("inf")]))
    assert out.dtype == torch.int64 and torch.equal(out, idx)
