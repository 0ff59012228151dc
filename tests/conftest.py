"""Shared fixtures: a loopback feed server, real databases, the Atom schema."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from lxml import etree
from sqlalchemy import create_engine, text

from tests.feedserver import FeedServer, running_feed_server

SHARED = Path(__file__).resolve().parents[2] / "shared"
ATOM_RNG = SHARED / "schemas" / "atom.rng"
POSTGRES_ENV = "AGGREGATOR_TEST_DATABASE_URL"


@pytest.fixture(scope="session", autouse=True)
def config_cache_of_the_tests(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Commands the tests run keep their config cache (config_file.py) here, not in the user's home."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        yield


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    with running_feed_server() as server:
        yield server


def _postgres_schema_url(base_url: str) -> Iterator[str]:
    """A fresh schema per test on the real PostgreSQL, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base_url else "?"
    try:
        yield f"{base_url}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each store test runs on a SQLite file and on the real PostgreSQL when configured."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'aggregator.db'}"
        return
    base_url = os.environ.get(POSTGRES_ENV)
    if not base_url:
        pytest.skip(f"set {POSTGRES_ENV} to run this test on PostgreSQL (.ci/run does)")
    yield from _postgres_schema_url(base_url)


@pytest.fixture
def postgresql_url() -> Iterator[str]:
    """A fresh schema on the real PostgreSQL, for what only a database shared by writers can show."""
    base_url = os.environ.get(POSTGRES_ENV)
    if not base_url:
        pytest.skip(f"set {POSTGRES_ENV} to run this test on PostgreSQL (.ci/run does)")
    yield from _postgres_schema_url(base_url)


@pytest.fixture(scope="session")
def atom_schema() -> etree.RelaxNG:
    if not ATOM_RNG.exists():
        pytest.skip(f"{ATOM_RNG} not found (the shared/ folder sits beside the repository)")
    return etree.RelaxNG(etree.parse(str(ATOM_RNG)))
