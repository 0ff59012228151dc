"""The whole path as a user runs it: YAML sources on loopback -> `aggregator` -> files on disk.

Runs the real command in a subprocess against a real SQLite file and the
real PostgreSQL, then reads the output back: archive pages, index pages and
Atom feeds (schema-validated and parsed again with feedparser).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import feedparser
import pytest
from lxml import etree

from tests.feedserver import FeedServer
from tests.httpserver import free_port
from tests.sample_feeds import Article, atom, rss1, rss2

BASE_URL = "https://news.example.org/"

WIRE = [
    Article(
        "Markets rally as rates hold",
        "https://news.example.com/a/1?utm_source=rss&utm_medium=feed",
        "Mon, 14 Mar 2022 10:55:11 +0800",
        "Stocks rose.",
        "<p>Stocks rose <b>sharply</b>.</p><script>alert(1)</script>",
    ),
    Article("Rain expected in the north", "https://news.example.com/a/2", "Mon, 14 Mar 2022 09:00:00 +0800"),
    Article("Port traffic doubles", "https://news.example.com/a/3", "Sun, 13 Mar 2022 18:30:00 +0800"),
]
MIRROR = [
    # The same article as WIRE[0], reached over http with a different tracking decoration.
    Article(
        "Markets rally as rates hold", "http://news.example.com/a/1?fbclid=xyz#top", "2022-03-14T02:55:11Z"
    ),
    Article("New chip fabs announced", "https://tech.example.net/chips", "2022-03-12T08:00:00+09:00"),
    Article("Open source funding grows", "https://tech.example.net/oss", "2022-03-11T08:00:00Z"),
]
RDF = [
    Article("Library opens new wing", "https://city.example.org/library", "2022-03-10T10:00:00+01:00"),
    Article("Bridge repairs finished", "https://city.example.org/bridge", "2022-03-09T10:00:00+01:00"),
]
GBK = [
    Article(
        "广东省：建设省数据交易场所 朱镕基旧居开放",
        "http://finance.eastmoney.com/news/1345,202203142307712884.html",
        "Mon, 14 Mar 2022 10:55:11 +0800",
        "广东省印发广东省数字政府改革建设2022年工作要点的通知。",
        "<p>广东省印发广东省数字政府改革建设2022年工作要点的通知：拟全面推进数据要素市场化配置改革。</p>",
    ),
]
DISTINCT_ARTICLES = 8  # WIRE 3 + MIRROR 2 new + RDF 2 + GBK 1


@dataclass
class Site:
    config: Path
    output: Path
    env: dict[str, str]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        completed = subprocess.run(
            [sys.executable, "-m", "aggregator", "-c", str(self.config), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
        )
        if check and completed.returncode != 0:
            raise AssertionError(f"exit {completed.returncode}\n{completed.stderr}")
        return completed

    def snapshot(self) -> dict[str, tuple[int, int]]:
        """Every output file with its inode and mtime: a rewrite changes at least one."""
        return {
            str(path.relative_to(self.output)): (path.stat().st_ino, path.stat().st_mtime_ns)
            for path in self.output.rglob("*")
            if path.is_file()
        }

    def archive_pages(self) -> set[str]:
        return {
            name for name in self.snapshot() if name.endswith(".html") and not name.endswith("index.html")
        }

    def feed(self, relative: str) -> feedparser.FeedParserDict:
        return feedparser.parse((self.output / relative).read_bytes())

    def local_path(self, url: str) -> Path:
        assert url.startswith(BASE_URL), url
        return self.output / unquote(urlsplit(url).path.lstrip("/"))


def _write_config(tmp_path: Path, server: FeedServer, extra_sources: str = "") -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
site:
  title: Test Archive
  base_url: "{BASE_URL}"
  timezone: Asia/Shanghai
  language: zh
  items_per_feed: 50
database: "sqlite:///data/aggregator.db"
output: {{dir: out, formats: [html, jekyll]}}
defaults: {{interval: 30m, timeout: 5s}}
categories:
  emnews: {{title: 东财滚动新闻}}
  world: {{title: World}}
sources:
  - {{name: wire, url: "{server.url("/wire.xml")}", category: world, tags: [wire]}}
  - {{name: mirror, url: "{server.url("/mirror.atom")}", category: tech, tags: [镜像]}}
  - {{name: city, url: "{server.url("/city.rdf")}", category: world}}
  - {{name: eastmoney, url: "{server.url("/em.xml")}", category: emnews, tags: [东财滚动新闻]}}
{extra_sources}""",
        encoding="utf-8",
    )
    return config


def _serve_all(server: FeedServer, wire: list[Article]) -> None:
    server.serve("/wire.xml", rss2("Wire", "https://news.example.com/", wire))
    # This publisher ignores validators: the same body comes back with 200 every time.
    server.serve(
        "/mirror.atom",
        atom("Mirror", "https://tech.example.net/", MIRROR),
        content_type="application/atom+xml",
        conditional=False,
    )
    server.serve(
        "/city.rdf", rss1("City", "https://city.example.org/", RDF), content_type="application/rdf+xml"
    )
    server.serve(
        "/em.xml",
        rss2("东财滚动新闻", "http://finance.eastmoney.com/", GBK, encoding="gb2312"),
        content_type="application/rss+xml",
    )


@pytest.fixture
def site(tmp_path: Path, feed_server: FeedServer, database_url: str) -> Site:
    _serve_all(feed_server, WIRE)
    feed_server.serve("/garbage.xml", "<html><body>Not a feed at all", content_type="text/html")
    feed_server.serve("/slow.xml", rss2("Slow", "https://slow.example/", WIRE), delay=3.0)
    broken = (
        f'  - {{name: down, url: "http://127.0.0.1:{free_port()}/feed.xml", category: world}}\n'
        f'  - {{name: garbage, url: "{feed_server.url("/garbage.xml")}", category: world}}\n'
        f'  - {{name: slow, url: "{feed_server.url("/slow.xml")}", category: world, timeout: 1s}}\n'
    )
    config = _write_config(tmp_path, feed_server, broken)
    env = {**os.environ, "AGGREGATOR_DATABASE_URL": database_url}
    if database_url.startswith("sqlite"):
        env.pop("AGGREGATOR_DATABASE_URL")  # exercise the config's relative SQLite path
    return Site(config=config, output=tmp_path / "out", env=env)


def _entry_ids(site: Site) -> dict[str, str]:
    return {entry.link: entry.id for entry in site.feed("atom.xml").entries}


def test_first_run_publishes_one_page_per_article_and_valid_feeds(
    site: Site, atom_schema: etree.RelaxNG
) -> None:
    completed = site.run("run", "--once")

    assert len(site.archive_pages()) == DISTINCT_ARTICLES
    posts = [name for name in site.snapshot() if name.startswith("_posts/")]
    assert len(posts) == DISTINCT_ARTICLES

    feeds = sorted(name for name in site.snapshot() if name.endswith("atom.xml"))
    assert {"atom.xml", "world/atom.xml", "tech/atom.xml", "emnews/atom.xml"} <= set(feeds)
    assert "tags/东财滚动新闻/atom.xml" in feeds and "tags/镜像/atom.xml" in feeds
    for name in feeds:
        document = etree.parse(str(site.output / name))
        assert atom_schema.validate(document), (name, atom_schema.error_log)
        parsed = site.feed(name)
        assert not parsed.bozo, (name, parsed.bozo_exception)
        self_links = [link.href for link in parsed.feed.links if link.rel == "self"]
        assert self_links == [BASE_URL + "/".join(_quote_parts(name))]
        for entry in parsed.entries:
            assert site.local_path(entry.link).is_file(), entry.link

    home = site.feed("atom.xml")
    assert len(home.entries) == DISTINCT_ARTICLES
    shared = [entry for entry in home.entries if entry.title == "Markets rally as rates hold"]
    assert len(shared) == 1, "the same article from two sources must be one item"
    terms = {tag.term for tag in shared[0].tags}
    assert {"world", "tech", "wire", "镜像"} <= terms
    related = [link.href for link in shared[0].links if link.rel == "related"]
    assert related == ["https://news.example.com/a/1?utm_source=rss&utm_medium=feed"]

    gbk_page = next(name for name in site.archive_pages() if name.startswith("emnews/2022/03/14/"))
    html = (site.output / gbk_page).read_text(encoding="utf-8")
    assert "广东省：建设省数据交易场所 朱镕基旧居开放" in html
    assert "2022-03-14 10:55:11 +0800" in html
    assert "alert(1)" not in (site.output / site.local_path(shared[0].link)).read_text(encoding="utf-8")

    for name, reason in (("down", "refused"), ("garbage", "not an rss or atom feed"), ("slow", "timeout")):
        line = next((line for line in completed.stderr.splitlines() if f"source={name} " in line), "")
        assert "error=" in line and reason in line.lower(), (name, completed.stderr)


def _quote_parts(name: str) -> list[str]:
    return [quote(part) for part in name.split("/")]


def test_rerun_with_nothing_changed_rewrites_nothing(site: Site) -> None:
    site.run("run", "--once")
    before, ids_before = site.snapshot(), _entry_ids(site)

    site.run("run", "--once")  # nothing is due
    site.run("poll", "--all")  # everything fetched again: 304s and an unchanged body

    assert site.snapshot() == before
    assert _entry_ids(site) == ids_before


def test_poll_adds_exactly_the_new_items(site: Site, feed_server: FeedServer) -> None:
    site.run("run", "--once")
    pages_before, ids_before = site.archive_pages(), _entry_ids(site)

    fresh = [
        Article(
            "Harbour expansion approved", "https://news.example.com/a/4", "Tue, 15 Mar 2022 08:00:00 +0800"
        ),
        Article(
            "Airport adds night flights", "https://news.example.com/a/5", "Tue, 15 Mar 2022 09:00:00 +0800"
        ),
    ]
    _serve_all(feed_server, fresh + WIRE)
    site.run("poll", "--all")

    added = site.archive_pages() - pages_before
    assert len(added) == 2
    assert all(name.startswith("world/2022/03/15/") for name in added)
    ids_after = _entry_ids(site)
    assert {link: ids_after[link] for link in ids_before} == ids_before
    assert len(ids_after) == DISTINCT_ARTICLES + 2


def test_changed_article_is_updated_in_place(site: Site, feed_server: FeedServer) -> None:
    site.run("run", "--once")
    ids_before = _entry_ids(site)
    pages_before = site.archive_pages()

    changed = [Article("Rain expected in the north and east", WIRE[1].link, WIRE[1].date), WIRE[0], WIRE[2]]
    _serve_all(feed_server, changed)
    site.run("poll", "wire")

    assert site.archive_pages() == pages_before  # same archive URL
    assert _entry_ids(site) == ids_before  # same Atom ids
    titles = {entry.title for entry in site.feed("world/atom.xml").entries}
    assert "Rain expected in the north and east" in titles
    assert "Rain expected in the north" not in titles


def test_hostile_sources_do_not_stop_the_others(
    tmp_path: Path, feed_server: FeedServer, atom_schema: etree.RelaxNG
) -> None:
    """Control characters in an item and its link: tamed, and the other sources are published."""
    poison = rss2("Poison", "https://bad.example/", [Article("ok", "https://bad.example/1", WIRE[0].date)])
    poison = poison.replace(b"<title>ok</title>", b"<title>&#1;</title>").replace(
        b"/1</link>", b"/1&#1;</link>"
    )
    feed_server.serve("/poison.xml", poison)
    feed_server.serve("/cache.xml", rss2("Cache", "https://c.example/", WIRE[1:2]), conditional=False)
    feed_server.serve("/wire.xml", rss2("Wire", "https://news.example.com/", WIRE))
    config = tmp_path / "hostile.yaml"
    config.write_text(
        f"""
site: {{title: Hostile, base_url: "{BASE_URL}"}}
database: "sqlite:///hostile.db"
output: {{dir: out}}
sources:
  - {{name: poison, url: "{feed_server.url("/poison.xml")}", category: bad}}
  - {{name: cache, url: "{feed_server.url("/cache.xml")}", category: bad}}
  - {{name: wire, url: "{feed_server.url("/wire.xml")}", category: world}}
""",
        encoding="utf-8",
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AGGREGATOR_")}
    completed = subprocess.run(
        [sys.executable, "-m", "aggregator", "-c", str(config), "run", "--once"],
        capture_output=True, text=True, env=environment, timeout=120,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert "Traceback" not in completed.stderr
    out = tmp_path / "out"
    for name in ("atom.xml", "bad/atom.xml", "world/atom.xml"):
        assert atom_schema.validate(etree.parse(str(out / name))), name
    titles = {entry.title for entry in feedparser.parse((out / "atom.xml").read_bytes()).entries}
    assert {"Markets rally as rates hold", "Rain expected in the north", "Port traffic doubles"} <= titles
    assert len(titles) == 4, titles  # the poisoned item is kept, named by its guid
