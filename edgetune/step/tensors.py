"""The step of any module whose inputs are tensors (images, audio features, sensor windows).

    step(state..., <model inputs>..., <targets>..., hyper...) -> (loss, state'...)
    infer(params..., <model inputs>...) -> logits (the module's output)

The module is called positionally with the model inputs in order; the loss reads its output
and the targets: a named one (`LOSSES`: ``cross_entropy`` over class logits [B, C] and int64
labels [B]; ``mse`` against a float target of the output's shape) or any function
``loss(output, targets: dict) -> scalar`` written with traceable ops. Batch shapes come from
example tensors, their first dimension being the batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch.func import functional_call

from edgetune.contract import TensorSpec
from edgetune.contract.manifest import TENSORS
from edgetune.contract.names import HYPER_INPUTS, LOGITS, LOSS
from edgetune.errors import ConfigError
from edgetune.step.compile import _DTYPE_NAMES, CompiledStep
from edgetune.step.losses import classification_loss


def _mse(output: torch.Tensor, targets: dict) -> torch.Tensor:
    (target,) = targets.values()
    return ((output - target) ** 2).mean()


def _cross_entropy(output: torch.Tensor, targets: dict) -> torch.Tensor:
    (labels,) = targets.values()
    return classification_loss(output, labels)


LOSSES: dict[str, Callable] = {"cross_entropy": _cross_entropy, "mse": _mse}


def loss_function(loss: str | Callable) -> Callable:
    """A name of `LOSSES` or a function (output, targets) -> scalar -> the function."""
    if not isinstance(loss, str):
        return loss
    if loss not in LOSSES:
        raise ConfigError(f"loss {loss!r}: choose one of {sorted(LOSSES)} or pass a function (output, targets) -> scalar")
    return LOSSES[loss]


def _check_examples(kind: str, examples: dict[str, torch.Tensor]) -> None:
    for name, t in examples.items():
        if not isinstance(t, torch.Tensor) or t.dim() < 1:
            raise ConfigError(f"{kind} {name!r} must be a tensor with the batch as its first dimension")
        if t.dtype not in _DTYPE_NAMES:
            raise ConfigError(f"{kind} {name!r} has dtype {t.dtype}; the contract carries {list(_DTYPE_NAMES)}")
        # the contract's own names: dotted state and noise names (param., adamw.exp_avg., noise.z., ...),
        # hyper inputs and the programs' outputs
        if "." in name or name in (*HYPER_INPUTS, LOSS, LOGITS):
            raise ConfigError(f"{kind} name {name!r} is reserved by the artifact contract (dotted names, "
                              f"{', '.join((*HYPER_INPUTS, LOSS, LOGITS))}); rename it")


@dataclass
class TensorStep(CompiledStep):
    """`CompiledStep` for a module of tensor inputs. ``example_inputs``: the module's inputs
    in call order, name -> [B, ...]; ``example_targets``: what the loss reads, name -> [B, ...];
    ``loss``: a name of `LOSSES` or a function (output, targets) -> scalar."""

    example_inputs: dict[str, torch.Tensor] = field(default_factory=dict)
    example_targets: dict[str, torch.Tensor] = field(default_factory=dict)
    loss: str | Callable = "cross_entropy"

    def __post_init__(self):
        self.names = list(self.prepared.trainable())
        if not self.names and not self.inference_only:
            raise ConfigError("the prepared model has no trainable tensors")
        if not self.example_inputs:
            raise ConfigError("example_inputs is empty: give the module's inputs by name, e.g. {'x': images}")
        _check_examples("example input", self.example_inputs)
        _check_examples("example target", self.example_targets)
        if set(self.example_inputs) & set(self.example_targets):
            raise ConfigError(f"{sorted(set(self.example_inputs) & set(self.example_targets))} are both inputs and targets")
        self.loss_fn = loss_function(self.loss)
        if isinstance(self.loss, str) and len(self.example_targets) != 1:
            raise ConfigError(f"loss {self.loss!r} reads one target; example_targets has {sorted(self.example_targets)}")
        self.task = TENSORS
        self.seq_len = 0
        self.masks = self.prepared.update_masks()
        self.recompute = False

    # ---- specs ----------------------------------------------------------------------------
    def _specs(self, examples: dict[str, torch.Tensor]) -> list[TensorSpec]:
        return [TensorSpec(n, (self.batch_size, *t.shape[1:]), _DTYPE_NAMES[t.dtype], "batch")
                for n, t in examples.items()]

    def batch_specs(self) -> list[TensorSpec]:
        return self._specs({**self.example_inputs, **self.example_targets})

    def _infer_batch_specs(self) -> list[TensorSpec]:
        return self._specs(self.example_inputs)

    def _logits_shape(self):
        with torch.no_grad():
            batch = self.example_batch()
            out = self.prepared.model(*(batch[n] for n in self.example_inputs))
        if not isinstance(out, torch.Tensor):
            raise ConfigError(f"the module returns {type(out).__name__}; a tensors artifact needs one output tensor")
        return tuple(out.shape)

    # ---- values ---------------------------------------------------------------------------
    def example_batch(self, seed: int = 0) -> dict[str, torch.Tensor]:
        """Random values shaped and ranged like the examples, at this step's batch size."""
        g = torch.Generator().manual_seed(seed)
        out = {}
        for n, t in {**self.example_inputs, **self.example_targets}.items():
            shape = (self.batch_size, *t.shape[1:])
            if t.dtype.is_floating_point:
                out[n] = torch.randn(shape, generator=g) * t.float().std().clamp(min=1e-3) + t.float().mean()
            elif t.dtype == torch.bool:
                out[n] = torch.rand(shape, generator=g) < 0.5
            else:
                out[n] = torch.randint(int(t.min()), int(t.max()) + 1, shape, generator=g).to(t.dtype)
        return out

    def num_classes(self) -> int:
        return self._logits_shape()[-1]

    # ---- the step as a flat function ------------------------------------------------------
    def _loss(self, params: dict, batch: dict) -> torch.Tensor:
        out = functional_call(self.prepared.model, params, tuple(batch[n] for n in self.example_inputs), strict=False)
        return self.loss_fn(out, {n: batch[n] for n in self.example_targets})

    def flat_infer(self, *args: torch.Tensor) -> torch.Tensor:
        n = len(self.names)
        return functional_call(self.prepared.model, dict(zip(self.names, args[:n])), tuple(args[n:]), strict=False)


def batch_loss(model: torch.nn.Module, inputs: tuple[str, ...], loss: str | Callable, batch: dict) -> torch.Tensor:
    """A tensors model's loss on one batch (name -> tensor), as the step computes it."""
    out = model(*(batch[n] for n in inputs))
    return loss_function(loss)(out, {n: t for n, t in batch.items() if n not in inputs})
