"""The command line as an operator uses it: exit codes, one-line errors, check, status, the daemon."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.feedserver import FeedServer
from tests.httpserver import free_port
from tests.sample_feeds import Article, rss2

ARTICLES = [
    Article("First story", "https://news.example.com/1", "Mon, 14 Mar 2022 10:55:11 +0800", "One."),
    Article("Second story", "https://news.example.com/2", "Mon, 14 Mar 2022 11:55:11 +0800", "Two."),
]


def _config(tmp_path: Path, server: FeedServer, interval: str = "30m") -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
site: {{title: CLI test, base_url: "https://news.example.org/", language: en}}
database: "sqlite:///state/aggregator.db"
output: {{dir: site}}
defaults: {{interval: {interval}, timeout: 5s}}
sources:
  - {{name: wire, url: "{server.url("/wire.xml")}", category: world, tags: [wire]}}
  - {{name: missing, url: "{server.url("/missing.xml")}", category: world}}
""",
        encoding="utf-8",
    )
    return config


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AGGREGATOR_")}
    return subprocess.run(
        [sys.executable, "-m", "aggregator", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environment, **(env or {})},
    )


def test_check_prints_a_summary(tmp_path: Path, feed_server: FeedServer) -> None:
    config = _config(tmp_path, feed_server)
    completed = _run("-c", str(config), "check")
    assert completed.returncode == 0, completed.stderr
    assert f"{config}: OK" in completed.stdout
    assert "wire" in completed.stdout and "every 30m" in completed.stdout
    assert not (tmp_path / "state").exists(), "check must not touch the database"


def test_bad_config_exits_2_with_one_line_per_problem(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("site: {title: x, base_url: 'https://x.org/'}\nsources: [{name: a, url: nope}]\n")
    completed = _run("-c", str(config), "run", "--once")
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert lines[0].startswith(f"aggregator: config error: {config}: source 'a': url: must be")
    assert any("source 'a': category: Field required" in line for line in lines)
    assert "Traceback" not in completed.stderr


def test_config_from_environment_and_missing_file(tmp_path: Path, feed_server: FeedServer) -> None:
    config = _config(tmp_path, feed_server)
    assert _run("check", env={"AGGREGATOR_CONFIG": str(config)}).returncode == 0
    completed = _run("-c", str(tmp_path / "absent.yaml"), "check")
    assert completed.returncode == 2 and "cannot read config" in completed.stderr


def test_unreachable_database_exits_3(tmp_path: Path, feed_server: FeedServer) -> None:
    config = _config(tmp_path, feed_server)
    unreachable = "postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2"
    completed = _run("-c", str(config), "status", env={"AGGREGATOR_DATABASE_URL": unreachable})
    assert completed.returncode == 3
    assert completed.stderr.startswith("aggregator: database error: cannot open database")
    assert len(completed.stderr.strip().splitlines()) == 1


def test_poll_status_and_publish(tmp_path: Path, feed_server: FeedServer) -> None:
    feed_server.serve("/wire.xml", rss2("Wire", "https://news.example.com/", ARTICLES))
    config = _config(tmp_path, feed_server)

    assert _run("-c", str(config), "poll").returncode == 2  # neither --all nor names
    unknown = _run("-c", str(config), "poll", "nope")
    assert unknown.returncode == 2 and "no source named 'nope'" in unknown.stderr

    polled = _run("-c", str(config), "poll", "--all", "--no-publish")
    assert polled.returncode == 0, "a failing source is not a failing run"
    assert "poll source=wire status=200 new=2" in polled.stderr
    assert "poll source=missing status=404 error='HTTP 404" in polled.stderr
    assert not (tmp_path / "site").exists(), "--no-publish writes no output"
    assert _run("-c", str(config), "poll", "--all").returncode == 0

    status = _run("-c", str(config), "status")
    assert status.returncode == 0
    header, *rows = status.stdout.splitlines()
    assert header.split()[:4] == ["SOURCE", "LAST", "POLL", "HTTP"]
    by_name = {row.split()[0]: row for row in rows}
    assert " 304 " in by_name["wire"] and " 2 " in by_name["wire"]  # the last poll was conditional
    assert " 404 " in by_name["missing"] and "HTTP 404" in by_name["missing"]

    index = tmp_path / "site" / "world" / "index.html"
    assert "Second story" in index.read_text(encoding="utf-8")
    index.unlink()
    assert _run("-c", str(config), "publish").returncode == 0
    assert not index.exists(), "an incremental publish with nothing new writes nothing"
    assert _run("-c", str(config), "publish", "--full").returncode == 0
    assert index.exists()

    upgraded = _run("-c", str(config), "db", "upgrade")
    assert upgraded.returncode == 0 and "latest schema" in upgraded.stdout


def test_daemon_polls_publishes_and_stops_cleanly_on_sigterm(tmp_path: Path, feed_server: FeedServer) -> None:
    feed_server.serve("/wire.xml", rss2("Wire", "https://news.example.com/", ARTICLES))
    config = _config(tmp_path, feed_server, interval="2s")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AGGREGATOR_")}
    port = free_port()
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aggregator",
            "-c",
            str(config),
            "--log-format",
            "json",
            "run",
            "--metrics-port",
            str(port),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    try:
        deadline = time.monotonic() + 30
        while len(feed_server.hits("/wire.xml")) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(feed_server.hits("/wire.xml")) >= 2, "the daemon polls again after the interval"
        assert feed_server.hits("/wire.xml")[-1].get("if-none-match"), "conditional GET on later polls"
        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate()
    assert daemon.returncode == 0, stderr
    assert health.status_code == 200 and health.text == "ok\n"
    assert 'aggregator_polls_total{outcome="ok"} 1' in metrics
    assert "aggregator_new_items_total 2" in metrics
    assert 'aggregator_poll_duration_seconds_bucket{le="+Inf"}' in metrics
    assert "aggregator_queue_lag_seconds" in metrics

    records = [json.loads(line) for line in stderr.splitlines()]  # every line is one JSON object
    polls = [record for record in records if record.get("event") == "poll" and record["source"] == "wire"]
    assert polls[0]["status"] == 200 and polls[0]["new"] == 2
    assert polls[1]["status"] == 304 and polls[1]["not_modified"] is True
    messages = [record["message"] for record in records]
    assert any("SIGTERM received" in message for message in messages)
    assert messages[-1] == "daemon stopped"
    assert (tmp_path / "site" / "atom.xml").exists()
    assert not any("traceback" in record for record in records)


def test_incremental_publish_writes_only_what_a_new_item_touches(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    def articles(count: int) -> list[Article]:
        return [
            Article(
                f"Story {n}", f"https://news.example.com/s/{n}", f"Mon, {n + 1:02d} Mar 2022 10:00:00 +0800"
            )
            for n in reversed(range(count))
        ]

    feed_server.serve("/wire.xml", rss2("Wire", "https://news.example.com/", articles(9)))
    config = _config(tmp_path, feed_server)
    config.write_text(config.read_text().replace("language: en}", "language: en, items_per_page: 2}"))
    site = tmp_path / "site"
    assert _run("-c", str(config), "poll", "wire").returncode == 0
    pages_before = sorted(path.relative_to(site).as_posix() for path in site.rglob("page/*/index.html"))
    assert pages_before == [
        f"{folder}page/{n}/index.html" for folder in ("", "tags/wire/", "world/") for n in range(1, 5)
    ]
    before = {path: path.stat().st_mtime_ns for path in site.rglob("*") if path.is_file()}

    feed_server.serve("/wire.xml", rss2("Wire", "https://news.example.com/", articles(10)))
    assert _run("-c", str(config), "poll", "wire").returncode == 0

    after = {path: path.stat().st_mtime_ns for path in site.rglob("*") if path.is_file()}
    written = sorted(path.relative_to(site).as_posix() for path in after if before.get(path) != after[path])
    assert written == sorted(
        [
            "world/2022/03/10/story-9.html",
            "index.html", "atom.xml", "world/index.html", "world/atom.xml",
            "tags/wire/index.html", "tags/wire/atom.xml",
        ]
    ), "the new page, and the front page and feed of each listing it is in; numbered pages stay"  # fmt: skip


def test_status_into_a_pipe_closed_early_ends_quietly(tmp_path: Path, feed_server: FeedServer) -> None:
    """`aggregator status | head -1`: the reader leaves before the table is written."""
    config = _config(tmp_path, feed_server)
    reader, writer = os.pipe()
    os.close(reader)  # gone before the command writes a byte
    try:
        done = subprocess.run(
            [sys.executable, "-m", "aggregator", "-c", str(config), "status"],
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(writer)
    assert done.returncode == 141
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr


def test_a_command_started_without_stdout_still_reports_its_errors(tmp_path: Path) -> None:
    """`aggregator status >&-` in a crontab: Python has no sys.stdout then."""
    done = subprocess.run(
        ["sh", "-c", 'exec "$0" "$@" >&-', sys.executable, "-m", "aggregator",
         "-c", str(tmp_path / "missing.yaml"), "status"],
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "cannot read config" in done.stderr and "Traceback" not in done.stderr
