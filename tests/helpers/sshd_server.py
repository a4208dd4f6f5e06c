"""A real OpenSSH server on 127.0.0.1 with fresh keys: for the SSH transport tests and the
device profile benchmark (OpenSSH's server is installed by .ci/run)."""
from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


class SSHDUnavailable(RuntimeError):
    """sshd is not installed or cannot run here (the reason is the message)."""


@dataclass
class SSHServer:
    host: str
    port: int
    user: str
    key: Path  # the client's private key (its public half is authorized)
    known_hosts: Path  # pins the server's host key
    host_pub: Path
    workdir: str  # a directory for the device side
    proc: subprocess.Popen

    @property
    def url(self) -> str:
        return f"ssh://{self.user}@{self.host}:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def start_sshd(d: Path) -> SSHServer:
    """Start sshd on a free loopback port with keys and config under ``d``; key login only."""
    if not os.path.exists(SSHD):
        raise SSHDUnavailable(f"no OpenSSH server at {SSHD}: install it (apt-get install openssh-server), "
                              "as .ci/run does")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", exist_ok=True)  # the privilege-separation directory
    elif not os.path.isdir("/run/sshd"):
        raise SSHDUnavailable("sshd needs its privilege-separation directory /run/sshd, which only root can create")
    d.mkdir(parents=True, exist_ok=True)
    _keygen(d / "host_key")
    _keygen(d / "client_key")
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    os.chmod(d / "authorized_keys", 0o600)
    port = _free_port()
    (d / "sshd_config").write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {d / 'host_key'}
AuthorizedKeysFile {d / 'authorized_keys'}
PidFile {d / 'sshd.pid'}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
""")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stderr=open(d / "sshd.log", "w"))
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SSHDUnavailable(f"sshd did not start: {(d / 'sshd.log').read_text()[-2000:]}")
            time.sleep(0.1)
    host_pub = d / "host_key.pub"
    key_type, key_b64 = host_pub.read_text().split()[:2]
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {key_type} {key_b64}\n")
    return SSHServer("127.0.0.1", port, getpass.getuser(), d / "client_key", d / "known_hosts", host_pub,
                     str(d / "device"), proc)
