"""The one orchestrator: claim -> fetch -> parse -> store, per source, errors as values.

Sources are claimed from the database in batches (a lease, so that several
workers sharing one PostgreSQL never poll the same source at once), fetched
and parsed in a thread pool with at most `per_host` connections to any one
host, and stored on the calling thread in short transactions, in config
order, so that the first source listed files an article two sources bring in
the same batch.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import random
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from urllib.parse import urlsplit

from . import __version__, schedule
from .dating import FUTURE_TOLERANCE, is_future
from .errors import FetchError, ParseError, StoreError
from .fetch import SessionPool, fetch
from .filters import apply_filters, rewrite_articles
from .models import Fetched, KnownEntries, ParsedFeed, SourceConfig, SourceState, UpdateResult
from .processes import import_parser, parser_started
from .store import PollRecord, SaveResult, Store

log = logging.getLogger(__name__)

DEFAULT_WORKERS = 16  # fetching is I/O: threads mostly wait on sockets
DEFAULT_PER_HOST = 2  # connections at once to one host: publishers ban rude pollers
# Parsers are spawned, not forked: this process has threads, whose locks a forked child would inherit.
_SPAWN = multiprocessing.get_context("spawn")
PARSE_ELSEWHERE_FROM = 16 * 1024  # bytes: a smaller body parses faster than it travels to another process
# Sources claimed per batch, per polling thread, at most: a batch is stored in one transaction on SQLite,
# and larger ones cost fewer commits (the bench farm's first poll: storing took 10% less at 4 than at 2).
BATCH_PER_WORKER = 4
ADOPT_AFTER = 3  # polls in a row that must show the same permanent redirect before it is adopted


@dataclass(frozen=True, slots=True)
class Polling:
    """How one process polls: its identity for leases, pool size, politeness, randomness."""

    workers: int = DEFAULT_WORKERS
    per_host: int = DEFAULT_PER_HOST
    lease: timedelta = timedelta(minutes=5)
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    rng: random.Random = field(default_factory=random.Random)
    parse_processes: int = 0  # processes that parse large feeds; 0: the polling threads do


class HostLimits:
    """At most `per_host` requests in flight to any one host, across the pool's threads."""

    def __init__(self, per_host: int) -> None:
        self._lock = threading.Lock()
        self._semaphores: dict[str, threading.Semaphore] = defaultdict(lambda: threading.Semaphore(per_host))

    @contextmanager
    def slot(self, url: str) -> Iterator[None]:
        host = (urlsplit(url).hostname or "").lower()
        with self._lock:
            semaphore = self._semaphores[host]
        with semaphore:
            yield


class FeedParsers:
    """parse_feed in other processes, so that parsing uses the cores the GIL keeps the threads from.

    Started at the first large body (a poll where nothing changed never
    starts it); bodies under PARSE_ELSEWHERE_FROM, and the bodies that
    arrive while the processes are still starting, are parsed by the calling
    thread. A parser process that dies (a crash in the XML library, say)
    takes neither the daemon nor a poll with it: the bodies it held are read
    again, each in a process of its own, and only a body that kills its own fails.
    """

    def __init__(self, processes: int) -> None:
        self._processes = processes
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._ready: Future[None] | None = None

    def parse(self, source: SourceConfig, fetched: Fetched, known: KnownEntries | None = None) -> ParsedFeed:
        from .parse import parse_feed  # imported at the first body: most polls of a day bring none

        job = partial(
            parse_feed,
            fetched.body,
            dict(fetched.headers),
            url=fetched.final_url,
            source=source.name,
            timezone=source.timezone,
            keep_source_tags=source.keep_source_tags,
            encoding=source.encoding,
            known=known,
        )
        if self._processes < 1 or len(fetched.body) < PARSE_ELSEWHERE_FROM:
            return job()
        pool, ready = self._started()
        if not ready.done():  # one takes a fraction of a second to start: the first bodies need not wait
            return job()
        try:
            return pool.submit(job).result()
        except BrokenProcessPool:  # a crash breaks every body in flight, not only the one that caused it
            self._replace(pool)
        with ProcessPoolExecutor(1, mp_context=_SPAWN, initializer=parser_started) as alone:
            try:  # read again in a process of its own: only the body that kills it fails
                return alone.submit(job).result()
            except BrokenProcessPool:
                raise ParseError("the parser process died reading this body") from None

    def start(self, *, wait: bool = False) -> None:
        """Start the parser processes now rather than at the first large body; `wait` until one is up."""
        if self._processes >= 1:
            _pool, ready = self._started()
            if wait:
                ready.result()

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _started(self) -> tuple[ProcessPoolExecutor, Future[None]]:
        """The pool, and a future done once a parser process has started and imported the parser."""
        with self._lock:
            if self._pool is None or self._ready is None:
                self._pool = ProcessPoolExecutor(
                    self._processes, mp_context=_SPAWN, initializer=parser_started
                )
                self._ready = self._pool.submit(import_parser)
            return self._pool, self._ready

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:
                self._pool = None
        broken.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True, slots=True)
class _Pools:
    """What the polling threads of one update_sources call share."""

    limits: HostLimits
    sessions: SessionPool
    parsers: FeedParsers


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What a worker thread hands back: a response and its parse, or why it failed."""

    fetched: Fetched | None = None
    feed: ParsedFeed | None = None
    unchanged: bool = False  # 304, or the same body as last time
    error: FetchError | ParseError | None = None
    started: float = 0.0
    # Of a body received: hashed in the polling thread rather than the storing one.
    body_hash: str | None = None


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _fetch_and_parse(source: SourceConfig, state: SourceState, pools: _Pools) -> _Outcome:
    started = time.monotonic()
    url = state.url or source.url
    with pools.limits.slot(url):
        try:
            fetched = fetch(pools.sessions.get(source.fetch), url, source.fetch, state)
        except FetchError as error:
            return _Outcome(error=error, started=started)
    if fetched.not_modified:
        return _Outcome(fetched, unchanged=True, started=started)
    digest = body_hash(fetched.body)
    if digest == state.body_hash:
        return _Outcome(fetched, unchanged=True, started=started, body_hash=digest)
    try:
        feed = _parse(source, state, fetched, pools)
    except ParseError as error:
        return _Outcome(fetched, error=error, started=started, body_hash=digest)
    return _Outcome(fetched, _apply_source_filters(source, feed), started=started, body_hash=digest)


def _parse(source: SourceConfig, state: SourceState, fetched: Fetched, pools: _Pools) -> ParsedFeed:
    """An RSS/Atom body, or an html/json listing whose first poll may read older pages (listing.py)."""
    if source.listing is None:
        return pools.parsers.parse(source, fetched, _known_entries(source, state))

    def fetch_page(url: str) -> Fetched:  # a next_page link comes from the page: guarded like an article's
        session = pools.sessions.get(source.fetch, guarded=not source.allow_private)
        with pools.limits.slot(url):
            return fetch(session, url, source.fetch)

    from .listing import read_listing  # like parse_feed, at the first body that needs it

    return read_listing(source, fetched, fetch_page, backfill=state.body_hash is None)


def _known_entries(source: SourceConfig, state: SourceState) -> KnownEntries:
    """The entries stored from the source's last body (none yet, on its first poll)."""
    return KnownEntries(entry_context(source), state.entry_digests or b"")


def entry_context(source: SourceConfig) -> bytes:
    """KnownEntries.context: what shapes the stored items of a source's entries besides their fields
    and the parse settings (this program's version, the source's labels, filters and full_content)."""
    filters = source.filters.description() if source.filters is not None else None
    settings = (__version__, source.category, source.tags, source.encoding, filters, source.full_content)
    return repr(settings).encode("utf-8", "surrogatepass")


def _apply_source_filters(source: SourceConfig, feed: ParsedFeed) -> ParsedFeed:
    """The source's include/exclude/rewrite rules on its parsed items, before anything is stored."""
    if source.filters is None:
        return feed
    outcome = apply_filters(source.filters, feed.items)
    if outcome.dropped:
        log.info("source=%s filters dropped %d of %d items", source.name, outcome.dropped, len(feed.items))
    return replace(feed, items=outcome.items)


def _follow_move(url: str, state: SourceState, fetched: Fetched) -> tuple[str, str | None, int]:
    """(url to poll from now on, pending move target, polls in a row that showed it).

    A 301/308 chain is adopted only after ADOPT_AFTER polls in a row agree, so
    a misconfigured server for an hour does not move a source for good; 302
    and 307 are temporary and never adopted.
    """
    if not fetched.moved_permanently or fetched.final_url == url:
        return url, None, 0
    count = state.moved_count + 1 if state.moved_to == fetched.final_url else 1
    if count >= ADOPT_AFTER:
        return fetched.final_url, None, 0
    return url, fetched.final_url, count


def poll_record(
    source: SourceConfig, state: SourceState, outcome: _Outcome, now: datetime, rng: random.Random
) -> tuple[PollRecord, str | None]:
    """What to store about one poll, and the error to report (None on success). Pure."""
    url = state.url or source.url
    fetched = outcome.fetched
    if outcome.error is not None:
        error = outcome.error
        status = error.status if isinstance(error, FetchError) else (fetched.status if fetched else None)
        headers = error.headers if isinstance(error, FetchError) else {}
        disabled = f"410 Gone since {now:%Y-%m-%d %H:%M} UTC" if status == 410 else None
        record = PollRecord(
            polled_at=now,
            status=status,
            error=str(error),
            next_check_at=schedule.after_error(
                source.interval,
                state.error_count + 1,
                now,
                rng,
                retry=schedule.retry_after(headers, now),
            ),
            url=url,
            moved_to=state.moved_to,
            moved_count=state.moved_count,
            disabled_reason=disabled,
        )
        return record, str(error)
    assert fetched is not None
    new_url, moved_to, moved_count = _follow_move(url, state, fetched)
    record = PollRecord(
        polled_at=now,
        status=fetched.status,
        error=None,
        next_check_at=schedule.after_success(
            source.interval,
            now,
            rng,
            headers=fetched.headers,
            feed_ttl=outcome.feed.ttl if outcome.feed else None,
        ),
        url=new_url,
        etag=fetched.etag or (state.etag if fetched.not_modified else None),
        last_modified=fetched.last_modified or (state.last_modified if fetched.not_modified else None),
        body_hash=state.body_hash if fetched.not_modified else outcome.body_hash,
        entry_digests=outcome.feed.entry_digests if outcome.feed else None,
        moved_to=moved_to,
        moved_count=moved_count,
    )
    return record, None


def _store_outcome(
    store: Store,
    source: SourceConfig,
    state: SourceState,
    outcome: _Outcome,
    now: datetime,
    rng: random.Random,
) -> UpdateResult:
    """Store one outcome; a database error is this source's failure, not the batch's."""
    duration = time.monotonic() - outcome.started
    try:
        record, error = poll_record(source, state, outcome, now, rng)
        saved = store.record_poll(source, record, outcome.feed)
    except StoreError as store_error:  # e.g. an item the database refuses: the source fails, not the batch
        return _record_failure(store, source, state, f"cannot store: {store_error}", now, rng, duration)
    except Exception as bug:  # never leave a claimed source leased and unrecorded
        log.exception("unexpected error while storing source=%s", source.name)
        return _record_failure(
            store, source, state, f"internal error: {type(bug).__name__}: {bug}", now, rng, duration
        )
    return _reported(source, state, record, outcome, error, duration, saved)


def _store_changed(
    store: Store,
    polled: Sequence[tuple[SourceConfig, SourceState, _Outcome, datetime]],
    rng: random.Random,
) -> list[UpdateResult]:
    """Store polls that brought a new body, or failed: in one transaction where the store commits batches
    (SQLite: see Store.commits_batches), should that fail each on its own; else each on its own."""
    for source, _state, outcome, now in polled:
        if outcome.feed is not None:
            _log_date_fallbacks(source, outcome.feed, now)
    if len(polled) == 1 or not store.commits_batches:
        return [_store_outcome(store, *polled_one, rng) for polled_one in polled]
    records = [poll_record(source, state, outcome, now, rng) for source, state, outcome, now in polled]
    try:
        saved = store.record_polls(
            [(one[0], record, one[2].feed) for one, (record, _error) in zip(polled, records, strict=True)]
        )
    except Exception as error:  # e.g. an item the database refuses: find out whose, one by one
        log.warning("cannot store %d polls together (%s); one by one", len(polled), error)
        return [_store_outcome(store, *polled_one, rng) for polled_one in polled]
    return [
        _reported(source, state, record, outcome, error, time.monotonic() - outcome.started, done)
        for (source, state, outcome, _), (record, error), done in zip(polled, records, saved, strict=True)
    ]


def _store_unchanged(
    store: Store,
    polled: Sequence[tuple[SourceConfig, SourceState, _Outcome, datetime]],
    rng: random.Random,
) -> list[UpdateResult]:
    """Store polls that brought nothing new together; should that fail, each on its own."""
    records = [poll_record(source, state, outcome, now, rng)[0] for source, state, outcome, now in polled]
    try:
        store.record_unchanged([(one[0].name, record) for one, record in zip(polled, records, strict=True)])
    except StoreError as error:
        log.warning("cannot record %d unchanged sources together (%s); one by one", len(polled), error)
        return [_store_outcome(store, *polled_one, rng) for polled_one in polled]
    nothing = SaveResult(new=0, updated=0, seen=0)
    return [
        _reported(source, state, record, outcome, None, time.monotonic() - outcome.started, nothing)
        for (source, state, outcome, _now), record in zip(polled, records, strict=True)
    ]


def _reported(
    source: SourceConfig,
    state: SourceState,
    record: PollRecord,
    outcome: _Outcome,
    error: str | None,
    duration: float,
    saved: SaveResult,
) -> UpdateResult:
    """The result of a stored poll, logged; an adopted move or a disabling is said once."""
    if record.url != (state.url or source.url):
        log.warning(
            "source=%s moved permanently to %s: adopted after %d polls", source.name, record.url, ADOPT_AFTER
        )
    if record.disabled_reason and not state.disabled_reason:
        log.warning("source=%s disabled: %s (re-enable with `aggregator enable %s`)", source.name,
                    record.disabled_reason, source.name)  # fmt: skip
    result = UpdateResult(
        source.name,
        status=record.status,
        new=saved.new,
        updated=saved.updated,
        seen=saved.seen,
        not_modified=outcome.unchanged,
        error=error,
        duration=duration,
    )
    log_result(result)
    return result


def _log_date_fallbacks(source: SourceConfig, feed: ParsedFeed, now: datetime) -> None:
    """One line per poll, not one per item, for items the store files under their first sight."""
    undated = sum(item.published is None for item in feed.items)
    future = sum(is_future(item.published, now) for item in feed.items)
    if undated or future:
        log.info(
            "source=%s dated by first sight: %d without a readable date, %d more than %gh in the future",
            source.name, undated, future, FUTURE_TOLERANCE.total_seconds() / 3600,
        )  # fmt: skip


def _record_failure(
    store: Store,
    source: SourceConfig,
    state: SourceState,
    error: str,
    now: datetime,
    rng: random.Random,
    duration: float,
) -> UpdateResult:
    """Record a poll that failed after fetching, in a transaction of its own; this ends the lease."""
    record = PollRecord(
        polled_at=now,
        status=None,
        error=error,
        next_check_at=schedule.after_error(source.interval, state.error_count + 1, now, rng),
        url=state.url or source.url,
        moved_to=state.moved_to,
        moved_count=state.moved_count,
        disabled_reason=state.disabled_reason,
    )
    try:
        store.record_poll(source, record)
    except StoreError as again:
        log.error("cannot record the failure of source=%s: %s", source.name, again)
    result = UpdateResult(source.name, error=error, duration=duration)
    log_result(result)
    return result


def log_result(result: UpdateResult) -> None:
    """One line per poll, greppable by source name; the same fields as keys in JSON logs."""
    status = result.status if result.status is not None else "-"
    fields = {
        "event": "poll",
        "source": result.source,
        "status": result.status,
        "new": result.new,
        "updated": result.updated,
        "seen": result.seen,
        "not_modified": result.not_modified,
        "error": result.error,
        "duration": round(result.duration, 3),
    }
    if result.error is not None:
        log.warning(
            "poll source=%s status=%s error=%r duration=%.2fs",
            result.source, status, result.error, result.duration, extra=fields,
        )  # fmt: skip
    elif result.not_modified:
        log.info(
            "poll source=%s status=%s not-modified duration=%.2fs",
            result.source,
            status,
            result.duration,
            extra=fields,
        )
    else:
        log.info(
            "poll source=%s status=%s new=%d updated=%d seen=%d duration=%.2fs",
            result.source, status, result.new, result.updated, result.seen, result.duration, extra=fields,
        )  # fmt: skip


def update_sources(
    store: Store,
    sources: Sequence[SourceConfig],
    clock: Callable[[], datetime],
    *,
    polling: Polling | None = None,
    due_only: bool = True,
    stop: threading.Event | None = None,
    parsers: FeedParsers | None = None,
) -> list[UpdateResult]:
    """Poll the given sources that this worker can claim; one source's failure never stops the others.

    `parsers` lets a daemon keep its parser processes from tick to tick;
    without, this call starts its own (when a large body needs them) and ends them.

    `due_only=False` polls them whether due or not (still once each, and not
    while another worker holds one). `stop` lets a daemon shutting down
    finish the batches in flight (at most two) and claim no more.
    """
    polling = polling or Polling()
    batch_size = claim_size(polling, sources)
    by_name = {source.name: source for source in sources}
    listed = {name: position for position, name in enumerate(by_name)}
    # Claimed a batch at a time in this order (the most overdue first); each claim names only the
    # sources it asks for.
    queue = store.claimable(list(by_name), clock(), due_only=due_only)
    own_parsers = parsers is None
    parsers = parsers or FeedParsers(polling.parse_processes)
    pools = _Pools(HostLimits(polling.per_host), SessionPool(), parsers)
    results: list[UpdateResult] = []
    try:
        with ThreadPoolExecutor(max_workers=max(1, polling.workers), thread_name_prefix="poll") as pool:

            def claim_and_submit() -> list[tuple[SourceConfig, SourceState, Future[_Outcome]]]:
                states: dict[str, SourceState] = {}
                # Another worker may take some of the sources asked for: ask for more until the batch is full.
                while queue and len(states) < batch_size and not (stop is not None and stop.is_set()):
                    asked = queue[: batch_size - len(states)]
                    del queue[: len(asked)]
                    try:
                        states |= store.claim(
                            asked, clock(), owner=polling.owner, lease=polling.lease, due_only=due_only
                        )
                    except StoreError as error:
                        if not states:
                            raise
                        # What is leased already is polled (and its leases end); the next claim fails again.
                        log.warning("cannot claim more sources for this batch: %s", error)
                        break
                # A batch is stored in config order: the first source listed files an article that
                # several of its sources bring.
                return [
                    (
                        by_name[name],
                        states[name],
                        pool.submit(_guarded, by_name[name], states[name], pools, store),
                    )
                    for name in sorted(states, key=listed.__getitem__)
                ]

            batch = claim_and_submit()
            while batch:
                # The next batch is claimed and fetched while this one is stored: the pool never
                # idles waiting for the slowest source of a batch, and at most two batches are leased.
                try:
                    following = claim_and_submit()
                except BaseException:  # the database went away: what was fetched is recorded if it can be
                    results.extend(_store_batch(store, batch, clock, polling.rng))
                    raise
                results.extend(_store_batch(store, batch, clock, polling.rng))
                batch = following
    finally:  # a database gone mid-tick raises: sessions, their threads and parser processes still end
        pools.sessions.close()
        if own_parsers:
            parsers.close()
    if not due_only and not (stop is not None and stop.is_set()):
        polled = {result.source for result in results}
        for name in (name for name in by_name if name not in polled):  # asked for, not claimable: say why
            state = store.source_state(name)
            reason = state.disabled_reason and f"disabled ({state.disabled_reason})"
            log.warning("source=%s not polled: %s", name, reason or "another worker is polling it")
    return results


def claim_size(polling: Polling, sources: Sequence[SourceConfig]) -> int:
    """Sources per claim: as many as the leases outlast however slowly every fetch ends.

    Two batches are in flight, so the last source claimed may wait for two
    batches' worth of fetches by `workers` threads, each taking up to its
    deadline, before its own ends: its lease must still hold then, or another
    worker could poll it too. With the defaults (5 minutes, 60 s) that is two
    sources per thread; shorter deadlines or longer leases allow up to
    BATCH_PER_WORKER.
    """
    slowest = max((source.fetch.deadline for source in sources), default=1.0)
    per_worker = int(polling.lease.total_seconds() // (2 * max(slowest, 1.0)))
    return polling.workers * max(1, min(BATCH_PER_WORKER, per_worker))


def _store_batch(
    store: Store,
    batch: Sequence[tuple[SourceConfig, SourceState, Future[_Outcome]]],
    clock: Callable[[], datetime],
    rng: random.Random,
) -> list[UpdateResult]:
    """Store a batch's outcomes in config order (the first source listed files a shared article)."""
    changed = []
    unchanged = []
    for source, state, future in batch:
        outcome = future.result()
        if outcome.unchanged and outcome.error is None:
            unchanged.append((source, state, outcome, clock()))
        else:
            changed.append((source, state, outcome, clock()))
    return _store_changed(store, changed, rng) + _store_unchanged(store, unchanged, rng)


def _guarded(source: SourceConfig, state: SourceState, pools: _Pools, store: Store) -> _Outcome:
    """Run in a worker: never raises, so a bug in one source cannot hide another's result."""
    try:
        outcome = _fetch_and_parse(source, state, pools)
        if outcome.feed is None or source.full_content is None:
            return outcome
        from .articles import with_full_articles  # only sources with full_content need it

        feed = with_full_articles(store, source, outcome.feed, pools.limits.slot, pools.sessions)
        return replace(outcome, feed=replace(feed, items=rewrite_articles(source.filters, feed.items)))
    except Exception as error:  # a bug, not a bad source: keep the traceback
        log.exception("unexpected error while polling source=%s", source.name)
        return _Outcome(
            error=FetchError(f"internal error: {type(error).__name__}: {error}"), started=time.monotonic()
        )
