"""A changed body builds and stores only the entries not read before, and the archive is the same.

Most changed bodies repeat the entries of the last one (a feed gains an item or
two): the digests of the entries stored are kept with the source, and those
entries are neither built nor stored again. Each poll here is also made by a
reference store that reads every body whole, as before entries were known:
the two archives must match row for row (and the polls' counts), through new
entries at either end, a changed entry, an entry without link or guid, two
entries with one link, the source's filters, and a change of its settings.
"""

from __future__ import annotations

import importlib.resources
import random
import shutil
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import aggregator.update
from aggregator.filters import SourceFilters, compile_filters
from aggregator.models import ENTRY_DIGEST_SIZE, FetchPolicy, KnownEntries, ParsedFeed, SourceConfig
from aggregator.parse import code_fingerprint, parse_feed
from aggregator.store import (
    PollRecord,
    SaveResult,
    Store,
    create_store_engine,
    item_labels_table,
    item_sources_table,
    items_table,
    sources_table,
    upgrade_schema,
)
from aggregator.update import Polling, entry_context, update_sources
from tests.httpserver import LoopbackServer, respond
from tests.sample_feeds import Article, atom, rss2

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
RSS = {"Content-Type": "application/rss+xml"}
SITE = "https://news.example.com/"


def _article(name: str, title: str | None = None, day: int = 1) -> Article:
    return Article(
        title or f"Article {name}",
        f"{SITE}{name}" if name else "",
        f"Mon, {day:02d} Mar 2022 10:55:11 +0800",
        summary=f"Summary of {title or name}",
        content=f"<p>Body of {title or name}</p>",
    )


A, B, C, D, E = (_article(name, day=day) for day, name in enumerate("abcde", start=1))
A2 = _article("a", "Article a, corrected", day=1)
B_TWICE = _article("b", "Article b told again", day=9)  # the same link as B
UNLINKED = Article("A brief with neither link nor guid", "", "Mon, 07 Mar 2022 08:00:00 +0800")
F = _article("f", day=6)

# (articles served, the source's tags, items the store is given without filters) for each poll in turn
POLLS: list[tuple[list[Article], tuple[str, ...], int]] = [
    ([A, B, C], (), 3),  # first body: every entry
    ([D, A, B, C], (), 1),  # a new entry first: only it
    ([D, A2, B, C, E], (), 2),  # one entry changed, a new one last
    ([D, A2, B_TWICE, B, C, E], (), 6),  # two entries with B's link: read whole, the store picks one
    ([D, A2, B, C, E], (), 5),  # it is gone; nothing was remembered from the body before
    ([D, A2, B, C, E, UNLINKED], (), 1),  # an entry keyed by its text
    ([UNLINKED, D, A2, B, C, E], (), 0),  # the same entries in another order: nothing to build
    ([F, UNLINKED, D, A2, B, C, E], ("markets",), 7),  # new settings: every entry is read once more
]
FILTERS = {
    "no filters": None,
    "exclude": compile_filters([], ["told again", "corrected"], []),  # B_TWICE comes before B, and A2 goes
    "include": compile_filters([{"field": "title", "pattern": "Article [abd]"}], [], []),
}


UNKEYED = tuple(column.name for column in items_table.c if column.name not in ("id", "source_id", "url_key"))


class _CountingStore(Store):
    """A real store that counts the items each poll hands it."""

    given: list[int]

    def record_polls(
        self, polls: Sequence[tuple[SourceConfig, PollRecord, ParsedFeed | None]]
    ) -> list[SaveResult]:
        self.given.append(sum(len(feed.items) for _source, _poll, feed in polls if feed is not None))
        return super().record_polls(polls)


def _source(url: str, tags: tuple[str, ...]) -> SourceConfig:
    return SourceConfig(
        name="wire",
        url=url,
        category="world",
        tags=tags,
        interval=timedelta(minutes=30),
        timezone="Asia/Shanghai",
        keep_source_tags=False,
        fetch=FetchPolicy("aggregator-test/1.0", 2, 2, 5, 1 << 20, 5),
    )


def _at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def _archive(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every stored row that a poll writes about items, with url keys and names for ids."""
    item, source = items_table, sources_table
    unkeyed = [item.c[name] for name in UNKEYED]
    queries = {
        "items": select(item.c.url_key, source.c.name, *unkeyed)
        .select_from(item.outerjoin(source, source.c.id == item.c.source_id))
        .order_by(item.c.url_key),
        "links": select(
            item.c.url_key, source.c.name, item_sources_table.c.added_at, item_sources_table.c.content_hash
        )
        .select_from(item_sources_table.join(item).join(source))
        .order_by(item.c.url_key, source.c.name),
        "labels": select(
            item.c.url_key, *(column for column in item_labels_table.c if column.name != "item_id")
        )
        .select_from(item_labels_table.join(item))
        .order_by(item.c.url_key, item_labels_table.c.kind, item_labels_table.c.value),
    }
    with store.engine.connect() as conn:
        return {name: [tuple(row) for row in conn.execute(query)] for name, query in queries.items()}


@pytest.fixture
def stores(database_url: str, tmp_path: Path) -> Iterator[tuple[_CountingStore, Store]]:
    """The store that skips known entries on SQLite and PostgreSQL; the reference on SQLite."""
    skipping = _CountingStore(create_store_engine(database_url))
    upgrade_schema(skipping.engine)
    reference = Store.open(f"sqlite:///{tmp_path / 'reference.db'}")
    skipping.given = []
    yield skipping, reference
    skipping.close()
    reference.close()


@pytest.mark.parametrize("filters", FILTERS.values(), ids=FILTERS.keys())
def test_a_changed_body_stores_only_its_new_entries_and_the_archive_is_as_if_read_whole(
    stores: tuple[_CountingStore, Store], filters: SourceFilters | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    skipping, reference = stores
    served: dict[str, bytes] = {}

    def handle(request: BaseHTTPRequestHandler) -> None:
        respond(request, 200, served["body"], RSS)

    with LoopbackServer(handle) as server:
        for number, (articles, tags, given) in enumerate(POLLS):
            served["body"] = rss2("Wire", SITE, articles)
            source = replace(_source(server.url("/feed"), tags), filters=filters)
            now = NOW + timedelta(hours=number)
            results = []
            for store in (skipping, reference):
                with monkeypatch.context() as patched:
                    if store is reference:  # every body read whole, nothing remembered
                        patched.setattr(aggregator.update, "_known_entries", lambda source, state: None)
                    store.sync_sources([source])
                    polling = Polling(rng=random.Random(7), workers=1)
                    [result] = update_sources(store, [source], _at(now), polling=polling, due_only=False)
                results.append(replace(result, duration=0.0))
            assert results[0] == results[1] and results[0].error is None, f"poll {number}"
            assert _archive(skipping) == _archive(reference), f"poll {number}"
            if filters is None:
                assert skipping.given[-1] == given, f"poll {number}: items built and stored"
    if filters is None:
        archive = _archive(skipping)
        tagged = {row[0] for row in archive["labels"] if row[2] == "markets"}
        assert tagged == {row[0] for row in archive["items"]}, "the new tag reaches every item still listed"


def _digests(joined: bytes | None) -> set[bytes]:
    assert joined is not None
    return {joined[start : start + ENTRY_DIGEST_SIZE] for start in range(0, len(joined), ENTRY_DIGEST_SIZE)}


def test_known_entries_are_left_out_and_every_entry_digest_is_given_back() -> None:
    body = atom("Wire", SITE, [D, A, B, C])

    def parse(known: KnownEntries | None) -> ParsedFeed:
        return parse_feed(
            body, {}, url=f"{SITE}feed", source="wire", timezone="UTC", keep_source_tags=False, known=known
        )

    context = entry_context(_source(f"{SITE}feed", ()))
    first = parse(KnownEntries(context))
    assert first.entry_digests is not None and len(first.entry_digests) == 4 * 16
    assert [item.url for item in first.items] == [f"{SITE}{name}" for name in "dabc"] and first.unchanged == 0
    assert first.items == parse(None).items

    older = parse_feed(
        atom("Wire", SITE, [A, B, C]), {}, url=f"{SITE}feed", source="wire", timezone="UTC",
        keep_source_tags=False, known=KnownEntries(context),
    )  # fmt: skip
    again = parse(KnownEntries(context, older.entry_digests or b""))
    assert [item.url for item in again.items] == [f"{SITE}d"] and again.unchanged == 3
    assert _digests(again.entry_digests) == _digests(first.entry_digests), "the new entry is known next time"

    other_settings = entry_context(replace(_source(f"{SITE}feed", ()), category="tech"))
    assert len(parse(KnownEntries(other_settings, older.entry_digests or b"")).items) == 4


def test_the_code_fingerprint_covers_every_module_in_a_folder_or_a_zip(tmp_path: Path) -> None:
    """Digests hold the program's code: a fix in any module (a rewrite rule's, a date reader's) reads
    every entry again once; a zipped install reads its modules from the zip."""
    package = tmp_path / "aggregator"
    shutil.copytree(
        Path(aggregator.update.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__")
    )
    before = code_fingerprint(package)
    assert before == code_fingerprint(package) == code_fingerprint(importlib.resources.files("aggregator"))
    assert code_fingerprint() == code_fingerprint(importlib.resources.files("aggregator"))
    archive = tmp_path / "aggregator.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(package.rglob("*")):
            zipped.write(path, path.relative_to(tmp_path).as_posix())
    assert code_fingerprint(zipfile.Path(archive, "aggregator/")) == before
    (package / "templates" / "extra.html").write_text("<p>not code</p>")
    assert code_fingerprint(package) == before
    filters = package / "filters.py"
    filters.write_text(filters.read_text() + "\n# a fix\n")
    assert code_fingerprint(package) != before
