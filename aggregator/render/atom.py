"""Stored items to an output feed (Atom 1.0); the only module that imports feedgen.

The bytes depend on the arguments alone (no clock), so publish can compare
them with what is on disk and skip unchanged files.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import quote

from feedgen.ext.base import BaseEntryExtension
from feedgen.feed import FeedGenerator

from aggregator.layout import Listing, absolute_url
from aggregator.models import SiteConfig, SourceRef, StoredItem
from aggregator.render.html import http_url, sanitize_html
from aggregator.text import plain_text

# `updated` of a feed without entries: fixed, because "now" would change the
# bytes on every run; the epoch reads as "nothing yet" to any reader.
EMPTY_FEED_UPDATED = datetime(1970, 1, 1, tzinfo=UTC)

GENERATOR = "aggregator"

# Characters XML 1.0 forbids (lone surrogates too); lxml refuses them, and
# feeds do carry stray ones. Every string from a source goes through _xml or
# _xml_uri before it reaches feedgen: one such character would fail the feed.
_NOT_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml(text: str) -> str:
    """Text without the characters XML forbids."""
    return _NOT_XML_CHARS.sub("", text)


def _xml_uri(uri: str) -> str:
    """A URI or IRI with the characters XML forbids percent-encoded (surrogates dropped).

    Anything else is left as it is, so that a valid URI, and an id that was
    published before, never changes.
    """
    return _NOT_XML_CHARS.sub(lambda match: quote(match[0].encode("utf-8", "ignore"), safe=""), uri)


class _EntryExtras(BaseEntryExtension):  # type: ignore[misc]  # feedgen is untyped
    """The parts of an entry feedgen 1.0 cannot write, added through its extension hook.

    - `entry.link()` drops every attribute but href (lkiesow/python-feedgen#135),
      so a rel="related" link would read as a second alternate link. The
      alternate link still goes through feedgen: without rel it means
      alternate (RFC 4287, 4.2.7.2), and feedgen checks that it exists.
    - `entry.source()` knows only a title and a link without rel, not the id
      and the rel=self link that identify the source feed.
    """

    def __init__(self, related: str | None, source: SourceRef | None) -> None:
        self._related = related
        self._source = source

    def extend_atom(self, entry: Any) -> Any:
        if self._related:
            _sub_element(entry, "link", rel="related", type="text/html", href=_xml_uri(self._related))
        if self._source:
            source_url = _xml_uri(self._source.url)
            source = _sub_element(entry, "source")
            _sub_element(source, "id").text = source_url
            _sub_element(source, "title").text = _xml(self._source.title)
            _sub_element(source, "link", rel="self", href=source_url)
            if site_link := http_url(self._source.link):
                _sub_element(source, "link", rel="alternate", type="text/html", href=_xml_uri(site_link))
        return entry


def _sub_element(parent: Any, tag: str, **attrib: str) -> Any:
    # Unqualified names, like every element feedgen makes: its root element
    # declares the Atom namespace as the default one.
    child = parent.makeelement(tag, attrib)
    parent.append(child)
    return child


def render_atom(site: SiteConfig, listing: Listing, items: Sequence[StoredItem]) -> bytes:
    """The output feed of a listing; `items` newest first, already cut to `site.items_per_feed`."""
    feed_url = absolute_url(site.base_url, listing.feed_path)
    feed = FeedGenerator()
    feed.id(_xml_uri(feed_url))
    feed.title(_xml(listing.full_title(site.title)))
    feed.link(href=_xml_uri(feed_url), rel="self", type="application/atom+xml")
    feed.link(href=_xml_uri(absolute_url(site.base_url, listing.folder)), rel="alternate", type="text/html")
    feed.updated(max((item.updated for item in items), default=EMPTY_FEED_UPDATED))
    feed.language(_xml(site.language))
    feed.generator(GENERATOR)
    # A feed-level author satisfies Atom's author rule for entries without one.
    feed.author(name=_xml(site.title))
    for item in items:
        _add_entry(feed, site, item)
    result: bytes = feed.atom_str(pretty=True, encoding="UTF-8", xml_declaration=True)
    return result


def _entry_title(item: StoredItem, entry_id: str) -> str:
    """The title, else the original URL, else the id: feedgen refuses an entry without one."""
    for title in (_xml(item.title), _xml_uri(item.url or "")):
        if title.strip():
            return title
    return entry_id


def _add_entry(feed: Any, site: SiteConfig, item: StoredItem) -> None:
    entry = feed.add_entry(order="append")
    entry_id = _xml_uri(item.entry_id)
    entry.id(entry_id)
    entry.title(_entry_title(item, entry_id))
    entry.link(href=_xml_uri(absolute_url(site.base_url, item.archive_path)), rel="alternate")
    entry.published(item.published)
    entry.updated(item.updated)
    for author in item.authors:
        if name := _xml(author).strip():
            entry.author(name=name)
    if summary := _xml(plain_text(item.summary)):
        entry.summary(summary)
    if content := _xml(sanitize_html(item.content, item.url, site.iframe_hosts)):
        entry.content(content, type="html")
    for slug in item.categories:
        entry.category(
            term=_xml(slug),
            label=_xml(site.category_title(slug)),
            scheme=_xml_uri(absolute_url(site.base_url, f"{slug}/")),
        )
    for tag in item.tags:
        if term := _xml(tag):
            entry.category(term=term, scheme=_xml_uri(absolute_url(site.base_url, "tags/")))
    extras = partial(_EntryExtras, http_url(item.url), item.sources[0] if item.sources else None)
    entry.register_extension("aggregator", extras, atom=True, rss=False)
