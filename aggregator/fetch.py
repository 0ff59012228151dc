"""One HTTP GET of a source, with conditional headers, timeouts, a deadline and a size cap.

Every way a fetch can fail ends as a `FetchError` whose message is one line,
good enough to log as it is; no requests or urllib3 exception leaves this
module. Nothing is logged here: the caller knows which source it was.

Relies on urllib3 2.6 or later: HTTPResponse.shutdown (2.3) for the deadline
and decompression bounded by the read size (2.6) for the size cap.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
from http import HTTPStatus
from types import TracebackType
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from .errors import FetchError
from .models import Fetched, FetchPolicy, SourceState

_CHUNK_SIZE = 64 * 1024  # decoded bytes per read; also bounds what one read decompresses


def make_session(policy: FetchPolicy) -> requests.Session:
    """A session that identifies us and behaves the same on every machine.

    trust_env is off so that proxy variables, ~/.netrc credentials and CA
    bundles from the environment neither change where a request goes nor
    send credentials to a source.
    """
    session = requests.Session()
    session.trust_env = False
    session.max_redirects = policy.max_redirects
    session.headers["User-Agent"] = policy.user_agent
    return session


def fetch(
    session: requests.Session, url: str, policy: FetchPolicy, state: SourceState | None = None
) -> Fetched:
    """GET `url` once, following redirects; raise FetchError unless the answer is 2xx or 304.

    A 304 comes back with an empty body. Any other answer must arrive whole
    within `policy.deadline` seconds and be at most `policy.max_bytes` once
    decompressed.
    """
    with _Deadline(policy.deadline) as deadline:
        try:
            response = session.get(
                url,
                headers=_validators(state),
                timeout=(policy.connect_timeout, policy.read_timeout),
                stream=True,
                hooks={"response": _close_redirect},
            )
            deadline.watch(response)
            return _receive(response, url, policy, deadline)
        except (OSError, urllib3.exceptions.HTTPError) as error:  # requests' errors are OSErrors
            if deadline.expired:
                raise deadline.error() from None
            raise FetchError(_describe(error, url, session.max_redirects, policy)) from None


class _Deadline:
    """Cuts a response off when the whole exchange takes longer than allowed.

    requests' read timeout bounds each socket read, so a server that trickles
    a byte at a time never trips it. Checking the clock between reads is not
    enough either: a single urllib3 read may wait for many socket reads (the
    rest of a Content-Length, a whole chunk, its size line, a gzip header).
    So a timer thread shuts the socket down at the deadline (urllib3's
    HTTPResponse.shutdown), which makes any pending or later read end at once,
    whatever the transfer encoding; the reader then sees `expired`.

    Before the response headers arrive there is no response to shut down:
    only the connect and read timeouts bound each step of that phase, and
    `watch` fails at once if it already took longer than the deadline.

    The deadline owns the response: on exit it stops its timer first and only
    then closes the response, so it never touches a socket being closed.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._response: requests.Response | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.name = "fetch-deadline"
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._timer.cancel()
        self._timer.join()
        if self._response is not None:
            self._response.close()

    def watch(self, response: requests.Response) -> None:
        """Shut `response` down when the deadline passes, and close it on exit."""
        with self._lock:
            self._response = response
        if self.expired:
            raise self.error()

    def error(self) -> FetchError:
        return FetchError(f"deadline of {self.seconds}s exceeded before the response was complete")

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            if self._response is not None:
                # ValueError/RuntimeError/OSError: the body was already read or the
                # socket already closed, so there is nothing left to cut off.
                with contextlib.suppress(ValueError, RuntimeError, OSError):
                    self._response.raw.shutdown()


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


def _receive(response: requests.Response, url: str, policy: FetchPolicy, deadline: _Deadline) -> Fetched:
    """The Fetched record for a final response, or FetchError for a status we cannot use."""
    status = response.status_code
    if status == 304:
        body = b""
    elif 200 <= status < 300:
        body = _read_body(response, policy.max_bytes)
        if deadline.expired:  # a body delimited by the connection's end looks complete when cut off
            raise deadline.error()
    else:
        reason = response.reason or _standard_reason(status)
        raise FetchError(
            f"HTTP {status} {reason}".rstrip(),
            status=status,
            headers={name.lower(): value for name, value in response.headers.items()},
        )
    return Fetched(
        url=url,
        final_url=response.url,
        status=status,
        headers={name.lower(): value for name, value in response.headers.items()},
        body=body,
        redirects=tuple(hop.status_code for hop in response.history),
    )


def _read_body(response: requests.Response, max_bytes: int) -> bytes:
    """Read the decoded body, stopping as soon as it exceeds `max_bytes`.

    urllib3 (2.6 and later) decompresses at most what each read asks for, so a
    gzip bomb costs about `max_bytes` of memory, not its full size.
    """
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    declared = response.headers.get("Content-Length", "").strip()
    if encoding == "identity" and declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(f"body larger than {max_bytes} bytes (Content-Length: {declared})")
    body = bytearray()
    for chunk in response.iter_content(_CHUNK_SIZE):
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

    if caused_by(requests.ConnectTimeout):
        return f"connect timeout: no connection to {host} within {policy.connect_timeout}s"
    if caused_by(urllib3.exceptions.ReadTimeoutError):
        return f"read timeout: no data from {host} for {policy.read_timeout}s"
    if caused_by(ssl.SSLError):
        return f"TLS error with {host}: {detail}"
    if caused_by(urllib3.exceptions.NameResolutionError):
        return f"cannot resolve {host}: {detail}"
    if caused_by(urllib3.exceptions.NewConnectionError):
        return f"cannot connect to {host}: {detail}"
    if caused_by(requests.exceptions.ContentDecodingError):
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
