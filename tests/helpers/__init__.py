"""Helpers shared by the tests: a real sshd on loopback, small GGUF files, parity and adapter step checks."""
