"""When to poll a source next: its interval, what the publisher asks for, and backoff.

Pure functions: `now` and the random source are passed in. Publishers ban
rude pollers, so every hint that asks for fewer polls is honoured (capped so
that a typo cannot silence a source for a year), none that asks for more, and
errors back off exponentially with jitter but never give up on a source.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

MAX_HINT = timedelta(days=7)  # the longest wait a publisher's hint can impose
MAX_BACKOFF = timedelta(hours=24)  # the longest wait after repeated errors
JITTER = 0.1  # polls are spread over +0..10% of the interval so sources added together drift apart

_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-maxage|max-age)\s*=\s*\"?(\d+)", re.IGNORECASE)


def _seconds(count: int) -> timedelta:
    """A publisher's number of seconds, bounded: hints are capped anyway, and timedelta overflows."""
    return timedelta(seconds=min(count, int(MAX_HINT.total_seconds()) * 2))


def _jittered(base: timedelta, rng: random.Random) -> timedelta:
    return base * (1 + JITTER * rng.random())


def _http_date(value: str) -> datetime | None:
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def retry_after(headers: Mapping[str, str], now: datetime) -> timedelta | None:
    """Retry-After as a delay: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return _seconds(int(value))
    moment = _http_date(value)
    return None if moment is None else max(moment - now, timedelta(0))


def freshness(headers: Mapping[str, str], now: datetime) -> timedelta | None:
    """How long the response says it stays fresh: Cache-Control max-age, else Expires."""
    cache_control = headers.get("cache-control", "")
    if "no-cache" in cache_control.lower() or "no-store" in cache_control.lower():
        return None
    if match := _MAX_AGE.search(cache_control):
        return _seconds(int(match.group(1)))
    expires = _http_date(headers.get("expires", ""))
    return None if expires is None else max(expires - now, timedelta(0))


def after_success(
    interval: timedelta,
    now: datetime,
    rng: random.Random,
    *,
    headers: Mapping[str, str] | None = None,
    feed_ttl: timedelta | None = None,
) -> datetime:
    """The next poll after a good response: the interval, or later if the publisher asks."""
    hints = [hint for hint in (freshness(headers or {}, now), feed_ttl) if hint is not None]
    wait = max([interval, *(min(hint, MAX_HINT) for hint in hints)])
    return now + _jittered(wait, rng)


def after_error(
    interval: timedelta,
    error_count: int,
    now: datetime,
    rng: random.Random,
    *,
    retry: timedelta | None = None,
) -> datetime:
    """The next poll after the `error_count`-th error in a row.

    Doubles from the interval up to a day (or the interval, if that is
    longer), with full jitter on the doubled part so that many sources
    failing together (a network outage) do not all come back at once; a
    Retry-After pushes it later, never earlier.
    """
    cap = max(MAX_BACKOFF, interval)
    doubled = min(interval * (1 << min(max(error_count - 1, 0), 20)), cap)
    wait = interval + (doubled - interval) * rng.random() if doubled > interval else _jittered(interval, rng)
    if retry is not None:
        wait = max(wait, min(retry, MAX_HINT))
    return now + wait
