"""Fetched HTML bytes -> an lxml document, and the CSS/XPath selectors run over it. Pure.

Shared by html listings (scrape.py), article pages (extract.py) and
`rewrite: [{remove: ...}]` rules (filters.py), so that a selector means the
same, and fails with the same message, wherever a source's config uses one,
and what it selects is written back as HTML the same way (`inner_html`).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from typing import Any

import lxml.html  # type: ignore[import-untyped]
from cssselect import SelectorError
from lxml import etree
from lxml.cssselect import CSSSelector  # type: ignore[import-untyped]

from .charset import decode_document

__all__ = ["Select", "compile_selector", "html_document", "inner_html"]

Select = Callable[[Any], Any]  # an element -> the elements (or XPath values) found from it
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")


def compile_selector(expression: str, *, relative: bool = False, xpath: bool = True) -> Select:
    """A CSS selector, or XPath when it starts with "/" (unless `xpath` is False); ValueError if invalid.

    A `relative` XPath is evaluated from the element it is given ("/a" reads as "./a").
    """
    if xpath and expression.startswith("/"):
        try:
            return etree.XPath("." + expression if relative else expression)  # type: ignore[no-any-return]
        except etree.XPathError as error:
            raise ValueError(f"{expression!r} is not a valid XPath: {error}") from None
    try:
        return CSSSelector(expression, translator="html")  # type: ignore[no-any-return]
    except SelectorError as error:
        raise ValueError(f"{expression!r} is not a valid CSS selector: {error}") from None


def html_document(body: bytes, headers: Mapping[str, str], encoding: str | None = None) -> Any:
    """The parsed page, decoded by charset.decode_document; ValueError when it is empty or not HTML."""
    # lxml refuses a str that still declares an encoding: the bytes are decoded already.
    text = decode_document(body, headers, encoding, html=True).text.removeprefix("\ufeff")
    text = _XML_DECLARATION.sub("", text, count=1)
    if not text.strip():
        raise ValueError("empty page")
    try:
        return lxml.html.document_fromstring(text)
    except (etree.ParserError, ValueError) as error:
        raise ValueError(f"not an HTML page ({error})") from None


def inner_html(element: Any) -> str:
    """What `element` holds, as HTML, without its own tag: its leading text, then each child and its tail.

    lxml gives the leading text unescaped ("&lt;" reads as "<"): it is escaped
    again here, else text that showed as "<script>" would turn into markup.
    """
    children = "".join(lxml.html.tostring(child, encoding="unicode", method="html") for child in element)
    return html.escape(element.text or "", quote=False) + children
