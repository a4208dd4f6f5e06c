"""`edgetune fleet run`: a local fleet from the command line, and its one-line errors."""
import csv
import json

import pytest
from click.testing import CliRunner

from edgetune.app.cli import main


def test_bad_settings_fail_before_any_process(tiny_artifact, demo_data, tmp_path):
    art = str(tiny_artifact[0])
    r = CliRunner().invoke(main, ["fleet", "run", art, str(demo_data[0]), "--work", str(tmp_path / "w"),
                                  "--set", "num-round=2"])
    assert r.exit_code != 0 and "unknown run-config keys ['num-round']" in r.output
    r = CliRunner().invoke(main, ["fleet", "run", art, str(demo_data[0]), "--work", str(tmp_path / "w"),
                                  "--personal", "heads.*"])
    assert r.exit_code != 0 and "matches no trainable tensor" in r.output
    assert not (tmp_path / "w" / "logs").exists()


@pytest.mark.slow
def test_fleet_run_two_clients(tiny_artifact, demo_data, tmp_path):
    art = str(tiny_artifact[0])
    with open(demo_data[0], newline="") as f:
        header, *rows = list(csv.reader(f))
    files = []
    for i in range(2):
        files.append(tmp_path / f"user{i}.csv")
        with open(files[-1], "w", newline="") as f:
            csv.writer(f).writerows([header] + rows[i::2])
    work = tmp_path / "w"
    r = CliRunner().invoke(main, ["fleet", "run", art, *map(str, files), "--work", str(work), "--rounds", "2",
                                  "--local-steps", "2", "--personal", "head.*"])
    assert r.exit_code == 0, r.output[-3000:]
    rounds = json.loads((work / "out" / "rounds.json").read_text())
    assert [(x["sampled"], x["accepted"]) for x in rounds] == [(2, 2), (2, 2)]
    assert "| 2 | 2 | 2 | 0 | 0 |" in r.output and (work / "out" / "global.safetensors").is_file()
    assert sorted(p.name for p in (work / "states").iterdir()) == ["0.user0.safetensors", "1.user1.safetensors"]
