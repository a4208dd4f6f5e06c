"""ADB: the shell line, exit-status and battery parsing without a phone; a real phone when
one is attached (skipped with the reason otherwise)."""
import subprocess

import pytest

from device_harness.facts import energy_used
from device_harness.host.transports.adb import parse_battery, parse_getprop, split_exit_marker, wrapped_shell_line
from helpers.phones import attached_phone

DUMPSYS = """Current Battery Service state:
  AC powered: false
  USB powered: {usb}
  Wireless powered: false
  Max charging current: 0
  status: 3
  health: 2
  present: true
  level: 87
  scale: 100
  voltage: 4213
  temperature: 285
  technology: Li-ion
  Charge counter: {counter}
"""


def test_shell_line_quotes_every_word_and_carries_the_exit_status(tmp_path):
    line = wrapped_shell_line(["python3", "-m", "device_harness.runner", "train", "a b", "it's.csv"],
                              "/data/local/tmp/edgetune/runner", {"OMP_NUM_THREADS": "2"}, "/data/local/tmp/x err")
    assert line == ("{ cd /data/local/tmp/edgetune/runner && env OMP_NUM_THREADS=2 python3 -m device_harness.runner "
                    "train 'a b' 'it'\"'\"'s.csv' ; } 2>'/data/local/tmp/x err'; echo __edgetune_exit=$?")
    # a real POSIX shell runs such a line: the words arrive intact, stderr goes to the file,
    # and the status follows the output (on the same line when the output has no final newline)
    cmd = wrapped_shell_line(["sh", "-c", 'printf "[%s]" "$@"; echo oops >&2; exit 7', "-", "a b", "it's"],
                             str(tmp_path), {"X": "1"}, str(tmp_path / "err"))
    out = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True).stdout.splitlines()
    assert [split_exit_marker(l) for l in out] == [("[a b][it's]", 7)]
    assert (tmp_path / "err").read_text() == "oops\n"
    assert split_exit_marker('{"step": 1}') == ('{"step": 1}', None)
    assert split_exit_marker("__edgetune_exit=0") == ("", 0)


def test_battery_and_properties_parsing():
    start = parse_battery(DUMPSYS.format(usb="false", counter=3000000))
    end = parse_battery(DUMPSYS.format(usb="false", counter=2990000))
    assert start["status"] == "Discharging" and start["uwh"] == pytest.approx(3000000 * 4213 / 1000)
    assert energy_used(start, end)["uwh"] == pytest.approx(10000 * 4.213)  # 10 mAh at 4.213 V = 42.13 mWh
    charging = parse_battery(DUMPSYS.format(usb="true", counter=3000000))
    assert "not discharging" in energy_used(charging, charging)["unavailable"]
    assert "no charge counter" in parse_battery("Current Battery Service state:\n  level: 50\n")["unavailable"]
    props = parse_getprop("[ro.product.model]: [Pixel 7]\n[ro.build.version.release]: [14]\n[empty]: []\n")
    assert props == {"ro.product.model": "Pixel 7", "ro.build.version.release": "14", "empty": ""}


def test_push_run_fetch_on_an_attached_phone(tmp_path):
    serial = attached_phone()
    from device_harness.host.transports.adb import ADBTransport

    t = ADBTransport(serial)
    (tmp_path / "hello.txt").write_text("hello")
    t.push(tmp_path / "hello.txt", "probe/hello.txt")
    lines, end = t.run(["cat", "probe/hello.txt"])
    assert lines == ["hello"] and end.status == 0
    t.fetch("probe/hello.txt", tmp_path / "back.txt")
    assert (tmp_path / "back.txt").read_text() == "hello"
    t.remove("probe")
    assert not t.exists("probe/hello.txt")
