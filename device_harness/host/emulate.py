"""An emulated Raspberry Pi: its software (Debian bookworm arm64, as Raspberry Pi OS) under
qemu user-mode emulation, with the runner's aarch64 wheels.

    DIR/rootfs/        the arm64 userland (debootstrap, packages extracted without running them)
    DIR/python         the board's Python: a script that execs qemu-aarch64 on rootfs's python3.11
    DIR/emulated.json  what was built: board, suite, wheel versions (reused while they match)

The wheels are the host's versions of the runner's packages, for aarch64, installed in
rootfs's /usr/local/lib/python3.11/dist-packages. qemu finds /proc/cpuinfo inside the root
first; the one written there describes the board and says it is emulated (onnxruntime's CPU
detection also needs an ARM one: it fails on the host's x86 text). Emulation proves that the
ARM kernels compute the same step, not how fast a board is: an emulated step is tens of
times slower than a native one.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable

from device_harness.facts import RUNNER_PACKAGES, RUNTIME_PACKAGES
from device_harness.host.boards import EMULATED, Board
from device_harness.host.deploy import RunError
from edgetune.errors import ConfigError
from edgetune.files import replacing_directory

SUITE, MIRROR = "bookworm", "http://deb.debian.org/debian"
PYTHON = "3.11"  # bookworm's python3
SITE = f"usr/local/lib/python{PYTHON}/dist-packages"
WHEEL_PLATFORMS = ("manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64")
STATE_FILE = "emulated.json"


def cpuinfo(board: Board) -> str:
    cores = "".join(f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: {board.features}\nCPU implementer\t: 0x41\n"
                    f"CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: {board.part}\nCPU revision\t: 3\n\n"
                    for i in range(board.cores))
    return f"{cores}Hardware\t: emulated\nModel\t\t: {board.model} (emulated: qemu-aarch64 -cpu {board.cpu})\n"


def tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(f"{name}-static")
    if path is None:
        raise ConfigError(f"{name} is not installed: apt-get install qemu-user debootstrap")
    return path


def runner_wheels() -> dict[str, str]:
    """pip name -> the host's version, for the runner's packages and ONNX Runtime. (ExecuTorch's
    Python binding links libtorch, and PyPI's aarch64 torch is a CUDA build that needs NVIDIA's
    libraries to import; it is left out.)"""
    names = [*RUNNER_PACKAGES.values(), RUNTIME_PACKAGES["onnx"][1]]
    try:
        return {n: version(n) for n in names}
    except PackageNotFoundError as e:
        raise ConfigError(f"{e.name} is not installed on this host, so its aarch64 version is unknown: "
                          f"pip install {e.name}") from e


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode:
        raise RunError(f"{what} failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()[-400:]}")


def build_root(rootfs: Path, progress: Callable[[str], None]) -> None:
    """Debian ``SUITE`` arm64 with python3 into ``rootfs`` (built beside it, then renamed; a root
    whose proc links to the host's /proc is removed without following the link)."""
    if os.geteuid() != 0:
        raise ConfigError("building the arm64 root needs root (debootstrap creates device nodes): run as root "
                          "or with sudo")
    with replacing_directory(rootfs) as tmp:
        progress(f"downloading Debian {SUITE} arm64 (debootstrap)")
        _run([tool("debootstrap"), "--foreign", "--arch=arm64", "--variant=minbase", "--include=python3", SUITE,
              str(tmp), MIRROR], "debootstrap")
        # --foreign unpacks the required packages only; python3 and its libraries are unpacked
        # here (their maintainer scripts never run: nothing in them matters to Python)
        debs = sorted((tmp / "var/cache/apt/archives").glob("*.deb"))
        progress(f"extracting {len(debs)} packages")
        for deb in debs:
            unpack = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
            done = subprocess.run(["tar", "-x", "--keep-directory-symlink", "-C", str(tmp)], stdin=unpack.stdout,
                                  capture_output=True)
            unpack.stdout.close()
            if unpack.wait() or done.returncode:
                raise RunError(f"extracting {deb.name} failed: {done.stderr.decode(errors='replace')[-300:]}")
            deb.unlink()  # the archives are 30 MB that nothing reads again
        if not (tmp / f"usr/bin/python{PYTHON}").exists():
            raise RunError(f"the arm64 root has no usr/bin/python{PYTHON}: debootstrap left it out")


def write_cpuinfo(rootfs: Path, board: Board) -> None:
    proc = rootfs / "proc"
    if proc.is_symlink():  # debootstrap may leave proc -> /proc: never write through it
        proc.unlink()
    proc.mkdir(exist_ok=True)
    (proc / "cpuinfo").write_text(cpuinfo(board))


def install_wheels(rootfs: Path, wheels: dict[str, str], cache: Path, progress: Callable[[str], None]) -> None:
    """Download (into ``cache``, kept) and install the aarch64 wheels of ``wheels`` into rootfs's SITE."""
    pins = [f"{n}=={v}" for n, v in sorted(wheels.items())]
    target = [f"--platform={p}" for p in WHEEL_PLATFORMS] + [
        "--only-binary=:all:", "--implementation=cp", f"--python-version={PYTHON}", "--no-deps"]
    progress(f"downloading aarch64 wheels: {', '.join(pins)}")
    _run([sys.executable, "-m", "pip", "download", "-q", "-d", str(cache), *target, *pins], "pip download")
    site = rootfs / SITE
    if site.exists():
        shutil.rmtree(site)
    progress("installing the wheels into the root")
    _run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(cache), "--target",
          str(site), *target, *pins], "pip install")


def write_python(root: Path, board: Board) -> Path:
    """DIR/python: the board's Python 3.11 under qemu-aarch64."""
    rootfs = (root / "rootfs").resolve()
    script = root / "python"
    script.write_text(f"#!/bin/sh\n# Python {PYTHON} of an emulated {board.model}: Debian {SUITE} arm64 under qemu "
                      f"user-mode emulation\nexec {tool('qemu-aarch64')} -cpu {board.cpu} -L {rootfs} "
                      f"{rootfs}/usr/bin/python{PYTHON} \"$@\"\n")
    script.chmod(0o755)
    return script


def prepare(board_name: str, root: Path, progress: Callable[[str], None] = lambda msg: None) -> Path:
    """Build or reuse the emulated ``board_name`` at ``root``; -> its Python (DIR/python).
    The root is reused while it exists; the wheels while their versions are the host's."""
    if board_name not in EMULATED:
        raise ConfigError(f"unknown board {board_name!r}; choose one of {sorted(EMULATED)}")
    board, root = EMULATED[board_name], Path(root).expanduser().absolute()
    tool("qemu-aarch64")
    root.mkdir(parents=True, exist_ok=True)
    state_path = root / STATE_FILE
    try:
        state = json.loads(state_path.read_text()) if state_path.exists() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        state = {}  # rebuilt below: the file is ours and only describes what is there
    rootfs, wheels = root / "rootfs", runner_wheels()
    if state.get("suite") != SUITE or not (rootfs / f"usr/bin/python{PYTHON}").exists():
        build_root(rootfs, progress)
        state = {"suite": SUITE}
    if state.get("wheels") != wheels:
        install_wheels(rootfs, wheels, root / "wheels", progress)
    write_cpuinfo(rootfs, board)
    state.update(board={"name": board.name, "model": board.model, "cpu": board.cpu}, wheels=wheels)
    tmp = state_path.with_name(f".{STATE_FILE}.tmp")
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(state_path)
    return write_python(root, board)
