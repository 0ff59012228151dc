"""Article pages come over the poll's kept-alive sessions; guarded and unguarded sessions never mix.

The loopback publisher notes the client port of every request: one port for
many requests means one kept-alive connection. Polled by the real worker
into a real database.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from aggregator.errors import FetchError
from aggregator.fetch import SessionPool, fetch
from aggregator.models import FetchPolicy
from tests.httpserver import LoopbackServer, respond
from tests.polled import poll_once
from tests.sample_feeds import Article, rss2

DATE = "Mon, 14 Mar 2022 10:55:11 +0800"
PAGES = 6


class Publisher:
    """Feeds at /<name>/feed.xml linking to /<name>/<n>.html.

    Kept for every request: (path, client port), and how many sessions the
    client process had open then (each has one "fetch-deadline" watchdog thread).
    """

    def __init__(self) -> None:
        self.requests: list[tuple[str, int]] = []
        self.watchdogs: list[int] = []
        self.server = LoopbackServer(self._handle)

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        self.requests.append((request.path, request.client_address[1]))
        self.watchdogs.append(_watchdog_threads())
        name, _, page = request.path.strip("/").partition("/")
        if page == "feed.xml":
            links = [Article(f"{name} {n}", self.server.url(f"/{name}/{n}.html"), DATE) for n in range(PAGES)]
            respond(
                request, 200, rss2(name, self.server.url("/"), links), {"Content-Type": "application/rss+xml"}
            )
        else:
            body = f'<html><body><div id="ContentBody"><p>Full text of {request.path}</p></div></body></html>'
            respond(request, 200, body.encode(), {"Content-Type": "text/html; charset=utf-8"})

    def ports(self, name: str, *, articles: bool = True) -> list[int]:
        """The client ports of the requests for `name`'s article pages (or its feed)."""
        wanted = (lambda path: path.endswith(".html")) if articles else (lambda path: path.endswith(".xml"))
        return [port for path, port in self.requests if path.startswith(f"/{name}/") and wanted(path)]


@pytest.fixture
def publisher() -> Iterator[Publisher]:
    publisher = Publisher()
    yield publisher
    publisher.server.close()


def _watchdog_threads() -> int:
    return sum(thread.name == "fetch-deadline" for thread in threading.enumerate())


def _poll(tmp_path: Path, database_url: str, sources_yaml: str) -> dict[str, list[str]]:
    """One poll with one polling thread; each source's stored contents."""
    stored: dict[str, list[str]] = {}
    for item in poll_once(tmp_path, database_url, sources_yaml, workers=1):
        stored.setdefault(item.sources[0].name, []).append(item.content)
    return stored


@pytest.mark.parametrize("concurrency", [1, 2])
def test_article_pages_of_one_host_come_over_kept_alive_connections(
    tmp_path: Path, database_url: str, publisher: Publisher, concurrency: int
) -> None:
    stored = _poll(
        tmp_path,
        database_url,
        f'  - {{name: news, url: "{publisher.server.url("/news/feed.xml")}", category: news,'
        f' allow_private: true, full_content: {{selector: "#ContentBody", concurrency: {concurrency}}}}}\n',
    )

    assert sorted(stored["news"]) == sorted(f"<p>Full text of /news/{n}.html</p>" for n in range(PAGES))
    ports = publisher.ports("news")
    assert len(ports) == PAGES
    assert len(set(ports)) <= concurrency  # a new session per page would use PAGES connections
    if concurrency == 1:  # fetched on the polling thread: the feed's own connection serves them too
        assert set(ports) == set(publisher.ports("news", articles=False))


def test_article_threads_of_many_sources_share_a_few_sessions(
    tmp_path: Path, database_url: str, publisher: Publisher
) -> None:
    before = _watchdog_threads()
    names = [f"site{n}" for n in range(10)]
    stored = _poll(
        tmp_path,
        database_url,
        "".join(
            f'  - {{name: {name}, url: "{publisher.server.url(f"/{name}/feed.xml")}", category: news,'
            f' allow_private: true, full_content: {{selector: "#ContentBody", concurrency: 2}}}}\n'
            for name in names
        ),
    )

    assert all(len(stored[name]) == PAGES and all("Full text" in c for c in stored[name]) for name in names)
    # One polling thread's session plus one per article thread running at once, not one per thread started.
    assert max(publisher.watchdogs) - before <= 1 + 2
    assert len({port for _, port in publisher.requests}) <= 1 + 2


def test_a_guarded_source_still_refuses_loopback_after_an_open_one_used_the_pool(
    tmp_path: Path, database_url: str, publisher: Publisher, caplog: pytest.LogCaptureFixture
) -> None:
    full_content = 'full_content: {selector: "#ContentBody", concurrency: 1}'
    stored = _poll(
        tmp_path,
        database_url,
        f'  - {{name: open, url: "{publisher.server.url("/open/feed.xml")}", category: news,'
        f" allow_private: true, {full_content}}}\n"
        f'  - {{name: guarded, url: "{publisher.server.url("/guarded/feed.xml")}", category: news,'
        f" {full_content}}}\n",
    )

    paths = [path for path, _ in publisher.requests]
    # The premise: the open source's articles came first, on the same polling thread.
    assert paths.index("/guarded/feed.xml") > paths.index("/open/5.html")
    assert all("Full text" in content for content in stored["open"])
    assert publisher.ports("guarded") == []  # not even connected to
    assert len(stored["guarded"]) == PAGES and not any(
        "Full text" in content for content in stored["guarded"]
    )
    refused = [
        record for record in caplog.records if "refused to connect to 127.0.0.1" in record.getMessage()
    ]
    assert len(refused) == PAGES and all("source=guarded" in record.getMessage() for record in refused)


def test_the_pool_keeps_guarded_and_unguarded_sessions_apart(publisher: Publisher) -> None:
    policy = FetchPolicy("aggregator-test/1.0", 2, 2, 5, 1 << 20, 5)
    url = publisher.server.url("/news/feed.xml")
    pool = SessionPool()
    try:
        assert fetch(pool.get(policy), url, policy).status == 200
        with pytest.raises(FetchError, match=r"refused to connect to 127\.0\.0\.1"):
            fetch(pool.get(policy, guarded=True), url, policy)
        assert fetch(pool.get(policy), url, policy).status == 200
        assert pool.get(policy, guarded=True) is pool.get(policy, guarded=True)
    finally:
        pool.close()
    assert len(publisher.ports("news", articles=False)) == 2
    assert len(set(publisher.ports("news", articles=False))) == 1  # the unguarded one kept its connection


def test_a_borrowed_session_goes_back_to_the_pool_and_keeps_its_guard(publisher: Publisher) -> None:
    policy = FetchPolicy("aggregator-test/1.0", 2, 2, 5, 1 << 20, 5)
    url = publisher.server.url("/news/feed.xml")
    pool = SessionPool()
    lent: list[object] = []

    def borrow_and_fetch() -> None:  # each on a thread of its own, one after the other
        with pool.borrowed(policy) as session:
            lent.append(session)
            assert fetch(session, url, policy).status == 200
        with pool.borrowed(policy, guarded=True) as session:
            lent.append(session)
            with pytest.raises(FetchError, match=r"refused to connect to 127\.0\.0\.1"):
                fetch(session, url, policy)

    try:
        for _ in range(3):
            thread = threading.Thread(target=borrow_and_fetch)
            thread.start()
            thread.join()
    finally:
        pool.close()
    assert len(lent) == 6 and len(set(map(id, lent))) == 2  # one unguarded, one guarded, reused
    assert len(publisher.ports("news", articles=False)) == 3
    assert len(set(publisher.ports("news", articles=False))) == 1
