"""`edgetune` command line: demo, export, train, eval, fleet."""
from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import click

from device_harness.runner import DEFAULT_STEPS
from device_harness.runtimes import RUNNERS
from edgetune.adapters import ADAPTERS, LinearAdapterConfig
from edgetune.app.classifier import HEAD_INITS, MODELS, ClassifierPlan
from edgetune.app.common import adapter_config
from edgetune.app.fleet_cli import fleet
from edgetune.app.lm import LMPlan
from edgetune.contract import RUNTIMES
from edgetune.contract.hyper import SCHEDULES
from edgetune.contract.lines import step_records
from edgetune.contract.schema import MAX_BATCH
from edgetune.errors import EdgetuneError
from edgetune.models.encoder import POOLINGS
from edgetune.models.hf_checkpoint import checkpoint_kind, is_checkpoint_dir
from edgetune.quant import QUANT_MODES
from edgetune.step.optimizers import OPTIMIZERS, ZO_METHODS, ZerothOrder

# Every list and default below comes from where it is defined; nothing is restated here.
FORMATS = tuple(RUNTIMES)  # what export writes; the Python runner trains RUNNERS
THREADS_HELP = "threads of the runtime: ONNX Runtime's intra-op pool, ExecuTorch's XNNPACK pool [default: all cores]"
QUANTS = ("none", *QUANT_MODES, "gguf")
LOW_RANK_METHODS = tuple(m for m, c in ADAPTERS.items() if issubclass(c, LinearAdapterConfig))
FIRST_ORDER = tuple(n for n in OPTIMIZERS if n != ZerothOrder.name)
CLS, LM, ZO = ClassifierPlan(), LMPlan(), ZerothOrder()
NO_CACHE = click.option("--no-cache", "no_cache", is_flag=True,
                        help="export afresh even when the export cache holds this plan (EDGETUNE_CACHE_DIR, default "
                             "~/.cache/edgetune/exports)")
# loggers whose warnings are the toolchain's, not the user's: exporter registration, torchao's
# optional CUDA kernels, torch's pytree deprecations
TOOLCHAIN_LOGGERS = ("torch.onnx", "torch._export", "torch.export", "executorch", "torchao", "torch.utils._pytree",
                     "coremltools")


def _fail(e: EdgetuneError):
    raise click.ClickException(f"{type(e).__name__}: {e}")


def _bar(**kw):
    from tqdm.auto import tqdm

    return tqdm(file=sys.stderr, dynamic_ncols=True, **kw)


def _verbose() -> bool:
    """`edgetune --verbose ...`: the toolchain's own warnings and log lines are shown."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().params.get("verbose"))


def _quiet_toolchain():
    """Silence toolchain chatter (exporter registration warnings, weight-loading bars) unless --verbose."""
    import logging
    import warnings

    if _verbose():
        return
    warnings.filterwarnings("ignore")
    # the named loggers, and their children already created with levels of their own
    for name in [*TOOLCHAIN_LOGGERS, *logging.root.manager.loggerDict]:
        if name.startswith(TOOLCHAIN_LOGGERS):
            logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def _export_with_bar(plan, train_csv, out, formats, overwrite, cache=True):
    from edgetune.app.classifier import export_classifier

    programs = 2 + len(plan.seq_buckets)  # step (and its shorter buckets), infer; + the check
    return _with_export_bar(lambda progress, log: export_classifier(plan, train_csv, out, formats, overwrite, progress,
                                                                    cache=cache, log=log),
                            stages=programs * len(formats) + 1)


def _with_export_bar(export, stages: int):
    """Run ``export(progress, log)`` under a bar that advances on each lowering and check; with
    --verbose, print the table of each stage's seconds and peak RSS (also in export_cost.json)."""
    import importlib

    from exporters.stages import StageLog

    importlib.import_module("torch.onnx")  # its loggers exist, with their own levels, once imported
    _quiet_toolchain()
    log = StageLog()
    with _bar(total=stages, desc="export", unit="stage") as bar:
        def progress(msg):
            bar.set_postfix_str(msg[:60])
            if msg.startswith(("lowering", "checking")):  # the stages counted in ``stages``
                bar.update(1)

        result = export(progress, log)
        bar.update(bar.total - bar.n)
    if _verbose():
        click.echo(log.table() if log.rows else "export: copied from the export cache (--no-cache exports afresh)")
    return result


def _report(manifest, compiled) -> str:
    """What the plan trains: from the compiled step, or from the manifest of a cached export."""
    from edgetune.prepared import PrepareReport

    return str(compiled.prepared.report if compiled is not None else PrepareReport.from_dict(manifest.adapters))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edgetune")
@click.option("--verbose", is_flag=True, help="show the toolchain's own warnings and log lines (filtered by default)")
def main(verbose):
    """On-device fine-tuning: export a training step for ExecuTorch / ONNX Runtime and train it there."""


@main.command()
@click.option("--workdir", type=click.Path(file_okay=False), default="edgetune-demo", show_default=True,
              help="where the data, the artifact and the trained state go")
@click.option("--steps", type=int, default=30, show_default=True, help="training steps per runtime")
@click.option("--runtime", "runtimes", type=click.Choice(RUNNERS), multiple=True, default=None,
              help="runtimes to train through (repeatable; default: both, or onnx with --llm)")
@click.option("--threads", type=int, default=None, help=THREADS_HELP)
@click.option("--llm", is_flag=True, help="SmolLM2-135M (frozen 4-bit GGUF base) learns the person's writing instead")
@click.option("--model", default="smollm2", show_default=True,
              help="with --llm: smollm2, a Llama .gguf file or a Hugging Face decoder checkpoint directory")
@click.option("--text", type=click.Path(exists=True, dir_okay=False), default=None,
              help="with --llm: your own .txt to learn (90% trains, the last 10% is held out)")
@click.option("--web", is_flag=True, help="train in a web page instead: serve the demo page on 127.0.0.1 (Ctrl-C stops it)")
@click.option("--port", type=int, default=8000, show_default=True, help="with --web: the port (0: any free one)")
@NO_CACHE
def demo(workdir, steps, runtimes, threads, llm, model, text, web, port, no_cache):
    """MiniLM-L6 learns one person's note folders, on each runtime.

    Writes a small personalization data set, prepares MiniLM-L6 (LoRA r=8 on query/value,
    the user's token rows, a new head), exports the training step to each runtime,
    trains through the runtime alone, and prints held-out accuracy before and after.

    With --llm: SmolLM2-135M-Instruct, kept as the GGUF file's 4-bit blocks, learns the
    same person's notes as running text (LoRA-SB on q/k/v/o + their token rows); prints
    held-out perplexity and a generated continuation before and after.

    With --web: the same classifier trains in a web page (web_demo, onnxruntime-web), served
    with its notes on 127.0.0.1 until Ctrl-C.
    """
    _quiet_toolchain()
    wd = Path(workdir)
    runtimes = runtimes or (("onnx",) if llm else RUNNERS)
    try:
        if web:
            _demo_web(wd, port, not no_cache)
        elif llm:
            _demo_llm(wd, steps, runtimes, threads, model, text, not no_cache)
        else:
            _demo_classifier(wd, steps, runtimes, threads, not no_cache)
    except EdgetuneError as e:
        _fail(e)


def _demo_classifier(wd: Path, steps, runtimes, threads, cache: bool):
    from device_harness.runner import evaluate
    from edgetune.data.demo import write_demo_data

    train_csv, test_csv = write_demo_data(wd / "data")
    art = wd / "artifact"
    click.echo(f"data: {train_csv} ({sum(1 for _ in open(train_csv)) - 1} examples), held out: {test_csv}")
    manifest, compiled = _export_with_bar(ClassifierPlan(), train_csv, art, runtimes, overwrite=True, cache=cache)
    click.echo(_report(manifest, compiled))
    rows = []
    for rt in runtimes:
        state = wd / f"trained.{rt}.safetensors"
        state.unlink(missing_ok=True)
        before = evaluate(art, test_csv, rt, None, threads)["accuracy"]  # the initial state
        recs = _train_subprocess(art, train_csv, rt, steps, state, threads)
        after = evaluate(art, test_csv, rt, state, threads)["accuracy"]
        rows.append((rt, f"{before:.1%}", f"{after:.1%}", *_run_stats(art, manifest, rt, recs)))
    _print_demo_table(("acc before", "acc after"), rows)
    click.echo(f"\n({steps} steps of batch {manifest.batch_size} x {manifest.seq_len} tokens per runtime; "
               f"trained state in {wd}/trained.<runtime>.safetensors)")


def _demo_web(wd: Path, port: int, cache: bool):
    import time

    from edgetune.app.web import serve, web_bundle, write_notes
    from edgetune.data.demo import write_demo_data

    bundle = web_bundle(progress=click.echo)
    train_csv, test_csv = write_demo_data(wd / "data")
    notes = write_notes(train_csv, test_csv, wd / "data" / "notes.json")
    art = wd / "web-artifact"
    _export_with_bar(ClassifierPlan(), train_csv, art, ("onnx",), overwrite=True, cache=cache)
    with serve({"web": bundle, "artifact": art, "data": notes.parent}, port) as base:
        click.echo(f"open {base}web/index.html  (the page trains {art.name} on your notes; Ctrl-C stops the server)")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            click.echo("stopped")


def _demo_llm(wd: Path, steps, runtimes, threads, model, text, cache: bool):
    from device_harness.runner import evaluate
    from edgetune.app.lm import export_lm, generate
    from edgetune.data.demo import write_demo_text
    from edgetune.data.text import read_text, split_text

    data = wd / "data"
    if text:
        data.mkdir(parents=True, exist_ok=True)
        train, held = split_text(read_text(text), 0.1)
        (data / "train.txt").write_text(train, encoding="utf-8")
        (data / "held_out.txt").write_text(held, encoding="utf-8")
        train_txt, held_txt = data / "train.txt", data / "held_out.txt"
    else:
        train_txt, held_txt = write_demo_text(data)
    click.echo(f"text: {train_txt} ({train_txt.stat().st_size:,} bytes), held out: {held_txt}")
    art = wd / "llm-artifact"
    plan = LMPlan(model=model)
    manifest, compiled = _with_export_bar(
        lambda progress, log: export_lm(plan, train_txt, art, runtimes, overwrite=True, progress=progress,
                                        cache=cache, log=log),
        stages=2 * len(runtimes) + 1)
    click.echo(_report(manifest, compiled))
    prompt = " ".join(held_txt.read_text(encoding="utf-8").split("\n")[0].split()[:3])
    rows, samples = [], []
    for rt in runtimes:
        state = wd / f"llm-trained.{rt}.safetensors"
        state.unlink(missing_ok=True)
        before = evaluate(art, held_txt, rt, None, threads)["perplexity"]  # the initial state
        gen_before = generate(art, prompt, 16, rt)
        recs = _train_subprocess(art, train_txt, rt, steps, state, threads)
        after = evaluate(art, held_txt, rt, state, threads)["perplexity"]
        samples.append((rt, gen_before, generate(art, prompt, 16, rt, state)))
        rows.append((rt, f"{before:.5g}", f"{after:.5g}", *_run_stats(art, manifest, rt, recs)))
    _print_demo_table(("ppl before", "ppl after"), rows)
    for rt, b, a in samples:
        click.echo(f"\n{rt}: {prompt!r} continues\n  before: {b!r}\n  after:  {a!r}")
    click.echo(f"\n(frozen base: {plan.quant} ({manifest.model.get('base', 'fp32')}); "
               f"{steps} steps of batch {manifest.batch_size} x {manifest.seq_len} tokens per runtime)")


def _run_stats(art: Path, manifest, rt: str, recs: list[dict]) -> tuple:
    files = sorted({f for p in ("step", "infer") for f in manifest.programs[p].data_files(rt)}) + ["state.safetensors"]
    return (recs[-1]["loss"], statistics.median(r["ms"] for r in recs[1:] or recs),
            max(r["peak_rss_mb"] for r in recs), sum((art / f).stat().st_size for f in files) / 2**20)


def _print_demo_table(metric_names: tuple[str, str], rows: list[tuple]):
    click.echo(f"\n{'runtime':<12}{metric_names[0]:>11} {metric_names[1]:>11}{'last loss':>11}{'ms/step':>10}"
               f"{'peak RSS MB':>13}{'artifact MB':>13}")
    for rt, b, a, loss, ms, rss, mb in rows:
        click.echo(f"{rt:<12}{b:>11} {a:>11}{loss:>11.4f}{ms:>10.1f}{rss:>13.0f}{mb:>13.1f}")


def _train_subprocess(art, data, runtime, steps, state, threads) -> list[dict]:
    """Train through the device runner in its own process (only the runtime loaded), so the
    memory it reports is that of a device-side process."""
    cmd = [sys.executable, "-m", "device_harness.runner", "train", str(art), str(data), "--runtime", runtime,
           "--steps", str(steps), "--state", str(state)] + (["--threads", str(threads)] if threads else [])
    recs = []
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as p, \
            _bar(total=steps, desc=f"train {runtime}", unit="step") as bar:
        for line in p.stdout:
            for rec in step_records([line]):  # the start/end events are not steps
                recs.append(rec)
                bar.set_postfix(loss=f"{rec['loss']:.4f}", ms=f"{rec['ms']:.0f}")
                bar.update(1)
        err = p.stderr.read()
    if p.returncode != 0 or not recs:
        raise click.ClickException(f"the {runtime} runner failed (exit {p.returncode}): {err.strip()[-2000:]}")
    return recs


def _adapter_option(method: str, rank: int | None, targets: str | None, sets: tuple[str, ...]) -> dict | None:
    """CLI options -> an adapter config dict (no targets: the model's defaults); values of --set
    are read as JSON where they parse."""
    if method == "none":
        return None
    cls = ADAPTERS.get(method)
    if cls is None:
        raise click.BadParameter(f"{method!r}: choose one of {', '.join(LOW_RANK_METHODS)} or none", param_hint="--method")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    cfg = {"method": method}
    if targets:
        cfg["targets"] = [t.strip() for t in targets.split(",") if t.strip()]
    if rank is not None:
        if "r" not in fields:
            sizes = [n for n, f in fields.items() if f.type in (int, "int") and n != "seed"]
            raise click.BadParameter(f"{method} has no rank r; its size is set with "
                                     f"{' or '.join(f'--set {n}=N' for n in sizes)}", param_hint="--rank")
        cfg["r"] = rank
    for kv in sets:
        key, sep, value = kv.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{kv!r} is not KEY=VALUE", param_hint="--set")
        if key not in fields:
            raise click.BadParameter(f"{method} has no option {key!r}; its options are {', '.join(sorted(fields))}",
                                     param_hint="--set")
        try:
            cfg[key] = json.loads(value)
        except json.JSONDecodeError:
            cfg[key] = value
    try:
        adapter_config(cfg, seed=0)  # the config checks its own values (a rank of 0, a bad fraction)
    except EdgetuneError as e:
        raise click.BadParameter(str(e), param_hint="--rank/--set") from None
    return cfg


@main.command()
@click.argument("train_data", type=click.Path(exists=True, dir_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--model", default=CLS.model, show_default=True,
              help="minilm, tiny or a Hugging Face encoder directory (text classifiers: TRAIN_DATA is text,label "
                   "CSV/JSONL), or smollm2, a Llama .gguf file or a Hugging Face decoder directory (next-token: "
                   "TRAIN_DATA is running .txt); a directory holds config.json, *.safetensors and tokenizer.json")
@click.option("--pooling", type=click.Choice(POOLINGS), default=None,
              help="encoder directories: mean, cls, or head (the checkpoint's own classification head) "
                   "[default: what the checkpoint implies]")
@click.option("--prune/--no-prune", default=True, show_default=True,
              help="with cls/head pooling, compute the last layer at position 0 only (same logits, less work)")
@click.option("--quant", type=click.Choice(QUANTS), default=None,
              help="frozen base: none (fp32), " + ", ".join(f"{k} ({v})" for k, v in QUANT_MODES.items())
                   + f"; gguf keeps a GGUF file's own blocks [default: {LM.quant} for GGUF language models, else "
                   "none]")
@click.option("--format", "formats", type=click.Choice(FORMATS), multiple=True, default=None,
              help="runtimes (repeatable; coreml: Core ML packages for the Swift trainer, checked on macOS) "
                   "[default: onnx and executorch for classifiers, onnx for language models]")
@click.option("--method", default=None,
              help=f"trainable factors: {', '.join(LOW_RANK_METHODS)} (none: head/rows only) "
                   f"[default: {CLS.adapter['method']} for classifiers, {LM.adapter['method']} for language models]")
@click.option("--rank", "-r", type=int, default=None, help="rank r of the method (default: the method's)")
@click.option("--targets", default=None,
              help="comma-separated module name suffixes, or re:REGEX [default: the model's attention projections: "
                   "query and value for classifiers, all four (or Phi-3's qkv_proj, o_proj) for language models]")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="another field of the method's config, e.g. --set alpha=32 --set share=false (repeatable)")
@click.option("--embedding-rows", type=int, default=None,
              help="train the rows of the N most frequent tokens of TRAIN_DATA (0: none) "
                   f"[default: {CLS.embedding_rows} for classifiers, {LM.embedding_rows} for language models]")
@click.option("--head/--no-head", default=True, show_default=True, help="train the classification head")
@click.option("--head-init", type=click.Choice(HEAD_INITS), default=CLS.head_init, show_default=True,
              help="centroids: start the head as a nearest-class-mean classifier of TRAIN_DATA (few-shot, --zo)")
@click.option("--optimizer", type=click.Choice(FIRST_ORDER), default=CLS.optimizer["name"], show_default=True)
@click.option("--zo", type=click.Choice(ZO_METHODS), default=None,
              help="export a forward-only step (no backward pass: runs wherever inference runs) instead")
@click.option("--zo-eps", type=float, default=ZO.eps, show_default=True, help="perturbation size of --zo")
@click.option("--zo-rank", type=int, default=ZO.rank, show_default=True, help="LOZO's perturbation rank")
@click.option("--zo-nu", type=int, default=ZO.nu, show_default=True, help="LOZO resamples V every NU steps")
@click.option("--lr", type=float, default=CLS.optimizer["lr"], show_default=True,
              help="default learning rate stored in the artifact")
@click.option("--weight-decay", type=float, default=CLS.optimizer["weight_decay"], show_default=True)
@click.option("--batch-size", type=int, default=None,
              help=f"[default: {CLS.batch_size} for classifiers, {LM.batch_size} for language models]")
@click.option("--seq-len", type=int, default=None,
              help=f"[default: {CLS.seq_len} for classifiers, {LM.seq_len} for language models]")
@click.option("--buckets", default="",
              help="classifiers: shorter sequence lengths, comma-separated (e.g. 16,24), exported as extra step "
                   "programs; training then groups texts by length and runs each batch at the shortest that holds it")
@click.option("--eval-batch-size", type=click.IntRange(1, MAX_BATCH), default=None,
              help="classifiers: rows per call of the inference program that `eval` runs (a larger batch "
                   "evaluates faster; the step keeps --batch-size) [default: --batch-size]")
@click.option("--seed", type=int, default=CLS.seed, show_default=True,
              help="seed of the initial trainable weights (new head, LoRA's A, random projections)")
@click.option("--overwrite", is_flag=True, help="replace OUT if it exists")
@NO_CACHE
def export(train_data, out, model, pooling, prune, quant, formats, method, rank, targets, sets, embedding_rows, head,
           head_init, optimizer, zo, zo_eps, zo_rank, zo_nu, lr, weight_decay, batch_size, seq_len, buckets,
           eval_batch_size, seed, overwrite, no_cache):
    """Prepare a model for TRAIN_DATA and export its training step to OUT."""
    _quiet_toolchain()
    from edgetune.app.lm import export_lm

    if Path(out).exists() and not overwrite:
        raise click.BadParameter(f"{out} exists; choose another directory or pass --overwrite", param_hint="OUT")
    try:
        kind = checkpoint_kind(model) if is_checkpoint_dir(model) else None
    except EdgetuneError as e:
        raise click.BadParameter(str(e), param_hint="--model") from None
    gguf = model == "smollm2" or model.lower().endswith(".gguf")
    lm = gguf or kind == "decoder"
    if not lm and kind is None and model not in MODELS:
        raise click.BadParameter(f"{model!r}: choose {', '.join(MODELS)}, smollm2, a .gguf file or a Hugging Face "
                                 "checkpoint directory (config.json + *.safetensors + tokenizer.json)",
                                 param_hint="--model")
    if quant == "gguf" and not gguf:
        raise click.BadParameter("gguf keeps a GGUF file's blocks: use it with --model smollm2 or a .gguf",
                                 param_hint="--quant")
    if (pooling or not prune) and kind != "encoder":
        raise click.BadParameter("pooling and pruning are chosen for encoder checkpoint directories",
                                 param_hint="--pooling/--no-prune")
    opt = ({"name": optimizer, "lr": lr, "weight_decay": weight_decay} if zo is None else
           {"name": "zo", "method": zo, "lr": lr, "weight_decay": weight_decay, "eps": zo_eps, "rank": zo_rank,
            "nu": zo_nu})
    plan_defaults = LM if lm else CLS
    adapter = _adapter_option(method or plan_defaults.adapter["method"], rank, targets, sets)
    try:
        seq_buckets = [int(b) for b in buckets.split(",") if b.strip()]
    except ValueError:
        raise click.BadParameter(f"{buckets!r}: give whole numbers separated by commas, e.g. 16,24",
                                 param_hint="--buckets") from None
    if lm and eval_batch_size:
        raise click.BadParameter("a language model's inference program also generates text: it keeps the step's "
                                 "batch", param_hint="--eval-batch-size")
    if lm and seq_buckets:
        raise click.BadParameter("language-model windows are always full: buckets are for classifiers",
                                 param_hint="--buckets")
    try:
        if lm:
            plan = LMPlan(model=model, quant=quant, adapter=adapter,
                          embedding_rows=LM.embedding_rows if embedding_rows is None else embedding_rows, optimizer=opt,
                          batch_size=batch_size or LM.batch_size, seq_len=seq_len or LM.seq_len, seed=seed)
            formats = formats or ("onnx",)
            manifest, compiled = _with_export_bar(
                lambda progress, log: export_lm(plan, train_data, out, formats, overwrite, progress,
                                                cache=not no_cache, log=log),
                stages=2 * len(formats) + 1)
        else:
            plan = ClassifierPlan(model=model, pooling=pooling, prune=prune, adapter=adapter,
                                  embedding_rows=CLS.embedding_rows if embedding_rows is None else embedding_rows,
                                  train_head=head, head_init=head_init, optimizer=opt,
                                  batch_size=batch_size or CLS.batch_size, seq_len=seq_len or CLS.seq_len,
                                  quant=None if quant in (None, "none") else quant,
                                  seq_buckets=seq_buckets, seed=seed, eval_batch_size=eval_batch_size)
            manifest, compiled = _export_with_bar(plan, train_data, out, formats or RUNNERS, overwrite,
                                                  not no_cache)
    except EdgetuneError as e:
        _fail(e)
    click.echo(_report(manifest, compiled))
    click.echo(f"artifact {manifest.artifact_id} written to {out}")


@main.command("save-adapter")
@click.argument("artifact", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--state", type=click.Path(exists=True, dir_okay=False), default=None,
              help="trained state written by `edgetune train` (default: the artifact's initial state)")
@click.option("--peft", "as_peft", is_flag=True,
              help="write a Hugging Face PEFT LoRA adapter (LoRA, LoRA-XS, LoRA-SB, LoRA-SP, PiCa)")
def save_adapter_cmd(artifact, out, state, as_peft):
    """Write ARTIFACT's trained adapters to OUT (edgetune's safetensors format, or PEFT's)."""
    _quiet_toolchain()
    from edgetune.adapters.io import save_adapter
    from edgetune.adapters.peft_export import save_peft
    from edgetune.app.restore import restore_prepared

    try:
        prepared, manifest = restore_prepared(artifact, state)
        if as_peft:
            save_peft(prepared, out, base_model_name=manifest.model.get("name"), labels=manifest.labels)
        else:
            save_adapter(prepared, out, base=manifest.model)
    except EdgetuneError as e:
        _fail(e)
    click.echo(f"{prepared.report.trainable_params:,} trained values written to {out}"
               f"{' (PEFT LoRA format)' if as_peft else ''}")


@main.command()
@click.argument("artifact", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--state", type=click.Path(exists=True, dir_okay=False), default=None,
              help="trained state written by `edgetune train` (default: the artifact's initial state)")
@click.option("--format", "formats", type=click.Choice(FORMATS), multiple=True, default=RUNNERS, show_default=True)
@click.option("--overwrite", is_flag=True, help="replace OUT if it exists")
def merge(artifact, out, state, formats, overwrite):
    """Fold ARTIFACT's trained adapters into the base weights: an inference-only artifact at OUT."""
    _quiet_toolchain()
    from edgetune.app.restore import export_merged

    try:
        manifest, _ = _with_export_bar(
            lambda progress, log: export_merged(artifact, out, state, formats, overwrite, progress, log),
            stages=len(formats) + 1)
    except EdgetuneError as e:
        _fail(e)
    click.echo(f"inference-only artifact {manifest.artifact_id} written to {out}")


@main.command()
@click.argument("artifact", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--steps", type=int, default=4, show_default=True, help="steps of the train case")
@click.option("--overwrite", is_flag=True, help="replace OUT if it exists")
def conformance(artifact, out, steps, overwrite):
    """Write ARTIFACT's conformance kit to OUT: golden vectors from eager PyTorch that every
    implementation of the device contract replays (python -m device_harness.conformance ARTIFACT OUT)."""
    _quiet_toolchain()
    from edgetune.app.conformance import write_kit_for

    try:
        kit = write_kit_for(artifact, out, steps=steps, overwrite=overwrite)
    except EdgetuneError as e:
        _fail(e)
    click.echo(f"conformance kit of artifact {kit['artifact_id']} ({', '.join(c['name'] for c in kit['cases'])}) "
               f"written to {out}")


@main.command()
@click.argument("artifact", type=click.Path(exists=True, file_okay=False))
@click.argument("data", type=click.Path(exists=True, dir_okay=False))
@click.option("--runtime", type=click.Choice(RUNNERS), default="onnx", show_default=True)
@click.option("--steps", type=click.IntRange(min=0), default=None, help=f"steps to take [default: {DEFAULT_STEPS}]")
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=None,
              help="instead of --steps: visit every example of DATA this many times (the steps are printed)")
@click.option("--lr", type=float, default=None, help="default: the artifact's")
@click.option("--state", type=click.Path(dir_okay=False), default=None,
              help="state file to resume from and write to (default: ARTIFACT/trained.<runtime>.safetensors)")
@click.option("--save-every", type=int, default=10, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--schedule", type=click.Choice(SCHEDULES), default=None,
              help="linear: 6% warm-up, then linear decay to 0 at --total-steps [default: linear; constant for "
                   "forward-only (--zo) artifacts]")
@click.option("--total-steps", type=int, default=None, help="length of the schedule (default: this run's last step)")
@click.option("--threads", type=int, default=None, help=THREADS_HELP)
def train(artifact, data, runtime, steps, epochs, lr, state, save_every, seed, schedule, total_steps, threads):
    """Train ARTIFACT on DATA through the runtime alone; one JSON line per step on stdout."""
    from device_harness.runner import Trainer

    if steps is not None and epochs is not None:
        raise click.BadParameter("--steps and --epochs both set the run's length; give one", param_hint="--epochs")
    try:
        tr = Trainer(artifact, runtime, state, threads)
        rows = tr.encode(data)
        try:
            if epochs is not None:
                steps = tr.epoch_steps(rows, epochs)
                click.echo(f"{epochs:g} epoch(s) of {rows.n} examples at batch {tr.manifest.batch_size}: {steps} steps",
                           err=True)
            steps = DEFAULT_STEPS if steps is None else steps
            with _bar(total=steps, desc=f"train {runtime}", unit="step") as bar:
                for rec in tr.train(rows, steps, lr, seed, save_every, schedule, total_steps):
                    click.echo(rec.json())
                    bar.set_postfix(loss=f"{rec.loss:.4f}")
                    bar.update(1)
        finally:
            rows.close()
    except EdgetuneError as e:
        _fail(e)


@main.command("eval")
@click.argument("artifact", type=click.Path(exists=True, file_okay=False))
@click.argument("data", type=click.Path(exists=True, dir_okay=False))
@click.option("--runtime", type=click.Choice(RUNNERS), default="onnx", show_default=True)
@click.option("--state", type=click.Path(dir_okay=False), default=None)
@click.option("--threads", type=int, default=None, help=THREADS_HELP)
def eval_cmd(artifact, data, runtime, state, threads):
    """Accuracy (or perplexity) of ARTIFACT's current state on DATA, through the inference program."""
    from device_harness.runner import evaluate

    try:
        click.echo(json.dumps(evaluate(artifact, data, runtime, state, threads)))
    except EdgetuneError as e:
        _fail(e)


main.add_command(fleet)

if __name__ == "__main__":
    main()
