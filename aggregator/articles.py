"""full_content: fetch the page of each new item and put the article in it in place of the source's content.

Runs in a polling worker, between parse and store, so that an item is stored
(and its archive page rendered) with the whole article from the start. Only
items the store does not have yet are fetched, and with `update: true` those
whose version from this source changed. Pages are fetched with the source's
own limits (timeouts, deadline, size cap, redirects), a few at a time and
within the per-host limit shared with feed polling, over the poll's kept-alive
sessions (fetch.SessionPool: the polling thread's own, or sessions the article
threads borrow and give back, so that the next source's threads reuse them).
Unless the source allows private addresses, those sessions refuse connections
to loopback, private, link-local and other non-global addresses (see
fetch.address_refusal). Guarded and unguarded sessions are pooled apart, so
one source's opt-out never reaches another.
A source's `encoding:` overrides the charset its article pages declare.

Any failure keeps the item with the source's content and is logged with
the source and the page's URL; it never fails the poll.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import replace

from .errors import ExtractError, FetchError, StoreError
from .extract import extract_article
from .fetch import SessionPool, fetch
from .models import FullContentSpec, Item, ParsedFeed, SourceConfig
from .store import Store

log = logging.getLogger(__name__)

HostSlot = Callable[[str], AbstractContextManager[None]]  # update.HostLimits.slot


def with_full_articles(
    store: Store, source: SourceConfig, feed: ParsedFeed, host_slot: HostSlot, sessions: SessionPool
) -> ParsedFeed:
    """`feed` with the article from its page as the content of each item that needs one."""
    spec = source.full_content
    if spec is None or not feed.items:
        return feed
    try:
        new, changed = store.new_and_changed(source, feed.items)
    except StoreError as error:  # storing will fail too, and report it
        log.warning("full_content source=%s skipped: %s", source.name, error)
        return feed
    wanted = new | changed if spec.update else new
    due = {item.url_key: item.url for item in feed.items if item.url_key in wanted and item.url}
    if not due:
        return feed
    workers = min(spec.concurrency, len(due))
    fetch_article = functools.partial(_article, source, spec, host_slot=host_slot, sessions=sessions)
    if workers == 1:  # on the polling thread, over the sessions it already holds
        found = {key: fetch_article(url) for key, url in due.items()}
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="article") as pool:
            found = dict(zip(due, pool.map(fetch_article, due.values()), strict=True))
    articles = {key: html for key, html in found.items() if html is not None}
    log.info(
        "full_content source=%s fetched=%d failed=%d",
        source.name, len(articles), len(due) - len(articles),
        extra={"event": "full_content", "source": source.name, "fetched": len(articles),
               "failed": len(due) - len(articles)},
    )  # fmt: skip
    return replace(feed, items=tuple(_with_article(item, articles.get(item.url_key)) for item in feed.items))


def _with_article(item: Item, article: str | None) -> Item:
    """The article becomes the content; the source's content is kept for its version hash."""
    if article is None:
        return item
    return replace(item, content=article, feed_content=item.content)


def _article(
    source: SourceConfig, spec: FullContentSpec, url: str, *, host_slot: HostSlot, sessions: SessionPool
) -> str | None:
    """The article on the page at `url`, or None (logged) when it cannot be had."""
    try:
        with host_slot(url), sessions.borrowed(source.fetch, guarded=not source.allow_private) as session:
            page = fetch(session, url, source.fetch)
        return extract_article(page.body, page.headers, page.final_url, spec, source.encoding)
    except (FetchError, ExtractError) as error:
        reason = str(error)
    except Exception as bug:  # a bug must not cost the item: it is stored with the source's content
        log.exception("unexpected error in full_content source=%s url=%s", source.name, url)
        reason = f"internal error: {type(bug).__name__}: {bug}"
    log.warning(
        "full_content source=%s url=%s kept the source's content: %s", source.name, url, reason,
        extra={"event": "full_content", "source": source.name, "url": url, "error": reason},
    )  # fmt: skip
    return None
