"""A scripted HTTP peer on 127.0.0.1 for tests that need a server to misbehave in a precise way."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Recorded:
    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class ScriptedServer:
    url: str
    requests: list[Recorded] = field(default_factory=list)


Route = Callable[[str, str, bytes], Reply]
"""(method, path with query, body) -> reply."""


def relay(upstream: str) -> Route:
    """A route that passes every request on to `upstream` (a base URL) and answers what it answers: put a
    scripted_server in front of a real server to record, or to alter, what goes between."""

    def forward(method: str, path: str, body: bytes) -> Reply:
        reply = requests.request(
            method, upstream + path, data=body or None, headers={"Content-Type": "application/json"}, timeout=60
        )
        return Reply(reply.status_code, reply.content, reply.headers.get("Content-Type", ""))

    return forward


@contextmanager
def scripted_server(route: Route, host: str = "127.0.0.1") -> Iterator[ScriptedServer]:
    """Serve `route` on a free port of `host`: 127.0.0.1, or an address a test made on this machine."""
    recorded: list[Recorded] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            recorded.append(Recorded(self.command, self.path, body, dict(self.headers.items())))
            reply = route(self.command, self.path, body)
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ScriptedServer(f"http://{host}:{server.server_address[1]}", recorded)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
