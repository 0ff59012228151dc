"""The one orchestrator: fetch -> parse -> store, per source, errors as values.

Fetching and parsing run in a thread pool; every database write happens on
the calling thread in a short transaction, so SQLite never sees two writers
from one process and one slow source never holds a transaction open.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from .errors import FetchError, ParseError, StoreError
from .fetch import fetch, make_session
from .models import Fetched, ParsedFeed, SourceConfig, SourceState, UpdateResult
from .parse import parse_feed
from .store import Store

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(hours=24)
DEFAULT_WORKERS = 8


def next_check_after_success(source: SourceConfig, now: datetime) -> datetime:
    return now + source.interval


def next_check_after_error(source: SourceConfig, now: datetime, error_count: int) -> datetime:
    """Exponential backoff from the source's interval, capped at a day; never abandoned."""
    factor = 1 << min(max(error_count - 1, 0), 16)
    return now + min(source.interval * factor, max(MAX_BACKOFF, source.interval))


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What a worker thread hands back: a response, its parse, or why it failed."""

    fetched: Fetched | None
    feed: ParsedFeed | None
    error: str | None
    status: int | None
    started: float


def _fetch_and_parse(source: SourceConfig, state: SourceState) -> _Outcome:
    started = time.monotonic()
    with make_session(source.fetch) as session:
        try:
            fetched = fetch(session, source.url, source.fetch, state)
        except FetchError as error:
            return _Outcome(None, None, str(error), _status_of(error), started)
    if fetched.not_modified:
        return _Outcome(fetched, None, None, fetched.status, started)
    try:
        feed = parse_feed(
            fetched.body,
            fetched.headers,
            url=fetched.final_url,
            source=source.name,
            timezone=source.timezone,
            keep_source_tags=source.keep_source_tags,
        )
    except ParseError as error:
        return _Outcome(fetched, None, str(error), fetched.status, started)
    return _Outcome(fetched, feed, None, fetched.status, started)


def _status_of(error: FetchError) -> int | None:
    """The HTTP status a FetchError message starts with ("HTTP 503 ..."), for `status`."""
    words = str(error).split()
    if len(words) >= 2 and words[0] == "HTTP" and words[1].isdigit():
        return int(words[1])
    return None


def _record(
    store: Store, source: SourceConfig, state: SourceState, outcome: _Outcome, now: datetime
) -> UpdateResult:
    """Write one source's outcome to the store and describe it."""
    duration = time.monotonic() - outcome.started
    if outcome.error is not None or outcome.fetched is None:
        error = outcome.error or "no response"
        errors = state.error_count + 1
        store.record_failure(
            source.name, error, outcome.status, now, next_check_after_error(source, now, errors)
        )
        return UpdateResult(source.name, status=outcome.status, error=error, duration=duration)
    fetched = outcome.fetched
    if outcome.feed is None:
        store.record_not_modified(source.name, fetched.status, now, next_check_after_success(source, now))
        return UpdateResult(source.name, status=fetched.status, not_modified=True, duration=duration)
    saved = store.save_items(
        source,
        outcome.feed,
        status=fetched.status,
        etag=fetched.etag,
        last_modified=fetched.last_modified,
        now=now,
        next_check_at=next_check_after_success(source, now),
    )
    return UpdateResult(
        source.name,
        status=fetched.status,
        new=saved.new,
        updated=saved.updated,
        seen=saved.seen,
        duration=duration,
    )


def log_result(result: UpdateResult) -> None:
    """One line per poll, greppable by source name."""
    if result.error is not None:
        log.warning(
            "poll source=%s status=%s error=%r duration=%.2fs",
            result.source,
            result.status if result.status is not None else "-",
            result.error,
            result.duration,
        )
    elif result.not_modified:
        log.info(
            "poll source=%s status=%s not-modified duration=%.2fs",
            result.source,
            result.status,
            result.duration,
        )
    else:
        log.info(
            "poll source=%s status=%s new=%d updated=%d seen=%d duration=%.2fs",
            result.source,
            result.status,
            result.new,
            result.updated,
            result.seen,
            result.duration,
        )


def update_sources(
    store: Store,
    sources: Sequence[SourceConfig],
    clock: Callable[[], datetime],
    *,
    workers: int = DEFAULT_WORKERS,
    stop: threading.Event | None = None,
) -> list[UpdateResult]:
    """Poll the given sources now; one source's failure never stops the others.

    `stop` lets a daemon shutting down skip sources not yet started while the
    ones in flight finish and are stored.
    """
    states = {source.name: store.source_state(source.name) for source in sources}
    results: list[UpdateResult] = []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(sources) or 1))) as pool:
        futures = [(source, pool.submit(_guarded, source, states[source.name], stop)) for source in sources]
        # Stored in config order, not completion order, so that when two sources bring the same
        # new article in one tick, the first one listed is the one it is filed under.
        for source, future in futures:
            outcome = future.result()
            if outcome is not None:
                results.append(_store_outcome(store, source, states[source.name], outcome, clock()))
    return results


def _guarded(source: SourceConfig, state: SourceState, stop: threading.Event | None) -> _Outcome | None:
    """Run in a worker: never raises, so a bug in one source cannot hide another's result."""
    if stop is not None and stop.is_set():
        return None
    try:
        return _fetch_and_parse(source, state)
    except Exception as error:  # a bug, not a bad source: keep the traceback
        log.exception("unexpected error while polling source=%s", source.name)
        return _Outcome(
            None, None, f"internal error: {type(error).__name__}: {error}", None, time.monotonic()
        )


def _store_outcome(
    store: Store, source: SourceConfig, state: SourceState, outcome: _Outcome, now: datetime
) -> UpdateResult:
    """Store one outcome; a database error is this source's failure, not the tick's."""
    try:
        result = _record(store, source, state, outcome, now)
    except StoreError as error:
        result = UpdateResult(source.name, status=outcome.status, error=str(error))
        try:
            store.record_failure(
                source.name, str(error), outcome.status, now, next_check_after_error(source, now, 1)
            )
        except StoreError:
            log.error("cannot record the failure of source=%s: database unavailable", source.name)
    log_result(result)
    return result


def select_sources(sources: Iterable[SourceConfig], names: Iterable[str]) -> list[SourceConfig]:
    wanted = set(names)
    return [source for source in sources if source.name in wanted]
