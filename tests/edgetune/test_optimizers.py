"""The in-graph optimizers against torch.optim, over 5 steps with changing gradients."""
import pytest
import torch

from edgetune.step.optimizers import SGD, AdamW


@pytest.mark.parametrize("ours, ref", [
    (AdamW(lr=1e-2, weight_decay=0.1), lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1)),
    (SGD(lr=1e-2, momentum=0.9, weight_decay=0.01), lambda p: torch.optim.SGD(p, lr=1e-2, momentum=0.9, weight_decay=0.01)),
])
def test_optimizer_matches_torch_optim(ours, ref):
    g = torch.Generator().manual_seed(0)
    p0 = torch.randn(4, 6, generator=g)
    grads = [torch.randn(4, 6, generator=g) for _ in range(5)]
    grads[0][0] = 0.0  # an exactly-zero gradient at step 1 (LoRA's A at init)
    tp = torch.nn.Parameter(p0.clone())
    opt = ref([tp])
    p, slots = p0.clone(), tuple(torch.zeros(4, 6) for _ in ours.slots)
    for t, gr in enumerate(grads, 1):
        tp.grad = gr.clone()
        opt.step()
        p, slots = ours.update(p, gr, slots, torch.tensor(ours.lr), torch.tensor(float(t)))
        assert torch.isfinite(p).all()
        torch.testing.assert_close(p, tp.detach(), rtol=1e-5, atol=1e-6)  # torch uses lerp/foreach order
    state = opt.state[tp]
    if isinstance(ours, AdamW):
        torch.testing.assert_close(slots[0], state["exp_avg"], rtol=1e-6, atol=1e-8)
        torch.testing.assert_close(slots[1], state["exp_avg_sq"], rtol=1e-6, atol=1e-10)
    else:
        torch.testing.assert_close(slots[0], state["momentum_buffer"], rtol=1e-6, atol=1e-7)
