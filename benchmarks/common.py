"""What every benchmark shares: the machine it ran on, its data (explicit, or a smoke-sized
stand-in), and the JSON it writes. (Runner output is read with
`edgetune.contract.lines.step_records`, as everywhere else.)

Every script takes ``--smoke``: the same code path on a tiny model and a handful of steps
(seconds, not minutes), so the suite runs each script and notices when the code under it
moves (tests/benchmarks/test_smoke.py). Smoke numbers measure nothing and say so
(``"smoke": true`` in the JSON).
"""
from __future__ import annotations

import csv
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
PACKAGES = ("torch", "executorch", "onnxruntime", "onnx", "transformers", "peft", "numpy", "flwr", "ray", "edgetune")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_features() -> list[str]:
    """The instruction-set extensions that move these ratios (AVX2, AVX-512, VNNI, AMX; NEON/dotprod on ARM)."""
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8", "neon", "asimd", "asimddp", "i8mm")
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("flags", "features")):
                have = set(line.split(":", 1)[1].split())
                return [f for f in wanted if f in have]
    except OSError:
        pass
    return []


def timed_steps(run, steps: int, max_seconds: float, warmup: int = 3) -> tuple[object, dict]:
    """Every loop row's timing: ``warmup`` untimed calls of ``run`` (allocator, kernels, caches),
    then ``steps`` timed ones, cut at ``max_seconds`` after at least 3. -> (what the first call
    returned, {"ms_per_step": median, "steps"}). Standard library only: ort_training_peer.py
    runs it in an environment without edgetune."""
    first = run()
    for _ in range(warmup - 1):
        run()
    times, t_end = [], time.perf_counter() + max_seconds
    while len(times) < steps and (len(times) < 3 or time.perf_counter() < t_end):
        t0 = time.perf_counter()
        run()
        times.append(1000 * (time.perf_counter() - t0))
    return first, {"ms_per_step": statistics.median(times), "steps": len(times)}


def environment(threads: int | None) -> dict:
    """The CPU, cores, threads and package versions a result was measured with."""
    from edgetune.app.export_cache import package_versions

    versions = package_versions(PACKAGES)
    return {"cpu": cpu_model(), "cpu_features": cpu_features(), "machine": platform.machine(),
            "logical_cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "threads": threads, "python": platform.python_version(), "versions": versions}


def write_json(path: str | Path, result: dict, threads: int | None, smoke: bool) -> None:
    """``result`` plus ``environment`` and ``smoke``, written atomically."""
    from edgetune.files import write_atomic

    out = {**result, "environment": environment(threads), "smoke": smoke}
    write_atomic(Path(path), json.dumps(out, indent=1).encode("utf-8"))


def require(path: Path | None, what: str, flag: str = "--data") -> Path:
    """``path`` if it exists, else exit with one line naming the flag and what it must hold."""
    if path is None or not Path(path).exists():
        sys.exit(f"error: {what} not found at {path}; pass {flag} (or --smoke for a tiny stand-in)")
    return Path(path)


def smoke_classification(work: Path) -> Path:
    """A directory shaped like BANKING77 (train.csv, test.csv with text,category) from the demo data."""
    from edgetune.data.demo import write_demo_data
    from edgetune.data.records import read_examples

    d = work / "smoke_data"
    train, test = write_demo_data(d / "demo", n_train=12, n_test=4)
    for src, name in ((train, "train.csv"), (test, "test.csv")):
        with open(d / name, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["text", "category"])
            w.writerows((e.text, e.label) for e in read_examples(src))
    return d


def smoke_text(work: Path) -> Path:
    """Running text for language-model smoke runs (the demo's notes)."""
    from edgetune.data.demo import write_demo_text

    train, held = write_demo_text(work / "smoke_text")
    joined = work / "smoke_text" / "all.txt"
    joined.write_text(train.read_text(encoding="utf-8") + held.read_text(encoding="utf-8"), encoding="utf-8")
    return joined


def tiny_gguf(work: Path) -> Path:
    """A 2-layer Llama GGUF with SmolLM2's tokenizer and integer blocks (the tests' generator,
    loaded by path: tests/ on sys.path would shadow the packages)."""
    mod = test_helper("gguf_files")
    path = work / "tiny.gguf"
    if not path.exists():
        mod.write_tiny_llama(path, hidden=64, ffn=128, layers=2, tokenizer_from=mod.smollm2_path())
    return path


def test_helper(name: str):
    """tests/helpers/NAME.py as a module, loaded by path: tests/ on sys.path would shadow the
    packages with its mirror folders."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"{name}_helper", ROOT.parent / "tests" / "helpers" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is made
    spec.loader.exec_module(mod)
    return mod


def default_out(name: str, smoke: bool) -> Path:
    """benchmarks/results/NAME.json; smoke runs write beside their work, never over a result."""
    return ROOT / ".work" / "smoke" / f"{name}.json" if smoke else ROOT / "results" / f"{name}.json"
