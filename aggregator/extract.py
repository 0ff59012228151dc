"""An item's page (bytes) -> the article in it, as HTML. Pure: no I/O, no clock.

The page's boilerplate (`remove:` selectors) is dropped first; then the
article is what a CSS selector (or an XPath expression, starting with "/")
matches when the source names one (the content of a lone <div>, <section>,
<article> or <main> match, which is the article's box), otherwise what is found by
readability-lxml, a port of Arc90's Readability (see docs/design.md for why
not trafilatura). The HTML is kept raw, like a feed's content: it is
sanitized when rendered. Links are made absolute here, against the page's own
URL (and its <base href>), because after a redirect that is not the item's URL.
"""

from __future__ import annotations

import codecs
import html
import re
from collections.abc import Mapping, Sequence

import lxml.html  # type: ignore[import-untyped]
from lxml import etree
from lxml.cssselect import CSSSelector  # type: ignore[import-untyped]
from readability import Document  # type: ignore[import-untyped]
from readability.readability import Unparseable  # type: ignore[import-untyped]

from .errors import ExtractError
from .models import FullContentSpec

_HTTP_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([\w.:-]+)""", re.IGNORECASE)
_META_CHARSET = re.compile(rb"""<meta\s[^>]*?charset\s*=\s*["']?\s*([\w.:-]+)""", re.IGNORECASE)
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_META_WINDOW = 4096  # HTML requires the <meta charset> within the first 1024 bytes; publishers are lax
# Pages labelled GB2312 or GBK routinely hold characters only their superset GB18030 has.
_SUPERSETS = {"gb2312": "gb18030", "gbk": "gb18030"}
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
# A single match of one of these is the box the article sits in (`#ContentBody`), not part of
# it: the article is what it holds. Its tag carries only the publisher's layout (id, class).
_WRAPPERS = frozenset({"div", "section", "article", "main", "body"})


def extract_article(body: bytes, headers: Mapping[str, str], url: str, spec: FullContentSpec) -> str:
    """The article's HTML on the page at `url` (its final URL); ExtractError says why there is none."""
    document = _document(decode_page(body, headers), url)
    for junk_selector in spec.remove:
        for junk in CSSSelector(junk_selector, translator="html")(document):
            junk.drop_tree()
    if spec.selector is not None:
        return _by_selector(document, url, spec.selector)
    return _by_readability(document, url)


def decode_page(body: bytes, headers: Mapping[str, str]) -> str:
    """Bytes -> text: a BOM, else the HTTP charset, else <meta charset>, else UTF-8.

    A declared charset that cannot decode the bytes is passed over for the
    next one (servers often send a default charset that the page contradicts);
    if none decodes cleanly, the first is used with replacement characters.
    """
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            return body.decode(encoding, errors="replace")
    http = _HTTP_CHARSET.search(headers.get("content-type", ""))
    meta = _META_CHARSET.search(body[:_META_WINDOW])
    declared = [http.group(1) if http else None, meta.group(1).decode("ascii") if meta else None, "utf-8"]
    candidates = list(dict.fromkeys(name for name in map(_codec, declared) if name))
    for encoding in candidates:
        try:
            return body.decode(encoding)
        except UnicodeDecodeError:
            continue
    return body.decode(candidates[0], errors="replace")


def check_selector(selector: str) -> str:
    """`selector` if it compiles (CSS, or XPath when it starts with "/"); else ValueError saying why."""
    try:
        if selector.startswith("/"):
            etree.XPath(selector)
        else:
            CSSSelector(selector, translator="html")
    except (etree.XPathError, SyntaxError, RuntimeError) as error:  # cssselect's errors are both
        raise ValueError(f"invalid selector {selector!r}: {error}") from None
    return selector


def _codec(label: str | None) -> str | None:
    """Python's name for a charset label, widened to its superset; None if unknown."""
    if not label:
        return None
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    return _SUPERSETS.get(name, name)


def _document(text: str, url: str) -> lxml.html.HtmlElement:
    # lxml refuses text that still declares an encoding: the bytes were decoded already.
    text = _XML_DECLARATION.sub("", text, count=1)
    if not text.strip():
        raise ExtractError(f"empty page at {url}")
    try:
        document = lxml.html.document_fromstring(text)
    except (etree.ParserError, ValueError) as error:
        raise ExtractError(f"cannot parse the page at {url}: {error}") from None
    document.make_links_absolute(url, resolve_base_href=True, handle_failures="discard")
    return document


def _by_selector(document: lxml.html.HtmlElement, url: str, selector: str) -> str:
    if selector.startswith("/"):
        found = [node for node in document.xpath(selector) if isinstance(node, lxml.html.HtmlElement)]
    else:
        found = CSSSelector(selector, translator="html")(document)
    if not found:
        raise ExtractError(f"selector '{selector}' matched nothing on {url}")
    chosen = set(found)
    # An element inside another match is already part of it.
    outermost = [node for node in found if not any(parent in chosen for parent in node.iterancestors())]
    if not _has_content(outermost):
        raise ExtractError(f"selector '{selector}' matched only empty elements on {url}")
    if len(outermost) == 1 and outermost[0].tag in _WRAPPERS:
        return _inner_html(outermost[0])
    return "".join(
        lxml.html.tostring(node, encoding="unicode", method="html", with_tail=False) for node in outermost
    )


def _inner_html(node: lxml.html.HtmlElement) -> str:
    """What an element holds, without its own tag: its text, then each child with the text after it."""
    children = (lxml.html.tostring(child, encoding="unicode", method="html") for child in node)
    return (html.escape(node.text or "", quote=False) + "".join(children)).strip()


def _by_readability(document: lxml.html.HtmlElement, url: str) -> str:
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
