"""One optimizer step through the compiled step, and the gradient it should project."""
import torch

from edgetune import SGD, compile_step
from edgetune.contract.names import param_input


def base_weight_grad(prepared, module_name: str, batch) -> torch.Tensor:
    """G = dL/dW at the module's current effective weight (W_eff = W0 + constant, so dL/dW0)."""
    from edgetune.step.losses import task_loss

    w = prepared.model.get_submodule(module_name).base.weight
    w.requires_grad_(True)
    try:
        logits = prepared.model(batch["input_ids"], batch["attention_mask"])
        (g,) = torch.autograd.grad(task_loss(prepared.model.task, logits, batch), [w])
    finally:
        w.requires_grad_(False)
    return g


def one_step(prepared, batch, optimizer=None, steps=1) -> dict[str, torch.Tensor]:
    """Run the compiled step eagerly on ``batch``; -> new parameter values by name."""
    c = compile_step(prepared, optimizer or SGD(lr=0.1), batch["input_ids"].shape[0], batch["input_ids"].shape[1])
    state = c.initial_state()
    for t in range(1, steps + 1):
        out = c.eager_step({**state, **batch, "lr": torch.tensor(c.optimizer.lr), "step": torch.tensor(float(t))})
        state = {s.feeds: out[s.name] for s in c.step_spec().outputs if s.feeds}
    return {n: state[param_input(n)] for n in c.names}
