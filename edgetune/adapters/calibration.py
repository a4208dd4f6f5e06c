"""Host-side gradients of the frozen base, for data-dependent initialisation (LoRA-SB)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from edgetune.errors import ConfigError
from edgetune.step.losses import task_loss


@dataclass
class Calibration:
    """A few of the user's batches: dicts of input_ids [B,S], attention_mask [B,S] (int64)
    and, for classifiers, labels [B]."""

    batches: list[dict[str, torch.Tensor]]

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], n_samples: int, batch_size: int = 16) -> "Calibration":
        """The first ``n_samples`` rows of encoded data, in batches of ``batch_size``."""
        n = min(n_samples, len(next(iter(arrays.values()))))
        if n < 1:
            raise ConfigError("calibration needs at least one example")
        return cls([{k: torch.as_tensor(v[i:i + batch_size]) for k, v in arrays.items()}
                    for i in range(0, n, batch_size)])

    @property
    def n_samples(self) -> int:
        return sum(len(b["input_ids"]) for b in self.batches)

    def summed_gradients(self, model: nn.Module, linears: list[nn.Linear]) -> list[torch.Tensor]:
        """dL/dW of each linear's weight, summed over the batches (each batch's loss is a mean).
        The model's parameters keep their ``requires_grad`` flags."""
        weights = [m.weight for m in linears]
        flags = [w.requires_grad for w in weights]
        total = [torch.zeros_like(w) for w in weights]
        try:
            for w in weights:
                w.requires_grad_(True)
            for batch in self.batches:
                logits = model(batch["input_ids"], batch["attention_mask"])
                grads = torch.autograd.grad(task_loss(model.task, logits, batch), weights)
                for t, g in zip(total, grads):
                    t += g * len(batch["input_ids"])
        finally:
            for w, f in zip(weights, flags):
                w.requires_grad_(f)
        return total
