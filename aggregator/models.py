"""The few records that flow between stages.

Frozen and slotted so that a stage can never mutate what another stage
handed it; every datetime is timezone-aware. This module imports nothing
else from the package, so every stage may depend on it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from operator import attrgetter
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # compiled rules live with the code that applies them; no import at run time
    from .filters import SourceFilters


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """Limits and identity for every HTTP request made for a source."""

    user_agent: str
    connect_timeout: float  # seconds to establish the TCP/TLS connection
    read_timeout: float  # seconds a single socket read may block
    deadline: float  # seconds for the whole response, headers and body
    max_bytes: int  # body size cap, counted after decompression
    max_redirects: int


DEFAULT_MAX_PAGES = 5  # pages of an html listing read on its first poll


@dataclass(frozen=True, slots=True)
class ListingSpec:
    """How to read items from a source that publishes no feed (kind html or json; see scrape.py).

    Field expressions are relative to one item: for html a CSS selector
    (`sel@attr` reads an attribute, `sel@html` the inner HTML, text
    otherwise) or XPath when it starts with "/"; for json a dot path such
    as `data.list[0].title` or `tags[].name`.
    """

    kind: str  # "html" or "json"
    items: str  # html: CSS or XPath selecting each item; json: dot path to the list of items
    title: str
    link: str | None = None  # at least one of link and guid
    guid: str | None = None
    date: str | None = None
    summary: str | None = None
    content: str | None = None
    author: str | None = None
    tags: str | None = None
    date_format: str | None = None  # strptime format; without it ISO 8601, RFC 822 or epoch seconds/millis
    next_page: str | None = None  # html: the link to the next (older) page, followed on a first poll
    max_pages: int = DEFAULT_MAX_PAGES  # html: pages read on a first poll, the first one included


@dataclass(frozen=True, slots=True)
class FullContentSpec:
    """How to take the whole article from each new item's page (a source's `full_content:`)."""

    selector: str | None = None  # CSS selector (XPath if it starts with "/"); None: readability
    remove: tuple[str, ...] = ()  # CSS selectors of boilerplate removed inside what was selected
    update: bool = False  # fetch the page again when the source changes an item it filed
    concurrency: int = 4  # pages of one source fetched at once


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One source as configured in YAML, after validation and defaults."""

    name: str
    url: str
    category: str  # category slug, safe to use as a folder name
    tags: tuple[str, ...]
    interval: timedelta
    timezone: str  # IANA zone applied to dates that carry no UTC offset
    keep_source_tags: bool  # keep the source's own <category> values as item tags
    fetch: FetchPolicy
    listing: ListingSpec | None = None  # kind html or json; None for an RSS/Atom feed
    encoding: str | None = None  # overrides every charset the server or document declares
    filters: SourceFilters | None = None  # include/exclude/rewrite, compiled at config load
    full_content: FullContentSpec | None = None  # None: keep the content the source gives
    allow_private: bool = False  # article pages may be on loopback, private or other non-global addresses


@dataclass(frozen=True, slots=True)
class Category:
    slug: str  # used in paths and URLs
    title: str  # shown on pages, in feed titles and back links


@dataclass(frozen=True, slots=True)
class Labels:
    """The fixed texts on pages, chosen by site.language and overridable."""

    home: str
    back_to_home: str
    back_to_category: str  # contains "{title}"
    original: str
    tags: str
    category: str
    subscribe: str
    newer: str
    older: str
    page: str  # contains "{number}"
    empty: str  # an index page with no items yet


@dataclass(frozen=True, slots=True)
class SiteConfig:
    title: str
    base_url: str  # absolute, always ends with "/"
    timezone: str
    language: str
    labels: Labels
    items_per_feed: int
    items_per_page: int
    categories: tuple[Category, ...]
    iframe_hosts: tuple[str, ...] = ()  # hosts whose https iframes (video embeds) survive sanitizing

    def category_title(self, slug: str) -> str:
        for category in self.categories:
            if category.slug == slug:
                return category.title
        return slug


@dataclass(frozen=True, slots=True)
class SourceState:
    """What the store remembers about a source between polls."""

    url: str | None = None  # where to poll: the configured URL, or where it moved permanently
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    next_check_at: datetime | None = None
    error_count: int = 0
    last_error: str | None = None
    disabled_reason: str | None = None
    moved_to: str | None = None  # a permanent redirect target seen on the last polls
    moved_count: int = 0  # on how many polls in a row
    # The digests of the entries stored as items from the last body (ENTRY_DIGEST_SIZE bytes each).
    entry_digests: bytes | None = None


ENTRY_DIGEST_SIZE = 16  # bytes of BLAKE2b per entry: a collision would hide one changed entry


@dataclass(frozen=True, slots=True)
class KnownEntries:
    """The entries stored from a source's last body, so that a new body builds only its new entries.

    Most polls that bring a changed body add an item or two to entries read
    before; an entry whose digest is known was stored as it is and is not
    built or stored again. The digest covers the entry's raw fields, the
    parse settings, the program's code (parse.code_fingerprint) and
    `context`: whatever else shapes what the store keeps of an entry (the
    source's settings, the program's version), so a change there makes
    every entry new once.
    """

    context: bytes
    digests: bytes = b""  # ENTRY_DIGEST_SIZE bytes each; empty on a source's first body


@dataclass(frozen=True, slots=True)
class Fetched:
    """One HTTP response for a source; body is empty when not modified."""

    url: str  # the URL requested
    final_url: str  # after redirects
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    redirects: tuple[int, ...] = ()  # the status of each redirect followed, in order

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def moved_permanently(self) -> bool:
        """Every hop was a permanent redirect (301/308): the publisher says the source moved."""
        return bool(self.redirects) and all(status in (301, 308) for status in self.redirects)

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")

    @property
    def last_modified(self) -> str | None:
        return self.headers.get("last-modified")


@dataclass(frozen=True, slots=True)
class Item:
    """One entry taken from a source, before it is stored."""

    url_key: str  # dedup key: normalized original URL, else derived from guid or content
    url: str | None  # original link, absolute
    guid: str | None
    title: str  # plain text
    summary: str  # publisher's HTML or text, raw; sanitized at render time
    content: str  # publisher's HTML, raw; sanitized at render time
    published: datetime | None  # aware, with the publisher's UTC offset
    updated: datetime | None  # aware, with the publisher's UTC offset
    authors: tuple[str, ...]
    tags: tuple[str, ...]  # the source's own categories, when the source keeps them
    # The source's own content when `content` is the article taken from its page (full_content):
    # the item's version is hashed from it, so a later poll that does not fetch the page sees no change.
    feed_content: str | None = None
    # The digest of the entry it was built from (KnownEntries), when it was read with them.
    entry_digest: bytes | None = field(default=None, repr=False, compare=False)
    # Computed where the item is built (in a parser process for large feeds, off the process that
    # stores): its authors as stored, a JSON list with non-ASCII kept, and what makes it "changed".
    authors_json: str = field(init=False, repr=False, compare=False)
    version: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "authors_json", _AUTHORS_ENCODER.encode(self.authors))
        object.__setattr__(self, "version", _version_of(self))

    # Pickled (from a parser process) as a plain tuple: the dataclass default looks every field up
    # again for each item, a third of the cost of moving a large feed's items between processes.
    def __getstate__(self) -> tuple[object, ...]:
        return _item_state(self)

    def __setstate__(self, state: tuple[object, ...]) -> None:
        for name, value in zip(_ITEM_FIELDS, state, strict=True):
            object.__setattr__(self, name, value)


_ITEM_FIELDS = tuple(item_field.name for item_field in fields(Item))
_item_state = attrgetter(*_ITEM_FIELDS)


_AUTHORS_ENCODER = json.JSONEncoder(ensure_ascii=False)  # json.dumps with options builds one per call


def _version_of(item: Item) -> str:
    """A hash of what the publisher says about an item; the link is left out (its tracking variants
    are one item), and so is an article taken from the item's page (full_content)."""
    fields = [
        item.title,
        item.summary,
        item.content if item.feed_content is None else item.feed_content,
        item.authors_json,
        item.published.isoformat() if item.published else "",
        item.updated.isoformat() if item.updated else "",
    ]
    return hashlib.sha256("\x1f".join(fields).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """What parse gives back for one fetched body."""

    title: str
    link: str | None  # the publisher's site
    items: tuple[Item, ...]
    ttl: timedelta | None = None  # how often the publisher says it changes (<ttl>, sy:updatePeriod)
    # Read with KnownEntries: the digests of the known entries this body holds, left out of `items`
    # (None: the body was read whole, and none of its entries is remembered).
    known_digests: bytes | None = None

    @property
    def unchanged(self) -> int:
        """How many entries were known, and left out of `items`."""
        return len(self.known_digests or b"") // ENTRY_DIGEST_SIZE

    @property
    def entry_digests(self) -> bytes | None:
        """What to know next time: the known entries and those of `items` that are stored.

        Only entries stored as items are remembered: one that makes no item,
        or that the source's filters leave out, is read again every time, so
        that whatever reads a body whole would do is done (the same `seen`
        count, the store's first-entry rule and filters applied as before).
        """
        if self.known_digests is None:
            return None
        return self.known_digests + b"".join(item.entry_digest for item in self.items if item.entry_digest)


@dataclass(frozen=True, slots=True)
class SourceRef:
    """Where a stored item came from, for atom:source."""

    name: str
    title: str
    url: str  # the source's feed URL
    link: str | None  # the publisher's site


@dataclass(frozen=True, slots=True)
class StoredItem:
    """An item as stored; slug, archive_path and entry_id never change."""

    id: int
    entry_id: str  # Atom entry id
    slug: str
    archive_path: str  # relative to the output folder, e.g. "emnews/2022/03/14/ab12cd34ef.html"
    url: str | None
    url_key: str
    title: str
    summary: str
    content: str
    published: datetime  # aware, publisher's offset; first sight when the source gave none
    updated: datetime  # aware
    first_seen: datetime  # aware, UTC
    authors: tuple[str, ...]
    category: str  # the category of the archive path
    categories: tuple[str, ...]  # every category the item belongs to, archive category first
    tags: tuple[str, ...]
    sources: tuple[SourceRef, ...]


@dataclass(frozen=True, slots=True)
class UpdateResult:
    """The outcome of polling one source; errors are values, not exceptions."""

    source: str
    status: int | None = None
    new: int = 0
    updated: int = 0
    seen: int = 0
    not_modified: bool = False
    error: str | None = None
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What one publish did."""

    items: int  # items rendered
    listings: int  # listings (home, categories, tags) rendered
    written: int  # files created or replaced
    unchanged: int  # files rendered with the bytes already on disk
    failed: int = 0  # pages or listings that could not be rendered (logged; items stay pending)


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """A row of `aggregator status`."""

    name: str
    url: str  # where it is polled
    config_url: str
    last_polled_at: datetime | None
    last_status: int | None
    items: int
    error_count: int
    last_error: str | None
    next_check_at: datetime | None
    disabled_reason: str | None = None
    moved_to: str | None = None


__all__ = [
    "Category",
    "FetchPolicy",
    "Fetched",
    "FullContentSpec",
    "Item",
    "Labels",
    "ListingSpec",
    "ParsedFeed",
    "PublishResult",
    "SiteConfig",
    "SourceConfig",
    "SourceRef",
    "SourceState",
    "SourceStatus",
    "StoredItem",
    "UpdateResult",
]
