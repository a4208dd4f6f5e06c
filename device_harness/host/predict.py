"""Step time on a named board, on paper: the step's counted work against the board's
measured throughput (`device_harness.host.boards`). Every figure it makes is labelled
"predicted"; none comes from running on the board.

    floor_ms(cost, throughput) -> (ms, "compute" | "memory")
    measure_host() -> Throughput of this machine, measured now (fp32 matmul, copy)
    reference_for(facts) -> the Throughput of the device a run was measured on, or None
    predict(summary, cost, board, reference) -> {"board", "floor_ms", "bound", "predicted_ms", ...}
    add_predictions(summaries, runs, boards): each profile summary gains "predicted", one entry per board

``cost`` is the artifact's ``model.step_cost`` (`exporters.cost`): the FLOPs of one step
and the bytes it must move. The floor is the roofline's: max(FLOPs / matmul rate, bytes /
copy bandwidth); no step is faster. The prediction is the measured step time scaled by the
ratio of the two devices' floors (board over the device the run was measured on): it
assumes the step keeps the same fraction of its floor on the board. Known limits: the
runtime's ARM kernels may reach a different fraction than its x86 ones, and a board that
runs hot throttles.
"""
from __future__ import annotations

import os
import time

import numpy as np

from device_harness.host.boards import BOARDS, Board, Throughput
from edgetune.errors import ConfigError

MATMUL_N = 2048  # fp32 matmul size of the host measurement (4 GFLOP, well past every cache)
COPY_BYTES = 256 * 2**20  # copy size of the host measurement


def floor_ms(cost: dict, tp: Throughput) -> tuple[float, str]:
    """The roofline floor of one step on a device of throughput ``tp``, and what bounds it."""
    compute = cost["flops"] / (tp.gflops * 1e9) * 1e3
    memory = cost["bytes"] / (tp.copy_gbps * 1e9) * 1e3
    return (compute, "compute") if compute >= memory else (memory, "memory")


def _best_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: thread pool, pages
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def measure_host(repeats: int = 3) -> Throughput:
    """This machine's fp32 matmul rate (numpy's BLAS, every core) and copy bandwidth, the best
    of ``repeats`` runs each."""
    a, b = (np.random.default_rng(i).standard_normal((MATMUL_N, MATMUL_N), dtype=np.float32) for i in range(2))
    src, dst = np.ones(COPY_BYTES // 4, np.float32), np.empty(COPY_BYTES // 4, np.float32)
    mm, cp = _best_seconds(lambda: np.matmul(a, b), repeats), _best_seconds(lambda: np.copyto(dst, src), repeats)
    return Throughput(2 * MATMUL_N**3 / mm / 1e9, COPY_BYTES / cp / 1e9,
                      f"measured on this machine ({os.cpu_count()} cores): numpy fp32 matmul {MATMUL_N}^3, "
                      f"copy of {COPY_BYTES >> 20} MB")


def board_of(facts: dict) -> Board | None:
    """The named board a run's device is (by its CPU model), unless it was emulated."""
    model = facts.get("cpu_model") or ""
    if "emulated" in model:
        return None
    return next((b for b in BOARDS.values() if b.model and model.startswith(b.model.rsplit(" Rev", 1)[0])), None)


def reference_for(facts: dict, host: str, measure=measure_host) -> Throughput | None:
    """The throughput of the device a run was measured on: this machine's (measured now) when
    the run's CPU model is ``host``'s, a named board's when it ran on one, else None."""
    board = board_of(facts)
    if board:
        return board.throughput
    return measure() if facts.get("cpu_model") == host else None


def step_cost(artifact: dict) -> dict | None:
    """The step cost a run's artifact summary carries (None: exported before it was counted)."""
    cost = artifact.get("step_cost")
    return cost if isinstance(cost, dict) and cost.get("flops") and cost.get("bytes") else None


def predict(summary: dict, cost: dict | None, board: str, reference: Throughput | None) -> dict:
    """The predicted step time of a profiled run (`profile.summarize`) on ``board``."""
    if board not in BOARDS:
        raise ConfigError(f"unknown board {board!r}; choose one of {sorted(BOARDS)}")
    if cost is None:
        raise ConfigError(f"run {summary['run_id']}: its artifact carries no step cost (model.step_cost); "
                          "re-export the artifact with this edgetune")
    b = BOARDS[board]
    floor, bound = floor_ms(cost, b.throughput)
    out = {"board": board, "floor_ms": floor, "bound": bound, "predicted_ms": None, "source": b.throughput.source}
    if reference is not None:
        here, _ = floor_ms(cost, reference)
        out["predicted_ms"] = summary["ms_p50"] * floor / here
        out["fraction_of_floor"] = here / summary["ms_p50"]
    return out


def add_predictions(summaries: list[dict], runs: list, boards) -> None:
    """Each summary (`profile.summarize` of the run beside it) gains "predicted": `predict`
    on each of ``boards``. This machine is measured once, and only if a run was on it."""
    from functools import cache

    from device_harness.facts import cpu_model

    host, measure = cpu_model(), cache(measure_host)
    for s, run in zip(summaries, runs):
        ref = reference_for(run.facts, host, measure)
        s["predicted"] = [predict(s, step_cost(run.artifact), b, ref) for b in boards]
