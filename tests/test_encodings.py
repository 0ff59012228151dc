"""Encodings: real GBK, GB2312, Big5 and Shift_JIS bytes served over loopback with conflicting declarations.

Each feed is encoded with Python's codecs from real Chinese or Japanese text,
served by a real HTTP server with a Content-Type the test chooses, fetched
with the aggregator's own fetch() and read by parse_feed(), as a poll does.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from aggregator.charset import Decoded, decode_document
from aggregator.config import load_config
from aggregator.errors import ConfigError
from aggregator.fetch import fetch, make_session
from aggregator.models import FetchPolicy, ParsedFeed
from aggregator.parse import parse_feed
from tests.httpserver import LoopbackServer, respond

POLICY = FetchPolicy("test/1.0", 5, 5, 10, 1024**2, 3)

GB2312_TEXT = "人民银行宣布下调存款准备金率"  # every character is in GB2312
GBK_TEXT = "朱镕基与陶喆谈经济"  # 镕 and 喆 are in GBK, not in GB2312
BIG5_TEXT = "臺灣經濟日報：半導體出口創新高"
SHIFT_JIS_TEXT = "日本経済新聞：東京株式市場は続伸"
CP932_TEXT = "①㈱日本電気の決算"  # NEC extensions: in Windows' Shift_JIS (cp932) only


def feed_text(title: str, declared: str | None) -> str:
    declaration = f'<?xml version="1.0" encoding="{declared}"?>\n' if declared else ""
    return (
        f'{declaration}<rss version="2.0"><channel><title>{title}</title>'
        "<link>https://news.example.cn/</link><description>d</description>"
        f"<item><title>{title}</title><link>https://news.example.cn/a/1.html</link>"
        f"<description>{title}。</description></item></channel></rss>"
    )


def poll(body: bytes, content_type: str | None, *, encoding: str | None = None) -> ParsedFeed:
    """Serve `body` on loopback, fetch it and parse it the way update.py does."""

    def handle(request: BaseHTTPRequestHandler) -> None:
        respond(request, 200, body, {"Content-Type": content_type} if content_type else {})

    with LoopbackServer(handle) as server, make_session(POLICY) as session:
        fetched = fetch(session, server.url("/feed.xml"), POLICY)
    return parse_feed(
        fetched.body,
        fetched.headers,
        url=fetched.final_url,
        source="test",
        timezone="Asia/Shanghai",
        keep_source_tags=False,
        encoding=encoding,
    )


@dataclass(frozen=True)
class Case:
    text: str
    real: str  # the codec the bytes are really in
    content_type: str | None  # what the server says
    declared: str | None  # what the XML declaration says
    bom: bool = False


CASES = {
    "gbk-declared-gb2312-everywhere": Case(GBK_TEXT, "gbk", "text/xml; charset=gb2312", "gb2312"),
    "gbk-declared-gb2312-no-http-charset": Case(GBK_TEXT, "gbk", "text/xml", "gb2312"),
    "gb2312-declared-gb2312": Case(GB2312_TEXT, "gb2312", "application/rss+xml", "gb2312"),
    # A server default of ISO-8859-1 "decodes" anything: the document's own declaration wins.
    "gbk-under-server-default-latin1": Case(GBK_TEXT, "gbk", "text/xml; charset=ISO-8859-1", "gbk"),
    "big5-under-server-default-latin1": Case(BIG5_TEXT, "big5", "text/xml; charset=iso-8859-1", "big5"),
    # HTTP says UTF-8 and the bytes are not UTF-8: the declaration is next.
    "big5-declared-big5-http-utf8": Case(BIG5_TEXT, "big5", "application/xml; charset=utf-8", "big5"),
    # HTTP charset that decodes cleanly beats a wrong XML declaration.
    "shift-jis-http-over-wrong-declaration": Case(
        SHIFT_JIS_TEXT, "shift_jis", "application/xml; charset=Shift_JIS", "utf-8"
    ),
    "cp932-characters-declared-shift-jis": Case(CP932_TEXT, "cp932", "text/xml", "Shift_JIS"),
    # A BOM cannot be there by accident: it beats both declarations.
    "utf8-bom-beats-http-and-declaration": Case(
        SHIFT_JIS_TEXT, "utf-8", "text/xml; charset=iso-8859-1", "shift_jis", bom=True
    ),
    "gbk-declared-nowhere": Case(GBK_TEXT * 4, "gbk", "text/xml", None),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_conflicting_declarations_decode_without_mojibake(case: Case) -> None:
    body = (codecs.BOM_UTF8 if case.bom else b"") + feed_text(case.text, case.declared).encode(case.real)
    assert not body.isascii()
    feed = poll(body, case.content_type)
    assert feed.title == case.text
    [item] = feed.items
    assert (item.title, item.summary) == (case.text, case.text + "。")


def test_gbk_bytes_really_are_outside_gb2312() -> None:
    with pytest.raises(UnicodeDecodeError):
        GBK_TEXT.encode("gbk").decode("gb2312")
    with pytest.raises(UnicodeDecodeError):
        CP932_TEXT.encode("cp932").decode("shift_jis")


def test_per_source_encoding_overrides_every_declaration() -> None:
    """Server and document both claim UTF-8; only the source's `encoding:` knows it is GB18030."""
    body = feed_text(GBK_TEXT, "utf-8").encode("gb18030")
    wrong = poll(body, "application/rss+xml; charset=utf-8")
    assert wrong.items[0].title != GBK_TEXT and "\ufffd" in wrong.items[0].title
    right = poll(body, "application/rss+xml; charset=utf-8", encoding="gb18030")
    assert right.items[0].title == GBK_TEXT


def test_one_corrupt_byte_costs_one_character_not_the_page() -> None:
    body = feed_text(GB2312_TEXT, "gb2312").encode("gb2312")
    corrupt = body.replace("下调".encode("gb2312"), b"\xff\xff", 1)
    feed = poll(corrupt, "text/xml")
    assert feed.title.startswith("人民银行宣布") and feed.title.endswith("存款准备金率")
    assert "\ufffd" in feed.title


@pytest.mark.parametrize("declaration", ['<?xml version="1.0"?>\n', ""], ids=["no-encoding", "none"])
def test_a_meta_charset_quoted_inside_a_utf8_feed_does_not_decide_its_encoding(declaration: str) -> None:
    """XML without a BOM, an encoding declaration or an HTTP charset is UTF-8 (XML 1.0, 4.3.3)."""
    title = "央行降准"
    page = f'<html><head><meta charset="gbk"></head><body><p>{title}释放长期资金</p></body></html>'
    body = (
        f'{declaration}<rss version="2.0"><channel><title>{title}</title>'
        "<link>https://news.example.cn/</link><description>d</description>"
        f"<item><title>{title}</title><link>https://news.example.cn/a/1.html</link>"
        f"<description><![CDATA[{page}]]></description></item></channel></rss>"
    ).encode()
    assert body.decode("gb18030") != body.decode()  # the premise: the bytes "decode" as GBK too

    feed = poll(body, "application/rss+xml")
    assert feed.title == title
    [item] = feed.items
    assert item.title == title and f"{title}释放长期资金" in item.summary


@pytest.mark.parametrize(
    ("body", "headers", "reason"),
    [
        (codecs.BOM_UTF8 + "é".encode(), {"content-type": "text/html; charset=gbk"}, "bom"),
        ("漢字".encode("big5"), {"Content-Type": "text/html; charset=big5"}, "http"),
        (b'<meta charset="gbk"><p>' + GBK_TEXT.encode("gbk"), {}, "declared"),
        ("漢字".encode(), {"content-type": "text/xml"}, "utf-8"),
    ],
)
def test_the_rule_that_chose_the_encoding_is_reported(
    body: bytes, headers: dict[str, str], reason: str
) -> None:
    assert decode_document(body, headers, html=True).reason == reason


def test_only_html_reads_its_charset_from_a_meta_tag() -> None:
    body = '<meta charset="gbk"><p>央行降准</p>'.encode()
    assert decode_document(body, {}, html=True).encoding == "gb18030"  # as browsers read a page
    assert decode_document(body, {}) == Decoded(body.decode(), "utf-8", "utf-8")


def test_unknown_encoding_is_a_config_error_naming_the_source(tmp_path: Path) -> None:
    config = tmp_path / "sources.yaml"
    config.write_text(
        'site: {title: T, base_url: "https://example.org/"}\n'
        "sources:\n"
        '  - {name: cn, url: "https://example.cn/rss", category: news, encoding: gb9999}\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"source 'cn': encoding: unknown encoding 'gb9999'"):
        load_config(config)
    config.write_text(config.read_text().replace("gb9999", "GB18030"), encoding="utf-8")
    assert load_config(config).source("cn").encoding == "GB18030"
