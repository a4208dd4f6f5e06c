"""Deploy, run, stream, fetch and clean up over SSH against a real OpenSSH server on
127.0.0.1 (key authentication, pinned host key); a connection killed mid-run resumes
from the last saved step, with no step lost or repeated."""
import json
import subprocess
import sys

import numpy as np
import pytest

from device_harness.host.deploy import RunConfig, run_on_device
from device_harness.host.transports.base import TransportError
from device_harness.host.transports.ssh import SSHTransport
from device_harness.runner import Trainer
from edgetune.contract.state import load_state


def connect(sshd, **kw):
    opts = dict(user=sshd.user, key=sshd.key, known_hosts=sshd.known_hosts, workdir=sshd.workdir,
                python=sys.executable)  # the device's Python: this one has numpy and onnxruntime
    return SSHTransport(sshd.host, sshd.port, **{**opts, **kw})


def reference_state(artifact, data, steps, tmp_path):
    """The same run on this machine without any transport."""
    tr = Trainer(artifact, "onnx", tmp_path / "reference.safetensors")
    for _ in tr.train(data, steps, seed=0, save_every=0):
        pass
    return tr.state


def test_deploy_run_stream_fetch_clean_up(sshd, tiny_artifact, demo_data, tmp_path):
    art, manifest, _ = tiny_artifact
    streamed = []
    with connect(sshd) as t:
        result = run_on_device(t, art, demo_data[0], tmp_path / "run", RunConfig(steps=6, save_every=2),
                               run_id="r1", on_record=streamed.append)
        assert t.exists(f"artifacts/{manifest.artifact_id}/manifest.json")  # kept for the next run
        assert not t.exists("runs/r1")  # data, state and log removed after fetching
    assert [r["step"] for r in streamed] == [r["step"] for r in result.records] == [1, 2, 3, 4, 5, 6]
    assert result.device == f"ssh://{sshd.user}@127.0.0.1:{sshd.port}" and result.reconnects == 0
    assert result.facts["cores"] >= 1 and result.facts["packages"]["onnxruntime"]
    assert result.end["reason"] == "done" and result.end["step"] == 6
    state, step = load_state(tmp_path / "run" / "state.safetensors", manifest)
    assert step == 6
    want = reference_state(art, demo_data[0], 6, tmp_path)
    for k, v in want.items():
        np.testing.assert_allclose(state[k], v, rtol=1e-6, atol=1e-7, err_msg=k)
    saved = json.loads((tmp_path / "run" / "run.json").read_text())
    assert saved["records"] == result.records and saved["artifact"]["artifact_id"] == manifest.artifact_id


def test_connection_killed_mid_run_resumes_without_losing_or_repeating_a_step(sshd, tiny_artifact, demo_data, tmp_path):
    art, manifest, _ = tiny_artifact
    steps, kill_at = 600, 5
    with connect(sshd) as t:
        def kill_link(rec):
            if rec["step"] == kill_at and not kill_link.done:
                kill_link.done = True
                t.client.get_transport().sock.close()  # the TCP connection dies under the running command
        kill_link.done = False
        messages = []
        result = run_on_device(t, art, demo_data[0], tmp_path / "run", RunConfig(steps=steps, save_every=50),
                               run_id="r2", on_record=kill_link, progress=messages.append)
    assert kill_link.done and result.reconnects == 1, messages
    assert any("connection lost" in m for m in messages)
    first, second = result.starts
    assert first["step"] == 0 and kill_at <= second["step"] < steps  # resumed from the saved step, not from 0
    # the device's own log: every step exactly once, across both attempts
    logged = [json.loads(l)["step"] for l in (tmp_path / "run" / "steps.jsonl").read_text().splitlines()]
    assert logged == list(range(1, steps + 1))
    state, step = load_state(tmp_path / "run" / "state.safetensors", manifest)
    assert step == steps
    want = reference_state(art, demo_data[0], steps, tmp_path)
    for k, v in want.items():
        np.testing.assert_allclose(state[k], v, rtol=1e-5, atol=1e-6, err_msg=k)


def test_wrong_or_unknown_host_key_is_refused(sshd, tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    key_type, b64 = (tmp_path / "other.pub").read_text().split()[:2]
    wrong = tmp_path / "known_hosts_wrong"
    wrong.write_text(f"[127.0.0.1]:{sshd.port} {key_type} {b64}\n")
    with pytest.raises(TransportError, match="records .*intercepting"):
        connect(sshd, known_hosts=wrong)
    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")
    with pytest.raises(TransportError, match="not in .*known_hosts_empty"):
        connect(sshd, known_hosts=empty)
    with pytest.raises(TransportError, match="does not exist"):
        connect(sshd, known_hosts=tmp_path / "missing")
    # accepting a new host is a choice: it records the key, and the next connection checks it
    with connect(sshd, known_hosts=empty, accept_new_host=True):
        pass
    assert b64 not in empty.read_text() and sshd.host_pub.read_text().split()[1] in empty.read_text()
    with connect(sshd, known_hosts=empty):
        pass


def test_wrong_client_key_is_refused(sshd, tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "stranger")], check=True)
    with pytest.raises(TransportError, match="authentication failed"):
        connect(sshd, key=tmp_path / "stranger")
