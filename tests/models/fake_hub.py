"""Local stand-ins for the Hugging Face hub: a port that never answers, and a counting HTTP server.

Each counts what it received, so tests assert how many connections or requests were made
(one short probe, no retry storm) instead of timing anything.
"""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Counter:
    connections: int = 0
    requests: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_request(self, method: str, path: str) -> None:
        with self.lock:
            self.requests.append((method, path))


def closed_port_url() -> str:
    """An address on which nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@contextmanager
def silent_server() -> Iterator[tuple[str, Counter]]:
    """Accepts connections and never answers (a hub that times out); counts connections."""
    counter = Counter()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    stop = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            held.append(conn)
            counter.connections += 1

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", counter
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


Responder = Callable[[str, str, dict[str, str]], tuple[int, dict[str, str], bytes]]


@contextmanager
def http_hub(respond: Responder) -> Iterator[tuple[str, Counter]]:
    """A threaded HTTP server; ``respond(method, path, headers) -> (status, headers, body)``."""
    counter = Counter()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self, method: str) -> None:
            counter.add_request(method, self.path)
            status, headers, body = respond(method, self.path, dict(self.headers))
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            if "Content-Length" not in headers:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self) -> None:
            self._serve("HEAD")

        def do_GET(self) -> None:
            self._serve("GET")

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", counter
    finally:
        server.shutdown()
        server.server_close()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
