"""One HTTP GET of a source, with conditional headers, timeouts, a deadline and a size cap.

Every way a fetch can fail ends as a `FetchError` whose message is one line,
good enough to log as it is; no requests or urllib3 exception leaves this
module. Nothing is logged here: the caller knows which source it was.

Relies on urllib3 2.6 or later: HTTPResponse.shutdown (2.3) for the deadline
and decompression bounded by the read size (2.6) for the size cap. The
deadline also reaches into urllib3 through its documented extension points
(PoolManager.pool_classes_by_scheme, HTTPConnectionPool.ConnectionCls) and
HTTPConnection._new_conn, the hook urllib3's own connect() calls.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import math
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Collection, Iterator
from http import HTTPStatus
from types import TracebackType
from typing import Any, cast
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NameResolutionError
from urllib3.response import HTTPResponse
from urllib3.util.connection import allowed_gai_family

from .errors import FetchError
from .models import Fetched, FetchPolicy, SourceState

_CHUNK_SIZE = 64 * 1024  # decoded bytes per read; also bounds what one read decompresses
_POOL_KEYS_KEPT = 4096  # URLs whose connection pool attributes an adapter keeps

AddressRefusal = Callable[[str], str | None]  # an IP address -> why not to connect to it, or None


def make_session(policy: FetchPolicy, *, refuse_address: AddressRefusal | None = None) -> requests.Session:
    """A session that identifies us and behaves the same on every machine.

    trust_env is off so that proxy variables, ~/.netrc credentials and CA
    bundles from the environment neither change where a request goes nor
    send credentials to a source. Its adapter lets `fetch` hold every
    connection to its deadline, from the moment the socket is connected.

    With `refuse_address` (normally `address_refusal`), every connection, on
    every redirect hop, first resolves its host and refuses to connect when
    an address it resolved to is refused: the check is on the address
    actually connected to, so neither a redirect nor DNS rebinding gets round it.
    """
    session = requests.Session()
    adapter = _Adapter(refuse_address)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.trust_env = False
    session.max_redirects = policy.max_redirects
    session.headers["User-Agent"] = policy.user_agent
    return session


class SessionPool:
    """Kept-alive sessions per fetch policy, each used by one thread at a time.

    A session's adapter watches one fetch at a time (its deadline) and owns a
    watchdog thread and connections, so sessions are few and reused: a polling
    thread keeps one for its life (`get`); a short-lived thread, such as one of
    the article fetchers started per source, borrows one and gives it back
    (`borrowed`), so that the next thread finds it with its connections open.
    `fetch` clears its cookies after every exchange, so nothing one source set
    reaches another.
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._sessions: list[requests.Session] = []
        self._free: dict[tuple[FetchPolicy, bool], list[requests.Session]] = {}

    def get(self, policy: FetchPolicy, *, guarded: bool = False) -> requests.Session:
        """This thread's session for `policy`, for its life; `guarded` ones refuse non-global addresses."""
        held = self._held()
        session = held.get((policy, guarded))
        if session is None:
            session = held[policy, guarded] = self._check_out((policy, guarded))
        return session

    @contextlib.contextmanager
    def borrowed(self, policy: FetchPolicy, *, guarded: bool = False) -> Iterator[requests.Session]:
        """A session for `policy` for the block only: this thread's own, else a free one, else a new one."""
        key = (policy, guarded)
        own = self._held().get(key)
        if own is not None:  # only this thread uses it, and a thread makes one fetch at a time
            yield own
            return
        session = self._check_out(key)
        try:
            yield session
        finally:
            with self._lock:
                self._free.setdefault(key, []).append(session)  # last in, first out: its connections are warm

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions, self._free = self._sessions, [], {}
        for session in sessions:
            session.close()

    def _held(self) -> dict[tuple[FetchPolicy, bool], requests.Session]:
        held: dict[tuple[FetchPolicy, bool], requests.Session] = self._local.__dict__.setdefault("held", {})
        return held

    def _check_out(self, key: tuple[FetchPolicy, bool]) -> requests.Session:
        """A free session for `key`, taken off the free list, or a new one."""
        with self._lock:
            free = self._free.get(key)
            if free:
                return free.pop()
        policy, guarded = key
        session = make_session(policy, refuse_address=address_refusal if guarded else None)
        with self._lock:
            self._sessions.append(session)
        return session


def fetch(
    session: requests.Session, url: str, policy: FetchPolicy, state: SourceState | None = None
) -> Fetched:
    """GET `url` once, following redirects; raise FetchError unless the answer is 2xx or 304.

    `session` must come from `make_session`. The whole exchange, every
    redirect hop included, must end within `policy.deadline` seconds: from
    connecting to the last byte of the body (a 304 comes back with an empty
    body). The body may be at most `policy.max_bytes` once decompressed.

    The first hop goes out through the session's adapter as HTTPAdapter.send
    sends it (its connection pools, TLS settings and retries), but not
    through Session.send and a requests Response: most polls end there (a 304
    or a body), and that wrapping cost a sixth of a 304's CPU (0.42 -> 0.35 ms).
    A redirect is handed to the session, which follows the rest as always.
    """
    adapters = [adapter for adapter in session.adapters.values() if isinstance(adapter, _Adapter)]
    if not adapters:
        raise TypeError("fetch() needs a session made by make_session()")
    watches = {adapter.watch for adapter in adapters}
    with _Deadline(policy.deadline, adapters[0].watchdog) as deadline, _attached(deadline, watches):
        try:
            request = _prepared_get(session, url, state)
            adapter = session.get_adapter(request.url or url)  # InvalidSchema for a URL that is not http(s)
            if not isinstance(adapter, _Adapter):
                raise TypeError(f"fetch() needs a session made by make_session() for {request.url}")
            timeout = urllib3.Timeout(
                connect=min(policy.connect_timeout, policy.deadline), read=policy.read_timeout
            )
            raw = adapter.send_first_hop(request, verify=session.verify, cert=session.cert, timeout=timeout)
            deadline.watch_response(raw)
            final_url, redirects = request.url or url, tuple[int, ...]()
            if raw.status in requests.sessions.REDIRECT_STATI and "location" in raw.headers:
                response = _follow_redirects(session, adapter, request, raw, timeout)
                raw, final_url = response.raw, response.url
                redirects = tuple(hop.status_code for hop in response.history)
                deadline.watch_response(raw)
            return _receive(raw, url, final_url, redirects, policy, deadline)
        except (OSError, urllib3.exceptions.HTTPError) as error:  # requests' errors are OSErrors
            if deadline.expired:
                raise deadline.error() from None
            raise FetchError(_describe(error, url, session.max_redirects, policy)) from None
        finally:
            session.cookies.clear()  # a redirect chain may use them; the next fetch must not


def _prepared_get(session: requests.Session, url: str, state: SourceState | None) -> requests.PreparedRequest:
    """The GET as Session.request would prepare it, whose URL is prepared once per URL.

    What Session.request would merge in is the session's headers only (no
    cookies are left, and trust_env is off, so nothing comes from the
    environment); the cookie jar comes with a redirect (_follow_redirects).
    """
    prepared_url, authorization = _prepared_url(url)
    request = requests.PreparedRequest()
    request.method = "GET"
    request.url = prepared_url
    # What prepare_headers() makes, the session's headers checked once (the validators, which come
    # from the server, on every request: one with a line break would add a header of its own).
    request.headers = requests.structures.CaseInsensitiveDict(
        _checked_headers(tuple(session.headers.items()))
    )
    for header in _validators(state).items():
        requests.utils.check_header_validity(header)
        request.headers[header[0]] = header[1]
    if authorization is not None:
        request.headers["Authorization"] = authorization
    request.body = None
    request.hooks = {"response": [_close_redirect]}
    return request


@functools.lru_cache(maxsize=64)
def _checked_headers(headers: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """A session's headers, checked as prepare_headers() checks them (requests' error for a bad one)."""
    for header in headers:
        requests.utils.check_header_validity(header)
    return headers


@functools.lru_cache(maxsize=4096)
def _prepared_url(url: str) -> tuple[str, str | None]:
    """`url` as requests sends it (IDNA host, quoted path), and the Basic auth of credentials in its
    userinfo (what PreparedRequest.prepare_auth adds); requests' error for an unusable URL."""
    request = requests.PreparedRequest()
    request.prepare_url(url, None)
    request.headers = requests.structures.CaseInsensitiveDict()
    request.prepare_auth(None, request.url)
    return request.url or url, request.headers.get("Authorization")


def _follow_redirects(
    session: requests.Session,
    adapter: _Adapter,
    request: requests.PreparedRequest,
    raw: HTTPResponse,
    timeout: urllib3.Timeout,
) -> requests.Response:
    """The final response of a redirect chain whose first hop is `raw`, as Session.send follows it:
    the hop's cookies kept for the next hops, credentials dropped on the way to another host."""
    request.prepare_cookies(requests.cookies.RequestsCookieJar())
    first = adapter.build_response(request, raw)
    first = requests.hooks.dispatch_hook("response", request.hooks, first)  # type: ignore[no-untyped-call]
    requests.cookies.extract_cookies_to_jar(session.cookies, request, raw)  # type: ignore[no-untyped-call]
    hops = session.resolve_redirects(
        first,
        request,
        stream=True,
        timeout=timeout,
        verify=session.verify,  # type: ignore[arg-type]  # a CA bundle's path is as good as True
        cert=session.cert,
        proxies={},
    )
    history: list[requests.Response] = list(hops)
    if not history:
        return cast(requests.Response, first)
    final = history.pop()
    final.history = [first, *history]
    return final


class _Deadline:
    """Cuts an exchange off when it takes longer than allowed, whatever stage it is in.

    requests' read timeout bounds each socket read, so a server that trickles
    a byte at a time (of the headers or of the body) never trips it. Checking
    the clock between reads is not enough either: one read of the status line,
    of a header or of a body chunk may wait for many socket reads. So a watchdog
    thread shuts down, at the deadline, every socket the fetch has used: the
    session's connections report each socket as soon as it is connected
    (before the TLS handshake) and again whenever they send a request on it
    (a kept-alive one), on every redirect hop. Any pending or later read or
    write on it then ends at once; urllib3 turns that into an error or, for a
    body delimited by the connection's end, into a short body, so the caller
    asks `expired` before trusting what it got.

    The watchdog works on a duplicate of each socket's file descriptor: shutting
    that down ends the connection underneath a TLS wrapper too, without
    touching the wrapper's state from another thread; the duplicate keeps the
    descriptor's number from going to another socket meanwhile; and closing
    it on exit leaves a kept-alive connection open for the next fetch.

    Only two steps have no socket to shut down yet: the name lookup (bounded
    by nothing but the resolver) and the TCP connect, which connections bound
    by the time left (see _WatchedHTTPConnection).

    The deadline owns the final response: on exit it disarms its watchdog first
    and only then closes the response and its duplicates, so it never touches a
    socket being closed.
    """

    def __init__(self, seconds: float, watchdog: _Watchdog) -> None:
        self.seconds = seconds
        self._ends = time.monotonic() + seconds
        self._fired = False
        self._descriptors: list[int] = []  # duplicates of the sockets' file descriptors
        self._response: HTTPResponse | None = None
        self._lock = threading.Lock()
        self._watchdog = watchdog

    def __enter__(self) -> _Deadline:
        self._ends = time.monotonic() + self.seconds
        self._watchdog.arm(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._watchdog.disarm()
        for descriptor in self._descriptors:
            os.close(descriptor)
        if self._response is not None:
            if not self._response.isclosed():  # not read to its end: its connection is not reused
                self._response.close()
            self._response.release_conn()

    @property
    def ends(self) -> float:
        """When it passes, on the time.monotonic() clock."""
        return self._ends

    @property
    def expired(self) -> bool:
        """True once the deadline has passed (whether or not the watchdog has cut anything yet)."""
        return self._fired or time.monotonic() >= self._ends

    def remaining(self) -> float:
        return max(self._ends - time.monotonic(), 0.0)

    def watch_socket(self, sock: socket.socket) -> None:
        """Shut the connection under `sock` down when the deadline passes (at once if it has)."""
        duplicate = os.dup(sock.fileno())  # a bare descriptor: a socket object cost 3 more system calls
        with self._lock:
            self._descriptors.append(duplicate)
            if self._fired:
                _shutdown(duplicate)

    def watch_response(self, response: HTTPResponse) -> None:
        """Shut `response` down too when the deadline passes, and end it on exit."""
        with self._lock:
            self._response = response
        if self.expired:
            raise self.error()

    def error(self) -> FetchError:
        return FetchError(f"deadline of {self.seconds}s exceeded before the response was complete")

    def expire(self) -> None:
        """Cut off every socket and the response of this fetch; called by the watchdog."""
        with self._lock:
            self._fired = True
            for descriptor in self._descriptors:
                _shutdown(descriptor)
            if self._response is not None:
                # ValueError/RuntimeError/OSError: the body was already read or the
                # socket already closed, so there is nothing left to cut off.
                with contextlib.suppress(ValueError, RuntimeError, OSError):
                    self._response.shutdown()


class _Watchdog:
    """The thread that expires a session's deadlines: one per session, not one per fetch.

    A session serves one fetch at a time, so it has at most one deadline
    armed. The thread starts with the first fetch and ends when the session
    is closed; starting a timer thread per fetch cost a tenth of a poll of
    1,000 unchanged sources. Nor is it woken for every fetch: it sleeps until
    the deadline it last saw would end, and is woken only for one that ends
    sooner (a session's fetches share one policy, so each ends later than the
    one before). When it wakes, it looks at whatever is armed then.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._armed: _Deadline | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._wakes_at = math.inf  # on the time.monotonic() clock; inf: asleep until woken

    def arm(self, deadline: _Deadline) -> None:
        with self._changed:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fetch-deadline", daemon=True)
                self._thread.start()
            self._armed = deadline
            if deadline.ends < self._wakes_at:
                self._changed.notify()

    def disarm(self) -> None:
        """Returns once no expiry is in progress: the caller may close what the deadline watched."""
        with self._changed:
            self._armed = None  # found gone at the next wake-up: no need to wake the thread for it

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify()

    def _run(self) -> None:
        with self._changed:
            while not self._closed:
                deadline = self._armed
                if deadline is None:
                    self._wakes_at = math.inf
                    self._changed.wait()
                    continue
                remaining = deadline.ends - time.monotonic()
                if remaining > 0:
                    self._wakes_at = deadline.ends
                    self._changed.wait(remaining)
                    continue
                deadline.expire()  # holding the condition: disarm() waits until the cut is done
                self._armed = None


def _shutdown(descriptor: int) -> None:
    """Shut down the connection under a duplicated descriptor; the descriptor stays open."""
    with contextlib.suppress(OSError):  # the peer or urllib3 already ended that connection
        duplicate = socket.socket(fileno=descriptor)
        try:
            duplicate.shutdown(socket.SHUT_RDWR)
        finally:
            duplicate.detach()  # closed by the deadline's exit, with the others


class _Watch:
    """Where a session's connections report their sockets: to the deadline of the fetch in progress.

    fetch() attaches its deadline before sending and detaches it after, in the
    thread that uses the session, which is also the thread its connections
    report from; only the deadline itself is shared with the watchdog thread.
    """

    __slots__ = ("deadline", "refuse_address")

    def __init__(self, refuse_address: AddressRefusal | None = None) -> None:
        self.deadline: _Deadline | None = None
        self.refuse_address = refuse_address  # the session's, fixed: not per fetch

    def socket(self, sock: socket.socket) -> None:
        if self.deadline is not None:
            self.deadline.watch_socket(sock)

    def connect_timeout(self, timeout: float | None) -> float | None:
        """`timeout`, or less if the deadline comes sooner."""
        if self.deadline is None:
            return timeout
        remaining = self.deadline.remaining()
        return remaining if timeout is None else min(timeout, remaining)


@contextlib.contextmanager
def _attached(deadline: _Deadline, watches: Collection[_Watch]) -> Iterator[None]:
    for watch in watches:
        watch.deadline = deadline
    try:
        yield
    finally:
        for watch in watches:
            watch.deadline = None


class _WatchedHTTPConnection(HTTPConnection):
    """A connection that reports each socket it connects or sends a request on to its `_Watch`.

    _new_conn is where urllib3's connect() (HTTPS: before the TLS handshake)
    opens the TCP connection; the connect itself is bounded by the time left.
    """

    def __init__(self, *args: Any, watch: _Watch, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._watch = watch

    def _new_conn(self) -> socket.socket:
        timeout = self.timeout
        self.timeout = self._watch.connect_timeout(timeout)
        try:
            refuse = self._watch.refuse_address
            sock = super()._new_conn() if refuse is None else self._new_checked_conn(refuse)
        finally:
            self.timeout = timeout
        self._watch.socket(sock)
        return sock

    def _new_checked_conn(self, refuse: AddressRefusal) -> socket.socket:
        """super()._new_conn() to the addresses the host resolves to, once each is allowed.

        The host is resolved here, once, and the socket connects to exactly the
        address checked (urllib3 connects to `_dns_host`; `host`, which TLS and
        the Host header use, is left alone).
        """
        try:
            found = socket.getaddrinfo(self._dns_host, self.port, allowed_gai_family(), socket.SOCK_STREAM)
        except socket.gaierror as error:
            raise NameResolutionError(self.host, self, error) from error
        addresses = list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in found))
        for address in addresses:
            reason = refuse(address)
            if reason is not None:
                raise _RefusedAddress(f"refused to connect to {address} ({reason})")
        host = self._dns_host
        failure: urllib3.exceptions.HTTPError | None = None
        for address in addresses:  # like urllib3: the next address when one does not answer
            self._dns_host = address
            try:
                return super()._new_conn()
            except urllib3.exceptions.NewConnectionError as error:  # ConnectTimeoutError: time is up
                failure = error
            finally:
                self._dns_host = host
        assert failure is not None  # getaddrinfo returns at least one address or raises
        raise failure

    def request(self, *args: Any, **kwargs: Any) -> None:
        if self.sock is not None:  # kept alive from an earlier request; a new one reports in _new_conn
            self._watch.socket(self.sock)
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(_WatchedHTTPConnection, HTTPSConnection):
    pass


class _WatchedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchingPoolManager(urllib3.PoolManager):
    """A PoolManager whose connections report to `watch`; TLS settings and pool keys as usual."""

    def __init__(self, watch: _Watch, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.watch = watch
        self.pool_classes_by_scheme = {
            "http": _WatchedHTTPConnectionPool,
            "https": _WatchedHTTPSConnectionPool,
        }

    def _new_pool(
        self, scheme: str, host: str, port: int, request_context: dict[str, Any] | None = None
    ) -> HTTPConnectionPool:
        # The pool key is already made from request_context: adding to a copy changes no key.
        context = dict(self.connection_pool_kw if request_context is None else request_context)
        context["watch"] = self.watch  # pools pass unknown keywords on to their ConnectionCls
        return super()._new_pool(scheme, host, port, context)


class _RefusedAddress(urllib3.exceptions.HTTPError):
    """A connection refused by the session's `refuse_address`; urllib3 and requests pass it on as it is."""


def address_refusal(address: str) -> str | None:
    """Why not to connect to `address` ("loopback address"), or None for a global unicast address.

    Loopback, private (RFC 1918, ULA), link-local (cloud metadata services),
    multicast, unspecified, reserved and every other non-global range;
    an IPv4-mapped IPv6 address is judged by its IPv4 address.
    """
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_global and not ip.is_multicast:  # 224.0.0.0/4 counts as global for ipaddress
        return None
    kinds = (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
    )
    return next((f"{kind} address" for kind, applies in kinds if applies), "non-global address")


class _Adapter(HTTPAdapter):
    """requests' adapter with a pool manager whose connections report to `self.watch`.

    Proxies stay unused: the session ignores the environment and sets none.
    """

    def __init__(self, refuse_address: AddressRefusal | None = None) -> None:
        self.watch = _Watch(refuse_address)  # before super().__init__, which calls init_poolmanager
        self.watchdog = _Watchdog()
        self._pool_keys: dict[tuple[str, object, object], tuple[dict[str, Any], dict[str, Any]]] = {}
        super().__init__()

    def close(self) -> None:
        self.watchdog.close()
        super().close()

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        """Send one hop; a refused address becomes a FetchError naming that hop's URL."""
        try:
            return super().send(request, *args, **kwargs)
        except _RefusedAddress as refused:
            raise FetchError(f"{refused} for {request.url}") from None

    def send_first_hop(
        self,
        request: requests.PreparedRequest,
        *,
        verify: bool | str | None,
        cert: str | tuple[str, str] | None,
        timeout: urllib3.Timeout,
    ) -> HTTPResponse:
        """What send() sends, through the same hooks of HTTPAdapter, given back as urllib3's response.

        Errors stay urllib3's (send() wraps them in requests' own): _describe reads either.
        """
        url = request.url or ""
        try:
            # get_connection_with_tls_context() without its proxy lookup (never a proxy here, and it
            # parses the URL again).
            host, pool_kwargs = self._pool_key(request, verify, cert)
            pool = self.poolmanager.connection_from_host(**host, pool_kwargs=pool_kwargs)
            self.cert_verify(pool, url, verify, cert)  # type: ignore[no-untyped-call]
            response = pool.urlopen(
                method="GET",
                url=request.path_url,  # what request_url() gives without a proxy (never one here)
                headers=request.headers,
                redirect=False,
                assert_same_host=False,
                preload_content=False,
                decode_content=False,
                retries=self.max_retries,
                timeout=timeout,
            )
        except _RefusedAddress as refused:
            raise FetchError(f"{refused} for {url}") from None
        return cast(HTTPResponse, response)  # what urlopen makes with preload_content=False

    def _pool_key(
        self, request: requests.PreparedRequest, verify: bool | str | None, cert: str | tuple[str, str] | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """build_connection_pool_key_attributes(), read once per URL and TLS settings (it parses the URL)."""
        key = (request.url or "", verify, cert)
        known = self._pool_keys.get(key)
        if known is not None:
            return known
        if len(self._pool_keys) >= _POOL_KEYS_KEPT:
            self._pool_keys.clear()
        verifying = True if verify is None else verify  # what requests makes of None too: verify
        host, pool_kwargs = self.build_connection_pool_key_attributes(request, verifying, cert)
        attributes = self._pool_keys[key] = (dict(host), dict(pool_kwargs))
        return attributes

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        # What HTTPAdapter.init_poolmanager does, with another PoolManager.
        self._pool_connections, self._pool_maxsize, self._pool_block = connections, maxsize, block
        self.poolmanager = _WatchingPoolManager(
            self.watch, num_pools=connections, maxsize=maxsize, block=block, **pool_kwargs
        )


def _validators(state: SourceState | None) -> dict[str, str]:
    """Conditional-GET headers, sent back verbatim: servers compare them as opaque strings."""
    headers: dict[str, str] = {}
    if state is not None and state.etag:
        headers["If-None-Match"] = state.etag
    if state is not None and state.last_modified:
        headers["If-Modified-Since"] = state.last_modified
    return headers


def _close_redirect(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """Response hook: drop a redirect's body unread.

    requests reads the whole body of every redirect response before following
    it, with no size cap and no deadline; a closed response reads as empty.
    """
    if response.is_redirect:
        response.close()


def _receive(
    raw: HTTPResponse,
    url: str,
    final_url: str,
    redirects: tuple[int, ...],
    policy: FetchPolicy,
    deadline: _Deadline,
) -> Fetched:
    """The Fetched record for a final response, or FetchError for a status we cannot use."""
    status = raw.status
    headers = {name.lower(): value for name, value in raw.headers.itermerged()}  # repeated ones joined
    if status == 304:
        if _declares_body(headers):  # a body after a 304 would be read as the next response's start
            raw.close()  # so the connection ends here
        else:
            _read_body(raw, policy.max_bytes)  # none by definition; reading it keeps the connection alive
        body = b""
    elif 200 <= status < 300:
        body = _read_body(raw, policy.max_bytes)
        if deadline.expired:  # a body delimited by the connection's end looks complete when cut off
            raise deadline.error()
    else:
        reason = raw.reason or _standard_reason(status)
        raise FetchError(f"HTTP {status} {reason}".rstrip(), status=status, headers=headers)
    return Fetched(
        url=url, final_url=final_url, status=status, headers=headers, body=body, redirects=redirects
    )


def _declares_body(headers: dict[str, str]) -> bool:
    """A 304 with a length or a chunked body: RFC 9110 lets a Content-Length say what the 200 would
    have held, but some servers then send it, so the connection is not reused for the next source
    (the cost: a new connection per poll to a server that declares a length and sends nothing)."""
    length = headers.get("content-length", "0").strip()
    return "transfer-encoding" in headers or length not in ("", "0")


def _read_body(raw: HTTPResponse, max_bytes: int) -> bytes:
    """Read the decoded body, stopping as soon as it exceeds `max_bytes`.

    urllib3 (2.6 and later) decompresses at most what each read asks for, so a
    gzip bomb costs about `max_bytes` of memory, not its full size.
    """
    encoding = raw.headers.get("Content-Encoding", "identity").strip().lower()
    declared = raw.headers.get("Content-Length", "").strip()
    if encoding == "identity" and declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(f"body larger than {max_bytes} bytes (Content-Length: {declared})")
    body = bytearray()
    for chunk in raw.stream(_CHUNK_SIZE, decode_content=True):
        body += chunk
        if len(body) > max_bytes:
            raise FetchError(f"body larger than {max_bytes} bytes")
    return bytes(body)


def _standard_reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _describe(error: Exception, url: str, max_redirects: int, policy: FetchPolicy) -> str:
    """One line for the log: what failed, where, and the innermost cause.

    str() of a requests error nests urllib3's reprs several levels deep; the
    innermost cause (an OSError's strerror, mostly) is what an operator needs.
    """
    if isinstance(error, requests.TooManyRedirects):
        return _describe_redirects(error, max_redirects)
    if isinstance(error, ValueError):  # requests refused a URL or header before sending; it says why
        return str(error)
    chain = _causes(error)
    root = chain[-1]
    detail = " ".join((root.strerror if isinstance(root, OSError) and root.strerror else str(root)).split())
    host = _host(error, url)

    def caused_by(*kinds: type[BaseException]) -> bool:
        return any(isinstance(link, kinds) for link in chain)

    connect_timeouts = [
        link
        for link in chain
        if isinstance(link, urllib3.exceptions.ConnectTimeoutError)
        and not isinstance(link, urllib3.exceptions.NewConnectionError)  # a subclass, for history's sake
    ]
    if connect_timeouts or caused_by(requests.ConnectTimeout):
        return f"connect timeout: no connection to {host} within {policy.connect_timeout}s"
    if caused_by(urllib3.exceptions.ReadTimeoutError):
        return f"read timeout: no data from {host} for {policy.read_timeout}s"
    if caused_by(ssl.SSLError):
        return f"TLS error with {host}: {detail}"
    if caused_by(urllib3.exceptions.NameResolutionError):
        return f"cannot resolve {host}: {detail}"
    if caused_by(urllib3.exceptions.NewConnectionError):
        return f"cannot connect to {host}: {detail}"
    if caused_by(requests.exceptions.ContentDecodingError, urllib3.exceptions.DecodeError):
        return f"cannot decode the body from {host}: {detail}"
    return f"connection to {host} failed: {detail}"


def _describe_redirects(error: requests.TooManyRedirects, max_redirects: int) -> str:
    """requests only counts hops; a loop is worth naming, it is the publisher's mistake to report."""
    last = error.response
    if last is not None:
        visited = [response.url for response in last.history] + [last.url]
        target = urljoin(last.url, last.headers.get("Location", ""))
        if target in visited:
            return f"redirect loop back to {target}"
    return f"more than {max_redirects} redirects"


def _causes(error: BaseException) -> list[BaseException]:
    """The error and what caused it, outermost first.

    urllib3 keeps causes in `.reason` (MaxRetryError) or in args
    (ProtocolError), requests in args; the rest is ordinary chaining.
    """
    chain = [error]
    while True:
        link = chain[-1]
        reason = getattr(link, "reason", None)
        nested = [arg for arg in link.args if isinstance(arg, BaseException)]
        if isinstance(reason, BaseException):
            cause: BaseException | None = reason
        elif nested:
            cause = nested[0]
        else:
            cause = link.__cause__ or link.__context__
        if cause is None or cause in chain:
            return chain
        chain.append(cause)


def _host(error: Exception, url: str) -> str:
    """The host the failing request went to, which after a redirect is not the source's."""
    request = error.request if isinstance(error, requests.RequestException) else None
    return urlsplit((request.url if request is not None else None) or url).netloc
