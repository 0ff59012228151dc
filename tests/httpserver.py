"""A real HTTP/1.1 server on 127.0.0.1 in a thread, whose behaviour each test writes.

    def handle(request: BaseHTTPRequestHandler) -> None:
        respond(request, 200, b"<rss/>", {"Content-Type": "application/rss+xml"})

    with LoopbackServer(handle) as server:
        session.get(server.url("/feed"))
        assert server.seen[0].headers["user-agent"] == "..."

`handle` runs in a server thread for every GET and writes the whole answer
with BaseHTTPRequestHandler's own methods (send_response, send_header,
end_headers, wfile), so it can also misbehave: stall, trickle, lie about the
length. A handler that hangs on purpose loops on `pause(request, seconds)`,
which returns False once the server is closing; `close()` then hangs up every
connection and joins every thread, so no test leaves a thread or socket behind. A client that goes away
mid-answer is expected and ends that handler quietly.

For a well-behaved publisher with routes and conditional GET, see feedserver.py.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast

Handle = Callable[[BaseHTTPRequestHandler], None]
_Request = socket.socket | tuple[bytes, socket.socket]  # socketserver's type: (bytes, socket) is UDP


@dataclass(frozen=True)
class Seen:
    """A request as the server received it; header names lower-case."""

    path: str
    headers: Mapping[str, str]


class LoopbackServer:
    """Serves `handle` on 127.0.0.1 on a free port until closed."""

    def __init__(self, handle: Handle, host: str = "127.0.0.1") -> None:
        self.seen: list[Seen] = []
        self.host = host
        self._httpd = _Server(handle, self.seen, host)
        self.port: int = self._httpd.server_address[1]
        # A short poll so that close() does not wait out serve_forever's default half second.
        serve = functools.partial(self._httpd.serve_forever, poll_interval=0.01)
        self._thread = threading.Thread(target=serve, name="loopback-server")
        self._thread.start()

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def close(self) -> None:
        """Wake paused handlers, stop serving, and join every thread."""
        self._httpd.closing.set()
        self._httpd.shutdown()
        self._httpd.hang_up()
        self._httpd.server_close()  # joins the handler threads (daemon_threads is off)
        self._thread.join()

    def __enter__(self) -> LoopbackServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (for "connection refused" and for servers to come)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def respond(
    request: BaseHTTPRequestHandler, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None
) -> None:
    """A complete answer with a Content-Length (none for 1xx, 204 and 304)."""
    request.send_response(status)
    for name, value in (headers or {}).items():
        request.send_header(name, value)
    if status >= 200 and status not in (204, 304):
        request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    if body:
        request.wfile.write(body)


def pause(request: BaseHTTPRequestHandler, seconds: float) -> bool:
    """Wait `seconds`; False (at once) if the server is closing and the handler should return."""
    return not cast(_Server, request.server).closing.wait(seconds)


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # so that server_close() joins the handler threads

    def __init__(self, handle: Handle, seen: list[Seen], host: str) -> None:
        self.closing = threading.Event()
        self.handle_get = handle
        self.seen = seen
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        super().__init__((host, 0), _Handler)

    def process_request(self, request: _Request, client_address: Any) -> None:
        if isinstance(request, socket.socket):
            with self._lock:
                self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: _Request) -> None:
        if isinstance(request, socket.socket):
            with self._lock:
                self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: _Request, client_address: Any) -> None:
        """A client hanging up between requests is normal here; anything else is printed."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def hang_up(self) -> None:
        """End every open connection, so that handlers waiting for a client's next request return."""
        with self._lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):  # the client closed it first
                    connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked answers, like real servers

    def do_GET(self) -> None:
        server = cast(_Server, self.server)
        server.seen.append(Seen(self.path, {name.lower(): value for name, value in self.headers.items()}))
        try:
            server.handle_get(self)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up, as timeout and size tests make it
        if server.closing.is_set():
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""
