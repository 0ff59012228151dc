"""A well-behaved publisher on 127.0.0.1: routes a test sets up and changes, conditional GET.

Built on httpserver.LoopbackServer. It honours If-None-Match with an ETag
derived from the body (unless a route opts out, like publishers that ignore
validators), sends a fixed Last-Modified, and keeps every request so tests
can see what the aggregator sent.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from tests.httpserver import LoopbackServer, pause, respond

LAST_MODIFIED = "Mon, 14 Mar 2022 02:55:11 GMT"


@dataclass(frozen=True)
class Route:
    body: bytes
    content_type: str = "application/rss+xml; charset=utf-8"
    status: int = 200
    delay: float = 0.0  # seconds to wait before answering
    conditional: bool = True  # honour If-None-Match

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'


class FeedServer:
    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}
        self._lock = threading.Lock()
        self._server = LoopbackServer(self._handle)

    def url(self, path: str) -> str:
        return self._server.url(path)

    def serve(self, path: str, body: bytes | str, **options: object) -> str:
        """Serve `body` at `path` from now on (replacing what was there); returns its URL."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        with self._lock:
            self._routes[path] = Route(data, **options)  # type: ignore[arg-type]
        return self.url(path)

    def hits(self, path: str) -> list[dict[str, str]]:
        """The headers of every request made for `path`, oldest first."""
        return [dict(seen.headers) for seen in list(self._server.seen) if seen.path == path]

    def close(self) -> None:
        self._server.close()

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        with self._lock:
            route = self._routes.get(request.path)
        if route is None:
            respond(request, 404, b"not found", {"Content-Type": "text/plain"})
            return
        if route.delay and not pause(request, route.delay):
            return
        if route.conditional and route.status == 200 and request.headers.get("If-None-Match") == route.etag:
            respond(request, 304, b"", {"ETag": route.etag})
            return
        headers = {"Content-Type": route.content_type}
        if route.conditional:
            headers |= {"ETag": route.etag, "Last-Modified": LAST_MODIFIED}
        respond(request, route.status, route.body, headers)


@contextmanager
def running_feed_server() -> Iterator[FeedServer]:
    server = FeedServer()
    try:
        yield server
    finally:
        server.close()
