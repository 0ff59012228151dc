"""The store on a real SQLite file and on the real PostgreSQL (AGGREGATOR_TEST_DATABASE_URL)."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.dialects import sqlite as sqlite_dialect

from aggregator.errors import StoreError
from aggregator.models import FetchPolicy, Item, ParsedFeed, SourceConfig, StoredItem
from aggregator.store import PollRecord, Store, entry_id_for
from aggregator.urls import item_key

NOW = datetime(2022, 3, 14, 3, 0, tzinfo=UTC)
CST = timezone(timedelta(hours=8))
POLICY = FetchPolicy("test", 1, 1, 2, 1024, 3)


def _source(name: str, category: str, tags: tuple[str, ...] = ()) -> SourceConfig:
    return SourceConfig(
        name=name,
        url=f"http://127.0.0.1:9/{name}.xml",
        category=category,
        tags=tags,
        interval=timedelta(minutes=30),
        timezone="Asia/Shanghai",
        keep_source_tags=False,
        fetch=POLICY,
    )


WIRE = _source("wire", "world", ("wire",))
MIRROR = _source("mirror", "emnews", ("东财滚动新闻",))


def _item(title: str, link: str | None, *, guid: str | None = None, content: str = "<p>body</p>") -> Item:
    return Item(
        url_key=item_key(link, guid, title, content, source="test"),
        url=link,
        guid=guid,
        title=title,
        summary="summary",
        content=content,
        published=datetime(2022, 3, 14, 10, 55, 11, tzinfo=CST),
        updated=None,
        authors=("Reporter",),
        tags=(),
    )


def _listing(store: Store, kind: str, key: str) -> list[StoredItem]:
    return store.items_by_id(store.listing_ids(kind, key))


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = Store.open(database_url)
    opened.sync_sources([WIRE, MIRROR])
    yield opened
    opened.close()


def _poll_record(source: SourceConfig, now: datetime = NOW) -> PollRecord:
    return PollRecord(
        polled_at=now,
        status=200,
        error=None,
        next_check_at=now + source.interval,
        url=source.url,
        etag='"v1"',
    )


def _feed(source: SourceConfig, *items: Item) -> ParsedFeed:
    return ParsedFeed(title=source.name.title(), link="https://example.com/", items=items)


def _save(store: Store, source: SourceConfig, *items: Item, now: datetime = NOW) -> tuple[int, int]:
    result = store.record_poll(source, _poll_record(source, now), _feed(source, *items))
    return result.new, result.updated


def test_new_items_keep_identity_and_publisher_offset(store: Store) -> None:
    assert _save(store, WIRE, _item("Markets rally", "https://news.example.com/a/1")) == (1, 0)
    [stored] = _listing(store, "home", "")
    assert stored.archive_path == "world/2022/03/14/markets-rally.html"
    assert stored.slug == "markets-rally"
    assert stored.entry_id.startswith("urn:uuid:")
    assert stored.published == datetime(2022, 3, 14, 10, 55, 11, tzinfo=CST)
    assert stored.published.utcoffset() == timedelta(hours=8)
    assert stored.categories == ("world",) and stored.tags == ("wire",)
    assert [ref.name for ref in stored.sources] == ["wire"]
    assert stored.authors == ("Reporter",)


def test_cjk_title_gets_hash_slug(store: Store) -> None:
    _save(
        store, MIRROR, _item("广东省：建设省数据交易场所", "http://finance.eastmoney.com/news/1345,2022.html")
    )
    [stored] = _listing(store, "category", "emnews")
    assert stored.archive_path.startswith("emnews/2022/03/14/")
    assert stored.slug.isascii() and len(stored.slug) == 10


def test_same_article_from_two_sources_is_one_item_with_both_labels(store: Store) -> None:
    _save(store, WIRE, _item("Markets rally", "https://news.example.com/a/1?utm_source=rss"))
    new, _ = _save(store, MIRROR, _item("Markets rally", "http://NEWS.example.com:80/a/1#top"))
    assert new == 0
    assert len(store.listing_ids("home", "")) == 1
    [stored] = _listing(store, "home", "")
    assert stored.categories == ("world", "emnews")
    assert stored.tags == ("wire", "东财滚动新闻")
    assert [ref.name for ref in stored.sources] == ["wire", "mirror"]
    assert _listing(store, "tag", "东财滚动新闻") == [stored]
    assert _listing(store, "category", "emnews") == [stored]
    assert store.labels() == {"category": ["emnews", "world"], "tag": ["wire", "东财滚动新闻"]}


def test_duplicate_inside_one_feed_is_stored_once(store: Store) -> None:
    first = _item("Markets rally", "https://news.example.com/a/1")
    assert _save(store, WIRE, first, replace(first, url="https://news.example.com/a/1?gclid=1")) == (1, 0)
    assert len(store.listing_ids("home", "")) == 1


def test_changed_item_is_updated_in_place(store: Store) -> None:
    _save(store, WIRE, _item("Markets rally", "https://news.example.com/a/1"))
    [before] = _listing(store, "home", "")
    later = NOW + timedelta(hours=1)
    changed = _item("Markets rally strongly", "https://news.example.com/a/1", content="<p>more</p>")
    assert _save(store, WIRE, changed, now=later) == (0, 1)
    [after] = _listing(store, "home", "")
    assert (after.id, after.entry_id, after.archive_path, after.slug) == (
        before.id,
        before.entry_id,
        before.archive_path,
        before.slug,
    )
    assert after.title == "Markets rally strongly" and after.content == "<p>more</p>"
    assert after.updated == later
    assert _save(store, WIRE, changed, now=later + timedelta(hours=1)) == (0, 0)


def test_items_without_link_are_kept(store: Store) -> None:
    by_guid = _item("Notice", None, guid="tag:example.com,2022:1")
    by_hash = _item("Untitled note", None, content="<p>only text</p>")
    other_hash = _item("Another note", None, content="<p>only text</p>")
    assert _save(store, WIRE, by_guid, by_hash, other_hash) == (3, 0)
    keys = {item.url_key for item in _listing(store, "home", "")}
    assert keys == {"guid:test:tag:example.com,2022:1", by_hash.url_key, other_hash.url_key}
    assert _save(store, WIRE, by_guid, by_hash, other_hash) == (0, 0)


def test_same_title_same_day_gets_distinct_archive_paths(store: Store) -> None:
    _save(store, WIRE, _item("Daily briefing", "https://news.example.com/brief/1"))
    _save(store, WIRE, _item("Daily briefing", "https://news.example.com/brief/2"))
    paths = {item.archive_path for item in _listing(store, "home", "")}
    assert len(paths) == 2
    assert "world/2022/03/14/daily-briefing.html" in paths


def test_pending_until_marked_and_again_after_a_change(store: Store) -> None:
    _save(store, WIRE, _item("One", "https://news.example.com/1"), _item("Two", "https://news.example.com/2"))
    pending = store.pending()
    assert [entry.item.title for entry in pending] == ["Two", "One"] or len(pending) == 2
    store.mark_published(pending)
    assert store.pending() == []
    _save(store, MIRROR, _item("Two", "https://news.example.com/2"))  # a new category for "Two"
    assert [entry.item.title for entry in store.pending()] == ["Two"]


def test_the_items_waiting_to_be_published_are_read_from_an_index_of_them_alone(store: Store) -> None:
    """Every publish asks for them: a scan of the whole archive grew with it (0.11 s at 52,000 items)."""
    statements: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        statements.append((statement, parameters))

    _save(store, WIRE, _item("One", "https://news.example.com/1"))
    event.listen(store.engine, "before_cursor_execute", record)
    try:
        assert [entry.item.title for entry in store.pending()] == ["One"]
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    statement, parameters = next((sql, args) for sql, args in statements if "published_revision" in sql)
    with store.engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            plan = " ".join(
                row[-1] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            )
        else:
            connection.exec_driver_sql("SET enable_seqscan = off")  # a tiny table would be scanned anyway
            plan = " ".join(row[0] for row in connection.exec_driver_sql(f"EXPLAIN {statement}", parameters))
    assert "ix_items_pending" in plan, plan


def test_a_publish_reuses_the_items_it_loaded_and_still_shows_each_page_its_own(store: Store) -> None:
    from aggregator.publish import _RecentItems

    _save(store, WIRE, *(_item(f"Story {n}", f"https://news.example.com/{n}") for n in range(4)))
    ids = [item.id for item in _listing(store, "home", "")]
    recent = _RecentItems(store, keep=2)
    for window in ([ids[0], ids[1]], [ids[1], ids[2]], [ids[3], 10**9, ids[0]], ids[::-1], ids):
        expected = [item.title for item in store.items_by_id(window)]
        assert [item.title for item in recent.by_id(window)] == expected, window


def test_mark_published_does_not_hide_a_change_made_meanwhile(store: Store) -> None:
    _save(store, WIRE, _item("One", "https://news.example.com/1"))
    pending = store.pending()
    _save(store, WIRE, _item("One, corrected", "https://news.example.com/1"))
    store.mark_published(pending)
    assert [entry.item.title for entry in store.pending()] == ["One, corrected"]


def _fail(
    store: Store, source: SourceConfig, now: datetime, next_check_at: datetime, status: int = 503
) -> None:
    record = PollRecord(
        polled_at=now, status=status, error=f"HTTP {status}", next_check_at=next_check_at, url=source.url
    )
    store.record_poll(source, record)


def test_schedule_errors_and_status(store: Store) -> None:
    claim = {"owner": "test", "lease": timedelta(minutes=5)}
    assert list(store.claim(["wire", "mirror"], NOW, **claim)) == ["wire", "mirror"]
    _save(store, WIRE, _item("One", "https://news.example.com/1"))
    _fail(store, MIRROR, NOW, NOW + timedelta(hours=2))
    _fail(store, MIRROR, NOW, NOW + timedelta(hours=4))
    assert list(store.claim(["wire", "mirror"], NOW + timedelta(minutes=31), **claim)) == ["wire"]
    rows = {row.name: row for row in store.status()}
    assert rows["wire"].items == 1 and rows["wire"].last_status == 200 and rows["wire"].error_count == 0
    assert rows["mirror"].error_count == 2 and rows["mirror"].last_error == "HTTP 503"
    assert rows["mirror"].next_check_at == NOW + timedelta(hours=4)
    assert store.source_state("wire").etag == '"v1"'
    _save(store, MIRROR, now=NOW + timedelta(hours=5))
    assert store.source_state("mirror").error_count == 0


def test_a_claimed_source_is_nobody_elses_until_recorded_or_expired(store: Store) -> None:
    lease = timedelta(minutes=5)
    assert list(store.claim(["wire"], NOW, owner="a", lease=lease)) == ["wire"]
    assert list(store.claim(["wire", "mirror"], NOW, owner="b", lease=lease)) == ["mirror"]
    assert list(store.claim(["wire", "mirror"], NOW, owner="c", lease=lease, due_only=False)) == []
    _save(store, WIRE, _item("One", "https://news.example.com/1"))  # recording ends the lease
    assert list(store.claim(["wire"], NOW, owner="c", lease=lease, due_only=False)) == ["wire"]
    later = NOW + lease + timedelta(seconds=1)  # b died without recording: its lease expires
    assert list(store.claim(["wire", "mirror"], later, owner="c", lease=lease)) == ["mirror"]


def test_claimable_lists_never_polled_then_most_overdue_first_and_skips_what_cannot_be_claimed(
    store: Store,
) -> None:
    sources = [_source(name, "world") for name in ("late", "later", "fresh", "held", "gone", "idle")]
    store.sync_sources([WIRE, MIRROR, *sources])
    names = [source.name for source in sources]
    polled = ["late", "later", "held", "gone", "idle"]  # "fresh" was never polled
    assert list(store.claim(polled, NOW, owner="a", lease=timedelta(minutes=5))) == polled
    hour = timedelta(hours=1)
    for name, next_check_at in {"late": NOW - 2 * hour, "later": NOW - hour, "idle": NOW + hour}.items():
        store.record_unchanged(
            [(name, PollRecord(NOW, 304, None, next_check_at, url=f"https://{name}.example/"))]
        )
    store.record_poll(
        sources[4],
        PollRecord(NOW, 410, "HTTP 410 Gone", NOW, url=sources[4].url, disabled_reason="410 Gone"),
    )
    # "held" stays leased to a (its poll is still running)
    # not listed: wire and mirror (not asked for), held (leased), gone (disabled); idle is not due yet
    assert store.claimable(names, NOW) == ["fresh", "late", "later"]
    assert store.claimable(names, NOW, due_only=False) == ["fresh", "late", "later", "idle"]


def test_410_disables_until_enabled_or_reconfigured(store: Store) -> None:
    record = PollRecord(
        polled_at=NOW, status=410, error="HTTP 410 Gone", next_check_at=NOW, url=WIRE.url,
        disabled_reason="410 Gone since 2022-03-14 03:00 UTC",
    )  # fmt: skip
    store.record_poll(WIRE, record)
    assert list(store.claim(["wire"], NOW + timedelta(days=1), owner="a", lease=timedelta(minutes=1))) == []
    assert store.status()[1].disabled_reason == "410 Gone since 2022-03-14 03:00 UTC"
    assert store.enable("wire") and not store.enable("nope")
    assert list(store.claim(["wire"], NOW, owner="a", lease=timedelta(minutes=1))) == ["wire"]
    store.record_poll(WIRE, record)
    store.sync_sources([replace(WIRE, url="http://127.0.0.1:9/new.xml"), MIRROR])
    assert store.source_state("wire").disabled_reason is None


def test_changed_source_url_forgets_validators(store: Store) -> None:
    _save(store, WIRE, _item("One", "https://news.example.com/1"))
    store.sync_sources([replace(WIRE, url="http://127.0.0.1:9/moved.xml"), MIRROR])
    state = store.source_state("wire")
    assert state.etag is None and state.next_check_at is None


def test_nul_characters_are_dropped_not_fatal(store: Store) -> None:
    _save(store, WIRE, _item("Bad\x00title", "https://news.example.com/nul", content="<p>a\x00b</p>"))
    [stored] = _listing(store, "home", "")
    assert stored.title == "Badtitle" and stored.content == "<p>ab</p>"


def test_iter_items_pages_through_everything_newest_first(store: Store) -> None:
    items = [
        replace(_item(f"Story {n}", f"https://news.example.com/{n}"), published=NOW + timedelta(minutes=n))
        for n in range(7)
    ]
    _save(store, WIRE, *items)
    titles = [item.title for item in store.iter_items(batch_size=3)]
    assert titles == [f"Story {n}" for n in reversed(range(7))]


def test_migrations_are_idempotent(database_url: str) -> None:
    Store.open(database_url).close()
    reopened = Store.open(database_url)
    assert len(reopened.listing_ids("home", "")) == 0
    reopened.close()


def test_unreachable_database_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="cannot open database"):
        Store.open("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2")


def test_two_sources_with_different_versions_do_not_overwrite_each_other(store: Store) -> None:
    full = _item("Markets rally", "https://news.example.com/a/1", content="<p>full article</p>")
    short = _item("Markets rally", "http://news.example.com/a/1", content="<p>teaser</p>")
    _save(store, WIRE, full)
    assert _save(store, MIRROR, short) == (0, 0)
    for _ in range(2):
        assert _save(store, WIRE, full) == (0, 0)
        assert _save(store, MIRROR, short) == (0, 0)
    [stored] = _listing(store, "home", "")
    assert stored.content == "<p>full article</p>"
    store.mark_published(store.pending())
    changed_teaser = replace(short, content="<p>teaser, 57 points</p>")
    assert _save(store, MIRROR, changed_teaser) == (0, 0), "only the filing source updates the article"
    assert _listing(store, "home", "")[0].content == "<p>full article</p>"
    corrected = replace(full, content="<p>full article, corrected</p>")
    assert _save(store, WIRE, corrected) == (0, 1)
    assert _listing(store, "home", "")[0].content == "<p>full article, corrected</p>"


def test_schema_head_is_alembics_head_and_a_fresh_database_reaches_it(database_url: str) -> None:
    """Start-up skips Alembic at SCHEMA_HEAD: that constant must name the newest migration."""
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory
    from sqlalchemy import text

    from aggregator.store import MIGRATIONS, SCHEMA_HEAD

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == SCHEMA_HEAD
    store = Store.open(database_url)
    try:
        with store.engine.connect() as connection:
            assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == SCHEMA_HEAD
    finally:
        store.close()


def test_unchanged_polls_recorded_together_end_their_leases_and_keep_validators(store: Store) -> None:
    lease = timedelta(minutes=5)
    assert list(store.claim(["wire", "mirror"], NOW, owner="a", lease=lease)) == ["wire", "mirror"]
    later = NOW + timedelta(minutes=30)
    store.record_unchanged(
        [
            (name, PollRecord(NOW, 304, None, later, url=f"https://{name}.example/feed", etag=f'"{name}"'))
            for name in ("wire", "mirror")
        ]
    )
    assert store.source_state("wire").etag == '"wire"'
    assert store.source_state("mirror").next_check_at == later
    # the leases ended with the record: a forced poll by another worker gets both before they expire
    soon = NOW + timedelta(minutes=1)
    forced = store.claim(["wire", "mirror"], soon, owner="b", lease=lease, due_only=False)
    assert list(forced) == ["wire", "mirror"]


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2022, 3, 14, 10, 55, 11, tzinfo=CST),  # no microseconds: still written with them
        datetime(2022, 3, 14, 10, 55, 11, 5, tzinfo=UTC),
        datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC),  # a year under 1000 keeps its four digits
    ],
)
def test_sqlite_dates_are_the_text_sqlalchemy_writes_and_read_back(tmp_path: Path, moment: datetime) -> None:
    """Older databases hold SQLAlchemy's DATETIME text; ours must match it to sort and compare with it."""
    store = Store.open(f"sqlite:///{tmp_path / 'dates.db'}")
    store.sync_sources([WIRE])
    _save(store, WIRE, replace(_item("Dated", "https://news.example.com/dated"), published=moment))
    [stored] = _listing(store, "home", "")
    store.close()
    with sqlite3.connect(tmp_path / "dates.db") as connection:
        [(text,)] = connection.execute("SELECT published_at FROM items").fetchall()
    dialect = sqlite_dialect.dialect()
    expected = sqlite_dialect.DATETIME().bind_processor(dialect)(moment.astimezone(UTC).replace(tzinfo=None))
    assert text == expected
    assert stored.published == moment and stored.published.utcoffset() == moment.utcoffset()


@pytest.mark.parametrize("url_key", ["https://news.example.com/1", "https://新闻.example.cn/滚动?id=7", ""])
def test_entry_ids_are_name_based_uuids_of_the_url_key(url_key: str) -> None:
    """Atom ids of items stored by earlier versions stay what they were."""
    assert entry_id_for(url_key) == uuid.uuid5(uuid.NAMESPACE_URL, url_key).urn


def test_a_path_another_worker_takes_meanwhile_gets_a_suffix_not_a_failed_poll(postgresql_url: str) -> None:
    """Two workers store different articles of one title and day at the same moment: both are stored.

    PostgreSQL only: on SQLite one writer at a time, so no path is taken meanwhile.
    """
    first, second = Store.open(postgresql_url), Store.open(postgresql_url)
    first.sync_sources([WIRE, MIRROR])
    wire_item = _item("Markets close higher", "https://wire.example.com/markets")
    mirror_item = _item("Markets close higher", "https://mirror.example.com/other-story")
    try:
        with first.engine.connect() as other_worker:
            transaction = other_worker.begin()  # stores the wire's article and holds its commit back
            first._record(other_worker, WIRE, _poll_record(WIRE), _feed(WIRE, wire_item))
            threading.Timer(0.5, transaction.commit).start()
            new, _updated = _save(second, MIRROR, mirror_item)  # waits for that commit, then meets the path
        assert new == 1
        slugs = {item.url: item.slug for item in _listing(second, "home", "")}
        assert slugs[mirror_item.url].startswith(f"{slugs[wire_item.url]}-"), slugs  # its Jekyll post differs
        assert second.source_state("mirror").last_error is None
    finally:
        first.close()
        second.close()
