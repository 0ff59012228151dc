"""An item's page (bytes) -> the article in it, as HTML. Pure: no I/O, no clock.

The page's boilerplate (`remove:` selectors) is dropped first; then the
article is what a CSS selector (or an XPath expression, starting with "/")
matches when the source names one (the content of a lone <div>, <section>,
<article>, <main> or <body> match, which is the article's box), otherwise what is
found by readability-lxml, a port of Arc90's Readability (see docs/design.md for why
not trafilatura). The HTML is kept raw, like a feed's content: it is
sanitized when rendered. Links are made absolute here, against the page's own
URL (and its <base href>), because after a redirect that is not the item's URL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lxml.html  # type: ignore[import-untyped]

from .errors import ExtractError
from .markup import compile_selector, html_document, inner_html
from .models import FullContentSpec

# A single match of one of these is the box the article sits in (`#ContentBody`), not part of
# it: the article is what it holds. Its tag carries only the publisher's layout (id, class).
_WRAPPERS = frozenset({"div", "section", "article", "main", "body"})


def extract_article(
    body: bytes, headers: Mapping[str, str], url: str, spec: FullContentSpec, encoding: str | None = None
) -> str:
    """The article's HTML on the page at `url` (its final URL); ExtractError says why there is none.

    `encoding` is the source's override of every charset the server or page declares.
    """
    document = _document(body, headers, url, encoding)
    for junk_selector in spec.remove:
        for junk in compile_selector(junk_selector, xpath=False)(document):
            junk.drop_tree()
    if spec.selector is not None:
        return _by_selector(document, url, spec.selector)
    return _by_readability(document, url)


_PAGE_TYPES = ("text/html", "application/xhtml+xml")


def _document(body: bytes, headers: Mapping[str, str], url: str, encoding: str | None) -> Any:
    media_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type and media_type not in _PAGE_TYPES:  # a PDF or an image would read as garbage text
        raise ExtractError(f"not an HTML page ({media_type}) at {url}")
    try:
        document = html_document(body, headers, encoding)
    except ValueError as error:
        raise ExtractError(f"{error} at {url}") from None
    document.make_links_absolute(url, resolve_base_href=True, handle_failures="discard")
    return document


def _by_selector(document: lxml.html.HtmlElement, url: str, selector: str) -> str:
    matched = compile_selector(selector)(document)
    matched = matched if isinstance(matched, list) else []  # an XPath function such as count()
    found = [node for node in matched if isinstance(node, lxml.html.HtmlElement)]
    if not found:
        raise ExtractError(f"selector '{selector}' matched nothing on {url}")
    chosen = set(found)
    # An element inside another match is already part of it.
    outermost = [node for node in found if not any(parent in chosen for parent in node.iterancestors())]
    if not _has_content(outermost):
        raise ExtractError(f"selector '{selector}' matched only empty elements on {url}")
    if len(outermost) == 1 and outermost[0].tag in _WRAPPERS:
        return inner_html(outermost[0]).strip()
    return "".join(
        lxml.html.tostring(node, encoding="unicode", method="html", with_tail=False) for node in outermost
    )


def _by_readability(document: lxml.html.HtmlElement, url: str) -> str:
    # Imported here: only sources without a selector need it, and every poll starts faster without.
    from readability import Document  # type: ignore[import-untyped]
    from readability.readability import Unparseable  # type: ignore[import-untyped]

    try:
        html: str = Document(document).summary(html_partial=True)
    except Unparseable as error:
        raise ExtractError(f"no article found on {url}: {error}") from None
    if not _has_content([lxml.html.fragment_fromstring(html, create_parent="div")]):
        raise ExtractError(f"no article found on {url}")
    return html


def _has_content(nodes: Sequence[lxml.html.HtmlElement]) -> bool:
    """Some text, or at least an image or a video: not a shell left by a template."""
    return any(node.text_content().strip() or node.xpath(".//img|.//video|.//iframe") for node in nodes)
