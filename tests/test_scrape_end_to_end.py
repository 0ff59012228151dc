"""Sites without a feed, as a user runs them: a JSON news API and HTML listings on loopback -> files.

A replica of a rolling-news column's JSON list API (CJK titles, +0800 times
without offset), an HTML listing of three pages linked by `a.next`, a GBK
listing declared as GB2312, a listing whose selector no longer matches, all
configured in YAML and run through the real command; the archive pages,
Jekyll posts and Atom feeds are read back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from lxml import etree

from tests.feedserver import FeedServer
from tests.test_end_to_end import BASE_URL, Site

ROLLING = [
    {
        "title": "广东省：建设省数据交易场所 建设粤港澳大湾区大数据中心",
        "url": "http://finance.eastmoney.com/news/1345,202203142307712884.html",
        "showTime": "2022-03-14 10:55:11",
        "summary": "广东省印发广东省数字政府改革建设2022年工作要点的通知：拟全面推进数据要素市场化配置改革。",
    },
    {
        "title": "央行：保持流动性合理充裕",
        "url": "http://finance.eastmoney.com/news/1345,202203142307700001.html",
        "showTime": "2022-03-14 09:30:00",
        "summary": "央行表示将保持流动性合理充裕。",
    },
]


def _listing_page(
    articles: list[tuple[str, str, str]], next_href: str | None, charset: str = "utf-8"
) -> bytes:
    items = "".join(
        f'<li><a href="{href}">{title}</a><span class="time">{date}</span><p class="digest">{title}</p></li>'
        for title, href, date in articles
    )
    more = f'<a class="next" href="{next_href}">下一页</a>' if next_href else ""
    head = f'<meta charset="{"gb2312" if charset == "gbk" else charset}"><title>新闻</title>'
    return f'<html><head>{head}</head><body><ul class="news">{items}</ul>{more}</body></html>'.encode(charset)


PAGES = {
    "/news/": ([("港口吞吐量翻番", "/news/a/6.html", "2022-03-15 09:00"),
                ("机场增开夜间航班", "/news/a/5.html", "2022-03-15 08:00")], "/news/page2.html"),
    "/news/page2.html": ([("图书馆新馆开放", "/news/a/4.html", "2022-03-14 18:00"),
                          ("大桥维修完工", "/news/a/3.html", "2022-03-14 12:00")], "page3.html"),
    "/news/page3.html": ([("新芯片工厂宣布", "/news/a/2.html", "2022-03-13 10:00"),
                          ("开源资助增长", "/news/a/1.html", "2022-03-12 10:00")], None),
}  # fmt: skip
FRESH = ("港口扩建获批", "/news/a/7.html", "2022-03-16 10:00")


def _serve(server: FeedServer, front: list[tuple[str, str, str]] | None = None) -> None:
    body = {"data": {"list": ROLLING}}
    server.serve(
        "/api/list?page_index=1", json.dumps(body, ensure_ascii=False), content_type="application/json"
    )
    for path, (articles, next_href) in PAGES.items():
        if path == "/news/" and front is not None:
            articles = front
        server.serve(path, _listing_page(articles, next_href), content_type="text/html; charset=utf-8")
    # A page 2 that repeats page 1 (a site ignoring the page number): backfill stops there.
    same = [("重复的新闻", "/loop/a/1.html", "2022-03-14 10:00")]
    server.serve("/loop/", _listing_page(same, "/loop/2"), content_type="text/html")
    server.serve("/loop/2", _listing_page(same, "/loop/3"), content_type="text/html")
    gbk = [("朱镕基旧居开放", "/gbk/a/1.html", "2022-03-14 10:55")]
    server.serve("/gbk/", _listing_page(gbk, None, charset="gbk"), content_type="text/html")
    server.serve("/redesigned/", _listing_page(same, None), content_type="text/html")


@pytest.fixture
def site(tmp_path: Path, feed_server: FeedServer, database_url: str) -> Site:
    _serve(feed_server)
    html_fields = '{title: "a", link: "a@href", date: "span.time", summary: "p.digest"}'
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
site: {{title: Test Archive, base_url: "{BASE_URL}", timezone: Asia/Shanghai, language: zh}}
database: "sqlite:///data/aggregator.db"
output: {{dir: out, formats: [html, jekyll]}}
defaults: {{interval: 30m, timeout: 5s}}
categories:
  emnews: {{title: 东财滚动新闻}}
sources:
  - {{name: em-rolling, kind: json, url: "{feed_server.url("/api/list?page_index=1")}", items: "data.list",
     fields: {{title: title, link: url, date: showTime, summary: summary}}, date_format: "%Y-%m-%d %H:%M:%S",
     timezone: Asia/Shanghai, category: emnews, tags: ["东财滚动新闻"]}}
  - {{name: some-site, kind: html, url: "{feed_server.url("/news/")}", items: "ul.news > li",
     fields: {html_fields}, date_format: "%Y-%m-%d %H:%M", next_page: "a.next@href", category: news,
     allow_private: true}}
  - {{name: loop, kind: html, url: "{feed_server.url("/loop/")}", items: "ul.news > li",
     fields: {html_fields}, next_page: "a.next@href", category: news, allow_private: true}}
  - {{name: gbk, kind: html, url: "{feed_server.url("/gbk/")}", items: "//ul/li", fields: {html_fields},
     date_format: "%Y-%m-%d %H:%M", category: news}}
  - {{name: redesigned, kind: html, url: "{feed_server.url("/redesigned/")}", items: "ul.headlines > li",
     fields: {html_fields}, category: news}}
""",
        encoding="utf-8",
    )
    env = {**os.environ, "AGGREGATOR_DATABASE_URL": database_url}
    if database_url.startswith("sqlite"):
        env.pop("AGGREGATOR_DATABASE_URL")
    return Site(config=config, output=tmp_path / "out", env=env)


ARTICLES = len(ROLLING) + 6 + 1 + 1  # json, three html pages, loop, gbk


def test_json_and_html_sources_are_published_like_feeds(
    site: Site, feed_server: FeedServer, atom_schema: etree.RelaxNG
) -> None:
    completed = site.run("run", "--once")

    assert len(site.archive_pages()) == ARTICLES
    feeds = sorted(name for name in site.snapshot() if name.endswith("atom.xml"))
    assert {"atom.xml", "emnews/atom.xml", "news/atom.xml", "tags/东财滚动新闻/atom.xml"} <= set(feeds)
    for name in feeds:
        assert atom_schema.validate(etree.parse(str(site.output / name))), (name, atom_schema.error_log)
    titles = {entry.title for entry in site.feed("atom.xml").entries}
    assert {item["title"] for item in ROLLING} | {"朱镕基旧居开放", "开源资助增长", "重复的新闻"} <= titles

    column = site.feed("tags/东财滚动新闻/atom.xml").entries
    first = next(entry for entry in column if entry.title == ROLLING[0]["title"])
    assert [link.href for link in first.links if link.rel == "related"] == [ROLLING[0]["url"]]
    page = site.local_path(first.link)
    assert page.relative_to(site.output).parts[:4] == ("emnews", "2022", "03", "14")
    html = page.read_text(encoding="utf-8")
    assert ROLLING[0]["title"] in html and "2022-03-14 10:55:11 +0800" in html
    assert ROLLING[0]["summary"] in html
    posts = [path.read_text(encoding="utf-8") for path in (site.output / "_posts").glob("2022-03-14-*.md")]
    front_matter = f'title: "{ROLLING[0]["title"]}"\ndate: 2022-03-14 10:55:11 +0800\ncategories: emnews\n'
    assert any(front_matter in text for text in posts), posts

    news = {entry.title: entry for entry in site.feed("news/atom.xml").entries}
    assert news["港口吞吐量翻番"].published.startswith("2022-03-15T09:00:00+08:00")
    assert [link.href for link in news["开源资助增长"].links if link.rel == "related"] == [
        feed_server.url("/news/a/1.html")
    ]

    # Backfill on the first poll: pages 2 and 3 once; the looping site stops at its repeated page.
    assert (len(feed_server.hits("/news/page2.html")), len(feed_server.hits("/news/page3.html"))) == (1, 1)
    assert (len(feed_server.hits("/loop/2")), len(feed_server.hits("/loop/3"))) == (1, 0)

    # A listing whose markup changed is an error on that source, not an empty success.
    line = next(line for line in completed.stderr.splitlines() if "source=redesigned " in line)
    assert "error=" in line
    assert f"items: 'ul.headlines > li' matched nothing on {feed_server.url('/redesigned/')}" in line
    status = site.run("status").stdout
    assert "matched nothing" in status


def test_later_polls_read_only_the_first_page(site: Site, feed_server: FeedServer) -> None:
    site.run("run", "--once")
    pages_before = site.archive_pages()

    _serve(feed_server, front=[FRESH, *PAGES["/news/"][0]])
    site.run("poll", "--all")

    added = site.archive_pages() - pages_before
    assert len(added) == 1 and next(iter(added)).startswith("news/2022/03/16/")
    assert (len(feed_server.hits("/news/page2.html")), len(feed_server.hits("/news/page3.html"))) == (1, 1)
    assert len(feed_server.hits("/news/")) == 2
