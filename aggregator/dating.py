"""Which time an item is filed under: the publisher's, unless it is missing or in the future.

Pure: `now` is passed in. The one place that decides the stored
`published_at` (store.py calls it for new and changed items), so that pages,
paths and ordering agree.

* A missing or unreadable date is the first-seen time, in the source's zone.
* A date more than FUTURE_TOLERANCE after first sight (a typo, a scheduled
  post, a wrong zone) would pin the item to the top of every listing: it is
  clamped to first sight for ordering, and the publisher's value is kept in
  `published_raw`.
* A date written with a zone abbreviation that the source's own zone uses at
  that moment is read in the source's zone: a Chinese publisher's "CST" is
  China Standard Time (+0800), not US Central (which email.utils assumes).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo

__all__ = ["FUTURE_TOLERANCE", "is_future", "settled_published", "zone_abbreviation_date"]

FUTURE_TOLERANCE = timedelta(days=1)
# "... 10:55:11 CST": a date and time, then an alphabetic zone abbreviation (not a UTC name).
_ABBREVIATED = re.compile(r"^(?P<moment>.*\d)\s+\(?(?P<zone>[A-Za-z]{2,5})\)?$")
_UTC_NAMES = frozenset({"UT", "UTC", "GMT", "Z"})


def zone_abbreviation_date(text: str, zone: ZoneInfo) -> datetime | None:
    """`text` read in `zone` when it ends with the abbreviation `zone` uses at that moment; else None."""
    match = _ABBREVIATED.match(text.strip())
    if not match or match["zone"].upper() in _UTC_NAMES:
        return None
    moment = match["moment"]
    try:
        naive = datetime.fromisoformat(moment)
    except ValueError:
        try:
            naive = parsedate_to_datetime(moment)
        except (ValueError, TypeError, IndexError, OverflowError):
            return None
    if naive.tzinfo is not None:
        return None  # it also carries a numeric offset: that one is exact
    local = naive.replace(tzinfo=zone)
    return local if (local.tzname() or "").upper() == match["zone"].upper() else None


def is_future(published: datetime | None, now: datetime) -> bool:
    return published is not None and published > now + FUTURE_TOLERANCE


def settled_published(
    published: datetime | None, now: datetime, zone: ZoneInfo
) -> tuple[datetime, str | None]:
    """(the time to file the item under, the publisher's value when it was set aside)."""
    if published is None:
        return now.astimezone(zone), None
    if is_future(published, now):
        return now.astimezone(zone), published.isoformat()
    return published, None
