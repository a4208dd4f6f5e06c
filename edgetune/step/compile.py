"""Capture one whole training step (forward, backward, optimizer) as one aten graph.

    step(state..., batch..., hyper...) -> (loss, state'...)

The graph is traced with make_fx over torch.func.grad_and_value (on fake tensors), so backward
and the optimizer become ordinary ops; frozen weights become constants, lifted into the
program's signature (`edgetune.step.lift`). The same captured `ExportedProgram` is then
lowered by every exporter, and the very same Python function runs eagerly as the parity
reference.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch._decomp import core_aten_decompositions
from torch.func import functional_call, grad_and_value
from torch.fx.experimental.proxy_tensor import make_fx

from edgetune.contract import ProgramSpec, TensorSpec
from edgetune.contract.names import LABELS, LOGITS, LOSS, LR, STEP, next_name, param_input, slot_input
from edgetune.errors import BatchError, ConfigError
from edgetune.prepared import PreparedModel
from edgetune.step.conv_backward import DECOMPOSITIONS as CONV_BACKWARD
from edgetune.step.lift import exported_program, mutates
from edgetune.step.losses import task_loss
from edgetune.step.segments import segmented_loss_and_grads

_DTYPE_NAMES = {torch.float32: "float32", torch.int64: "int64", torch.int32: "int32", torch.bool: "bool"}


class _Flat(torch.nn.Module):
    """Positional-argument wrapper so torch.export sees a plain function of tensors."""

    def __init__(self, gm: torch.nn.Module):
        super().__init__()
        self.gm = gm

    def forward(self, *args):
        return self.gm(*args)


@dataclass
class CompiledStep:
    """The step and inference programs of a prepared model at a fixed batch shape."""

    prepared: PreparedModel
    optimizer: object
    batch_size: int
    seq_len: int
    inference_only: bool = False  # no step program: weights are constants (a merged model)
    names: list[str] = field(init=False)  # trainable parameter names, in state order

    def __post_init__(self):
        self.names = list(self.prepared.trainable())
        if not self.names and not self.inference_only:
            raise ConfigError("the prepared model has no trainable tensors")
        if self.batch_size < 1 or self.seq_len < 2:
            raise ConfigError(f"batch_size={self.batch_size} must be >= 1 and seq_len={self.seq_len} >= 2")
        self.task = self.prepared.model.task
        self.masks = self.prepared.update_masks()
        # Deep causal LMs recompute activations segment by segment (edgetune.step.segments).
        self.recompute = self.task == "causal_lm" and hasattr(self.prepared.model, "segments")

    # ---- specs --------------------------------------------------------------------------
    def state_specs(self) -> list[TensorSpec]:
        tr = self.prepared.trainable()
        specs = [TensorSpec(param_input(n), tuple(tr[n].shape), "float32", "state") for n in self.names]
        for slot in self.optimizer.slots if self.optimizer else ():
            specs += [TensorSpec(slot_input(self.optimizer.name, slot, n), tuple(tr[n].shape), "float32", "state")
                      for n in self.names]
        return specs

    def batch_specs(self) -> list[TensorSpec]:
        b, s = self.batch_size, self.seq_len
        specs = [TensorSpec("input_ids", (b, s), "int64", "batch"), TensorSpec("attention_mask", (b, s), "int64", "batch")]
        if self.task == "sequence_classification":
            specs.append(TensorSpec("labels", (b,), "int64", "batch"))
        return specs

    def hyper_specs(self) -> list[TensorSpec]:
        specs = [TensorSpec(LR, (), "float32", "hyper")]
        if self.optimizer.uses_step:
            specs.append(TensorSpec(STEP, (), "float32", "hyper"))
        return specs

    def step_spec(self) -> ProgramSpec:
        state = self.state_specs()
        outs = [TensorSpec(LOSS, (), "float32", "metric")]
        outs += [TensorSpec(next_name(t.name), t.shape, t.dtype, "state", feeds=t.name) for t in state]
        return ProgramSpec(tuple(state + self.batch_specs() + self.hyper_specs()), tuple(outs))

    def _infer_batch_specs(self) -> list[TensorSpec]:
        """The inference program's batch inputs: the model's (the step's, less what only the loss reads)."""
        return [t for t in self.batch_specs() if t.name != LABELS]

    def infer_spec(self) -> ProgramSpec:
        params = self.state_specs()[: len(self.names)]
        batch = self._infer_batch_specs()
        out_shape = self._logits_shape()
        return ProgramSpec(tuple(params + batch), (TensorSpec(LOGITS, out_shape, "float32", "metric"),))

    def _logits_shape(self):
        with torch.no_grad():
            ex = self.example_batch()
            return tuple(self.prepared.model(ex["input_ids"], ex["attention_mask"]).shape)

    # ---- values -------------------------------------------------------------------------
    def initial_state(self) -> dict[str, torch.Tensor]:
        tr = self.prepared.trainable()
        state = {param_input(n): tr[n].detach().clone().contiguous() for n in self.names}
        for slot in self.optimizer.slots if self.optimizer else ():
            state.update({slot_input(self.optimizer.name, slot, n): torch.zeros_like(tr[n]) for n in self.names})
        return state

    def example_batch(self, seed: int = 0) -> dict[str, torch.Tensor]:
        """A random batch of the program's shape, with some padding (used to trace and to self-check)."""
        g = torch.Generator().manual_seed(seed)
        b, s = self.batch_size, self.seq_len
        vocab = self._vocab_size()
        ids = torch.randint(1, vocab, (b, s), generator=g)
        lengths = torch.randint(max(2, s // 2), s + 1, (b,), generator=g)
        mask = (torch.arange(s)[None] < lengths[:, None]).to(torch.int64)
        batch = {"input_ids": ids * mask, "attention_mask": mask}
        if self.task == "sequence_classification":
            batch["labels"] = torch.randint(0, self.num_classes(), (b,), generator=g)
        return batch

    def _vocab_size(self) -> int:
        for m in self.prepared.model.modules():
            if isinstance(m, torch.nn.Embedding):
                return m.num_embeddings
        raise ConfigError("the model has no nn.Embedding; edgetune's text path needs token ids")

    def num_classes(self) -> int:
        for name, m in self.prepared.model.named_modules():
            if name == "head" and isinstance(m, torch.nn.Linear):
                return m.out_features
        raise ConfigError("a sequence classifier needs a Linear `head` module")

    # ---- the step as a flat function --------------------------------------------------
    def _loss(self, params: dict, batch: dict) -> torch.Tensor:
        model = self.prepared.model
        logits = functional_call(model, params, (batch["input_ids"], batch["attention_mask"]), strict=False)
        return task_loss(self.task, logits, batch)

    def flat_step(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Positional inputs in `step_spec().inputs` order -> outputs in `step_spec().outputs` order."""
        n, k = len(self.names), len(self.optimizer.slots)
        params = dict(zip(self.names, args[:n]))
        slots = [args[n * (1 + i): n * (2 + i)] for i in range(k)]
        rest = args[n * (1 + k):]
        batch = dict(zip([t.name for t in self.batch_specs()], rest))
        hyper = dict(zip([t.name for t in self.hyper_specs()], rest[len(batch):]))
        lr = hyper["lr"]
        step = hyper.get("step", torch.ones(()))
        if self.recompute:
            grads, loss = segmented_loss_and_grads(self.prepared.model, params, batch)
        else:
            grads, loss = grad_and_value(self._loss)(params, batch)
        new_p, new_slots = [], [[] for _ in range(k)]
        for j, name in enumerate(self.names):
            old = [slots[i][j] for i in range(k)]
            g = grads[name]
            mask = self.masks.get(name)
            if mask is not None:
                g = torch.where(mask, g, torch.zeros_like(g))
            p, s = self.optimizer.update(params[name], g, old, lr, step)
            if mask is not None:  # frozen entries keep value and optimizer state, weight decay included
                p = torch.where(mask, p, params[name])
                s = [torch.where(mask, a, b) for a, b in zip(s, old)]
            new_p.append(p)
            for i in range(k):
                new_slots[i].append(s[i])
        return (loss, *new_p, *[t for s in new_slots for t in s])

    def flat_infer(self, *args: torch.Tensor) -> torch.Tensor:
        n = len(self.names)
        params = dict(zip(self.names, args[:n]))
        return functional_call(self.prepared.model, params, (args[n], args[n + 1]), strict=False)

    # ---- eager reference ----------------------------------------------------------------
    def order(self, spec: ProgramSpec, values: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        missing = [t.name for t in spec.inputs if t.name not in values]
        if missing:
            raise BatchError(f"missing inputs {missing[:5]}")
        return [values[t.name] for t in spec.inputs]

    def eager_step(self, feeds: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Run the step eagerly: named inputs -> named outputs (the parity reference)."""
        spec = self.step_spec()
        with torch.no_grad():
            outs = self.flat_step(*self.order(spec, feeds))
        return {t.name: o for t, o in zip(spec.outputs, outs)}

    def eager_infer(self, feeds: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            return self.flat_infer(*self.order(self.infer_spec(), feeds))

    # ---- capture ------------------------------------------------------------------------
    def example_feeds(self, lr: float | None = None, step: int = 1) -> dict[str, torch.Tensor]:
        feeds = {**self.initial_state(), **self.example_batch()}
        if self.inference_only:
            return feeds
        feeds["lr"] = torch.tensor(lr if lr is not None else self.optimizer.lr, dtype=torch.float32)
        if self.optimizer.uses_step:
            feeds["step"] = torch.tensor(float(step))
        return feeds

    def capture(self, program: str = "step") -> torch.export.ExportedProgram:
        """Trace ``program`` ('step' or 'infer') into an ExportedProgram of core aten ops."""
        fn, spec = (self.flat_step, self.step_spec()) if program == "step" else (self.flat_infer, self.infer_spec())
        args = self.order(spec, self.example_feeds())
        table = {**core_aten_decompositions(), **CONV_BACKWARD}  # a convolution's backward as convolutions
        # Fake tensors: nothing is computed while tracing. (Real-mode tracing ran the whole step
        # and made a fresh fake mode per node for its metadata: 2.3x the time and 5x the memory
        # on MiniLM.) The frozen weights, real tensors the step reads, stay the model's own as constants.
        gm = make_fx(fn, decomposition_table=table, tracing_mode="fake", _allow_non_fake_inputs=True)(*args)
        if mutates(gm):  # functionalized by torch.export's re-trace
            return torch.export.export(_Flat(gm), tuple(args), strict=False)
        return exported_program(gm, tuple(args))
