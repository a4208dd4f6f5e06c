"""Encoder classifiers from checkpoint directories against transformers' own models (the
reference): the checkpoint's head with its labels reordered, CLS and mean pooling, and the
last layer computed at position 0 alone giving the same logits."""
import json

import pytest
import torch

from edgetune.errors import ConfigError
from edgetune.models.encoder import implied_pooling, load_encoder_classifier
from edgetune.models.hf_checkpoint import read_config
from edgetune.models.minilm import minilm_path
from helpers.hf_tiny import ENCODER_CONFIGS, hf_model, save_tiny

LABELS = ["a", "b", "c"]
CHECKPOINT_ORDER = ["c", "a", "b"]  # the checkpoint's id2label; the data's order is sorted


def _batch():
    ids = torch.randint(4, 128, (3, 12), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    ids = ids * mask
    ids[:, 0] = 1  # [CLS]
    return ids, mask


@pytest.mark.parametrize("name", list(ENCODER_CONFIGS))
def test_checkpoint_head_matches_transformers(tmp_path, name):
    d = save_tiny(name, tmp_path / name, head_labels=CHECKPOINT_ORDER)
    ids, mask = _batch()
    with torch.no_grad():
        want = hf_model(d, classifier=True)(input_ids=ids, attention_mask=mask).logits
        want = want[:, [CHECKPOINT_ORDER.index(lab) for lab in LABELS]]
        full = load_encoder_classifier(d, LABELS, prune=False)
        pruned = load_encoder_classifier(d, LABELS)
        assert full.mode == pruned.mode == "head"
        assert float(want.abs().max()) > 0.1
        torch.testing.assert_close(full(ids, mask), want, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(pruned(ids, mask), want, rtol=1e-4, atol=1e-6)
    # DeBERTa-v2's relative attention is not pruned here; every other architecture is
    assert pruned.pruned == (name != "deberta-v2")
    assert [n for n, _ in full.named_parameters()] == [n for n, _ in pruned.named_parameters()]  # same names


@pytest.mark.parametrize("name", list(ENCODER_CONFIGS))
def test_cls_and_mean_pooling_match_transformers_states(tmp_path, name):
    import transformers

    d = save_tiny(name, tmp_path / name)
    ids, mask = _batch()
    base = transformers.AutoModel.from_pretrained(str(d), attn_implementation="eager").eval()
    with torch.no_grad():
        h = base(input_ids=ids, attention_mask=mask).last_hidden_state
        for pooling, pooled in [("cls", h[:, 0]), ("mean", (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True))]:
            ours = load_encoder_classifier(d, LABELS, pooling=pooling)
            assert ours.pruned == (pooling == "cls" and name != "deberta-v2")
            torch.testing.assert_close(ours(ids, mask), ours.head(pooled), rtol=1e-4, atol=1e-6)


def test_other_labels_get_a_new_head(tmp_path):
    d = save_tiny("roberta", tmp_path / "r", head_labels=CHECKPOINT_ORDER)
    model = load_encoder_classifier(d, ["neg", "pos"])
    ckpt = hf_model(d, classifier=True).classifier.out_proj.weight
    assert model.head.weight.shape == (2, 32) and not torch.allclose(model.head.weight, ckpt[:2])
    assert model.encoder.classifier.dense.weight.shape == (32, 32)  # the rest of the checkpoint's head is kept


def test_implied_pooling(tmp_path):
    assert implied_pooling(minilm_path(), read_config(minilm_path())) == "mean"  # sentence-transformers' Pooling
    with_head = save_tiny("bert", tmp_path / "h", head_labels=LABELS)
    assert implied_pooling(with_head, read_config(with_head)) == "head"
    plain = save_tiny("bert", tmp_path / "p")
    assert implied_pooling(plain, read_config(plain)) == "cls"
    with pytest.raises(ConfigError, match="no classification head"):
        load_encoder_classifier(plain, LABELS, pooling="head")
    (plain / "modules.json").write_text(json.dumps([{"type": "sentence_transformers.models.Pooling", "path": "1_P"}]))
    (plain / "1_P").mkdir()
    (plain / "1_P" / "config.json").write_text(json.dumps({"pooling_mode_max_tokens": True}))
    with pytest.raises(ConfigError, match="pooling .* is not supported"):
        implied_pooling(plain, read_config(plain))


def test_decoder_directory_is_not_a_classifier(tmp_path):
    with pytest.raises(ConfigError, match="decoder"):
        load_encoder_classifier(save_tiny("qwen3", tmp_path / "q"), LABELS)
