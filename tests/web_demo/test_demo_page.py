"""`edgetune demo --web` end to end in headless Chromium: the served page trains MiniLM-L6 on the demo's
notes in onnxruntime-web, held-out accuracy rises, its state download is a state file edgetune reads, and
a reload resumes from the state in IndexedDB."""
import json
import os
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from edgetune.app.cli import main as edgetune_cli
from edgetune.contract.manifest import load_manifest
from edgetune.contract.state import load_state
from helpers.web import CHROMIUM, WEB

STEPS = 20


@pytest.mark.slow
def test_edgetune_demo_web_trains_in_the_page_and_survives_a_reload(node_trainer, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium), which .ci/run installs")
    log = open(tmp_path / "server.log", "w")  # a pipe nobody reads could fill and stall the server
    # SIGINT's default action, as in a terminal: a suite started in the background (`pytest &`)
    # hands its children SIGINT ignored, and Ctrl-C would then never reach the server
    server = subprocess.Popen([sys.executable, "-m", "edgetune.app.cli", "demo", "--web", "--port", "0",
                               "--workdir", str(tmp_path / "demo")], stdout=subprocess.PIPE, stderr=log,
                              text=True, start_new_session=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        url = next((line.split()[1] for line in server.stdout if line.startswith("open http://")), None)
        assert url, (tmp_path / "server.log").read_text()[-2000:]
        shot = tmp_path / "web-demo.png"  # kept with the test's files
        state = tmp_path / "downloaded.safetensors"
        r = subprocess.run(["node", str(WEB / "scripts" / "demo-e2e.mjs"), url, str(STEPS), str(shot), str(state)],
                           capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stderr[-2000:]
        got = json.loads(r.stdout)
        print(f"\nheld-out accuracy {got['before']:.3f} -> {got['after']:.3f} after {STEPS} steps in the page")
        assert got["step"] == STEPS and len(got["losses"]) == STEPS
        assert got["after"] > got["before"] + 0.2
        assert got["resumed_step"] == STEPS and got["resumed_accuracy"] == got["after"]
        assert got["status"].startswith(f"resumed at step {STEPS}")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        # the page's download is a state file edgetune reads: save-adapter takes it
        art = tmp_path / "demo" / "web-artifact"
        assert load_state(state, load_manifest(art))[1] == STEPS
        out = CliRunner().invoke(edgetune_cli, ["save-adapter", str(art), str(tmp_path / "adapter"), "--state", str(state)])
        assert out.exit_code == 0 and (tmp_path / "adapter" / "adapter.safetensors").is_file(), out.output
    finally:
        os.killpg(server.pid, signal.SIGINT)
        server.wait(timeout=30)
        log.close()
