"""The `edgetune` command as a user runs it."""
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from edgetune.app.cli import main


def test_export_train_eval_round_trip(demo_data, tmp_path):
    art = tmp_path / "art"
    r = CliRunner().invoke(main, ["export", str(demo_data[0]), str(art), "--model", "tiny", "--format", "onnx",
                                  "--batch-size", "4", "--seq-len", "16", "--lr", "1e-2"])
    assert r.exit_code == 0, r.output
    assert "lora" in r.output and (art / "step.onnx").is_file() and not (art / "step.pte").exists()
    r = CliRunner().invoke(main, ["train", str(art), str(demo_data[0]), "--steps", "3"])
    assert r.exit_code == 0, r.output
    steps = [json.loads(l)["step"] for l in r.stdout.splitlines() if l.startswith("{")]
    assert steps == [1, 2, 3]
    r = CliRunner().invoke(main, ["eval", str(art), str(demo_data[1])])
    assert r.exit_code == 0 and "accuracy" in json.loads(r.stdout.strip().splitlines()[-1])
    # Errors reach the user as one line naming the problem, not a traceback.
    r = CliRunner().invoke(main, ["train", str(art), str(demo_data[0]), "--runtime", "executorch"])
    assert r.exit_code == 1 and "no executorch" in r.output and "Traceback" not in r.output


def _foreign_lines(stderr: str, ours: tuple[str, ...]) -> list[str]:
    """Lines of stderr (progress bars redraw with \\r) that edgetune did not print."""
    return [l for l in stderr.replace("\r", "\n").splitlines() if l.strip() and not l.startswith(ours)]


def test_export_prints_only_its_own_lines(demo_data, tmp_path):
    """A fresh `edgetune export` process: the toolchain's warnings and log lines are filtered,
    and shown with --verbose (with the table of stages)."""
    def export(*flags: str, out: str):
        return subprocess.run([sys.executable, "-m", "edgetune.app.cli", *flags, "export", str(demo_data[0]),
                               str(tmp_path / out), "--model", "tiny", "--format", "onnx", "--batch-size", "4",
                               "--seq-len", "16", "--no-cache"], capture_output=True, text=True, timeout=900)

    quiet, verbose = export(out="a"), export("--verbose", out="b")
    assert quiet.returncode == verbose.returncode == 0, quiet.stderr[-3000:] + verbose.stderr[-3000:]
    assert _foreign_lines(quiet.stderr, ("export:",)) == []
    assert _foreign_lines(verbose.stderr, ("export:",)) != []  # the toolchain does speak; the filter hid it
    assert "written to" in quiet.stdout
    assert "lower onnx" in verbose.stdout and "lower onnx" not in quiet.stdout  # the stage table


@pytest.mark.slow
def test_demo_accuracy_rises_on_both_runtimes(tmp_path):
    """`edgetune demo`, the README's first command, in a fresh process."""
    out = subprocess.run([sys.executable, "-m", "edgetune.app.cli", "demo", "--workdir", str(tmp_path / "d"),
                          "--steps", "12"], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert _foreign_lines(out.stderr, ("export:", "train onnx:", "train executorch:")) == []
    rows = {l.split()[0]: l.split() for l in out.stdout.splitlines() if l.startswith(("onnx ", "executorch "))}
    assert set(rows) == {"onnx", "executorch"}, out.stdout
    for rt, cols in rows.items():
        before, after = float(cols[1].rstrip("%")), float(cols[2].rstrip("%"))
        assert after >= before + 30, f"{rt}: {before}% -> {after}%"


def test_method_choice_save_adapter_and_merge(demo_data, tmp_path):
    """A calibrated method (LoRA-SB) end to end: export, train, save (edgetune and PEFT), merge."""
    art, merged = tmp_path / "art", tmp_path / "merged"
    r = CliRunner().invoke(main, ["export", str(demo_data[0]), str(art), "--model", "tiny", "--format", "onnx",
                                  "--method", "lora_sb", "-r", "4", "--set", "n_samples=8", "--set", "init_lr=1e-2",
                                  "--embedding-rows", "32", "--batch-size", "4", "--seq-len", "16", "--lr", "1e-2"])
    assert r.exit_code == 0, r.output
    assert "lora_sb" in r.output and "embedding_rows" in r.output
    cfg = json.loads((art / "adapter_config.json").read_text())
    assert [a["method"] for a in cfg["adapters"]] == ["embedding_rows", "lora_sb", "full"]
    assert cfg["adapters"][1]["n_samples"] == 8 and cfg["adapters"][1]["r"] == 4
    state = tmp_path / "trained.safetensors"
    r = CliRunner().invoke(main, ["train", str(art), str(demo_data[0]), "--steps", "3", "--state", str(state),
                                  "--schedule", "linear"])
    assert r.exit_code == 0, r.output
    for extra, files in (([], ["adapter.safetensors", "adapter_config.json"]),
                         (["--peft"], ["adapter_model.safetensors", "adapter_config.json", "edgetune.json"])):
        out = tmp_path / ("peft" if extra else "adapter")
        r = CliRunner().invoke(main, ["save-adapter", str(art), str(out), "--state", str(state), *extra])
        assert r.exit_code == 0, r.output
        assert sorted(p.name for p in out.iterdir()) == sorted(files)
    r = CliRunner().invoke(main, ["merge", str(art), str(merged), "--state", str(state), "--format", "onnx"])
    assert r.exit_code == 0, r.output
    acc = [json.loads(CliRunner().invoke(main, ["eval", str(a), str(demo_data[1]), *s])
                      .stdout.strip().splitlines()[-1])["accuracy"] for a, s in ((art, ["--state", str(state)]), (merged, []))]
    assert acc[0] == acc[1]  # the merged program predicts what the trained adapters predict
    r = CliRunner().invoke(main, ["save-adapter", str(art), str(tmp_path / "k"), "--peft"])
    assert r.exit_code == 0, r.output  # LoRA-SB has a LoRA form; Kronecker's refusal is tested in adapters/test_io
    assert "carries the method's scales" in json.loads((tmp_path / "peft" / "edgetune.json").read_text())["note"]


@pytest.mark.parametrize("args, option, words", [
    (["--method", "fastfood", "-r", "8"], "--rank", "--set d_int=N"),
    (["--method", "kronecker", "-r", "4"], "--rank", "--set factor=N or --set rank=N"),
    (["--set", "rank=3"], "--set", "its options are alpha, r, targets"),
    (["-r", "0"], "--rank/--set", "r=0 must be >= 1"),
    (["--method", "lorra"], "--method", "choose one of"),
    (["--seed", "x"], "--seed", "is not a valid integer"),
])
def test_export_options_are_checked_before_any_work(demo_data, tmp_path, args, option, words):
    """A wrong option is one line naming it, before the model is loaded (nothing is written)."""
    out = tmp_path / "never"
    r = CliRunner().invoke(main, ["export", str(demo_data[0]), str(out), "--model", "tiny", *args])
    assert r.exit_code == 2 and option in r.output and words in r.output, r.output
    assert "Traceback" not in r.output and not out.exists()


def test_existing_output_and_missing_state_are_refused_up_front(tiny_artifact, demo_data, tmp_path):
    art = tiny_artifact[0]
    (tmp_path / "taken").mkdir()
    r = CliRunner().invoke(main, ["export", str(demo_data[0]), str(tmp_path / "taken"), "--model", "tiny"])
    assert r.exit_code == 2 and "--overwrite" in r.output and "overwrite=True" not in r.output, r.output
    # a mistyped --state is an error, never the untrained state evaluated with exit code 0
    r = CliRunner().invoke(main, ["eval", str(art), str(demo_data[1]), "--state", str(tmp_path / "typo.safetensors")])
    assert r.exit_code == 1 and "typo.safetensors does not exist" in r.output, r.output
    r = CliRunner().invoke(main, ["train", str(art), str(demo_data[0]), "--steps", "2", "--epochs", "1"])
    assert r.exit_code == 2 and "give one" in r.output


def test_epochs_derive_and_print_the_steps(tiny_artifact, demo_data, tmp_path):
    """--epochs 1.5 over the demo's examples at the artifact's batch: ceil(1.5 * ceil(n / batch))
    steps, said before training; the default schedule warms up and decays (first-order)."""
    from edgetune.contract.hyper import default_schedule
    from edgetune.data.records import read_examples

    art, manifest = tiny_artifact[0], tiny_artifact[1]
    n = len(read_examples(demo_data[0]))
    want = -(-3 * -(-n // manifest.batch_size) // 2)
    r = CliRunner().invoke(main, ["train", str(art), str(demo_data[0]), "--epochs", "1.5",
                                  "--state", str(tmp_path / "s.safetensors")])
    assert r.exit_code == 0, r.output
    assert f"{n} examples at batch {manifest.batch_size}: {want} steps" in r.stderr
    assert [json.loads(l)["step"] for l in r.stdout.splitlines() if l.startswith("{")] == list(range(1, want + 1))
    assert default_schedule(manifest.optimizer) == "linear" and default_schedule({"name": "zo"}) == "constant"


def test_eval_batch_size_runs_more_rows_per_call_with_the_same_numbers(demo_data, tmp_path):
    """--eval-batch-size 16: the inference program takes 16 rows (the step keeps 4) and
    evaluates the same state to the same loss as an artifact of the same plan without it."""
    args = ["--model", "tiny", "--format", "onnx", "--batch-size", "4", "--seq-len", "16", "--seed", "3"]
    for name, extra in (("plain", []), ("wide", ["--eval-batch-size", "16"])):
        r = CliRunner().invoke(main, ["export", str(demo_data[0]), str(tmp_path / name), *args, *extra])
        assert r.exit_code == 0, r.output
    manifest = json.loads((tmp_path / "wide" / "manifest.json").read_text())
    shapes = {p: next(t["shape"] for t in manifest["programs"][p]["inputs"] if t["name"] == "input_ids")
              for p in ("step", "infer")}
    assert shapes == {"step": [4, 16], "infer": [16, 16]}
    res = [json.loads(CliRunner().invoke(main, ["eval", str(tmp_path / n), str(demo_data[1])]).stdout.strip()
                      .splitlines()[-1]) for n in ("plain", "wide")]
    assert res[0]["examples"] == res[1]["examples"] == 20 and res[0]["accuracy"] == res[1]["accuracy"]
    assert abs(res[0]["loss"] - res[1]["loss"]) < 1e-5, res
    r = CliRunner().invoke(main, ["export", str(demo_data[0]), str(tmp_path / "x"), *args, "--eval-batch-size", "0"])
    assert r.exit_code == 2 and "--eval-batch-size" in r.output


def test_forward_only_export_trains_through_the_runner(demo_data, tmp_path):
    art = tmp_path / "zo"
    r = CliRunner().invoke(main, ["export", str(demo_data[0]), str(art), "--model", "tiny", "--format", "onnx",
                                  "--zo", "lozo", "--zo-nu", "2", "--lr", "1e-3", "--batch-size", "4", "--seq-len", "16"])
    assert r.exit_code == 0, r.output
    manifest = json.loads((art / "manifest.json").read_text())
    assert manifest["optimizer"]["method"] == "lozo"
    roles = {t["role"] for t in manifest["programs"]["step"]["inputs"]}
    assert "noise" in roles and not any(t["name"].startswith("adamw.") for t in manifest["programs"]["step"]["inputs"])
    r = CliRunner().invoke(main, ["train", str(art), str(demo_data[0]), "--steps", "3", "--seed", "1"])
    assert r.exit_code == 0, r.output
    assert [json.loads(l)["step"] for l in r.stdout.splitlines() if l.startswith("{")] == [1, 2, 3]


def test_quantized_classifier_export_train_and_save(demo_data, tmp_path):
    """--quant int4: integer weights in the artifact; the trained adapter restores on a base
    re-quantized the same way (save-adapter rebuilds it from the plan)."""
    import onnx

    art = tmp_path / "art"
    r = CliRunner().invoke(main, ["export", str(demo_data[0]), str(art), "--model", "tiny", "--format", "onnx",
                                  "--quant", "int4", "--batch-size", "4", "--seq-len", "16", "--lr", "1e-2"])
    assert r.exit_code == 0, r.output
    types = {t.data_type for t in onnx.load(str(art / "step.onnx")).graph.initializer}
    assert onnx.TensorProto.UINT4 in types
    state = tmp_path / "trained.safetensors"
    r = CliRunner().invoke(main, ["train", str(art), str(demo_data[0]), "--steps", "2", "--state", str(state)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["save-adapter", str(art), str(tmp_path / "ad"), "--state", str(state)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["export", str(demo_data[0]), str(tmp_path / "x"), "--model", "tiny",
                                  "--quant", "gguf"])
    assert r.exit_code == 2 and "GGUF" in r.output


def test_integer_and_padding_free_export_trains(demo_data, tmp_path):
    """--quant w8a8g8 --buckets 8: integer matmuls in every step program, and training runs
    the 8-token program for the short demo texts."""
    import onnx

    art = tmp_path / "art"
    r = CliRunner().invoke(main, ["export", str(demo_data[0]), str(art), "--model", "tiny", "--format", "onnx",
                                  "--quant", "w8a8g8", "--buckets", "8", "--batch-size", "4", "--seq-len", "16"])
    assert r.exit_code == 0, r.output
    manifest = json.loads((art / "manifest.json").read_text())
    assert manifest["seq_buckets"] == [8] and set(manifest["programs"]) == {"step", "step_s8", "infer"}
    assert "MatMulIntegerToFloat" in {n.op_type for n in onnx.load(str(art / "step_s8.onnx")).graph.node}
    r = CliRunner().invoke(main, ["train", str(art), str(demo_data[0]), "--steps", "3"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["export", str(demo_data[0]), str(tmp_path / "x"), "--model", "tiny",
                                  "--buckets", "8,a"])
    assert r.exit_code == 2 and "--buckets" in r.output


@pytest.mark.slow
def test_peft_adapter_loads_onto_the_plain_hugging_face_model(minilm_artifact, demo_data, tmp_path):
    """save-adapter --peft on a MiniLM artifact: `AutoModel.from_pretrained` of the base the
    adapter names + `PeftModel.from_pretrained` + the documented head reproduce the
    artifact's logits for the trained state; labels and LoRA's own alpha are kept."""
    import numpy as np
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModel

    from device_harness.runner import Trainer, encode_arrays, predict
    from edgetune.contract.manifest import load_manifest

    art = minilm_artifact[0]
    state = tmp_path / "trained.safetensors"
    tr = Trainer(art, "onnx", state)
    for _ in tr.train(demo_data[0], 3, lr=1e-2, save_every=0):
        pass
    out = tmp_path / "peft"
    r = CliRunner().invoke(main, ["save-adapter", str(art), str(out), "--state", str(state), "--peft"])
    assert r.exit_code == 0, r.output
    cfg = json.loads((out / "adapter_config.json").read_text())
    side = json.loads((out / "edgetune.json").read_text())
    manifest = load_manifest(art, verify=False)
    assert side["id2label"] == {str(i): name for i, name in enumerate(manifest.labels)}
    assert cfg["lora_alpha"] == 16.0 and cfg["r"] == 8  # the plan's LoRA alpha, B not pre-scaled
    assert cfg["target_modules"][0].startswith("encoder.layer.0.")  # BertModel's own names
    base = AutoModel.from_pretrained(cfg["base_model_name_or_path"], attn_implementation="eager")
    model = PeftModel.from_pretrained(base, str(out)).eval()
    head = load_file(out / side["head_file"])
    arrays = encode_arrays(art, manifest, demo_data[1])
    ids, mask = torch.from_numpy(arrays["input_ids"]), torch.from_numpy(arrays["attention_mask"])
    with torch.no_grad():
        h = model(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask[..., None].float()
        pooled = (h * m).sum(1) / m.sum(1)
        got = pooled @ head["head.weight"].T + head["head.bias"]
    want = predict(art, arrays, "onnx", state, manifest=manifest)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-4)
    untrained = predict(art, arrays, "onnx", None, manifest=manifest)
    assert np.abs(want - untrained).max() > 1e-3  # the trained state is what was reproduced


def test_hugging_face_directories_export_train_and_merge(tmp_path):
    """A decoder (int8 base) and an encoder checkpoint directory through export, train and merge;
    the merged encoder predicts what the trained adapters predict."""
    from helpers.hf_tiny import save_tiny, write_word_data

    csv_path, txt_path = write_word_data(tmp_path / "data")
    runs = {"qwen3": (txt_path, ["--seq-len", "16", "--batch-size", "2", "--quant", "int8"]),
            "electra": (csv_path, ["--seq-len", "12", "--batch-size", "4", "--pooling", "cls"])}
    for name, (data, flags) in runs.items():
        d, art = save_tiny(name, tmp_path / name), tmp_path / f"{name}-art"
        r = CliRunner().invoke(main, ["export", str(data), str(art), "--model", str(d), "--format", "onnx",
                                      "--rank", "4", "--embedding-rows", "8", *flags])
        assert r.exit_code == 0, r.output
        first = {"qwen3": "q_proj", "electra": "query"}[name]  # the architecture's attention projections
        assert f"{first}" in r.output and "lora" in r.output
        state = tmp_path / f"{name}.state"
        r = CliRunner().invoke(main, ["train", str(art), str(data), "--steps", "3", "--state", str(state)])
        assert r.exit_code == 0, r.output
        r = CliRunner().invoke(main, ["merge", str(art), str(tmp_path / f"{name}-merged"), "--state", str(state),
                                      "--format", "onnx"])
        if name == "qwen3":  # an int8 base keeps its adapters separate
            assert r.exit_code == 1 and "integer base" in r.output, r.output
        else:
            assert r.exit_code == 0, r.output
    acc = [json.loads(CliRunner().invoke(main, ["eval", str(a), str(csv_path), *s]).stdout.strip()
                      .splitlines()[-1])["accuracy"]
           for a, s in ((tmp_path / "electra-art", ["--state", str(tmp_path / "electra.state")]),
                        (tmp_path / "electra-merged", []))]
    assert acc[0] == acc[1]


@pytest.mark.parametrize("setup, args, option, words", [
    ("t5", [], "--model", "'t5' is not supported; edgetune takes decoders llama"),
    ("bert", ["--quant", "gguf"], "--quant", "gguf keeps a GGUF file's blocks"),
    (None, ["--pooling", "mean"], "--pooling", "encoder checkpoint directories"),
])
def test_checkpoint_directory_options_are_checked(demo_data, tmp_path, setup, args, option, words):
    from helpers.hf_tiny import save_tiny

    model = "tiny"
    if setup == "t5":
        (tmp_path / "t5").mkdir()
        (tmp_path / "t5" / "config.json").write_text('{"model_type": "t5"}')
        model = str(tmp_path / "t5")
    elif setup:
        model = str(save_tiny(setup, tmp_path / setup))
    r = CliRunner().invoke(main, ["export", str(demo_data[0]), str(tmp_path / "never"), "--model", model, *args])
    assert r.exit_code == 2 and option in r.output and words in r.output, r.output
    assert not (tmp_path / "never").exists()


def test_train_and_eval_a_tensors_artifact_from_an_npz(tensor_artifact, tmp_path):
    import numpy as np

    from helpers.tensor_models import image_batch

    x, y = image_batch(24, seed=5)
    data = tmp_path / "train.npz"
    np.savez(data, images=x["images"].numpy(), labels=y["labels"].numpy())
    r = CliRunner().invoke(main, ["train", str(tensor_artifact[0]), str(data), "--steps", "3",
                                  "--state", str(tmp_path / "s.safetensors")])
    assert r.exit_code == 0, r.output
    assert [json.loads(l)["step"] for l in r.stdout.splitlines() if l.startswith("{")] == [1, 2, 3]
    r = CliRunner().invoke(main, ["eval", str(tensor_artifact[0]), str(data), "--state", str(tmp_path / "s.safetensors")])
    assert r.exit_code == 0 and json.loads(r.stdout.strip().splitlines()[-1])["examples"] == 24, r.output
    np.savez(data, images=x["images"].numpy())  # the labels are missing: one line naming them
    r = CliRunner().invoke(main, ["train", str(tensor_artifact[0]), str(data), "--steps", "1"])
    assert r.exit_code == 1 and "lacks the arrays ['labels']" in r.output and "Traceback" not in r.output
