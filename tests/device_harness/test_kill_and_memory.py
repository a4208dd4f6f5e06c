"""The runner under SIGKILL and under very long inputs, as separate processes (slow).

- 100 SIGKILLs at random moments of `train --save-every 1`: after each, the state file
  loads with the contract's check and its step never goes back; the next run removes the
  killed writer's temporary files.
- Peak RSS (VmHWM of the runner process) of `train` on a 1,000,000-line CSV and on one
  200 MB line of running text stays within 1.2x of the same run on a 1,000-line file.
"""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgetune.contract.manifest import load_manifest
from edgetune.contract.state import load_state
from edgetune.data.records import read_examples

ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def _train_cmd(art: Path, data: Path, state: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "device_harness.runner", "train", str(art), str(data), "--state", str(state), *extra]


def _temporaries(state: Path) -> list[Path]:
    return sorted(state.parent.glob(f".{state.name}.*.tmp"))


@pytest.mark.slow
def test_sigkill_at_random_moments_never_loses_or_tears_the_state(tiny_artifact, demo_data, tmp_path):
    art = tiny_artifact[0]
    manifest = load_manifest(art, verify=False)
    state = tmp_path / "state.safetensors"
    rng = random.Random(15)
    last_step, killed_mid_write, steps_seen = 0, 0, set()
    for i in range(100):
        p = subprocess.Popen(_train_cmd(art, demo_data[0], state, "--steps", "100000", "--save-every", "1"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
        # the first ~1.5 s are imports and opening the artifact; later kills land in steps and saves
        time.sleep(rng.uniform(0.05, 3.0))
        p.send_signal(signal.SIGKILL)
        _, err = p.communicate()
        assert p.returncode in (-signal.SIGKILL, 0), (i, p.returncode, err[-2000:])
        killed_mid_write += bool(_temporaries(state))
        if state.exists():
            _, step = load_state(state, manifest)  # raises on a torn or unloadable state
            assert step >= last_step, (i, step, last_step)
            last_step = step
            steps_seen.add(step)
    assert last_step > 20 and len(steps_seen) > 10, (last_step, len(steps_seen))  # kills landed while training
    # the next run (not killed) trains on from the last state and leaves no temporary file
    done = subprocess.run(_train_cmd(art, demo_data[0], state, "--steps", "1"), capture_output=True, text=True, env=ENV)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _temporaries(state) == []
    assert load_state(state, manifest)[1] == last_step + 1
    print(f"100 SIGKILLs: final step {last_step}, {killed_mid_write} kills left a temporary file (removed by the next run)")


def _peak_rss_mb(art: Path, data: Path, state: Path) -> float:
    p = subprocess.run(_train_cmd(art, data, state, "--steps", "2", "--save-every", "0"), capture_output=True,
                       text=True, env=ENV)
    assert p.returncode == 0, p.stderr[-2000:]
    records = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    return max(r["peak_rss_mb"] for r in records if "peak_rss_mb" in r)


def _write_csv(path: Path, rows: list[tuple[str, str]], n: int) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        f.write("text,label\n")
        for i in range(n):
            text, label = rows[i % len(rows)]
            f.write(f"{text} {i},{label}\n")
    return path


@pytest.mark.slow
def test_peak_rss_does_not_grow_with_the_data_file(tiny_artifact, tiny_lm, demo_data, tmp_path):
    rows = [(e.text.replace(",", " ").replace('"', " "), e.label) for e in read_examples(demo_data[0])]
    art = tiny_artifact[0]
    small = _peak_rss_mb(art, _write_csv(tmp_path / "small.csv", rows, 1_000), tmp_path / "a.st")
    many = _peak_rss_mb(art, _write_csv(tmp_path / "many.csv", rows, 1_000_000), tmp_path / "b.st")
    lm_art = tiny_lm[0] / "art"
    words = (tiny_lm[2].read_text(encoding="utf-8").split() * 50)[:5000]
    short = tmp_path / "short.txt"
    short.write_text("".join(" ".join(words[8 * i % 4992:][:8]) + "\n" for i in range(1_000)), encoding="utf-8")
    lm_small = _peak_rss_mb(lm_art, short, tmp_path / "c.st")
    line = tmp_path / "line.txt"
    chunk = (" ".join(words) + " ").encode("utf-8")
    with open(line, "wb") as f:
        while f.tell() < 200 * 2**20:
            f.write(chunk)
    lm_line = _peak_rss_mb(lm_art, line, tmp_path / "d.st")
    print(f"peak RSS MB: classifier 1,000 lines {small:.0f}, 1,000,000 lines {many:.0f}; "
          f"language model 1,000 lines {lm_small:.0f}, one 200 MB line {lm_line:.0f}")
    assert many <= 1.2 * small, (small, many)
    assert lm_line <= 1.2 * lm_small, (lm_small, lm_line)
