"""A real OpenSSH server on 127.0.0.1 for the SSH transport tests (installed by .ci/run)."""
import pytest

from helpers.sshd_server import SSHDUnavailable, start_sshd


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    try:
        server = start_sshd(tmp_path_factory.mktemp("sshd"))
    except SSHDUnavailable as e:
        pytest.skip(str(e))
    yield server
    server.stop()
