"""A TCP relay in the test process, for a server that listens where a pod cannot reach it: the real node's pods
reach the API server (127.0.0.1 only, and no kube-proxy) through one on the node's address (tests/support/node.py).
Bytes pass through untouched, so TLS clients verify the server's own certificate."""

from __future__ import annotations

import socket
import threading
from contextlib import suppress

Address = tuple[str, int]


class TcpForwarder:
    """Listens on `listen` from construction until the `with` block ends; each connection is relayed to `target`."""

    def __init__(self, listen: Address, target: Address) -> None:
        self.target = target
        self.listener = socket.create_server(listen)
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, name=f"forwarder-{listen[0]}:{listen[1]}", daemon=True).start()

    def __enter__(self) -> TcpForwarder:
        return self

    def __exit__(self, *exc: object) -> None:
        with suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        self.listener.close()
        with self.lock:
            for connection in self.open:  # long watches included
                with suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        with self.lock:
            self.open.update((client, upstream))
        back = threading.Thread(target=_copy, args=(upstream, client), daemon=True)
        back.start()
        _copy(client, upstream)
        back.join()
        with self.lock:
            self.open.difference_update((client, upstream))
        client.close()
        upstream.close()


def _copy(source: socket.socket, sink: socket.socket) -> None:
    """One direction until end of stream, then half-close the other side so it sees the end too."""
    with suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
