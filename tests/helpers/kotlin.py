"""Build and run android_demo's Kotlin trainer on the JVM, for the tests and the benchmark.

The tools come from the npm registry (package.json at the repository root: `npm ci`): the
Kotlin compiler (`kotlin-compiler`) and ONNX Runtime's C library (`onnxruntime-node` ships
libonnxruntime.so). The test-side runtime calls that library through Java's foreign-function
API, which needs a Java 22+ JDK (Temurin 25 here); the trainer itself is compiled for Java 17,
as an Android library would be.
"""
from __future__ import annotations

import glob
import hashlib
import json
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TRAINER = ROOT / "android_demo" / "trainer"
NODE_MODULES = ROOT / "node_modules"
JDK_GLOBS = ("/usr/lib/jvm/temurin-2[2-9]-jdk*", "/usr/lib/jvm/java-2[2-9]-openjdk*")


def _missing() -> list[str]:
    out = []
    if not (NODE_MODULES / "kotlin-compiler" / "bin" / "kotlinc").is_file():
        out.append("the Kotlin compiler (npm package kotlin-compiler: ONNXRUNTIME_NODE_INSTALL=skip npm ci)")
    if not ort_library().is_file():
        out.append(f"ONNX Runtime's C library for {platform.machine()} (npm package onnxruntime-node: npm ci)")
    if jdk() is None:
        out.append("a Java 22+ JDK for the foreign-function API (e.g. /usr/lib/jvm/temurin-25-jdk-amd64)")
    return out


def jdk() -> Path | None:
    for pattern in JDK_GLOBS:
        for d in sorted(glob.glob(pattern), reverse=True):
            if (Path(d) / "bin" / "java").is_file():
                return Path(d)
    return None


def ort_library() -> Path:
    arch = {"x86_64": "x64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return NODE_MODULES / "onnxruntime-node" / "bin" / "napi-v6" / "linux" / arch / "libonnxruntime.so.1"


@dataclass
class KotlinTrainer:
    """The compiled trainer (main) and its JVM test programs (test)."""

    classpath: str
    java: Path

    def command(self, main: str, *args, jvm: tuple[str, ...] = ()) -> list[str]:
        """The command line of ``edgetune.trainer.<main>Kt`` with ``args`` (ONNX Runtime's library is
        the first argument of the mains that train) and JVM options ``jvm``."""
        return [str(self.java), *jvm, "--enable-native-access=ALL-UNNAMED", "-cp", self.classpath,
                f"edgetune.trainer.{main}Kt", *map(str, args)]

    def run(self, main: str, *args, check: bool = True, timeout: float = 900, **kw) -> subprocess.CompletedProcess:
        """Run `command` and wait; with ``check``, a failure raises with its stderr."""
        out = subprocess.run(self.command(main, *args), capture_output=True, text=True, timeout=timeout, **kw)
        if check and out.returncode != 0:
            raise AssertionError(f"{main} exited {out.returncode}: {out.stderr[-3000:]}")
        return out

    def conformance(self, artifact, kit, threads: int | None = None) -> dict:
        out = self.run("ConformanceMain", ort_library(), artifact, kit, *([threads] if threads else []), check=False)
        if out.returncode not in (0, 2) or not out.stdout.strip():
            raise AssertionError(f"ConformanceMain exited {out.returncode}: {out.stderr[-3000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])


def build(cache: Path) -> KotlinTrainer:
    """Compile android_demo/trainer (main for Java 17, test programs for the JDK above) into
    ``cache``, reusing an earlier build of the same sources. Raises RuntimeError naming what is
    missing."""
    missing = _missing()
    if missing:
        raise RuntimeError("cannot build the Kotlin trainer: missing " + "; ".join(missing))
    sources = sorted(TRAINER.glob("src/**/*.kt"))
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]
    out = cache / f"kotlin-{digest}"
    kotlinc = NODE_MODULES / "kotlin-compiler" / "bin" / "kotlinc"
    main_jar, test_jar = out / "trainer.jar", out / "trainer-tests.jar"
    if not test_jar.is_file():
        tmp = out.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for args in ([TRAINER / "src" / "main" / "kotlin", "-jvm-target", "17", "-d", tmp / main_jar.name],
                     [TRAINER / "src" / "test" / "kotlin", "-jdk-home", jdk(), "-jvm-target", "22",
                      "-cp", tmp / main_jar.name, "-d", tmp / test_jar.name]):
            r = subprocess.run([str(kotlinc), "-nowarn", *map(str, args)], capture_output=True, text=True, timeout=900)
            if r.returncode != 0:
                raise RuntimeError(f"kotlinc failed:\n{r.stderr[-4000:]}")
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    stdlib = NODE_MODULES / "kotlin-compiler" / "lib" / "kotlin-stdlib.jar"
    return KotlinTrainer(f"{main_jar}:{test_jar}:{stdlib}", jdk() / "bin" / "java")
