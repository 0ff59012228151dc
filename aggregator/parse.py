"""bytes -> ParsedFeed: the only module that imports feedparser.

Pure: no I/O, no clock. feedparser detects the character encoding and reads
RSS 0.9x/1.0/2.0 and Atom 0.3/1.0; this module turns its loose dictionaries
into `Item` records: absolute http(s) links, plain-text titles, HTML content
and dates that keep the publisher's UTC offset.

Two deliberate departures from a plain `feedparser.parse(body)`:

* Security. Our expat (2.5.0) still expands entities declared in a DOCTYPE
  (billion laughs: only expat's amplification limit stops it, after about a
  second of work per document), and feedparser's own DOCTYPE filter is
  line-based and misses declarations written on one line. So the body is
  first converted to UTF-8 by feedparser's own charset detection, then the
  DOCTYPE (with its internal subset) is cut out of the UTF-8 prolog, and
  only then parsed. Stripping after conversion makes this hold for every
  encoding: GBK/Big5/Shift_JIS trail bytes, UTF-16/32, and encodings that
  spell "<" without the byte "<" (a feed declaring encoding="utf-7" can
  write "+ADw-!DOCTYPE"), which a filter on the original bytes misses.
  Entities declared in a DOCTYPE are therefore never defined; a feed that
  uses them is read by feedparser's tolerant parser instead.
* Base URL. feedparser is given no Content-Location: with one it resolves
  every permalink guid against it, so an RSS guid "12345" would come back as
  the guid and the link "https://host/feeds/12345", a page that does not
  exist. Without it guids stay as written, xml:base is still applied by
  feedparser, and links are made absolute here against the final URL. (A
  server's own Content-Location is ignored too: since RFC 7231 it no longer
  sets the base URI, and some servers put internal addresses in it.)

feedparser's HTML sanitizer and relative-URI rewriting of content are off:
both re-parse every HTML fragment (together they make a large feed about six
times slower to parse), and content is sanitized with nh3 when it is
rendered. So summary and content keep the publisher's relative URLs.
"""

from __future__ import annotations

import html
import io
import re
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo

import feedparser
from feedparser.encodings import convert_to_utf8

from aggregator.errors import ParseError
from aggregator.models import Item, ParsedFeed
from aggregator.text import plain_text, shorten, xml_safe
from aggregator.urls import item_key

# A feedparser dictionary (FeedParserDict). Read it only through _text and
# _children, which use dict.get: FeedParserDict.get maps aliases and, for
# "updated", falls back to "published" with a DeprecationWarning.
_Node = dict[str, Any]

_QUOTED = rb"\"[^\"]*+\"|'[^']*+'"
# <!DOCTYPE ...> with its internal subset: quoted strings, comments and
# processing instructions may hold ">", every other declaration is <...>.
# Possessive quantifiers keep a malformed DOCTYPE from backtracking.
_DOCTYPE = (
    rb"<!DOCTYPE(?:[^<>\"']++|" + _QUOTED + rb"|<!--.*?-->|<\?.*?\?>|<(?:[^<>\"']++|" + _QUOTED + rb")*+>)*+>"
)
# One piece of the prolog: what may come before the root element.
_PROLOG_PART = re.compile(
    rb"\s++|<\?.*?\?>|<!--.*?-->|(?P<doctype>" + _DOCTYPE + rb")", re.DOTALL | re.IGNORECASE
)
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# Which entry.content value becomes Item.content, best first.
_CONTENT_TYPES = ("text/html", "application/xhtml+xml", "text/plain")
# "+08:00" at the end of an RFC 822 date: email.utils would drop it silently.
_COLON_OFFSET = re.compile(r"([+-]\d\d):(\d\d)$")
# Dates we let feedparser read when we cannot: ASCII text with a name in it
# (month, weekday, zone) or a partial W3CDTF date ("2003", "2003-12"). Its
# ISO 8601 reader takes any digit prefix, so it turns "2022.03.14" or
# "2022年3月14日 10:55 CST" into wrong dates; those stay unread.
_FEEDPARSER_DATE = re.compile(r"[ -~]*[A-Za-z][ -~]*|\d{4}(?:-\d\d?){0,2}")
# RSS 2.0 <author> is "email (Name)"; many feeds write "Name <email>".
_AUTHOR_WITH_EMAIL = re.compile(r"\S+@\S+\s*\((?P<paren>[^()]+)\)|(?P<angle>[^<>]+?)\s*<\S+@[^<>\s]+>")


def parse_feed(
    body: bytes,
    headers: Mapping[str, str],
    *,
    url: str,
    source: str,
    timezone: str,
    keep_source_tags: bool,
) -> ParsedFeed:
    """Read one fetched RSS/Atom body.

    `url` is the final URL the body came from (the base of relative links);
    `timezone` names the IANA zone of dates written without a UTC offset.
    Raises ParseError when the body holds no feed at all; a feed that is
    merely ill-formed (bozo) but readable is accepted.
    """
    if not body.strip():
        raise ParseError("empty body")
    # convert_to_utf8 reads HTTP headers with lower-case names and fills in
    # encoding and bozo details we have no use for.
    lowered = {name.lower(): value for name, value in headers.items()}
    utf8 = convert_to_utf8(lowered, body, {})
    result = feedparser.parse(
        io.BytesIO(_strip_doctype(utf8)),
        response_headers={"content-type": "application/xml; charset=utf-8"},  # what utf8 now is
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    entries: list[_Node] = result["entries"]
    if not result.get("version") and not entries:
        reason = result.get("bozo_exception")
        raise ParseError(f"not an RSS or Atom feed{f' ({reason})' if reason else ''}")
    feed: _Node = result["feed"]
    zone = ZoneInfo(timezone)
    items = (_item(entry, url, source, zone, keep_source_tags) for entry in entries)
    return ParsedFeed(
        title=xml_safe(_plain_text(feed, "title")) or urlsplit(url).hostname or url,
        link=_alternate_url(feed, url),
        items=tuple(item for item in items if item is not None),
        ttl=_update_hint(feed),
    )


_MAX_TTL_MINUTES = 365 * 24 * 60  # the scheduler caps hints far lower; this only keeps timedelta in range
_SY_PERIODS = {
    "hourly": timedelta(hours=1),
    "daily": timedelta(days=1),
    "weekly": timedelta(weeks=1),
    "monthly": timedelta(days=30),
    "yearly": timedelta(days=365),
}


def _update_hint(feed: _Node) -> timedelta | None:
    """How often the publisher says the feed changes: RSS <ttl> minutes, else sy:updatePeriod."""
    ttl = _text(feed, "ttl").strip()
    if ttl.isascii() and ttl.isdigit() and int(ttl) > 0:
        return timedelta(minutes=min(int(ttl), _MAX_TTL_MINUTES))
    period = _SY_PERIODS.get(_text(feed, "sy_updateperiod").strip().lower())
    if period is None:
        return None
    frequency = _text(feed, "sy_updatefrequency").strip()
    if frequency.isascii() and frequency.isdigit() and int(frequency) > 0:
        return period / min(int(frequency), _MAX_TTL_MINUTES)
    return period


def _strip_doctype(xml: bytes) -> bytes:
    """The UTF-8 document without any DOCTYPE in its prolog.

    Only the prolog is searched, so "<!DOCTYPE" quoted in CDATA or escaped
    text stays content. An unterminated DOCTYPE is refused: expat would
    still act on the declarations it holds.
    """
    kept: list[bytes] = []
    pos = 0
    while match := _PROLOG_PART.match(xml, pos):
        if match.lastgroup != "doctype":
            kept.append(match.group())
        pos = match.end()
    if xml[pos : pos + 9].upper() == b"<!DOCTYPE":
        raise ParseError("unterminated DOCTYPE declaration")
    return b"".join(kept) + xml[pos:]


_UNTITLED_LENGTH = 80


def _item(entry: _Node, base: str, source: str, zone: ZoneInfo, keep_source_tags: bool) -> Item | None:
    """One entry as an Item; None when it has nothing to show."""
    url = _entry_url(entry, base)
    guid = xml_safe(_text(entry, "id")).strip() or None
    title = xml_safe(_plain_text(entry, "title"))
    # Without a summary_detail the summary is feedparser's copy of the
    # content, not something the publisher wrote.
    summary = xml_safe(_text(entry, "summary")) if dict.get(entry, "summary_detail") else ""
    content = xml_safe(_content(entry, summary))
    if not (url or guid or title or content):
        return None
    # Pages, index lines and Atom entries all need a title: an untitled item
    # (common for micro-posts) is named by the start of its text, else its link.
    title = title or shorten(plain_text(content), _UNTITLED_LENGTH) or url or guid or "(untitled)"
    return Item(
        url_key=item_key(url, guid, title, content, source=source),
        url=url,
        guid=guid,
        title=title,
        summary=summary,
        content=content,
        # feedparser files dc:date (RSS 1.0) under "updated", and an Atom
        # entry may carry only <updated>: both still date the item.
        published=_date(entry, "published", zone) or _date(entry, "updated", zone),
        updated=_date(entry, "updated", zone),
        authors=_unique(_author_name(author) for author in _children(entry, "authors")),
        tags=_tags(entry) if keep_source_tags else (),
    )


MAX_TAGS = 20  # per item: a feed listing hundreds of keywords would flood the tag pages
MAX_TAG_LENGTH = 60  # characters: a "tag" longer than that is a sentence, not a label


def _tags(entry: _Node) -> tuple[str, ...]:
    """The entry's own categories as tags: short ones only, at most MAX_TAGS."""
    terms = _unique(" ".join(_text(tag, "term").split()) for tag in _children(entry, "tags"))
    return tuple(term for term in terms if len(term) <= MAX_TAG_LENGTH)[:MAX_TAGS]


def _text(node: _Node, key: str) -> str:
    value = dict.get(node, key)
    return value if isinstance(value, str) else ""


def _children(node: _Node, key: str) -> list[_Node]:
    value = dict.get(node, key)
    return [child for child in value if isinstance(child, dict)] if isinstance(value, list) else []


def _detail_type(node: _Node, key: str) -> str:
    """The content type feedparser found for `key` (title, summary)."""
    detail = dict.get(node, f"{key}_detail")
    return _text(detail, "type") if isinstance(detail, dict) else ""


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    """Stripped, XML-safe, non-empty values, first occurrence kept, order kept."""
    return tuple(dict.fromkeys(stripped for value in values if (stripped := xml_safe(value).strip())))


_URL_BREAKERS = re.compile(r"[\x00-\x20\x7f]")


def _http_url(href: str, base: str) -> str | None:
    """`href` made absolute against `base` if it is then an http(s) URL with a host."""
    if _URL_BREAKERS.search(href.strip()):
        return None  # control characters or inner spaces: no server would answer it
    try:
        parts = urlsplit(urljoin(base, href.strip()))
        usable = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # malformed IPv6 host, port out of range
        return None
    return parts.geturl() if usable else None


def _alternate_url(node: _Node, base: str) -> str | None:
    """The first usable rel="alternate" link of a feed or entry.

    Only alternate links count: feedparser 6.0.14 may put an earlier
    rel="enclosure" link in `link`. RSS <link> is an alternate link too.
    """
    hrefs = (_text(link, "href") for link in _children(node, "links") if _text(link, "rel") == "alternate")
    return next((url for href in hrefs if (url := _http_url(href, base))), None)


def _entry_url(entry: _Node, base: str) -> str | None:
    """The entry's alternate link, else its guid when the guid is an absolute URL.

    feedparser copies a permalink guid (an RSS guid without
    isPermaLink="false", an Atom id) into `link`; a relative one such as
    "12345" is an identifier, not a page under the feed's URL.
    """
    if url := _alternate_url(entry, base):
        return url
    return _http_url(_text(entry, "link"), "") if dict.get(entry, "guidislink") else None


def _plain_text(node: _Node, key: str) -> str:
    """A title as plain text on one line: HTML titles lose their tags and entities."""
    value = _text(node, key)
    if _detail_type(node, key) in _HTML_TYPES:
        value = plain_text(value)
    return " ".join(value.split())


def _as_html(value: str, content_type: str) -> str:
    """Plain text escaped for HTML, line breaks kept as <br> (fits inside a <p>)."""
    if content_type != "text/plain":
        return value
    return "<br>\n".join(html.escape(line, quote=False) for line in value.splitlines())


def _content(entry: _Node, summary: str) -> str:
    """The best entry.content value as HTML, else the summary as HTML."""
    blocks = [(_text(block, "type"), _text(block, "value")) for block in _children(entry, "content")]
    for wanted in _CONTENT_TYPES:
        for content_type, value in blocks:
            if content_type == wanted and value.strip():
                return _as_html(value, content_type)
    return _as_html(summary, _detail_type(entry, "summary"))


def _author_name(author: _Node) -> str:
    """A name, else an email; RSS "email (Name)" and "Name <email>" give the name."""
    name = _text(author, "name").strip()
    if match := _AUTHOR_WITH_EMAIL.fullmatch(name):
        return match["paren"] or match["angle"]
    return name or _text(author, "email")


# Dates outside these years are typos or placeholders (0001-01-01, 9999-12-31); they would make
# odd archive paths, pin an item to the top for ever, and overflow some databases.
_PLAUSIBLE_YEARS = (1970, 2200)


def _date(entry: _Node, key: str, zone: ZoneInfo) -> datetime | None:
    """The date in entry[key] with its own UTC offset; None when missing or unreadable.

    feedparser's `<key>_parsed` is a UTC struct_time that has lost the
    offset, so the raw text is read first and the struct is the fallback
    for formats only feedparser knows (see _FEEDPARSER_DATE).
    """
    text = _text(entry, key).strip()
    if value := _date_from_text(text, zone):
        return value
    parsed = dict.get(entry, f"{key}_parsed")
    if not (isinstance(parsed, time.struct_time) and _FEEDPARSER_DATE.fullmatch(text)):
        return None
    try:
        value = datetime(*parsed[:6], tzinfo=UTC)
    except ValueError:  # a leap second
        return None
    return value if _PLAUSIBLE_YEARS[0] <= value.year < _PLAUSIBLE_YEARS[1] else None


def _date_from_text(text: str, zone: ZoneInfo) -> datetime | None:
    """ISO 8601 / W3CDTF or RFC 822; a date without offset is in `zone`.

    "-0000" (RFC 822) and "-00:00" (RFC 3339) state that the local offset is
    unknown, so they count as no offset.
    """
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.upper().removesuffix("-00:00"))
    except ValueError:
        try:
            value = parsedate_to_datetime(_COLON_OFFSET.sub(r"\1\2", text))  # naive for "-0000"
        except (ValueError, OverflowError):
            return None
    value = value if value.tzinfo is not None else value.replace(tzinfo=zone)
    return value if _PLAUSIBLE_YEARS[0] <= value.year < _PLAUSIBLE_YEARS[1] else None
