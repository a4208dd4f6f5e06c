"""Forward-only steps against docs/methods.md's equations (MeZO, LOZO, LOZO-M), computed here
with plain forward calls of the model, and c against autograd's directional derivative."""
import pytest
import torch
from torch.func import functional_call

from edgetune import AdamW, FullyTrainable, LoRA, compile_step, prepare
from edgetune.adapters import LoRASP
from edgetune.contract.names import param_input
from edgetune.contract.noise import resample_due, zo_noise
from edgetune.models.tiny import TinyClassifier
from edgetune.step.losses import task_loss
from edgetune.step.optimizers import ZerothOrder

EPS, LR, WD = 1e-3, 1e-2, 0.1


def _step(method, adapters=None, nu=2, **kw):
    p = prepare(TinyClassifier(), adapters or [LoRA(r=4), FullyTrainable()])
    return compile_step(p, ZerothOrder(method=method, lr=LR, eps=EPS, rank=2, nu=nu, weight_decay=WD, **kw), 4, 12)


def _feeds(c, state, t, seed=0):
    due = resample_due(t, c.optimizer.nu)
    noise = {k: torch.from_numpy(v) for k, v in zo_noise(c.noise_specs(), seed, t, due).items()}
    hyper = {"lr": torch.tensor(LR), "eps": torch.tensor(EPS)}
    if any(h.name == "resample" for h in c.hyper_specs()):
        hyper["resample"] = torch.tensor(float(due))
    return {**state, **c.example_batch(seed=t), **noise, **hyper}, noise, due


def _loss(c, params, batch):
    logits = functional_call(c.prepared.model, params, (batch["input_ids"], batch["attention_mask"]), strict=False)
    return task_loss(c.task, logits, batch)


@pytest.mark.parametrize("method", ["mezo", "lozo", "lozo_m"])
def test_three_steps_follow_the_equations(method):
    c = _step(method)
    state = c.initial_state()
    mom = {n: torch.zeros(c.prepared.trainable()[n].shape[0], 2) for n in c.names}
    for t in (1, 2, 3):  # nu = 2: V is drawn on steps 1 and 3, kept on step 2
        feeds, noise, due = _feeds(c, state, t)
        out = c.eager_step(feeds)
        params = {n: state[param_input(n)] for n in c.names}
        z, v = {}, {}
        for n in c.names:
            if c.low_rank(n):
                v[n] = noise[f"noise.V.{n}"] if due else state[f"lozo.V.{n}"]
                z[n] = noise[f"noise.U.{n}"] @ v[n].T
            else:
                z[n] = noise[f"noise.z.{n}"]
        batch = c.example_batch(seed=t)
        with torch.no_grad():
            lp = _loss(c, {n: params[n] + EPS * z[n] for n in c.names}, batch)
            lm = _loss(c, {n: params[n] - EPS * z[n] for n in c.names}, batch)
        coef = (lp - lm) / (2 * EPS)
        torch.testing.assert_close(out["loss"], (lp + lm) / 2)
        for n in c.names:
            if method == "lozo_m" and c.low_rank(n):
                carried = mom[n] @ (state[f"lozo.V.{n}"].T @ v[n]) / params[n].shape[1] if due else mom[n]
                mom[n] = 0.9 * carried + 0.1 * coef * noise[f"noise.U.{n}"]
                want = params[n] - LR * (mom[n] @ v[n].T + WD * params[n])
                torch.testing.assert_close(out[f"next.lozo.N.{n}"], mom[n], rtol=1e-5, atol=1e-7)
            else:
                want = params[n] - LR * (coef * z[n] + WD * params[n])
            torch.testing.assert_close(out[f"next.{param_input(n)}"], want, rtol=1e-5, atol=1e-7)
            if c.low_rank(n):
                torch.testing.assert_close(out[f"next.lozo.V.{n}"], v[n])
        state = {s.feeds: out[s.name] for s in c.step_spec().outputs if s.feeds}


def test_lozo_moves_a_matrix_by_rank_r_and_c_is_the_directional_derivative():
    c = _step("lozo", nu=5)
    feeds, noise, _ = _feeds(c, c.initial_state(), 1)
    out = c.eager_step(feeds)
    name = next(n for n in c.names if c.low_rank(n) and n.endswith("lora_A"))
    p0 = feeds[param_input(name)]
    sv = torch.linalg.svdvals((out[f"next.{param_input(name)}"] - p0 * (1 - LR * WD)).double())
    assert sv[2] < 1e-4 * sv[0]  # rank 2 up to float32 rounding
    # c = (L+ - L-) / 2eps approximates <grad L, Z>; check against autograd's exact value.
    params = {n: feeds[param_input(n)].clone().requires_grad_(True) for n in c.names}
    batch = c.example_batch(seed=1)
    grads = torch.autograd.grad(_loss(c, params, batch), list(params.values()))
    z = {n: (noise[f"noise.U.{n}"] @ noise[f"noise.V.{n}"].T) if c.low_rank(n) else noise[f"noise.z.{n}"] for n in c.names}
    exact = sum((g * z[n]).sum() for g, n in zip(grads, c.names))
    dw = (out[f"next.{param_input(name)}"] - p0 * (1 - LR * WD)) / (-LR)
    coef = (dw / z[name]).flatten()[0]
    assert abs(float(coef - exact)) < 2e-2 * abs(float(exact)) + 1e-3


def test_masked_entries_are_neither_perturbed_nor_updated():
    c = _step("lozo", adapters=[LoRASP(r=4), FullyTrainable()])
    feeds, _, _ = _feeds(c, c.initial_state(), 1)
    out = c.eager_step(feeds)
    for name, mask in c.masks.items():  # frozen entries keep their value exactly, weight decay included
        key = param_input(name)
        assert torch.equal(out[f"next.{key}"][~mask], feeds[key][~mask]), name
        assert torch.count_nonzero(out[f"next.{key}"][mask] - feeds[key][mask]) == int(mask.sum()), name


def test_zo_step_has_no_backward_operators():
    """Captured without decompositions, a first-order step shows its backward kernels
    (softmax/layer-norm/GELU backward); the forward-only step has none."""
    from torch.fx.experimental.proxy_tensor import make_fx

    def ops(compiled):
        args = compiled.order(compiled.step_spec(), compiled.example_feeds())
        gm = make_fx(compiled.flat_step)(*args)
        return {str(n.target) for n in gm.graph.nodes if n.op == "call_function"}

    fo = compile_step(prepare(TinyClassifier(), [LoRA(r=4), FullyTrainable()]), AdamW(), 4, 12)
    assert any("backward" in o for o in ops(fo))
    for method in ("mezo", "lozo", "lozo_m"):
        assert not [o for o in ops(_step(method)) if "backward" in o], method
