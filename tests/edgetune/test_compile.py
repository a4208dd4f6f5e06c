"""The captured step's eager reference against plain autograd + torch.optim."""
import torch
import torch.nn.functional as F

from edgetune import AdamW, FullyTrainable, LoRA, compile_step, prepare
from edgetune.contract.names import param_input
from edgetune.models.tiny import TinyCausalLM, TinyClassifier


def test_eager_step_equals_autograd_and_torch_optim():
    c = compile_step(prepare(TinyClassifier(), [LoRA(r=4), FullyTrainable()]), AdamW(lr=5e-3), 4, 12)
    feeds = c.example_feeds(lr=5e-3)
    model = c.prepared.model
    params = [p for _, p in model.named_parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=5e-3, weight_decay=0.01)
    state = c.initial_state()
    for t in range(1, 6):
        batch = c.example_batch(seed=t)
        out = c.eager_step({**state, **batch, "lr": feeds["lr"], "step": torch.tensor(float(t))})
        opt.zero_grad()
        ref_loss = F.cross_entropy(model(batch["input_ids"], batch["attention_mask"]), batch["labels"])
        ref_loss.backward()
        opt.step()
        torch.testing.assert_close(out["loss"], ref_loss.detach(), rtol=1e-5, atol=1e-6)
        state = {t_.feeds: out[t_.name] for t_ in c.step_spec().outputs if t_.feeds}
        for n, p in model.named_parameters():
            if p.requires_grad:
                torch.testing.assert_close(state[param_input(n)], p.detach(), rtol=1e-5, atol=1e-6)


def test_causal_lm_step_lowers_loss_and_specs_have_no_labels():
    c = compile_step(prepare(TinyCausalLM(), [LoRA(r=2)]), AdamW(lr=1e-2, weight_decay=0.0), 2, 16)
    assert [t.name for t in c.batch_specs()] == ["input_ids", "attention_mask"]
    feeds = c.example_feeds(lr=1e-2)
    state, losses = c.initial_state(), []
    for t in range(1, 16):
        out = c.eager_step({**feeds, **state, "step": torch.tensor(float(t))})
        losses.append(float(out["loss"]))
        state = {s.feeds: out[s.name] for s in c.step_spec().outputs if s.feeds}
    assert losses[-1] < 0.9 * losses[0]


def test_step_spec_wires_every_state_output_to_its_input():
    c = compile_step(prepare(TinyClassifier(), [LoRA(r=2)]), AdamW(), 2, 8)
    spec = c.step_spec()
    state_in = [t.name for t in spec.inputs if t.role == "state"]
    assert [t.feeds for t in spec.outputs if t.role == "state"] == state_in
    assert len(state_in) == 3 * 8  # 8 LoRA tensors x (param, m, v)
    assert [t.name for t in spec.inputs if t.role == "hyper"] == ["lr", "step"]
