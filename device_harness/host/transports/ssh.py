"""Boards over SSH (paramiko): key authentication, host keys checked against a known_hosts file.

A host missing from known_hosts is refused unless ``accept_new_host`` (then its key is
appended to that file, like OpenSSH's ``StrictHostKeyChecking=accept-new``); a host whose
key differs from the recorded one is always refused.
"""
from __future__ import annotations

import posixpath
import socket
import stat
from pathlib import Path
from typing import Iterator

from device_harness.host.transports.base import ConnectionLost, Finished, Transport, TransportError, shell_command

DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")


class SSHTransport(Transport):
    """``host[:port]`` as ``user`` with the private key ``key`` (default: the SSH agent and
    ~/.ssh/id_*). ``idle_timeout``: seconds without a line from a running command before
    the link counts as dead (keep it above the slowest step)."""

    def __init__(self, host: str, port: int = 22, user: str | None = None, key: str | Path | None = None,
                 known_hosts: str | Path | None = None, accept_new_host: bool = False, workdir: str = "edgetune",
                 python: str = "python3", connect_timeout: float = 15.0, idle_timeout: float = 600.0):
        self.host, self.port, self.user = host, int(port), user
        self.key = str(Path(key).expanduser()) if key else None
        self.known_hosts = Path(known_hosts or DEFAULT_KNOWN_HOSTS).expanduser()
        self.accept_new_host = accept_new_host
        self.workdir, self.python = workdir, python
        self.connect_timeout, self.idle_timeout = connect_timeout, idle_timeout
        self.name = f"ssh://{user + '@' if user else ''}{host}:{port}"
        self.client = None
        self.sftp = None
        self.connect()

    def connect(self) -> None:
        import paramiko

        client = paramiko.SSHClient()
        if self.known_hosts.exists():
            client.load_host_keys(str(self.known_hosts))
        elif not self.accept_new_host:
            raise TransportError(f"{self.name}: the known_hosts file {self.known_hosts} does not exist, so the host key "
                                 "cannot be checked; record the board's key first (ssh-keyscan -p PORT HOST >> FILE, "
                                 "after comparing its fingerprint with the board's) or pass --accept-new-host")
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy() if self.accept_new_host else paramiko.RejectPolicy())
        try:
            client.connect(self.host, self.port, username=self.user, key_filename=self.key, timeout=self.connect_timeout,
                           banner_timeout=self.connect_timeout, auth_timeout=self.connect_timeout,
                           allow_agent=self.key is None, look_for_keys=self.key is None)
        except paramiko.BadHostKeyException as e:
            raise TransportError(
                f"{self.name}: the host presented a {e.key.get_name()} key with fingerprint "
                f"{e.key.fingerprint}, but {self.known_hosts} records {e.expected_key.fingerprint}. Someone may be "
                "intercepting the connection; if the board was reinstalled, check its new key and remove the old "
                f"line with ssh-keygen -R '[{self.host}]:{self.port}'") from e
        except paramiko.AuthenticationException as e:
            raise TransportError(f"{self.name}: key authentication failed ({e}); pass --key with a key listed in the "
                                 "board's ~/.ssh/authorized_keys") from e
        except paramiko.SSHException as e:
            if "not found in known_hosts" in str(e):
                raise TransportError(f"{self.name}: the host is not in {self.known_hosts}; record its key after "
                                     "checking its fingerprint (ssh-keyscan -p PORT HOST >> FILE) or pass "
                                     "--accept-new-host") from e
            raise TransportError(f"{self.name}: SSH failed: {e}") from e
        except OSError as e:
            raise TransportError(f"{self.name}: cannot connect: {e}") from e
        if self.accept_new_host:
            self.known_hosts.parent.mkdir(parents=True, exist_ok=True)
            client.save_host_keys(str(self.known_hosts))
        client.get_transport().set_keepalive(5)
        try:
            self.client, self.sftp = client, client.open_sftp()
        except paramiko.SSHException as e:
            client.close()
            raise TransportError(f"{self.name}: the server offers no SFTP ({e}); enable it in the board's "
                                 "sshd_config (Subsystem sftp internal-sftp)") from e

    def reconnect(self) -> None:
        self.close()
        self.connect()

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        self.client = self.sftp = None

    def _abs(self, remote: str) -> str:
        """Paths relative to ``workdir`` (itself relative to the login directory unless absolute)."""
        return remote if remote.startswith("/") else posixpath.join(self.workdir, remote)

    def _mkdirs(self, remote: str) -> None:
        parts, path = [p for p in remote.split("/") if p], "/" if remote.startswith("/") else ""
        for p in parts:
            path = posixpath.join(path, p) if path else p
            try:
                self.sftp.stat(path)
            except FileNotFoundError:
                self.sftp.mkdir(path)

    def push(self, local: Path, remote: str) -> None:
        local, remote = Path(local), self._abs(remote)
        try:
            if local.is_dir():
                for f in sorted(local.rglob("*")):
                    dst = posixpath.join(remote, *f.relative_to(local).parts)
                    if f.is_dir():
                        self._mkdirs(dst)
                    else:
                        self._mkdirs(posixpath.dirname(dst))
                        self.sftp.put(str(f), dst)
            else:
                self._mkdirs(posixpath.dirname(remote))
                self.sftp.put(str(local), remote)
        except (OSError, EOFError) as e:
            raise ConnectionLost(f"{self.name}: pushing {local} to {remote} failed: {e}") from e

    def fetch(self, remote: str, local: Path) -> None:
        Path(local).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.sftp.get(self._abs(remote), str(local))
        except FileNotFoundError as e:
            raise TransportError(f"{self.name}: {remote} does not exist") from e
        except (OSError, EOFError) as e:
            raise ConnectionLost(f"{self.name}: fetching {remote} failed: {e}") from e

    def exists(self, remote: str) -> bool:
        try:
            return stat.S_IFMT(self.sftp.stat(self._abs(remote)).st_mode) != 0
        except FileNotFoundError:
            return False

    def stream(self, argv, cwd=None, env=None) -> Iterator[str | Finished]:
        try:
            chan = self.client.get_transport().open_session()
            chan.settimeout(self.idle_timeout)
            chan.exec_command(shell_command(argv, self._abs(cwd) if cwd else self.workdir, env))
            out = chan.makefile("r")
            for line in out:
                yield line.rstrip("\n")
        except (OSError, EOFError, socket.timeout) as e:
            self.close()
            raise ConnectionLost(f"{self.name}: the connection dropped while {argv[-1]!r} ran: {e}") from e
        except Exception as e:  # paramiko.SSHException on a link that died under it
            if type(e).__module__.startswith("paramiko"):
                self.close()
                raise ConnectionLost(f"{self.name}: the connection dropped: {e}") from e
            raise
        status = chan.recv_exit_status()  # -1: the channel closed without one (the link died)
        if status == -1 or not chan.get_transport().is_active():
            self.close()
            raise ConnectionLost(f"{self.name}: the connection dropped before the command ended")
        err = chan.makefile_stderr("r").read()
        yield Finished(status, (err.decode(errors="replace") if isinstance(err, bytes) else err)[-4000:])
