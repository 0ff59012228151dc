"""SQLAlchemy 2 store: sources and their schedule, items deduplicated by url key.

Dedup is the database's job: `items.url_key` is UNIQUE and inserts use
ON CONFLICT DO NOTHING, so even two writers cannot create a duplicate item.
Identity (slug, archive path, Atom id) is fixed when an item is first stored.
Every change bumps `items.revision`; publish renders what has
`revision != published_revision` and then marks it, so a crash between the
two only means the same files are rendered and compared again.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import unicodedata
import uuid
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Column,
    ColumnElement,
    DateTime,
    Dialect,
    Engine,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    Select,
    String,
    Table,
    Text,
    TypeDecorator,
    Update,
    bindparam,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError

from . import layout
from .dating import is_future, settled_published
from .errors import StoreError
from .models import (
    Item,
    ParsedFeed,
    SourceConfig,
    SourceRef,
    SourceState,
    SourceStatus,
    StoredItem,
)

MIGRATIONS = Path(__file__).parent / "migrations"
SCHEMA_HEAD = "0004"  # the newest migration's revision; a test checks it against Alembic's head
T = TypeVar("T")
_MIGRATION_LOCK_ID = 7_402_314_159  # pg_advisory_xact_lock key: one migrator at a time
_PUBLISH_LOCK_ID = 7_402_314_160  # pg_advisory_lock key: one publisher at a time


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes stored as naive UTC, identical on SQLite and PostgreSQL."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else _naive_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)

    def bind_processor(self, dialect: Dialect) -> Callable[[datetime | None], Any]:
        """On SQLite, the very text SQLAlchemy's DATETIME writes, in one step rather than three."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)  # type: ignore[return-value]
        return _sqlite_utc_text


def _naive_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store")
    return value.astimezone(UTC).replace(tzinfo=None)


def _sqlite_utc_text(value: datetime | None) -> str | None:
    """'YYYY-MM-DD HH:MM:SS.ffffff' in UTC, microseconds always written."""
    return None if value is None else _naive_utc(value).isoformat(" ", "microseconds")


metadata = MetaData()

sources_table = Table(
    "sources",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("config_url", Text, nullable=False),  # as configured; a change there starts afresh
    Column("url", Text, nullable=False),  # as polled: config_url, or where it moved permanently
    Column("title", Text),
    Column("link", Text),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("last_polled_at", UTCDateTime),
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("error_count", Integer, nullable=False, server_default="0"),
    Column("next_check_at", UTCDateTime),
    Column("body_hash", String(64)),  # for publishers that ignore validators
    Column("entry_digests", LargeBinary),  # of the last body stored's entries: see KnownEntries
    Column("moved_to", Text),  # a permanent redirect seen on recent polls, not yet adopted
    Column("moved_count", Integer, nullable=False, server_default="0"),
    Column("disabled_reason", Text),  # set by 410 Gone; the source is not polled until enabled
    Column("lease_owner", Text),  # the worker polling it now
    Column("lease_until", UTCDateTime),
)

items_table = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("url_key", Text, nullable=False, unique=True),
    Column("entry_id", Text, nullable=False),
    Column("slug", Text, nullable=False),
    Column("archive_path", Text, nullable=False, unique=True),
    Column("post_path", Text, nullable=False, unique=True),  # Jekyll's _posts/ file: unique across categories
    Column("category", String(64), nullable=False),
    Column("source_id", Integer, ForeignKey("sources.id", ondelete="SET NULL")),  # the source that filed it
    Column("url", Text),
    Column("guid", Text),
    Column("title", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("content", Text, nullable=False),
    Column("authors", Text, nullable=False),
    Column("published_at", UTCDateTime, nullable=False),
    Column("published_offset", Integer, nullable=False),
    Column("published_raw", Text),  # the publisher's date when it was set aside (in the future)
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_offset", Integer, nullable=False),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("revision", Integer, nullable=False, server_default="1"),
    Column("published_revision", Integer, nullable=False, server_default="0"),
)

item_sources_table = Table(
    "item_sources",
    metadata,
    Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
    Column("source_id", Integer, ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True),
    Column("added_at", UTCDateTime, nullable=False),
    Column("content_hash", String(64), nullable=False),  # this source's version of the item
)

item_labels_table = Table(
    "item_labels",
    metadata,
    Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
    Column("kind", String(16), primary_key=True),  # "category" or "tag"
    Column("value", Text, primary_key=True),
    Column("position", Integer, nullable=False),
)

CATEGORY = "category"
TAG = "tag"


@dataclass(frozen=True, slots=True)
class SaveResult:
    new: int
    updated: int
    seen: int


@dataclass(frozen=True, slots=True)
class PollRecord:
    """What one poll tells the store about its source; validators are kept only on success."""

    polled_at: datetime
    status: int | None
    error: str | None
    next_check_at: datetime
    url: str  # where the source is polled from now on
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    moved_to: str | None = None
    moved_count: int = 0
    disabled_reason: str | None = None
    entry_digests: bytes | None = None  # stored with a feed's items (ParsedFeed.entry_digests)


@dataclass(frozen=True, slots=True)
class PendingItem:
    """An item whose current revision has not been published yet."""

    item: StoredItem
    revision: int


_STATE_COLUMNS = tuple(
    sources_table.c[name]
    for name in ("name", "url", "etag", "last_modified", "body_hash", "next_check_at", "error_count",
                 "last_error", "disabled_reason", "moved_to", "moved_count", "entry_digests")
)  # fmt: skip


def _state_of(row: Any) -> SourceState:
    return SourceState(
        url=row.url,
        etag=row.etag,
        last_modified=row.last_modified,
        body_hash=row.body_hash,
        next_check_at=row.next_check_at,
        error_count=row.error_count,
        last_error=row.last_error,
        disabled_reason=row.disabled_reason,
        moved_to=row.moved_to,
        moved_count=row.moved_count,
        entry_digests=row.entry_digests,
    )


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # 16 MiB of pages rather than 2: a large poll's inserts touch index pages all over the file
    # (the bench farm's first poll: 8% less CPU storing; peak RSS stays within the page cache's size).
    cursor.execute("PRAGMA cache_size=-16384")
    cursor.close()


def create_store_engine(url: str) -> Engine:
    """An engine with the settings the aggregator relies on (WAL + busy timeout on SQLite)."""
    try:
        # A server connection can drop while pooled; a SQLite file cannot (each ping was a
        # query more per transaction: a tenth of a no-change poll's time).
        engine = create_engine(url, pool_pre_ping=make_url(url).get_backend_name() != "sqlite")
    except (SQLAlchemyError, ImportError) as error:
        raise StoreError(f"cannot use database {display_url(url)}: {error}") from None
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        event.listen(engine, "connect", _set_sqlite_pragmas)
    return engine


def display_url(url: str) -> str:
    """The database URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid database URL>"


def upgrade_schema(engine: Engine) -> None:
    """Apply Alembic migrations up to head; safe when several workers start at once.

    A database already at SCHEMA_HEAD is recognised with one query, without
    importing Alembic (a third of a one-shot command's start-up otherwise).
    """
    try:
        if _schema_revision(engine) == SCHEMA_HEAD:
            return
        from alembic import command
        from alembic.config import Config as AlembicConfig

        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS))
        with _sqlite_file_lock(engine, ".migrate.lock"), engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_ID})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except SQLAlchemyError as error:
        raise StoreError(
            f"cannot open database {display_url(str(engine.url))}: {_first_line(error)}"
        ) from None


def _schema_revision(engine: Engine) -> str | None:
    """The revision Alembic recorded, or None for a database it has not touched."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


@contextmanager
def _sqlite_file_lock(engine: Engine, suffix: str) -> Iterator[None]:
    """An exclusive lock beside a SQLite file, for processes that share it (no-op elsewhere).

    pysqlite runs DDL outside a transaction, so two processes migrating the
    same file at once would both try to create the tables.
    """
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}{suffix}", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _first_line(error: BaseException) -> str:
    return str(getattr(error, "orig", None) or error).strip().splitlines()[0]


def _offset_minutes(moment: datetime) -> int:
    offset = moment.utcoffset()
    return 0 if offset is None else int(offset.total_seconds() // 60)


def _with_offset(moment: datetime, minutes: int) -> datetime:
    return moment.astimezone(timezone(timedelta(minutes=minutes)))


def _storable(item: Item) -> Item:
    """Drop NUL characters, which PostgreSQL text cannot hold and no reader wants."""

    def clean(text: str) -> str:
        return text.replace("\x00", "")

    texts = (item.url_key, item.title, item.summary, item.content, item.feed_content or "", item.url or "",
             item.guid or "", *item.authors, *item.tags)  # fmt: skip
    if "\x00" not in "".join(texts):
        return item  # nearly always: the parser already drops what XML cannot carry
    return replace(
        item,
        url_key=clean(item.url_key),
        title=clean(item.title),
        summary=clean(item.summary),
        content=clean(item.content),
        feed_content=item.feed_content and clean(item.feed_content),
        url=item.url and clean(item.url),
        guid=item.guid and clean(item.guid),
        authors=tuple(map(clean, item.authors)),
        tags=tuple(map(clean, item.tags)),
    )


def _new_item_values(source: SourceConfig, source_id: int, item: Item, now: datetime) -> dict[str, Any]:
    """The row of an item seen for the first time: its identity is fixed here."""
    published, published_raw = settled_published(item.published, now, ZoneInfo(source.timezone))
    slug = layout.slug_for(item.title, item.url_key)
    path = layout.archive_path(source.category, published, slug)
    return {
        "url_key": item.url_key,
        "entry_id": entry_id_for(item.url_key),
        "slug": slug,
        "archive_path": path,
        "post_path": layout.post_path_for(path),
        "category": source.category,
        "source_id": source_id,
        "published_at": published,
        "published_offset": _offset_minutes(published),
        "published_raw": published_raw,
        "first_seen_at": now,
        "revision": 1,
        "published_revision": 0,
        **_content_values(item, item.updated or published),
    }


def _changed_values(source: SourceConfig, item: Item, now: datetime) -> dict[str, Any]:
    """The columns a source's new version of an item replaces; identity stays."""
    values = _content_values(item, item.updated or now.astimezone(ZoneInfo(source.timezone)))
    if source.full_content is not None and item.feed_content is None:
        del values["content"]  # the page was not fetched again: the article stored stays
    if is_future(item.published, now):  # keep the time it was filed under; note what the publisher says
        assert item.published is not None
        values["published_raw"] = item.published.isoformat()
    elif item.published is not None:
        values |= {"published_at": item.published, "published_offset": _offset_minutes(item.published)}
        values["published_raw"] = None
    return values


def _content_values(item: Item, updated_at: datetime) -> dict[str, Any]:
    """What the publisher says about an item, as columns."""
    return {
        "url": item.url,
        "guid": item.guid,
        "title": item.title,
        "summary": item.summary,
        "content": item.content,
        "authors": item.authors_json,
        "content_hash": item.version,
        "updated_at": updated_at,
        "updated_offset": _offset_minutes(updated_at),
    }


def _labels_of_source(source: SourceConfig) -> list[tuple[str, str]]:
    """The labels every item of a source carries: its category, then its tags."""
    return [(CATEGORY, source.category), *((TAG, tag) for tag in _normalized_tags(source.tags))]


def _normalized_tags(tags: Iterable[str]) -> Iterator[str]:
    return (
        normalized for tag in tags if (normalized := " ".join(unicodedata.normalize("NFKC", tag).split()))
    )


def _missing_labels(
    source_labels: list[tuple[str, str]], item: Item, have: dict[tuple[str, str], int]
) -> list[dict[str, Any]]:
    """The source's labels and the item's own tags that the item does not carry yet."""
    wanted = (
        source_labels + [(TAG, tag) for tag in _normalized_tags(item.tags)] if item.tags else source_labels
    )
    missing = [label for label in dict.fromkeys(wanted) if label not in have]
    start = max(have.values(), default=-1) + 1
    return [
        {"kind": kind, "value": value, "position": position}
        for position, (kind, value) in enumerate(missing, start=start)
    ]


def entry_id_for(url_key: str) -> str:
    """A stable Atom id that does not depend on base_url or on where the item is published.

    uuid.uuid5(NAMESPACE_URL, url_key).urn, spelled out: the UUID object cost
    more than the hash for the 50,000 new items of a large first poll.
    """
    digest = bytearray(hashlib.sha1(_URL_NAMESPACE + url_key.encode("utf-8")).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    hexed = digest.hex()
    return f"urn:uuid:{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"


_URL_NAMESPACE = uuid.NAMESPACE_URL.bytes


class Store:
    """All database access; short transactions, one per operation."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._inserts: dict[tuple[str, tuple[str, ...], tuple[str, ...]], _DriverInsert] = {}
        self._lookups: dict[tuple[Select[Any], str, int], tuple[str, tuple[str, ...] | None]] = {}

    @classmethod
    def open(cls, url: str) -> Store:
        engine = create_store_engine(url)
        upgrade_schema(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def publishing(self) -> Iterator[None]:
        """Held while the output folder is written: one publisher at a time, across processes.

        A PostgreSQL advisory lock (across machines too) or a lock file beside
        the SQLite database; a second publisher waits for the first.
        """
        if self.engine.dialect.name != "postgresql":
            with _sqlite_file_lock(self.engine, ".publish.lock"):
                yield
            return
        try:
            connection = self.engine.connect()
            connection.execute(select(func.pg_advisory_lock(_PUBLISH_LOCK_ID)))
            connection.commit()
        except SQLAlchemyError as error:
            raise StoreError(f"database unavailable: {_first_line(error)}") from None
        try:
            yield
        finally:
            try:
                connection.execute(select(func.pg_advisory_unlock(_PUBLISH_LOCK_ID)))
                connection.commit()
            finally:
                connection.close()

    # -- sources -----------------------------------------------------------

    def sync_sources(self, sources: Sequence[SourceConfig]) -> None:
        """Give every configured source a row; a URL changed in the config starts it afresh.

        A config change also re-enables a source disabled by a 410, and drops
        an adopted redirect: the operator's word wins.
        """
        with self._begin() as conn:
            existing = {row.name: row for row in conn.execute(select(sources_table))}
            missing = [
                {"name": source.name, "config_url": source.url, "url": source.url}
                for source in sources
                if source.name not in existing
            ]  # several workers may start at once: the first insert wins
            self._insert_rows(conn, sources_table, missing, conflict_on=("name",))
            for source in sources:
                row = existing.get(source.name)
                if row is not None and row.config_url != source.url:
                    conn.execute(
                        update(sources_table)
                        .where(sources_table.c.id == row.id)
                        .values(
                            config_url=source.url,
                            url=source.url,
                            etag=None,
                            last_modified=None,
                            body_hash=None,
                            next_check_at=None,
                            moved_to=None,
                            moved_count=0,
                            disabled_reason=None,
                        )
                    )

    def claimable(self, names: Collection[str], now: datetime, *, due_only: bool = True) -> list[str]:
        """The given sources a worker could claim now, in the order to claim them.

        Never-polled sources first, then the most overdue. One read, so that
        the claims that follow each name only their own few sources (naming
        every remaining source in each claim cost a large poll more than all
        its 304s). claim() checks again: another worker may take one meanwhile.
        """
        with self._begin() as conn:
            claimable = conn.execute(_CLAIMABLE[due_only], {"now": now}).scalars()
            wanted = set(names)
            return [name for name in claimable if name in wanted]

    def claim(
        self,
        names: Sequence[str],
        now: datetime,
        *,
        owner: str,
        lease: timedelta,
        due_only: bool = True,
    ) -> dict[str, SourceState]:
        """Lease sources to this worker so that no other worker polls them meanwhile.

        One UPDATE ... RETURNING over a sub-select (FOR UPDATE SKIP LOCKED on
        PostgreSQL, a single write transaction on SQLite): every source goes to
        exactly one worker. A worker that dies keeps its lease until it
        expires, then the source is due again for everyone. Disabled sources
        are never claimed; `due_only=False` (a forced poll) ignores the schedule
        but still respects other workers' leases. Returns each claimed source's
        state, in the order of `names`.
        """
        with self._begin() as conn:
            claimed = conn.execute(
                _CLAIM[conn.dialect.name == "postgresql", due_only],
                {"names": list(names), "now": now, "owner": owner, "lease_until": now + lease},
            )
            got = {row.name: _state_of(row) for row in claimed}
        return {name: got[name] for name in names if name in got}

    def source_state(self, name: str) -> SourceState:
        with self._begin() as conn:
            row = conn.execute(select(*_STATE_COLUMNS).where(sources_table.c.name == name)).one_or_none()
        return SourceState() if row is None else _state_of(row)

    def record_unchanged(self, polls: Sequence[tuple[str, PollRecord]]) -> None:
        """Record polls that brought nothing new (304, or the same body), in one transaction.

        Most polls of a large source list are like this; a statement each is
        what `record_poll` would cost. Each lease ends with it.
        """
        if not polls:
            return
        with self._begin() as conn:
            conn.execute(_RECORD_UNCHANGED, [_poll_parameters(name, poll) for name, poll in polls])

    def record_poll(
        self, source: SourceConfig, poll: PollRecord, feed: ParsedFeed | None = None
    ) -> SaveResult:
        """Record one poll and merge its items, in one transaction; the lease ends with it."""
        return self.record_polls([(source, poll, feed)])[0]

    @property
    def commits_batches(self) -> bool:
        """Whether a batch of polls is best recorded in one transaction (record_polls).

        On SQLite, where one process writes, most of a commit is rewriting the
        same index pages, so one commit per batch saves most of them. On
        PostgreSQL, workers share the tables: a batch's transaction would hold
        the locks of hundreds of new items until its last source is stored,
        while the other workers bringing the same articles wait (with 3 workers
        on the bench farm, 20 of 1,000 sources also failed with deadlocks, before
        rows were locked in one order), so there each poll commits on its own.
        """
        return self.engine.dialect.name == "sqlite"

    def record_polls(
        self, polls: Sequence[tuple[SourceConfig, PollRecord, ParsedFeed | None]]
    ) -> list[SaveResult]:
        """Record polls and merge their items in one transaction, in order; the leases end with it.

        Should it fail, nothing of it is kept, and the caller records the polls
        one by one. See commits_batches for when to use it.
        """
        with self._begin() as conn:
            return [self._record(conn, source, poll, feed) for source, poll, feed in polls]

    def _record(
        self, conn: Connection, source: SourceConfig, poll: PollRecord, feed: ParsedFeed | None
    ) -> SaveResult:
        new = updated = 0
        parameters = _poll_parameters(source.name, poll)
        if feed is not None:
            parameters |= {"p_title": feed.title.replace("\x00", ""), "p_link": feed.link}
        statement = _RECORD_POLL[(poll.error is not None, feed is not None)]
        source_id = conn.execute(statement, parameters).scalar_one()
        if feed is not None and feed.items:
            new, updated = self._merge_items(conn, source, source_id, feed.items, poll.polled_at)
        return SaveResult(new=new, updated=updated, seen=len(feed.items) + feed.unchanged if feed else 0)

    def new_and_changed(self, source: SourceConfig, items: Sequence[Item]) -> tuple[set[str], set[str]]:
        """(url keys of `items` not stored yet, those this source filed and now brings in a new version).

        Read-only, for full_content to fetch only the pages it needs; the same
        comparison as record_poll's, which stays the one that decides.
        """
        batch = {item.url_key: _storable(item) for item in reversed(items)}  # the first occurrence wins
        stored: dict[str, str | None] = {}
        with self._begin() as conn:
            for chunk in _chunks(list(batch), 500):
                query = (
                    select(items_table.c.url_key, item_sources_table.c.content_hash)
                    .select_from(items_table)
                    .outerjoin(sources_table, sources_table.c.id == items_table.c.source_id)
                    .outerjoin(
                        item_sources_table,
                        (item_sources_table.c.item_id == items_table.c.id)
                        & (item_sources_table.c.source_id == items_table.c.source_id)
                        & (sources_table.c.name == source.name),
                    )
                    .where(items_table.c.url_key.in_(chunk))
                )
                stored |= {row.url_key: row.content_hash for row in conn.execute(query)}
        new = {key for key in batch if key not in stored}
        changed = {
            key for key, version in stored.items() if version is not None and version != batch[key].version
        }
        return new, changed

    def enable(self, name: str) -> bool:
        """Re-enable a source disabled by a 410 and poll it at the next tick; False if unknown."""
        with self._begin() as conn:
            found = conn.execute(
                update(sources_table)
                .where(sources_table.c.name == name)
                .values(disabled_reason=None, error_count=0, next_check_at=None)
                .returning(sources_table.c.id)
            ).first()
        return found is not None

    def _merge_items(
        self, conn: Connection, source: SourceConfig, source_id: int, items: Sequence[Item], now: datetime
    ) -> tuple[int, int]:
        """Insert, update or relabel a source's items in a few batched statements: (new, updated).

        Only the source that filed an item (the first to bring it) updates its
        content, and only when its own version changes: a second source that
        carries a teaser or a changing points count never overwrites the
        article. Other sources add their category and tags. An article listed
        twice in one feed counts once (its first occurrence).
        """
        batch: dict[str, Item] = {}
        for item in items:
            batch.setdefault(item.url_key, _storable(item))
        source_labels = _labels_of_source(source)
        ids, filers = self._item_ids(conn, list(batch))
        fresh = [item for key, item in batch.items() if key not in ids]
        inserted = self._insert_items(conn, source, source_id, fresh, now) if fresh else {}
        late_ids, late_filers = self._item_ids(
            conn, [item.url_key for item in fresh if item.url_key not in inserted]
        )
        ids |= late_ids  # inserted by another worker meanwhile: merge into theirs
        filers |= late_filers
        links = self._source_versions(conn, source_id, [ids[key] for key in ids])
        labels = self._labels_of(conn, list(ids.values()))  # an item inserted just now has none yet
        new_links: list[dict[str, Any]] = []
        new_labels: list[dict[str, Any]] = []
        changed_links: list[dict[str, Any]] = []
        relabelled: list[dict[str, Any]] = []
        changed_items: list[tuple[int, dict[str, Any]]] = []
        for key, item in batch.items():
            item_id, version = inserted.get(key) or ids[key], item.version
            previous = links.get(item_id)
            if previous is None:
                new_links.append(
                    {"item_id": item_id, "source_id": source_id, "added_at": now, "content_hash": version}
                )
            elif previous != version:
                changed_links.append({"b_item_id": item_id, "b_source_id": source_id, "b_hash": version})
            missing = _missing_labels(source_labels, item, labels.get(item_id, {}))
            new_labels += [{"item_id": item_id, **label} for label in missing]
            if key in inserted:
                continue
            source_changed = previous is not None and previous != version and filers[item_id] == source_id
            if source_changed:
                changed_items.append((item_id, _changed_values(source, item, now)))
            elif missing or previous is None:
                relabelled.append({"b_item_id": item_id})  # another source's item gains this one's labels
        # In id order, as new items are inserted in key order: two workers never lock rows in a cycle.
        for rows in (new_links, new_labels):
            rows.sort(key=itemgetter("item_id"))
        for rows in (changed_links, relabelled):
            rows.sort(key=itemgetter("b_item_id"))
        for item_id, values in sorted(changed_items, key=itemgetter(0)):
            conn.execute(
                update(items_table)
                .where(items_table.c.id == item_id)
                .values(revision=items_table.c.revision + 1, **values)
            )
        self._insert_rows(conn, item_sources_table, new_links)
        if changed_links:
            conn.execute(_NEW_SOURCE_VERSION, changed_links)
        self._insert_rows(conn, item_labels_table, new_labels)
        if relabelled:  # its pages and listings are published again
            conn.execute(_NEXT_REVISION, relabelled)
        return len(inserted), len(changed_items)

    def _item_ids(
        self, conn: Connection, url_keys: Sequence[str]
    ) -> tuple[dict[str, int], dict[int, int | None]]:
        """({url key: item id}, {item id: id of the source that filed it})"""
        ids: dict[str, int] = {}
        filers: dict[int, int | None] = {}
        for chunk in _chunks(url_keys, 500):
            for url_key, item_id, source_id in self._select_in(conn, _IDS_BY_KEY, "keys", chunk):
                ids[url_key] = item_id
                filers[item_id] = source_id
        return ids, filers

    def _source_versions(self, conn: Connection, source_id: int, item_ids: Sequence[int]) -> dict[int, str]:
        """This source's content hash of each item it already carries."""
        found: dict[int, str] = {}
        for chunk in _chunks(item_ids, 500):
            found |= dict(self._select_in(conn, _SOURCE_VERSIONS, "ids", chunk, source_id=source_id))
        return found

    def _labels_of(self, conn: Connection, item_ids: Sequence[int]) -> dict[int, dict[tuple[str, str], int]]:
        """{item id: {(kind, value): position}}"""
        found: dict[int, dict[tuple[str, str], int]] = defaultdict(dict)
        for chunk in _chunks(item_ids, 500):
            for item_id, kind, value, position in self._select_in(conn, _LABELS_BY_ID, "ids", chunk):
                found[item_id][(kind, value)] = position
        return found

    def _insert_items(
        self,
        conn: Connection,
        source: SourceConfig,
        source_id: int,
        items: Sequence[Item],
        now: datetime,
    ) -> dict[str, int]:
        """Insert new items in one statement: {url key: id}; a key another writer inserted first is absent."""
        rows = [_new_item_values(source, source_id, item, now) for item in items]
        self._suffix_taken_paths(conn, source, rows)
        if conn.dialect.name == "sqlite":  # one writer, this transaction: every key it tries is its own
            self._insert_rows(conn, items_table, rows, conflict_on=("url_key",))
            return self._item_ids(conn, [row["url_key"] for row in rows])[0]
        # Shared by workers: they lock the same new articles in one order.
        rows.sort(key=itemgetter("url_key"))
        statement = (
            _insert_for(conn.dialect)(items_table)
            .on_conflict_do_nothing(index_elements=["url_key"])
            .returning(items_table.c.url_key, items_table.c.id)
        )
        try:
            with conn.begin_nested():  # a savepoint: what fails here fails alone
                return {row.url_key: row.id for row in conn.execute(statement, rows)}
        except IntegrityError:
            # Another worker stored a different article under one of these paths (same title, same
            # day) and committed while this insert waited for it: those paths now show as taken.
            self._suffix_taken_paths(conn, source, rows)
            return {row.url_key: row.id for row in conn.execute(statement, rows)}

    def _suffix_taken_paths(self, conn: Connection, source: SourceConfig, rows: list[dict[str, Any]]) -> None:
        """The same title on the same day, in any category: the later item's slug gets a stable suffix."""
        taken: set[str] = set()
        for chunk in _chunks([row["post_path"] for row in rows], 500):
            taken |= {path for (path,) in self._select_in(conn, _TAKEN_POST_PATHS, "paths", chunk)}
        for row in rows:
            if row["post_path"] in taken:
                row["slug"] = f"{row['slug']}-{layout.short_hash(row['url_key'], 6)}"
                row["archive_path"] = layout.archive_path(source.category, row["published_at"], row["slug"])
                row["post_path"] = layout.post_path_for(row["archive_path"])
            taken.add(row["post_path"])

    def _select_in(
        self, conn: Connection, statement: Select[Any], listed: str, values: Sequence[Any], **fixed: Any
    ) -> Sequence[Any]:
        """Rows of `statement` with its expanding parameter `listed` set to `values`, via the driver.

        SQLAlchemy expands an IN list afresh at every execution (a store's
        lookups ran four per polled source); here the SQL is compiled once per
        dialect and list size, the list padded with NULLs (which match nothing)
        to a power of two so that few sizes occur. For plain values only
        (strings, integers): no bind processor runs.
        """
        size = max(8, 1 << (len(values) - 1).bit_length())
        padded = [*values, *[None] * (size - len(values))]
        key = (statement, conn.dialect.name, size)
        prepared = self._lookups.get(key)
        if prepared is None:
            compiled = statement.compile(dialect=conn.dialect)
            expanded = compiled.construct_expanded_state({listed: padded, **fixed})
            if expanded.processors:
                raise TypeError(f"_select_in takes plain values only, not {sorted(expanded.processors)}")
            order = tuple(expanded.positiontup) if expanded.positiontup is not None else None
            prepared = self._lookups[key] = (expanded.statement, order)
        sql, order = prepared
        parameters = {**fixed, **{f"{listed}_{n}": value for n, value in enumerate(padded, start=1)}}
        driver_parameters = tuple(parameters[name] for name in order) if order is not None else parameters
        return conn.exec_driver_sql(sql, driver_parameters).all()

    def _insert_rows(
        self,
        conn: Connection,
        table: Table,
        rows: Sequence[dict[str, Any]],
        *,
        conflict_on: tuple[str, ...] = (),
    ) -> None:
        """INSERT ... ON CONFLICT DO NOTHING of many rows (all with the same keys) in one executemany.

        Each value still goes through its column type's bind processor, so what
        is stored is what SQLAlchemy would store; but SQLAlchemy's per-row
        parameter handling cost more than SQLite's own work for the bench's
        52,000 new items (bench/README.md).
        """
        if not rows:
            return
        columns = tuple(rows[0])
        key = (table.name, columns, conflict_on)
        prepared = self._inserts.get(key)
        if prepared is None:
            prepared = self._inserts[key] = _DriverInsert.of(conn.dialect, table, columns, conflict_on)
        try:
            parameters = prepared.parameters(rows)
        except (TypeError, ValueError) as error:  # what SQLAlchemy would have reported as a StatementError
            raise StoreError(f"cannot store {table.name}: {error}") from error
        conn.exec_driver_sql(prepared.sql, parameters)

    # -- reading for publish and status ---------------------------------------

    def pending(self) -> list[PendingItem]:
        """Items changed since they were last published, newest first."""
        with self._begin() as conn:
            rows = conn.execute(_PENDING).all()
            items = self._hydrate(conn, rows)
        return [PendingItem(item=item, revision=row.revision) for item, row in zip(items, rows, strict=True)]

    def mark_published(self, pending: Iterable[PendingItem]) -> None:
        """Remember what was written, unless the item changed again meanwhile."""
        rows = [{"b_item_id": entry.item.id, "b_revision": entry.revision} for entry in pending]
        if not rows:
            return
        with self._begin() as conn:
            conn.execute(_MARK_PUBLISHED, rows)  # one executemany: a statement built per item cost 5 s of 75

    def iter_items(self, batch_size: int = 500) -> Iterator[StoredItem]:
        """Every item, newest first, in batches so memory stays flat."""
        last: tuple[datetime, int] | None = None
        while True:
            query = select(items_table).order_by(items_table.c.published_at.desc(), items_table.c.id.desc())
            if last is not None:
                query = query.where(
                    (items_table.c.published_at < last[0])
                    | ((items_table.c.published_at == last[0]) & (items_table.c.id < last[1]))
                )
            with self._begin() as conn:
                rows = conn.execute(query.limit(batch_size)).all()
                batch = self._hydrate(conn, rows)
            yield from batch
            if len(rows) < batch_size:
                return
            last = (rows[-1].published_at, rows[-1].id)

    def listing_ids(self, kind: str, key: str) -> list[int]:
        """The ids of a listing's items, newest first: cheap enough to rank a whole archive."""
        query = _in_listing(select(items_table.c.id), kind, key).order_by(*_NEWEST_FIRST)
        with self._begin() as conn:
            return list(conn.execute(query).scalars())

    def items_by_id(self, ids: Sequence[int]) -> list[StoredItem]:
        """These items, in the order given."""
        rows: dict[int, Any] = {}
        with self._begin() as conn:
            for chunk in _chunks(ids, 500):
                rows |= {row.id: row for row in conn.execute(_ITEMS_BY_ID, {"ids": chunk})}
            return self._hydrate(conn, [rows[item_id] for item_id in ids if item_id in rows])

    def labels(self) -> dict[str, list[str]]:
        """Every category and tag in use: {"category": [...], "tag": [...]}, sorted."""
        with self._begin() as conn:
            rows = conn.execute(
                select(item_labels_table.c.kind, item_labels_table.c.value)
                .distinct()
                .order_by(item_labels_table.c.kind, item_labels_table.c.value)
            )
            found: dict[str, list[str]] = {CATEGORY: [], TAG: []}
            for row in rows:
                found.setdefault(row.kind, []).append(row.value)
        return found

    def queue_lag(self, now: datetime) -> timedelta:
        """How long the most overdue enabled source has been waiting past its due time."""
        with self._begin() as conn:
            oldest: datetime | None = conn.execute(
                select(func.min(sources_table.c.next_check_at, type_=UTCDateTime)).where(
                    sources_table.c.disabled_reason.is_(None), sources_table.c.next_check_at <= now
                )
            ).scalar_one_or_none()
        return timedelta(0) if oldest is None else now - oldest

    def status(self) -> list[SourceStatus]:
        counts = (
            select(item_sources_table.c.source_id, func.count().label("item_count"))
            .group_by(item_sources_table.c.source_id)
            .subquery()
        )
        with self._begin() as conn:
            rows = conn.execute(
                select(sources_table, func.coalesce(counts.c.item_count, 0).label("item_count"))
                .outerjoin(counts, counts.c.source_id == sources_table.c.id)
                .order_by(sources_table.c.name)
            ).all()
        return [
            SourceStatus(
                name=row.name,
                url=row.url,
                config_url=row.config_url,
                last_polled_at=row.last_polled_at,
                last_status=row.last_status,
                items=row.item_count,
                error_count=row.error_count,
                last_error=row.last_error,
                next_check_at=row.next_check_at,
                disabled_reason=row.disabled_reason,
                moved_to=row.moved_to,
            )
            for row in rows
        ]

    def _hydrate(self, conn: Connection, rows: Sequence[Any]) -> list[StoredItem]:
        """Turn item rows into StoredItems with their labels and sources (two batched queries)."""
        ids = [row.id for row in rows]
        labels: dict[int, dict[str, list[str]]] = defaultdict(lambda: {CATEGORY: [], TAG: []})
        refs: dict[int, list[SourceRef]] = defaultdict(list)
        for chunk in _chunks(ids, 500):
            for label in conn.execute(
                select(item_labels_table)
                .where(item_labels_table.c.item_id.in_(chunk))
                .order_by(item_labels_table.c.item_id, item_labels_table.c.position)
            ):
                labels[label.item_id][label.kind].append(label.value)
            for ref in conn.execute(
                select(item_sources_table.c.item_id, sources_table)
                .join(sources_table, sources_table.c.id == item_sources_table.c.source_id)
                .where(item_sources_table.c.item_id.in_(chunk))
                .order_by(item_sources_table.c.item_id, item_sources_table.c.added_at, sources_table.c.id)
            ):
                refs[ref.item_id].append(
                    SourceRef(name=ref.name, title=ref.title or ref.name, url=ref.url, link=ref.link)
                )
        return [
            StoredItem(
                id=row.id,
                entry_id=row.entry_id,
                slug=row.slug,
                archive_path=row.archive_path,
                url=row.url,
                url_key=row.url_key,
                title=row.title,
                summary=row.summary,
                content=row.content,
                published=_with_offset(row.published_at, row.published_offset),
                updated=_with_offset(row.updated_at, row.updated_offset),
                first_seen=row.first_seen_at,
                authors=tuple(json.loads(row.authors)),
                category=row.category,
                categories=tuple(dict.fromkeys([row.category, *labels[row.id][CATEGORY]])),
                tags=tuple(labels[row.id][TAG]),
                sources=tuple(refs[row.id]),
            )
            for row in rows
        ]

    def _begin(self) -> Any:
        return _Transaction(self.engine)


class _Transaction:
    """`engine.begin()` that reports database failures as StoreError."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._context: Any = None

    def __enter__(self) -> Connection:
        try:
            self._context = self._engine.begin()
            return self._context.__enter__()  # type: ignore[no-any-return]
        except SQLAlchemyError as error:
            raise StoreError(f"database unavailable: {_first_line(error)}") from None

    def __exit__(self, *exc_info: Any) -> bool:
        try:
            suppressed = bool(self._context.__exit__(*exc_info))
        except SQLAlchemyError as error:
            raise StoreError(_first_line(error)) from error
        if isinstance(exc_info[1], SQLAlchemyError):
            raise StoreError(_first_line(exc_info[1])) from exc_info[1]
        return suppressed


def _poll_parameters(name: str, poll: PollRecord) -> dict[str, Any]:
    """The bind values of _record_poll_statement (each variant uses those it names)."""
    return {
        "p_name": name,
        "p_url": poll.url,
        "p_last_polled_at": poll.polled_at,
        "p_last_status": poll.status,
        "p_next_check_at": poll.next_check_at,
        "p_moved_to": poll.moved_to,
        "p_moved_count": poll.moved_count,
        "p_disabled_reason": poll.disabled_reason,
        "p_last_error": poll.error,
        "p_etag": poll.etag,
        "p_last_modified": poll.last_modified,
        "p_body_hash": poll.body_hash,
        "p_entry_digests": poll.entry_digests,
    }


def _record_poll_statement(failed: bool, with_feed: bool) -> Any:
    """The UPDATE of a polled source (without RETURNING, for executemany); the lease ends with it.

    Validators are kept on success only, the feed's title and entry digests with a feed only.
    """
    table = sources_table
    values: dict[str, Any] = {
        name: bindparam(f"p_{name}")
        for name in ("url", "last_polled_at", "last_status", "next_check_at", "moved_to", "moved_count",
                     "disabled_reason")
    }  # fmt: skip
    values |= {"lease_owner": None, "lease_until": None}
    if failed:
        values |= {"last_error": bindparam("p_last_error"), "error_count": table.c.error_count + 1}
    else:
        values |= {"last_error": None, "error_count": 0}
        values |= {name: bindparam(f"p_{name}") for name in ("etag", "last_modified", "body_hash")}
    if with_feed:
        values |= {name: bindparam(f"p_{name}") for name in ("title", "link", "entry_digests")}
    return update(table).where(table.c.name == bindparam("p_name")).values(**values)


# Statements built once: building one per poll cost about a millisecond each.
_RECORD_POLL = {
    (failed, with_feed): _record_poll_statement(failed, with_feed).returning(sources_table.c.id)
    for failed in (False, True)
    for with_feed in (False, True)
}
_RECORD_UNCHANGED = _record_poll_statement(failed=False, with_feed=False)  # 304s, a batch at a time


def _claimable_where(due_only: bool) -> list[ColumnElement[bool]]:
    """What makes a source claimable at :now: enabled, not leased, and (when `due_only`) due."""
    table = sources_table
    now = bindparam("now", type_=UTCDateTime)
    conditions: list[ColumnElement[bool]] = [
        table.c.disabled_reason.is_(None),
        table.c.lease_until.is_(None) | (table.c.lease_until <= now),
    ]
    if due_only:
        conditions.append(table.c.next_check_at.is_(None) | (table.c.next_check_at <= now))
    return conditions


def _claimable_statement(due_only: bool) -> Select[tuple[str]]:
    """Sources a worker may lease at :now, in claim order (see Store.claimable)."""
    table = sources_table
    return (
        select(table.c.name)
        .where(*_claimable_where(due_only))
        .order_by(table.c.next_check_at.is_not(None), table.c.next_check_at, table.c.id)
    )


def _claim_statement(postgresql: bool, due_only: bool) -> Update:
    """Lease those of :names still claimable to :owner until :lease_until (see Store.claim)."""
    candidates = select(sources_table.c.id).where(
        *_claimable_where(due_only), sources_table.c.name.in_(bindparam("names", expanding=True))
    )
    if postgresql:
        candidates = candidates.with_for_update(skip_locked=True)
    return (
        update(sources_table)
        .where(sources_table.c.id.in_(candidates.scalar_subquery()))
        .values(lease_owner=bindparam("owner"), lease_until=bindparam("lease_until", type_=UTCDateTime))
        .returning(*_STATE_COLUMNS)
    )


_CLAIMABLE = {due_only: _claimable_statement(due_only) for due_only in (False, True)}
_CLAIM = {
    (postgresql, due_only): _claim_statement(postgresql, due_only)
    for postgresql in (False, True) for due_only in (False, True)
}  # fmt: skip

# Statements of every merge, built once: lookups by many keys (sent by Store._select_in) and the
# executemany UPDATEs of versions and revisions.
_IDS_BY_KEY = select(items_table.c.url_key, items_table.c.id, items_table.c.source_id).where(
    items_table.c.url_key.in_(bindparam("keys", expanding=True))
)
_SOURCE_VERSIONS = select(item_sources_table.c.item_id, item_sources_table.c.content_hash).where(
    item_sources_table.c.source_id == bindparam("source_id"),
    item_sources_table.c.item_id.in_(bindparam("ids", expanding=True)),
)
_LABELS_BY_ID = select(
    item_labels_table.c.item_id,
    item_labels_table.c.kind,
    item_labels_table.c.value,
    item_labels_table.c.position,
).where(item_labels_table.c.item_id.in_(bindparam("ids", expanding=True)))
_NEW_SOURCE_VERSION = (
    update(item_sources_table)
    .where(
        item_sources_table.c.item_id == bindparam("b_item_id"),
        item_sources_table.c.source_id == bindparam("b_source_id"),
    )
    .values(content_hash=bindparam("b_hash"))
)
_NEXT_REVISION = (
    update(items_table)
    .where(items_table.c.id == bindparam("b_item_id"))
    .values(revision=items_table.c.revision + 1)
)
_TAKEN_POST_PATHS = select(items_table.c.post_path).where(
    items_table.c.post_path.in_(bindparam("paths", expanding=True))
)

# Statements of publishing, built once.
_NEWEST_FIRST = (items_table.c.published_at.desc(), items_table.c.id.desc())
_ITEMS_BY_ID = select(items_table).where(items_table.c.id.in_(bindparam("ids", expanding=True)))
_MARK_PUBLISHED = (
    update(items_table)
    .where(items_table.c.id == bindparam("b_item_id"), items_table.c.revision == bindparam("b_revision"))
    .values(published_revision=bindparam("b_revision"))
)
# The items waiting to be published, found through ix_items_pending (a partial index of their ids
# alone) rather than by scanning the archive in listing order, which is what SQLite chooses for
# the plain WHERE ... ORDER BY.
_PENDING = (
    select(items_table)
    .where(
        items_table.c.id.in_(
            select(items_table.c.id).where(items_table.c.revision != items_table.c.published_revision)
        )
    )
    .order_by(*_NEWEST_FIRST)
)


def _in_listing(query: Any, kind: str, key: str) -> Any:
    """Restrict a query on items to a listing: home (everything), a category or a tag."""
    if kind == "home":
        return query
    labelled = select(item_labels_table.c.item_id).where(
        item_labels_table.c.kind == kind, item_labels_table.c.value == key
    )
    return query.where(items_table.c.id.in_(labelled))


def _insert_for(dialect: Dialect) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT DO NOTHING (SQLite and PostgreSQL)."""
    if dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql  # 50 ms of start-up that SQLite users need not pay

        return postgresql.insert
    from sqlalchemy.dialects import sqlite

    return sqlite.insert


@dataclass(frozen=True, slots=True)
class _DriverInsert:
    """An INSERT compiled once for a dialect, and how to turn row dicts into the driver's parameters."""

    sql: str
    names: tuple[str, ...]  # bind names in the order the driver wants them (or the keys it wants)
    processors: tuple[Callable[[Any], Any] | None, ...]
    positional: bool

    @classmethod
    def of(
        cls, dialect: Dialect, table: Table, columns: tuple[str, ...], conflict_on: tuple[str, ...]
    ) -> _DriverInsert:
        statement = _insert_for(dialect)(table).on_conflict_do_nothing(
            index_elements=list(conflict_on) or None
        )
        compiled = statement.compile(dialect=dialect, column_keys=list(columns))
        names = tuple(compiled.positiontup or ()) if compiled.positional else columns
        return cls(
            sql=compiled.string,
            names=names,
            processors=tuple(
                table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
            ),
            positional=compiled.positional,
        )

    def parameters(self, rows: Sequence[dict[str, Any]]) -> list[Any]:
        columns = []
        for name, process in zip(self.names, self.processors, strict=True):
            values = [row[name] for row in rows]
            if process is not None:  # rows share values (the poll's time in every row): convert each once
                done: dict[int, Any] = {}
                values = [
                    done[key] if (key := id(value)) in done else done.setdefault(key, process(value))
                    for value in values
                ]
            columns.append(values)
        if self.positional:
            return list(zip(*columns, strict=True))
        return [dict(zip(self.names, values, strict=True)) for values in zip(*columns, strict=True)]


def _chunks(values: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
