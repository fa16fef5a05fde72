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


# (status, headers, body) or (status, headers, body, cut): with cut, only body[:cut] is sent and
# the connection is closed (an interrupted download).
Responder = Callable[[str, str, dict[str, str]], tuple]


@contextmanager
def http_hub(respond: Responder) -> Iterator[tuple[str, Counter]]:
    """A threaded HTTP server; ``respond(method, path, headers) -> (status, headers, body)``."""
    counter = Counter()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self, method: str) -> None:
            counter.add_request(method, self.path)
            status, headers, body, *cut = respond(method, self.path, dict(self.headers))
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            if "Content-Length" not in headers:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if method != "HEAD":
                if cut and cut[0] is not None:
                    self.wfile.write(body[: cut[0]])
                    self.wfile.flush()
                    self.close_connection = True
                    return
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


class FakeRepos:
    """Serves repositories the way the hub's API and ``resolve`` URLs do, for huggingface_hub.

    repos: repo id -> {path: bytes}; gated: repo ids answered 401; files: other URL paths
    (e.g. ``/beats.pt``) with range support; interrupt: paths whose first full GET is cut in half.
    """

    COMMIT = "a" * 40

    def __init__(self, repos: dict[str, dict[str, bytes]], gated: set[str] = frozenset(),
                 files: dict[str, bytes] | None = None, interrupt: set[str] = frozenset()) -> None:  # fmt: skip
        self.repos, self.gated, self.files = repos, set(gated), files or {}
        self.interrupt = set(interrupt)
        self.cutting = True  # full GETs of the ``interrupt`` paths are cut while this holds
        self.ranges: list[tuple[str, str]] = []

    def __call__(self, method: str, path: str, headers: dict[str, str]) -> tuple:
        import json
        from urllib.parse import unquote, urlparse

        path = unquote(urlparse(path).path)
        if path == "/":
            return 200, {}, b""
        if path in self.files:
            return self._file(path, self.files[path], headers, {}, method)
        if path.startswith("/api/models/"):
            rest = path[len("/api/models/"):]
            for repo_id, content in self.repos.items():
                if rest.startswith(repo_id + "/"):
                    if repo_id in self.gated:
                        return 401, {"X-Error-Code": "GatedRepo", "X-Error-Message": "Access restricted"}, b"{}"
                    kind = rest[len(repo_id) + 1:].split("/", 1)[0]
                    if kind == "revision":
                        body = {"id": repo_id, "sha": self.COMMIT, "siblings": [{"rfilename": f} for f in content]}
                    else:  # tree
                        body = [{"type": "file", "path": f, "size": len(b), "oid": sha256(b)[:40]}
                                for f, b in sorted(content.items())]  # fmt: skip
                    data = json.dumps(body).encode()
                    return 200, {"Content-Type": "application/json"}, data
            return 404, {"X-Error-Code": "RepoNotFound"}, b"{}"
        for repo_id, content in self.repos.items():
            prefix = f"/{repo_id}/resolve/"
            if path.startswith(prefix):
                if repo_id in self.gated:
                    return 401, {"X-Error-Code": "GatedRepo", "X-Error-Message": "Access restricted"}, b""
                filename = path[len(prefix):].split("/", 1)[1]
                if filename not in content:
                    return 404, {"X-Error-Code": "EntryNotFound"}, b""
                extra = {"X-Repo-Commit": self.COMMIT, "ETag": f'"{sha256(content[filename])}"'}
                return self._file(path, content[filename], headers, extra, method)
        return 404, {}, b""

    def _file(self, path: str, data: bytes, headers: dict[str, str], extra: dict[str, str], method: str = "GET") -> tuple:
        wanted = headers.get("Range") or headers.get("range")
        if wanted and method == "GET":
            self.ranges.append((path, wanted))
            start = int(wanted.split("=", 1)[1].split("-", 1)[0])
            part = data[start:]
            return 206, {**extra, "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}",
                         "Content-Length": str(len(part))}, part  # fmt: skip
        if method == "GET" and path in self.interrupt and self.cutting:
            self.interrupt.discard(path)
            return 200, {**extra, "Content-Length": str(len(data))}, data, len(data) // 2
        return 200, {**extra, "Content-Length": str(len(data))}, data
