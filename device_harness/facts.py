"""What the device is and what it can measure, read on the device with the standard library.

    facts() -> {"cpu_model", "cores", "ram_mb", "os", "machine", "python", "packages": {...}}
    read_energy() -> {"source", "uwh"} | {"unavailable": reason}
    missing_packages(runtime) -> ["pip install ..." hints]

    python -m device_harness.facts [--runtime onnx]   (JSON; runs before numpy is known to exist)

Energy comes from Linux's power_supply class: ``energy_now`` (µWh), or ``charge_now``
(µAh) times ``voltage_now`` (µV). It is a battery gauge, so it moves only while the
device runs on battery; on mains power, or where no battery is exposed (a board, a
container), energy is reported as unavailable with the reason.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
from pathlib import Path

POWER_SUPPLY = Path("/sys/class/power_supply")
# module -> pip name; the runner needs all of these before its first step
RUNNER_PACKAGES = {"numpy": "numpy", "safetensors": "safetensors", "tokenizers": "tokenizers"}
RUNTIME_PACKAGES = {"onnx": ("onnxruntime", "onnxruntime"), "executorch": ("executorch.runtime", "executorch")}


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's name from /proc/cpuinfo: a board's 'Model' line first (Raspberry Pi), else
    'model name' (x86, ARM cores), else 'Hardware'."""
    text = cpuinfo if cpuinfo is not None else (_read(Path("/proc/cpuinfo")) or "")
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and value.strip():
            fields.setdefault(key.strip(), value.strip())
    for key in ("Model", "model name", "Hardware", "Processor", "cpu model"):
        if key in fields:
            return fields[key]
    return platform.processor() or platform.machine() or "unknown"


def ram_mb(meminfo: str | None = None) -> float | None:
    """MemTotal from /proc/meminfo in MiB (None where there is no /proc)."""
    text = meminfo if meminfo is not None else (_read(Path("/proc/meminfo")) or "")
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024.0
    return None


def package_version(module: str, dist: str | None = None) -> str | None:
    """The installed version of ``module`` (from ``dist``'s metadata), None if it is not
    importable. Nothing is imported: executorch's import alone loads torch."""
    try:
        if importlib.util.find_spec(module) is None:
            return None
    except (ImportError, ValueError):  # a parent package is missing
        return None
    try:
        return importlib.metadata.version(dist or module.split(".")[0])
    except importlib.metadata.PackageNotFoundError:
        return "installed"


def missing_packages(runtime: str) -> list[str]:
    """What the runner lacks on this device for ``runtime``, as install hints (empty: ready)."""
    need = dict(RUNNER_PACKAGES)
    module, pip_name = RUNTIME_PACKAGES[runtime]
    need[module] = pip_name
    return [f"{module} (pip install {pip})" for module, pip in need.items() if package_version(module, pip) is None]


def read_energy(root: Path = POWER_SUPPLY) -> dict:
    """The battery's remaining energy in µWh, or why it cannot be read."""
    if not root.is_dir():
        return {"unavailable": f"{root} does not exist (no Linux power_supply class)"}
    for supply in sorted(root.iterdir()):
        if _read(supply / "type") != "Battery":
            continue
        energy = _read(supply / "energy_now")
        if energy is not None:
            return {"source": str(supply / "energy_now"), "uwh": float(energy),
                    "status": _read(supply / "status")}
        charge, volts = _read(supply / "charge_now"), _read(supply / "voltage_now")
        if charge is not None and volts is not None:
            return {"source": f"{supply}/charge_now x voltage_now", "uwh": float(charge) * float(volts) / 1e6,
                    "status": _read(supply / "status")}
    return {"unavailable": f"no battery under {root} exposes energy_now or charge_now and voltage_now"}


def energy_used(start: dict, end: dict) -> dict:
    """µWh drawn between two `read_energy` readings, or why there is no number."""
    if "uwh" not in start or "uwh" not in end:
        return {"unavailable": start.get("unavailable") or end.get("unavailable")}
    if "Discharging" not in {start.get("status"), end.get("status")}:
        return {"unavailable": f"the battery was not discharging ({start.get('status')}): the gauge does not "
                               "measure what the device draws on mains power"}
    return {"uwh": start["uwh"] - end["uwh"], "source": start["source"]}


def facts() -> dict:
    """The device as the runner sees it: CPU, cores, memory, OS and package versions."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count()
    return {
        "cpu_model": cpu_model(), "cores": os.cpu_count(), "usable_cores": usable, "ram_mb": ram_mb(),
        "os": platform.platform(), "machine": platform.machine(), "python": platform.python_version(),
        "packages": {name: package_version(name) for name in
                     ("numpy", "onnxruntime", "executorch", "safetensors", "tokenizers")},
        "energy": read_energy(),
    }


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    ap = argparse.ArgumentParser(prog="python -m device_harness.facts", description="device facts as JSON")
    ap.add_argument("--runtime", default="onnx", choices=sorted(RUNTIME_PACKAGES))
    a = ap.parse_args(argv)
    print(json.dumps({"facts": facts(), "missing": missing_packages(a.runtime)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
