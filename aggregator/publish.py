"""Write the output folder from the database: only what changed, always atomically.

Incremental by default: items whose revision has not been published yet are
rendered, with the index pages and output feeds of every listing they belong
to. A file is replaced only when its bytes differ, through a temporary file
and os.replace, so readers and web servers never see half a file and a
publish with nothing new writes nothing. Items are marked published only
after their files are in place.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path

from .config_file import Config
from .layout import Listing, numbered_pages, page_of, page_window
from .models import PublishResult, SiteConfig, StoredItem
from .render.atom import render_atom
from .render.pages import render_archive_page, render_index_page, render_jekyll_post
from .store import CATEGORY, TAG, Store

log = logging.getLogger(__name__)

FILE_MODE = 0o644  # readable by the web server, whatever the umask of the temp file


def write_if_changed(path: Path, data: bytes) -> bool:
    """Atomically replace `path` with `data` unless it already holds exactly that."""
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return True


def listing_for(site: SiteConfig, kind: str, key: str) -> Listing:
    if kind == CATEGORY:
        return Listing("category", key, site.category_title(key))
    if kind == TAG:
        return Listing("tag", key, key)
    return Listing("home", "", site.title)


class _Writer:
    """Counts what a publish wrote, for logs and tests."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.written = 0
        self.unchanged = 0
        self.failed = 0

    def render(self, what: str, work: Callable[[], None]) -> bool:
        """Run one page's rendering; a bug or bad data there is logged, and the rest is still written."""
        try:
            work()
        except OSError:
            raise  # a full disk or a permission problem concerns every file: stop
        except Exception:
            log.exception("cannot publish %s; the rest of the site is still written", what)
            self.failed += 1
            return False
        return True

    def put(self, relative_path: str, data: str | bytes) -> None:
        payload = data.encode("utf-8") if isinstance(data, str) else data
        if write_if_changed(self.root / relative_path, payload):
            self.written += 1
        else:
            self.unchanged += 1


def _render_item(writer: _Writer, config: Config, item: StoredItem) -> None:
    if "html" in config.formats:
        writer.put(item.archive_path, render_archive_page(config.site, item))
    if "jekyll" in config.formats:
        path, text = render_jekyll_post(config.site, item)
        writer.put(path, text)


class _RecentItems:
    """Items loaded for this publish, the most recently used few thousand kept.

    A listing's front page, its newest numbered page and its feed show mostly
    the same items, and home shows the newest of every category and tag: after
    a poll, loading each again for every page cost a quarter of the publish.
    """

    def __init__(self, store: Store, keep: int = 5000) -> None:
        self._store = store
        self._keep = keep
        self._items: OrderedDict[int, StoredItem] = OrderedDict()

    def by_id(self, ids: Sequence[int]) -> list[StoredItem]:
        """These items, in the order given (as Store.items_by_id)."""
        missing = [item_id for item_id in ids if item_id not in self._items]
        for item in self._store.items_by_id(missing) if missing else ():
            self._items[item.id] = item
        found = []
        for item_id in ids:
            if item_id in self._items:
                self._items.move_to_end(item_id)
                found.append(self._items[item_id])
        while len(self._items) > self._keep:
            self._items.popitem(last=False)
        return found


def _render_listing(
    writer: _Writer,
    config: Config,
    items: _RecentItems,
    store: Store,
    listing: Listing,
    changed: set[int] | None,
) -> None:
    """A listing's output feed, front page and the numbered pages that `changed` items touch (None: all).

    Numbered pages are counted from the oldest item (layout.numbered_pages):
    an item shifts only the pages from its own to the newest, so after the
    usual new items only the front page and the newest numbered page change.
    Only the items of the pages rendered are loaded.
    """
    site = config.site
    ids = store.listing_ids(listing.kind, listing.key)
    total, per_page = len(ids), max(1, site.items_per_page)
    if "html" in config.formats:
        pages = numbered_pages(total, per_page)
        first = 1
        if changed is not None:
            touched = [
                page_of(position, total, per_page) for position, item in enumerate(ids) if item in changed
            ]
            # A new numbered page also changes the "newer" link of the one before it.
            first = max(1, min([*touched, pages - 1]))
        for number in [None, *range(first, pages + 1)]:
            window = items.by_id(ids[page_window(total, per_page, number)])
            path, html = render_index_page(site, listing, window, number=number, total=total)
            writer.put(path, html)
    writer.put(listing.feed_path, render_atom(site, listing, items.by_id(ids[: site.items_per_feed])))


def _listings_of(site: SiteConfig, items: Iterable[StoredItem]) -> list[Listing]:
    keys: dict[tuple[str, str], None] = {("home", ""): None}
    for item in items:
        keys.update(dict.fromkeys((CATEGORY, category) for category in item.categories))
        keys.update(dict.fromkeys((TAG, tag) for tag in item.tags))
    return [listing_for(site, kind, key) for kind, key in keys]


def publish(store: Store, config: Config, *, full: bool = False) -> PublishResult:
    """Bring the output folder up to date with the database.

    A folder without the site feed (first run, or wiped) gets a full publish.
    Several workers may call this at once: they take turns.
    """
    with store.publishing():
        writer = _Writer(config.output_dir)
        pending = store.pending()
        full = full or not (config.output_dir / Listing("home", "", "").feed_path).exists()
        failed: set[int] = set()
        changed = None if full else {entry.item.id for entry in pending}
        if full:
            count = 0
            for item in store.iter_items():
                if not writer.render(item.archive_path, partial(_render_item, writer, config, item)):
                    failed.add(item.id)
                count += 1
            labels = store.labels()
            categories = dict.fromkeys([*(c.slug for c in config.site.categories), *labels[CATEGORY]])
            listings = [listing_for(config.site, "home", "")]
            listings += [listing_for(config.site, CATEGORY, key) for key in categories]
            listings += [listing_for(config.site, TAG, key) for key in labels[TAG]]
        else:
            count = len(pending)
            for entry in pending:
                if not writer.render(
                    entry.item.archive_path, partial(_render_item, writer, config, entry.item)
                ):
                    failed.add(entry.item.id)
            listings = _listings_of(config.site, (entry.item for entry in pending)) if pending else []
        recent = _RecentItems(store)
        for listing in listings:
            writer.render(
                f"the {listing.kind} listing {listing.key!r}",
                partial(_render_listing, writer, config, recent, store, listing, changed),
            )
        store.mark_published(entry for entry in pending if entry.item.id not in failed)
    result = PublishResult(
        items=count,
        listings=len(listings),
        written=writer.written,
        unchanged=writer.unchanged,
        failed=writer.failed,
    )
    log.info(
        "publish items=%d listings=%d written=%d unchanged=%d failed=%d full=%s",
        result.items,
        result.listings,
        result.written,
        result.unchanged,
        result.failed,
        full,
    )
    return result
