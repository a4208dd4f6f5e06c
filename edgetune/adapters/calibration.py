"""Host-side gradients of the frozen base, for data-dependent initialisation (LoRA-SB)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from edgetune.adapters.conv import matrix_shape, weight_gradient
from edgetune.errors import ConfigError
from edgetune.step.losses import task_loss


@dataclass
class Calibration:
    """A few of the user's batches: dicts of input_ids [B,S], attention_mask [B,S] (int64)
    and, for classifiers, labels [B]; or, for a module of tensor inputs, its named inputs and
    targets with ``loss_of(model, batch) -> scalar`` (`edgetune.step.tensors.batch_loss`)."""

    batches: list[dict[str, torch.Tensor]]
    loss_of: Callable[[nn.Module, dict], torch.Tensor] | None = None

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], n_samples: int, batch_size: int = 16,
                    loss_of: Callable[[nn.Module, dict], torch.Tensor] | None = None) -> "Calibration":
        """The first ``n_samples`` rows of encoded data, in batches of ``batch_size``."""
        n = min(n_samples, len(next(iter(arrays.values()))))
        if n < 1:
            raise ConfigError("calibration needs at least one example")
        return cls([{k: torch.as_tensor(v[i:min(n, i + batch_size)]) for k, v in arrays.items()}
                    for i in range(0, n, batch_size)], loss_of)

    @property
    def n_samples(self) -> int:
        return sum(len(next(iter(b.values()))) for b in self.batches)

    def summed_gradients(self, model: nn.Module, linears: list[nn.Linear]) -> list[torch.Tensor]:
        """dL/dW [out, in] of each linear, summed over the batches (each batch's loss is a mean).

        Computed as dL/dY^T X from each layer's input X and output gradient dL/dY, so it
        works for frozen integer layers (`QuantLinear`) too, and no parameter's
        ``requires_grad`` changes.
        """
        total = [torch.zeros(*matrix_shape(m)) for m in linears]
        seen: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

        def keep(i):
            def hook(_mod, args, out):
                out = out if out.requires_grad else out.detach().requires_grad_(True)
                seen[i] = (args[0].detach(), out)
                return out
            return hook

        handles = [m.register_forward_hook(keep(i)) for i, m in enumerate(linears)]
        try:
            for batch in self.batches:
                seen.clear()
                with torch.enable_grad():
                    if self.loss_of is not None:
                        loss = self.loss_of(model, batch)
                    else:
                        loss = task_loss(model.task, model(batch["input_ids"], batch["attention_mask"]), batch)
                    outs = [seen[i][1] for i in range(len(linears))]
                    grads = torch.autograd.grad(loss, outs)
                for i, g in enumerate(grads):
                    total[i] += weight_gradient(linears[i], seen[i][0], g) * len(next(iter(batch.values())))
        finally:
            for h in handles:
                h.remove()
        return total
