"""Content fidelity through the real CLI: a GBK feed under a lying server, CST dates, filters, embeds.

One loopback publisher, one YAML config, `aggregator run --once` in a
subprocess on a SQLite file and on the real PostgreSQL; then the archive
pages are parsed back with lxml and the database is read for what pages do
not show (the publisher's future date set aside).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import lxml.html
from sqlalchemy import create_engine, text

from tests.feedserver import FeedServer
from tests.sample_feeds import Article, rss2
from tests.test_end_to_end import BASE_URL, Site

ARTICLE_URL = "http://finance.example.cn/news/2022/0314/a1.html"
CONTENT = (
    '<p>贵州茅台<span class="stock-quote" data-code="600519">1,700.00 +1.2%</span>今日公告。</p>'
    '<iframe src="https://www.youtube-nocookie.com/embed/abc" width="560" height="315"></iframe>'
    '<iframe src="https://tracker.example/embed/1"></iframe>'
    '<p><img src="../img/chart.png" alt="走势图"><a href="/news/list.html">更多</a></p>'
)
ARTICLES = [
    Article(
        "央行宣布降准 朱镕基谈改革", ARTICLE_URL, "Mon, 14 Mar 2022 10:55:11 CST", "摘要：降准。", CONTENT
    ),
    Article("广告：理财产品推荐", "http://finance.example.cn/ad/1.html", "Mon, 14 Mar 2022 09:00:00 CST"),
    Article("未来的新闻", "http://finance.example.cn/news/future.html", "Fri, 01 Jan 2100 08:00:00 +0800"),
    Article("没有日期的新闻", "http://finance.example.cn/news/undated.html", "明天上午"),
]


def _site(tmp_path: Path, feed_server: FeedServer, database_url: str) -> Site:
    # The server's default charset says Latin-1; the document says (and is) GBK.
    url = feed_server.serve(
        "/cn.xml",
        rss2("财经要闻", "http://finance.example.cn/", ARTICLES, encoding="gbk"),
        content_type="text/xml; charset=ISO-8859-1",
    )
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
site: {{title: Fidelity, base_url: "{BASE_URL}", language: zh}}
output: {{dir: out}}
sources:
  - name: cn
    url: "{url}"
    category: finance
    timezone: Asia/Shanghai
    exclude: ["^广告"]
    rewrite:
      - {{remove: "span.stock-quote"}}
""",
        encoding="utf-8",
    )
    env = {**os.environ, "AGGREGATOR_DATABASE_URL": database_url}
    return Site(config=config, output=tmp_path / "out", env=env)


def test_gbk_cst_filters_and_embeds_end_to_end(
    tmp_path: Path, feed_server: FeedServer, database_url: str
) -> None:
    site = _site(tmp_path, feed_server, database_url)
    before = datetime.now(UTC)
    completed = site.run("run", "--once")

    assert "source=cn filters dropped 1 of 4 items" in completed.stderr
    assert "source=cn dated by first sight: 1 without a readable date, 1 more than" in completed.stderr
    pages = {
        lxml.html.document_fromstring((site.output / name).read_text(encoding="utf-8")).findtext(
            ".//h1"
        ): name
        for name in site.archive_pages()
    }
    assert set(pages) == {"央行宣布降准 朱镕基谈改革", "未来的新闻", "没有日期的新闻"}

    # CST from a source in Asia/Shanghai is +0800: filed under 14 March, shown with +0800.
    name = pages["央行宣布降准 朱镕基谈改革"]
    assert name.startswith("finance/2022/03/14/")
    doc = lxml.html.document_fromstring((site.output / name).read_text(encoding="utf-8"))
    assert doc.find(".//article//time").text == "2022-03-14 10:55:11 +0800"
    content = doc.find_class("content")[0]
    assert "600519" not in content.text_content() and "贵州茅台今日公告。" in content.text_content()
    assert content.xpath(".//iframe/@src") == ["https://www.youtube-nocookie.com/embed/abc"]
    assert content.xpath(".//img/@src") == ["http://finance.example.cn/news/2022/img/chart.png"]
    assert content.xpath(".//a/@href") == ["http://finance.example.cn/news/list.html"]
    assert content.xpath(".//a/@rel") == ["noopener noreferrer"]

    # Future and undated items are filed under their first sight (a day in Shanghai around now).
    days = {
        moment.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y/%m/%d")
        for moment in (before, datetime.now(UTC))
    }
    for title in ("未来的新闻", "没有日期的新闻"):
        assert pages[title].split("/", 1)[1].rsplit("/", 1)[0] in days, pages[title]
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            raw = {
                row.title: row.published_raw
                for row in conn.execute(text("SELECT title, published_raw FROM items"))
            }
    finally:
        engine.dispose()
    assert raw == {
        "央行宣布降准 朱镕基谈改革": None,
        "未来的新闻": "2100-01-01T08:00:00+08:00",
        "没有日期的新闻": None,
    }
