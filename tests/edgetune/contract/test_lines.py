"""The runner's output lines: step records and events told apart, drift refused."""
import json

import pytest

from edgetune.contract.lines import STEP_FIELDS, StepRecord, parse_line, step_records
from edgetune.errors import ArtifactError


def test_a_step_record_round_trips_and_events_are_not_steps():
    rec = StepRecord(3, 1.2345678, 12.34567, 20.0, 1.5, 300.04, 310.06)
    line = rec.json()
    assert parse_line(line) == ("step", json.loads(line)) and set(json.loads(line)) == set(STEP_FIELDS)
    assert json.loads(line)["loss"] == 1.234568 and json.loads(line)["ms"] == 12.346
    lines = ['{"event": "start", "step": 0}', "a warning a library printed", line, '{"event": "end", "reason": "done"}']
    assert step_records(lines) == [json.loads(line)]
    assert parse_line(lines[0])[0] == "event" and parse_line(lines[1]) is None


@pytest.mark.parametrize("line", ['{"step": 1, "loss": 2.0}', '{"event": "paused"}', "{not json"])
def test_a_line_of_another_format_is_an_error(line):
    with pytest.raises(ArtifactError):
        parse_line(line)
