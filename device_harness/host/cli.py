"""device-harness: deploy an artifact to a device, run local updates there, profile and report.

    device-harness devices                       what can be reached, and what each device is
    device-harness emulate pi4                   an emulated Raspberry Pi (arm64 Debian under qemu), named
    device-harness run DEVICE ARTIFACT DATA      train there; the results land in a run directory
    device-harness profile RUN... [--predict pi4]  step-time distribution, memory, CPU, energy; predicted
                                                 step time on a named board (on paper)
    device-harness report RUN... --out DIR       Markdown + PNG + JSON, runs side by side

DEVICE is ``local``, ``ssh://[user@]host[:port]``, ``adb`` or ``adb://SERIAL``, or a name
from the devices file (TOML, default ./devices.toml)::

    [devices.pi4]
    transport = "ssh"            # or "adb", "local"
    host = "pi4.local"
    user = "pi"
    key = "~/.ssh/id_ed25519"
    known_hosts = "~/.ssh/known_hosts"
    python = "python3"
    workdir = "edgetune"
"""
from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import click

from device_harness.host.boards import BOARDS, EMULATED
from device_harness.host.budgets import BUDGETS, get_budget
from device_harness.host.deploy import RunConfig, device_check, load_run, push_runner, run_on_device
from device_harness.host.transports.base import Transport
from device_harness.runtimes import RUNNERS
from edgetune.errors import ConfigError, EdgetuneError

DEFAULT_DEVICES_FILE = Path("devices.toml")
TRANSPORT_KEYS = {"ssh": {"host", "port", "user", "key", "known_hosts", "accept_new_host", "workdir", "python",
                          "idle_timeout"},
                  "adb": {"serial", "workdir", "python"}, "local": {"workdir", "python"}}


def _fail(e: EdgetuneError):
    raise click.ClickException(f"{type(e).__name__}: {e}")


def read_devices(path: Path) -> dict[str, dict]:
    """Named devices from a TOML file (none if the file does not exist)."""
    if not path.exists():
        return {}
    try:
        devices = tomllib.loads(path.read_text()).get("devices", {})
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from e
    for name, d in devices.items():
        kind = d.get("transport")
        if kind not in TRANSPORT_KEYS:
            raise ConfigError(f"{path}: device {name!r} has transport {kind!r}; use one of {sorted(TRANSPORT_KEYS)}")
        unknown = set(d) - TRANSPORT_KEYS[kind] - {"transport"}
        if unknown:
            raise ConfigError(f"{path}: device {name!r} has unknown keys {sorted(unknown)}; "
                              f"{kind} takes {sorted(TRANSPORT_KEYS[kind])}")
    return devices


def register_device(path: Path, name: str, settings: dict[str, str]) -> bool:
    """Add ``[devices.NAME]`` to the devices file (created if missing); False if it is there
    already with these settings. The file is replaced atomically, by a version that reads back."""
    devices = read_devices(path)
    if name in devices:
        if devices[name] == settings:
            return False
        raise ConfigError(f"{path} already names a device {name!r} ({devices[name]}); choose another --name or "
                          "remove it from the file")
    # TOML basic strings take JSON's escapes
    section = f"\n[devices.{json.dumps(name)}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items())
    old = path.read_text() if path.exists() else ""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(old + ("\n" if old and not old.endswith("\n") else "") + section)
    try:
        if read_devices(tmp).get(name) != settings:
            raise ConfigError(f"{name!r} cannot be written to {path} as a device name; choose another --name")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return True


def device_spec(device: str, devices: dict[str, dict], **overrides) -> dict:
    """A DEVICE argument -> transport settings."""
    if device in devices:
        spec = dict(devices[device])
    elif device == "local":
        spec = {"transport": "local"}
    elif device.startswith("ssh://"):
        u = urlsplit(device)
        if not u.hostname:
            raise ConfigError(f"{device!r}: write ssh://[user@]host[:port]")
        spec = {"transport": "ssh", "host": u.hostname, "port": u.port or 22, "user": u.username}
    elif device == "adb" or device.startswith("adb://"):
        spec = {"transport": "adb", "serial": device[len("adb://"):] or None}
    else:
        raise ConfigError(f"unknown device {device!r}: use local, ssh://[user@]host[:port], adb[://SERIAL] "
                          f"or a name from the devices file ({sorted(devices) or 'none defined'})")
    spec.update({k: v for k, v in overrides.items() if v is not None and k in TRANSPORT_KEYS[spec["transport"]]})
    return spec


def open_transport(spec: dict) -> Transport:
    kind, kw = spec["transport"], {k: v for k, v in spec.items() if k != "transport"}
    if kind == "local":
        from device_harness.host.transports.local import LocalTransport

        return LocalTransport(**kw)
    if kind == "ssh":
        from device_harness.host.transports.ssh import SSHTransport

        return SSHTransport(**kw)
    from device_harness.host.transports.adb import ADBTransport

    return ADBTransport(**kw)


devices_option = click.option("--devices-file", type=click.Path(path_type=Path), default=DEFAULT_DEVICES_FILE,
                              show_default=True, help="named devices (TOML)")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edgetune")
def main():
    """Deploy edgetune artifacts to boards and phones, train there, profile and report."""


@main.command()
@devices_option
@click.option("--runtime", default="onnx", type=click.Choice(list(RUNNERS)), show_default=True)
def devices(devices_file, runtime):
    """List the devices in the devices file, this machine and attached phones, with what each is."""
    try:
        named = read_devices(devices_file)
    except EdgetuneError as e:
        _fail(e)
    targets = [("local", {"transport": "local"})] + [(n, d) for n, d in named.items()]
    try:
        import adbutils

        targets += [(f"adb://{d.serial}", {"transport": "adb", "serial": d.serial})
                    for d in adbutils.AdbClient().device_list()]
    except Exception as e:  # no adb server: say so, list the rest
        click.echo(f"(phones: none listed; the adb server is not reachable: {e})", err=True)
    for name, spec in targets:
        try:
            with open_transport(spec) as t:
                push_runner(t)
                f = device_check(t, runtime)["facts"]
            ram = f"{f['ram_mb']:.0f} MB" if f.get("ram_mb") else "? MB"
            click.echo(f"{name:<28} ok   {f['cpu_model']}, {f['usable_cores']} cores, {ram}, {f['os']}, "
                       f"python {f['python']}, {runtime} "
                       f"{f['packages'].get('onnxruntime' if runtime == 'onnx' else 'executorch')}")
        except EdgetuneError as e:
            click.echo(f"{name:<28} FAIL {e}")


@main.command()
@click.argument("board", type=click.Choice(sorted(EMULATED)))
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="where the arm64 root, the wheels and the board's Python go [default: ~/.cache/edgetune/emulated/BOARD]")
@click.option("--name", default=None, help="the device's name in the devices file [default: BOARD-emulated]")
@devices_option
def emulate(board, root, name, devices_file):
    """Build (or reuse) an emulated BOARD: Debian bookworm arm64 (Raspberry Pi OS's base) under
    qemu-aarch64 with the runner's aarch64 wheels, named in the devices file.

    Then `device-harness run BOARD-emulated ARTIFACT DATA` trains on ONNX Runtime's ARM
    kernels, and `devices` lists it (ExecuTorch is not installed: its binding needs torch).
    Over SSH to this machine, pass the printed Python as --python. Emulation checks the
    numbers, not the speed: steps are tens of times slower than a board's.
    Needs root, qemu-user and debootstrap (apt-get install qemu-user debootstrap)."""
    from device_harness.host.emulate import prepare

    root = root or Path.home() / ".cache" / "edgetune" / "emulated" / board
    name = name or f"{board}-emulated"
    try:
        python = prepare(board, root, progress=lambda m: click.echo(m, err=True))
        added = register_device(devices_file, name, {"transport": "local", "python": str(python)})
    except EdgetuneError as e:
        _fail(e)
    click.echo(f"{name}: {python} ({'added to' if added else 'already in'} {devices_file})\n"
               f"  device-harness run {name} ARTIFACT DATA")


@main.command()
@click.argument("device")
@click.argument("artifact", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("data", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--steps", default=50, show_default=True, help="steps to train (a resumed run stops at this count)")
@click.option("--runtime", default="onnx", type=click.Choice(list(RUNNERS)), show_default=True)
@click.option("--threads", type=int, default=None, help="runtime threads on the device [default: the runtime's "
              "choice, or one per core of the budget]")
@click.option("--budget", type=click.Choice(sorted(BUDGETS)), default=None,
              help="emulate a device's cores and memory cap on this one")
@click.option("--lr", type=float, default=None, help="default: the artifact's")
@click.option("--seed", default=0, show_default=True)
@click.option("--save-every", default=10, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="run directory [default: runs/RUN_ID]")
@click.option("--run-id", default=None, help="name of the run (reuse one to resume it)")
@click.option("--keep", is_flag=True, help="leave the run's files on the device")
@click.option("--retries", default=5, show_default=True, help="reconnections before giving up")
@click.option("--key", default=None, help="SSH private key")
@click.option("--known-hosts", default=None, help="SSH known_hosts file [default: ~/.ssh/known_hosts]")
@click.option("--accept-new-host", is_flag=True, default=None,
              help="SSH: record an unknown host's key instead of refusing it (check its fingerprint first)")
@click.option("--python", default=None, help="the device's Python [default: python3; local: this one]")
@click.option("--workdir", default=None, help="where on the device the harness keeps its files")
@click.option("--app", is_flag=True, help="ADB: train in the edgetune demo app (android_demo, Kotlin trainer on the "
              "phone's runtimes) instead of a Python on the phone")
@devices_option
def run(device, artifact, data, steps, runtime, threads, budget, lr, seed, save_every, out, run_id, keep, retries,
        key, known_hosts, accept_new_host, python, workdir, app, devices_file):
    """Train ARTIFACT on DATA on DEVICE; stream the steps; fetch log and state into a run directory."""
    from tqdm.auto import tqdm

    try:
        spec = device_spec(device, read_devices(devices_file), key=key, known_hosts=known_hosts,
                           accept_new_host=accept_new_host, python=python, workdir=workdir)
        cfg = RunConfig(steps=steps, runtime=runtime, threads=threads, seed=seed, lr=lr, save_every=save_every,
                        budget=get_budget(budget) if budget else None, retries=retries, cleanup=not keep)
        if app and spec["transport"] != "adb":
            raise ConfigError(f"--app runs the Android demo app over ADB; {device} is a {spec['transport']} device")
        with open_transport(spec) as t, tqdm(total=steps, unit="step", file=sys.stderr, dynamic_ncols=True) as bar:
            def on_record(rec):
                bar.n = rec["step"]
                bar.set_postfix(loss=f"{rec['loss']:.3f}", ms=f"{rec['ms']:.0f}", rss=f"{rec['rss_mb']:.0f}MB")
                bar.refresh()

            from datetime import datetime, timezone

            run_id = run_id or f"{device.replace('://', '-').replace('/', '-').replace(':', '-')}-" \
                               f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}"
            out = out or Path("runs") / run_id
            if app:
                from device_harness.host.app_run import run_app_on_device

                result = run_app_on_device(t, artifact, data, out, cfg, run_id=run_id, on_record=on_record,
                                           progress=lambda m: tqdm.write(m, file=sys.stderr))
            else:
                result = run_on_device(t, artifact, data, out, cfg, run_id=run_id, on_record=on_record,
                                       progress=lambda m: tqdm.write(m, file=sys.stderr))
    except EdgetuneError as e:
        _fail(e)
    from device_harness.host.profile import summarize
    from device_harness.host.report import profile_table

    click.echo(f"{result.end.get('reason', 'done')}; run written to {out}")
    if len(result.records) > 3:
        click.echo(profile_table([summarize(result)]))


@main.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--warmup", default=3, show_default=True, help="first steps left out of the timings")
@click.option("--json", "as_json", is_flag=True, help="print the profiles as JSON")
@click.option("--predict", "boards", multiple=True, type=click.Choice(sorted(BOARDS)),
              help="also predict the step time on this named board, on paper (repeatable)")
def profile(runs, warmup, as_json, boards):
    """Profile of each RUN directory: p50/p95/max ms, steps/s, peak RSS, CPU, energy; with
    --predict, each run's step time predicted for named boards from its counted work."""
    import json

    from device_harness.host.profile import summarize
    from device_harness.host.report import prediction_table, profile_table

    try:
        loaded = [load_run(r) for r in runs]
        summaries = [summarize(r, warmup) for r in loaded]
        if boards:
            from device_harness.host.predict import add_predictions

            add_predictions(summaries, loaded, boards)
    except EdgetuneError as e:
        _fail(e)
    if as_json:
        click.echo(json.dumps(summaries, indent=1))
        return
    click.echo(profile_table(summaries))
    if boards:
        click.echo("\n" + prediction_table(summaries))


@main.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="report directory")
@click.option("--warmup", default=3, show_default=True, help="first steps left out of the timings")
@click.option("--predict", "boards", multiple=True, type=click.Choice(sorted(BOARDS)),
              help="add step times predicted on this named board, on paper (repeatable)")
def report(runs, out, warmup, boards):
    """Markdown + PNG plots (loss, step latency, memory over time) + JSON for RUN directories, side by side."""
    from device_harness.host.report import write_report

    try:
        md = write_report([load_run(r) for r in runs], out, warmup, boards)
    except EdgetuneError as e:
        _fail(e)
    click.echo(f"wrote {md}")


if __name__ == "__main__":
    main()
