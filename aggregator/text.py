"""HTML reduced to plain text: for titles, summaries and descriptions.

Pure and shared: parse uses it for HTML titles, render for blockquote
summaries and Atom summaries.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Characters XML 1.0 cannot carry at all (C0 controls but tab, LF and CR; lone surrogates;
# U+FFFE/U+FFFF). Feeds do contain them, and one would make every output feed unwritable.
_NOT_IN_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: str) -> str:
    """`text` without the characters XML 1.0 forbids."""
    return _NOT_IN_XML.sub("", text)


# Tags whose boundaries separate words, so their text must not run together.
_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "caption", "center", "dd", "div",
        "dl", "dt", "figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6",
        "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "td", "th",
        "tr", "ul",
    }
)  # fmt: skip
_INVISIBLE_TAGS = frozenset({"script", "style", "template", "noscript", "head", "title", "iframe"})


class _TextCollector(HTMLParser):
    """Collects character data, with a space at block boundaries and scripts skipped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _INVISIBLE_TAGS:
            self._hidden_depth += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _INVISIBLE_TAGS:
            self._hidden_depth = max(0, self._hidden_depth - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._hidden_depth:
            self.parts.append(data)


def plain_text(html: str) -> str:
    """The readable text of an HTML fragment on one line: for summaries and descriptions."""
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    return " ".join("".join(collector.parts).split())


def shorten(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary when there is one, with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip() + "…"
