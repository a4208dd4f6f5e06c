"""Forward-only training steps: MeZO, LOZO and LOZO-M, captured like the first-order step.

    step(param.*, [lozo.V.*], [lozo.N.*], batch..., noise.*, lr, eps, [resample]) -> (loss, next state...)

One step perturbs the trainable tensors, runs the loss twice (theta + eps Z and
theta - eps Z), and updates with c = (L+ - L-) / (2 eps); no backward pass exists in
the graph. Perturbations come in as ``noise.*`` inputs drawn by the host from
(seed, step) (`edgetune.contract.noise`, docs/artifact-contract.md), so the step is reproducible from (state, batch, seed).

MeZO: Z = z ~ N(0, I) per tensor; theta -= lr (c z + wd theta).
LOZO (2-D tensors X [m, n]): Z = U V^T with U [m, r] fresh each step and V [n, r]
state, replaced by a fresh draw when ``resample`` is 1 (every nu steps, decided by
the host); X -= lr (c U V^T + wd X). 1-D tensors (biases, scales) use MeZO's z.
LOZO-M keeps N [m, r]: N = beta N + (1 - beta) c U (on resampling, beta N V_old^T V_new / n
instead of beta N); X -= lr (N V^T + wd X). The 1/r factor is absorbed in lr.
Masked entries (LoRA-SP) are neither perturbed nor updated. The reported loss is (L+ + L-) / 2.
"""
from __future__ import annotations

import torch

from edgetune.contract import TensorSpec
from edgetune.contract.names import EPS, LR, RESAMPLE, lozo_n, lozo_v, noise_u, noise_v, noise_z, param_input
from edgetune.contract.noise import resample_due, zo_noise
from edgetune.step.compile import CompiledStep
from edgetune.step.optimizers import ZerothOrder

# eps is an input (default: the optimizer's). Checks against eager PyTorch feed this larger
# value: c = (L+ - L-) / 2eps turns a one-ulp difference in the loss between two
# implementations into a difference of ulp/2eps in every update, 500x at eps = 1e-3.
CHECK_EPS = 1e-2


class ZOStep(CompiledStep):
    """The forward-only counterpart of `CompiledStep`: same batch, inference program and capture.
    ``optimizer`` is a `ZerothOrder`."""

    optimizer: ZerothOrder

    def low_rank(self, name: str) -> bool:
        """LOZO perturbs 2-D tensors in a rank-r subspace; everything else gets MeZO's z."""
        return self.optimizer.method != "mezo" and self.prepared.trainable()[name].dim() == 2

    def state_specs(self) -> list[TensorSpec]:
        tr = self.prepared.trainable()
        r = self.optimizer.rank
        specs = [TensorSpec(param_input(n), tuple(tr[n].shape), "float32", "state") for n in self.names]
        specs += [TensorSpec(lozo_v(n), (tr[n].shape[1], r), "float32", "state") for n in self.names if self.low_rank(n)]
        if self.optimizer.method == "lozo_m":
            specs += [TensorSpec(lozo_n(n), (tr[n].shape[0], r), "float32", "state")
                      for n in self.names if self.low_rank(n)]
        return specs

    def noise_specs(self) -> list[TensorSpec]:
        tr = self.prepared.trainable()
        r, specs = self.optimizer.rank, []
        for n in self.names:
            if self.low_rank(n):
                specs += [TensorSpec(noise_u(n), (tr[n].shape[0], r), "float32", "noise"),
                          TensorSpec(noise_v(n), (tr[n].shape[1], r), "float32", "noise")]
            else:
                specs.append(TensorSpec(noise_z(n), tuple(tr[n].shape), "float32", "noise"))
        return specs

    def hyper_specs(self) -> list[TensorSpec]:
        specs = [TensorSpec(LR, (), "float32", "hyper"), TensorSpec(EPS, (), "float32", "hyper")]
        if any(self.low_rank(n) for n in self.names):
            specs.append(TensorSpec(RESAMPLE, (), "float32", "hyper"))
        return specs

    def step_spec(self):
        spec = super().step_spec()
        inputs = [t for t in spec.inputs if t.role != "hyper"] + self.noise_specs() + self.hyper_specs()
        return type(spec)(tuple(inputs), spec.outputs)

    def initial_state(self) -> dict[str, torch.Tensor]:
        state = super().initial_state()  # the parameters (a ZerothOrder has no optimizer slots)
        # V and N start at zero: the first step always resamples V (and N's history is empty).
        return state | {t.name: torch.zeros(t.shape) for t in self.state_specs() if t.name not in state}

    def example_feeds(self, lr: float | None = None, step: int = 1) -> dict[str, torch.Tensor]:
        feeds = {**self.initial_state(), **self.example_batch(),
                 LR: torch.tensor(lr if lr is not None else self.optimizer.lr, dtype=torch.float32),
                 EPS: torch.tensor(CHECK_EPS)}
        resample = resample_due(step, self.optimizer.nu)
        feeds.update({k: torch.from_numpy(v) for k, v in zo_noise(self.noise_specs(), 0, step, resample).items()})
        if any(t.name == RESAMPLE for t in self.hyper_specs()):
            feeds[RESAMPLE] = torch.tensor(float(resample))
        return feeds

    def flat_step(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        spec = self.step_spec()
        x = dict(zip([t.name for t in spec.inputs], args))
        opt = self.optimizer
        params = {n: x[param_input(n)] for n in self.names}
        batch = {t.name: x[t.name] for t in self.batch_specs()}
        lr, eps = x[LR], x[EPS]
        resample = x.get(RESAMPLE)
        z, v_new = {}, {}
        for n in self.names:
            if self.low_rank(n):
                v_new[n] = torch.where(resample > 0.5, x[noise_v(n)], x[lozo_v(n)])
                z[n] = x[noise_u(n)] @ v_new[n].t()
            else:
                z[n] = x[noise_z(n)]
            if n in self.masks:
                z[n] = torch.where(self.masks[n], z[n], torch.zeros_like(z[n]))
        loss_plus = self._loss({n: params[n] + eps * z[n] for n in self.names}, batch)
        loss_minus = self._loss({n: params[n] - eps * z[n] for n in self.names}, batch)
        c = (loss_plus - loss_minus) / (2 * eps)
        new = {}
        for n in self.names:
            p = params[n]
            if opt.method == "lozo_m" and self.low_rank(n):
                u, n_old, v_old = x[noise_u(n)], x[lozo_n(n)], x[lozo_v(n)]
                # On resampling, carry the momentum into the new V's coordinates.
                carried = torch.where(resample > 0.5, opt.beta * n_old @ (v_old.t() @ v_new[n]) / p.shape[1],
                                      opt.beta * n_old)
                new[lozo_n(n)] = carried + (1 - opt.beta) * c * u
                direction = new[lozo_n(n)] @ v_new[n].t()
            else:
                direction = c * z[n]
            updated = p - lr * (direction + opt.weight_decay * p)
            # Masked entries keep their value (the one place masks act on the update).
            new[param_input(n)] = torch.where(self.masks[n], updated, p) if n in self.masks else updated
            if self.low_rank(n):
                new[lozo_v(n)] = v_new[n]
        return ((loss_plus + loss_minus) / 2, *[new[t.feeds] for t in spec.outputs if t.feeds])
