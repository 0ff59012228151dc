"""kind html and json: real page and API bytes -> the same Items as feeds; config checks for both kinds."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aggregator.charset import decode_document
from aggregator.config import load_config
from aggregator.errors import ConfigError, ParseError
from aggregator.models import ListingSpec
from aggregator.scrape import json_path, scrape_page

API_URL = "https://api.example.com/list?page_index=1"
PAGE_URL = "https://news.example.com/news/"
SHANGHAI = timedelta(hours=8)

ROLLING = {
    "data": {
        "list": [
            {
                "title": "广东省：建设省数据交易场所 建设粤港澳大湾区大数据中心",
                "url": "http://finance.eastmoney.com/news/1345,202203142307712884.html",
                "showTime": "2022-03-14 10:55:11",
                "summary": "广东省印发广东省数字政府改革建设2022年工作要点的通知。",
                "tags": [{"name": "数据"}, {"name": "广东"}],
                "media": {"authors": ["南方PLUS"]},
            },
            {
                "title": "央行：保持流动性合理充裕",
                "url": "/news/1345,202203142307700001.html",
                "showTime": "2022-03-14 09:30:00",
                "summary": "",
            },
        ]
    }
}
EM_SPEC = ListingSpec(
    kind="json",
    items="data.list",
    title="title",
    link="url",
    date="showTime",
    summary="summary",
    date_format="%Y-%m-%d %H:%M:%S",
)


def _scrape(body: bytes, spec: ListingSpec, url: str = API_URL, **headers: str) -> Any:
    return scrape_page(body, headers, spec, url=url, source="s", timezone="Asia/Shanghai")


def test_json_rolling_news_column_becomes_items_in_the_publishers_time() -> None:
    page = _scrape(json.dumps(ROLLING, ensure_ascii=False).encode(), EM_SPEC)

    first, second = page.feed.items
    assert first.title == "广东省：建设省数据交易场所 建设粤港澳大湾区大数据中心"
    assert first.url == "http://finance.eastmoney.com/news/1345,202203142307712884.html"
    assert first.url_key == "https://finance.eastmoney.com/news/1345,202203142307712884.html"
    assert first.published is not None and first.published.utcoffset() == SHANGHAI
    assert first.published.strftime("%Y-%m-%d %H:%M:%S") == "2022-03-14 10:55:11"
    assert first.summary == "广东省印发广东省数字政府改革建设2022年工作要点的通知。"
    assert second.url == "https://api.example.com/news/1345,202203142307700001.html"  # against the page URL
    assert page.warnings == () and page.next_page is None


def test_json_paths_index_flatten_and_read_numbers() -> None:
    spec = ListingSpec(
        kind="json",
        items="data.list",
        title="title",
        link="url",
        author="media.authors[0]",
        tags="tags[].name",
        guid="url",
    )
    first = _scrape(json.dumps(ROLLING).encode(), spec).feed.items[0]
    assert first.authors == ("南方PLUS",)
    assert first.tags == ("数据", "广东")
    assert json_path("a.list[].x") == ("a", "list", None, "x")
    assert json_path("[0].b") == (0, "b")
    for bad in ("", "a..b", "a[x]", "a.[0]"):
        with pytest.raises(ValueError, match="not a dot path"):
            json_path(bad)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1647226511, "2022-03-14 10:55:11 +0800"),  # epoch seconds, shown in the source's zone
        (1647226511000, "2022-03-14 10:55:11 +0800"),  # epoch milliseconds
        ("2022-03-14T02:55:11Z", "2022-03-14 02:55:11 +0000"),  # ISO 8601 keeps its own offset
        ("2022-03-14 10:55:11", "2022-03-14 10:55:11 +0800"),  # no offset: the source's time zone
        ("Mon, 14 Mar 2022 10:55:11 +0900", "2022-03-14 10:55:11 +0900"),
    ],
)
def test_json_dates_without_format_accept_iso_rfc822_and_epochs(raw: object, expected: str) -> None:
    body = json.dumps({"items": [{"t": "x", "u": "https://a.example/1", "d": raw}]}).encode()
    spec = ListingSpec(kind="json", items="items", title="t", link="u", date="d")
    published = _scrape(body, spec).feed.items[0].published
    assert published is not None and published.strftime("%Y-%m-%d %H:%M:%S %z") == expected


def test_a_date_not_matching_date_format_falls_back_with_a_warning() -> None:
    body = json.dumps({"items": [{"t": "x", "u": "https://a.example/1", "d": "14/03/2022"}]}).encode()
    spec = ListingSpec(kind="json", items="items", title="t", link="u", date="d", date_format="%Y-%m-%d")
    page = _scrape(body, spec)
    assert page.feed.items[0].published is None
    assert page.warnings == ("item 'x': date '14/03/2022' unreadable, first-seen time used",)


def test_json_in_the_http_charset_and_jsonp_are_read() -> None:
    text = "jQuery1123({" + json.dumps(ROLLING, ensure_ascii=False)[1:-1] + "});"
    page = _scrape(text.encode("gbk"), EM_SPEC, **{"Content-Type": "application/javascript; charset=GBK"})
    assert page.feed.items[0].title.startswith("广东省：建设省数据交易场所")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"data": {"list": []}}', "items: 'data.list' matched nothing in the JSON of " + API_URL),
        (b'{"data": {"rows": [1]}}', "items: 'data.list' matched nothing"),
        (b"<html>rate limited</html>", "not JSON"),
        (b'{"data": {"list": [{"title": "no link"}]}}', "item 1 skipped: link 'url' matched nothing"),
    ],
)
def test_json_that_yields_nothing_is_an_error_naming_the_path(body: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message.replace("?", r"\?")):
        _scrape(body, EM_SPEC)


HTML_SPEC = ListingSpec(
    kind="html",
    items="ul.news > li",
    title="a",
    link="a@href",
    date="span.time",
    summary="p.digest",
    content="div.body@html",
    date_format="%Y年%m月%d日 %H:%M",
    next_page="a.next@href",
)


def _listing(items: str, *, charset: str = "utf-8", head: str = "") -> bytes:
    return (
        f"<!DOCTYPE html><html><head>{head}<title>滚动新闻 - 示例</title></head><body>"
        f'<ul class="news">{items}</ul><a class="next" href="?page=2">下一页</a></body></html>'
    ).encode(charset)


ITEM = (
    '<li><a href="/a/1.html"> 朱镕基旧居 开放 </a><span class="time">2022年03月14日 10:55</span>'
    '<p class="digest">1 &lt; 2 <b>bold</b></p><div class="body"><p>正文 &amp; <i>x</i></p>tail</div></li>'
)


def test_html_listing_items_with_text_attributes_and_inner_html() -> None:
    page = _scrape(_listing(ITEM + '<li><a href="https://other.example/b">二</a></li>'), HTML_SPEC, PAGE_URL)

    first, second = page.feed.items
    assert first.title == "朱镕基旧居 开放"
    assert first.url == "https://news.example.com/a/1.html"
    assert first.published == datetime(2022, 3, 14, 2, 55, tzinfo=UTC)
    assert first.published is not None and first.published.utcoffset() == SHANGHAI
    assert first.summary == "1 &lt; 2 bold"  # text, escaped as HTML
    assert first.content == "<p>正文 &amp; <i>x</i></p>tail"  # @html: the markup kept
    assert (second.url, second.published, second.content) == ("https://other.example/b", None, "")
    assert page.feed.title == "滚动新闻 - 示例" and page.feed.link == PAGE_URL
    assert page.next_page == PAGE_URL + "?page=2"


def test_html_xpath_items_and_fields_are_relative_to_the_item() -> None:
    spec = ListingSpec(
        kind="html", items="//ul[@class='news']/li", title="/a", link="/a/@href", date="/span[@class='time']",
        date_format="%Y年%m月%d日 %H:%M", content="/div@html",
    )  # fmt: skip
    (item,) = _scrape(_listing(ITEM), spec, PAGE_URL).feed.items
    assert (item.title, item.url) == ("朱镕基旧居 开放", "https://news.example.com/a/1.html")
    assert item.content == "<p>正文 &amp; <i>x</i></p>tail"


def test_items_without_title_or_link_are_skipped_with_the_field_named() -> None:
    items = ITEM + '<li><span class="time">x</span></li><li><a>no href</a></li>'
    page = _scrape(_listing(items), HTML_SPEC, PAGE_URL)
    assert len(page.feed.items) == 1
    assert page.warnings == (
        "item 2 skipped: title 'a' matched nothing",
        "item 3 skipped: link 'a@href' matched nothing",
    )


def test_a_selector_matching_nothing_is_an_error_with_the_url() -> None:
    spec = ListingSpec(kind="html", items="ul.headlines > li", title="a", link="a@href")
    with pytest.raises(ParseError, match=r"items: 'ul.headlines > li' matched nothing on https://news"):
        _scrape(_listing(ITEM), spec, PAGE_URL)
    with pytest.raises(ParseError, match=r"none is usable.*title 'h3' matched nothing"):
        _scrape(_listing(ITEM), ListingSpec(kind="html", items="li", title="h3", link="a@href"), PAGE_URL)


GBK_ONLY = "朱镕基"  # 镕 is in GBK, not in GB2312
HTML_GB2312, HTML_GBK = "text/html; charset=GB2312", "text/html; charset=gbk"


@pytest.mark.parametrize(
    ("body", "headers", "expected"),
    [
        (_listing(ITEM, charset="gbk", head='<meta charset="gb2312">'), {}, GBK_ONLY),
        (_listing(ITEM, charset="gbk", head=f'<meta http-equiv="Content-Type" content="{HTML_GB2312}">'),
         {"Content-Type": "text/html"}, GBK_ONLY),
        # HTTP wins over a wrong <meta>.
        (_listing(ITEM, charset="gbk", head='<meta charset="utf-8">'), {"Content-Type": HTML_GBK}, GBK_ONLY),
        ("<html><meta charset='big5'><p>新聞</p>".encode("big5"), {}, "新聞"),
        ("<html><meta charset=shift_jis><p>東京</p>".encode("shift_jis"), {}, "東京"),
        ("\ufeff<p>café</p>".encode(), {"Content-Type": "text/html; charset=latin-1"}, "café"),  # BOM first
        ("<p>café “quoted”</p>".encode("cp1252"), {}, "café “quoted”"),  # undeclared, not UTF-8
    ],
)  # fmt: skip
def test_html_is_decoded_from_bytes(body: bytes, headers: dict[str, str], expected: str) -> None:
    assert expected in decode_document(body, headers, html=True).text


def test_a_meta_charset_inside_a_json_field_does_not_decide_the_apis_encoding() -> None:
    """JSON is UTF-8 (RFC 8259): an article's HTML quoted in a field declares nothing about the API."""
    summary = "<html><head><meta charset=gbk></head><body><p>央行降准释放长期资金</p></body></html>"
    row = {"title": "央行降准", "url": "/a/1.html", "showTime": "2022-03-14 10:55:11", "summary": summary}
    listing = {"data": {"list": [row]}}
    body = json.dumps(listing, ensure_ascii=False).encode()
    assert body.decode("gb18030") != body.decode()  # the premise: the bytes "decode" as GBK too

    (item,) = _scrape(body, EM_SPEC).feed.items
    assert item.title == "央行降准" and "央行降准释放长期资金" in item.summary


def test_a_gbk_listing_declared_only_by_meta_is_read_through_the_listing_path() -> None:
    body = _listing(
        ITEM, charset="gbk", head='<meta http-equiv="Content-Type" content="text/html; charset=gbk">'
    )
    (item,) = _scrape(body, HTML_SPEC, PAGE_URL, **{"Content-Type": "text/html"}).feed.items
    assert item.title == "朱镕基旧居 开放"


def test_gb2312_page_with_gbk_characters_gives_clean_titles() -> None:
    body = _listing(ITEM, charset="gbk", head='<meta charset="gb2312">')
    (item,) = _scrape(body, HTML_SPEC, PAGE_URL).feed.items
    assert item.title == "朱镕基旧居 开放"


# --- config ---------------------------------------------------------------------

SITE = """
site: {title: Demo, base_url: "https://news.example.org", timezone: Asia/Shanghai}
sources:
"""
EM = """
  - name: em-rolling
    kind: json
    url: "https://api.example.com/list?page_index=1"
    items: "data.list"
    fields: {title: title, link: url, date: showTime, summary: summary}
    date_format: "%Y-%m-%d %H:%M:%S"
    timezone: Asia/Shanghai
    category: emnews
    tags: ["东财滚动新闻"]
"""
SOME_SITE = """
  - name: some-site
    kind: html
    url: "https://example.com/news/"
    items: "ul.news > li"
    category: x
    fields: {title: "a", link: "a@href", date: "span.time", summary: "p.digest"}
    next_page: "a.next@href"
"""


def _load(tmp_path: Path, sources: str) -> Any:
    path = tmp_path / "sources.yaml"
    path.write_text(SITE + sources, encoding="utf-8")
    return load_config(path)


def test_the_issue_examples_load_as_listing_specs(tmp_path: Path) -> None:
    em, site = _load(tmp_path, EM + SOME_SITE).sources
    assert em.listing == EM_SPEC
    assert em.timezone == "Asia/Shanghai" and em.tags == ("东财滚动新闻",)
    assert site.listing == ListingSpec(
        kind="html", items="ul.news > li", title="a", link="a@href", date="span.time", summary="p.digest",
        next_page="a.next@href", max_pages=5,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ('items: "li"', "source 'x': items: only for kind html or json"),
        ("kind: json, items: d, fields: {title: t, link: u}, next_page: a@href",
         "source 'x': next_page: only for kind html"),
        ('kind: html, fields: {title: a, link: "a@href"}', "source 'x': items: required for kind html"),
        ('kind: html, items: li, fields: {link: "a@href"}',
         "source 'x': fields.title: required for kind html"),
        ("kind: html, items: li, fields: {title: a}",
         "source 'x': fields.link: required for kind html (or fields.guid)"),
        ('kind: html, items: "ul >", fields: {title: a, link: b}',
         "source 'x': items: 'ul >' is not a valid CSS selector"),
        ('kind: html, items: li, fields: {title: "//[", link: b}',
         "source 'x': fields.title: '//[' is not a valid XPath"),
        ('kind: json, items: "a..b", fields: {title: t, link: u}',
         "source 'x': items: 'a..b' is not a dot path"),
        ("kind: json, items: d, fields: {title: t, lnk: u}", "source 'x': fields.lnk: unknown key"),
        ("kind: html, items: li, fields: {title: a, link: b}, max_pages: 3",
         "source 'x': max_pages: only with next_page"),
        ("kind: json, items: d, fields: {title: t, link: u}, date_format: yyyy-mm-dd",
         "source 'x': date_format: expected a strptime format"),
        ("kind: rss", "source 'x': kind: Input should be"),
    ],
)  # fmt: skip
def test_listing_config_mistakes_name_the_source_and_key(tmp_path: Path, keys: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"sources.yaml: {message}")):
        _load(tmp_path, f'  - {{name: x, url: "https://e.x/", category: c, {keys}}}\n')
