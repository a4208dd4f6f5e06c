"""Adapter I/O: edgetune's own format for every method, PEFT's LoRA format for the LoRA
family (loaded by the `peft` package itself), and merging into the base weights."""
import json

import numpy as np
import pytest
import torch

from edgetune import EmbeddingRows, FullyTrainable, LoRA, prepare
from edgetune.adapters import (
    AdaptedModule,
    Calibration,
    EmbeddingDelta,
    Fastfood,
    Kronecker,
    LoRASB,
    LoRASP,
    LoRAXS,
    PiCa,
)
from edgetune.adapters.io import CONFIG, load_adapter, save_adapter
from edgetune.adapters.merge import merge
from edgetune.adapters.peft_export import save_peft
from edgetune.errors import ArtifactError, ConfigError
from edgetune.models.tiny import TinyClassifier


def _calibration():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 128, (6, 10), generator=g)
    return Calibration.from_arrays({"input_ids": ids.numpy(), "attention_mask": np.ones((6, 10), np.int64),
                                    "labels": np.array([0, 1, 2, 0, 1, 2])}, n_samples=6)


def lora_family():
    return [EmbeddingRows(list(range(1, 60))), LoRA(("up",), r=3), LoRAXS(("query",), r=4),
            LoRASB(("key",), r=4, init_lr=1e-2), LoRASP(("out",), r=4), PiCa(("value",), r=4), FullyTrainable()]


def other_methods():
    return [EmbeddingDelta(list(range(1, 60)), kind="fastfood", d_int=32), Kronecker(("up",), rank=2),
            Fastfood(("down",), d_int=48, share=True), PiCa(("value",), r=4, share=False), FullyTrainable()]


def _trained(adapters):
    """A prepared tiny model whose trainable tensors are random (as after training)."""
    p = prepare(TinyClassifier(), adapters, calibration=_calibration())
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for t in p.trainable().values():
            t.add_(torch.randn(t.shape, generator=g) * 0.1)
    return p


@pytest.mark.parametrize("adapters", [lora_family, other_methods])
def test_save_and_load_restore_every_method_exactly(adapters, batch, tmp_path):
    p = _trained(adapters())
    save_adapter(p, tmp_path, base={"name": "tiny"})
    restored = load_adapter(TinyClassifier(), tmp_path)
    assert restored.report.trainable_params == p.report.trainable_params
    with torch.no_grad():
        want = p.model(batch["input_ids"], batch["attention_mask"])
        assert torch.equal(restored.model(batch["input_ids"], batch["attention_mask"]), want)


def test_merge_gives_the_same_logits_with_plain_modules(batch):
    for adapters in (lora_family(), other_methods()):
        p = _trained(adapters)
        merged = merge(p)
        assert not any(isinstance(m, AdaptedModule) for m in merged.modules())
        assert not any(q.requires_grad for q in merged.parameters())
        with torch.no_grad():
            torch.testing.assert_close(merged(batch["input_ids"], batch["attention_mask"]),
                                       p.model(batch["input_ids"], batch["attention_mask"]), rtol=1e-5, atol=1e-5)
        assert any(t.requires_grad for t in p.trainable().values())  # the prepared model is left as it was


def test_peft_loads_the_lora_family_with_the_same_logits(batch, tmp_path):
    peft = pytest.importorskip("peft", reason="the PEFT check needs the test extra: pip install -e '.[test]'")
    p = _trained(lora_family())
    save_peft(p, tmp_path)
    cfg = json.loads((tmp_path / "adapter_config.json").read_text())
    assert cfg["trainable_token_indices"] == {"word_embeddings": list(range(1, 60))} and cfg["modules_to_save"] == ["head"]
    loaded = peft.PeftModel.from_pretrained(TinyClassifier(), str(tmp_path)).eval()
    with torch.no_grad():
        want = p.model(batch["input_ids"], batch["attention_mask"])
        got = loaded(batch["input_ids"], batch["attention_mask"])
        base = TinyClassifier()(batch["input_ids"], batch["attention_mask"])
    assert not torch.allclose(want, base, atol=1e-3)  # the adapters change the logits...
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)  # ...and PEFT reproduces them


def test_peft_refuses_methods_without_a_lora_form(tmp_path):
    with pytest.raises(ConfigError, match="no LoRA form"):
        save_peft(_trained([Kronecker(("up",))]), tmp_path)


def test_a_corrupt_or_foreign_adapter_is_refused(tmp_path):
    p = _trained([LoRA(r=2), FullyTrainable()])
    save_adapter(p, tmp_path)
    with pytest.raises(ArtifactError, match=r"lora_A is torch.float32\[2, 32\], the model expects"):
        load_adapter(TinyClassifier(d=16, heads=2), tmp_path)  # another base model
    (tmp_path / CONFIG).write_text("{not json")
    with pytest.raises(ArtifactError, match="not JSON"):
        load_adapter(TinyClassifier(), tmp_path)
