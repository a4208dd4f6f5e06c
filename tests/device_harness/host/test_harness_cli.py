"""device-harness run | profile | report | devices, on this machine as the device."""
import json

from click.testing import CliRunner

from device_harness.host.cli import device_spec, main, read_devices


def test_run_profile_report(tiny_artifact, demo_data, tmp_path):
    r = CliRunner().invoke(main, ["run", "local", str(tiny_artifact[0]), str(demo_data[0]), "--steps", "6",
                                  "--budget", "pi4-2gb", "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    assert "done; run written to" in r.output and "p50 ms" in r.output
    saved = json.loads((tmp_path / "run" / "run.json").read_text())
    assert [x["step"] for x in saved["records"]] == [1, 2, 3, 4, 5, 6] and saved["config"]["budget"]["name"] == "pi4-2gb"
    r = CliRunner().invoke(main, ["profile", str(tmp_path / "run"), "--json", "--warmup", "2"])
    assert r.exit_code == 0 and json.loads(r.output)[0]["measured"] == 4
    r = CliRunner().invoke(main, ["report", str(tmp_path / "run"), "--out", str(tmp_path / "rep")])
    assert r.exit_code == 0 and (tmp_path / "rep" / "report.md").exists()
    r = CliRunner().invoke(main, ["profile", str(tmp_path)])
    assert r.exit_code != 0 and "does not exist; pass a directory written by `device-harness run`" in r.output


def test_devices_file_and_device_names(tmp_path):
    f = tmp_path / "devices.toml"
    f.write_text('[devices.pi4]\ntransport = "ssh"\nhost = "pi4.local"\nuser = "pi"\n')
    named = read_devices(f)
    assert device_spec("pi4", named, key="/k") == {"transport": "ssh", "host": "pi4.local", "user": "pi", "key": "/k"}
    assert device_spec("ssh://me@10.0.0.2:2222", {}) == {"transport": "ssh", "host": "10.0.0.2", "port": 2222, "user": "me"}
    assert device_spec("adb://R58M", {}, key="/k") == {"transport": "adb", "serial": "R58M"}
    f.write_text('[devices.x]\ntransport = "ssh"\nhots = "typo"\n')
    r = CliRunner().invoke(main, ["devices", "--devices-file", str(f)])
    assert r.exit_code != 0 and "unknown keys ['hots']" in r.output
    r = CliRunner().invoke(main, ["run", "nowhere", str(tmp_path), str(f)])
    assert r.exit_code != 0 and "unknown device 'nowhere'" in r.output


def test_devices_lists_this_machine(tmp_path):
    r = CliRunner().invoke(main, ["devices", "--devices-file", str(tmp_path / "none.toml")])
    assert r.exit_code == 0 and r.output.startswith("local") and " ok " in r.output.splitlines()[0]
