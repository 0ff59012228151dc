"""A source's `encoding:` override reaches html and json listings and article pages, not only feeds.

Each publisher here mislabels its bytes in a way that still decodes cleanly
(Big5 sent as GBK, Shift_JIS as GBK, GBK as Big5), so no rule can notice:
only the operator's `encoding:` gives the right text. Served from loopback,
polled by the real worker into a real database, read back from the store.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.feedserver import FeedServer
from tests.polled import poll_once
from tests.sample_feeds import Article, rss2

BIG5_TITLE = "臺灣新聞：颱風將至"
SHIFT_JIS_TITLE = "東京の天気：晴れ"
GBK_ARTICLE = "广东省：建设省数据交易场所，朱镕基旧居开放。"  # 镕 is GBK, not GB2312


def _big5_listing() -> bytes:
    """An html listing in Big5 whose server and <meta> both say GBK."""
    return (
        '<html><head><meta charset="gbk"><title>新聞</title></head><body><ul class="news">'
        f'<li><a href="/big5/1.html">{BIG5_TITLE}</a></li></ul></body></html>'
    ).encode("big5")


def _shift_jis_api() -> bytes:
    """A JSON API in Shift_JIS whose server says GBK."""
    return ('{"list": [{"title": "' + SHIFT_JIS_TITLE + '", "url": "https://tenki.example.jp/1"}]}').encode(
        "shift_jis"
    )


def _gbk_article() -> bytes:
    """An article page in GBK whose server and <meta> both say Big5."""
    return (
        '<html><head><meta charset="big5"><title>新闻</title></head><body>'
        f'<div id="ContentBody"><p>{GBK_ARTICLE}</p></div><div class="nav">导航</div></body></html>'
    ).encode("gbk")


@pytest.fixture
def mislabelled(feed_server: FeedServer) -> FeedServer:
    feed_server.serve("/big5/", _big5_listing(), content_type="text/html; charset=gbk")
    feed_server.serve("/api/list", _shift_jis_api(), content_type="application/json; charset=gbk")
    article = feed_server.url("/gbk/1.html")
    feed_server.serve(
        "/feed.xml",
        rss2(
            "News", feed_server.url("/"), [Article("GBK article", article, "Mon, 14 Mar 2022 10:55:11 +0800")]
        ),
    )
    feed_server.serve("/gbk/1.html", _gbk_article(), content_type="text/html; charset=big5")
    return feed_server


def _poll(tmp_path: Path, database_url: str, server: FeedServer, overrides: dict[str, str]) -> dict[str, str]:
    """Each source's one stored item, as `title | content`, after one poll."""

    def encoding(name: str) -> str:
        return f", encoding: {overrides[name]}" if name in overrides else ""

    items = poll_once(
        tmp_path,
        database_url,
        f"""\
  - {{name: big5, kind: html, url: "{server.url("/big5/")}", category: tw, items: "ul.news > li",
     fields: {{title: a, link: "a@href"}}{encoding("big5")}}}
  - {{name: sjis, kind: json, url: "{server.url("/api/list")}", category: jp, items: list,
     fields: {{title: title, link: url}}{encoding("sjis")}}}
  - {{name: gbk, url: "{server.url("/feed.xml")}", category: cn, allow_private: true,
     full_content: {{selector: "#ContentBody"}}{encoding("gbk")}}}
""",
        workers=3,
    )
    return {item.sources[0].name: f"{item.title} | {item.content}" for item in items}


def test_without_override_the_mislabelled_pages_decode_wrong(
    tmp_path: Path, database_url: str, mislabelled: FeedServer
) -> None:
    """The premise: the labels decode cleanly into the wrong characters, so no rule can catch them."""
    stored = _poll(tmp_path, database_url, mislabelled, {})
    assert BIG5_TITLE not in stored["big5"]
    assert SHIFT_JIS_TITLE not in stored["sjis"]
    assert GBK_ARTICLE not in stored["gbk"] and "| <p>" in stored["gbk"]  # the page's <p>, but mojibake


def test_encoding_override_applies_to_listings_and_article_pages(
    tmp_path: Path, database_url: str, mislabelled: FeedServer
) -> None:
    stored = _poll(tmp_path, database_url, mislabelled, {"big5": "big5", "sjis": "shift_jis", "gbk": "gbk"})
    assert stored["big5"].startswith(f"{BIG5_TITLE} | ")
    assert stored["sjis"].startswith(f"{SHIFT_JIS_TITLE} | ")
    assert stored["gbk"].startswith("GBK article | ") and GBK_ARTICLE in stored["gbk"]
    assert "导航" not in stored["gbk"]  # still only what the selector takes
