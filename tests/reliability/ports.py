"""Free loopback ports for the processes and doubles of a scenario."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port nothing listens on right now (the kernel's choice on 127.0.0.1)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
