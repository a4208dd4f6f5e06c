"""How the host reaches a device: this machine, a board over SSH, a phone over ADB."""
from device_harness.host.transports.base import ConnectionLost, Finished, Transport, TransportError, shell_command

__all__ = ["ConnectionLost", "Finished", "Transport", "TransportError", "shell_command"]
