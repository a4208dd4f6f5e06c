"""Losses written with ops every target runtime lowers (no scatter in the forward)."""
import torch


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy. logits [B, C] float, labels [B] int64 -> scalar.

    One-hot by comparison rather than scatter: Core ML cannot convert the
    scatter in nll_loss's backward.
    """
    onehot = (labels[:, None] == torch.arange(logits.shape[-1])).to(logits.dtype)
    return -(onehot * torch.log_softmax(logits, dim=-1)).sum(-1).mean()


def next_token_targets(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets of next-token prediction over all S positions (no slicing of the logits).

    -> (target [B, S] int64, valid [B, S] float): position t predicts token t+1 and counts
    when both are real tokens; the last position never counts (its target is 0).
    """
    pad = torch.zeros_like(input_ids[:, :1])
    target = torch.cat([input_ids[:, 1:], pad], dim=1)
    valid = (torch.cat([attention_mask[:, 1:], pad], dim=1) * attention_mask).to(torch.float32)
    return target, valid


def next_token_loss(logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over real (unpadded) targets.

    logits [B, S, V], input_ids [B, S], attention_mask [B, S] -> scalar.
    Written without slicing the logits or gathering from them: the backward of
    either fills a [B, S, V] zero tensor, which runtimes constant-fold into a
    permanent buffer the size of the logits.
    """
    target, valid = next_token_targets(input_ids, attention_mask)
    onehot = (target.unsqueeze(-1) == torch.arange(logits.shape[-1])).to(torch.float32)
    picked = (torch.log_softmax(logits, dim=-1) * onehot).sum(-1)
    return -(picked * valid).sum() / valid.sum().clamp(min=1.0)


def task_loss(task: str, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The training loss of a model's ``task`` on a batch (input_ids, attention_mask[, labels])."""
    if task == "sequence_classification":
        return classification_loss(logits, batch["labels"])
    return next_token_loss(logits, batch["input_ids"], batch["attention_mask"])
