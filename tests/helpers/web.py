"""Build and run web_demo's TypeScript trainer on Node (onnxruntime-node), for the tests and the benchmark.

Its tools come from web_demo/package.json (`cd web_demo && ONNXRUNTIME_NODE_INSTALL=skip npm ci`):
esbuild bundles the sources into web_demo/dist/edgetune-node.mjs at each session's first use.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edgetune.app.web import WEB_DEMO as WEB


@dataclass(frozen=True)
class NodeTrainer:
    script: Path

    def run(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run(["node", str(self.script), *args], capture_output=True, text=True, timeout=timeout)

    def conformance(self, artifact: Path, kit: Path, threads: int | None = None) -> dict:
        """The kit's report ({"checks", "failures", "cases"}); a trainer error is a RuntimeError with its message."""
        r = self.run("conformance", str(artifact), str(kit), *(["--threads", str(threads)] if threads else []))
        if not r.stdout.strip():
            raise RuntimeError(r.stderr.strip()[-2000:])
        return json.loads(r.stdout.strip().splitlines()[-1])


def build() -> NodeTrainer:
    """Bundle the trainer for Node; RuntimeError names what is missing."""
    if shutil.which("node") is None:
        raise RuntimeError("Node.js is not installed (apt-get install nodejs npm), which .ci/run installs")
    if not (WEB / "node_modules" / "esbuild").is_dir():
        raise RuntimeError("web_demo's npm packages are missing: cd web_demo && ONNXRUNTIME_NODE_INSTALL=skip npm ci")
    r = subprocess.run(["npm", "run", "-s", "build"], cwd=WEB, capture_output=True, text=True, timeout=300)
    if r.returncode:
        raise RuntimeError(f"building web_demo failed: {r.stderr[-2000:]}")
    return NodeTrainer(WEB / "dist" / "edgetune-node.mjs")


CHROMIUM = Path("/usr/bin/chromium")


def browse(url: str, timeout: float = 600, screenshot: Path | None = None) -> dict:
    """What the page at ``url`` leaves in window.edgetuneReport, read in headless Chromium;
    its error is a RuntimeError."""
    args = ["node", str(WEB / "scripts" / "browse.mjs"), url, "--timeout", str(timeout)]
    if screenshot:
        args += ["--screenshot", str(screenshot)]
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout + 60)
    if r.returncode:
        raise RuntimeError(r.stderr.strip()[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])
