import torch

from edgetune import AdamW, prepare
from edgetune.adapters import LoRASP
from edgetune.models.tiny import TinyClassifier
from helpers.adapter_steps import one_step


def test_masked_entries_never_change_also_not_through_adamw_weight_decay(batch):
    m = TinyClassifier()
    with torch.no_grad():
        ref = m(batch["input_ids"], batch["attention_mask"])
    p = prepare(m, [LoRASP(r=4, seed=3)])
    with torch.no_grad():
        assert torch.equal(p.model(batch["input_ids"], batch["attention_mask"]), ref)
    masks = p.update_masks()
    unmasked = sum(int(mk.sum()) for mk in masks.values())
    assert p.report.trainable_params == unmasked
    assert 0.4 < unmasked / sum(mk.numel() for mk in masks.values()) < 0.6
    before = {n: t.detach().clone() for n, t in p.trainable().items()}
    after = one_step(p, batch, AdamW(lr=1e-2, weight_decay=0.1), steps=3)
    for name, mask in masks.items():
        assert torch.equal(after[name][~mask], before[name][~mask]), name
    moved_b = [n for n in masks if n.endswith("lora_B") and (after[n][masks[n]] != 0).all()]
    assert len(moved_b) == len(masks) // 2  # every unmasked B entry trained


def test_masks_are_fixed_by_the_seed():
    a = prepare(TinyClassifier(), [LoRASP(r=4, seed=1)]).update_masks()
    b = prepare(TinyClassifier(), [LoRASP(r=4, seed=1)]).update_masks()
    c = prepare(TinyClassifier(), [LoRASP(r=4, seed=2)]).update_masks()
    assert all(torch.equal(a[k], b[k]) for k in a) and not all(torch.equal(a[k], c[k]) for k in a)
