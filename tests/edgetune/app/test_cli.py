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


@pytest.mark.slow
def test_demo_accuracy_rises_on_both_runtimes(tmp_path):
    """`edgetune demo`, the README's first command, in a fresh process."""
    out = subprocess.run([sys.executable, "-m", "edgetune.app.cli", "demo", "--workdir", str(tmp_path / "d"),
                          "--steps", "12"], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
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
                         (["--peft"], ["adapter_model.safetensors", "adapter_config.json"])):
        out = tmp_path / ("peft" if extra else "adapter")
        r = CliRunner().invoke(main, ["save-adapter", str(art), str(out), "--state", str(state), *extra])
        assert r.exit_code == 0, r.output
        assert sorted(p.name for p in out.iterdir()) == sorted(files)
    r = CliRunner().invoke(main, ["merge", str(art), str(merged), "--state", str(state), "--format", "onnx"])
    assert r.exit_code == 0, r.output
    acc = [json.loads(CliRunner().invoke(main, ["eval", str(a), str(demo_data[1]), *s])
                      .stdout.strip().splitlines()[-1])["accuracy"] for a, s in ((art, ["--state", str(state)]), (merged, []))]
    assert acc[0] == acc[1]  # the merged program predicts what the trained adapters predict
    r = CliRunner().invoke(main, ["export", str(demo_data[0]), str(tmp_path / "x"), "--model", "tiny",
                                  "--method", "kronecker", "-r", "4", "--format", "onnx"])
    assert r.exit_code == 1 and "kronecker" in r.output and "Traceback" not in r.output


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
