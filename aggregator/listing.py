"""Read a kind html or json source: its first page, and on a first poll the older pages too.

The first page is the source: its errors are the source's errors. On a
source's first poll (nothing fetched from it before) an html listing with
`next_page` is followed up to `max_pages`, so that the archive starts with
more than one page of history (backfill). Backfill is best effort: it stops
at the last page, at a page already read, at a page that brings no item not
seen on an earlier one, and at a page that fails (logged; the items already
read are kept). Later polls read only the first page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from .errors import FetchError, ParseError
from .models import Fetched, ParsedFeed, SourceConfig
from .scrape import ListingPage, scrape_page

log = logging.getLogger(__name__)


def read_listing(
    source: SourceConfig, first: Fetched, fetch_page: Callable[[str], Fetched], *, backfill: bool
) -> ParsedFeed:
    """The items of a listing source; raise ParseError when its first page yields none."""
    assert source.listing is not None
    page = _scrape(source, first)
    if not backfill or page.next_page is None:
        return page.feed
    first_feed = page.feed
    items = list(first_feed.items)
    seen = {item.url_key for item in items}
    visited = {first.url, first.final_url}
    pages = 1
    next_url: str | None = page.next_page
    while next_url is not None and next_url not in visited and pages < source.listing.max_pages:
        visited.add(next_url)
        try:
            fetched = fetch_page(next_url)
            page = _scrape(source, fetched)
        except (FetchError, ParseError) as error:
            log.warning("source=%s backfill stopped at %s: %s", source.name, next_url, error)
            break
        pages += 1
        fresh = [item for item in page.feed.items if item.url_key not in seen]
        if not fresh:
            log.info("source=%s backfill stopped at %s: no item not seen already", source.name, next_url)
            break
        items += fresh
        seen.update(item.url_key for item in fresh)
        visited.add(fetched.final_url)
        next_url = page.next_page
    log.info("source=%s backfill read %d pages, %d items", source.name, pages, len(items))
    return replace(first_feed, items=tuple(items))


def _scrape(source: SourceConfig, fetched: Fetched) -> ListingPage:
    assert source.listing is not None
    page = scrape_page(
        fetched.body,
        fetched.headers,
        source.listing,
        url=fetched.final_url,
        source=source.name,
        timezone=source.timezone,
        encoding=source.encoding,
    )
    for warning in page.warnings:
        log.warning("source=%s %s: %s", source.name, fetched.final_url, warning)
    return page
