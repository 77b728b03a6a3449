"""Free TCP ports on the loopback interface, each handed out once per test process.

The kernel may hand the same ephemeral port to two consecutive bind(0) calls once the first socket is
closed; two replicas given one port then clashed (a test once ran "replica B" on replica A's port).
"""

import socket

_GIVEN: set[int] = set()


def free_port() -> int:
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port
