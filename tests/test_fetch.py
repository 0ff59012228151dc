"""fetch against a real HTTP server on 127.0.0.1: what it sends, what it accepts, and every way it refuses."""

from __future__ import annotations

import gzip
import re
import socket
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler

import pytest
import requests

from aggregator.errors import FetchError
from aggregator.fetch import fetch, make_session
from aggregator.models import FetchPolicy, SourceState
from tests.httpserver import Handle, LoopbackServer, pause, respond

MiB = 1024 * 1024
POLICY = FetchPolicy(
    user_agent="aggregator-test/1.0 (+https://example.org/bot)",
    connect_timeout=2.0,
    read_timeout=5.0,
    deadline=5.0,
    max_bytes=1 * MiB,
    max_redirects=5,
)
DEADLINE = replace(POLICY, deadline=1.0, read_timeout=5.0)  # a deadline that trips before any timeout
LAST_MODIFIED = "Mon, 14 Mar 2022 02:55:11 GMT"

Serve = Callable[[Handle], LoopbackServer]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start a LoopbackServer for a handler; every one is closed after the test."""
    servers: list[LoopbackServer] = []

    def start(handle: Handle) -> LoopbackServer:
        server = LoopbackServer(handle)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with make_session(POLICY) as session:
        yield session


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """50 MiB of zeros, gzipped to about 50 KiB, built without holding 50 MiB."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(MiB)
    return b"".join(compressor.compress(zeros) for _ in range(50)) + compressor.flush()


def redirect(request: BaseHTTPRequestHandler, status: int, location: str) -> None:
    respond(request, status, b"moved", {"Location": location})


def trickle(request: BaseHTTPRequestHandler, data: bytes, *, chunked: bool = False) -> None:
    """Send `data` one byte every 0.2 s (each byte its own chunk if `chunked`) until done or closing."""
    for byte in data:
        if not pause(request, 0.2):
            return
        request.wfile.write(b"1\r\n%c\r\n" % byte if chunked else bytes([byte]))
    if chunked:
        request.wfile.write(b"0\r\n\r\n")


def test_ok_gives_body_urls_and_lowercase_headers(serve: Serve, session: requests.Session) -> None:
    def handle(request: BaseHTTPRequestHandler) -> None:
        headers = {"Content-Type": "application/rss+xml", "ETag": '"v1"', "Last-Modified": LAST_MODIFIED}
        respond(request, 200, b"<rss/>", headers)

    server = serve(handle)
    fetched = fetch(session, server.url("/feed"), POLICY)

    assert (fetched.status, fetched.body, fetched.not_modified) == (200, b"<rss/>", False)
    assert fetched.url == fetched.final_url == server.url("/feed")
    assert fetched.headers["content-type"] == "application/rss+xml"
    assert all(name == name.lower() for name in fetched.headers)
    assert (fetched.etag, fetched.last_modified) == ('"v1"', LAST_MODIFIED)
    [seen] = server.seen
    assert seen.headers["user-agent"] == POLICY.user_agent
    assert "if-none-match" not in seen.headers
    assert "if-modified-since" not in seen.headers


def test_validators_are_sent_verbatim_and_304_is_not_modified(
    serve: Serve, session: requests.Session
) -> None:
    state = SourceState(etag='W/"5e-Ab/c"', last_modified=LAST_MODIFIED)

    def handle(request: BaseHTTPRequestHandler) -> None:
        if request.headers["If-None-Match"] == state.etag:
            respond(request, 304, headers={"ETag": '"v2"'})
        else:
            respond(request, 200, b"changed")

    server = serve(handle)
    fetched = fetch(session, server.url("/feed"), POLICY, state)

    assert fetched.not_modified
    assert (fetched.status, fetched.body, fetched.etag) == (304, b"", '"v2"')
    [seen] = server.seen
    assert seen.headers["if-none-match"] == state.etag
    assert seen.headers["if-modified-since"] == state.last_modified


def test_gzip_body_is_decoded(serve: Serve, session: requests.Session) -> None:
    feed = b"<rss>" + b"<item>x</item>" * 1000 + b"</rss>"
    server = serve(lambda request: respond(request, 200, gzip.compress(feed), {"Content-Encoding": "gzip"}))

    fetched = fetch(session, server.url(), POLICY)

    assert fetched.body == feed
    assert "gzip" in server.seen[0].headers["accept-encoding"]


def test_gzip_bomb_is_stopped_at_the_cap_without_inflating_it(
    serve: Serve, session: requests.Session, gzip_bomb: bytes
) -> None:
    server = serve(lambda request: respond(request, 200, gzip_bomb, {"Content-Encoding": "gzip"}))

    tracemalloc.start()
    try:
        started = time.monotonic()
        with pytest.raises(FetchError, match=r"^body larger than 1048576 bytes$"):
            fetch(session, server.url(), POLICY)
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert elapsed < 2.0
    assert peak < 8 * MiB  # the cap plus a few reads' worth, far below the bomb's 50 MiB


@pytest.mark.parametrize(
    ("framing", "message"),
    [
        ("content-length", r"^body larger than 1048576 bytes \(Content-Length: 2097152\)$"),
        ("chunked", r"^body larger than 1048576 bytes$"),
    ],
)
def test_oversized_body_is_refused(
    serve: Serve, session: requests.Session, framing: str, message: str
) -> None:
    body = b"x" * (2 * MiB)

    def handle(request: BaseHTTPRequestHandler) -> None:
        if framing == "content-length":
            respond(request, 200, body)
            return
        request.send_response(200)
        request.send_header("Transfer-Encoding", "chunked")
        request.end_headers()
        for start in range(0, len(body), 64 * 1024):
            request.wfile.write(b"10000\r\n" + body[start : start + 64 * 1024] + b"\r\n")
        request.wfile.write(b"0\r\n\r\n")

    server = serve(handle)
    with pytest.raises(FetchError, match=message):
        fetch(session, server.url(), POLICY)


@pytest.mark.parametrize("framing", ["content-length", "chunked", "until-close", "gzip"])
def test_trickling_server_is_cut_off_at_the_deadline(
    serve: Serve, session: requests.Session, framing: str
) -> None:
    """One byte every 0.2 s never trips the 5 s read timeout; the 1 s deadline must stop it.

    The whole body takes over 4 s, so without a deadline the test fails rather than hangs.
    """
    data = gzip.compress(b"x" * 30) if framing == "gzip" else b"x" * 30

    def handle(request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        if framing == "chunked":
            request.send_header("Transfer-Encoding", "chunked")
        elif framing == "until-close":
            request.send_header("Connection", "close")
            request.close_connection = True
        else:
            request.send_header("Content-Length", str(len(data)))
        if framing == "gzip":
            request.send_header("Content-Encoding", "gzip")
        request.end_headers()
        trickle(request, data, chunked=framing == "chunked")

    server = serve(handle)
    policy = replace(POLICY, deadline=1.0, read_timeout=5.0)

    started = time.monotonic()
    with pytest.raises(FetchError, match=r"^deadline of 1\.0s exceeded"):
        fetch(session, server.url(), policy)
    assert 1.0 <= time.monotonic() - started < 2.5


def trickle_headers(request: BaseHTTPRequestHandler, head: bytes = b"HTTP/1.1 200 OK\r\n") -> None:
    """Send `head` (a status line and maybe headers), then one more header line every 0.3 s, never the end."""
    request.wfile.write(head)
    count = 0
    while pause(request, 0.3):
        count += 1
        request.wfile.write(b"X-Trickle-%d: x\r\n" % count)


def assert_cut_at_the_deadline(session: requests.Session, url: str, policy: FetchPolicy = DEADLINE) -> None:
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"^deadline of 1\.0s exceeded before the response was complete$"):
        fetch(session, url, policy)
    assert 1.0 <= time.monotonic() - started < 2.5


@pytest.mark.parametrize("connection", ["new", "kept alive", "kept alive after a longer deadline"])
def test_trickling_headers_are_cut_off_at_the_deadline(
    serve: Serve, session: requests.Session, connection: str
) -> None:
    """No read waits 0.3 s, so the 5 s read timeout never trips; on a kept-alive connection too.

    After a fetch with a 30 s deadline, the session's watchdog sleeps towards its end: the
    next fetch's 1 s deadline must wake it.
    """
    clients: list[tuple[str, int]] = []

    def handle(request: BaseHTTPRequestHandler) -> None:
        clients.append(request.client_address)
        if request.path == "/warm-up":
            respond(request, 200, b"<rss/>")
        else:
            trickle_headers(request)

    server = serve(handle)
    if connection == "kept alive":
        fetch(session, server.url("/warm-up"), DEADLINE)
    elif connection == "kept alive after a longer deadline":
        fetch(session, server.url("/warm-up"), replace(DEADLINE, deadline=30.0))

    assert_cut_at_the_deadline(session, server.url("/feed"))
    assert len(set(clients)) == 1


def test_silent_server_is_cut_off_at_the_deadline(serve: Serve, session: requests.Session) -> None:
    """The server takes the request and never answers; the read timeout is longer than the deadline."""
    server = serve(lambda request: pause(request, 30) and None)

    assert_cut_at_the_deadline(session, server.url("/feed"), replace(DEADLINE, read_timeout=10.0))


@pytest.mark.parametrize("hop", ["redirect", "after redirect"])
def test_trickling_headers_of_a_redirect_hop_are_cut_off(
    serve: Serve, session: requests.Session, hop: str
) -> None:
    def handle(request: BaseHTTPRequestHandler) -> None:
        if request.path == "/old" and hop == "redirect":
            trickle_headers(request, b"HTTP/1.1 302 Found\r\nLocation: /feed\r\n")
        elif request.path == "/old":
            redirect(request, 302, "/feed")
        elif hop == "redirect":
            respond(request, 200, b"<rss/>")
        else:
            trickle_headers(request)

    server = serve(handle)
    assert_cut_at_the_deadline(session, server.url("/old"))
    assert [seen.path for seen in server.seen] == (["/old"] if hop == "redirect" else ["/old", "/feed"])


@pytest.fixture
def unanswered() -> Iterator[socket.socket]:
    """A listening socket that never accepts: the kernel completes TCP handshakes, nobody answers."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener


def test_stalled_tls_handshake_is_cut_off_at_the_deadline(
    session: requests.Session, unanswered: socket.socket
) -> None:
    port = unanswered.getsockname()[1]
    policy = replace(DEADLINE, connect_timeout=10.0, read_timeout=10.0)

    assert_cut_at_the_deadline(session, f"https://127.0.0.1:{port}/feed", policy)


def test_connect_is_bounded_by_the_deadline(session: requests.Session, unanswered: socket.socket) -> None:
    """With the listener's backlog full, Linux drops further SYNs and the connect itself hangs."""
    port = unanswered.getsockname()[1]
    unanswered.listen(0)
    fillers = [socket.socket() for _ in range(3)]
    try:
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        policy = replace(DEADLINE, connect_timeout=10.0, read_timeout=10.0)

        assert_cut_at_the_deadline(session, f"http://127.0.0.1:{port}/feed", policy)
    finally:
        for filler in fillers:
            filler.close()


@pytest.mark.parametrize("stall", ["before headers", "after headers"])
def test_read_timeout_when_the_server_stalls(serve: Serve, session: requests.Session, stall: str) -> None:
    def handle(request: BaseHTTPRequestHandler) -> None:
        if stall == "after headers":
            request.send_response(200)
            request.send_header("Content-Length", "100")
            request.end_headers()
            request.wfile.write(b"<rss>")
        pause(request, 30)

    server = serve(handle)
    policy = replace(POLICY, read_timeout=0.5, deadline=5.0)

    started = time.monotonic()
    with pytest.raises(
        FetchError, match=rf"^read timeout: no data from 127\.0\.0\.1:{server.port} for 0\.5s$"
    ):
        fetch(session, server.url(), policy)
    assert time.monotonic() - started < 2.0


def test_redirect_chain_is_followed_and_final_url_reported(serve: Serve, session: requests.Session) -> None:
    def handle(request: BaseHTTPRequestHandler) -> None:
        if request.path == "/old":
            redirect(request, 301, "/moved")
        elif request.path == "/moved":
            redirect(request, 302, f"http://{request.headers['Host']}/feed")
        else:
            respond(request, 200, b"<rss/>")

    server = serve(handle)
    fetched = fetch(session, server.url("/old"), POLICY)

    assert (fetched.url, fetched.final_url) == (server.url("/old"), server.url("/feed"))
    assert fetched.body == b"<rss/>"
    assert [seen.path for seen in server.seen] == ["/old", "/moved", "/feed"]


@pytest.mark.parametrize("chunked", [False, True])
def test_redirect_body_is_not_read(serve: Serve, session: requests.Session, chunked: bool) -> None:
    """requests reads a redirect's whole body by default: an endless one would hang the fetch."""

    def handle(request: BaseHTTPRequestHandler) -> None:
        if request.path != "/old":
            respond(request, 200, b"<rss/>")
            return
        request.send_response(302)
        request.send_header("Location", "/feed")
        request.send_header(*(("Transfer-Encoding", "chunked") if chunked else ("Content-Length", "25")))
        request.end_headers()
        trickle(request, b"x" * 25, chunked=chunked)  # 5 s: reading it would fail the test, not hang it

    server = serve(handle)
    started = time.monotonic()
    fetched = fetch(session, server.url("/old"), POLICY)

    assert fetched.final_url == server.url("/feed")
    assert time.monotonic() - started < 1.0


def test_redirect_loop_is_named(serve: Serve, session: requests.Session) -> None:
    server = serve(lambda request: redirect(request, 302, "/b" if request.path == "/a" else "/a"))

    with pytest.raises(FetchError, match=rf"^redirect loop back to {re.escape(server.url('/a'))}$"):
        fetch(session, server.url("/a"), POLICY)


def test_too_many_redirects(serve: Serve) -> None:
    server = serve(lambda request: redirect(request, 302, f"/{int(request.path[1:]) + 1}"))
    policy = replace(POLICY, max_redirects=3)

    with make_session(policy) as session, pytest.raises(FetchError, match=r"^more than 3 redirects$"):
        fetch(session, server.url("/0"), policy)
    assert [seen.path for seen in server.seen] == ["/0", "/1", "/2", "/3"]


def test_credentials_are_not_forwarded_to_another_host(serve: Serve, session: requests.Session) -> None:
    def handle(request: BaseHTTPRequestHandler) -> None:
        if request.path == "/private":
            redirect(request, 302, f"http://localhost:{server.port}/feed")
        else:
            respond(request, 200, b"<rss/>")

    server = serve(handle)
    fetch(session, f"http://user:secret@127.0.0.1:{server.port}/private", POLICY)

    first, second = server.seen
    assert first.headers["authorization"].startswith("Basic ")
    assert second.path == "/feed"
    assert "authorization" not in second.headers


def test_a_cookie_set_by_a_redirect_reaches_the_next_hop_but_not_the_next_fetch(
    serve: Serve, session: requests.Session
) -> None:
    """Some publishers set a consent or session cookie on a redirect and check it on the next hop."""

    def handle(request: BaseHTTPRequestHandler) -> None:
        if request.path == "/feed":
            respond(request, 302, b"", {"Location": "/checked", "Set-Cookie": "consent=yes; Path=/"})
        elif request.headers.get("Cookie") == "consent=yes":
            respond(request, 200, b"<rss/>")
        else:
            respond(request, 403, b"no consent")

    server = serve(handle)
    fetched = fetch(session, server.url("/feed"), POLICY)
    assert (fetched.status, fetched.redirects, fetched.final_url) == (200, (302,), server.url("/checked"))
    with pytest.raises(FetchError, match="HTTP 403"):
        fetch(session, server.url("/checked"), POLICY)
    assert [seen.headers.get("cookie") for seen in server.seen] == [None, "consent=yes", None]


def test_a_304_sent_with_a_body_does_not_spoil_the_next_fetch_on_its_connection(
    serve: Serve, session: requests.Session
) -> None:
    """A 304 has no body; one sent anyway would be read as the start of the next response."""

    def handle(request: BaseHTTPRequestHandler) -> None:
        if request.path == "/odd":
            request.send_response(304)
            request.send_header("Content-Length", "5")
            request.end_headers()
            request.wfile.write(b"hello")
        else:
            respond(request, 200, b"<rss/>")

    server = serve(handle)
    assert fetch(session, server.url("/odd"), POLICY, SourceState(etag='"v1"')).not_modified
    assert fetch(session, server.url("/feed"), POLICY).body == b"<rss/>"


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (404, "HTTP 404 Not Found"),
        (500, "HTTP 500 Internal Server Error"),
        (300, "HTTP 300 Multiple Choices"),
    ],
)
def test_http_error_status_is_a_fetch_error(
    serve: Serve, session: requests.Session, status: int, message: str
) -> None:
    server = serve(lambda request: respond(request, status, b"<html>error page</html>"))

    with pytest.raises(FetchError, match=rf"^{message}$"):
        fetch(session, server.url(), POLICY)


def test_connection_refused(session: requests.Session) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # bound but not listening: connections to it are refused
        port = unused.getsockname()[1]
        with pytest.raises(FetchError, match=rf"^cannot connect to 127\.0\.0\.1:{port}: Connection refused$"):
            fetch(session, f"http://127.0.0.1:{port}/feed", POLICY)


def test_invalid_url_is_a_fetch_error(session: requests.Session) -> None:
    with pytest.raises(
        FetchError, match=r"^No connection adapters were found for 'ftp://example\.org/feed'$"
    ):
        fetch(session, "ftp://example.org/feed", POLICY)


def test_session_ignores_proxies_from_the_environment(
    serve: Serve, session: requests.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens on the discard port
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    server = serve(lambda request: respond(request, 200, b"<rss/>"))

    assert fetch(session, server.url(), POLICY).body == b"<rss/>"
    assert (session.trust_env, session.max_redirects) == (False, POLICY.max_redirects)
