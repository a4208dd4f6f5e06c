"""One source per list: runtimes, quantization modes, methods, optimizers and plan defaults are
defined once; the CLI help, the runtimes' tables and the README agree with them."""
import re
from pathlib import Path

from click.testing import CliRunner

from device_harness.facts import RUNTIME_PACKAGES
from device_harness.runtimes import _CLASSES, RUNNERS
from edgetune.app.cli import CLS, LM, LOW_RANK_METHODS, main
from edgetune.contract import RUNTIMES
from edgetune.quant import QUANT_MODES
from edgetune.step.optimizers import ZO_METHODS

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_every_runtime_table_has_the_contracts_runtimes():
    # facts.py runs before numpy is known to exist on a device, so it keeps its own table
    assert set(RUNTIME_PACKAGES) == set(_CLASSES) == set(RUNNERS)
    # the Python runner runs every program format but Core ML (the Swift trainer's)
    assert set(RUNTIMES) - set(RUNNERS) == {"coreml"}


def test_readme_methods_table_lists_the_registered_low_rank_methods():
    table = README[README.index("| method | `--method` |"):]
    table = table[: table.index("\n\n")]
    listed = set(re.findall(r"^\| [^|]+ \| `([a-z_]+)` \|", table, flags=re.M))
    assert listed == set(LOW_RANK_METHODS)


def test_readme_names_every_quant_mode_and_zo_method():
    assert all(f"`{m}`" in README or f"--quant {m}" in README for m in QUANT_MODES), QUANT_MODES
    assert f"--zo {'|'.join(ZO_METHODS)}" in README


def test_export_help_is_built_from_the_lists_and_plan_defaults():
    text = " ".join(CliRunner().invoke(main, ["export", "--help"], terminal_width=400).output.split())
    for name in (*LOW_RANK_METHODS, *QUANT_MODES, *ZO_METHODS, *RUNTIMES):
        assert name in text, name
    assert f"[default: {CLS.embedding_rows} for classifiers, {LM.embedding_rows} for language models]" in text
    assert f"[default: {CLS.batch_size} for classifiers, {LM.batch_size} for language models]" in text
    assert f"[default: {CLS.adapter['method']} for classifiers, {LM.adapter['method']} for language models]" in text


def test_every_supported_architecture_is_tested_and_in_the_readme_table():
    from edgetune.models.hf_checkpoint import DECODERS, ENCODERS
    from helpers.hf_tiny import DECODER_CONFIGS, ENCODER_CONFIGS, hf_config

    supported = {*DECODERS, *ENCODERS}
    assert {hf_config(n).model_type for n in [*DECODER_CONFIGS, *ENCODER_CONFIGS]} == supported
    table = README[README.index("| architecture | kind |"):]
    table = table[: table.index("\n\n")]
    assert set(re.findall(r"^\| ([a-z0-9_.-]+) \| (?:de|en)coder \|", table, flags=re.M)) == supported
