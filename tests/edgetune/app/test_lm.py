"""Next-token personalization end to end on a tiny Llama GGUF (SmolLM2's tokenizer, integer
blocks): export through both runtimes, train through the runner, perplexity, generation,
and the trained adapter back in Hugging Face PEFT."""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from device_harness.runner import Trainer, evaluate
from edgetune.app.cli import main
from edgetune.app.lm import generate
from edgetune.data.text import TextEncoder


@pytest.mark.parametrize("runtime", ["onnx", "executorch"])
def test_training_lowers_held_out_perplexity(tiny_lm, runtime):
    d, _, train, held, manifest, _ = tiny_lm
    assert manifest.task == "causal_lm" and manifest.model["quant"] == "gguf"
    state = d / f"trained.{runtime}.safetensors"
    before = evaluate(d / "art", held, runtime)  # the initial state
    assert before["tokens"] > 0 and np.isfinite(before["perplexity"])
    recs = list(Trainer(d / "art", runtime, state).train(train, 12))
    after = evaluate(d / "art", held, runtime, state)
    assert after["perplexity"] < 0.9 * before["perplexity"], (before, after, [r.loss for r in recs])


def test_generation_is_greedy_decoding_of_the_trained_model(tiny_lm):
    d, _, _, _, manifest, compiled = tiny_lm
    text = generate(d / "art", "call Maya about", 6, "onnx")
    enc = TextEncoder(d / "art" / "tokenizer.json", manifest.seq_len)
    ids = enc.tokens("call Maya about")
    model = compiled.prepared.model  # the untrained (initial) state, as the artifact's state.safetensors
    with torch.no_grad():
        for _ in range(6):
            x = torch.tensor([ids])
            ids.append(int(model(x, torch.ones_like(x))[0, -1].argmax()))
    assert text == enc.tok.decode(ids[-6:])


def test_peft_reproduces_the_trained_lm(tiny_lm, tmp_path):
    """save-adapter --peft on a GGUF-based artifact: Hugging Face's GGUF loader + PEFT give
    the logits of edgetune's trained model (embedding rows as PEFT trainable tokens)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from edgetune.app.restore import restore_prepared

    d, gguf, train, _, _, _ = tiny_lm
    state = d / "trained.onnx.safetensors"
    if not state.exists():
        list(Trainer(d / "art", "onnx", state).train(train, 3))
    r = CliRunner().invoke(main, ["save-adapter", str(d / "art"), str(tmp_path / "peft"), "--state", str(state),
                                  "--peft"])
    assert r.exit_code == 0, r.output
    prepared, _ = restore_prepared(d / "art", state)
    base = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32,
                                                attn_implementation="eager")
    peft_model = PeftModel.from_pretrained(base, str(tmp_path / "peft")).eval()
    ids = torch.tensor([TextEncoder(d / "art" / "tokenizer.json", 16).tokens("pay the gym bill tomorrow")])
    with torch.no_grad():
        want = prepared.model(ids, torch.ones_like(ids))
        got = peft_model(input_ids=ids).logits
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=2e-4, rtol=1e-4)


def test_cli_llm_demo_and_quantized_export(tiny_lm, tmp_path):
    d, gguf, train, _, _, _ = tiny_lm
    r = CliRunner().invoke(main, ["demo", "--llm", "--model", str(gguf), "--steps", "4",
                                  "--workdir", str(tmp_path / "demo")])
    assert r.exit_code == 0, r.output
    row = [l.split() for l in r.output.splitlines() if l.startswith("onnx ")][0]
    assert float(row[1]) > 0 and float(row[2]) > 0 and "before:" in r.output and "after:" in r.output
    # edgetune's own int8 base instead of the file's blocks, from the export command
    r = CliRunner().invoke(main, ["export", str(train), str(tmp_path / "q8"), "--model", str(gguf), "--quant", "int8",
                                  "--method", "lora", "-r", "2", "--targets", "q_proj", "--embedding-rows", "0",
                                  "--batch-size", "2", "--seq-len", "16"])
    assert r.exit_code == 0, r.output
    manifest = json.loads((tmp_path / "q8" / "manifest.json").read_text())
    assert manifest["model"]["quant"] == "int8" and manifest["task"] == "causal_lm"
