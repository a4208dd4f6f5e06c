"""`edgetune fleet`: federated personalization on Flower, on this machine.

    edgetune fleet run ARTIFACT USER.csv...   a SuperLink + one SuperNode per file, the rounds, a table
    edgetune fleet up  ARTIFACT USER.csv...   the same processes kept up for your own `flwr run`

Every key of the run config (`edgetune.fleet.config.RUN_DEFAULTS`) can be set with --set.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import click

from device_harness.runtimes import RUNNERS
from edgetune.errors import EdgetuneError
from edgetune.fleet.config import RUN_DEFAULTS, STRATEGIES, held_out_path, run_settings


def _settings(artifact: str, runtime: str, sets: tuple[str, ...], **given) -> dict:
    """The run config: the options given, then --set key=value (TOML-typed: 3, 0.5, true, "text")."""
    import tomllib

    from edgetune.contract import load_manifest
    from edgetune.fleet.shared import shared_names

    cfg = {"artifact": str(Path(artifact).resolve()), "runtime": runtime,
           **{k.replace("_", "-"): v for k, v in given.items() if v is not None}}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not key=value", param_hint="--set")
        try:
            cfg[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            cfg[key.strip()] = value  # a bare word is text
    # refuse an unknown key, a bad value or a personal pattern that matches nothing before any process starts
    s = run_settings(cfg)
    shared_names(load_manifest(artifact, runtime), s.personal_patterns)
    return cfg


def _nodes(artifact: str, data: tuple[str, ...], state_dir: Path) -> list[dict]:
    nodes = []
    for i, d in enumerate(data):
        p = Path(d).resolve()
        held = held_out_path(p)
        node = {"artifact": str(Path(artifact).resolve()), "data": str(p), "state": str(state_dir / f"{i}.{p.stem}.safetensors")}
        if held.exists():
            node["eval-data"] = str(held)
        nodes.append(node)
    return nodes


def _common(f):
    for opt in reversed([
        click.argument("artifact", type=click.Path(exists=True, file_okay=False)),
        click.argument("data", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False)),
        click.option("--work", type=click.Path(file_okay=False), default="fleet", show_default=True,
                     help="logs, Flower's settings, the clients' state files and the result"),
        click.option("--runtime", type=click.Choice(RUNNERS), default="onnx", show_default=True),
    ]):
        f = opt(f)
    return f


@click.group()
def fleet():
    """Federated personalization on Flower: one client per data file, the same artifact on each."""
    import importlib.util

    if importlib.util.find_spec("flwr") is None:
        raise click.ClickException("edgetune fleet needs Flower: pip install 'edgetune[fleet]'")


@fleet.command("run")
@_common
@click.option("--rounds", "num_rounds", type=click.IntRange(min=1), default=RUN_DEFAULTS["num-rounds"], show_default=True)
@click.option("--local-steps", type=click.IntRange(min=1), default=RUN_DEFAULTS["local-steps"], show_default=True)
@click.option("--strategy", type=click.Choice(STRATEGIES), default=RUN_DEFAULTS["strategy"], show_default=True)
@click.option("--personal", default=None, help="comma-separated patterns of trainable tensors kept on each client, "
                                               "e.g. 'head.*'")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="any other run-config key (repeatable)")
def run_cmd(artifact, data, work, runtime, num_rounds, local_steps, strategy, personal, sets):
    """Train ARTIFACT on a local fleet, one SuperNode per DATA file (a file NAME.eval.csv beside
    NAME.csv is that client's held-out set), then stop it. The shared result goes to
    WORK/out/global.safetensors, the rounds to WORK/out/rounds.json."""
    from edgetune.fleet.local import LocalFleet

    work = Path(work).resolve()
    try:
        cfg = _settings(artifact, runtime, sets, num_rounds=num_rounds, local_steps=local_steps, strategy=strategy,
                        personal=personal, min_clients=len(data), out=str(work / "out"))
        t0 = time.perf_counter()
        with LocalFleet(work, _nodes(artifact, data, work / "states")) as f:
            click.echo(f"SuperLink and {len(data)} SuperNodes up on 127.0.0.1 (logs: {f.logs})", err=True)
            result = f.run(cfg, echo=True)
    except EdgetuneError as e:
        raise click.ClickException(f"{type(e).__name__}: {e}")
    if result.returncode != 0:
        raise click.ClickException(f"flwr run exited with {result.returncode}; its log: {work / 'logs' / 'flwr-run.log'}")
    rounds = json.loads((work / "out" / "rounds.json").read_text())
    click.echo("| round | sampled | accepted | refused | failed | bytes down/client | bytes up/client | s |")
    click.echo("|---|---|---|---|---|---|---|---|")
    for r in rounds:
        click.echo(f"| {r['round']} | {r['sampled']} | {r['accepted']} | {len(r['refused'])} | {len(r['failed'])} | "
                   f"{r['bytes_down_per_client']} | {r['bytes_up_per_client']} | {r.get('seconds', 0):.1f} |")
    click.echo(f"{num_rounds} rounds in {time.perf_counter() - t0:.0f} s; shared state: {work / 'out' / 'global.safetensors'}")


@fleet.command("up")
@_common
def up_cmd(artifact, data, work, runtime):
    """Start a SuperLink and one SuperNode per DATA file on 127.0.0.1 and keep them up (Ctrl-C
    stops them); prints the `flwr run` command that trains ARTIFACT on them."""
    import shlex

    from edgetune.fleet.local import LocalFleet

    work = Path(work).resolve()
    try:
        cfg = _settings(artifact, runtime, (), min_clients=len(data), out=str(work / "out"))
        with LocalFleet(work, _nodes(artifact, data, work / "states")) as f:
            click.echo(f"SuperLink on 127.0.0.1:{f.port} and {len(data)} SuperNodes up (logs: {f.logs}). Train with:\n")
            click.echo(f"  FLWR_HOME={shlex.quote(str(f.home))} " + " ".join(shlex.quote(a) for a in f.run_command(cfg)))
            click.echo("\nCtrl-C stops them.")
            while all(p.poll() is None for p in f.procs):
                time.sleep(1)
            click.echo("a fleet process exited; see its log in " + str(f.logs), err=True)
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
    except EdgetuneError as e:
        raise click.ClickException(f"{type(e).__name__}: {e}")
