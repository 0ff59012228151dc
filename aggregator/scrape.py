"""HTML listing pages and JSON APIs -> ParsedFeed, for sites that publish no feed.

Pure: fetched bytes and a ListingSpec in, the same Item records as a feed's
out (parse.build_feed makes them: url key, plain-text title, dates in the
source's time zone, tags), so dedup, storing and publishing are shared.

A listing that yields nothing is an error (ParseError) naming the expression
and the URL: a site that changed its markup must not look like a quiet day.
An item without a title, or without a link or guid, is left out with a
warning naming the field, unless no item is left: then that is the error.

Expressions (see README, "Sites without a feed"):

* html: a CSS selector, or XPath when it starts with "/". `items` selects
  each item in the page; a field is relative to its item (an XPath field
  "/a/@href" reads as "./a/@href"). `sel@attr` reads an attribute
  (`@href` alone: the item's own), `sel@html` the inner HTML, anything else
  the text, whitespace collapsed. Text put in summary or content is escaped
  as HTML. `next_page` is evaluated on the whole page.
* json: a dot path: `data.list`, `a[0].b`, `tags[].name` (`[]` takes every
  element of a list). Summary and content are taken as HTML, as a feed's
  description is; the other fields as text. Numbers are read as text (ids,
  epoch dates).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo

from lxml import etree  # type: ignore[import-untyped]

from aggregator.charset import decode_document
from aggregator.errors import ParseError
from aggregator.markup import Select, compile_selector, html_document, inner_html
from aggregator.models import ListingSpec, ParsedFeed
from aggregator.parse import RawEntry, RawFeed, build_feed

FIELDS = ("title", "link", "guid", "date", "summary", "content", "author", "tags")
_HTML_FIELDS = frozenset({"summary", "content"})  # text read into these is escaped as HTML


@dataclass(frozen=True, slots=True)
class ListingPage:
    """One page of a listing: its items, the next (older) page, and what was left out or guessed."""

    feed: ParsedFeed
    next_page: str | None  # absolute URL, html with next_page only
    warnings: tuple[str, ...]  # one line per item skipped or date unread, to be logged


def scrape_page(
    body: bytes,
    headers: Mapping[str, str],
    spec: ListingSpec,
    *,
    url: str,
    source: str,
    timezone: str,
    encoding: str | None = None,
) -> ListingPage:
    """Read one fetched listing page; raise ParseError when it yields no item.

    `encoding` is the source's override of every charset the server or page declares.
    """
    if spec.kind == "json":
        rows = _json_rows(_json_document(body, headers, encoding), spec, url)
        title, link, next_page = "", None, None
    else:
        try:
            document = html_document(body, headers, encoding)
        except ValueError as error:
            raise ParseError(str(error)) from None
        rows = _html_rows(document, spec, url)
        title, link = " ".join((document.findtext(".//title") or "").split()), url
        next_page = _next_page(document, spec.next_page, url) if spec.next_page else None
    zone = ZoneInfo(timezone)
    entries: list[RawEntry] = []
    warnings: list[str] = []
    for position, values in enumerate(rows, 1):
        entry = _entry(values, spec, url, zone)
        if isinstance(entry, str):
            warnings.append(f"item {position} skipped: {entry}")
        else:
            entries.append(entry)
    if not entries:
        raise ParseError(
            f"items: {spec.items!r} matched {len(rows)} on {url} but none is usable ({warnings[0]})"
        )
    feed = build_feed(
        RawFeed(title=title, links=[("alternate", link)] if link else [], entries=entries),
        url=url,
        source=source,
        timezone=timezone,
        keep_source_tags=True,  # a listing's tags are read only when fields.tags asks for them
    )
    warnings += (
        f"item {item.title!r}: date {entry.published!r} unreadable, first-seen time used"
        for entry, item in zip(entries, feed.items, strict=True)
        if entry.published and item.published is None
    )
    return ListingPage(feed, next_page, tuple(warnings))


def _first(values: Mapping[str, Sequence[str]], name: str) -> str:
    return next((value for value in values.get(name, ()) if value), "")


def _entry(
    values: Mapping[str, Sequence[str]], spec: ListingSpec, url: str, zone: ZoneInfo
) -> RawEntry | str:
    """The raw fields of one item, or why it is left out."""
    title = _first(values, "title")
    if not title:
        return f"title {spec.title!r} matched nothing"
    link, guid = _first(values, "link"), _first(values, "guid")
    if link and urlsplit(urljoin(url, link)).scheme not in ("http", "https"):
        if not guid:
            return f"link {link!r} ({spec.link!r}) is not an http(s) URL"
        link = ""
    if not (link or guid):
        named = [f"{name} {expression!r}" for name in ("link", "guid") if (expression := getattr(spec, name))]
        return f"{' and '.join(named)} matched nothing"
    content = _first(values, "content")
    return RawEntry(
        id=guid,
        title=title,
        title_type="text/plain",
        summary=_first(values, "summary"),
        summary_type="text/html",
        content=[("text/html", content)] if content else [],
        links=[("alternate", urljoin(url, link))] if link else [],
        published=_date_text(_first(values, "date"), spec.date_format, zone),
        authors=[(author, "")] if (author := _first(values, "author")) else [],
        tags=list(values.get("tags", ())),
    )


_EPOCH_SECONDS = re.compile(r"\d{9,10}(?:\.\d+)?")
_EPOCH_MILLIS = re.compile(r"\d{12,13}(?:\.\d+)?")


def _date_text(text: str, date_format: str | None, zone: ZoneInfo) -> str:
    """The date as text parse.py reads: ISO 8601 after date_format or an epoch; unreadable stays as is.

    A date without offset is left naive: build_feed puts it in the source's time zone.
    """
    text = text.strip()
    try:
        if date_format:
            return datetime.strptime(text, date_format).isoformat()
        if _EPOCH_SECONDS.fullmatch(text):
            return datetime.fromtimestamp(float(text), zone).isoformat()
        if _EPOCH_MILLIS.fullmatch(text):
            return datetime.fromtimestamp(float(text) / 1000, zone).isoformat()
    except (ValueError, OverflowError, OSError):
        pass  # left as written: reported as unreadable once the item is built
    return text


# --- html -----------------------------------------------------------------------

_ATTRIBUTE_NAME = re.compile(r"[A-Za-z_:][-\w:.]*")


@dataclass(frozen=True, slots=True)
class _HtmlExpression:
    select: Select | None  # None: the item itself ("@href")
    read: str  # "text", "html" (inner HTML) or "@name" (an attribute)


def html_expression(expression: str, *, relative: bool) -> _HtmlExpression:
    """Compile a CSS or XPath expression with its `@attr` / `@html` suffix; ValueError if invalid."""
    selector, read = expression.strip(), "text"
    head, at, tail = selector.rpartition("@")
    # A suffix, not XPath's own attribute step ("/a/@href"); XPath takes only "@html".
    if at and _ATTRIBUTE_NAME.fullmatch(tail) and not head.endswith("/"):
        if tail == "html" or not selector.startswith("/"):
            selector, read = head.strip(), "html" if tail == "html" else f"@{tail}"
    if not selector:
        if not relative or read == "text":
            raise ValueError(f"{expression!r}: a selector is needed before '@'")
        return _HtmlExpression(None, read)
    return _HtmlExpression(compile_selector(selector, relative=relative), read)


def _compiled(expression: str, *, relative: bool, name: str) -> _HtmlExpression:
    try:
        return html_expression(expression, relative=relative)
    except ValueError as error:
        raise ParseError(f"{name}: {error}") from None


def _evaluate(compiled: _HtmlExpression, node: Any, name: str) -> list[str]:
    """Every value an expression finds from `node`, as text (or inner HTML), in document order."""
    try:
        found = [node] if compiled.select is None else compiled.select(node)
    except etree.XPathError as error:
        raise ParseError(f"{name}: {error}") from None
    if not isinstance(found, list):
        found = [found]  # an XPath function such as string() or count()
    values: list[str] = []
    for result in found:
        if isinstance(result, etree._Element):
            if compiled.read == "html":
                value = inner_html(result)
            elif compiled.read.startswith("@"):
                value = result.get(compiled.read[1:]) or ""
            else:
                value = " ".join(result.xpath("string()").split())
                value = html.escape(value, quote=False) if name in _HTML_FIELDS else value
        elif isinstance(result, str | int | float) and not isinstance(result, bool):
            value = " ".join(str(result).split())
        else:
            continue
        values.append(value.strip())
    return values


def _html_rows(document: Any, spec: ListingSpec, url: str) -> list[dict[str, list[str]]]:
    items = _compiled(spec.items, relative=False, name="items")
    try:
        nodes = items.select(document) if items.select is not None else []
    except etree.XPathError as error:
        raise ParseError(f"items: {error}") from None
    nodes = [node for node in nodes if isinstance(node, etree._Element)] if isinstance(nodes, list) else []
    if not nodes:
        raise ParseError(f"items: {spec.items!r} matched nothing on {url}")
    fields = {
        name: _compiled(expression, relative=True, name=name)
        for name in FIELDS
        if (expression := getattr(spec, name))
    }
    return [{name: _evaluate(compiled, node, name) for name, compiled in fields.items()} for node in nodes]


def _next_page(document: Any, expression: str, url: str) -> str | None:
    """The absolute http(s) URL of the next page, when the page links to one other than itself."""
    found = _evaluate(_compiled(expression, relative=False, name="next_page"), document, "next_page")
    href = next((value for value in found if value), None)
    if href is None:
        return None
    target = urljoin(url, href)
    return target if urlsplit(target).scheme in ("http", "https") and target != url else None


# --- json -----------------------------------------------------------------------

_EACH = None  # a path step "[]": every element of a list
_Step = str | int | None
_SEGMENT = re.compile(r"(?P<key>[^.\[\]]*)(?P<indexes>(?:\[\d*\])*)")
_INDEX = re.compile(r"\[(\d*)\]")
_JSONP = re.compile(r"[\w$.]+\s*\((?P<json>.*)\)\s*;?\s*", re.DOTALL)


def json_path(path: str) -> tuple[_Step, ...]:
    """The steps of a dot path ("data.list[0].title", "tags[].name"); ValueError if malformed."""
    steps: list[_Step] = []
    for position, segment in enumerate(path.strip().split(".")):
        match = _SEGMENT.fullmatch(segment)
        if match is None or not (match["key"] or (position == 0 and match["indexes"])):
            raise ValueError(f"{path!r} is not a dot path like 'data.list', 'a[0].b' or 'tags[].name'")
        if match["key"]:
            steps.append(match["key"])
        steps += (int(index) if index else _EACH for index in _INDEX.findall(match["indexes"]))
    return tuple(steps)


def _walk(value: Any, steps: Sequence[_Step]) -> list[Any]:
    values = [value]
    for step in steps:
        if step is _EACH:
            values = [element for value in values if isinstance(value, list) for element in value]
        elif isinstance(step, int):
            values = [value[step] for value in values if isinstance(value, list) and step < len(value)]
        else:
            values = [value[step] for value in values if isinstance(value, dict) and step in value]
    return values


def _scalar(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _json_document(body: bytes, headers: Mapping[str, str], encoding: str | None) -> Any:
    """The decoded JSON (charset.decode_document); a JSONP callback(...) is unwrapped."""
    try:
        text = decode_document(body, headers, encoding).text.lstrip("\ufeff").strip()
        if text and text[0] not in "[{" and (match := _JSONP.fullmatch(text)):
            text = match["json"]
        return json.loads(text)
    except (ValueError, RecursionError) as error:  # JSONDecodeError is a ValueError
        raise ParseError(f"not JSON ({error})") from None


def _json_rows(document: Any, spec: ListingSpec, url: str) -> list[dict[str, list[str]]]:
    found = _walk(document, json_path(spec.items))
    items = found[0] if len(found) == 1 and isinstance(found[0], list) else found
    if not items:
        empty = " (an empty list)" if found else ""
        raise ParseError(f"items: {spec.items!r} matched nothing in the JSON of {url}{empty}")
    paths = {name: json_path(expression) for name in FIELDS if (expression := getattr(spec, name))}
    return [
        {
            name: [text for value in _walk(item, steps) if (text := _scalar(value)) is not None]
            for name, steps in paths.items()
        }
        for item in items
    ]


def check_expression(kind: str, expression: str, *, relative: bool = True) -> None:
    """Raise ValueError when an expression of a `kind` source cannot be used (for config validation)."""
    if kind == "json":
        json_path(expression)
    else:
        html_expression(expression, relative=relative)
