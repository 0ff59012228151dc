"""Polling as publishers see it: validators, redirects, 410, Retry-After, hints, backoff, per-host limits.

Every behaviour is shown against a real server on loopback and a real SQLite
file; the schedule's randomness is seeded so the figures are exact.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import text

from aggregator import schedule
from aggregator.errors import StoreError
from aggregator.models import FetchPolicy, SourceConfig, SourceState, UpdateResult
from aggregator.store import PollRecord, Store, create_store_engine, upgrade_schema
from aggregator.update import BATCH_PER_WORKER, Polling, claim_size, update_sources
from tests.httpserver import LoopbackServer, pause, respond
from tests.sample_feeds import Article, rss2

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
INTERVAL = timedelta(minutes=30)
FEED = rss2(
    "Wire",
    "https://news.example.com/",
    [Article("One", "https://news.example.com/1", "Mon, 14 Mar 2022 10:55:11 +0800")],
)
RSS = {"Content-Type": "application/rss+xml"}
FEED_DATE = "Mon, 14 Mar 2022 10:55:11 +0800"


def _source(name: str, url: str) -> SourceConfig:
    return SourceConfig(
        name=name,
        url=url,
        category="world",
        tags=(),
        interval=INTERVAL,
        timezone="UTC",
        keep_source_tags=False,
        fetch=FetchPolicy("aggregator-test/1.0 (+https://example.org/contact)", 2, 2, 5, 1 << 20, 5),
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'polling.db'}")
    yield opened
    opened.close()


def _poll(store: Store, *sources: SourceConfig, now: datetime = NOW, **polling: object) -> list[UpdateResult]:
    store.sync_sources(sources)
    settings = Polling(rng=random.Random(7), **polling)  # type: ignore[arg-type]
    return update_sources(store, sources, lambda: now, polling=settings, due_only=False)


def _serving(handle: Callable[[BaseHTTPRequestHandler], None]) -> LoopbackServer:
    return LoopbackServer(handle)


def test_unchanged_body_without_validators_is_not_parsed_but_new_validators_are_kept(store: Store) -> None:
    versions = iter(['"v1"', '"v2"'])

    def handle(request: BaseHTTPRequestHandler) -> None:  # ignores If-None-Match, changes its ETag
        respond(request, 200, FEED, {**RSS, "ETag": next(versions)})

    with _serving(handle) as server:
        source = _source("wire", server.url("/feed"))
        [first] = _poll(store, source)
        [second] = _poll(store, source)
    assert (first.new, first.not_modified) == (1, False)
    assert (second.status, second.not_modified, second.new, second.seen) == (200, True, 0, 0)
    assert store.source_state("wire").etag == '"v2"'
    assert server.seen[1].headers["if-none-match"] == '"v1"'


def _redirecting(routes: dict[str, tuple[int, str]]) -> Callable[[BaseHTTPRequestHandler], None]:
    def handle(request: BaseHTTPRequestHandler) -> None:
        if request.path in routes:
            status, target = routes[request.path]
            respond(request, status, b"", {"Location": target})
        elif request.path == "/page.html":
            respond(request, 200, b"<html><body>We moved!</body></html>", {"Content-Type": "text/html"})
        else:
            respond(request, 200, FEED, RSS)

    return handle


def test_a_301_308_chain_is_adopted_after_three_polls_in_a_row(store: Store) -> None:
    with _serving(_redirecting({"/old": (301, "/mid"), "/mid": (308, "/new")})) as server:
        source = _source("wire", server.url("/old"))
        seen_states = []
        for _ in range(3):
            _poll(store, source)
            state = store.source_state("wire")
            seen_states.append((state.url, state.moved_to, state.moved_count))
        _poll(store, source)
        paths = [hit.path for hit in server.seen]
    new = server.url("/new")
    assert seen_states == [(source.url, new, 1), (source.url, new, 2), (new, None, 0)]
    assert paths[-1] == "/new" and paths.count("/old") == 3, "after adoption the new URL is polled directly"
    [row] = store.status()
    assert (row.url, row.config_url) == (new, source.url)


def test_temporary_redirects_are_never_adopted(store: Store) -> None:
    with _serving(_redirecting({"/temp": (302, "/feed"), "/other": (307, "/feed")})) as server:
        for path in ("/temp", "/other"):
            source = _source(path.strip("/"), server.url(path))
            for _ in range(4):
                [result] = _poll(store, source)
                assert result.ok and result.status == 200
            state = store.source_state(source.name)
            assert (state.url, state.moved_to) == (source.url, None)


def test_a_redirect_to_an_html_page_is_an_error_not_a_move(store: Store) -> None:
    with _serving(_redirecting({"/feed.xml": (301, "/page.html")})) as server:
        source = _source("wire", server.url("/feed.xml"))
        for _ in range(3):
            [result] = _poll(store, source)
            assert not result.ok and "not an RSS or Atom feed" in (result.error or "")
    state = store.source_state("wire")
    assert (state.url, state.moved_to, state.error_count) == (source.url, None, 3)


def test_410_gone_disables_the_source_until_enabled(store: Store) -> None:
    def handle(request: BaseHTTPRequestHandler) -> None:
        respond(request, 410, b"gone", {"Content-Type": "text/plain"})

    with _serving(handle) as server:
        source = _source("wire", server.url("/feed"))
        [result] = _poll(store, source)
        assert result.status == 410 and "HTTP 410" in (result.error or "")
        assert _poll(store, source, now=NOW + timedelta(days=30)) == [], "a disabled source is not polled"
        [row] = store.status()
        assert row.disabled_reason == "410 Gone since 2026-11-25 12:00 UTC"
        store.enable("wire")
        assert len(_poll(store, source)) == 1
        assert len(server.seen) == 2


@pytest.mark.parametrize(
    ("retry_after", "at_least", "at_most"),
    [
        ("7200", timedelta(hours=2), timedelta(hours=2, seconds=1)),
        (
            format_datetime(NOW + timedelta(hours=5), usegmt=True),
            timedelta(hours=5),
            timedelta(hours=5, seconds=1),
        ),
        ("99999999", schedule.MAX_HINT, schedule.MAX_HINT + timedelta(seconds=1)),
        ("99999999999999999999", schedule.MAX_HINT, schedule.MAX_HINT + timedelta(seconds=1)),
    ],
    ids=["seconds", "http-date", "capped", "absurd"],
)
@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_defers_the_next_poll(
    store: Store, status: int, retry_after: str, at_least: timedelta, at_most: timedelta
) -> None:
    def handle(request: BaseHTTPRequestHandler) -> None:
        respond(request, status, b"slow down", {"Retry-After": retry_after})

    with _serving(handle) as server:
        [result] = _poll(store, _source("wire", server.url("/feed")))
    assert result.status == status
    due = store.source_state("wire").next_check_at
    assert due is not None and NOW + at_least <= due <= NOW + at_most


@pytest.mark.parametrize(
    ("headers", "body", "wait"),
    [
        ({"Cache-Control": "public, max-age=7200"}, FEED, timedelta(hours=2)),
        ({"Expires": format_datetime(NOW + timedelta(hours=3), usegmt=True)}, FEED, timedelta(hours=3)),
        ({}, FEED.replace(b"<channel>", b"<channel><ttl>240</ttl>"), timedelta(hours=4)),
        ({"Cache-Control": "max-age=60"}, FEED, INTERVAL),  # never earlier than the interval
        ({"Cache-Control": "max-age=99999999999999999999"}, FEED, schedule.MAX_HINT),  # capped, no overflow
    ],
    ids=["max-age", "expires", "rss-ttl", "shorter-than-interval", "absurd-max-age"],
)
def test_publisher_hints_push_the_next_poll_later_never_earlier(
    store: Store, headers: dict[str, str], body: bytes, wait: timedelta
) -> None:
    def handle(request: BaseHTTPRequestHandler) -> None:
        respond(request, 200, body, {**RSS, **headers})

    with _serving(handle) as server:
        _poll(store, _source("wire", server.url("/feed")))
    due = store.source_state("wire").next_check_at
    assert due is not None and NOW + wait <= due <= NOW + wait * (1 + schedule.JITTER)


def test_backoff_doubles_with_jitter_up_to_a_day_and_recovers() -> None:
    rng = random.Random(1)
    for errors in range(1, 12):
        waits = [schedule.after_error(INTERVAL, errors, NOW, rng) - NOW for _ in range(200)]
        ceiling = min(INTERVAL * 2 ** (errors - 1), schedule.MAX_BACKOFF)
        assert all(INTERVAL <= wait <= max(ceiling, INTERVAL * (1 + schedule.JITTER)) for wait in waits)
        if errors >= 3:
            assert max(waits) > (INTERVAL + ceiling) / 2, (
                "spread over the whole range, not stuck at the floor"
            )
    assert schedule.after_error(INTERVAL, 50, NOW, rng) - NOW <= schedule.MAX_BACKOFF, (
        "capped, never abandoned"
    )
    recovered = schedule.after_success(INTERVAL, NOW, rng) - NOW
    assert INTERVAL <= recovered <= INTERVAL * (1 + schedule.JITTER)


def test_errors_back_off_in_the_store_and_success_resets(store: Store) -> None:
    healthy = threading.Event()

    def handle(request: BaseHTTPRequestHandler) -> None:
        if healthy.is_set():
            respond(request, 200, FEED, RSS)
        else:
            respond(request, 500, b"oops", {"Content-Type": "text/plain"})

    with _serving(handle) as server:
        source = _source("wire", server.url("/feed"))
        for _ in range(4):
            _poll(store, source)
        state = store.source_state("wire")
        assert state.error_count == 4 and state.next_check_at is not None
        assert state.next_check_at - NOW <= INTERVAL * 8
        healthy.set()
        _poll(store, source)
    state = store.source_state("wire")
    assert state.error_count == 0 and state.last_error is None
    assert state.next_check_at is not None and state.next_check_at - NOW <= INTERVAL * (1 + schedule.JITTER)


def test_at_most_two_connections_per_host_while_hosts_are_polled_in_parallel(store: Store) -> None:
    lock = threading.Lock()
    active: dict[str, int] = {}
    peak: dict[str, int] = {}
    overall = {"now": 0, "peak": 0}

    def handle(request: BaseHTTPRequestHandler) -> None:
        host = request.server.server_address[0]  # type: ignore[index]
        with lock:
            active[host] = active.get(host, 0) + 1
            peak[host] = max(peak.get(host, 0), active[host])
            overall["now"] += 1
            overall["peak"] = max(overall["peak"], overall["now"])
        pause(request, 0.3)
        with lock:
            active[host] -= 1
            overall["now"] -= 1
        respond(request, 200, FEED, RSS)

    with LoopbackServer(handle, "127.0.0.1") as first, LoopbackServer(handle, "127.0.0.2") as second:
        sources = [_source(f"a{n}", first.url(f"/{n}")) for n in range(6)]
        sources += [_source(f"b{n}", second.url(f"/{n}")) for n in range(6)]
        started = time.monotonic()
        results = _poll(store, *sources, workers=8, per_host=2)
        elapsed = time.monotonic() - started
    assert all(result.ok for result in results) and len(results) == 12
    assert peak == {"127.0.0.1": 2, "127.0.0.2": 2}
    assert overall["peak"] == 4, "both hosts at once"
    assert elapsed < 3 * 0.3 + 1.0


def test_user_agent_with_contact_url_is_sent(store: Store) -> None:
    with _serving(_redirecting({})) as server:
        _poll(store, _source("wire", server.url("/feed")))
    assert server.seen[0].headers["user-agent"] == "aggregator-test/1.0 (+https://example.org/contact)"


def test_connections_are_kept_alive_across_sources_and_unchanged_polls_but_cookies_are_not_shared(
    store: Store,
) -> None:
    """A publisher with many feeds sees few connections, even when every answer is a 304."""
    connections: set[int] = set()
    cookies: list[str | None] = []

    def handle(request: BaseHTTPRequestHandler) -> None:
        connections.add(request.client_address[1])
        cookies.append(request.headers.get("Cookie"))
        if request.headers.get("If-None-Match") == '"v1"':
            respond(request, 304, b"", {"ETag": '"v1"'})
        else:
            respond(request, 200, FEED, RSS | {"ETag": '"v1"', "Set-Cookie": f"visitor={request.path}"})

    with _serving(handle) as server:
        sources = [_source(f"s{n}", server.url(f"/{n}")) for n in range(10)]
        first = _poll(store, *sources, workers=2, per_host=2)
        connections.clear()
        second = _poll(store, *sources, workers=2, per_host=2)
    assert all(result.ok for result in first) and len(first) == 10
    assert [result.not_modified for result in second] == [True] * 10
    assert 1 <= len(connections) <= 2, "10 conditional GETs over the pool's 2 kept-alive connections"
    assert cookies == [None] * 20, "a cookie one source set is never sent to another"


S = TypeVar("S", bound=Store)


def _misbehaving(store_class: type[S], path: Path) -> S:
    """A real store of a class that misbehaves on purpose, on a fresh SQLite file."""
    store = store_class(create_store_engine(f"sqlite:///{path}"))
    upgrade_schema(store.engine)
    return store


def _serve_feed(request: BaseHTTPRequestHandler) -> None:
    respond(request, 200, FEED, RSS)


class _StoreThatGoesAway(Store):
    """A real store whose database becomes unreachable after the first claim of a tick."""

    claims = 0

    def claim(self, *args: Any, **kwargs: Any) -> dict[str, SourceState]:
        self.claims += 1
        if self.claims > 1:
            raise StoreError("database unavailable: connection refused")
        return super().claim(*args, **kwargs)


def _poll_until_the_store_fails(store: Store, count: int) -> tuple[list[SourceConfig], list[str], list[str]]:
    """Poll `count` sources until the store raises: (the sources, those recorded, those still ours)."""
    try:
        with _serving(_serve_feed) as server:
            sources = [_source(f"s{n:02d}", server.url(f"/{n:02d}")) for n in range(count)]
            with pytest.raises(StoreError):
                _poll(store, *sources, workers=2, per_host=2)
        polled = [row.name for row in store.status() if row.last_polled_at is not None]
        with store.engine.connect() as connection:
            leased = connection.execute(
                text("SELECT name FROM sources WHERE lease_owner IS NOT NULL AND lease_owner != 'rival'")
            ).scalars()
            return sources, polled, list(leased)
    finally:
        store.close()


def test_a_database_gone_mid_tick_leaves_no_session_thread_behind(tmp_path: Path) -> None:
    sources, polled, leased = _poll_until_the_store_fails(
        _misbehaving(_StoreThatGoesAway, tmp_path / "gone.db"), 12
    )
    # The batch fetched before the failing claim is recorded, and its leases end with it.
    assert len(polled) == claim_size(Polling(workers=2), sources), "the batch fetched before the failure"
    assert not set(leased) & set(polled)
    deadline = time.monotonic() + 2
    while any(thread.name == "fetch-deadline" for thread in threading.enumerate()):
        assert time.monotonic() < deadline, "the sessions' watchdog threads outlived the tick"
        time.sleep(0.01)


class _StoreWithARival(Store):
    """A real store where another worker leases every other source just before each of our claims."""

    stolen: list[str]
    claims: list[int]

    def claim(self, names: Any, now: datetime, **kwargs: Any) -> dict[str, SourceState]:
        rival = [name for name in names[1::2] if name not in self.stolen]
        self.stolen += super().claim(rival, now, owner="rival", lease=timedelta(hours=1))
        self.claims.append(len(names))
        return super().claim(names, now, **kwargs)


def test_a_batch_another_worker_takes_part_of_is_filled_from_the_rest_and_none_is_polled_twice(
    tmp_path: Path,
) -> None:
    hits: list[str] = []

    def handle(request: BaseHTTPRequestHandler) -> None:
        hits.append(request.path)
        respond(request, 200, FEED, RSS)

    store = _misbehaving(_StoreWithARival, tmp_path / "rival.db")
    store.stolen, store.claims = [], []
    try:
        with _serving(handle) as server:
            sources = [_source(f"s{n:02d}", server.url(f"/{n:02d}")) for n in range(24)]
            results = _poll(store, *sources, workers=2, per_host=2)
    finally:
        store.close()
    batch = claim_size(Polling(workers=2), sources)
    ours = [result.source for result in results]
    assert sorted(ours + store.stolen) == [source.name for source in sources]
    assert not set(ours) & set(store.stolen) and len(set(ours)) == len(ours)
    assert sorted(hits) == sorted(f"/{name[1:]}" for name in ours), (
        "ours fetched once each, the rival's never"
    )
    # The rival takes half of each claim's sources: the batch is topped up until it is full (8 = 4+2+1+1).
    assert batch == 8 and store.claims[:4] == [8, 4, 2, 1]


def test_the_source_listed_first_files_a_shared_article_however_overdue_the_others_are(store: Store) -> None:
    """Batches are claimed most overdue first, yet stored in config order."""
    shared = Article("Shared", "https://news.example.com/shared", FEED_DATE)

    def handle(request: BaseHTTPRequestHandler) -> None:
        respond(request, 200, rss2(request.path, "https://news.example.com/", [shared]), RSS)

    with _serving(handle) as server:
        alpha = _source("alpha", server.url("/alpha"))
        beta = replace(_source("beta", server.url("/beta")), category="tech")
        store.sync_sources([alpha, beta])
        assert list(store.claim(["alpha", "beta"], NOW, owner="earlier", lease=INTERVAL)) == ["alpha", "beta"]
        store.record_unchanged(
            [
                (name, PollRecord(NOW, 304, None, NOW - overdue, url=source.url))
                for name, source, overdue in (("alpha", alpha, INTERVAL), ("beta", beta, 2 * INTERVAL))
            ]
        )
        assert store.claimable(["alpha", "beta"], NOW) == ["beta", "alpha"]
        results = _poll(store, alpha, beta)
    assert [result.new for result in results] == [1, 0], "alpha, listed first, files it"
    (item,) = store.iter_items()
    assert item.category == "world" and item.sources[0].name == "alpha"


class _StoreThatFailsToTopUp(Store):
    """A real store: another worker takes half of the first claim, then the database goes away."""

    claims = 0

    def claim(self, names: Any, now: datetime, **kwargs: Any) -> dict[str, SourceState]:
        self.claims += 1
        if self.claims > 1:
            raise StoreError("database unavailable: connection refused")
        super().claim(names[1::2], now, owner="rival", lease=timedelta(hours=1))
        return super().claim(names, now, **kwargs)


def test_sources_claimed_before_a_top_up_fails_are_polled_and_their_leases_end(tmp_path: Path) -> None:
    store = _misbehaving(_StoreThatFailsToTopUp, tmp_path / "topup.db")
    sources, polled, leased = _poll_until_the_store_fails(store, 24)
    ours = [source.name for source in sources[: claim_size(Polling(workers=2), sources)]][::2]
    assert polled == ours, "the half the first claim got is polled, though the top-up failed"
    assert not leased, "no source stays leased to this worker"


def test_an_item_the_database_refuses_fails_its_source_only(store: Store) -> None:
    """Sources brought together are stored in one transaction; a refusal there costs the others nothing."""
    with store.engine.begin() as connection:  # a constraint the database enforces, as PostgreSQL's types do
        connection.execute(
            text(
                "CREATE TRIGGER refuse_poison BEFORE INSERT ON items WHEN NEW.title LIKE '%poison%' "
                "BEGIN SELECT RAISE(ABORT, 'item refused'); END"
            )
        )

    def handle(request: BaseHTTPRequestHandler) -> None:
        title = "A poison title" if request.path == "/3" else f"Story {request.path}"
        link = f"https://news.example.com{request.path}"
        body = rss2("Wire", "https://news.example.com/", [Article(title, link, FEED_DATE)])
        respond(request, 200, body, RSS)

    with _serving(handle) as server:
        sources = [_source(f"s{n}", server.url(f"/{n}")) for n in range(6)]
        results = {result.source: result for result in _poll(store, *sources, workers=4, per_host=6)}
    assert {name: (result.new, result.error) for name, result in results.items()} == {
        "s0": (1, None), "s1": (1, None), "s2": (1, None),
        "s3": (0, "cannot store: item refused"),
        "s4": (1, None), "s5": (1, None),
    }  # fmt: skip
    status = {row.name: row for row in store.status()}
    assert status["s3"].last_error == "cannot store: item refused"
    assert status["s3"].error_count == 1 and status["s0"].error_count == 0
    with store.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM items")).scalar_one() == 5
        leased = connection.execute(text("SELECT count(*) FROM sources WHERE lease_owner IS NOT NULL"))
        assert leased.scalar_one() == 0


@pytest.mark.parametrize(("deadline", "lease"), [(60, 5), (20, 5), (5, 5), (200, 5), (600, 5), (60, 10)])
def test_a_claim_is_no_larger_than_its_leases_outlast(deadline: float, lease: int) -> None:
    """Two batches are in flight: the last source claimed waits for both batches' fetches, each up to
    its deadline, and its lease must still hold when its own ends, or another worker could poll it too."""
    sources = [replace(_source(f"s{n}", f"http://127.0.0.1:9/{n}"), fetch=replace(_source("x", "").fetch,
               deadline=deadline)) for n in range(100)]  # fmt: skip
    polling = Polling(workers=16, lease=timedelta(minutes=lease))
    per_worker = claim_size(polling, sources) // polling.workers
    assert 1 <= per_worker <= BATCH_PER_WORKER
    assert per_worker == 1 or 2 * per_worker * deadline <= lease * 60, "leases could expire mid-batch"
    assert per_worker == BATCH_PER_WORKER or 2 * (per_worker + 1) * deadline > lease * 60, "could claim more"
