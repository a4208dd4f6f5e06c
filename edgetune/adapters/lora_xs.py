"""LoRA-XS: y = W0 x + s * B R A x with only R in R^{r x r} trainable.

B = U_r [d_out, r] and A = S_r V_r^T [r, d_in] come from the truncated SVD of W0
and are frozen; R ~ N(0, sigma^2) with sigma = 1e-5 (the project's reading of
"N(0, 1e-5)": a near no-op at initialisation); s = alpha / r. Trainable count r^2
per adapted matrix. `LoRASB` reuses the module with a different initialisation.
Mathematics and the project's choices: docs/methods.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from edgetune.adapters.conv import LOW_RANK_MODULES, check_layer, down, matrix_shape, mix, weight_matrix
from edgetune.adapters.registry import AdaptedModule, ApplyContext, LinearAdapterConfig, Selection, register, replace_module
from edgetune.errors import ConfigError

R_INIT_STD = 1e-5


class CoreLinear(AdaptedModule):
    """Frozen ``nn.Linear`` (or convolution) + s * B R A with frozen B [d_out, r], A [r, d_in],
    trainable R [r, r]. Input [..., d_in] -> output [..., d_out] (a convolution's: channels);
    the r-wide intermediates are never expanded."""

    def __init__(self, base: nn.Linear, B: torch.Tensor, R: torch.Tensor, A: torch.Tensor, scale: float, method: str):
        super().__init__()
        self.base = base
        self.method = method
        self.scale = scale
        self.register_buffer("core_B", B.contiguous())
        self.register_buffer("core_A", A.contiguous())
        self.core_R = nn.Parameter(R.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = mix(self.base, down(self.base, x, self.core_A), self.core_R)
        return self.base(x) + mix(self.base, h, self.core_B) * self.scale

    def lora_factors(self):
        return self.core_B @ self.core_R * self.scale, self.core_A


def truncated_svd(w: torch.Tensor, r: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """w [m, n] -> U_r [m, r], S_r [r], Vh_r [r, n], in float64 for stable singular vectors."""
    u, s, vh = torch.linalg.svd(w.detach().double(), full_matrices=False)
    return u[:, :r].float(), s[:r].float(), vh[:r].float()


def check_rank(method: str, r: int, layer: nn.Module, name: str) -> None:
    check_layer(method, layer, name)
    d_out, d_in = matrix_shape(layer)
    if not 1 <= r <= min(d_in, d_out):
        raise ConfigError(f"{method}: r={r} must lie in [1, {min(d_in, d_out)}] for {name} ({d_out}x{d_in})")


@register
@dataclass(frozen=True)
class LoRAXS(LinearAdapterConfig):
    """LoRA-XS on the ``nn.Linear`` layers or convolutions matched by ``targets``; r^2 trainable values each."""

    targets: tuple[str, ...] = ("query", "value")
    r: int = 16
    alpha: float = 16.0
    seed: int = 0
    method = "lora_xs"
    module_types = LOW_RANK_MODULES

    def validate(self) -> None:
        if self.r < 1:
            raise ConfigError(f"lora_xs: r={self.r} must be >= 1")

    def check(self, selection: Selection) -> None:
        for name, lin in selection.found:
            check_rank(self.method, self.r, lin, name)

    def apply(self, model: nn.Module, ctx: ApplyContext, selection: Selection) -> list[str]:
        g = torch.Generator().manual_seed(self.seed)  # R's draws run over the layers in order
        for name, lin in selection.found:
            if ctx.restoring:
                d_out, d_in = matrix_shape(lin)
                b, a = torch.zeros(d_out, self.r), torch.zeros(self.r, d_in)
            else:
                u, s, vh = truncated_svd(weight_matrix(lin), self.r)
                b, a = u, s[:, None] * vh
            r0 = torch.randn(self.r, self.r, generator=g) * R_INIT_STD
            replace_module(model, name, CoreLinear(lin, b, r0, a, self.alpha / self.r, self.method))
        return selection.names

    def values(self, linear: nn.Linear) -> int:
        return self.r * self.r
