"""Benchmark of issue #3: our aggregator against lemon24/reader on one deterministic feed farm.

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python bench/run.py [--json results.json]

Progress goes to stderr; the last line on stdout holds the figures. Every
measured step runs in a fresh child process, and its wall time, CPU time and
peak RSS come from os.wait4() on that child alone, so neither the farm server
(processes of its own) nor this orchestrator is counted. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from farm import CHURN_ITEMS, STATUSES, Farm, FarmServer, generate_farm

BENCH = Path(__file__).resolve().parent
PACKAGE = BENCH.parent / "aggregator"
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
TARGETS = {"cold": 5.0, "no_change": 2.0, "churn_poll": 5.0, "peak_rss": 3.0, "incremental_share": 0.10}

_STARTED = time.monotonic()

_TIMESTAMP = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) "
_POLL = re.compile(_TIMESTAMP + r"\S+ aggregator\.update: poll source=(\S+) status=(\S+) (.*)$", re.M)
_PUBLISH = re.compile(r"aggregator\.publish: publish ((?:\w+=\S+ ?)+)$", re.M)
_TICK = re.compile(r"aggregator\.daemon: tick ((?:\w+=\S+ ?)+)$", re.M)


def progress(message: str) -> None:
    print(f"[{time.monotonic() - _STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


# -- measuring child processes -------------------------------------------------------------------


@dataclass
class Measured:
    """One child process: wall and CPU seconds, peak RSS, exit code and output."""

    label: str
    wall: float
    user: float
    system: float
    max_rss_mib: float
    returncode: int
    stdout: str = field(repr=False)
    stderr: str = field(repr=False)
    started_at: datetime = field(repr=False)
    machine_cpu: float | None = None  # CPU seconds the whole machine spent meanwhile
    server_cpu: float | None = None  # CPU seconds the farm server spent meanwhile

    @property
    def cpu(self) -> float:
        return self.user + self.system

    def figures(self) -> dict[str, Any]:
        return {
            "wall_s": round(self.wall, 3),
            "cpu_s": round(self.cpu, 3),
            "user_s": round(self.user, 3),
            "system_s": round(self.system, 3),
            "peak_rss_mib": round(self.max_rss_mib, 1),
            "returncode": self.returncode,
            "server_cpu_s": None if self.server_cpu is None else round(self.server_cpu, 3),
            "unattributed_cpu_s": unattributed_cpu([self], self.server_cpu),
        }


@dataclass(frozen=True, slots=True)
class Job:
    """A command to measure."""

    label: str
    command: list[str]
    env: dict[str, str]
    timeout: float


class Launcher:
    """The small process (bench/launcher.py) that starts measured commands and reports their rusage.

    Started before the farm is generated: Linux carries a parent's RSS into a
    forked child's ru_maxrss, so children of this (large) process would report
    at least its size. The launcher stays small and so adds nothing.
    """

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.process = subprocess.Popen(
            [sys.executable, str(BENCH / "launcher.py"), str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, jobs: Sequence[Job]) -> list[Measured]:
        """Start `jobs` together and wait for all of them; logs land in logs/<label>.out/.err."""
        self.logs.mkdir(parents=True, exist_ok=True)
        names = [re.sub(r"[^A-Za-z0-9_.-]+", "-", job.label).strip("-") for job in jobs]
        request = [
            {
                "command": job.command,
                "env": job.env,
                "cwd": str(self.logs.parent),
                "stdout": str(self.logs / f"{name}.out"),
                "stderr": str(self.logs / f"{name}.err"),
                "timeout": job.timeout,
            }
            for job, name in zip(jobs, names, strict=True)
        ]
        assert self.process.stdin is not None and self.process.stdout is not None
        busy = machine_cpu_seconds()
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()  # the launcher enforces every job's timeout
        if not answer:
            raise RuntimeError("the launcher died")
        busy_after = machine_cpu_seconds()
        machine = None if busy is None or busy_after is None else busy_after - busy
        results = []
        for job, name, result in zip(jobs, names, json.loads(answer), strict=True):
            if result.get("timed_out"):
                progress(f"{job.label}: timed out after {job.timeout:.0f}s and was killed")
            measured = Measured(
                label=job.label,
                wall=result["wall"],
                user=result["user"],
                system=result["system"],
                max_rss_mib=result["max_rss_kib"] / 1024,
                returncode=result["returncode"],
                stdout=(self.logs / f"{name}.out").read_text("utf-8", "replace"),
                stderr=(self.logs / f"{name}.err").read_text("utf-8", "replace"),
                started_at=datetime.fromisoformat(result["started_at"]),
                machine_cpu=machine,
            )
            if measured.returncode != 0:
                tail = "\n".join(measured.stderr.splitlines()[-15:])
                progress(f"{job.label}: exit code {measured.returncode}; stderr ends with:\n{tail}")
            results.append(measured)
        return results

    def measure(self, label: str, command: Sequence[str], env: dict[str, str], timeout: float) -> Measured:
        return self.run([Job(label, list(command), env, timeout)])[0]

    def close(self) -> None:
        """EOF makes the launcher exit; SIGTERM makes it kill whatever it still runs."""
        with contextlib.suppress(OSError):
            if self.process.stdin:
                self.process.stdin.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            self.process.wait(10)


def git_describe() -> str:
    """The commit measured, "+dirty.<hash of the diff>" when tracked files outside bench/ changed."""
    root = BENCH.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        diff = subprocess.run(
            ["git", "diff", "HEAD", "--", ".", ":!bench"], cwd=root, capture_output=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    dirty = f"+dirty.{hashlib.sha256(diff).hexdigest()[:8]}" if diff else ""
    return (commit or "unknown") + dirty


def machine_cpu_seconds() -> float | None:
    """CPU seconds all processes of the machine have used since boot (Linux /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    except (OSError, ValueError):
        return None
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def unattributed_cpu(results: Sequence[Measured], server_cpu: float | None) -> float | None:
    """CPU the machine spent meanwhile on anything but the measured processes and the farm server.

    That is other processes (PostgreSQL in the scale step; anything else running on the machine)
    and kernel work charged to no process (loopback softirqs, writeback of published files). When
    it is large next to the step's own CPU, the step's wall time was shared: trust CPU seconds.
    """
    machine = results[0].machine_cpu
    if machine is None or server_cpu is None:
        return None
    return round(machine - sum(result.cpu for result in results) - server_cpu, 2)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of measured children: no proxies, no aggregator overrides from the caller."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.lower().endswith("_proxy") and not key.startswith("AGGREGATOR_")
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(extra or {})
    return env


# -- what the children did -------------------------------------------------------------------------


def poll_summary(log: str) -> dict[str, int]:
    """Counts from our `poll source=...` log lines."""
    summary = Counter[str]()
    for _stamp, _name, status, rest in _POLL.findall(log):
        summary["polled"] += 1
        if rest.startswith("error="):
            summary["failed"] += 1
        elif rest.startswith("not-modified"):
            summary["not_modified"] += 1
        else:
            fields = dict(part.split("=", 1) for part in rest.split() if "=" in part)
            summary["updated"] += 1
            summary["new"] += int(fields.get("new", 0))
            summary["updated_items"] += int(fields.get("updated", 0))
        summary[f"status_{status}"] += 1
    return dict(summary)


def last_poll_time(log: str) -> datetime | None:
    stamps = [datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f") for stamp, *_ in _POLL.findall(log)]
    return max(stamps, default=None)


def key_values(pattern: re.Pattern[str], log: str) -> dict[str, int | bool | str]:
    """The `key=value` fields of the last log line matching `pattern` (numbers and booleans typed)."""
    matches = pattern.findall(log)
    if not matches:
        return {}
    fields: dict[str, int | bool | str] = {}
    for pair in matches[-1].split():
        key, _, value = pair.partition("=")
        typed: int | bool | str = value == "True" if value in ("True", "False") else value
        fields[key] = int(value) if value.isdigit() else typed
    return fields


def publish_summary(log: str) -> dict[str, int | bool | str]:
    """Fields of our `publish items=... written=...` line."""
    return key_values(_PUBLISH, log)


def served(before: list[list[int]], after: list[list[int]]) -> dict[str, int]:
    """Requests the farm answered between two snapshots, by status."""
    return {
        f"http_{status}": sum(a[column] - b[column] for a, b in zip(after, before, strict=True))
        for column, status in enumerate(STATUSES)
    }


def sqlite_count(path: Path, query: str) -> int:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return int(connection.execute(query).fetchone()[0])


# -- the output folder -----------------------------------------------------------------------------


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """relative path -> (inode, mtime_ns): a file replaced by publish gets a new inode."""
    files = {}
    for root, _dirs, names in os.walk(folder):
        for name in names:
            path = Path(root, name)
            stat = path.stat()
            files[str(path.relative_to(folder))] = (stat.st_ino, stat.st_mtime_ns)
    return files


def is_archive_page(relative: str, categories: set[str]) -> bool:
    """`<category>/<YYYY>/<MM>/<DD>/<slug>.html`."""
    parts = relative.split("/")
    return len(parts) == 5 and parts[0] in categories and parts[1].isdigit() and parts[4].endswith(".html")


def listing_folder(relative: str) -> str:
    """The listing a non-archive file belongs to: "" (home), "<category>/" or "tags/<tag>/"."""
    head = relative.removesuffix("atom.xml").removesuffix("index.html")
    if "page/" in head:
        head = head[: head.rindex("page/")]
    return head


# -- the steps -------------------------------------------------------------------------------------


@dataclass
class Bench:
    """Everything a run shares: the farm, its server, the work folder and the options."""

    farm: Farm
    server: FarmServer
    launcher: Launcher
    work: Path
    workers: int
    timeout: float
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> Path:
        return self.work / "farm.yaml"

    @property
    def ours_db(self) -> Path:
        return self.work / "aggregator.db"

    @property
    def site(self) -> Path:
        return self.work / "site"

    def write_configs(self) -> None:
        """farm.yaml (SQLite, site/) and farm-pg.yaml (site-pg/; its database comes from the env)."""
        for path, database, output in (
            (self.config, f"sqlite:///{self.ours_db}", self.site),
            (self.work / "farm-pg.yaml", "sqlite:///unused.db", self.work / "site-pg"),
        ):
            document = {
                "site": {
                    "title": "Bench archive",
                    "base_url": "https://bench.example.org/",
                    "timezone": "UTC",
                },
                "database": database,
                "output": {"dir": str(output), "formats": ["html"]},
                "defaults": {"interval": "30m", "timeout": "20s", "user_agent": "aggregator-bench/1"},
                # The farm stands for 1000 publishers but is one host (127.0.0.1): lift the per-host
                # politeness limit to the pool size, as 1000 real hosts would never hit it.
                "polling": {"workers": self.workers, "per_host": min(self.workers, 64)},
                "sources": [
                    {"name": s.name, "url": self.server.url(s), "category": s.category, "tags": list(s.tags)}
                    for s in self.farm.sources
                ],
            }
            path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8")
        (self.work / "urls.txt").write_text("\n".join(self.server.url(s) for s in self.farm.sources) + "\n")

    def ours(self, label: str, *arguments: str, config: Path | None = None) -> Measured:
        command = [sys.executable, "-m", "aggregator", "-c", str(config or self.config), *arguments]
        return self.measure(f"ours {label}", command)

    def measure(self, label: str, command: list[str]) -> Measured:
        """Run one command through the launcher, noting the farm server's CPU meanwhile."""
        before = self.server.cpu_seconds()
        result = self.launcher.measure(label, command, child_env(), self.timeout)
        result.server_cpu = _delta(before, self.server.cpu_seconds())
        return result

    def reader(self, label: str) -> tuple[Measured, dict[str, Any]]:
        command = [
            sys.executable, str(BENCH / "reader_update.py"),
            str(self.work / "reader.sqlite"), str(self.work / "urls.txt"), str(self.workers),
        ]  # fmt: skip
        result = self.measure(f"reader {label}", command)
        lines = result.stdout.strip().splitlines()
        return result, json.loads(lines[-1]) if result.returncode == 0 and lines else {}

    def poll_pair(self, step: str, entries: int, repeats: int = 1) -> None:
        """A poll of every source by ours and by reader, both seeing the same bodies.

        With `repeats` > 1 the pair runs that many times, each tool's database
        put back as it was before the step each time, in the order ours-reader,
        reader-ours, reader-ours, ours-reader, ...: each tool runs first as
        often as second, and early runs as often as late ones. The figures are
        the median run's (by wall); every run is kept under "runs".
        """
        saved = [self.save_database(tool) for tool in ("ours", "reader")] if repeats > 1 else []
        runs: dict[str, list[dict[str, Any]]] = {"ours": [], "reader": []}
        for repeat in range(repeats):
            if saved:
                for database, copies in saved:
                    restore_database(database, copies)
            for tool in ("ours", "reader") if repeat % 4 in (0, 3) else ("reader", "ours"):
                if saved:
                    os.sync()  # what was written before (copies, the other tool's run) goes out now
                runs[tool].append(self.poll_once(tool, step, entries))
        for tool, measured in runs.items():
            by_wall = sorted(measured, key=lambda figures: figures["wall_s"])
            median = dict(by_wall[(len(by_wall) - 1) // 2])  # one real run's figures (the lower one if even)
            if repeats > 1:
                median["runs"] = measured
                median["peak_rss_mib"] = max(figures["peak_rss_mib"] for figures in measured)
            self.figures.setdefault(tool, {})[step] = median
            walls = ", ".join(f"{figures['wall_s']:.3f}" for figures in measured)
            progress(f"{tool} {step}{f' (median of {repeats} runs: {walls})' if repeats > 1 else ''}: "
                     f"{_brief(median)}")  # fmt: skip
        for _database, copies in saved:
            for copy in copies.values():
                copy.unlink()

    def poll_once(self, tool: str, step: str, entries: int) -> dict[str, Any]:
        before = self.server.counts()
        if tool == "ours":
            result = self.ours(step, "poll", "--all", "--no-publish", "--workers", str(self.workers))
            detail: dict[str, Any] = poll_summary(result.stderr)
        else:
            result, detail = self.reader(step)
        figures = {
            **result.figures(),
            **detail,
            **served(before, self.server.counts()),
            "sources_per_s": round(len(self.farm.sources) / result.wall, 1),
            "entries_per_s": round(entries / result.wall, 1),
        }
        if tool == "ours" and result.returncode == 0:
            figures["stored_items"] = sqlite_count(self.ours_db, "SELECT count(*) FROM items")
        return figures

    def save_database(self, tool: str) -> tuple[Path, dict[Path, Path]]:
        """A tool's SQLite database and copies of its files (the database, its WAL if any)."""
        database = self.ours_db if tool == "ours" else self.work / "reader.sqlite"
        copies = {}
        for path in sorted(database.parent.glob(f"{database.name}*")):
            copies[path] = path.with_name(f"saved-{path.name}")
            shutil.copy2(path, copies[path])
        return database, copies

    def full_publish(self) -> None:
        result = self.ours("publish --full", "publish", "--full")
        files = snapshot(self.site)
        categories = {source.category for source in self.farm.sources}
        pages = sum(is_archive_page(path, categories) for path in files)
        figures = {
            **result.figures(),
            **publish_summary(result.stderr),
            "files": len(files),
            "archive_pages": pages,
            "pages_per_s": round(pages / result.wall, 1),
        }
        self.figures["ours"]["publish_full"] = figures
        progress(f"ours publish --full: {_brief(figures)}")

    def incremental_publish(self) -> None:
        """`publish` after churn: how long, how many files, and only files the churn affects?"""
        before = snapshot(self.site)
        result = self.ours("publish", "publish")
        after = snapshot(self.site)
        written = sorted(path for path, stamp in after.items() if before.get(path) != stamp)
        categories = {source.category for source in self.farm.sources}
        churned = [self.farm.sources[index] for index in self.farm.churned]
        affected = (
            {""} | {f"{s.category}/" for s in churned} | {f"tags/{t}/" for s in churned for t in s.tags}
        )
        new_pages = [p for p in written if is_archive_page(p, categories) and p not in before]
        rewritten_pages = [p for p in written if is_archive_page(p, categories) and p in before]
        listing_files = [p for p in written if not is_archive_page(p, categories)]
        unaffected = [p for p in listing_files if listing_folder(p) not in affected]
        full_wall = self.figures["ours"]["publish_full"]["wall_s"]
        figures = {
            **result.figures(),
            **publish_summary(result.stderr),
            "files_changed_on_disk": len(written),
            "new_archive_pages": len(new_pages),
            "expected_new_archive_pages": len(churned) * CHURN_ITEMS,
            "rewritten_old_archive_pages": len(rewritten_pages),
            "index_pages_written": sum(p.endswith(".html") for p in listing_files),
            "feeds_written": sum(p.endswith(".xml") for p in listing_files),
            "affected_listings": len(affected),
            "files_outside_affected_listings": len(unaffected),
            "only_affected_files": not rewritten_pages
            and not unaffected
            and len(new_pages) == len(churned) * CHURN_ITEMS,
            "share_of_full_wall": round(result.wall / full_wall, 4) if full_wall else None,
        }
        if unaffected or rewritten_pages:
            progress(f"unexpected files written: {(rewritten_pages + unaffected)[:10]}")
        self.figures["ours"]["publish_after_churn"] = figures
        progress(f"ours publish after churn: {_brief(figures)}")

    def scale(self, runners: int, no_publish: bool = False) -> None:
        """`run --once` in `runners` processes at once on one fresh PostgreSQL schema."""
        import psycopg

        self.server.set_version(self.farm.churned, 0)  # the farm as the SQLite cold run saw it
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
        figures: dict[str, Any] = {"runners": runners, "schema": schema, "no_publish": no_publish}
        with psycopg.connect(PG_URL, autocommit=True, connect_timeout=10) as connection:
            connection.execute(f'CREATE SCHEMA "{schema}"')
            try:
                before, server_cpu = self.server.counts(), self.server.cpu_seconds()
                started = datetime.now()
                command = [
                    sys.executable, "-m", "aggregator", "-c", str(self.work / "farm-pg.yaml"),
                    "run", "--once", "--workers", str(self.workers),
                    *(["--no-publish"] if no_publish else []),
                ]  # fmt: skip
                env = child_env({"AGGREGATOR_DATABASE_URL": url})
                results = self.launcher.run(
                    [Job(f"ours run --once #{n}", command, env, self.timeout) for n in range(runners)]
                )
                after, server_delta = self.server.counts(), _delta(server_cpu, self.server.cpu_seconds())
                fetches = [sum(a) - sum(b) for a, b in zip(after, before, strict=True)]
                histogram = Counter(fetches)
                last_polls = [stamp for r in results if (stamp := last_poll_time(r.stderr))]
                figures.update(
                    {
                        "wall_s": round(max(r.wall for r in results), 3),
                        "poll_phase_wall_s": round((max(last_polls) - started).total_seconds(), 3)
                        if last_polls
                        else None,
                        "workers": [
                            {**r.figures(), **poll_summary(r.stderr), "tick": _tick(r.stderr)}
                            for r in results
                        ],
                        "requests": sum(fetches),
                        "server_cpu_s": server_delta,
                        "unattributed_cpu_s": unattributed_cpu(results, server_delta),
                        "fetch_count_histogram": {str(k): v for k, v in sorted(histogram.items())},
                        "sources_fetched_exactly_once": histogram.get(1, 0),
                        "sources_fetched_more_than_once": sum(v for k, v in histogram.items() if k > 1),
                        "sources_never_fetched": histogram.get(0, 0),
                    }
                )
                for r in results:
                    if r.returncode != 0:
                        progress(f"{r.label}: exit {r.returncode}")
                connection.execute(f'SET search_path TO "{schema}"')
                try:
                    duplicates = connection.execute(
                        "SELECT url_key, count(*) FROM items GROUP BY url_key HAVING count(*) > 1"
                    ).fetchall()
                    figures["duplicate_url_keys"] = len(duplicates)
                    count = connection.execute("SELECT count(*) FROM items").fetchone()
                    figures["distinct_items"] = count[0] if count else None
                except psycopg.Error as error:
                    figures["database_error"] = str(error).splitlines()[0]
                figures["sqlite_cold_items"] = self.figures["ours"]["cold"].get("stored_items")
                figures["expected_distinct_items"] = self.farm.distinct_items
            finally:
                connection.execute("SET search_path TO public")
                connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        self.figures["ours"]["scale"] = figures
        progress(f"ours scale ({runners} x run --once, PostgreSQL): {_brief(figures)}")


def _delta(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else round(after - before, 3)


def _tick(log: str) -> dict[str, int | bool | str]:
    return key_values(_TICK, log)


def _brief(figures: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in figures.items() if not isinstance(v, dict | list))


# -- figures ---------------------------------------------------------------------------------------


POLL_STEPS = ("cold", "no_change", "churn")


def _get(figures: dict[str, Any], tool: str, step: str, key: str) -> Any:
    return figures.get(tool, {}).get(step, {}).get(key)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return round(numerator / denominator, 2) if numerator and denominator else None


def peak_rss(figures: dict[str, Any], tool: str) -> float | None:
    """The highest peak RSS of a tool's poll steps, in MiB."""
    values = [v for step in POLL_STEPS if (v := _get(figures, tool, step, "peak_rss_mib")) is not None]
    return max(values, default=None)


def restore_database(database: Path, copies: dict[Path, Path]) -> None:
    """The database's files as save_database found them, and no others."""
    for path in database.parent.glob(f"{database.name}*"):
        path.unlink()
    for path, copy in copies.items():
        shutil.copy2(copy, path)


def ratios(figures: dict[str, Any]) -> dict[str, float | None]:
    """Ours against reader, each oriented so that above 1 means ours is better, except peak RSS."""
    return {
        "cold_entries_per_s": _ratio(
            _get(figures, "ours", "cold", "entries_per_s"), _get(figures, "reader", "cold", "entries_per_s")
        ),
        "no_change_sources_per_s": _ratio(
            _get(figures, "ours", "no_change", "sources_per_s"),
            _get(figures, "reader", "no_change", "sources_per_s"),
        ),
        "churn_poll_speed": _ratio(
            _get(figures, "reader", "churn", "wall_s"), _get(figures, "ours", "churn", "wall_s")
        ),
        "peak_rss": _ratio(peak_rss(figures, "ours"), peak_rss(figures, "reader")),
        # The same comparisons by CPU seconds (reader's / ours), steadier on a busy machine.
        **{
            f"{s}_cpu": _ratio(_get(figures, "reader", s, "cpu_s"), _get(figures, "ours", s, "cpu_s"))
            for s in POLL_STEPS
        },
    }


def _mark(value: float | None, target: float, higher_is_better: bool = True) -> str:
    if value is None:
        return "n/a"
    return "ok" if (value >= target if higher_is_better else value <= target) else "MISS"


def _f(value: Any, spec: str = ".0f") -> str:
    return "n/a" if value is None else format(value, spec)


def summary_line(figures: dict[str, Any]) -> str:
    """The one line of figures printed at the end."""
    r, farm, ours = figures["ratios"], figures["farm"], figures["ours"]

    def versus(step: str, key: str, ratio: str, target: str, unit: str, spec: str = ".0f") -> str:
        return (
            f"{_f(_get(figures, 'ours', step, key), spec)} vs {_f(_get(figures, 'reader', step, key), spec)}"
            f"{unit} = {_f(r[ratio], '.2f')}x (>={TARGETS[target]:g}x {_mark(r[ratio], TARGETS[target])})"
        )

    parts = [
        f"aggregator bench {figures['date']} {figures['aggregator_commit']}"
        + (f"..{figures['aggregator_commit_at_end']}" if "aggregator_commit_at_end" in figures else "")
        + f" ({farm['sources']} sources, "
        f"{farm['entries']} entries, {figures['workers']} workers)",
        "cold " + versus("cold", "entries_per_s", "cold_entries_per_s", "cold", " entries/s"),
        "no-change "
        + versus("no_change", "sources_per_s", "no_change_sources_per_s", "no_change", " sources/s"),
        "churn poll "
        + versus("churn", "wall_s", "churn_poll_speed", "churn_poll", "s", ".2f")
        + f", publish after it {_f(_get(figures, 'ours', 'publish_after_churn', 'wall_s'), '.2f')}s",
        f"peak RSS {_f(peak_rss(figures, 'ours'))} vs {_f(peak_rss(figures, 'reader'))} MiB = "
        f"{_f(r['peak_rss'], '.2f')}x (<={TARGETS['peak_rss']:g}x "
        f"{_mark(r['peak_rss'], TARGETS['peak_rss'], higher_is_better=False)})",
    ]
    full = ours.get("publish_full", {})
    if full:
        parts.append(
            f"full publish {full['archive_pages']} pages in {full['wall_s']:.1f}s = "
            f"{full['pages_per_s']:.0f} pages/s"
        )
    incremental = ours.get("publish_after_churn", {})
    if incremental:
        share = incremental.get("share_of_full_wall")
        parts.append(
            f"incremental publish written={incremental.get('written')} in {incremental['wall_s']:.2f}s = "
            f"{_f(share and share * 100, '.1f')}% of full (<10% "
            f"{_mark(share, TARGETS['incremental_share'], higher_is_better=False)}), only affected files "
            f"{'yes' if incremental['only_affected_files'] else 'NO'}"
        )
    scale = ours.get("scale", {})
    if "wall_s" in scale:
        parts.append(
            f"scale {scale['runners']}x run --once{' --no-publish' if scale['no_publish'] else ''} on "
            f"PostgreSQL: wall {scale['wall_s']:.1f}s "
            f"(polls done {_f(scale.get('poll_phase_wall_s'), '.1f')}s), fetched exactly once "
            f"{scale['sources_fetched_exactly_once']}/{farm['sources']} (requests {scale['requests']}), "
            f"duplicate items {_f(scale.get('duplicate_url_keys'))}, distinct items "
            f"{_f(scale.get('distinct_items'))} vs SQLite {_f(scale.get('sqlite_cold_items'))}"
        )
    elif scale:
        parts.append(f"scale: {scale.get('error', 'failed')}")
    return " | ".join(parts)


# -- main ------------------------------------------------------------------------------------------


def run(arguments: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="aggregator-bench-"))
    launcher = Launcher(work / "logs")  # first, while this process is still small
    try:
        progress(f"generating the farm: {arguments.sources} sources, seed {arguments.seed}")
        farm = generate_farm(arguments.seed, arguments.sources)
        entries_v0, entries_v1 = farm.entries(0), farm.entries(1)
        progress(f"farm: {farm.stats}, distinct items {farm.distinct_items}, churned {len(farm.churned)}")
        with FarmServer(farm, arguments.server_workers) as server:
            progress(f"farm served on 127.0.0.1:{server.port} by {arguments.server_workers} processes")
            bench = Bench(farm, server, launcher, work, arguments.workers, arguments.timeout)
            bench.figures.update(
                {
                    "date": date.today().isoformat(),
                    "workers": arguments.workers,
                    "farm": {
                        **farm.stats,
                        "seed": farm.seed,
                        "distinct_items": farm.distinct_items,
                        "churned_sources": len(farm.churned),
                        "churn_items_each": CHURN_ITEMS,
                    },
                    "python": sys.version.split()[0],
                    "aggregator_commit": git_describe(),
                    "cpus": os.cpu_count(),
                }
            )
            bench.write_configs()
            # Untimed warm-up: both tools run from compiled bytecode, as installed packages do (pip
            # compiles reader's at install; our checkout is installed editable, and a machine with
            # PYTHONDONTWRITEBYTECODE set would compile it again on every start), and the page cache
            # holds the interpreters' modules for both alike. Its peak RSS is the floor of any
            # figure: an interpreter that imported both tools.
            compiled = launcher.measure(
                "compile", [sys.executable, "-m", "compileall", "-q", str(PACKAGE)], child_env(), 120
            )
            if compiled.returncode != 0:
                raise RuntimeError(f"cannot compile {PACKAGE}")
            warm = launcher.measure(
                "warm-up", [sys.executable, "-c", "import aggregator.cli, reader"], child_env(), 120
            )
            if warm.returncode != 0:
                raise RuntimeError("cannot import aggregator and reader: pip install -e '.[bench]'")
            # What an interpreter alone, and one that only imported each tool, peak at.
            bench.figures["baseline_rss_mib"] = {
                name: round(launcher.measure(f"baseline {name}", [sys.executable, "-c", code],
                                             child_env(), 120).max_rss_mib, 1)
                for name, code in (("python", "pass"), ("import_ours", "import aggregator.cli"),
                                   ("import_reader", "import reader"))
            }  # fmt: skip
            progress(f"baseline peak RSS (MiB): {bench.figures['baseline_rss_mib']}")
            bench.poll_pair("cold", entries_v0)
            bench.poll_pair("no_change", 0, arguments.repeats)
            bench.full_publish()
            server.set_version(farm.churned, 1)
            progress(f"churn: {len(farm.churned)} sources now serve {CHURN_ITEMS} more items each")
            bench.poll_pair("churn", entries_v1 - entries_v0, arguments.repeats)
            bench.incremental_publish()
            if arguments.scale_runners > 0:
                try:
                    bench.scale(arguments.scale_runners, arguments.scale_no_publish)
                except Exception as error:  # PostgreSQL down: report it, keep the other figures
                    progress(f"scale step failed: {type(error).__name__}: {error}")
                    bench.figures["ours"]["scale"] = {"error": f"{type(error).__name__}: {error}"}
            end_commit = git_describe()
            if end_commit != bench.figures["aggregator_commit"]:
                # The package is installed editable: a change during the run changes what is measured.
                bench.figures["aggregator_commit_at_end"] = end_commit
            bench.figures["ratios"] = ratios(bench.figures)
            bench.figures["targets"] = TARGETS
            return bench.figures
    finally:
        launcher.close()
        if arguments.keep:
            progress(f"kept the work folder {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=1000, help="sources in the farm (default 1000)")
    parser.add_argument("--seed", type=int, default=20261101, help="the farm's random seed")
    parser.add_argument(
        "--workers", type=int, default=16, help="concurrent fetches, ours and reader's (16, our default)"
    )
    parser.add_argument("--server-workers", type=int, default=2, help="farm server processes (2)")
    parser.add_argument("--scale-runners", type=int, default=3, help="`run --once` processes on PostgreSQL")
    parser.add_argument(
        "--scale-no-publish", action="store_true", help="scale step with `run --once --no-publish` (quicker)"
    )
    parser.add_argument(
        "--repeats",
        type=_at_least_one,
        default=5,
        help="runs of the no-change and churn steps, median taken (5)",
    )
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed per measured step")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (databases, sites, logs)")
    arguments = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup in `finally`
    figures = run(arguments)
    line = summary_line(figures)
    if arguments.json:
        arguments.json.write_text(
            json.dumps({**figures, "summary": line}, indent=2, ensure_ascii=False) + "\n"
        )
        progress(f"figures written to {arguments.json}")
    print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
