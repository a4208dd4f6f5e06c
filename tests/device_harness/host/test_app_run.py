"""The harness drives the Android demo app's benchmark mode: the `am start` line it sends, and
following the lines file the app appends to (here the Kotlin trainer itself writes it, as
the app does, on the JVM); a phone with the app, when one is attached."""
import subprocess

import pytest
from click.testing import CliRunner

from device_harness.host.app_run import APP_ACTIVITY, app_start_argv, follow_lines
from device_harness.host.cli import main
from device_harness.host.deploy import RunConfig
from edgetune.contract.lines import step_records
from edgetune.errors import ConfigError
from helpers.kotlin import ort_library
from helpers.phones import attached_phone


def test_the_start_line_names_the_activity_and_every_setting():
    argv = app_start_argv("/sdcard/a b/artifact", "/sdcard/notes.csv", "/sdcard/run.jsonl",
                          RunConfig(steps=7, runtime="executorch", threads=2))
    assert argv[:5] == ["am", "start", "-W", "-n", APP_ACTIVITY]
    extras = dict(zip(argv[6::3], argv[7::3]))
    assert extras == {"artifact": "/sdcard/a b/artifact", "data": "/sdcard/notes.csv", "steps": "7",
                      "runtime": "executorch", "out": "/sdcard/run.jsonl", "threads": "2"}
    assert argv[5::3] == ["--es", "--es", "--ei", "--es", "--es", "--ei"]


def test_follow_lines_reads_a_growing_file_to_its_end_event(kotlin_trainer, tiny_artifact, demo_data, tmp_path):
    art, _, _ = tiny_artifact
    out = tmp_path / "run.jsonl"
    with open(out, "w") as f:  # the Kotlin trainer appends its lines as the app does
        cmd = kotlin_trainer.command("TrainMain", ort_library(), art, demo_data[0], "--steps", 5,
                                     "--state", tmp_path / "s.safetensors")
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.PIPE, text=True)
        lines = list(follow_lines(lambda: out.read_text() if out.exists() else "", timeout=120, interval=0.05))
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    assert [r["step"] for r in step_records(lines)] == [1, 2, 3, 4, 5]
    assert lines == out.read_text().splitlines()


def test_follow_lines_gives_up_when_the_app_writes_nothing(tmp_path):
    f = tmp_path / "run.jsonl"
    f.write_text('{"event": "start", "step": 0, "target": 5}\n{"step": 1, "loss": 1.0')  # the last line never ends
    with pytest.raises(ConfigError, match="no line from the app"):
        list(follow_lines(f.read_text, timeout=0.3, interval=0.05))


def test_app_mode_is_for_adb_devices(tiny_artifact, demo_data):
    r = CliRunner().invoke(main, ["run", "local", str(tiny_artifact[0]), str(demo_data[0]), "--app"])
    assert r.exit_code != 0 and "--app runs the Android demo app over ADB" in r.output


def test_a_run_in_the_app_on_an_attached_phone(tiny_artifact, demo_data, tmp_path):
    serial = attached_phone()
    from device_harness.host.app_run import run_app_on_device
    from device_harness.host.transports.adb import ADBTransport

    with ADBTransport(serial) as t:
        if "edgetune.demo" not in t.device.shell(["pm", "list", "packages", "edgetune.demo"]):
            pytest.skip("edgetune.demo is not installed on the phone; build and install android_demo first")
        result = run_app_on_device(t, tiny_artifact[0], demo_data[0], tmp_path / "run", RunConfig(steps=3))
    assert [r["step"] for r in result.records] == [1, 2, 3] and (tmp_path / "run" / "state.safetensors").is_file()
