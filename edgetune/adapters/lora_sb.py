"""LoRA-SB: LoRA-XS's architecture, initialised from an approximation of the first full
fine-tuning step (Adam's first step is lr * sign(g)).

On the host, before training: G = sum of dL/dW0 over n calibration samples,
dW = -init_lr * sign(G), truncated SVD dW ~ U_r S_r V_r^T. Then frozen B = U_r
[d_out, r], frozen A = V_r^T [r, d_in], trainable R = diag(S_r) [r, r], s = 1.
W0 is unchanged, so at step 0 the effective weight is W0 + trunc_r(dW): deliberately
not a no-op. Trainable count r^2 per adapted matrix. ``init_lr`` plays the role of the
learning rate of the first warm-up step of full fine-tuning (the project's default).
Mathematics and the project's choices: docs/methods.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from edgetune.adapters.conv import LOW_RANK_MODULES, matrix_shape
from edgetune.adapters.lora_xs import CoreLinear, check_rank, truncated_svd
from edgetune.adapters.registry import ApplyContext, LinearAdapterConfig, Selection, register, replace_module
from edgetune.errors import ConfigError


def sign_update_factors(grad: torch.Tensor, r: int, init_lr: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """grad [d_out, d_in] -> (B [d_out, r], R [r, r], A [r, d_in]) with B R A = trunc_r(-init_lr * sign(grad))."""
    u, s, vh = truncated_svd(-init_lr * torch.sign(grad), r)
    return u, torch.diag(s), vh


@register
@dataclass(frozen=True)
class LoRASB(LinearAdapterConfig):
    """LoRA-SB on the ``nn.Linear`` layers or convolutions matched by ``targets``; needs calibration batches
    (``prepare(..., calibration=Calibration(...))``; recipes take ``n_samples`` of the user's data)."""

    targets: tuple[str, ...] = ("query", "value")
    r: int = 16
    init_lr: float = 1e-3
    n_samples: int = 64
    method = "lora_sb"
    needs_calibration = True
    module_types = LOW_RANK_MODULES

    def validate(self) -> None:
        if self.r < 1 or self.n_samples < 1 or not self.init_lr > 0:
            raise ConfigError(f"lora_sb: r={self.r} >= 1, n_samples={self.n_samples} >= 1 and init_lr={self.init_lr} > 0 "
                              "are required")

    def check(self, selection: Selection) -> None:
        for name, lin in selection.found:
            check_rank(self.method, self.r, lin, name)

    def apply(self, model: nn.Module, ctx: ApplyContext, selection: Selection) -> list[str]:
        found = selection.found
        if ctx.restoring:
            factors = [(torch.zeros(matrix_shape(m)[0], self.r), torch.zeros(self.r, self.r),
                        torch.zeros(self.r, matrix_shape(m)[1])) for _, m in found]
        else:
            # every layer's gradient comes from the base model before any layer is wrapped
            grads = ctx.calibration.summed_gradients(model, [m for _, m in found])
            factors = [sign_update_factors(g, self.r, self.init_lr) for g in grads]
        for (name, lin), (b, r0, a) in zip(found, factors):
            replace_module(model, name, CoreLinear(lin, b, r0, a, 1.0, self.method))
        return selection.names

    def values(self, linear: nn.Linear) -> int:
        return self.r * self.r
