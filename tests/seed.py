"""The seed post (../shared/seed/example-archive-page.md) taken apart, for the tests that rebuild it.

The seed is a Jekyll post from a Chinese finance site's rolling-news column:
front matter (lines 0-6), the blockquote summary (7), the article HTML on one
line (9), the `<original URL>` line (11) and the back links (13), blocks
separated by empty lines, no newline at the end.
"""

from __future__ import annotations

import re
from pathlib import Path

SEED_POST = Path(__file__).resolve().parents[2] / "shared" / "seed" / "example-archive-page.md"

SEED_TITLE = "广东省：建设省数据交易场所 建设粤港澳大湾区大数据中心"  # the seed's colon
SEED_URL = "http://finance.eastmoney.com/news/1345,202203142307712884.html"
SEED_TAG = "东财滚动新闻"
SEED_TAG_PATH = "/tags/%E4%B8%9C%E8%B4%A2%E6%BB%9A%E5%8A%A8%E6%96%B0%E9%97%BB/"

SUMMARY_LINE, CONTENT_LINE, ORIGINAL_LINE = 7, 9, 11

# What the sanitizer changes in the seed's content line, rule by rule (see seed_content_as_sanitized).
_SANITIZER_DROPS = re.compile(r' (?:style|class|id|data-code|web)="[^"]*"')
_SPAN_HREF = re.compile(r'(<span[^>]*?) href="[^"]*"')
_XHTML_VOID = re.compile(r" />")
_LINK_START = re.compile(r'(<a href="[^"]*")>')


def seed_text() -> str:
    return SEED_POST.read_text(encoding="utf-8")


def seed_lines() -> list[str]:
    return seed_text().split("\n")


def seed_summary() -> str:
    return seed_lines()[SUMMARY_LINE].removeprefix("> ")


def seed_content() -> str:
    return seed_lines()[CONTENT_LINE]


def seed_content_as_sanitized(seed: str) -> str:
    """The seed's content line with exactly the documented sanitizer differences applied."""
    text = _SPAN_HREF.sub(r"\1", seed)  # href is not an attribute of <span>
    text = _SANITIZER_DROPS.sub("", text)  # presentation and page-script hooks
    text = _XHTML_VOID.sub(">", text)  # html5ever writes <br> and <img ...>, not <br />
    return _LINK_START.sub(r'\1 rel="noopener noreferrer">', text)  # our link policy
