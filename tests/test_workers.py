"""Several worker processes sharing one database: each due source polled by exactly one of them.

Real processes (`aggregator run --once`) against the real PostgreSQL (and a
SQLite file, which must work for processes on one machine too), 200 loopback
sources with articles shared between sources, and a worker killed with
SIGKILL in the middle of a poll.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

from aggregator.store import Store
from tests.feedserver import FeedServer
from tests.sample_feeds import Article, rss2

SOURCES = 200


def _articles(n: int) -> list[Article]:
    """Three articles of its own per source, and one shared with the next source under another URL form."""
    own = [
        Article(f"Story {n}-{k}", f"https://news.example.com/{n}/{k}", "Mon, 14 Mar 2022 10:00:00 +0800")
        for k in range(3)
    ]
    shared = n // 2
    variant = (
        f"http://news.example.com/shared/{shared}?utm_source=s{n}"
        if n % 2
        else f"https://news.example.com/shared/{shared}"
    )
    return [*own, Article(f"Shared {shared}", variant, "Mon, 14 Mar 2022 11:00:00 +0800")]


WIRE_DATE = "Mon, 14 Mar 2022 09:00:00 +0800"
DISTINCT = SOURCES * 3 + SOURCES // 2


def _config(tmp_path: Path, server: FeedServer, count: int, lease: str = "5m") -> Path:
    lines = [
        'site: {title: Workers, base_url: "https://news.example.org/"}',
        f'database: "sqlite:///{tmp_path / "workers.db"}"',
        f"output: {{dir: {tmp_path / 'out'}}}",
        "defaults: {interval: 1h, timeout: 10s, deadline: 20s}",
        f"polling: {{workers: 4, per_host: 4, lease: {lease}}}",
        "sources:",
    ]
    lines += [f'  - {{name: s{n}, url: "{server.url(f"/s{n}.xml")}", category: news}}' for n in range(count)]
    config = tmp_path / "workers.yaml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


def _worker(config: Path, database_url: str, *args: str) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AGGREGATOR_")}
    environment["AGGREGATOR_DATABASE_URL"] = database_url
    return subprocess.Popen(
        [sys.executable, "-m", "aggregator", "-c", str(config), "run", "--once", "--no-publish", *args],
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


@contextmanager
def _workers(config: Path, database_url: str, count: int) -> Iterator[list[subprocess.Popen[str]]]:
    """Start `count` workers at once; none outlives the test, whatever happens."""
    started = [_worker(config, database_url) for _ in range(count)]
    try:
        yield started
    finally:
        for worker in started:
            if worker.poll() is None:
                worker.kill()
            worker.communicate()


def _finish(worker: subprocess.Popen[str]) -> str:
    _, stderr = worker.communicate(timeout=120)
    assert worker.returncode == 0, stderr
    return stderr


def _items(database_url: str) -> tuple[int, int]:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        total = conn.execute(text("SELECT count(*) FROM items")).scalar_one()
        distinct = conn.execute(text("SELECT count(DISTINCT url_key) FROM items")).scalar_one()
    engine.dispose()
    return total, distinct


def _hits(server: FeedServer, count: int) -> Counter[str]:
    return Counter({f"s{n}": len(server.hits(f"/s{n}.xml")) for n in range(count)})


def test_three_workers_poll_every_source_exactly_once(
    tmp_path: Path, feed_server: FeedServer, database_url: str
) -> None:
    for n in range(SOURCES):
        feed_server.serve(f"/s{n}.xml", rss2(f"Source {n}", "https://news.example.com/", _articles(n)))
    config = _config(tmp_path, feed_server, SOURCES)

    with _workers(config, database_url, 3) as workers:
        logs = [_finish(worker) for worker in workers]

    assert set(_hits(feed_server, SOURCES).values()) == {1}, "every source polled, and by one worker only"
    polled_by = [log.count(" poll source=") for log in logs]
    assert sum(polled_by) == SOURCES
    assert sum(1 for count in polled_by if count > 0) >= 2, f"the work was shared: {polled_by}"
    assert _items(database_url) == (DISTINCT, DISTINCT), "no duplicate item, nothing lost"

    with _workers(config, database_url, 3) as again:
        for worker in again:
            _finish(worker)
    assert set(_hits(feed_server, SOURCES).values()) == {1}, "nothing is due again within the interval"


def test_a_worker_killed_mid_poll_loses_nothing(
    tmp_path: Path, feed_server: FeedServer, database_url: str
) -> None:
    count = 12
    for n in range(count):
        feed_server.serve(
            f"/s{n}.xml", rss2(f"Source {n}", "https://news.example.com/", _articles(n)), delay=0.5
        )
    config = _config(tmp_path, feed_server, count, lease="3s")

    victim = _worker(config, database_url)
    deadline = time.monotonic() + 30
    while sum(_hits(feed_server, count).values()) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    assert victim.returncode == -signal.SIGKILL

    _finish(_worker(config, database_url))  # leases still held by the dead worker: those wait
    time.sleep(3.5)  # the dead worker's leases expire
    _finish(_worker(config, database_url))

    engine = create_engine(database_url)
    with engine.connect() as conn:
        statuses = conn.execute(text("SELECT name, last_status FROM sources")).all()
    engine.dispose()
    assert sorted(status for _, status in statuses) == [200] * count, statuses
    expected = count * 3 + count // 2
    assert _items(database_url) == (expected, expected)


def test_publishers_take_turns(tmp_path: Path, feed_server: FeedServer, database_url: str) -> None:
    """While one process holds the publish lock, another's publish waits and writes nothing."""
    feed_server.serve("/s0.xml", rss2("Source 0", "https://news.example.com/", _articles(0)))
    config = _config(tmp_path, feed_server, 1)
    with _workers(config, database_url, 1) as [poller]:
        _finish(poller)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AGGREGATOR_")}
    environment["AGGREGATOR_DATABASE_URL"] = database_url
    holder = Store.open(database_url)
    try:
        with holder.publishing():
            publisher = subprocess.Popen(
                [sys.executable, "-m", "aggregator", "-c", str(config), "publish"],
                stderr=subprocess.PIPE,
                text=True,
                env=environment,
            )
            try:
                time.sleep(3)
                assert publisher.poll() is None, "the second publisher waits for the lock"
                assert not (tmp_path / "out").exists(), "and writes nothing meanwhile"
            except BaseException:
                publisher.kill()
                raise
        _finish(publisher)
    finally:
        holder.close()
    assert (tmp_path / "out" / "atom.xml").exists()


def test_workers_bringing_the_same_articles_in_other_orders_all_store_them(
    tmp_path: Path, feed_server: FeedServer, database_url: str
) -> None:
    """Wire stories carried by every source, each in its own order: no worker waits on, or deadlocks
    with, another's locks, so no source fails and every article is stored once."""
    count, wire = 60, 40
    for n in range(count):
        order = random.Random(n).sample(range(wire), wire)
        articles = [
            Article(
                f"Wire {k}",
                f"https://wire.example.com/{k}?utm_source=s{n}",
                "Mon, 14 Mar 2022 09:00:00 +0800",
            )
            for k in order
        ]
        feed_server.serve(f"/s{n}.xml", rss2(f"Source {n}", "https://news.example.com/", articles))
    config = _config(tmp_path, feed_server, count)

    with _workers(config, database_url, 3) as workers:
        logs = [_finish(worker) for worker in workers]

    failures = [
        line for log in logs for line in log.splitlines() if "error=" in line or "cannot store" in line
    ]
    assert failures == []
    assert sum(log.count(" poll source=") for log in logs) == count
    assert _items(database_url) == (wire, wire)
