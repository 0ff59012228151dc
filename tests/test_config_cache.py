"""The config cache: a command whose config file is unchanged starts without reading the YAML again,
and never from a config other than the one a full read would give."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zoneinfo
from dataclasses import replace
from pathlib import Path

import pytest

import aggregator.config
from aggregator.config import load_config
from aggregator.config_file import Config, load_config_cached
from aggregator.filters import SourceFilters

CONFIG = """
site: {title: Cache test, base_url: "https://news.example.org/", language: zh}
database: "sqlite:///state/aggregator.db"
output: {dir: site}
defaults: {interval: 10m, timeout: 5s}
polling: {workers: 4, per_host: 3, lease: 10m, parse_processes: 0}
categories: {world: {title: 世界}}
sources:
  - name: wire
    url: "https://wire.example.com/feed.xml"
    category: world
    tags: [wire, 滚动]
    timezone: Asia/Shanghai
    full_content: {selector: "div.article", remove: [".share"]}
  - name: filtered
    url: "https://other.example.com/rss"
    category: world
    exclude: ["(?i)sponsored"]
    rewrite: [{pattern: "Read more.*", replace: "(more)"}, {remove: "div.ad"}]
"""

# Loads the config as a command does and says what it got and whether it read the YAML.
PROBE = """
import json, sys
from pathlib import Path
from aggregator.config_file import load_config_cached
from aggregator.filters import SourceFilters
config = load_config_cached(Path(sys.argv[1]))
print(json.dumps({
    "validated": "pydantic" in sys.modules or "yaml" in sys.modules,
    "database": config.database_url,
    "output": str(config.output_dir),
    "sources": [[s.name, s.category, list(s.tags), s.interval.total_seconds()] for s in config.sources],
    "workers": config.workers,
}, ensure_ascii=False))
"""


def _probe(config: Path, cache: Path, cwd: Path, **env: str) -> dict[str, object]:
    """What a new process (a command) loads from `config`, with its cache under `cache`."""
    environment = {key: value for key, value in os.environ.items() if key != "AGGREGATOR_DATABASE_URL"}
    environment |= {"XDG_CACHE_HOME": str(cache), **env}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(config)],
        env=environment,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def zoneinfo_file(zone: str) -> str:
    """A compiled time zone file, from the tzdata package or the system."""
    import importlib.resources

    try:
        return str(importlib.resources.files("tzdata.zoneinfo").joinpath(zone))
    except ModuleNotFoundError:
        return f"/usr/share/zoneinfo/{zone}"


def _rewritten(filters: SourceFilters, html: str) -> str:
    for rule in filters.rewrite:
        html = rule.apply(html)
    return html


def test_an_unchanged_config_is_read_back_without_validating_it_again(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    cache = tmp_path / "cache"
    first = _probe(config, cache, tmp_path)
    second = _probe(config, cache, tmp_path)
    assert first["validated"] is True
    assert second["validated"] is False
    assert {**second, "validated": True} == first
    assert first["sources"] == [["wire", "world", ["wire", "滚动"], 600.0], ["filtered", "world", [], 600.0]]


def _without_filters(config: Config) -> Config:
    """Compiled selectors compare by identity: filters are compared by what they do."""
    return replace(config, sources=tuple(replace(source, filters=None) for source in config.sources))


def test_the_cached_config_is_the_one_a_full_read_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    load_config_cached(config)  # a miss: read, validated and kept

    def no_second_read(*_: object) -> Config:
        raise AssertionError("the YAML was read again")

    monkeypatch.setattr(aggregator.config, "read_config", no_second_read)
    cached = load_config_cached(config)
    monkeypatch.undo()
    read = load_config(config)
    assert _without_filters(cached) == _without_filters(read)
    cached_filters, read_filters = cached.sources[1].filters, read.sources[1].filters
    assert cached_filters is not None and read_filters is not None
    assert cached_filters.description() == read_filters.description()
    page = '<p>News.</p><div class="ad">Buy!</div><p>Read more at the source</p>'
    assert _rewritten(cached_filters, page) == _rewritten(read_filters, page) == "<p>News.</p><p>(more)</p>"


def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    cache = tmp_path / "cache"
    _probe(config, cache, tmp_path)
    config.write_text(CONFIG.replace("workers: 4", "workers: 5"), encoding="utf-8")
    again = _probe(config, cache, tmp_path)
    assert again["validated"] is True and again["workers"] == 5
    config.write_text(CONFIG.replace("workers: 4", "workers: 0"), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "aggregator", "-c", str(config), "status"],
        env={**os.environ, "XDG_CACHE_HOME": str(cache)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "polling.workers" in done.stderr


def test_the_database_url_and_relative_paths_are_worked_out_at_every_start(tmp_path: Path) -> None:
    """The environment and symbolic links may change while the file does not."""
    first_home, second_home = tmp_path / "first", tmp_path / "second"
    for home in (first_home, second_home):
        home.mkdir()
        (home / "config.yaml").write_text(CONFIG, encoding="utf-8")
    link = tmp_path / "current"
    link.symlink_to(first_home)
    cache = tmp_path / "cache"
    config = link / "config.yaml"
    first = _probe(config, cache, tmp_path)
    assert first["output"] == str(first_home / "site")
    assert first["database"] == f"sqlite:///{first_home / 'state' / 'aggregator.db'}"
    link.unlink()
    link.symlink_to(second_home)
    moved = _probe(config, cache, tmp_path)
    assert moved["validated"] is False  # same path, same bytes: the cache answers...
    assert moved["output"] == str(second_home / "site")  # ...but the paths are where they are now
    assert moved["database"] == f"sqlite:///{second_home / 'state' / 'aggregator.db'}"
    elsewhere = _probe(config, cache, tmp_path, AGGREGATOR_DATABASE_URL="sqlite:////var/tmp/other.db")
    assert elsewhere["database"] == "sqlite:////var/tmp/other.db"


def test_one_relative_path_in_two_folders_points_into_each(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    for folder in ("a", "b", "a"):
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / "config.yaml").write_text(CONFIG, encoding="utf-8")
        loaded = _probe(Path("config.yaml"), cache, tmp_path / folder)
        assert loaded["database"] == f"sqlite:///{tmp_path / folder / 'state' / 'aggregator.db'}"


def test_a_command_started_in_a_deleted_folder_still_runs(tmp_path: Path) -> None:
    """A deploy may remove the folder a cron job's shell stood in."""
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    gone = tmp_path / "gone"
    gone.mkdir()
    command = "import os, sys; os.rmdir(os.getcwd()); from aggregator.cli import run; run()"
    for _ in range(2):  # the second start reads the cache
        done = subprocess.run(
            [sys.executable, "-c", command, "-c", str(config), "status"],
            cwd=gone if gone.exists() else tmp_path,
            env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")},
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        assert "wire" in done.stdout
        assert len(list((tmp_path / "cache" / "aggregator").glob("config-*.pickle"))) == 1
        gone.mkdir(exist_ok=True)


def test_a_time_zone_gone_from_the_machine_is_a_config_error_even_when_cached(tmp_path: Path) -> None:
    """Validation also depends on the machine's time zone data, which the file does not show."""
    zones = tmp_path / "zones"
    (zones / "Custom").mkdir(parents=True)
    shutil.copy(Path(zoneinfo_file("Asia/Shanghai")), zones / "Custom" / "Zone")
    config = tmp_path / "config.yaml"
    config.write_text(
        CONFIG.replace("language: zh}", "language: zh, timezone: Custom/Zone}"), encoding="utf-8"
    )
    environment = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}

    def command(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "aggregator", "-c", str(config), *args],
            env={**environment, **env},
            capture_output=True,
            text=True,
        )

    with_zones = os.pathsep.join([str(zones), *zoneinfo.TZPATH])
    assert command("status", PYTHONTZPATH=with_zones).returncode == 0  # validated and kept
    for args in (["status"], ["check"]):
        gone = command(*args)
        assert gone.returncode == 2, gone.stderr
        assert "unknown time zone 'Custom/Zone'" in gone.stderr


def _kept_entry(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(config file, cache folder, the entry a first start kept for it)."""
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    cache = tmp_path / "cache"
    _probe(config, cache, tmp_path)
    (entry,) = (cache / "aggregator").iterdir()
    return config, cache, entry


def test_a_damaged_or_unwritable_cache_only_costs_a_full_read(tmp_path: Path) -> None:
    config, cache, entry = _kept_entry(tmp_path)
    expected = {**_probe(config, cache, tmp_path), "validated": True}  # what a full read gives
    entry.write_bytes(entry.read_bytes()[:100])  # cut short, as by a full disk
    assert _probe(config, cache, tmp_path) == expected  # read in full, and written again
    assert _probe(config, cache, tmp_path) == {**expected, "validated": False}
    unwritable = tmp_path / "not-a-folder"
    unwritable.write_text("a file where the cache folder would be")
    assert _probe(config, unwritable, tmp_path) == expected


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_an_entry_another_user_wrote_is_not_loaded(tmp_path: Path) -> None:
    """Loading a pickle runs code: only the user's own entries are read."""
    config, cache, entry = _kept_entry(tmp_path)
    os.chown(entry, 65534, 65534)
    assert _probe(config, cache, tmp_path)["validated"] is True


def test_an_entry_that_is_a_fifo_or_a_link_is_not_read(tmp_path: Path) -> None:
    """A FIFO would block the command; a link may point at anything."""
    config, cache, entry = _kept_entry(tmp_path)
    kept = tmp_path / "kept.pickle"
    entry.rename(kept)
    os.mkfifo(entry)
    assert _probe(config, cache, tmp_path)["validated"] is True  # and it did not block (timeout)
    entry.unlink()
    entry.symlink_to(kept)
    assert _probe(config, cache, tmp_path)["validated"] is True
