"""Pieces shared by the model wrappers."""
import torch

# Large but finite: -inf would turn a fully masked row into NaN, and some runtimes
# constant-fold inf differently.
MASK_NEG = -1e9


def additive_mask(attention_mask: torch.Tensor, causal: bool = False, window: int | None = None) -> torch.Tensor:
    """[B, S] 0/1 mask -> [B, 1, S|1, S] float additive mask (0 keep, MASK_NEG drop). ``window``
    (causal only): query i sees keys i - window < j <= i, as Hugging Face's sliding windows."""
    keep = attention_mask[:, None, None, :].to(torch.float32)
    if causal:
        s = attention_mask.shape[1]
        allowed = torch.ones(s, s).tril()
        if window is not None and window < s:
            allowed = allowed * torch.ones(s, s).triu(-(window - 1))
        keep = keep * allowed[None, None]
    return (1.0 - keep) * MASK_NEG


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """[B, S, D] hidden, [B, S] mask -> [B, D] mean over kept positions (sentence-transformers pooling)."""
    m = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
