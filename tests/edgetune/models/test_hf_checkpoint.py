"""Reading Hugging Face checkpoint directories: what is refused, and how."""
import json

import pytest
import torch

from edgetune.errors import ConfigError
from edgetune.models.hf_checkpoint import DECODERS, ENCODERS, checkpoint_kind, load_decoder, tokenizer_path
from helpers.hf_tiny import save_tiny


def test_kinds_and_unsupported_architecture(tmp_path):
    assert checkpoint_kind(save_tiny("gemma", tmp_path / "g")) == "decoder"
    assert checkpoint_kind(save_tiny("electra", tmp_path / "e")) == "encoder"
    (tmp_path / "t5").mkdir()
    (tmp_path / "t5" / "config.json").write_text(json.dumps({"model_type": "t5"}))
    with pytest.raises(ConfigError, match="'t5' is not supported") as e:
        checkpoint_kind(tmp_path / "t5")
    assert all(k in str(e.value) for k in (*DECODERS, *ENCODERS))  # names what is supported
    (tmp_path / "t5" / "config.json").write_text("[1, 2")
    with pytest.raises(ConfigError, match="not a JSON object"):
        checkpoint_kind(tmp_path / "t5")


def test_missing_files_are_named(tmp_path):
    d = save_tiny("llama", tmp_path / "m")
    (d / "tokenizer.json").unlink()
    with pytest.raises(ConfigError, match="no tokenizer.json"):
        tokenizer_path(d)
    for f in d.glob("*.safetensors"):
        f.rename(f.with_suffix(".bin"))
    with pytest.raises(ConfigError, match="never pickled .bin"):
        load_decoder(d)


def test_sharded_checkpoint_loads_like_one_file(tmp_path):
    import transformers

    one = save_tiny("mistral", tmp_path / "one")
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(one))
    hf.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert len(list((tmp_path / "sharded").glob("*.safetensors"))) > 1
    a, b = load_decoder(one), load_decoder(tmp_path / "sharded")
    for k, v in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[k], v, rtol=0, atol=0)


def test_wrong_shapes_and_foreign_tensors_are_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    d = save_tiny("llama", tmp_path / "m")
    (f,) = d.glob("*.safetensors")
    tensors = load_file(f)
    tensors["model.norm.weight"] = torch.ones(7)
    save_file(tensors, f)
    with pytest.raises(ConfigError, match=r"model.norm.weight has shape \(7,\)"):
        load_decoder(d)
    tensors["model.norm.weight"] = torch.ones(64)
    tensors["vision_tower.proj.weight"] = torch.ones(2)
    save_file(tensors, f)
    with pytest.raises(ConfigError, match="vision_tower.proj.weight"):
        load_decoder(d)
    del tensors["vision_tower.proj.weight"], tensors["model.layers.1.mlp.up_proj.weight"]
    save_file(tensors, f)
    with pytest.raises(ConfigError, match="lack.*up_proj"):
        load_decoder(d)


def test_encoder_directory_is_not_a_decoder(tmp_path):
    with pytest.raises(ConfigError, match="encoder"):
        load_decoder(save_tiny("bert", tmp_path / "b"))
