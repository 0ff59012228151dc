"""A next_page link comes from the page, like an article's link: it is fetched only from public addresses."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.httpserver import LoopbackServer, respond
from tests.polled import poll_once


def _page(number: int, next_path: str | None) -> bytes:
    items = "".join(
        f'<li><a href="/story/{number}-{n}.html">Story {number}-{n}</a>'
        f'<span class="time">2022-03-14 10:5{n}</span></li>'
        for n in range(3)
    )
    more = f'<a class="next" href="{next_path}">next</a>' if next_path else ""
    return f'<html><body><ul class="news">{items}</ul>{more}</body></html>'.encode()


@pytest.mark.parametrize("allow_private", [False, True])
def test_backfill_pages_on_private_addresses_need_allow_private(
    tmp_path: Path, database_url: str, allow_private: bool, caplog: pytest.LogCaptureFixture
) -> None:
    def handle(request: BaseHTTPRequestHandler) -> None:
        body = _page(1, "/news/page2.html") if request.path == "/news/" else _page(2, None)
        respond(request, 200, body, {"Content-Type": "text/html; charset=utf-8"})

    with LoopbackServer(handle) as server:
        items = poll_once(
            tmp_path,
            database_url,
            f'  - {{name: site, kind: html, url: "{server.url("/news/")}", items: "ul.news > li",'
            ' fields: {title: "a", link: "a@href", date: "span.time"}, date_format: "%Y-%m-%d %H:%M",'
            f' next_page: "a.next@href", category: news, allow_private: {str(allow_private).lower()}}}\n',
            workers=1,
        )
    titles = sorted(item.title for item in items)
    if allow_private:
        assert titles == [f"Story {page}-{n}" for page in (1, 2) for n in range(3)]
    else:  # the configured page is the operator's choice; the link found on it is not
        assert titles == [f"Story 1-{n}" for n in range(3)]
        assert [seen.path for seen in server.seen] == ["/news/"]
        assert "refused to connect to 127.0.0.1 (loopback address)" in caplog.text
