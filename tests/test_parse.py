"""aggregator.parse: feedparser's own corpus, golden fixtures and hostile input."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest

from aggregator.errors import ParseError
from aggregator.models import Item, ParsedFeed
from aggregator.parse import _http_url, _parse_with_feedparser, _parse_with_lxml, _read_with_lxml, parse_feed
from aggregator.urls import item_key

DATA = Path(__file__).resolve().parent / "data" / "parse"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "feedparser"
# Where feedparser's harness serves the corpus; HTTP tests expect URLs relative to it.
CORPUS_URL = "http://127.0.0.1:8097/"
# The README's rule for HTTP tests: "Header: Name: value" lines in the leading comment.
CORPUS_HEADER = re.compile(rb"^Header:\s+([^:]+):(.*)$", re.MULTILINE)
# Corpus files that hold no feed we read: CDF channels without items (CDF is
# not one of our formats, feedparser finds no version) and an empty document.
CORPUS_REFUSED = frozenset(
    {
        "illformed/rss_empty_document.xml",
        "wellformed/cdf/channel_abstract_map_description.xml",
        "wellformed/cdf/channel_abstract_map_tagline.xml",
        "wellformed/cdf/channel_href_map_link.xml",
        "wellformed/cdf/channel_href_map_links.xml",
        "wellformed/cdf/channel_lastmod.xml",
        "wellformed/cdf/channel_lastmod_parsed.xml",
        "wellformed/cdf/channel_title.xml",
    }
)

SOURCE = "test-source"


def parse(
    body: bytes,
    headers: dict[str, str] | None = None,
    *,
    url: str = "https://example.com/feed.xml",
    timezone: str = "UTC",
    keep_source_tags: bool = True,
) -> ParsedFeed:
    return parse_feed(
        body, headers or {}, url=url, source=SOURCE, timezone=timezone, keep_source_tags=keep_source_tags
    )


def rss(items: str, *, channel: str = "<title>Channel</title>") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<rss version="2.0"><channel>{channel}{items}</channel></rss>'
    ).encode()


def iso(value: datetime | None) -> str | None:
    """Aware datetimes compare equal across offsets; isoformat keeps the offset."""
    return None if value is None else value.isoformat()


def view(item: Item) -> dict[str, object]:
    """An item's fields with dates as text, to compare whole items at once."""
    return {
        "url": item.url,
        "guid": item.guid,
        "title": item.title,
        "summary": item.summary,
        "content": item.content,
        "published": iso(item.published),
        "updated": iso(item.updated),
        "authors": item.authors,
        "tags": item.tags,
    }


def texts(feed: ParsedFeed) -> list[str]:
    """Every string parse produced, to look for leaked or expanded text."""
    found = [feed.title, feed.link or ""]
    for item in feed.items:
        found += [item.url_key, item.url or "", item.guid or "", item.title, item.summary, item.content]
        found += [*item.authors, *item.tags]
    return found


def assert_http_url(value: str | None) -> None:
    if value is not None:
        parts = urlsplit(value)
        assert parts.scheme in ("http", "https") and parts.hostname, value


def assert_aware(value: datetime | None) -> None:
    if value is not None:
        assert value.tzinfo is not None and value.utcoffset() is not None, value


# --- the feedparser corpus ---------------------------------------------------


def corpus_params() -> list[Any]:
    if not CORPUS.is_dir():
        reason = f"feedparser corpus not found at {CORPUS}"
        return [pytest.param(None, marks=pytest.mark.skip(reason=reason), id="corpus-missing")]
    return [
        pytest.param(path, id=path.relative_to(CORPUS).as_posix()) for path in sorted(CORPUS.rglob("*.xml"))
    ]


def corpus_headers(relative: str, body: bytes) -> dict[str, str]:
    """HTTP files get their Header: lines (Content-Type defaults to text/xml); others none."""
    if "http" not in relative:
        return {}
    headers = {"content-type": "text/xml"}
    for name, value in CORPUS_HEADER.findall(body):
        headers[name.decode().strip().lower()] = value.decode().strip()
    return headers


def parse_corpus(relative: str, headers: dict[str, str] | None = None) -> ParsedFeed:
    body = (CORPUS / relative).read_bytes()
    return parse(
        body,
        corpus_headers(relative, body) if headers is None else headers,
        url=CORPUS_URL + relative,
        timezone="Europe/Berlin",
    )


@pytest.mark.parametrize("path", corpus_params())
def test_corpus_file_gives_a_valid_feed_or_parse_error(path: Path) -> None:
    relative = path.relative_to(CORPUS).as_posix()
    if relative in CORPUS_REFUSED:
        with pytest.raises(ParseError, match="not an RSS or Atom feed"):
            parse_corpus(relative)
        return
    feed = parse_corpus(relative)
    assert isinstance(feed.title, str) and feed.title
    assert_http_url(feed.link)
    for item in feed.items:
        assert item.url_key
        assert isinstance(item.title, str)
        assert isinstance(item.summary, str) and isinstance(item.content, str)
        assert all(isinstance(text, str) and text for text in (*item.authors, *item.tags))
        assert_http_url(item.url)
        assert_aware(item.published)
        assert_aware(item.updated)


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"feedparser corpus not found at {CORPUS}")
def test_corpus_refused_files_exist() -> None:
    """Keeps CORPUS_REFUSED honest: a renamed file would otherwise be expected to parse unseen."""
    assert all((CORPUS / relative).is_file() for relative in CORPUS_REFUSED)


GOLDEN: list[Any] = [
    # titles: plain text whatever the markup
    ("wellformed/atom10/entry_title.xml", None, lambda f: f.items[0].title, "Example Atom"),
    ("wellformed/atom10/entry_title_escaped_markup.xml", None, lambda f: f.items[0].title, "Example Atom"),
    ("wellformed/atom10/entry_title_inline_markup.xml", None, lambda f: f.items[0].title, "Example Atom"),
    (
        "wellformed/atom10/entry_title_text_plain_brackets.xml",
        None,
        lambda f: f.items[0].title,
        "History of the <blink> tag",
    ),
    (
        "wellformed/namespace/rss1.0withModules.xml",
        None,
        lambda f: (f.items[0].title, f.items[0].url, iso(f.items[0].published)),
        (
            "Test Item - RSS 1.0",
            "http://www.pocketsoap.com/weblog/rssTests/rss1.0withModules.xml#1",
            "2002-09-28T20:01:19+00:00",
        ),
    ),
    # dates keep the publisher's offset
    (
        "wellformed/namespace/atomthreadingwithentry.xml",
        None,
        lambda f: (iso(f.items[0].published), f.items[0].authors),
        ("2009-12-08T16:59:02.544000-08:00", ("John",)),
    ),
    # links: absolute, relative to the document URL; Content-Location is not a base
    ("wellformed/rdf/rdf_item_link.xml", None, lambda f: f.items[0].url, "http://example.com/1"),
    (
        "wellformed/base/http_entry_link_base_docuri.xml",
        None,
        lambda f: f.items[0].url,
        "http://127.0.0.1:8097/relative/link",
    ),
    (
        "wellformed/base/http_channel_link_base_docuri.xml",
        None,
        lambda f: f.link,
        "http://127.0.0.1:8097/relative/uri",
    ),
    (
        "wellformed/base/http_item_link_base_content_location.xml",
        None,
        lambda f: f.items[0].url,
        "http://127.0.0.1:8097/relative/uri",
    ),
    (
        "wellformed/rss/item_guid_not_permalink_not_url.xml",
        None,
        lambda f: (f.items[0].guid, f.items[0].url),
        ("abc", None),
    ),
    ("illformed/always_strip_doctype.xml", None, lambda f: f.title, "found"),
    # encodings
    ("encoding/euc-kr.xml", None, lambda f: f.title, "\ub144"),
    (
        "encoding/euc-kr-item.xml",
        None,
        lambda f: (f.items[0].summary, f.items[0].content),
        ("\ub144", "\ub144"),
    ),
    (
        "encoding/http_i18n.xml",
        None,
        lambda f: (f.title, f.link),
        ("Iñtërnâtiônàlizætiøn", "http://example.com/"),
    ),
    ("encoding/demoronize-1.xml", None, lambda f: f.items[0].summary, "don\u2019t"),
    (
        "illformed/chardet/gb2312.xml",
        {"content-type": "text/xml; charset=gb2312"},
        lambda f: f.items[0].title,
        "不归移民漫画系列：专业工作",
    ),
    (
        "illformed/chardet/big5.xml",
        {"content-type": "text/xml; charset=big5"},
        lambda f: f.title,
        "我希望??很容易?其翻?成中文，并有助于改??件。 感?您??本文。",
    ),
    (
        "illformed/chardet/shiftjis.xml",
        {"content-type": "application/atom+xml; charset=shift_jis"},
        lambda f: f.items[0].title,
        "DrecomRSSに記事投稿が反映されない…",
    ),
]


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"feedparser corpus not found at {CORPUS}")
@pytest.mark.parametrize(("relative", "headers", "get", "expected"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_corpus_golden(
    relative: str, headers: dict[str, str] | None, get: Callable[[ParsedFeed], object], expected: object
) -> None:
    assert get(parse_corpus(relative, headers)) == expected


# --- fixtures ------------------------------------------------------------------


def test_rss20_with_cjk_and_offsets() -> None:
    feed = parse(
        (DATA / "rss20_cjk.xml").read_bytes(),
        {"content-type": "application/rss+xml; charset=utf-8"},
        url="http://www.news.cn/rss/yaowen.xml",
        timezone="Asia/Shanghai",
    )
    assert (feed.title, feed.link) == ("新华网 - 要闻", "http://www.news.cn/")
    assert [view(item) for item in feed.items] == [
        {
            "url": "http://www.news.cn/politics/2022-03/14/c_1128469090.htm",
            "guid": "c_1128469090",
            "title": "国务院常务会议部署稳经济措施",
            "summary": "<p>会议指出，要稳定经济大盘。</p>",
            "content": '<p>会议指出，要<b>稳增长</b>、保就业。</p><img src="/img/1.jpg">',
            "published": "2022-03-14T10:55:11+08:00",
            "updated": None,
            "authors": ("李明",),
            "tags": ("要闻", "经济"),
        },
        {  # HTML title, relative link, summary only, a repeated dc:creator
            "url": "http://www.news.cn/local/2022-03/14/c_2.htm",
            "guid": None,
            "title": "HTML 标题 & 测试",
            "summary": "只有摘要，没有正文。",
            "content": "只有摘要，没有正文。",
            "published": "2022-03-14T08:00:00+00:00",
            "updated": None,
            "authors": ("王芳",),
            "tags": (),
        },
        {  # a relative permalink guid is an id, not a page; a date without offset is Shanghai time
            "url": None,
            "guid": "20220314-003",
            "title": "多行 标题",
            "summary": "相对 guid 不是链接。",
            "content": "相对 guid 不是链接。",
            "published": "2022-03-14T09:30:00+08:00",
            "updated": None,
            "authors": (),
            "tags": (),
        },
        {  # an absolute permalink guid is the link; a date we cannot read is None
            "url": "https://www.news.cn/world/2022-03/14/c_4.htm",
            "guid": "https://www.news.cn/world/2022-03/14/c_4.htm",
            "title": "外电：世界新闻",
            "summary": "",
            "content": "",
            "published": None,
            "updated": None,
            "authors": (),
            "tags": (),
        },
        # the fifth item holds only a date: nothing to show, skipped
    ]
    first = feed.items[0].published
    assert first is not None and first.utcoffset() == timedelta(hours=8)
    assert all(
        item.url_key == item_key(item.url, item.guid, item.title, item.content, source=SOURCE)
        for item in feed.items
    )


def test_source_tags_are_dropped_unless_kept() -> None:
    body = (DATA / "rss20_cjk.xml").read_bytes()
    feed = parse(body, url="http://www.news.cn/rss/yaowen.xml", keep_source_tags=False)
    assert [item.tags for item in feed.items] == [(), (), (), ()]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"content-type": "application/rss+xml"},
        {"content-type": "text/xml; charset=gb2312"},
        {"content-type": "text/xml"},  # RFC 3023 says us-ascii; the bytes say otherwise
    ],
)
def test_gbk_bytes_declared_gb2312_decode_as_gbk(headers: dict[str, str]) -> None:
    body = (DATA / "rss20_gbk.xml").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        body.decode("gb2312")  # the fixture really holds characters outside GB2312
    feed = parse(body, headers, url="http://news.example.cn/rss.xml", timezone="Asia/Shanghai")
    assert feed.title == "人物专访"
    [item] = feed.items
    assert (item.title, item.summary) == ("朱镕基与陶喆", "“镕”和“喆”都不在 GB2312 中。")
    assert (item.url, iso(item.published)) == ("http://news.example.cn/a/1.html", "2022-03-15T08:00:00+08:00")


def test_atom10_with_xml_base_and_content_types() -> None:
    feed = parse(
        (DATA / "atom10_base.xml").read_bytes(),
        {"content-type": "application/atom+xml"},
        url="https://blog.example.org/atom.xml",
        timezone="Europe/Berlin",
    )
    assert (feed.title, feed.link) == ("Example <Blog>", "https://blog.example.org/")
    assert [view(item) for item in feed.items] == [
        {  # nested relative xml:base; the alternate link wins over an earlier enclosure
            "url": "https://blog.example.org/posts/2024/first-post.html",
            "guid": "tag:blog.example.org,2024:1",
            "title": "Café & Crème",
            "summary": "Plain <summary> text",
            "content": '<p>See <a href="../../about.html">about</a>.</p>',
            "published": "2024-04-30T09:15:00+02:00",
            "updated": "2024-05-01T10:00:00.500000-07:00",
            "authors": ("Alice", "Bob"),
            "tags": ("python", "feeds"),
        },
        {  # xhtml title and content; no <published>, so <updated> dates the item
            "url": "https://blog.example.org/second",
            "guid": "tag:blog.example.org,2024:2",
            "title": "Second entry",
            "summary": "",
            "content": "<p>Hello <em>world</em></p>",
            "published": "2024-05-01T12:00:00+00:00",
            "updated": "2024-05-01T12:00:00+00:00",
            "authors": (),
            "tags": (),
        },
        {  # text content is escaped into HTML; a tag: id is no link
            "url": None,
            "guid": "tag:blog.example.org,2024:3",
            "title": "Third: plain text",
            "summary": "",
            "content": "a &lt; b &amp; c<br>\nsecond line",
            "published": "2024-05-02T08:00:00+05:30",
            "updated": "2024-05-02T08:00:00+05:30",
            "authors": (),
            "tags": (),
        },
    ]


def test_rss10_rdf_with_dc_date() -> None:
    feed = parse(
        (DATA / "rss10_rdf.xml").read_bytes(),
        {"content-type": "application/rdf+xml"},
        url="https://rdf.example.net/index.rdf",
        timezone="America/New_York",
    )
    assert (feed.title, feed.link) == ("RDF Site Summary", "https://rdf.example.net/")
    assert [view(item) for item in feed.items] == [
        {
            "url": "https://rdf.example.net/items/1",
            "guid": "https://rdf.example.net/items/1",
            "title": "First RDF item",
            "summary": "Item <i>one</i>",
            "content": "Item <i>one</i>",
            "published": "2021-11-05T16:20:00-05:00",
            "updated": "2021-11-05T16:20:00-05:00",
            "authors": ("Carol",),
            "tags": ("rdf",),
        },
        {  # a bare date is midnight in the source's zone (still daylight time on Nov 6)
            "url": "https://rdf.example.net/items/2",
            "guid": "https://rdf.example.net/items/2",
            "title": "Second RDF item",
            "summary": "",
            "content": "",
            "published": "2021-11-06T00:00:00-04:00",
            "updated": "2021-11-06T00:00:00-04:00",
            "authors": (),
            "tags": (),
        },
    ]


def test_rss091_latin1_with_netscape_doctype() -> None:
    """The DOCTYPE is stripped, so its HTML entities are left to feedparser's tolerant parser."""
    feed = parse(
        (DATA / "rss091.xml").read_bytes(),
        {"content-type": "text/xml; charset=iso-8859-1"},
        url="http://www.example.fr/rss.xml",
        timezone="Europe/Paris",
    )
    assert (feed.title, feed.link) == ("Café Olé", "http://www.example.fr/")
    assert [(item.title, item.url, item.summary) for item in feed.items] == [
        ("Crème brûlée & co", "http://www.example.fr/creme.html", "Une <b>recette</b> élégante"),
        ("Tarte Tatin", "http://www.example.fr/tatin.html", ""),
    ]


# --- fields ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Mon, 14 Mar 2022 10:55:11 +0800", "2022-03-14T10:55:11+08:00"),
        ("Mon, 14 Mar 2022 10:55:11 GMT", "2022-03-14T10:55:11+00:00"),
        ("Mon, 14 Mar 2022 10:55:11 +08:00", "2022-03-14T10:55:11+08:00"),
        ("Mon, 14 Mar 2022 10:55:11 -0000", "2022-03-14T10:55:11-04:00"),
        ("Mon, 14 Mar 2022 10:55:11", "2022-03-14T10:55:11-04:00"),
        ("Sat, 12 Mar 2022 10:55:11", "2022-03-12T10:55:11-05:00"),
        ("2022-03-14T10:55:11+08:00", "2022-03-14T10:55:11+08:00"),
        ("2022-03-14T10:55:11.250Z", "2022-03-14T10:55:11.250000+00:00"),
        ("2022-03-14t10:55:11z", "2022-03-14T10:55:11+00:00"),
        ("2022-03-14T10:55:11-00:00", "2022-03-14T10:55:11-04:00"),
        ("2022-03-14", "2022-03-14T00:00:00-04:00"),
        ("2003-12", "2003-12-01T00:00:00+00:00"),  # only feedparser reads these two (in UTC)
        ("Mon, 14 Mar 2022", "2022-03-14T00:00:00+00:00"),
        ("2022.03.14", None),  # feedparser would say 2022-11-01
        ("2022年3月14日", None),
        ("1647226511", None),  # feedparser would say 1647-08-14
        ("Mon, 14 Mar 2022 25:55:11 +0800", None),
        ("not a date", None),
        ("", None),
    ],
)
def test_published_keeps_offset_and_uses_source_zone(raw: str, expected: str | None) -> None:
    feed = parse(rss(f"<item><title>t</title><pubDate>{raw}</pubDate></item>"), timezone="America/New_York")
    assert iso(feed.items[0].published) == expected


@pytest.mark.parametrize(
    ("raw", "timezone", "expected"),
    [
        # The source's own zone calls itself CST: China Standard Time, not US Central.
        ("Mon, 14 Mar 2022 10:55:11 CST", "Asia/Shanghai", "2022-03-14T10:55:11+08:00"),
        ("2022-03-14 10:55:11 CST", "Asia/Shanghai", "2022-03-14T10:55:11+08:00"),
        ("Tue, 15 Feb 2022 10:00:00 CST", "America/Chicago", "2022-02-15T10:00:00-06:00"),
        # Elsewhere (or when the source's zone does not use it then) RFC 822's meaning stands.
        ("Mon, 14 Mar 2022 10:55:11 CST", "UTC", "2022-03-14T10:55:11-06:00"),
        ("Mon, 14 Mar 2022 10:55:11 EST", "Asia/Shanghai", "2022-03-14T10:55:11-05:00"),
        ("Mon, 14 Mar 2022 10:55:11 JST", "Asia/Tokyo", "2022-03-14T10:55:11+09:00"),
        ("Mon, 14 Mar 2022 10:55:11 GMT", "Asia/Shanghai", "2022-03-14T10:55:11+00:00"),
    ],
)
def test_zone_abbreviations_follow_the_source_zone(raw: str, timezone: str, expected: str) -> None:
    feed = parse(rss(f"<item><title>t</title><pubDate>{raw}</pubDate></item>"), timezone=timezone)
    assert iso(feed.items[0].published) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Tom &amp; Jerry", "Tom & Jerry"),
        ("Use &lt;b&gt; for bold", "Use <b> for bold"),  # no closing tag: feedparser calls it text
        ("&lt;b&gt;Bold&lt;/b&gt; news", "Bold news"),
        ("AT&amp;amp;T &lt;i&gt;news&lt;/i&gt;", "AT&T news"),
        ("&lt;p&gt;One&lt;/p&gt;&lt;p&gt;Two&lt;/p&gt;", "One Two"),
        ("中文&amp;nbsp;标题&lt;br/&gt;第二行&lt;/b&gt;", "中文 标题 第二行"),
        ("  spaced \n\t out  ", "spaced out"),
    ],
)
def test_titles_are_plain_text_on_one_line(raw: str, expected: str) -> None:
    assert parse(rss(f"<item><title>{raw}</title></item>")).items[0].title == expected


def test_content_prefers_html_over_plain_text() -> None:
    body = b"""<feed version="0.3" xmlns="http://purl.org/atom/ns#"><title>t</title>
    <entry><title>e</title>
    <content type="text/plain" mode="escaped">plain &amp; simple</content>
    <content type="text/html" mode="escaped">&lt;p&gt;rich&lt;/p&gt;</content>
    </entry></feed>"""
    assert parse(body).items[0].content == "<p>rich</p>"


def test_relative_xml_base_resolves_against_the_feed_url() -> None:
    body = b"""<feed xmlns="http://www.w3.org/2005/Atom" xml:base="/blog/"><title>t</title>
    <link href="./"/><entry><id>1</id><title>e</title><link href="post.html"/></entry></feed>"""
    feed = parse(body, url="https://example.com/feeds/atom.xml")
    assert (feed.link, feed.items[0].url) == (
        "https://example.com/blog/",
        "https://example.com/blog/post.html",
    )


@pytest.mark.parametrize(
    "href", ["javascript:alert(1)", "mailto:a@example.com", "http://[::1/x", "ftp://example.com/x"]
)
def test_links_that_are_not_http_pages_are_dropped(href: str) -> None:
    item = parse(rss(f"<item><title>t</title><link>{href}</link></item>")).items[0]
    assert (item.url, item.url_key) == (None, item_key(None, None, "t", "", source=SOURCE))


def test_authors_give_names_from_rss_mailboxes() -> None:
    feed = parse(
        rss(
            "<item><title>a</title><author>joe@example.com (Joe Bloggs)</author></item>"
            "<item><title>b</title><author>Ann Lee &lt;ann@example.com&gt;</author></item>"
            "<item><title>c</title><author>solo@example.com</author></item>"
        )
    )
    assert [item.authors for item in feed.items] == [("Joe Bloggs",), ("Ann Lee",), ("solo@example.com",)]


def test_feed_title_falls_back_to_the_host() -> None:
    feed = parse(rss("<item><title>t</title></item>", channel=""), url="https://news.example.org/rss")
    assert feed.title == "news.example.org"


# --- what is refused, what is survived -----------------------------------------


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        (b"", {}, "empty body"),
        (b" \r\n\t ", {}, "empty body"),
        (
            b"<!DOCTYPE html><html><head><title>Hi</title></head><body><p>x</p></body></html>",
            {"content-type": "text/html; charset=utf-8"},
            "not an RSS or Atom feed",
        ),
        (random.Random(0).randbytes(4096), {}, r"not an RSS or Atom feed \(.*not well-formed"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": []}', {}, "not an RSS or Atom feed"),
        (b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "x">', {}, "unterminated DOCTYPE"),
    ],
    ids=["empty", "whitespace", "html-page", "random-bytes", "json", "unterminated-doctype"],
)
def test_garbage_raises_parse_error(body: bytes, headers: dict[str, str], message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse(body, headers)


CAFE = '<rss version="2.0"><channel><item><title>Café</title></item></channel></rss>'


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (CAFE.encode(), {"content-type": "text/html; charset=utf-8"}),
        (CAFE.encode(), {"content-type": "application/xml; charset=us-ascii"}),
        (CAFE.encode("latin-1"), {}),
    ],
    ids=["non-xml-content-type", "charset-override", "undeclared-latin1-override"],
)
def test_survivable_bozo_feeds_are_read(body: bytes, headers: dict[str, str]) -> None:
    assert [item.title for item in parse(body, headers).items] == ["Café"]


def test_ill_formed_feed_that_still_yields_entries_is_read() -> None:
    body = b"""<rss version="2.0"><channel><title>Broken & proud</title>
    <item><title>One & two</title><link>https://example.com/1?a=1&b=2</link></item>
    <item><title>Unclosed <b>bold</title><link>https://example.com/2</link></item>"""
    feed = parse(body)
    assert [item.url for item in feed.items] == ["https://example.com/1?a=1&b=2", "https://example.com/2"]
    assert feed.items[0].title == "One & two"


# --- hostile DTDs ----------------------------------------------------------------

LAUGHS = "".join(f'<!ENTITY lol{i} "{(f"&lol{i - 1};" if i > 1 else "&lol;") * 10}">' for i in range(1, 10))
BILLION_LAUGHS = f'<!DOCTYPE rss [<!ENTITY lol "lol">{LAUGHS}]>'
# Small enough to stay under expat's amplification limit: only stripping stops it.
EXPANDED = "x" * 1000
QUADRATIC = f'<!DOCTYPE rss [<!ENTITY a "{EXPANDED}">]>'
QUADRATIC_USE = '<rss version="2.0"><channel><title>t</title><item><title>q</title>' + (
    f"<description>{'&a;' * 1000}</description></item></channel></rss>"
)


def read_with(path: str, body: bytes) -> ParsedFeed:
    """parse() through one reader: "feedparser", or "lxml" (which must defer or agree)."""
    kwargs: dict[str, Any] = {
        "url": "https://example.com/feed.xml", "source": SOURCE, "timezone": "UTC", "keep_source_tags": True
    }  # fmt: skip
    if path == "feedparser":
        return _parse_with_feedparser(body, {}, **kwargs)
    fast = _parse_with_lxml(body, {}, **kwargs)
    return fast if fast is not None else parse_feed(body, {}, **kwargs)


def assert_lxml_refuses_raw(body: bytes) -> None:
    """Even without our DOCTYPE stripping in front, lxml's settings expand and read nothing."""
    started = time.perf_counter()
    assert _read_with_lxml(body) is None
    assert time.perf_counter() - started < 0.5


READERS = ["feedparser", "lxml"]


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("layout", ["one-line", "one-declaration-per-line"])
def test_billion_laughs_is_not_expanded(layout: str, reader: str) -> None:
    doctype = BILLION_LAUGHS if layout == "one-line" else BILLION_LAUGHS.replace(">", ">\n")
    body = (
        f'<?xml version="1.0"?>{doctype}<rss version="2.0"><channel><title>&lol9;</title>'
        "<item><title>x &lol9;</title><link>https://example.com/1</link></item></channel></rss>"
    ).encode()
    assert_lxml_refuses_raw(body)
    started = time.perf_counter()
    feed = read_with(reader, body)
    assert time.perf_counter() - started < 0.5  # expat's own limit takes about a second
    assert [item.url for item in feed.items] == ["https://example.com/1"]
    assert not any("lollol" in text for text in texts(feed))


@pytest.mark.parametrize("reader", READERS)
def test_internal_entities_are_not_expanded(reader: str) -> None:
    body = f'<?xml version="1.0"?>{QUADRATIC}{QUADRATIC_USE}'.encode()
    assert_lxml_refuses_raw(body)
    feed = read_with(reader, body)
    assert [item.title for item in feed.items] == ["q"]
    assert not any(EXPANDED in text for text in texts(feed))


def test_doctype_spelled_in_utf7_is_stripped_too() -> None:
    """A filter on the original bytes never sees this "<!DOCTYPE": feedparser decodes it from UTF-7."""
    smuggled = QUADRATIC.replace("<", "+ADw-").replace(">", "+AD4-").replace('"', "+ACI-")
    body = f'<?xml version="1.0" encoding="utf-7"?>{smuggled}{QUADRATIC_USE}'.encode("ascii")
    feed = parse(body, {"content-type": "application/xml"})
    assert [item.title for item in feed.items] == ["q"]
    assert not any(EXPANDED in text for text in texts(feed))


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_doctype_in_utf16_and_utf32_is_stripped_without_harm(encoding: str) -> None:
    declaration = f'<?xml version="1.0" encoding="{encoding.removesuffix("-be")}"?>'
    document = declaration + QUADRATIC + QUADRATIC_USE.replace("<title>t</title>", "<title>统一码</title>")
    body = document.encode(encoding)
    if encoding == "utf-16-be":
        body = b"\xfe\xff" + body
    feed = parse(body)
    assert feed.title == "统一码"
    assert not any(EXPANDED in text for text in texts(feed))


@pytest.mark.parametrize(
    ("encoding", "text"), [("big5", "也久么"), ("shift_jis", "云充予"), ("gbk", "乚乕乗")]
)
def test_doctype_in_double_byte_encodings_with_ascii_trail_bytes(encoding: str, text: str) -> None:
    """These characters end in the bytes "]", "[" and "\\", which a byte-level scan could misread."""
    assert {text.encode(encoding)[i] for i in (1, 3, 5)} == {ord("]"), ord("["), ord("\\")}
    doctype = f'<!DOCTYPE rss [<!ENTITY t "{text}"><!ENTITY a "{EXPANDED}">]>'
    document = f'<?xml version="1.0" encoding="{encoding}"?>{doctype}' + QUADRATIC_USE.replace(
        "<title>t</title>", f"<title>{text}</title>"
    )
    feed = parse(document.encode(encoding))
    assert feed.title == text
    assert not any(EXPANDED in found for found in texts(feed))


@pytest.mark.parametrize("reader", READERS)
def test_external_entities_are_not_read(reader: str) -> None:
    body = b"""<?xml version="1.0"?>
    <!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd"><!ENTITY % pe SYSTEM "file:///etc/passwd"> %pe;]>
    <rss version="2.0"><channel><title>&xxe;</title>
    <item><title>a &xxe;</title><description>&xxe;</description><link>https://example.com/x</link></item>
    </channel></rss>"""
    assert_lxml_refuses_raw(body)
    started = time.perf_counter()
    feed = read_with(reader, body)
    assert time.perf_counter() - started < 0.5
    assert [item.url for item in feed.items] == ["https://example.com/x"]
    output = "\n".join(texts(feed))
    assert "root:" not in output
    passwd = Path("/etc/passwd")
    if passwd.is_file():
        assert not any(line in output for line in passwd.read_text().splitlines() if line.strip())


def test_doctype_text_inside_content_is_kept() -> None:
    body = rss("<item><title>t</title><description><![CDATA[<!DOCTYPE html><p>x</p>]]></description></item>")
    assert parse(body).items[0].summary == "<!DOCTYPE html><p>x</p>"


def test_untitled_items_are_named_by_their_text_or_link() -> None:
    long_text = "word " * 40
    body = (
        '<rss version="2.0"><channel><title>Notes</title><link>https://notes.example/</link>'
        "<item><description>&lt;p&gt;Just a &lt;b&gt;short&lt;/b&gt; note.&lt;/p&gt;</description>"
        "<link>https://notes.example/1</link></item>"
        f"<item><description>{long_text}</description><link>https://notes.example/2</link></item>"
        '<item><description>&lt;img src="x.png"&gt;</description><link>https://notes.example/3</link></item>'
        "</channel></rss>"
    ).encode()
    short, long, image_only = parse(body).items
    assert short.title == "Just a short note."
    assert long.title.endswith("…") and len(long.title) <= 80 and long.title.startswith("word word")
    assert image_only.title == "https://notes.example/3"


@pytest.mark.parametrize(
    ("channel", "hint"),
    [
        ("<ttl>90</ttl>", timedelta(minutes=90)),
        ("<sy:updatePeriod>daily</sy:updatePeriod>", timedelta(days=1)),
        (
            "<sy:updatePeriod>hourly</sy:updatePeriod><sy:updateFrequency>4</sy:updateFrequency>",
            timedelta(minutes=15),
        ),
        ("<ttl>0</ttl>", None),
        ("<ttl>soon</ttl><sy:updatePeriod>sometimes</sy:updatePeriod>", None),
        ("", None),
    ],
)
def test_update_hints(channel: str, hint: timedelta | None) -> None:
    body = (
        '<rss version="2.0" xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"><channel>'
        f"<title>t</title>{channel}<item><title>x</title><link>https://e.example/1</link></item>"
        "</channel></rss>"
    ).encode()
    assert parse(body).ttl == hint


def test_hostile_entries_are_cleaned_not_fatal() -> None:
    """Control characters, endless tags, absurd dates and ttl values: each is tamed, nothing raises."""
    tags = "".join(f"<category>tag {n}</category>" for n in range(500)) + f"<category>{'x' * 61}</category>"
    body = (
        '<rss version="2.0"><channel><title>Bad&#1; feed</title><link>https://bad.example/</link>'
        "<ttl>99999999999999999999</ttl>"
        "<item><title>Ti&#1;tle&#11;</title><link>https://bad.example/a&#1;b</link><guid>g&#2;1</guid>"
        f"<description>sum&#8;mary</description>{tags}"
        "<pubDate>0001-01-01T00:00:00+08:00</pubDate></item>"
        "<item><title>Far future</title><link>https://bad.example/2</link>"
        "<pubDate>9999-12-31T23:00:00-05:00</pubDate></item>"
        "</channel></rss>"
    ).encode()
    feed = parse(body)
    first, second = feed.items
    assert feed.title == "Bad feed"
    assert (first.title, first.guid, first.summary) == ("Title", "g1", "summary")
    assert first.url is None, "a link with a control character is no link"
    assert len(first.tags) == 20 and first.tags[0] == "tag 0"
    assert first.published is None and second.published is None
    assert feed.ttl is not None and feed.ttl.days >= 365


@pytest.mark.parametrize("ttl", ["²", "١٢", "-5"])
def test_odd_ttl_digits_are_ignored(ttl: str) -> None:
    body = f'<rss version="2.0"><channel><title>t</title><ttl>{ttl}</ttl></channel></rss>'.encode()
    assert parse(body).ttl is None


# --- the lxml reader against feedparser -----------------------------------------
#
# parse_feed reads well-formed RSS/Atom with lxml and gives everything else to
# feedparser. Wherever the lxml reader gives a result, it must be the one the
# feedparser path gives for the same bytes.


def both_paths(
    body: bytes,
    headers: dict[str, str] | None = None,
    *,
    url: str = "https://example.com/feed.xml",
    timezone: str = "UTC",
) -> tuple[ParsedFeed | None, ParsedFeed | ParseError]:
    kwargs: dict[str, Any] = {"url": url, "source": SOURCE, "timezone": timezone, "keep_source_tags": True}
    try:
        fast = _parse_with_lxml(body, headers or {}, **kwargs)
    except ParseError:
        fast = None
    try:
        reference: ParsedFeed | ParseError = _parse_with_feedparser(body, headers or {}, **kwargs)
    except ParseError as error:
        reference = error
    return fast, reference


@pytest.mark.parametrize("path", corpus_params())
def test_corpus_lxml_reader_matches_feedparser(path: Path) -> None:
    relative = path.relative_to(CORPUS).as_posix()
    body = path.read_bytes()
    fast, reference = both_paths(
        body, corpus_headers(relative, body), url=CORPUS_URL + relative, timezone="Europe/Berlin"
    )
    if fast is not None:
        assert fast == reference


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"feedparser corpus not found at {CORPUS}")
def test_corpus_mostly_well_formed_feeds_take_the_lxml_path() -> None:
    """Guards the fast path against silently deferring everything (701 of 2106 files when written)."""
    paths = sorted(CORPUS.rglob("*.xml"))
    fast = 0
    for path in paths:
        relative = path.relative_to(CORPUS).as_posix()
        body = path.read_bytes()
        try:
            if _parse_with_lxml(
                body, corpus_headers(relative, body), url=CORPUS_URL + relative, source=SOURCE,
                timezone="UTC", keep_source_tags=True,
            ) is not None:  # fmt: skip
                fast += 1
        except ParseError:
            pass
    assert fast >= 650, f"{fast} of {len(paths)} corpus files took the lxml path"


@pytest.mark.parametrize(
    ("name", "fast_path"),
    [
        ("rss20_cjk.xml", False),  # "email (Name)" authors: feedparser's own split
        ("rss20_gbk.xml", True),
        ("rss10_rdf.xml", True),
        ("atom10_base.xml", False),  # xhtml text constructs
        ("rss091.xml", False),  # HTML entities of the stripped Netscape DTD: ill-formed XML
    ],
)
def test_fixtures_lxml_reader_matches_feedparser(name: str, fast_path: bool) -> None:
    fast, reference = both_paths((DATA / name).read_bytes(), timezone="Asia/Shanghai")
    assert (fast is not None) == fast_path
    if fast is not None:
        assert fast == reference


def html_body(i: int) -> str:
    return (
        f'<p>第 {i} 段 with <a href="/rel/{i}.html">a link</a> &amp; <b>bold</b> 文字。</p>'
        + "".join(f"<p>Sentence {j} about 经济 &amp; science in story {i}.</p>" for j in range(3))
        + f'<img src="https://img.example.com/{i}.jpg" alt="pic">'
    )


def big_rss20(n: int = 400, *, encoding: str = "utf-8", declared: str = "utf-8") -> bytes:
    items = "".join(
        f"<item><title>Story {i} &amp; 更多 {'&lt;b&gt;bold&lt;/b&gt;' if i % 5 == 0 else ''}</title>"
        f"<link>{f'/n/{i}.html' if i % 3 else f'https://news.example.com/{i}.html'}</link>"
        f'<guid isPermaLink="{"false" if i % 2 else "true"}">https://news.example.com/g/{i}</guid>'
        f"<pubDate>{'Wed, 01 May 2024 12:00:00 +0800' if i % 4 else '2024-05-01T12:00:00+08:00'}</pubDate>"
        f"<dc:creator>作者 {i % 7}</dc:creator><category>world</category><category>标签{i % 13}</category>"
        f"<description>&lt;p&gt;Summary of 报道 {i}.&lt;/p&gt;</description>"
        + (f"<content:encoded><![CDATA[{html_body(i)}]]></content:encoded>" if i % 6 else "")
        + "<comments>https://news.example.com/c</comments><slash:comments>3</slash:comments></item>"
        for i in range(n)
    )
    document = (
        f'<?xml version="1.0" encoding="{declared}"?>\n<rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:slash="http://purl.org/rss/1.0/modules/slash/" xmlns:atom="http://www.w3.org/2005/Atom">'
        "<channel><title>大 RSS</title><link>https://news.example.com/</link>"
        '<atom:link rel="self" href="https://news.example.com/rss"/><ttl>30</ttl>'
        f"{items}</channel></rss>"
    )
    return document.encode(encoding)


def big_atom(n: int = 400, *, xhtml: bool = False) -> bytes:
    kinds = ["html", "text", "xhtml"] if xhtml else ["html", "text"]

    def construct(tag: str, i: int, text: str) -> str:
        kind = kinds[i % len(kinds)]
        if kind == "xhtml":
            return (
                f'<{tag} type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p>{text}</p></div></{tag}>'
            )
        value = f"<p>{text}</p>" if kind == "html" else f"{text} <not a tag>"
        return f'<{tag} type="{kind}">{value.replace("&", "&amp;").replace("<", "&lt;")}</{tag}>'

    entries = "".join(
        f"<entry><id>{f'tag:example.com,2024:{i}' if i % 2 else f'/posts/{i}'}</id>"
        + construct("title", i, f"Entry {i} 条目 &amp; co")
        + f'<link rel="alternate" href="/posts/{i}.html"/><link rel="enclosure" href="a{i}.mp3"/>'
        f"<published>2024-05-01T12:{i % 60:02d}:00+08:00</published><updated>2024-05-02T08:00:00Z</updated>"
        f"<author><name>Author {i % 5}</name><email>a{i % 5}@example.org</email></author>"
        f'<category term="cat{i % 9}"/>'
        + construct("summary", i + 1, f"Summary {i}")
        + (construct("content", i + 2, html_body(i)) if i % 4 else "")
        + "</entry>"
        for i in range(n)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom" '
        'xml:base="https://blog.example.org/base/"><title type="html">Big &amp;amp; Atom</title>'
        '<link href="/"/><link rel="self" href="/atom.xml"/>'
        f"<updated>2024-05-02T08:00:00Z</updated>{entries}</feed>"
    ).encode()


def big_rss10(n: int = 400) -> bytes:
    items = "".join(
        f'<item rdf:about="https://rdf.example.com/{i}"><title>RDF {i} 项目</title>'
        f"<link>https://rdf.example.com/{i}.html</link>"
        f"<description>Text {i} &lt;i&gt;x&lt;/i&gt;</description>"
        f"<dc:date>2024-05-{1 + i % 28:02d}T10:00:00{'+09:00' if i % 2 else 'Z'}</dc:date>"
        f"<dc:creator>Writer {i % 3}</dc:creator><dc:subject>topic{i % 4}</dc:subject></item>"
        for i in range(n)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        'xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:sy="http://purl.org/rss/1.0/modules/syndication/">'
        '<channel rdf:about="https://rdf.example.com/"><title>RDF feed</title><link>https://rdf.example.com/</link>'
        "<description>d</description><sy:updatePeriod>hourly</sy:updatePeriod>"
        "<sy:updateFrequency>2</sy:updateFrequency><items><rdf:Seq>"
        '<rdf:li resource="https://rdf.example.com/0"/></rdf:Seq></items></channel>'
        f"{items}</rdf:RDF>"
    ).encode()


@pytest.mark.parametrize(
    ("body", "headers", "fast_path"),
    [
        pytest.param(big_rss20(), {}, True, id="rss20-html-content-cjk"),
        # 镕 and 堃 are GBK, not GB2312: bytes declared gb2312 are read as GBK.
        pytest.param(
            big_rss20(encoding="gbk", declared="gb2312").replace(
                "作者".encode("gbk"), "朱镕堃".encode("gbk")
            ),
            {"content-type": "application/rss+xml; charset=gb2312"},
            True,
            id="rss20-gbk-declared-gb2312",
        ),
        pytest.param(big_atom(), {}, True, id="atom-html-text"),
        pytest.param(big_atom(xhtml=True), {}, False, id="atom-html-text-xhtml"),
        pytest.param(big_rss10(), {}, True, id="rss10-dc-date"),
    ],
)
def test_generated_feeds_lxml_reader_matches_feedparser(
    body: bytes, headers: dict[str, str], fast_path: bool
) -> None:
    fast, reference = both_paths(body, headers, timezone="Asia/Shanghai")
    assert (fast is not None) == fast_path
    assert isinstance(reference, ParsedFeed) and len(reference.items) == 400
    if fast is not None:
        assert fast == reference
    assert parse_feed(
        body, headers, url="https://example.com/feed.xml", source=SOURCE, timezone="Asia/Shanghai",
        keep_source_tags=True,
    ) == reference  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        big_atom(50).replace(b'.html"/>', b'.html?utm_source=feed&amp;utm_medium=atom"/>'),
        big_rss10(50)
        .replace(b".html</link>", b".html?utm_source=feed&amp;utm_medium=rdf</link>")
        .replace(
            b'<item rdf:about="https://rdf.example.com/',
            b'<item rdf:about="https://rdf.example.com/?p=1&amp;i=',
        ),
        big_rss20(50).replace(b"</link>", b"?a=1&amp;b=2</link>"),
    ],
    ids=["atom-href", "rdf-about", "rss-link"],
)
def test_tracking_parameters_in_links_stay_on_the_fast_path(body: bytes) -> None:
    """Query strings with '&' are in most real feeds: the fast reader must handle them, and agree."""
    assert body.count(b"&amp;") >= 50
    fast, reference = both_paths(body)
    assert fast is not None, "fell back to feedparser"
    assert fast == reference
    assert any("&" in (item.url or "") for item in fast.items)


@pytest.mark.parametrize(
    "href",
    ["http://a/b", "HTTP://A/b", "http://a/b;p", "http://a/./b/../c", "http://a?", "http://a/b#f;g",
     "https://a:0/", "https://a:99999/", "http://[::1/", "http:/a/b", "http:a", "//a/b", "/x", "x",
     "https://例子.cn/x?utm_source=1#top", "http://a/b?x=1&y=2#frag", "https://A.example.com:8080/p/路径?q=1",
     "http://a.b./x", "http://a:08/", "http://a/b#", "http://a/?x?y#z#w", "http://-a/", "http://a:65536/",
     "https://a.example/x/../y?", "http://a/b?q#", "http://example.org/a;", "http://a/b;?x=1", "http://a/b;#f",
     "https://a/b;", "http://a/b?x;y#z;"],
)  # fmt: skip
def test_links_are_made_absolute_exactly_as_joining_them_to_the_feed_url_would(href: str) -> None:
    """Absolute links skip the join (a fifth of parsing time); the result must not change for any link."""
    base = "http://example.org/feed/"
    try:
        parts = urlsplit(urljoin(base, href))
        usable = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
        joined = parts.geturl() if usable else None
    except ValueError:
        joined = None
    assert _http_url(href, base) == joined
