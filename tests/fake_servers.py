"""Small real HTTP servers on 127.0.0.1 that play outside services in tests."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TEN_MB = 10 * 1024 * 1024


class FakeServer:
    """A ThreadingHTTPServer in a thread; `routes` maps (method, path) → (status, body)."""

    def __init__(self):
        self.routes: dict[tuple[str, str], tuple[int, object]] = {}
        self.calls: list[tuple[str, str, bytes]] = []
        self.up = True
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.calls.append((self.command, self.path, body))
                if not outer.up:
                    self.send_response(503)
                    self.end_headers()
                    return
                status, payload = outer.routes.get((self.command, self.path), (404, {}))
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PUT = _handle

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def free_port() -> int:
    """A port nobody listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RuntimeServer:
    """A fake module runtime: a ThreadingHTTPServer on 127.0.0.1 whose path decides what
    it does. `/ok`, `/health`: 200; `/slow`: 200 after `slow_seconds`; `/error`: 500;
    `/redirect`: 302 to the metadata address; `/hang`: nothing until released; `/trickle`:
    a byte of the status line every 0.2 s; `/big`: a 10 MB body. With `failing` set,
    every path answers 503."""

    def __init__(self, *, slow_seconds: float = 0.7, hang_seconds: float = 30.0):
        self.requests: list[tuple[str, str | None]] = []
        self.slow_seconds, self.hang_seconds = slow_seconds, hang_seconds
        self.failing = False
        self.big_sent = 0
        self.big_done = threading.Event()
        self.release = threading.Event()  # ends every hang at teardown
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                outer.requests.append((self.path, self.headers.get("Host")))
                path = self.path.split("?")[0]
                if outer.failing:
                    return self._answer(503, b"down for maintenance")
                if path.endswith("/hang"):
                    outer.release.wait(outer.hang_seconds)
                    return self._answer(200, b"too late")
                if path.endswith("/slow"):
                    time.sleep(outer.slow_seconds)
                    return self._answer(200, b"slow but fine")
                if path.endswith("/error"):
                    return self._answer(500, b"boom")
                if path.endswith("/redirect"):
                    self.send_response(302)
                    self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if path.endswith("/trickle"):
                    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok":
                        if outer.release.wait(0.2):
                            return
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    return
                if path.endswith("/big"):
                    return self._big()
                return self._answer(200, b'{"status": "ok"}')

            def _answer(self, status: int, body: bytes):
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _big(self):
                self.send_response(200)
                self.send_header("Content-Length", str(TEN_MB))
                self.end_headers()
                chunk = b"x" * 65536
                try:
                    while outer.big_sent < TEN_MB:
                        self.wfile.write(chunk)
                        outer.big_sent += len(chunk)
                except OSError:
                    pass
                finally:
                    outer.big_done.set()

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 512
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def paths(self) -> list[str]:
        return [path for path, _host in self.requests]

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
