"""Poll the sources of a YAML config once, in this process, and read back what was stored."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from aggregator.config import load_config
from aggregator.models import StoredItem
from aggregator.store import Store
from aggregator.update import Polling, update_sources

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SITE = 'site: {title: T, base_url: "https://archive.example.org/", timezone: Asia/Shanghai}\n'


def poll_once(tmp_path: Path, database_url: str, sources_yaml: str, *, workers: int) -> list[StoredItem]:
    """Every source of `sources_yaml` polled once by the real worker; each must succeed."""
    config = tmp_path / "config.yaml"
    config.write_text(SITE + "sources:\n" + sources_yaml, encoding="utf-8")
    sources = load_config(config).sources
    store = Store.open(database_url)
    try:
        store.sync_sources(sources)
        results = update_sources(
            store, sources, lambda: NOW, polling=Polling(workers=workers), due_only=False
        )
        assert {result.source: result.error for result in results} == {
            source.name: None for source in sources
        }
        return list(store.iter_items())
    finally:
        store.close()
