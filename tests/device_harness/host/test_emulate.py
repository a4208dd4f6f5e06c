"""An emulated Raspberry Pi 4 (Debian bookworm arm64 under qemu-aarch64, the runner's aarch64
wheels): the runner trains on ONNX Runtime's ARM kernels as on x86, passes the conformance kit
there, and `device-harness emulate` names the board in the devices file."""
import json
import os
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.numpy import load_file

from device_harness.host.cli import main, register_device
from device_harness.host.deploy import RunConfig, push_runner, run_on_device
from device_harness.host.transports.local import LocalTransport
from edgetune.contract.conformance import TOLERANCE, mismatch
from edgetune.errors import ConfigError
from helpers.kits import artifact_of

# ARM's and x86's float kernels sum in other orders. Losses stay within 1e-5; the state within
# the contract's tolerance: AdamW's lr * m / (sqrt(v) + eps) turns rounding-level differences in
# an entry whose gradients nearly cancel into a visible step (MiniLM after 5 steps: 185 of 3072
# entries of one LoRA B differ by up to 3.1e-6, 1% of that tensor's largest value).
LOSS_RTOL = 1e-5


@pytest.fixture(scope="module")
def pi4(tmp_path_factory):
    """(root, its Python): built from scratch once per session (about 35 s with a warm pip cache)."""
    from device_harness.host.emulate import prepare

    missing = [t for t in ("qemu-aarch64", "debootstrap", "dpkg-deb") if not shutil.which(t)]
    if missing or os.geteuid() != 0:
        pytest.skip(f"an emulated Pi needs root and {missing or 'qemu-aarch64'} (apt-get install qemu-user "
                    "debootstrap), which .ci/run installs")
    root = tmp_path_factory.mktemp("pi4")
    return root, prepare("pi4", root)


def _relative(a, b) -> float:
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))


@pytest.mark.slow
@pytest.mark.parametrize("fixture, steps", [("tiny_artifact", 50), ("minilm_artifact", 5)])
def test_the_runner_on_aarch64_trains_like_x86(request, pi4, demo_data, tmp_path, fixture, steps):
    art = artifact_of(request, fixture)[0]
    runs = {}
    for name, python in (("arm", str(pi4[1])), ("x86", None)):
        with LocalTransport(python=python) as t:
            runs[name] = run_on_device(t, art, demo_data[0], tmp_path / name, RunConfig(steps=steps, save_every=steps))
    arm, x86 = runs["arm"], runs["x86"]
    assert arm.facts["machine"] == "aarch64" and x86.facts["machine"] == "x86_64"
    assert "(emulated: qemu-aarch64 -cpu cortex-a72)" in arm.facts["cpu_model"]
    losses = [np.array([r["loss"] for r in run.records]) for run in (arm, x86)]
    assert len(losses[0]) == len(losses[1]) == steps
    loss_rel = float(np.max(np.abs(losses[0] - losses[1]) / np.abs(losses[1])))
    sa, sx = (load_file(str(tmp_path / n / "state.safetensors")) for n in ("arm", "x86"))
    assert sa.keys() == sx.keys()
    state_rel = max(_relative(sa[k], sx[k]) for k in sx)
    print(f"\n{fixture}, {steps} steps on aarch64 vs x86: loss {loss_rel:.2e}, state {state_rel:.2e} (max relative "
          "difference, of a tensor's largest value)")
    assert loss_rel <= LOSS_RTOL
    assert [(k, why) for k in sx if (why := mismatch(sx[k], sa[k], TOLERANCE))] == []


@pytest.mark.slow
def test_device_harness_run_over_ssh_to_the_emulated_host(pi4, sshd, tiny_artifact, demo_data, tmp_path):
    """`device-harness run ssh://...` with the emulated board's Python: an SSH host on 127.0.0.1
    whose Python is aarch64, training as the x86 runner does."""
    args = [str(tiny_artifact[0]), str(demo_data[0]), "--steps", "6", "--save-every", "6"]
    r = CliRunner().invoke(main, ["run", f"ssh://{sshd.user}@127.0.0.1:{sshd.port}", *args, "--key", str(sshd.key),
                                  "--known-hosts", str(sshd.known_hosts), "--workdir", sshd.workdir,
                                  "--python", str(pi4[1]), "--out", str(tmp_path / "arm")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["run", "local", *args, "--out", str(tmp_path / "x86")])
    assert r.exit_code == 0, r.output
    arm, x86 = (json.loads((tmp_path / n / "run.json").read_text()) for n in ("arm", "x86"))
    assert arm["facts"]["machine"] == "aarch64" and arm["device"].startswith("ssh://")
    la, lx = (np.array([x["loss"] for x in run["records"]]) for run in (arm, x86))
    assert len(la) == 6 and float(np.max(np.abs(la - lx) / np.abs(lx))) <= LOSS_RTOL


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["tiny_artifact", "minilm_artifact"])
def test_the_conformance_kit_passes_on_aarch64(request, pi4, kits, fixture):
    """Every step of eager PyTorch, chained on the runner's own outputs, within the contract's tolerance."""
    art = artifact_of(request, fixture)[0]
    kit = kits(request, fixture)
    with LocalTransport(python=str(pi4[1])) as t:
        push_runner(t)
        lines, end = t.run([t.python, "-m", "device_harness.conformance", str(art), str(kit)], cwd="runner")
    assert end.status == 0, end.stderr[-2000:]
    report = json.loads(lines[-1])
    assert report["failures"] == [] and report["cases"] == ["train", "resume", "nonfinite"]


@pytest.mark.slow
def test_emulate_reuses_the_root_and_devices_lists_the_board(pi4, tmp_path):
    root, python = pi4
    devices = tmp_path / "devices.toml"
    before = (root / "rootfs/usr/bin/python3.11").stat().st_mtime_ns
    out = CliRunner().invoke(main, ["emulate", "pi4", "--root", str(root), "--devices-file", str(devices)])
    assert out.exit_code == 0, out.output
    assert f"pi4-emulated: {python} (added to {devices})" in out.output
    assert (root / "rootfs/usr/bin/python3.11").stat().st_mtime_ns == before  # reused, not rebuilt
    listed = CliRunner().invoke(main, ["devices", "--devices-file", str(devices)])
    line = next(x for x in listed.output.splitlines() if x.startswith("pi4-emulated"))
    assert " ok " in line and "emulated: qemu-aarch64" in line and "aarch64" in line, line


def test_register_device_adds_once_and_refuses_a_clash(tmp_path):
    path = tmp_path / "devices.toml"
    path.write_text('[devices.pi]\ntransport = "ssh"\nhost = "pi.local"')  # no final newline
    settings = {"transport": "local", "python": "/opt/emu/python"}
    assert register_device(path, "pi4-emulated", settings) is True
    assert register_device(path, "pi4-emulated", settings) is False
    text = path.read_text()
    with pytest.raises(ConfigError, match="already names a device 'pi4-emulated'"):
        register_device(path, "pi4-emulated", {**settings, "python": "/elsewhere"})
    path.write_text(text + "[devices.broken\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        register_device(path, "other", settings)
    assert path.read_text() == text + "[devices.broken\n" and not list(tmp_path.glob(".*.tmp"))
