"""Render: output feeds checked against the Atom RELAX NG schema and read back
with feedparser; pages parsed back; the Jekyll post rebuilt from the seed."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import feedparser
import lxml.html
import pytest
from lxml import etree

from aggregator import layout
from aggregator.layout import Listing
from aggregator.models import Category, Labels, SiteConfig, SourceRef, StoredItem
from aggregator.render.atom import EMPTY_FEED_UPDATED, render_atom
from aggregator.render.html import http_url, sanitize_html
from aggregator.render.pages import render_archive_page, render_index_pages, render_jekyll_post
from aggregator.text import plain_text, shorten
from tests.seed import (
    SEED_TAG,
    SEED_TAG_PATH,
    SEED_TITLE,
    SEED_URL,
    seed_content,
    seed_content_as_sanitized,
    seed_summary,
    seed_text,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
ATOM_RNG = SHARED / "schemas" / "atom.rng"
ATOM = "{http://www.w3.org/2005/Atom}"

CST = timezone(timedelta(hours=8))
EST = timezone(timedelta(hours=-5))

LABELS = Labels(
    home="首页",
    back_to_home="返回首页",
    back_to_category="返回{title}",
    original="原文",
    tags="标签",
    category="分类",
    subscribe="订阅",
    newer="较新",
    older="较旧",
    page="第 {number} 页",
    empty="这里还没有内容。",
)
SITE = SiteConfig(
    title="Finews 财经",
    base_url="https://finews.withounder.com/",
    timezone="Asia/Shanghai",
    language="zh-CN",
    labels=LABELS,
    items_per_feed=20,
    items_per_page=4,
    categories=(Category("emnews", "东财滚动新闻"), Category("tech", "Technology")),
)

LATIN_CONTENT = (
    '<p onclick="steal()">Rust 1.80 is out.<script>alert(1)</script></p>'
    '<p><a href="javascript:alert(2)">click me</a> and <a href="/notes/">the notes</a>.</p>'
    '<img src="images/ferris.png" alt="Ferris" style="width:1px" onerror="steal()">'
    '<img src="data:image/png;base64,AAAA" alt="tracker">'
    '<iframe src="https://video.example/embed/1">no frames</iframe>'
    "<style>p{display:none}</style>"
)


def _item(
    number: int,
    *,
    title: str,
    url: str | None,
    category: str,
    published: datetime,
    summary: str = "",
    content: str = "",
    tags: tuple[str, ...] = (),
    authors: tuple[str, ...] = (),
    sources: tuple[SourceRef, ...] = (),
    updated: datetime | None = None,
) -> StoredItem:
    url_key = url or f"urn:item:{number}"
    slug = layout.slug_for(title, url_key)
    return StoredItem(
        id=number,
        entry_id=f"tag:finews.withounder.com,2022:{slug}",
        slug=slug,
        archive_path=layout.archive_path(category, published, slug),
        url=url,
        url_key=url_key,
        title=title,
        summary=summary,
        content=content,
        published=published,
        updated=updated or published,
        first_seen=published.astimezone(UTC),
        authors=authors,
        category=category,
        categories=(category,),
        tags=tags,
        sources=sources,
    )


def cjk_item() -> StoredItem:
    return _item(
        1,
        title=SEED_TITLE,
        url=SEED_URL,
        category="emnews",
        published=datetime(2022, 3, 14, 10, 55, 11, tzinfo=CST),
        summary=seed_summary(),
        content=seed_content(),
        tags=(SEED_TAG,),
        sources=(
            SourceRef(
                name="emnews",
                title="东方财富网 滚动新闻",
                url="https://rss.example.org/eastmoney/emnews.xml",
                link="http://finance.eastmoney.com/",
            ),
        ),
    )


def latin_item() -> StoredItem:
    return _item(
        2,
        title='Rust 1.80 "Ferris" <b>released</b> & more',
        url="https://blog.example.com/posts/rust-1-80.html",
        category="tech",
        published=datetime(2022, 3, 13, 21, 0, 0, tzinfo=EST),
        updated=datetime(2022, 3, 14, 9, 30, 0, tzinfo=EST),
        summary="<p>Lazy cells &amp; exclusive ranges.</p>",
        content=LATIN_CONTENT,
        tags=("Rust", "release notes"),
        authors=("Jane Doe", "John Roe"),
        sources=(
            SourceRef(name="rust", title="Rust Blog", url="https://blog.example.com/feed.xml", link=None),
            SourceRef(name="lobsters", title="Lobsters", url="https://lobste.rs/rss", link=None),
        ),
    )


# --- sanitizer ---------------------------------------------------------------------------------


def test_sanitize_removes_active_content_and_resolves_relative_urls() -> None:
    cleaned = sanitize_html(LATIN_CONTENT, "https://blog.example.com/posts/rust-1-80.html")
    for forbidden in ("<script", "alert", "onclick", "onerror", "javascript:", "data:", "<iframe", "style"):
        assert forbidden not in cleaned
    assert '<img src="https://blog.example.com/posts/images/ferris.png" alt="Ferris">' in cleaned
    assert '<a href="https://blog.example.com/notes/" rel="noopener noreferrer">the notes</a>' in cleaned
    assert '<a rel="noopener noreferrer">click me</a>' in cleaned


def test_sanitize_without_base_drops_relative_urls() -> None:
    assert sanitize_html('<a href="/x">x</a><img src="y.png">', None) == (
        '<a rel="noopener noreferrer">x</a><img>'
    )


def test_sanitize_keeps_article_structure() -> None:
    html = (
        '<h2>T</h2><table><tr><td colspan="2">c</td></tr></table><ul><li>i</li></ul>'
        "<blockquote>q</blockquote><pre><code>x</code></pre>"
        '<figure><img src="https://e.test/a.png" alt="a" title="t" width="1" height="2">'
        "<figcaption>f</figcaption></figure><center>c</center>"
    )
    cleaned = sanitize_html(html, None)
    for kept in (
        "<h2>",
        '<td colspan="2">',
        "<li>",
        "<blockquote>",
        "<pre><code>",
        '<img src="https://e.test/a.png" alt="a" title="t" width="1" height="2">',
        "<figcaption>",
        "<center>",
    ):
        assert kept in cleaned


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>One.</p><p>Two &amp; three&nbsp;four</p>", "One. Two & three four"),
        ("a<br>b<script>var x = 1;</script>\n\n  c", "a b c"),
        ("<b>bold</b>ly", "boldly"),
        ("5 < 6 &lt;b&gt;", "5 < 6 <b>"),
        ("", ""),
    ],
)
def test_plain_text(html: str, text: str) -> None:
    assert plain_text(html) == text


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://e.test/a", "https://e.test/a"),
        (" HTTP://e.test/a ", "HTTP://e.test/a"),
        ("javascript:alert(1)", None),
        ("/relative", None),
        (None, None),
    ],
)
def test_http_url(url: str | None, expected: str | None) -> None:
    assert http_url(url) == expected


def test_link_path_names_folders() -> None:
    assert layout.link_path("index.html") == ""
    assert layout.link_path("emnews/page/2/index.html") == "emnews/page/2/"
    assert layout.link_path("emnews/myindex.html") == "emnews/myindex.html"


# --- output feeds ------------------------------------------------------------------------------


def _validate_atom(data: bytes) -> etree._Element:
    """RELAX NG validation, then the three Schematron rules of RFC 4287 that RELAX NG ignores."""
    schema = etree.RelaxNG(etree.parse(str(ATOM_RNG)))
    root = etree.fromstring(data)
    assert schema.validate(root), schema.error_log
    feed_has_author = root.find(f"{ATOM}author") is not None
    for entry in root.iterfind(f"{ATOM}entry"):
        source_has_author = entry.find(f"{ATOM}source/{ATOM}author") is not None
        assert feed_has_author or source_has_author or entry.find(f"{ATOM}author") is not None
        alternates = [
            link for link in entry.iterfind(f"{ATOM}link") if link.get("rel", "alternate") == "alternate"
        ]
        assert alternates or entry.find(f"{ATOM}content") is not None
        kinds = [(link.get("type"), link.get("hreflang")) for link in alternates]
        assert len(kinds) == len(set(kinds)), "two alternate links of one type and language"
    return root


def _listings() -> list[tuple[Listing, list[StoredItem]]]:
    cjk, latin = cjk_item(), latin_item()
    return [
        (Listing("home", "", LABELS.home), [cjk, latin]),
        (Listing("category", "emnews", "东财滚动新闻"), [cjk]),
        (Listing("tag", SEED_TAG, SEED_TAG), [cjk]),
        (Listing("category", "tech", "Technology"), [latin]),
        (Listing("category", "empty", "Empty"), []),
    ]


@pytest.mark.parametrize(
    ("listing", "items"), _listings(), ids=["home", "category", "cjk-tag", "latin-category", "empty"]
)
def test_atom_validates_and_reads_back(listing: Listing, items: Sequence[StoredItem]) -> None:
    data = render_atom(SITE, listing, items)
    assert data == render_atom(SITE, listing, items), "same input, same bytes"
    root = _validate_atom(data)

    parsed = feedparser.parse(io.BytesIO(data))
    assert not parsed.bozo, parsed.get("bozo_exception")
    feed_url = layout.absolute_url(SITE.base_url, listing.feed_path)
    expected_title = SITE.title if listing.kind == "home" else f"{listing.title} · {SITE.title}"
    assert parsed.feed.title == expected_title
    assert parsed.feed.id == feed_url
    links = {link.rel: link.href for link in parsed.feed.links}
    assert links == {"self": feed_url, "alternate": layout.absolute_url(SITE.base_url, listing.folder)}
    assert parsed.feed.language == "zh-CN"
    assert [author.name for author in parsed.feed.authors] == [SITE.title]
    expected_updated = max((item.updated for item in items), default=EMPTY_FEED_UPDATED)
    assert datetime.fromisoformat(parsed.feed.updated) == expected_updated

    assert [entry.id for entry in parsed.entries] == [item.entry_id for item in items], "order kept"
    raw_entries = root.findall(f"{ATOM}entry")
    for item, entry, raw in zip(items, parsed.entries, raw_entries, strict=True):
        _check_entry(item, entry, raw)


def _check_entry(item: StoredItem, entry: feedparser.FeedParserDict, raw: etree._Element) -> None:
    assert entry.title == item.title
    rels = {link.rel: link.href for link in entry.links}
    assert rels == {
        "alternate": layout.absolute_url(SITE.base_url, item.archive_path),
        "related": item.url,
    }
    # The publisher's offset survives as written.
    assert entry.published == item.published.isoformat()
    assert entry.updated == item.updated.isoformat()
    assert [author.name for author in entry.get("authors", [])] == list(item.authors)

    terms = [(tag.term, tag.scheme, tag.label) for tag in entry.tags]
    assert terms == [
        (slug, f"{SITE.base_url}{slug}/", SITE.category_title(slug)) for slug in item.categories
    ] + [(tag, f"{SITE.base_url}tags/", None) for tag in item.tags]

    source = item.sources[0]
    assert entry.source.title == source.title
    assert entry.source.id == source.url
    assert {link.rel: link.href for link in entry.source.links}["self"] == source.url

    assert entry.summary == plain_text(item.summary)
    expected_content = sanitize_html(item.content, item.url)
    assert raw.findtext(f"{ATOM}content") == expected_content
    assert raw.find(f"{ATOM}content").get("type") == "html"
    assert entry.content[0].type == "text/html"


def test_atom_cjk_entry_details() -> None:
    data = render_atom(SITE, Listing("tag", SEED_TAG, SEED_TAG), [cjk_item()])
    text = data.decode("utf-8")
    assert "<published>2022-03-14T10:55:11+08:00</published>" in text
    assert f"https://finews.withounder.com{SEED_TAG_PATH}atom.xml" in text
    assert '<link rel="alternate" type="text/html" href="http://finance.eastmoney.com/"/>' in text
    assert "dfscdn.dfcfw.com/download/D24915042179361925738_w640h427.jpg" in text


def test_atom_drops_characters_xml_forbids() -> None:
    item = replace(latin_item(), title="Vertical\x0btab", content="<p>form\x0cfeed</p>", tags=("a\x00b",))
    data = render_atom(SITE, Listing("home", "", LABELS.home), [item])
    _validate_atom(data)
    parsed = feedparser.parse(io.BytesIO(data))
    assert parsed.entries[0].title == "Verticaltab"
    assert parsed.entries[0].tags[-1].term == "ab"


def test_atom_survives_control_characters_everywhere() -> None:
    """One stray control character used to fail the whole output feed in lxml."""
    item = replace(
        latin_item(),
        title="Bad\x01 title\ufffe",
        url="https://blog.example.com/p\x01?q=\x02",
        summary="<p>sum\x07mary \ud800</p>",
        content="<p>con\x1ftent</p>",
        tags=("ta\x03g", "\x04"),
        authors=("Jane\x05 Doe", "\x06"),
        sources=(
            SourceRef(
                name="bad", title="So\x08urce", url="https://e.test/feed\x0b.xml", link="https://e.test/\x0cx"
            ),
        ),
    )
    data = render_atom(SITE, Listing("home", "", LABELS.home), [item])
    root = _validate_atom(data)
    parsed = feedparser.parse(io.BytesIO(data))
    assert not parsed.bozo, parsed.get("bozo_exception")
    entry = parsed.entries[0]
    assert entry.title == "Bad title"
    assert {link.rel: link.href for link in entry.links}["related"] == "https://blog.example.com/p%01?q=%02"
    assert [tag.term for tag in entry.tags] == ["tech", "tag"]
    assert [author.name for author in entry.authors] == ["Jane Doe"]
    assert entry.summary == "summary"
    assert root.findtext(f"{ATOM}entry/{ATOM}content") == "<p>content</p>"
    assert entry.source.title == "Source"
    assert entry.source.id == "https://e.test/feed%0B.xml"
    assert {link.rel: link.href for link in entry.source.links} == {
        "self": "https://e.test/feed%0B.xml",
        "alternate": "https://e.test/%0Cx",
    }


@pytest.mark.parametrize(
    ("title", "url", "expected"),
    [
        ("\x01\x02", "https://blog.example.com/p?q=\x03", "https://blog.example.com/p?q=%03"),
        (" \x0b ", None, "tag:finews.withounder.com,2022:rust-1-80-ferris-b-released-b-more"),
        ("", "", "tag:finews.withounder.com,2022:rust-1-80-ferris-b-released-b-more"),
    ],
)
def test_atom_entry_title_falls_back_to_url_then_id(title: str, url: str | None, expected: str) -> None:
    item = replace(latin_item(), title=title, url=url)
    data = render_atom(SITE, Listing("home", "", LABELS.home), [item])
    _validate_atom(data)
    assert feedparser.parse(io.BytesIO(data)).entries[0].title == expected


def test_atom_entry_without_url_or_source() -> None:
    item = replace(latin_item(), url=None, sources=(), authors=(), summary="", content="")
    data = render_atom(SITE, Listing("home", "", LABELS.home), [item])
    root = _validate_atom(data)
    entry = root.find(f"{ATOM}entry")
    assert entry.find(f"{ATOM}source") is None
    assert entry.find(f"{ATOM}content") is None
    assert [link.get("rel") for link in entry.iterfind(f"{ATOM}link")] == [None]  # alternate


# --- archive page ------------------------------------------------------------------------------


def _parse_page(page: str) -> lxml.html.HtmlElement:
    assert page.startswith("<!doctype html>\n")
    return lxml.html.document_fromstring(page)


def test_archive_page_carries_what_the_seed_carries() -> None:
    item = cjk_item()
    doc = _parse_page(render_archive_page(SITE, item))
    archive_url = "https://finews.withounder.com/" + item.archive_path

    assert doc.get("lang") == "zh-CN"
    assert doc.findtext(".//title") == f"{SEED_TITLE} · {SITE.title}"
    assert doc.findtext(".//h1") == SEED_TITLE
    time = doc.find(".//article//time")
    assert time.text == "2022-03-14 10:55:11 +0800"
    assert time.get("datetime") == "2022-03-14T10:55:11+08:00"

    assert doc.xpath('//p[span[text()="分类"]]/a/@href') == ["/emnews/"]
    assert doc.xpath('//p[span[text()="标签"]]/a/@href') == [SEED_TAG_PATH]
    hrefs = {a.text_content(): a.get("href") for a in doc.iterfind(".//a")}
    assert hrefs["返回东财滚动新闻"] == "/emnews/"
    assert hrefs["返回首页"] == "/"
    assert hrefs["东方财富网 滚动新闻"] == "http://finance.eastmoney.com/"
    original = doc.xpath(f'//a[@href="{SEED_URL}"]')
    assert [a.text for a in original] == [SEED_URL]
    assert original[0].get("rel") == "noopener noreferrer"

    assert doc.findtext(".//blockquote") == seed_summary()
    content = doc.find_class("content")[0]
    assert content.xpath(".//h3")[0].text_content() == "相关报道"
    assert "https://dfscdn.dfcfw.com/download/D24915042179361925738_w640h427.jpg" in content.xpath(
        ".//img/@src"
    )

    head = {(link.get("rel"), link.get("type")): link for link in doc.iterfind(".//head/link")}
    feed_link = head[("alternate", "application/atom+xml")]
    assert feed_link.get("href") == "https://finews.withounder.com/emnews/atom.xml"
    assert feed_link.get("title") == f"东财滚动新闻 · {SITE.title}"
    assert head[("canonical", None)].get("href") == archive_url
    description = doc.xpath('//meta[@name="description"]/@content')[0]
    assert description.startswith("广东省印发广东省数字政府改革建设2022年工作要点的通知")
    assert len(description) <= 160


def test_archive_page_sanitizes_and_escapes() -> None:
    item = latin_item()
    page = render_archive_page(SITE, item)
    doc = _parse_page(page)

    assert "&lt;b&gt;released&lt;/b&gt; &amp; more" in page
    assert doc.findtext(".//h1") == item.title
    for forbidden in ("<script", "alert(", "onclick", "onerror", "javascript:", "data:image", "<iframe"):
        assert forbidden not in page
    content = doc.find_class("content")[0]
    assert content.xpath(".//img/@src") == ["https://blog.example.com/posts/images/ferris.png"]
    assert content.xpath('.//a[text()="the notes"]/@href') == ["https://blog.example.com/notes/"]
    assert doc.find_class("authors")[0].text == "Jane Doe, John Roe"
    assert doc.find_class("sources")[0].text_content() == "Rust Blog, Lobsters"
    assert doc.findtext(".//blockquote") == "Lazy cells & exclusive ranges."
    assert doc.find(".//article//time").text == "2022-03-13 21:00:00 -0500"
    tag_links = [a.get("href") for a in doc.xpath('//a[@rel="tag"]')]
    assert tag_links == ["/tags/Rust/", "/tags/release%20notes/"]


def test_archive_page_omits_a_summary_that_repeats_the_content() -> None:
    item = replace(latin_item(), summary="<p>Same text.</p>", content="<p>Same   text.</p>")
    assert _parse_page(render_archive_page(SITE, item)).find(".//blockquote") is None


# --- index pages -------------------------------------------------------------------------------


def _many_items(count: int) -> list[StoredItem]:
    start = datetime(2022, 3, 1, 8, 0, 0, tzinfo=CST)
    items = [
        _item(
            100 + n,
            title=f"Item number {n}",
            url=f"https://news.example.org/{n}.html",
            category="tech" if n % 2 else "emnews",
            published=start + timedelta(hours=n),
            summary=f"Summary {n}",
        )
        for n in range(count)
    ]
    return sorted(items, key=lambda item: item.published, reverse=True)


def _entry_titles(doc: lxml.html.HtmlElement) -> list[str]:
    return [h2.text_content() for h2 in doc.iterfind(".//article/h2")]


def _nav(doc: lxml.html.HtmlElement) -> dict[str, str]:
    return {a.get("rel"): a.get("href") for a in doc.xpath('//nav[@class="pages"]/a')}


def test_index_pages_front_page_newest_then_fixed_pages_from_the_oldest() -> None:
    items = _many_items(10)  # newest first; 2.5 pages of 4
    pages = render_index_pages(SITE, Listing("home", "", LABELS.home), items)

    assert [path for path, _ in pages] == ["index.html", "page/1/index.html", "page/2/index.html"]
    docs = [_parse_page(page) for _, page in pages]
    titles = [_entry_titles(doc) for doc in docs]
    assert titles[0] == [f"Item number {n}" for n in (9, 8, 7, 6)], "the front page: the newest four"
    assert titles[1] == [f"Item number {n}" for n in (3, 2, 1, 0)], "page 1: the four oldest"
    assert titles[2] == [f"Item number {n}" for n in (7, 6, 5, 4)], "page 2: the next four, never shifting"

    assert _nav(docs[0]) == {"next": "/page/2/"}
    assert _nav(docs[2]) == {"prev": "/", "next": "/page/1/"}
    assert _nav(docs[1]) == {"prev": "/page/2/"}
    assert docs[2].findtext(".//title") == f"{SITE.title} · 第 2 页"
    assert docs[2].xpath('//link[@rel="canonical"]/@href') == ["https://finews.withounder.com/page/2/"]

    later = render_index_pages(SITE, Listing("home", "", LABELS.home), _many_items(11))
    assert later[1] == pages[1] and later[2] == pages[2], "a new item leaves the numbered pages alone"

    first = docs[0]
    assert first.xpath('//a[text()="订阅"]/@href') == ["/atom.xml"]
    assert first.xpath('//link[@type="application/atom+xml"]/@href') == [
        "https://finews.withounder.com/atom.xml"
    ]
    category_links = first.xpath("//nav/ul/li/a")
    assert [(a.text, a.get("href")) for a in category_links] == [
        ("东财滚动新闻", "/emnews/"),
        ("Technology", "/tech/"),
    ]
    entry = first.find(".//article")
    assert entry.xpath(".//h2/a/@href") == ["/" + items[0].archive_path]
    assert entry.find(".//time").text == "2022-03-01"
    assert entry.xpath(".//p/a/text()") == ["Technology"]
    assert entry.xpath("./p[2]/text()") == ["Summary 9"]


def test_index_excerpt_is_cut_at_a_word_boundary() -> None:
    words = " ".join(f"word{n}" for n in range(40))  # 269 characters
    item = replace(latin_item(), summary=f"<p>{words}</p>")
    pages = render_index_pages(SITE, Listing("home", "", LABELS.home), [item])
    excerpt = _parse_page(pages[0][1]).xpath("//article/p[2]/text()")[0]
    assert excerpt == shorten(words, 140)
    assert excerpt.endswith("…")
    assert words.startswith(excerpt[:-1] + " "), "no word cut in half"
    assert len(excerpt) <= 140


def test_tag_index_pages_use_percent_encoded_folders() -> None:
    listing = Listing("tag", SEED_TAG, SEED_TAG)
    site = replace(SITE, items_per_page=1)
    pages = render_index_pages(site, listing, [cjk_item(), cjk_item()])
    assert [path for path, _ in pages] == [
        f"tags/{SEED_TAG}/index.html",
        f"tags/{SEED_TAG}/page/1/index.html",
    ]
    second = _parse_page(pages[1][1])
    assert _nav(second) == {"prev": SEED_TAG_PATH}
    assert second.xpath('//a[text()="订阅"]/@href') == [SEED_TAG_PATH + "atom.xml"]
    assert second.findtext(".//h1") == SEED_TAG
    assert not second.xpath("//nav/ul"), "only the home page lists the categories"


def test_empty_listing_has_one_friendly_page() -> None:
    pages = render_index_pages(SITE, Listing("category", "emnews", "东财滚动新闻"), [])
    assert [path for path, _ in pages] == ["emnews/index.html"]
    doc = _parse_page(pages[0][1])
    assert doc.find_class("empty")[0].text == "这里还没有内容。"
    assert doc.find(".//article") is None
    assert doc.xpath('//nav[@class="pages"]') == []
    assert doc.xpath('//a[text()="订阅"]/@href') == ["/emnews/atom.xml"]


# --- Jekyll post -------------------------------------------------------------------------------


def test_jekyll_post_rebuilds_the_seed() -> None:
    seed = seed_text()
    seed_lines = seed.split("\n")
    item = cjk_item()
    path, text = render_jekyll_post(SITE, item)
    lines = text.split("\n")

    assert path == f"_posts/2022-03-14-{item.slug}.md"
    assert len(lines) == len(seed_lines) == 14
    assert lines[:7] == seed_lines[:7], "front matter"
    assert lines[7] == seed_lines[7], "summary"
    assert lines[11] == seed_lines[11], "original URL"
    assert lines[13] == seed_lines[13], "back links"
    assert lines[8] == lines[10] == lines[12] == ""
    assert not text.endswith("\n") and not seed.endswith("\n")

    # The content line differs from the seed only by what the sanitizer does.
    assert lines[9] != seed_lines[9]
    assert lines[9] == seed_content_as_sanitized(seed_lines[9])
    everything_but_content = [*lines[:9], *lines[10:]]
    assert everything_but_content == [*seed_lines[:9], *seed_lines[10:]]


def test_jekyll_post_quotes_what_yaml_and_markdown_would_misread() -> None:
    item = replace(latin_item(), title='Say "hi" \\ bye', summary="a < b & c")
    _, text = render_jekyll_post(SITE, item)
    lines = text.split("\n")
    assert lines[2] == 'title: "Say \\"hi\\" \\\\ bye"'
    assert lines[3] == "date: 2022-03-13 21:00:00 -0500"
    assert lines[4] == "categories: tech"
    assert lines[5] == 'tags: ["Rust", "release notes"]'
    assert lines[7] == "> a &lt; b &amp; c"
    assert lines[-1] == (
        "[返回Technology](//finews.withounder.com/tech/)｜[返回首页](//finews.withounder.com/)"
    )


@pytest.mark.parametrize(
    ("tags", "line"),
    [
        (("东财滚动新闻", "Rust"), "tags: 东财滚动新闻 Rust"),
        (("C++", "node.js"), "tags: C++ node.js"),
        ((), "tags: []"),
        (("#hash",), 'tags: ["#hash"]'),
        (("yes",), 'tags: ["yes"]'),
        (("2022",), 'tags: ["2022"]'),
        (("a: b",), 'tags: ["a: b"]'),
    ],
)
def test_jekyll_tags(tags: tuple[str, ...], line: str) -> None:
    _, text = render_jekyll_post(SITE, replace(cjk_item(), tags=tags))
    assert text.split("\n")[5] == line


def test_jekyll_post_without_summary_or_url() -> None:
    item = replace(cjk_item(), summary="", url=None, content="<p>正文</p>")
    _, text = render_jekyll_post(SITE, item)
    assert text.split("\n")[6:] == [
        "---",
        "<p>正文</p>",
        "",
        "[返回东财滚动新闻](//finews.withounder.com/emnews/)｜[返回首页](//finews.withounder.com/)",
    ]


def test_jekyll_post_url_is_the_archive_path_even_with_several_categories() -> None:
    """Jekyll's default permalink is /:categories/:year/:month/:day/:title.html."""
    item = replace(cjk_item(), categories=("emnews", "tech"))
    path, text = render_jekyll_post(SITE, item)
    assert text.split("\n")[4] == "categories: emnews"
    year, month, day, slug = path.removeprefix("_posts/").removesuffix(".md").split("-", 3)
    assert f"emnews/{year}/{month}/{day}/{slug}.html" == item.archive_path


def _jekyll_blocks(item: StoredItem) -> list[str]:
    """The post's body, block by block (front matter left out)."""
    _, text = render_jekyll_post(SITE, item)
    return text.split("\n---\n", 1)[1].split("\n\n")


def test_jekyll_autolink_cannot_be_ended_early() -> None:
    item = replace(cjk_item(), url="https://example.com/p3?q=><img src=x onerror=alert(1)>")
    original = _jekyll_blocks(item)[2]
    assert original == "<https://example.com/p3?q=%3E%3Cimg%20src=x%20onerror=alert(1)%3E>"


@pytest.mark.parametrize(
    ("url", "autolink"),
    [
        (SEED_URL, f"<{SEED_URL}>"),
        ('https://e.test/a b"c{{d}}', "<https://e.test/a%20b%22c%7B%7Bd%7D%7D>"),
        ("https://e.test/新闻?q=1&r=[2]#x", "<https://e.test/%E6%96%B0%E9%97%BB?q=1&r=[2]#x>"),
        ("https://e.test/already%20encoded\\path\x01", "<https://e.test/already%20encoded\\path%01>"),
    ],
)
def test_jekyll_autolink_percent_encodes_what_a_url_cannot_hold(url: str, autolink: str) -> None:
    assert _jekyll_blocks(replace(cjk_item(), url=url))[2] == autolink


def test_jekyll_post_neutralises_liquid() -> None:
    """Jekyll evaluates {{ }} and {% %} in a post before Markdown; the entity renders as "{"."""
    item = replace(
        cjk_item(),
        summary="{{ site.secret }} and {% include x.html %}",
        content="<p>{{ page.x }} {%raw%} {{{ { }</p><a href='https://e.test/{{y}}'>z</a>",
    )
    _, text = render_jekyll_post(SITE, item)
    body = text.split("\n---\n", 1)[1]
    assert "{{" not in body and "{%" not in body
    summary, content = body.split("\n\n")[:2]
    assert summary == "> &#123;&#123; site\\.secret \\}\\} and &#123;% include x\\.html %\\}"
    assert content == (
        "<p>&#123;{ page.x }} &#123;%raw%} &#123;&#123;{ { }</p>"
        '<p><a href="https://e.test/&#123;{y}}" rel="noopener noreferrer">z</a></p>'
    )
    assert lxml.html.fromstring(content).xpath("//a/@href") == ["https://e.test/{{y}}"]


def test_jekyll_summary_escapes_markdown() -> None:
    summary = "Click [here](javascript:alert(1)) *now* _or_ `never` \\ # 1. ~~x~~ $$y$$ a|b &lt;i> & 'q' -- !"
    item = replace(latin_item(), summary=summary)
    assert _jekyll_blocks(item)[0] == (
        "> Click \\[here\\]\\(javascript\\:alert\\(1\\)\\) \\*now\\* \\_or\\_ \\`never\\` \\\\ "
        "\\# 1\\. &#126;&#126;x&#126;&#126; \\$\\$y\\$\\$ a\\|b &lt;i&gt; &amp; \\'q\\' \\-\\- \\!"
    )


@pytest.mark.parametrize(
    ("content", "block"),
    [
        # Plain text from a text-only source: kramdown would make the link live.
        ("Click [here](javascript:alert(1)) now", "<p>Click [here](javascript:alert(1)) now</p>"),
        ("Two *inline* <b>parts</b>", "<p>Two *inline* <b>parts</b></p>"),
        # Text after a block element is read as Markdown too.
        ("<p>a</p>tail [x](javascript:1)<h2>b</h2>", "<p>a</p><p>tail [x](javascript:1)</p><h2>b</h2>"),
        # Indented, kramdown would show the second paragraph as a code block.
        ("  <p>a</p>\n    <p>b</p>\n", "<p>a</p>\n<p>b</p>"),
        ('<p>a</p><img src="https://e.test/i.png">', '<p>a</p><p><img src="https://e.test/i.png"></p>'),
        ("<div><p>x</p> *y*</div><ul><li>[z](q)</li></ul>",) * 2,  # inside blocks: left alone
    ],
)
def test_jekyll_content_is_block_html_only(content: str, block: str) -> None:
    item = replace(cjk_item(), summary="", content=content)
    assert _jekyll_blocks(item)[0] == block


def test_jekyll_content_of_whitespace_alone_is_left_out() -> None:
    item = replace(cjk_item(), summary="", content=" \n ")
    assert len(_jekyll_blocks(item)) == 2  # the original URL and the back links


# --- embeds, srcset, links and titles (site.iframe_hosts) ---------------------------------------

EMBED_SITE = replace(SITE, iframe_hosts=("www.youtube-nocookie.com", "player.vimeo.com"))
EMBED_CONTENT = (
    '<p>Watch:</p><iframe src="https://www.youtube-nocookie.com/embed/abc" width="560" height="315" '
    'onload="steal()" style="border:0" allowfullscreen><script>alert(1)</script></iframe>'
    '<iframe src="http://player.vimeo.com/video/1">plain http</iframe>'
    '<iframe src="https://evil.example/embed">other host</iframe>'
    '<iframe src="/embed/relative">relative</iframe>'
    '<iframe src="javascript:alert(3)">scheme</iframe>'
    '<img src="img/a.png" srcset="img/a.png 1x, /img/b.png 2x, data:image/png;base64,AA 3x" alt="chart">'
    '<p><a href="../other.html" target="_blank">related</a> '
    '<a href="data:text/html,&lt;script&gt;alert(4)&lt;/script&gt;">data</a></p>'
)


def embed_item() -> StoredItem:
    return _item(
        7,
        title='<script>alert("t")</script> Embeds & "frames"',
        url="https://video.example.com/news/2022/embeds.html",
        category="tech",
        published=datetime(2022, 3, 14, 10, 0, tzinfo=CST),
        content=EMBED_CONTENT,
    )


def _content_of_page(site: SiteConfig, item: StoredItem) -> lxml.html.HtmlElement:
    return _parse_page(render_archive_page(site, item)).find_class("content")[0]


def test_only_https_iframes_from_allowed_hosts_survive_and_empty() -> None:
    content = _content_of_page(EMBED_SITE, embed_item())
    [frame] = content.xpath(".//iframe")
    assert frame.get("src") == "https://www.youtube-nocookie.com/embed/abc"
    assert dict(frame.attrib) == {
        "src": "https://www.youtube-nocookie.com/embed/abc",
        "width": "560",
        "height": "315",
        "allowfullscreen": "",
    }
    assert len(frame) == 0 and not (frame.text or "").strip()
    page = render_archive_page(EMBED_SITE, embed_item())
    article = lxml.html.tostring(content, encoding="unicode")
    for forbidden in ("alert(", "evil.example", "plain http", "/embed/relative", "onload", "javascript:"):
        assert forbidden not in article
    assert "other host" not in page  # nor in the description taken from the content


def test_without_allowed_hosts_every_iframe_goes() -> None:
    assert _content_of_page(replace(SITE, iframe_hosts=()), embed_item()).xpath(".//iframe") == []


def test_relative_urls_resolve_against_the_article_and_links_get_rel() -> None:
    content = _content_of_page(EMBED_SITE, embed_item())
    [image] = content.xpath(".//img")
    assert image.get("src") == "https://video.example.com/news/2022/img/a.png"
    assert image.get("srcset") == (
        "https://video.example.com/news/2022/img/a.png 1x, https://video.example.com/img/b.png 2x"
    )
    links = content.xpath(".//a")
    assert [(a.get("href"), a.get("rel"), a.get("target")) for a in links] == [
        ("https://video.example.com/news/other.html", "noopener noreferrer", None),
        (None, "noopener noreferrer", None),  # a data: link loses its href
    ]


def test_titles_are_plain_text_on_pages_index_and_atom() -> None:
    item = embed_item()
    page = _parse_page(render_archive_page(EMBED_SITE, item))
    assert page.findtext(".//h1") == item.title
    assert page.findtext(".//title").startswith(item.title)
    assert page.xpath("//script") == []
    [(_, index)] = render_index_pages(EMBED_SITE, Listing("home", "", LABELS.home), [item])
    assert _parse_page(index).xpath("//h2/a/text()") == [item.title]
    feed = etree.fromstring(render_atom(EMBED_SITE, Listing("home", "", LABELS.home), [item]))
    [title] = feed.findall(f"{ATOM}entry/{ATOM}title")
    assert (title.text, title.get("type", "text")) == (item.title, "text")
    [entry_content] = feed.findall(f"{ATOM}entry/{ATOM}content")
    assert lxml.html.fragment_fromstring(entry_content.text, create_parent="div").xpath(".//iframe/@src") == [
        "https://www.youtube-nocookie.com/embed/abc"
    ]
