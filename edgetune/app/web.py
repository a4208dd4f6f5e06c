"""The web demo on this machine: web_demo's bundled pages, an artifact and its notes over HTTP.

    serve(roots) -> context manager yielding http://127.0.0.1:PORT/ ("web" -> a directory, ...)
    web_bundle() -> web_demo/dist/web, built with npm when missing
    write_notes(train_csv, test_csv, out) -> notes.json ({"train": [{text, label}], "held_out": [...]})

Pages are served cross-origin isolated (COOP/COEP), which onnxruntime-web's WASM threads need.
"""
from __future__ import annotations

import contextlib
import csv
import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

from edgetune.errors import ConfigError
from edgetune.files import write_atomic

WEB_DEMO = Path(__file__).resolve().parents[2] / "web_demo"


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves each URL prefix from its directory and nothing else."""

    def __init__(self, *a, roots: dict[str, Path], **kw):
        self.roots = roots
        super().__init__(*a, **kw)

    def translate_path(self, path):
        head, _, rest = path.lstrip("/").partition("/")
        root = self.roots.get(head)
        if root is None:
            return "/nonexistent/edgetune"  # 404
        self.directory = str(root)
        return super().translate_path("/" + rest)

    def end_headers(self):
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, *a):
        pass


class _Server(http.server.ThreadingHTTPServer):
    # closing does not wait for handler threads: a browser may leave a keep-alive connection open
    block_on_close = False
    daemon_threads = True

    def handle_error(self, request, client_address):
        """A page that reloads or closes aborts its downloads: not an error worth a traceback."""
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


@contextlib.contextmanager
def serve(roots: dict[str, Path], port: int = 0):
    """http://127.0.0.1:PORT/ serving each ``roots`` prefix ("web" -> a directory) until the block ends."""
    try:
        server = _Server(("127.0.0.1", port), functools.partial(_Handler, roots=roots))
    except OSError as e:
        raise ConfigError(f"cannot listen on 127.0.0.1:{port} ({e.strerror}); pass another --port") from e
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def web_bundle(progress=lambda msg: None) -> Path:
    """web_demo/dist/web, bundled (npm ci, npm run build) when missing."""
    out = WEB_DEMO / "dist" / "web"
    if (out / "demo.js").is_file():
        return out
    if not (WEB_DEMO / "package.json").is_file():
        raise ConfigError(f"the web demo's sources are not at {WEB_DEMO}: run it from a clone of the edgetune repository")
    if shutil.which("npm") is None:
        raise ConfigError("npm is not installed; install Node.js 20+ (apt-get install nodejs npm) to build the web demo")
    for cmd in (["npm", "ci", "--no-audit", "--no-fund"], ["npm", "run", "-s", "build"]):
        progress(f"web_demo: {' '.join(cmd)}")
        r = subprocess.run(cmd, cwd=WEB_DEMO, capture_output=True, text=True,
                           env={**os.environ, "ONNXRUNTIME_NODE_INSTALL": "skip"})
        if r.returncode:
            raise ConfigError(f"`{' '.join(cmd)}` in {WEB_DEMO} failed: {r.stderr.strip()[-500:]}")
    return out


def write_notes(train_csv: str | Path, test_csv: str | Path, out: str | Path) -> Path:
    """The page's notes: a demo data set's training rows and held-out rows, as JSON."""
    def rows(path):
        with open(path, newline="", encoding="utf-8") as f:
            return [{"text": r["text"], "label": r["label"]} for r in csv.DictReader(f)]
    out = Path(out)
    write_atomic(out, json.dumps({"train": rows(train_csv), "held_out": rows(test_csv)}).encode())
    return out
