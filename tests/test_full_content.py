"""full_content end to end on loopback, and the guard against private addresses.

A feed that carries only summaries and the article pages it links to are
served from 127.0.0.1; the real command polls and publishes into a real
SQLite file or PostgreSQL, and the archive pages are read back.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from lxml import etree, html

from aggregator.config import load_config
from aggregator.errors import ConfigError, FetchError
from aggregator.extract import extract_article
from aggregator.fetch import address_refusal, fetch, make_session
from aggregator.models import FetchPolicy, FullContentSpec
from tests.feedserver import FeedServer
from tests.httpserver import LoopbackServer, respond
from tests.sample_feeds import Article, rss2

BASE_URL = "https://archive.example.org/"
POLICY = FetchPolicy(
    user_agent="aggregator-test/1.0", connect_timeout=2.0, read_timeout=5.0, deadline=5.0,
    max_bytes=1024 * 1024, max_redirects=5,
)  # fmt: skip

ARTICLES = {
    "/news/1.html": (
        "广东省：建设省数据交易场所",
        "广东省印发数字政府改革建设2022年工作要点。",
        [
            "东方财富网3月14日讯，广东省人民政府办公厅印发《广东省数字政府改革建设2022年工作要点》的通知。",
            "通知提出，全面推进数据要素市场化配置改革，建设省数据交易场所，推动数据要素有序流通。",
            "通知还提出，加快推进数字政府建设，深化平台应用，提升政务服务一体化水平。",
        ],
    ),
    "/news/2.html": (
        "Port traffic doubles",
        "Container volumes doubled in March.",
        [
            "Container volumes at the port doubled in March compared with a year earlier, officials said.",
            "Officials credited new berths opened in January and longer opening hours at the terminals.",
            "Shipping lines expect the growth to continue through the summer as new routes are added.",
        ],
    ),
}
AD = "Advertisement: open an account today and win a prize"
SCRIPT = "trackVisitor('article')"


def article_page(title: str, paragraphs: list[str], *, charset: str = "utf-8") -> str:
    """A realistic news page: navigation, sidebar, the article with an ad and a script, a footer."""
    body = "\n".join(f"<p>{text}</p>" for text in paragraphs[:1])
    body += f'\n<div class="ad">{AD}</div>\n<script>{SCRIPT}</script>\n'
    body += "\n".join(f"<p>{text}</p>" for text in paragraphs[1:])
    return f"""<!DOCTYPE html>
<html><head><meta charset="{charset}"><title>{title} - Example News</title>
<script>var analytics = "{SCRIPT}";</script></head>
<body>
<div class="header"><ul class="nav"><li><a href="/">Home</a></li><li><a href="/markets">Markets</a></li>
<li><a href="/world">World</a></li><li><a href="/about">About us</a></li></ul></div>
<div class="sidebar"><h3>Most read</h3><ul><li><a href="/a/7">Stocks close higher</a></li>
<li><a href="/a/8">Central bank keeps rates</a></li><li><a href="/a/9">Oil prices fall</a></li></ul></div>
<div class="main"><h1>{title}</h1><div class="time">2022-03-14 10:55</div>
<div id="ContentBody" class="article">
{body}
<p><a href="../related/3.html">Related coverage</a></p>
</div></div>
<div class="footer"><p>Copyright Example News. Contact us. Terms of use. Privacy policy.</p></div>
</body></html>"""


def feed_of(server: FeedServer, paths: list[str]) -> bytes:
    """The feed: title, link and summary only, as many publishers truncate."""
    articles = [
        Article(ARTICLES[path][0], server.url(path), "Mon, 14 Mar 2022 10:55:11 +0800", ARTICLES[path][1])
        for path in paths
    ]
    return rss2("Example News", server.url("/"), articles)


@dataclass
class Site:
    config: Path
    output: Path
    env: dict[str, str]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        completed = subprocess.run(
            [sys.executable, "-m", "aggregator", "-c", str(self.config), *args],
            capture_output=True, text=True, env=self.env, timeout=120,
        )  # fmt: skip
        assert completed.returncode == 0, completed.stderr
        assert "Traceback" not in completed.stderr, completed.stderr
        return completed

    def page(self, title: str) -> html.HtmlElement:
        """The archive page whose heading is `title`."""
        for path in self.output.rglob("*.html"):
            if path.name != "index.html":
                document = html.fromstring(path.read_text(encoding="utf-8"))
                if document.findtext(".//h1") == title:
                    return document
        raise AssertionError(f"no archive page for {title!r}")

    def content(self, title: str) -> str:
        return " ".join(self.page(title).xpath('string(//div[@class="content"])').split())

    def summary(self, title: str) -> str:
        return " ".join(self.page(title).xpath("string(//blockquote)").split())


MakeSite = Callable[..., Site]


@pytest.fixture
def make_site(tmp_path: Path, feed_server: FeedServer, database_url: str) -> Iterator[MakeSite]:
    def make(full_content: str, *, allow_private: bool = True, extra: str = "") -> Site:
        config = tmp_path / "config.yaml"
        private = ", allow_private: true" if allow_private else ""
        config.write_text(
            f"""
site: {{title: Full, base_url: "{BASE_URL}", timezone: Asia/Shanghai}}
database: "sqlite:///data/aggregator.db"
output: {{dir: out}}
defaults: {{interval: 30m, timeout: 5s}}
sources:
  - {{name: news, url: "{feed_server.url("/feed.xml")}", category: news,
     full_content: {full_content}{private}{extra}}}
""",
            encoding="utf-8",
        )
        env = {**os.environ, "AGGREGATOR_DATABASE_URL": database_url}
        return Site(config=config, output=tmp_path / "out", env=env)

    yield make


def serve_site(server: FeedServer, paths: list[str]) -> None:
    server.serve("/feed.xml", feed_of(server, paths))
    for path in paths:
        title, _, paragraphs = ARTICLES[path]
        server.serve(path, article_page(title, paragraphs), content_type="text/html; charset=utf-8")


def test_selector_takes_the_article_without_boilerplate(make_site: MakeSite, feed_server: FeedServer) -> None:
    serve_site(feed_server, ["/news/1.html", "/news/2.html"])
    site = make_site('{selector: "#ContentBody", remove: [".ad", "script"]}')

    site.run("run", "--once")

    for path, (title, summary, paragraphs) in ARTICLES.items():
        content = site.content(title)
        assert all(paragraph in content for paragraph in paragraphs), content
        assert AD not in content and SCRIPT not in content and "Most read" not in content
        assert site.summary(title) == summary  # the feed's summary stays the summary
        links = site.page(title).xpath('//div[@class="content"]//a/@href')
        assert links == [feed_server.url("/related/3.html")]  # made absolute against the page
        assert len(feed_server.hits(path)) == 1


def test_readability_finds_the_article_body(make_site: MakeSite, feed_server: FeedServer) -> None:
    serve_site(feed_server, ["/news/1.html", "/news/2.html"])
    site = make_site("true")

    site.run("run", "--once")

    for title, summary, paragraphs in ARTICLES.values():
        content = site.content(title)
        assert all(paragraph in content for paragraph in paragraphs), content
        assert SCRIPT not in content
        assert "Most read" not in content and "Privacy policy" not in content and "About us" not in content
        assert site.summary(title) == summary


def test_private_address_is_refused_and_the_item_kept(make_site: MakeSite, feed_server: FeedServer) -> None:
    serve_site(feed_server, ["/news/1.html"])
    site = make_site('{selector: "#ContentBody"}', allow_private=False)

    completed = site.run("run", "--once")

    title, summary, paragraphs = ARTICLES["/news/1.html"]
    assert site.content(title) == summary  # the feed's own content
    assert paragraphs[1] not in site.content(title)
    assert feed_server.hits("/news/1.html") == []  # not even connected to
    url = feed_server.url("/news/1.html")
    expected = f"refused to connect to 127.0.0.1 (loopback address) for {url}"
    line = next((line for line in completed.stderr.splitlines() if expected in line), "")
    assert "source=news" in line and f"url={url}" in line, completed.stderr


def test_failing_pages_keep_the_feed_content(make_site: MakeSite, feed_server: FeedServer) -> None:
    feed_server.serve("/feed.xml", feed_of(feed_server, ["/news/1.html", "/news/2.html"]))
    feed_server.serve("/news/1.html", "<html><body>oops</body></html>", status=500, content_type="text/html")
    title, _, paragraphs = ARTICLES["/news/2.html"]
    feed_server.serve("/news/2.html", article_page(title, paragraphs), content_type="text/html", delay=3.0)
    site = make_site('{selector: "#ContentBody"}', extra=", timeout: 1s")

    completed = site.run("run", "--once")

    for path, reason in (("/news/1.html", "HTTP 500"), ("/news/2.html", "timeout")):
        title, summary, _ = ARTICLES[path]
        assert site.content(title) == summary
        line = next(line for line in completed.stderr.splitlines() if feed_server.url(path) in line)
        assert "source=news" in line and reason in line, line


def test_selector_matching_nothing_keeps_feed_content(make_site: MakeSite, feed_server: FeedServer) -> None:
    serve_site(feed_server, ["/news/2.html"])
    site = make_site('{selector: "#ArticleText"}')

    completed = site.run("run", "--once")

    title, summary, _ = ARTICLES["/news/2.html"]
    assert site.content(title) == summary
    url = feed_server.url("/news/2.html")
    assert f"selector '#ArticleText' matched nothing on {url}" in completed.stderr


def test_a_link_to_something_else_than_a_page_keeps_the_feed_content(
    make_site: MakeSite, feed_server: FeedServer
) -> None:
    feed_server.serve("/feed.xml", feed_of(feed_server, ["/news/1.html"]))
    title, _, paragraphs = ARTICLES["/news/1.html"]
    feed_server.serve("/news/1.html", article_page(title, paragraphs), content_type="application/pdf")
    site = make_site("true")

    completed = site.run("run", "--once")

    title, summary, _ = ARTICLES["/news/1.html"]
    assert site.content(title) == summary
    assert f"not an HTML page (application/pdf) at {feed_server.url('/news/1.html')}" in completed.stderr


@pytest.mark.parametrize("update", [False, True])
def test_only_new_items_are_fetched_again(make_site: MakeSite, feed_server: FeedServer, update: bool) -> None:
    serve_site(feed_server, ["/news/1.html"])
    site = make_site(f'{{selector: "#ContentBody", update: {str(update).lower()}}}')
    site.run("run", "--once")
    first_title, _, first_paragraphs = ARTICLES["/news/1.html"]
    assert len(feed_server.hits("/news/1.html")) == 1

    serve_site(feed_server, ["/news/1.html", "/news/2.html"])
    site.run("poll", "--all")

    assert len(feed_server.hits("/news/2.html")) == 1
    assert len(feed_server.hits("/news/1.html")) == 1  # known and unchanged: not fetched again
    assert first_paragraphs[1] in site.content(first_title)  # nor reverted to the summary
    second_title, _, second_paragraphs = ARTICLES["/news/2.html"]
    assert second_paragraphs[1] in site.content(second_title)

    # The publisher corrects the first item's summary in the feed and the article on its page.
    corrected = feed_of(feed_server, ["/news/1.html", "/news/2.html"]).replace(
        "工作要点。".encode(), "工作要点（更正）。".encode()
    )
    feed_server.serve("/feed.xml", corrected)
    feed_server.serve(
        "/news/1.html",
        article_page(first_title, [*first_paragraphs, "更正：本文已更新。"]),
        content_type="text/html",
    )
    site.run("poll", "--all")

    assert len(feed_server.hits("/news/1.html")) == (2 if update else 1)
    assert "（更正）" in site.summary(first_title)
    assert ("更正：本文已更新。" in site.content(first_title)) is update
    assert first_paragraphs[1] in site.content(first_title)


def test_gbk_article_page_is_decoded(make_site: MakeSite, feed_server: FeedServer) -> None:
    title, _, paragraphs = ARTICLES["/news/1.html"]
    # 镕 and 偲 are in GBK but not in GB2312, which the page claims: decoded as GB18030.
    gbk_paragraphs = [*paragraphs, "朱镕基旧居开放，偲偲前往参观。"]
    feed_server.serve("/feed.xml", feed_of(feed_server, ["/news/1.html"]))
    feed_server.serve(
        "/news/1.html",
        article_page(title, gbk_paragraphs, charset="gb2312").encode("gbk"),
        content_type="text/html; charset=gb2312",
    )
    site = make_site('{selector: "#ContentBody"}')

    site.run("run", "--once")

    content = site.content(title)
    assert all(paragraph in content for paragraph in gbk_paragraphs), content


# -- the guard, at the connection ------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback address"),
        ("::1", "loopback address"),
        ("::ffff:127.0.0.1", "loopback address"),
        ("10.0.0.1", "private address"),
        ("172.16.5.4", "private address"),
        ("192.168.1.1", "private address"),
        ("fc00::1", "private address"),
        ("169.254.169.254", "link-local address"),
        ("fe80::1", "link-local address"),
        ("224.0.0.1", "multicast address"),
        ("ff02::1", "multicast address"),
        ("0.0.0.0", "unspecified address"),
        ("::", "unspecified address"),
        ("100.64.0.1", "non-global address"),
        ("::ffff:10.1.2.3", "private address"),
        ("8.8.8.8", None),
        ("93.184.216.34", None),
        ("2001:4860:4860::8888", None),
        ("::ffff:8.8.8.8", None),
    ],
)
def test_address_refusal(address: str, reason: str | None) -> None:
    assert address_refusal(address) == reason


@pytest.fixture
def page_server() -> Iterator[LoopbackServer]:
    def handle(request: BaseHTTPRequestHandler) -> None:
        respond(request, 200, b"<html><body><p>secret</p></body></html>", {"Content-Type": "text/html"})

    with LoopbackServer(handle) as server:
        yield server


def test_refused_before_connecting_by_address_or_by_name(page_server: LoopbackServer) -> None:
    with make_session(POLICY, refuse_address=address_refusal) as session:
        with pytest.raises(FetchError) as by_address:
            fetch(session, page_server.url("/page"), POLICY)
        by_name = f"http://localhost:{page_server.port}/page"
        with pytest.raises(FetchError) as resolved:
            fetch(session, by_name, POLICY)
    assert str(by_address.value) == (
        f"refused to connect to 127.0.0.1 (loopback address) for {page_server.url('/page')}"
    )
    assert "loopback address" in str(resolved.value) and str(resolved.value).endswith(f"for {by_name}")
    assert page_server.seen == []
    with make_session(POLICY) as session:  # without the guard, as for sources with allow_private
        assert b"secret" in fetch(session, page_server.url("/page"), POLICY).body


def test_a_redirect_hop_is_checked_when_it_connects() -> None:
    """127.0.0.1 stands for a public site, 127.0.0.2 for the private one it redirects to."""

    def public_is_127_0_0_1(address: str) -> str | None:
        return None if address == "127.0.0.1" else "private address"

    with LoopbackServer(lambda request: respond(request, 200, b"internal"), host="127.0.0.2") as internal:
        target = internal.url("/admin")
        with LoopbackServer(lambda request: respond(request, 302, b"", {"Location": target})) as redirector:
            with make_session(POLICY, refuse_address=public_is_127_0_0_1) as session:
                with pytest.raises(FetchError) as refused:
                    fetch(session, redirector.url("/story"), POLICY)
            assert internal.seen == []
            with make_session(POLICY) as session:  # the same redirect, unguarded, does reach it
                assert fetch(session, redirector.url("/story"), POLICY).body == b"internal"
    assert str(refused.value) == f"refused to connect to 127.0.0.2 (private address) for {target}"
    assert [seen.path for seen in redirector.seen] == ["/story", "/story"]


# -- configuration and the pure extractor --------------------------------------------------


def write_config(tmp_path: Path, full_content: str) -> Path:
    config = tmp_path / "sources.yaml"
    config.write_text(
        f"""
site: {{title: Full, base_url: "{BASE_URL}"}}
sources:
  - {{name: plain, url: "https://news.example.com/feed.xml", category: news}}
  - {{name: em, url: "https://news.example.com/em.xml", category: news, full_content: {full_content}}}
""",
        encoding="utf-8",
    )
    return config


def test_config_full_content_forms(tmp_path: Path) -> None:
    plain, readability = load_config(write_config(tmp_path, "true")).sources
    assert plain.full_content is None and not plain.allow_private
    assert readability.full_content == FullContentSpec()
    _, by_selector = load_config(
        write_config(tmp_path, '{selector: "#ContentBody", remove: [".ad", script], update: true}')
    ).sources
    assert by_selector.full_content == FullContentSpec("#ContentBody", (".ad", "script"), update=True)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{selector: "div["}', "source 'em': full_content.selector: 'div[' is not a valid CSS selector"),
        ("{remove: [p::text]}", "'p::text' is not a valid CSS selector"),
        ("{selector: x, depth: 3}", "depth: unknown key"),
        ("{concurrency: 0}", "full_content.concurrency: Input should be greater than or equal to 1"),
        ("yes please", "full_content: expected true, false or a mapping"),
    ],
)
def test_config_rejects_bad_full_content(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(write_config(tmp_path, value))
    assert message in str(error.value)


def test_xpath_selector_and_conflicting_charsets() -> None:
    page = article_page("标题", ["第一段：朱镕基旧居开放。", "第二段。"], charset="gbk").encode("gb18030")
    # The server says UTF-8, which these bytes are not: the page's own <meta charset> is used.
    article = extract_article(
        page, {"content-type": "text/html; charset=utf-8"}, "https://news.example.com/a/1.html",
        FullContentSpec(selector='//div[@id="ContentBody"]', remove=(".ad",)),
    )  # fmt: skip
    text = " ".join(etree.HTML(article).xpath("string()").split())
    assert "第一段：朱镕基旧居开放。" in text and "第二段。" in text and AD not in text


@pytest.mark.parametrize(
    ("selector", "article"),
    [
        # The article's box: what it holds, without the publisher's id and classes on a wrapper.
        ("#ContentBody", 'Lead &amp; text<p>One.</p><!-- c --><p>Two <a href="https://e.test/x">x</a></p>'),
        ("//section", "<p>S.</p>"),
        # Several matches are the article's parts, each whole; so is a lone element with its own meaning.
        ("p.part", '<p class="part">A</p><p class="part">B</p>'),
        ("ul.facts", '<ul class="facts"><li>F</li></ul>'),
    ],
)
def test_selector_takes_the_content_of_a_lone_wrapper(selector: str, article: str) -> None:
    page = (
        '<html><body><div id="ContentBody" class="txtinfos">\n  Lead &amp; text<p>One.</p><!-- c -->'
        '<p>Two <a href="/x">x</a></p>\n</div><section class="more"><p>S.</p></section>'
        '<p class="part">A</p><p class="part">B</p><ul class="facts"><li>F</li></ul></body></html>'
    )
    spec = FullContentSpec(selector=selector)
    assert extract_article(page.encode(), {}, "https://e.test/a/1.html", spec) == article
