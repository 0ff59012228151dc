"""The seed's column replicated on loopback, run through the real command: the seed post comes back.

The seed (../shared/seed/example-archive-page.md) is a post from a Chinese
finance site's rolling-news column, which has a JSON list API and article
pages but no feed. Here 127.0.0.1 serves a list shaped like that API (in
UTF-8, and as GBK bytes labelled `charset=GBK`) and article pages whose
`#ContentBody` holds the seed's article between an inline stock-quote
widget, an ad and a script, inside a whole page (header, navigation,
sidebar, footer). The source is configured in YAML as issue 4 writes it;
`aggregator run --once` polls it into a SQLite file or PostgreSQL and
publishes HTML and Jekyll. The Jekyll post must be the seed again, the
archive page must carry what the seed carries, and the site, category and
tag feeds must hold the entry.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

import feedparser
import lxml.html
import pytest
from lxml import etree

from aggregator.layout import post_path_for
from tests.feedserver import FeedServer
from tests.seed import (
    CONTENT_LINE,
    ORIGINAL_LINE,
    SEED_TAG,
    SEED_TAG_PATH,
    SEED_TITLE,
    SEED_URL,
    seed_content,
    seed_content_as_sanitized,
    seed_summary,
    seed_text,
)
from tests.test_end_to_end import Site

BASE_URL = "https://finews.withounder.com/"  # the seed's back links point there
ATOM = "{http://www.w3.org/2005/Atom}"
SEED_ORIGIN = "http://finance.eastmoney.com"
SEED_PATH = SEED_URL.removeprefix(SEED_ORIGIN)  # served at the seed's own path on loopback
LIST_PATH = "/list?page_index=1"

# Boilerplate inside #ContentBody, each named in the source's `remove:`.
STOCK_WIDGET = (
    '<div class="stock-widget" data-code="1.600000"><span class="name">浦发银行</span>'
    '<span class="price">8.62</span><span class="change">+1.17%</span><a href="/quote/600000">行情</a></div>'
)
AD = '<div class="ad"><a href="/promo?from=article"><img src="/ad/open-account.gif"></a>开户送好礼</div>'
SCRIPT = '<script>emStockQuote.render("ContentBody");</script>'
REMOVE = '[".ad", "script", ".stock-widget"]'
BOILERPLATE_TEXTS = ("浦发银行", "开户送好礼", "emStockQuote", "open-account", "上一篇", "关于我们")

SHOW_TIME = "2022-03-14 10:55:11"
OTHERS = [
    ("央行：保持流动性合理充裕", "/news/1345,202203142307700001.html", "2022-03-14 09:30:00",
     "央行表示将保持流动性合理充裕。", "<p>央行表示，将保持流动性合理充裕，稳定市场预期。</p>"),
    ("沪指震荡收跌 成交额缩量", "/news/1345,202203132307600002.html", "2022-03-13 22:10:00",
     "沪指全天震荡，收跌0.2%。", "<p>沪指全天震荡，收跌0.2%，两市成交额较上一交易日缩量。</p>"),
]  # fmt: skip


def seed_article_body() -> str:
    """The seed's article as it sits in #ContentBody on the publisher's page, boilerplate included."""
    content = seed_content()
    first_paragraph_end = content.index("</p>") + len("</p>")
    with_widget = content[:first_paragraph_end] + STOCK_WIDGET + content[first_paragraph_end:]
    return with_widget.replace("<center>", AD + "<center>", 1) + SCRIPT


def article_page(title: str, body: str, charset: str) -> str:
    """A whole article page: head with scripts, header and navigation, sidebar, footer."""
    return f"""<!DOCTYPE html>
<html>
<head>
<meta http-equiv="Content-Type" content="text/html; charset={charset}">
<title>{title}_东方财富网</title>
<link rel="stylesheet" href="/css/news.css">
<script>var pageConfig = {{channel: "emnews"}};</script>
</head>
<body>
<div class="topnav"><a href="/">东方财富网</a> <a href="/a/cgnjj.html">国内经济</a>
<a href="/a/cgjjj.html">国际经济</a></div>
<div class="main">
<div class="newsContent">
<h1>{title}</h1>
<div class="infos"><div class="time">2022年03月14日 10:55</div>
<div class="source">来源：证券时报网</div></div>
<div id="ContentBody" class="txtinfos">
{body}
</div>
<div class="pager"><a href="/news/prev.html">上一篇</a></div>
</div>
<div class="sidebar"><h3>热门文章</h3><ul><li><a href="/news/hot1.html">热门一</a></li></ul></div>
</div>
<div class="footer"><a href="/about.html">关于我们</a> 东方财富网版权所有</div>
</body>
</html>
"""


def serve_column(server: FeedServer, encoding: str) -> None:
    """The list API and every article page, in `encoding` and labelled so."""
    rows = [
        {"title": SEED_TITLE, "url": server.url(SEED_PATH), "showTime": SHOW_TIME, "summary": seed_summary()}
    ]
    rows += [
        {"title": title, "url": server.url(path), "showTime": shown, "summary": summary}
        for title, path, shown, summary, _ in OTHERS
    ]
    for row in rows:
        row |= {"mediaName": "证券时报网", "code": row["url"].rsplit(",", 1)[1].removesuffix(".html")}
    answer = json.dumps({"rc": 1, "data": {"list": rows, "total": len(rows)}}, ensure_ascii=False)
    if encoding != "utf-8":
        with pytest.raises(UnicodeDecodeError):  # really other bytes than UTF-8's
            answer.encode(encoding).decode("utf-8")
    server.serve(
        LIST_PATH, answer.encode(encoding), content_type=f"application/json; charset={encoding.upper()}"
    )
    pages = [
        (SEED_PATH, SEED_TITLE, seed_article_body()),
        *((path, t, body) for t, path, _, _, body in OTHERS),
    ]
    for path, title, body in pages:
        server.serve(path, article_page(title, body, encoding).encode(encoding), content_type="text/html")


@pytest.fixture(params=["utf-8", "gbk"])
def site(request: pytest.FixtureRequest, tmp_path: Path, feed_server: FeedServer, database_url: str) -> Site:
    serve_column(feed_server, request.param)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
site: {{title: "Finews 财经", base_url: "{BASE_URL}", timezone: Asia/Shanghai, language: zh}}
database: "sqlite:///data/aggregator.db"
output: {{dir: out, formats: [html, jekyll]}}
defaults: {{interval: 5m, timeout: 5s}}
categories:
  emnews: {{title: 东财滚动新闻}}
sources:
  - {{name: em-rolling, kind: json, url: "{feed_server.url(LIST_PATH)}", items: "data.list",
     fields: {{title: title, link: url, date: showTime, summary: summary}}, date_format: "%Y-%m-%d %H:%M:%S",
     timezone: Asia/Shanghai, category: emnews, tags: ["东财滚动新闻"],
     full_content: {{selector: "#ContentBody", remove: {REMOVE}}}, allow_private: true}}
""",
        encoding="utf-8",
    )
    env = {**os.environ, "AGGREGATOR_DATABASE_URL": database_url}
    return Site(config=config, output=tmp_path / "out", env=env)


def local_file(site: Site, url: str) -> Path:
    """The output file that a public URL of the site serves."""
    assert url.startswith(BASE_URL), url
    return site.output / unquote(urlsplit(url).path.lstrip("/"))


def expected_post(server: FeedServer) -> str:
    """The seed, with the two differences a loopback replica must make (the test explains them)."""
    seed_lines = seed_text().split("\n")
    lines = [*seed_lines]
    lines[CONTENT_LINE] = seed_content_as_sanitized(seed_lines[CONTENT_LINE])
    lines[ORIGINAL_LINE] = seed_lines[ORIGINAL_LINE].replace(SEED_ORIGIN, server.url("").rstrip("/"))
    return "\n".join(lines)


def seed_entry_url(site: Site) -> str:
    """The archive page URL of the seed item, as the site feed links to it."""
    [entry] = [entry for entry in site.feed("atom.xml").entries if entry.title == SEED_TITLE]
    return str(entry.link)


def test_the_jekyll_post_is_the_seed(site: Site, feed_server: FeedServer) -> None:
    completed = site.run("run", "--once")
    assert "Traceback" not in completed.stderr and "kept the source's content" not in completed.stderr

    archive_url = seed_entry_url(site)
    archive = urlsplit(archive_url).path.lstrip("/")
    assert archive.startswith("emnews/2022/03/14/"), archive  # the publisher's local date
    slug = archive.removeprefix("emnews/2022/03/14/").removesuffix(".html")
    # The seed implies no slug (a CJK title gets a hash of its url key); its date and Jekyll's
    # default permalink, /:categories/:year/:month/:day/:title.html, are the archive path again.
    assert post_path_for(archive) == f"_posts/2022-03-14-{slug}.md"
    posts = {path.name for path in (site.output / "_posts").iterdir()}
    assert f"2022-03-14-{slug}.md" in posts and len(posts) == 1 + len(OTHERS)
    post = (site.output / post_path_for(archive)).read_bytes().decode("utf-8")

    seed = seed_text()
    assert len(post.split("\n")) == len(seed.split("\n")) == 14
    # Not byte for byte, and only on two lines, for two reasons:
    # - line 9, the article: the sanitizer (render/html.py) must drop the publisher's style,
    #   class, id, data-code and web attributes and the href of <span>, adds rel="noopener
    #   noreferrer" to links, and html5ever writes void elements as <br>, not <br />
    #   (tests/seed.py, seed_content_as_sanitized, rule by rule);
    # - line 11, the original URL: the replica serves the article at the seed's path from
    #   127.0.0.1 instead of finance.eastmoney.com, so only the origin differs.
    # Front matter, summary, blank lines, back links and the missing final newline are the seed's.
    assert [n for n, (ours, theirs) in enumerate(zip(post.split("\n"), seed.split("\n"), strict=True))
            if ours != theirs] == [CONTENT_LINE, ORIGINAL_LINE]  # fmt: skip
    assert post == expected_post(feed_server)
    assert post.split("\n")[ORIGINAL_LINE] == f"<{feed_server.url(SEED_PATH)}>"
    assert not any(text in post for text in BOILERPLATE_TEXTS)
    assert len(feed_server.hits(SEED_PATH)) == 1


def test_the_archive_page_carries_what_the_seed_carries(site: Site, feed_server: FeedServer) -> None:
    site.run("run", "--once")

    page = local_file(site, seed_entry_url(site)).read_text(encoding="utf-8")
    document = lxml.html.document_fromstring(page)
    assert document.findtext(".//h1") == SEED_TITLE
    time = document.find(".//article//time")
    assert (time.text, time.get("datetime")) == ("2022-03-14 10:55:11 +0800", "2022-03-14T10:55:11+08:00")
    assert document.xpath('//p[span[text()="分类"]]/a/@href') == ["/emnews/"]
    assert document.xpath('//p[span[text()="分类"]]/a/text()') == ["东财滚动新闻"]
    assert document.xpath('//p[span[text()="标签"]]/a/@href') == [SEED_TAG_PATH]
    assert document.xpath('//p[span[text()="标签"]]/a/text()') == [SEED_TAG]
    assert document.findtext(".//blockquote") == seed_summary()

    # The article is the seed's, cleaned as the Jekyll post's is, with no trace of the page around it.
    assert f'<div class="content">{seed_content_as_sanitized(seed_content())}</div>' in page
    assert not any(text in page for text in BOILERPLATE_TEXTS)
    content = document.find_class("content")[0]
    assert content.xpath(".//h3")[0].text_content() == "相关报道"
    assert len(content.xpath(".//center/img")) == 5

    original = feed_server.url(SEED_PATH)
    assert document.xpath('//p[@class="original"]/a/@href') == [original]
    assert document.xpath('//p[@class="original"]/a/text()') == [original]
    back = {a.text: a.get("href") for a in document.xpath('//nav[@class="back"]/a')}
    assert back == {"返回东财滚动新闻": "/emnews/", "返回首页": "/"}


def test_site_category_and_tag_feeds_hold_the_entry(
    site: Site, feed_server: FeedServer, atom_schema: etree.RelaxNG
) -> None:
    site.run("run", "--once")
    archive_url = seed_entry_url(site)

    feeds = {
        "atom.xml": BASE_URL + "atom.xml",
        "emnews/atom.xml": BASE_URL + "emnews/atom.xml",
        f"tags/{SEED_TAG}/atom.xml": BASE_URL.rstrip("/") + SEED_TAG_PATH + "atom.xml",  # percent-encoded
    }
    for path, url in feeds.items():
        data = (site.output / path).read_bytes()
        root = etree.fromstring(data)
        assert atom_schema.validate(root), (path, atom_schema.error_log)
        parsed = feedparser.parse(data)
        assert not parsed.bozo, (path, parsed.get("bozo_exception"))
        assert {link.rel: link.href for link in parsed.feed.links}["self"] == url

        titles = [entry.title for entry in parsed.entries]
        assert titles == [SEED_TITLE, *(title for title, *_ in OTHERS)], path  # newest first
        entry = parsed.entries[0]
        assert entry.link == archive_url and local_file(site, entry.link).is_file()
        assert entry.published == entry.updated == "2022-03-14T10:55:11+08:00"
        assert [link.href for link in entry.links if link.rel == "related"] == [feed_server.url(SEED_PATH)]
        assert entry.summary == seed_summary()
        raw_content = root.findtext(f"{ATOM}entry/{ATOM}content")
        assert raw_content == seed_content_as_sanitized(seed_content())
        assert {(tag.term, tag.label) for tag in entry.tags} == {("emnews", "东财滚动新闻"), (SEED_TAG, None)}
