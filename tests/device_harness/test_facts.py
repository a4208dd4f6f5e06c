"""Device facts from /proc and the power_supply class, and the package check."""
import json
import subprocess
import sys

from device_harness.facts import cpu_model, energy_used, facts, missing_packages, ram_mb, read_energy

PI4_CPUINFO = """processor\t: 0
model name\t: ARMv7 Processor rev 3 (v7l)
BogoMIPS\t: 108.00
Hardware\t: BCM2835
Revision\t: c03114
Model\t\t: Raspberry Pi 4 Model B Rev 1.4
"""


def test_cpu_and_memory_from_proc_texts():
    assert cpu_model(PI4_CPUINFO) == "Raspberry Pi 4 Model B Rev 1.4"
    assert cpu_model("processor\t: 0\nmodel name\t: AMD EPYC 9454\n") == "AMD EPYC 9454"
    assert ram_mb("MemTotal:        3884404 kB\nMemFree: 1 kB\n") == 3884404 / 1024


def test_this_machine(tmp_path):
    f = facts()
    assert f["cores"] >= 1 and 1 <= f["usable_cores"] <= f["cores"]
    assert f["ram_mb"] > 100 and f["packages"]["numpy"] and f["python"] == "%d.%d.%d" % sys.version_info[:3]
    assert missing_packages("onnx") == []
    # the module runs with the standard library alone: with site-packages hidden (-S) it
    # still answers, naming what the runner lacks
    out = subprocess.run([sys.executable, "-S", "-m", "device_harness.facts"], capture_output=True, text=True,
                         cwd=tmp_path, env={"PYTHONPATH": str(__import__("pathlib").Path(__file__).parents[2])})
    missing = json.loads(out.stdout)["missing"]
    assert "numpy (pip install numpy)" in missing and "onnxruntime (pip install onnxruntime)" in missing


def _battery(root, **files):
    b = root / "BAT0"
    b.mkdir(parents=True)
    for k, v in {"type": "Battery", **files}.items():
        (b / k).write_text(f"{v}\n")


def test_energy_from_power_supply(tmp_path):
    _battery(tmp_path / "a", energy_now=50_000_000, status="Discharging")
    start = read_energy(tmp_path / "a")
    assert start == {"source": str(tmp_path / "a" / "BAT0" / "energy_now"), "uwh": 50e6, "status": "Discharging"}
    (tmp_path / "a" / "BAT0" / "energy_now").write_text("49990000\n")
    assert energy_used(start, read_energy(tmp_path / "a"))["uwh"] == 10_000
    _battery(tmp_path / "b", charge_now=3_000_000, voltage_now=4_000_000, status="Full")
    reading = read_energy(tmp_path / "b")
    assert reading["uwh"] == 12e6 and "not discharging" in energy_used(reading, reading)["unavailable"]
    (tmp_path / "c" / "AC").mkdir(parents=True)
    (tmp_path / "c" / "AC" / "type").write_text("Mains\n")
    assert "no battery" in read_energy(tmp_path / "c")["unavailable"]
    assert "does not exist" in read_energy(tmp_path / "none")["unavailable"]
