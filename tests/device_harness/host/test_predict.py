"""Step times predicted for named boards: the roofline floor and the scaled measurement, by hand."""
import json
import shutil

import pytest
from click.testing import CliRunner

from device_harness.host.boards import BOARDS, EMULATED, Throughput
from device_harness.host.cli import main
from device_harness.host.deploy import RunConfig, load_run, run_on_device
from device_harness.host.predict import board_of, floor_ms, predict, reference_for
from device_harness.host.profile import summarize
from device_harness.host.report import write_report
from device_harness.host.transports.local import LocalTransport
from edgetune.errors import ConfigError

COST = {"flops": 12e9, "bytes": 90e6}  # about MiniLM-L6's step at batch 8 x 32 tokens


def test_floor_is_the_slower_of_compute_and_memory():
    assert floor_ms(COST, Throughput(24.0, 3.0, "")) == pytest.approx((500.0, "compute"))  # 12e9 / 24e9 s; 90e6 / 3e9 = 30 ms
    assert floor_ms({"flops": 1e6, "bytes": 90e6}, Throughput(24.0, 3.0, "")) == pytest.approx((30.0, "memory"))


def test_prediction_scales_the_measured_time_by_the_ratio_of_floors():
    here = Throughput(200.0, 12.0, "this machine")  # floor: 60 ms (compute)
    p = predict({"run_id": "r", "ms_p50": 150.0}, COST, "pi4", here)
    pi4 = BOARDS["pi4"].throughput
    floor = 12e9 / (pi4.gflops * 1e9) * 1e3
    assert p["floor_ms"] == pytest.approx(floor) and p["bound"] == "compute"
    assert p["predicted_ms"] == pytest.approx(150.0 * floor / 60.0) and p["fraction_of_floor"] == pytest.approx(0.4)
    assert "github.com" in p["source"]
    assert predict({"run_id": "r", "ms_p50": 150.0}, COST, "pi5", None)["predicted_ms"] is None  # no reference: floor only
    with pytest.raises(ConfigError, match="unknown board 'pi9'"):
        predict({"run_id": "r", "ms_p50": 1.0}, COST, "pi9", here)
    with pytest.raises(ConfigError, match="no step cost.*re-export"):
        predict({"run_id": "r", "ms_p50": 1.0}, None, "pi4", here)


def test_the_device_a_run_was_measured_on():
    assert board_of({"cpu_model": "Raspberry Pi 4 Model B Rev 1.4"}) is BOARDS["pi4"]
    assert board_of({"cpu_model": "Raspberry Pi 5 Model B Rev 1.0 (emulated: qemu-aarch64 -cpu cortex-a76)"}) is None
    assert board_of({"cpu_model": "AMD EPYC 7B13"}) is None and set(EMULATED) == {"pi4", "pi5"}
    measured = []
    here = Throughput(1.0, 1.0, "")
    measure = lambda: measured.append(1) or here  # noqa: E731
    assert reference_for({"cpu_model": "Raspberry Pi 5 Model B Rev 1.0"}, "x86", measure) is BOARDS["pi5"].throughput
    assert reference_for({"cpu_model": "x86"}, "x86", measure) is here and measured == [1]
    assert reference_for({"cpu_model": "Some SoC"}, "x86", measure) is None and measured == [1]


@pytest.fixture(scope="module")
def run_dir(tiny_artifact, demo_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("predict") / "run"
    with LocalTransport() as t:
        run_on_device(t, tiny_artifact[0], demo_data[0], out, RunConfig(steps=8, threads=1), run_id="here")
    return out


def test_profile_predicts_from_the_artifacts_counted_cost(run_dir, tiny_artifact, tmp_path):
    cost = tiny_artifact[1].model["step_cost"]
    r = CliRunner().invoke(main, ["profile", str(run_dir), "--json", "--predict", "pi4", "--predict", "phone-a76"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)[0]
    assert [p["board"] for p in s["predicted"]] == ["pi4", "phone-a76"]
    for p in s["predicted"]:  # this machine's run: scaled by its measured throughput
        assert p["floor_ms"] == pytest.approx(floor_ms(cost, BOARDS[p["board"]].throughput)[0])
        assert 0 < p["fraction_of_floor"] <= 1  # no step beats its floor on this machine either
        assert p["predicted_ms"] == pytest.approx(p["floor_ms"] / p["fraction_of_floor"])
    r = CliRunner().invoke(main, ["profile", str(run_dir), "--predict", "pi5"])
    assert r.exit_code == 0 and "predicted (on paper, not measured on the board)" in r.output
    assert "geerlingguy/top500-benchmark/issues/18" in r.output

    other = tmp_path / "other"  # the same run, as if measured on an unknown device: the floor only
    shutil.copytree(run_dir, other)
    saved = json.loads((other / "run.json").read_text())
    saved["facts"]["cpu_model"] = "Some SoC"
    (other / "run.json").write_text(json.dumps(saved))
    r = CliRunner().invoke(main, ["profile", str(other), "--predict", "pi4"])
    row = next(l for l in r.output.splitlines() if l.startswith("here ") and " pi4 " in l)
    assert r.exit_code == 0 and row.split()[-2] == "-" and "only the floor is known" in r.output
    saved["artifact"].pop("step_cost")  # exported before the cost was counted
    (other / "run.json").write_text(json.dumps(saved))
    r = CliRunner().invoke(main, ["profile", str(other), "--predict", "pi4"])
    assert r.exit_code != 0 and "carries no step cost" in r.output and "re-export" in r.output


def test_report_has_a_labelled_predicted_table(run_dir, tmp_path):
    md = write_report([load_run(run_dir)], tmp_path / "rep", warmup=2, boards=("pi4", "pi5")).read_text()
    assert "## Predicted step times on named boards (on paper, not measured there)" in md
    rows = [l for l in md.splitlines() if l.startswith("| here ") and ("| pi4 |" in l or "| pi5 |" in l)]
    assert len(rows) == 2 and f"{summarize(load_run(run_dir), 2)['ms_p50']:.1f} |" in rows[0]
