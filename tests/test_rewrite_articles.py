"""Rewrite rules reach the article a source's full_content took from the item's page, not only the teaser."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from pathlib import Path

from tests.httpserver import LoopbackServer, respond
from tests.polled import poll_once
from tests.sample_feeds import Article, rss2

DATE = "Mon, 14 Mar 2022 10:55:11 +0800"
ARTICLE = (
    '<html><body><div id="ContentBody"><p>Rates fell <span class="quote">[SH600000 +1.2%]</span>'
    " today.</p><p>Sponsored: buy now.</p></div></body></html>"
)


def test_rewrite_rules_apply_to_the_article_from_the_page(tmp_path: Path, database_url: str) -> None:
    def handle(request: BaseHTTPRequestHandler) -> None:
        if request.path == "/feed.xml":
            links = [Article("Rates", server.url("/rates.html"), DATE, summary="Rates fell.")]
            respond(
                request, 200, rss2("Wire", server.url("/"), links), {"Content-Type": "application/rss+xml"}
            )
        else:
            respond(request, 200, ARTICLE.encode(), {"Content-Type": "text/html; charset=utf-8"})

    with LoopbackServer(handle) as server:
        [item] = poll_once(
            tmp_path,
            database_url,
            f'  - {{name: wire, url: "{server.url("/feed.xml")}", category: news, allow_private: true,'
            ' full_content: {selector: "#ContentBody"},'
            ' rewrite: [{remove: "span.quote"}, {pattern: "<p>Sponsored:[^<]*</p>", replace: ""}]}\n',
            workers=1,
        )
    assert "Rates fell" in item.content and "today." in item.content, "the article, from the page"
    assert "SH600000" not in item.content and "Sponsored" not in item.content
    assert item.summary == "Rates fell."
