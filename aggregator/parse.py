"""bytes -> ParsedFeed: the only module that imports feedparser (and lxml).

Pure: no I/O, no clock. feedparser detects the character encoding and reads
RSS 0.9x/1.0/2.0 and Atom 0.3/1.0; this module turns its loose dictionaries
into `Item` records: absolute http(s) links, plain-text titles, HTML content
and dates that keep the publisher's UTC offset.

Two readers fill the same raw fields (_RawFeed), and one function (_build)
makes the ParsedFeed: feedparser, the reference, and an lxml reader that is
several times faster on large feeds. The lxml reader mirrors feedparser's
mapping for a whitelist of RSS 0.9x/1.0/2.0 and Atom 1.0 elements and gives
up (feedparser then reads the body) on anything else: ill-formed XML,
undefined entities, xhtml text constructs, unknown elements, repeated
fields, author strings feedparser splits, dates only feedparser can read.
tests/test_parse.py holds both readers to equal output over feedparser's
corpus and large generated feeds.

Two deliberate departures from a plain `feedparser.parse(body)`:

* Security. Our expat (2.5.0) still expands entities declared in a DOCTYPE
  (billion laughs: only expat's amplification limit stops it, after about a
  second of work per document), and feedparser's own DOCTYPE filter is
  line-based and misses declarations written on one line. So the body is
  first converted to UTF-8 (charset.py decides the encoding), then the
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

import hashlib
import html
import io
import re
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import lru_cache
from importlib.resources.abc import Traversable
from typing import Any
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo

import feedparser
from feedparser.html import _cp1252
from feedparser.urls import _urljoin
from lxml import etree  # type: ignore[import-untyped]

from aggregator.charset import to_utf8
from aggregator.dating import zone_abbreviation_date
from aggregator.errors import ParseError
from aggregator.fingerprint import code_digest, own_code_digest
from aggregator.models import ENTRY_DIGEST_SIZE, Item, KnownEntries, ParsedFeed
from aggregator.text import plain_text, shorten, xml_safe
from aggregator.urls import HASH_KEY_PREFIX, item_key

# A feedparser dictionary (FeedParserDict). Read it only through _text and
# _children, which use dict.get: FeedParserDict.get maps aliases and, for
# "updated", falls back to "published" with a DeprecationWarning.
_Node = dict[str, Any]


def code_fingerprint(package: Traversable | None = None) -> bytes:
    """This program's code (every module of `package`, this one's by default) and its readers' versions.

    Part of every entry digest (KnownEntries), so that an upgrade or a fix
    anywhere in what makes and stores items reads every source's entries
    again once (a change elsewhere costs that too, once: the price of never
    missing one). Without sources to read (a frozen build), the program's
    version, which update.entry_context adds, has to do.
    """
    versions = (feedparser.__version__, etree.LXML_VERSION, etree.LIBXML_VERSION, sys.version_info[:2])
    code = own_code_digest() if package is None else code_digest(package)
    return hashlib.blake2b(code + repr(versions).encode(), digest_size=16).digest()


_CODE = code_fingerprint()

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
    encoding: str | None = None,
    known: KnownEntries | None = None,
) -> ParsedFeed:
    """Read one fetched RSS/Atom body.

    `url` is the final URL the body came from (the base of relative links);
    `timezone` names the IANA zone of dates written without a UTC offset.
    Raises ParseError when the body holds no feed at all; a feed that is
    merely ill-formed (bozo) but readable is accepted. With `known`, entries
    stored before are left out of the items (ParsedFeed.entry_digests: what to know next time).

    The lxml reader handles the common well-formed RSS/Atom shapes; whatever
    it does not fully understand goes to feedparser, the reference reader.
    """
    utf8 = _prepared(body, headers, encoding)
    raw = _read_with_lxml(utf8) or _read_with_feedparser(utf8)
    return _build(raw, url, source, ZoneInfo(timezone), keep_source_tags, known)


def _prepared(body: bytes, headers: Mapping[str, str], encoding: str | None = None) -> bytes:
    """The body as UTF-8 without a DOCTYPE: what both readers are given (charset.py decides)."""
    if not body.strip():
        raise ParseError("empty body")
    return _strip_doctype(to_utf8(body, headers, encoding))


def _parse_with_feedparser(
    body: bytes, headers: Mapping[str, str], *, url: str, source: str, timezone: str, keep_source_tags: bool
) -> ParsedFeed:
    """parse_feed through feedparser only (the reference; for tests)."""
    raw = _read_with_feedparser(_prepared(body, headers))
    return _build(raw, url, source, ZoneInfo(timezone), keep_source_tags)


def _parse_with_lxml(
    body: bytes, headers: Mapping[str, str], *, url: str, source: str, timezone: str, keep_source_tags: bool
) -> ParsedFeed | None:
    """parse_feed through the lxml reader only; None where it defers to feedparser (for tests)."""
    raw = _read_with_lxml(_prepared(body, headers))
    return None if raw is None else _build(raw, url, source, ZoneInfo(timezone), keep_source_tags)


# --- the neutral structure: raw fields as feedparser reports them -------------


@dataclass(slots=True)
class _RawEntry:
    """One entry's raw fields, as feedparser would report them (already stripped)."""

    id: str = ""
    title: str = ""
    title_type: str = ""
    summary: str = ""  # "" unless the publisher wrote one (feedparser's summary_detail)
    summary_type: str = ""
    content: list[tuple[str, str]] = field(default_factory=list)  # (type, value)
    links: list[tuple[str, str]] = field(default_factory=list)  # (rel, href)
    link: str = ""  # the guid, when the guid is a permalink
    guidislink: bool = False
    published: str = ""
    published_parsed: time.struct_time | None = None
    updated: str = ""
    updated_parsed: time.struct_time | None = None
    authors: list[tuple[str, str]] = field(default_factory=list)  # (name, email)
    tags: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _RawFeed:
    title: str = ""
    title_type: str = ""
    links: list[tuple[str, str]] = field(default_factory=list)
    ttl: str = ""
    update_period: str = ""
    update_frequency: str = ""
    entries: list[_RawEntry] = field(default_factory=list)


def _build(
    raw: _RawFeed,
    url: str,
    source: str,
    zone: ZoneInfo,
    keep_source_tags: bool,
    known: KnownEntries | None = None,
) -> ParsedFeed:
    """The one place where raw fields become a ParsedFeed and its Items."""
    title = xml_safe(_plain_text(raw.title, raw.title_type)) or urlsplit(url).hostname or url
    link = _alternate_url(raw.links, url)
    new = None if known is None else _new_items(raw.entries, known, url, source, zone, keep_source_tags)
    if new is not None:
        items, known_digests = new
        return ParsedFeed(
            title=title, link=link, items=items, ttl=_update_hint(raw), known_digests=known_digests
        )
    built = (_item(entry, url, source, zone, keep_source_tags) for entry in raw.entries)
    items = tuple(item for item in built if item is not None)
    return ParsedFeed(title=title, link=link, items=items, ttl=_update_hint(raw))


def _new_items(
    entries: list[_RawEntry],
    known: KnownEntries,
    url: str,
    source: str,
    zone: ZoneInfo,
    keep_source_tags: bool,
) -> tuple[tuple[Item, ...], bytes] | None:
    """(the items of the entries not known, each with its digest; the digests of the known ones).

    None when two entries have one url key: which of them is stored is the
    store's to say (the first that the source's filters keep), so such a body
    is read whole, as it was before entries were known.
    """
    size = ENTRY_DIGEST_SIZE
    seen = {known.digests[start : start + size] for start in range(0, len(known.digests), size)}
    settings = repr((url, source, zone.key, keep_source_tags)).encode()
    seed = hashlib.blake2b(_CODE + known.context + b"\x00" + settings, digest_size=size)
    items: list[Item] = []
    known_digests: list[bytes] = []
    keys: set[str] = set()
    for entry in entries:
        hasher = seed.copy()
        hasher.update(repr(entry).encode("utf-8", "surrogatepass"))
        digest = hasher.digest()
        if digest in seen:  # stored as an item from an earlier body: its key comes from its link or guid
            key = _key_of(entry, url, source, zone, keep_source_tags)
            known_digests.append(digest)
        elif item := _item(entry, url, source, zone, keep_source_tags, digest):
            key = item.url_key
            items.append(item)
        else:
            continue  # nothing to show
        if key in keys:
            return None
        if key is not None:
            keys.add(key)
    return tuple(items), b"".join(known_digests)


# scrape.py fills the same raw fields from HTML and JSON listings, so that their
# Items are made here too (url key, plain-text titles, dates, tags, untitled items).
RawEntry = _RawEntry
RawFeed = _RawFeed


def build_feed(raw: RawFeed, *, url: str, source: str, timezone: str, keep_source_tags: bool) -> ParsedFeed:
    """Raw fields read by another reader made into a ParsedFeed exactly as a feed's are."""
    return _build(raw, url, source, ZoneInfo(timezone), keep_source_tags)


def _read_with_feedparser(utf8: bytes) -> _RawFeed:
    result = feedparser.parse(
        io.BytesIO(utf8),
        response_headers={"content-type": "application/xml; charset=utf-8"},  # what utf8 now is
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    entries: list[_Node] = result["entries"]
    if not result.get("version") and not entries:
        reason = result.get("bozo_exception")
        raise ParseError(f"not an RSS or Atom feed{f' ({reason})' if reason else ''}")
    feed: _Node = result["feed"]
    return _RawFeed(
        title=_text(feed, "title"),
        title_type=_detail_type(feed, "title"),
        links=_links(feed),
        ttl=_text(feed, "ttl"),
        update_period=_text(feed, "sy_updateperiod"),
        update_frequency=_text(feed, "sy_updatefrequency"),
        entries=[_raw_entry(entry) for entry in entries],
    )


def _raw_entry(entry: _Node) -> _RawEntry:
    # Without a summary_detail the summary is feedparser's copy of the
    # content, not something the publisher wrote.
    has_summary = bool(dict.get(entry, "summary_detail"))
    return _RawEntry(
        id=_text(entry, "id"),
        title=_text(entry, "title"),
        title_type=_detail_type(entry, "title"),
        summary=_text(entry, "summary") if has_summary else "",
        summary_type=_detail_type(entry, "summary"),
        content=[(_text(block, "type"), _text(block, "value")) for block in _children(entry, "content")],
        links=_links(entry),
        link=_text(entry, "link"),
        guidislink=bool(dict.get(entry, "guidislink")),
        published=_text(entry, "published"),
        published_parsed=_struct(entry, "published_parsed"),
        updated=_text(entry, "updated"),
        updated_parsed=_struct(entry, "updated_parsed"),
        authors=[(_text(author, "name"), _text(author, "email")) for author in _children(entry, "authors")],
        tags=[_text(tag, "term") for tag in _children(entry, "tags")],
    )


def _links(node: _Node) -> list[tuple[str, str]]:
    return [(_text(link, "rel"), _text(link, "href")) for link in _children(node, "links")]


def _struct(node: _Node, key: str) -> time.struct_time | None:
    value = dict.get(node, key)
    return value if isinstance(value, time.struct_time) else None


# --- the lxml reader ------------------------------------------------------------
#
# It fills the same raw fields as feedparser, mirroring what feedparser 6.0
# does with each element it reads (stripping, xml:base, its Latin-1 and
# cp1252 repairs, HTML guessing for RSS titles), for a whitelist of elements.
# Any element, attribute or shape outside that whitelist makes it give up
# (None), and feedparser reads the document: the differential test over
# feedparser's corpus holds the two readers to the same output.

_ATOM = "http://www.w3.org/2005/Atom"
_RSS1 = "http://purl.org/rss/1.0/"
_RSS090 = "http://my.netscape.com/rdf/simple/0.9/"
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_CONTENT = "http://purl.org/rss/1.0/modules/content/"
_DC = "http://purl.org/dc/elements/1.1/"
_SY = "http://purl.org/rss/1.0/modules/syndication/"
_XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"
_XML_ATTRIBUTES = frozenset({_XML_BASE, "{http://www.w3.org/XML/1998/namespace}lang"})
# Namespaced leaf elements feedparser stores under names we never read.
_HARMLESS_NAMESPACES = frozenset(
    {"http://wellformedweb.org/CommentAPI/", "http://purl.org/rss/1.0/modules/slash/"}
)
# Leaf elements of an RSS channel (and RSS 1.0 channel) that feed none of our fields.
_RSS_CHANNEL_LEAVES = frozenset(
    {
        "description", "language", "copyright", "managingEditor", "webMaster", "pubDate", "lastBuildDate",
        "category", "generator", "docs", "cloud", "rating",
    }
)  # fmt: skip
# Containers whose children feedparser files under the container (image, textinput) or ignores.
_RSS_CHANNEL_BLOCKS = frozenset({"image", "textInput", "textinput", "skipHours", "skipDays"})
_RSS_ITEM_IGNORED = frozenset({"comments", "enclosure", "source"})
_ATOM_FEED_IGNORED = frozenset(
    {"id", "updated", "subtitle", "generator", "icon", "logo", "rights", "category"}
)
# Channel leaves of the DC and syndication modules that feed none of our fields.
_MODULE_CHANNEL_LEAVES = frozenset(
    {f"{{{_SY}}}updateBase", *(f"{{{_DC}}}{name}" for name in ("date", "language", "rights", "publisher"))}
)
_ATOM_PERSON_FIELDS = frozenset(f"{{{_ATOM}}}{name}" for name in ("name", "email", "uri"))
_ATOM_TEXT_TYPES = {"text": "text/plain", "html": "text/html"}
# What feedparser's _sync_author_detail rewrites in an author string.
_AUTHOR_MARKUP = re.compile(r"[@()<>&]")


class _Defer(Exception):
    """The lxml reader is not sure to match feedparser here."""


def _read_with_lxml(utf8: bytes) -> _RawFeed | None:
    """The raw fields of a well-formed RSS 0.9x/1.0/2.0 or Atom 1.0 document; None: ask feedparser.

    The parser never loads a DTD, resolves no entity and reads nothing from
    the network; an undefined entity, a DOCTYPE left in or any ill-formed
    input is a syntax error, and feedparser's tolerant reader takes over.
    """
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, huge_tree=False, recover=False, load_dtd=False
    )
    try:
        root = etree.fromstring(utf8, parser)
    except (etree.LxmlError, ValueError):
        return None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or (docinfo.encoding or "").lower() != "utf-8" or not isinstance(root.tag, str):
        return None  # a DOCTYPE left in, or bytes that to_utf8 did not make UTF-8
    if not root.get(_XML_BASE) and root.xpath("boolean(.//*[@xml:base])"):
        return None  # feedparser keeps an inner xml:base for the following siblings too
    try:
        if root.tag == "rss":
            return _lxml_rss(root)
        if root.tag == f"{{{_RDF}}}RDF":
            return _lxml_rdf(root)
        if root.tag == f"{{{_ATOM}}}feed":
            return _lxml_atom(root)
    except _Defer:
        return None
    return None


_C1_CONTROL = re.compile("[\x80-\x9f]")


def _repaired(text: str) -> str:
    """feedparser's last steps on every text value: UTF-8 read as Latin-1 repaired, cp1252 controls mapped."""
    if text.isascii():
        return text
    try:
        text = text.encode("iso-8859-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        pass
    return text.translate(_cp1252) if _C1_CONTROL.search(text) else text  # translate walks every character


def _leaf(el: Any, *, attributes: Iterable[str] = ()) -> str:
    """The stripped text of an element with no child nodes and no attributes but `attributes`."""
    if len(el) or any(name not in _XML_ATTRIBUTES and name not in attributes for name in el.attrib):
        raise _Defer
    text: str = el.text or ""
    return text.strip()


def _base(el: Any) -> str:
    """The xml:base in effect on `el`, joined the way feedparser joins it."""
    bases = [value for node in el.iterancestors() if (value := node.get(_XML_BASE)) is not None]
    bases.reverse()
    if (own := el.get(_XML_BASE)) is not None:
        bases.append(own)
    base = ""
    for value in bases:
        base = str((_urljoin(base, value) or value) if base else _urljoin(base, value))
    return base


def _resolved(el: Any, uri: str) -> str:
    base = _base(el)
    if not base and _PLAIN_HTTP.fullmatch(uri):
        return uri  # what feedparser's join gives it without a base
    return str(_urljoin(base, uri))


_ENTITY_LIKE = re.compile(r"&(?:#[0-9]+|#x[0-9a-f]+|[a-z][a-z0-9]*);", re.IGNORECASE)


def _attribute(el: Any, name: str) -> str | None:
    """An attribute feedparser-style: any case of its name."""
    for key, value in el.attrib.items():
        if key.lower() == name:
            if _ENTITY_LIKE.search(value):
                raise _Defer  # an entity left after parsing ("&amp;amp;"): feedparser decodes it again
            return str(value)
    return None


def _date_text(el: Any) -> str:
    """A date element's text, when the lxml reader can date it exactly as feedparser would."""
    text = _repaired(_leaf(el))
    if text and _date_from_text(text, ZoneInfo("UTC")) is None and _FEEDPARSER_DATE.fullmatch(text):
        raise _Defer  # a date only feedparser's own reader understands
    return text


def _once(seen: set[str], key: str) -> None:
    """Repeated elements meet feedparser's depth and summary-to-content rules: not mirrored."""
    if key in seen:
        raise _Defer
    seen.add(key)


def _lxml_rss(root: Any) -> _RawFeed:
    if any(name != "version" and name not in _XML_ATTRIBUTES for name in root.attrib):
        raise _Defer
    if any(uri.lower() in (_RSS1, _RSS090) for uri in root.nsmap.values()):
        raise _Defer
    channels = list(root)
    if len(channels) != 1 or channels[0].tag != "channel":
        raise _Defer
    feed = _RawFeed()
    seen: set[str] = set()
    for el in channels[0]:
        tag = el.tag
        if tag == "item":
            feed.entries.append(_lxml_rss_item(el, rss10=False))
        elif not _channel_child(feed, el, seen, ns=""):
            raise _Defer
    return feed


def _lxml_rdf(root: Any) -> _RawFeed:
    uris = {uri.lower() for uri in root.nsmap.values()}
    if _ATOM.lower() in uris or root.nsmap.get(None) not in (_RSS1, _RSS090):
        raise _Defer  # feedparser's version then depends on the order of the declarations
    ns = f"{{{root.nsmap[None]}}}"
    feed = _RawFeed()
    seen: set[str] = set()
    channels = 0
    for el in root:
        tag = el.tag
        if tag == ns + "item":
            feed.entries.append(_lxml_rss_item(el, rss10=True))
        elif tag == ns + "channel":
            channels += 1
            for child in el:
                if child.tag != ns + "items" and not _channel_child(feed, child, seen, ns=ns):
                    raise _Defer
        elif tag not in (ns + "image", ns + "textinput"):
            raise _Defer
    if channels != 1:
        raise _Defer
    return feed


def _channel_child(feed: _RawFeed, el: Any, seen: set[str], *, ns: str) -> bool:
    """Reads one child of an RSS channel; False when it is not one we know."""
    tag = el.tag
    if not isinstance(tag, str):
        return False
    if tag == ns + "title":
        _once(seen, "title")
        feed.title = _repaired(_leaf(el))
        feed.title_type = "text/plain"
        if feed.title and feedparser.mixin._FeedParserMixin.looks_like_html(feed.title):
            feed.title_type = "text/html"
    elif tag == ns + "link":
        _once(seen, "link")
        feed.links.append(("alternate", _rss_link(el, in_entry=False)))
    elif tag == ns + "ttl":
        _once(seen, "ttl")
        feed.ttl = _repaired(_leaf(el))
    elif tag == f"{{{_SY}}}updatePeriod":
        _once(seen, "period")
        feed.update_period = _repaired(_leaf(el))
    elif tag == f"{{{_SY}}}updateFrequency":
        _once(seen, "frequency")
        feed.update_frequency = _repaired(_leaf(el))
    elif tag == f"{{{_ATOM}}}link":
        feed.links.append(_atom_link(el)[:2])
    elif tag in _MODULE_CHANNEL_LEAVES:
        _leaf(el)
    elif ns:
        return tag in (ns + "description", ns + "image", ns + "textinput") and not len(el)
    elif tag in _RSS_CHANNEL_LEAVES:
        _leaf(el, attributes=("domain", "port", "path", "registerProcedure", "protocol"))
    elif tag in _RSS_CHANNEL_BLOCKS:
        if any(not isinstance(child.tag, str) or child.tag.startswith("{") or len(child) for child in el):
            raise _Defer
    else:
        return False
    return True


_ENTITY_NAME = re.compile("&([A-Za-z0-9_]+);")


def _rss_link(el: Any, *, in_entry: bool) -> str:
    """An RSS <link> text as feedparser stores it (its "?a=1&b;=2" repair differs in entries)."""
    text = _leaf(el)
    text = _repaired(_resolved(el, text)) if text else ""
    if in_entry:
        text = text.replace("&amp;", "&")
    return _ENTITY_NAME.sub(r"&\g<1>", text) if ";" in text else text


def _lxml_rss_item(el: Any, *, rss10: bool) -> _RawEntry:
    entry = _RawEntry()
    if rss10:
        if any(name != f"{{{_RDF}}}about" and name not in _XML_ATTRIBUTES for name in el.attrib):
            raise _Defer
        entry.id = el.get(f"{{{_RDF}}}about") or ""
        if _ENTITY_LIKE.search(entry.id):
            raise _Defer  # as in _attribute: an entity left after parsing is decoded again, or not
        ns = el.tag[: -len("item")]
    else:
        if any(name not in _XML_ATTRIBUTES for name in el.attrib):
            raise _Defer
        ns = ""
    seen: set[str] = set()
    link: str | None = None
    for child in el:
        tag = child.tag
        if not isinstance(tag, str):
            raise _Defer
        if tag == ns + "title":
            _once(seen, "title")
            entry.title = _leaf(child)
            entry.title_type = "text/plain"
            if entry.title and feedparser.mixin._FeedParserMixin.looks_like_html(entry.title):
                entry.title_type = "text/html"
            entry.title = _repaired(entry.title)
        elif tag == ns + "link":
            _once(seen, "link")
            link = _rss_link(child, in_entry=True)
            entry.links.append(("alternate", link))
        elif tag == ns + "description":
            _once(seen, "summary")
            entry.summary, entry.summary_type = _repaired(_leaf(child)), "text/html"
        elif tag == f"{{{_CONTENT}}}encoded":
            _once(seen, "content")
            entry.content.append(("text/html", _repaired(_leaf(child))))
        elif tag in (f"{{{_DC}}}creator", "author" if not rss10 else None):
            name = _repaired(_leaf(child))
            if _AUTHOR_MARKUP.search(name):
                raise _Defer  # feedparser splits "email (Name)" its own way
            entry.authors.append((name, ""))
        elif tag in (f"{{{_DC}}}subject", "category" if not rss10 else None):
            if term := _repaired(_leaf(child, attributes=("domain",) if tag == "category" else ())):
                entry.tags.append(term)
        elif tag == f"{{{_DC}}}date":
            _once(seen, "updated")
            entry.updated = _date_text(child)
        elif tag == "pubDate" and not rss10:
            _once(seen, "published")
            entry.published = _date_text(child)
        elif tag == "guid" and not rss10:
            _once(seen, "id")
            permalink = (_attribute(child, "ispermalink") or "true") == "true"
            value = _leaf(child, attributes=[name for name in child.attrib if name.lower() == "ispermalink"])
            entry.id = _repaired(_resolved(child, value) if permalink and value else value)
            entry.guidislink = permalink and link is None
            if permalink and link is None:
                link = entry.id
        elif tag in _RSS_ITEM_IGNORED and not rss10:
            if len(child):
                raise _Defer
        elif not tag.startswith("{") or tag.split("}")[0][1:] not in _HARMLESS_NAMESPACES or len(child):
            raise _Defer
    entry.link = link or ""
    return entry


def _atom_link(el: Any) -> tuple[str, str, str]:
    """(rel, href, type) of an atom:link as feedparser reads it."""
    if len(el) or el.get("href") is None:
        raise _Defer
    rel = (_attribute(el, "rel") if _attribute(el, "rel") is not None else "alternate") or ""
    href = _resolved(el, _attribute(el, "href") or "")
    return rel.lower(), href, (_attribute(el, "type") or "text/html").lower()


def _atom_text(el: Any) -> tuple[str, str]:
    """(value, type) of an Atom text construct in plain text or HTML; xhtml and others defer."""
    kind = _ATOM_TEXT_TYPES.get((_attribute(el, "type") or "text").lower())
    if kind is None:
        raise _Defer
    return _repaired(_leaf(el, attributes=("type",))), kind


def _atom_name(el: Any) -> str:
    """The local name of an Atom element; anything else (comments, foreign elements) defers."""
    tag = el.tag
    if not isinstance(tag, str) or not tag.startswith(f"{{{_ATOM}}}"):
        raise _Defer
    return tag[len(_ATOM) + 2 :]


def _lxml_atom(root: Any) -> _RawFeed:
    feed = _RawFeed()
    seen: set[str] = set()
    for el in root:
        name = _atom_name(el)
        if name == "entry":
            feed.entries.append(_lxml_atom_entry(el))
        elif name == "title":
            _once(seen, "title")
            feed.title, feed.title_type = _atom_text(el)
        elif name == "link":
            feed.links.append(_atom_link(el)[:2])
        elif name in ("author", "contributor"):
            _person(el)
        elif name in _ATOM_FEED_IGNORED:
            _leaf(el, attributes=("type", "term", "scheme", "label", "uri", "version"))
        else:
            raise _Defer
    return feed


def _person(el: Any) -> tuple[str, str]:
    """(name, email) of an atom:author."""
    fields: dict[str, str] = {}
    for child in el:
        tag = child.tag
        if tag not in _ATOM_PERSON_FIELDS:
            raise _Defer
        key = tag.rsplit("}", 1)[1]
        if key in fields:
            raise _Defer
        fields[key] = _repaired(_leaf(child))
    if (el.text and el.text.strip()) or any(name not in _XML_ATTRIBUTES for name in el.attrib):
        raise _Defer
    name = fields.get("name", "")
    if not name or _AUTHOR_MARKUP.search(name):
        raise _Defer  # feedparser's author string and detail then go their own ways
    return name, fields.get("email", "")


def _lxml_atom_entry(el: Any) -> _RawEntry:
    if any(name not in _XML_ATTRIBUTES for name in el.attrib):
        raise _Defer
    entry = _RawEntry()
    seen: set[str] = set()
    link: str | None = None
    for child in el:
        name = _atom_name(child)
        if name == "id":
            _once(seen, "id")
            value = _leaf(child)
            entry.id = _repaired(_resolved(child, value) if value else value)
            entry.guidislink = link is None
            if link is None:
                link = entry.id
        elif name == "title":
            _once(seen, "title")
            entry.title, entry.title_type = _atom_text(child)
        elif name == "summary":
            _once(seen, "summary")
            entry.summary, entry.summary_type = _atom_text(child)
        elif name == "content":
            _once(seen, "content")
            value, kind = _atom_text(child)
            entry.content.append((kind, value))
        elif name == "link":
            rel, href, kind = _atom_link(child)
            entry.links.append((rel, href))
            if rel == "alternate" and kind in _HTML_TYPES:
                link = href
        elif name == "published":
            _once(seen, "published")
            entry.published = _date_text(child)
        elif name == "updated":
            _once(seen, "updated")
            entry.updated = _date_text(child)
        elif name == "author":
            entry.authors.append(_person(child))
        elif name == "contributor":
            _person(child)
        elif name == "category":
            if _leaf(child, attributes=("term", "scheme", "label")):
                raise _Defer
            entry.tags.append(_attribute(child, "term") or "")
        elif name == "rights":
            _atom_text(child)
        else:
            raise _Defer
    entry.link = link or ""
    return entry


_MAX_TTL_MINUTES = 365 * 24 * 60  # the scheduler caps hints far lower; this only keeps timedelta in range
_SY_PERIODS = {
    "hourly": timedelta(hours=1),
    "daily": timedelta(days=1),
    "weekly": timedelta(weeks=1),
    "monthly": timedelta(days=30),
    "yearly": timedelta(days=365),
}


def _update_hint(feed: _RawFeed) -> timedelta | None:
    """How often the publisher says the feed changes: RSS <ttl> minutes, else sy:updatePeriod."""
    ttl = feed.ttl.strip()
    if ttl.isascii() and ttl.isdigit() and int(ttl) > 0:
        return timedelta(minutes=min(int(ttl), _MAX_TTL_MINUTES))
    period = _SY_PERIODS.get(feed.update_period.strip().lower())
    if period is None:
        return None
    frequency = feed.update_frequency.strip()
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


def _key_of(entry: _RawEntry, base: str, source: str, zone: ZoneInfo, keep_source_tags: bool) -> str | None:
    """The url key _item gives `entry`, without building the item when its link or guid makes the key."""
    url, guid = _identity(entry, base)
    if url or guid:
        key = item_key(url, guid, "", "", source=source)
        if not key.startswith(HASH_KEY_PREFIX):  # made from the link or guid alone
            return key
    item = _item(entry, base, source, zone, keep_source_tags)
    return item.url_key if item is not None else None


def _identity(entry: _RawEntry, base: str) -> tuple[str | None, str | None]:
    """(link, guid) of an entry, as its Item has them."""
    return _entry_url(entry, base), xml_safe(entry.id).strip() or None


def _item(
    entry: _RawEntry,
    base: str,
    source: str,
    zone: ZoneInfo,
    keep_source_tags: bool,
    digest: bytes | None = None,
) -> Item | None:
    """One entry as an Item (with the entry's digest, when it has one); None when it has nothing to show."""
    url, guid = _identity(entry, base)
    title = xml_safe(_plain_text(entry.title, entry.title_type))
    summary = xml_safe(entry.summary)
    content = xml_safe(_content(entry))
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
        published=_date(entry.published, entry.published_parsed, zone)
        or _date(entry.updated, entry.updated_parsed, zone),
        updated=_date(entry.updated, entry.updated_parsed, zone),
        authors=_unique(_author_name(name, email) for name, email in entry.authors),
        tags=_tags(entry.tags) if keep_source_tags else (),
        entry_digest=digest,
    )


MAX_TAGS = 20  # per item: a feed listing hundreds of keywords would flood the tag pages
MAX_TAG_LENGTH = 60  # characters: a "tag" longer than that is a sentence, not a label


def _tags(raw_terms: Iterable[str]) -> tuple[str, ...]:
    """The entry's own categories as tags: short ones only, at most MAX_TAGS."""
    terms = _unique(" ".join(term.split()) for term in raw_terms)
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


# An absolute http(s) URL with a plain host, a port from 1 to 9999 if any, no ";" in its path (a join
# drops an empty ";params"), and no empty query or fragment: joining and splitting it give it back.
_PLAIN_HTTP = re.compile(
    r"https?://[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[1-9][0-9]{0,3})?(?:/[^?#;]*)?(?:\?[^#]+)?(?:#.+)?"
)
# Already absolute: joining it to a base changes nothing that splitting it does not ("; params" aside).
_ABSOLUTE_HTTP = re.compile(r"https?://[^/?#;]+(?:[/?#][^;]*)?", re.IGNORECASE)


def _http_url(href: str, base: str) -> str | None:
    """`href` made absolute against `base` if it is then an http(s) URL with a host."""
    href = href.strip()
    if _URL_BREAKERS.search(href):
        return None  # control characters or inner spaces: no server would answer it
    if _PLAIN_HTTP.fullmatch(href):
        return href  # nearly every link: what splitting and joining it again would give
    try:
        parts = urlsplit(href if _ABSOLUTE_HTTP.fullmatch(href) else urljoin(base, href))
        usable = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # malformed IPv6 host, port out of range
        return None
    return parts.geturl() if usable else None


def _alternate_url(links: Iterable[tuple[str, str]], base: str) -> str | None:
    """The first usable rel="alternate" link of a feed or entry.

    Only alternate links count: feedparser 6.0.14 may put an earlier
    rel="enclosure" link in `link`. RSS <link> is an alternate link too.
    """
    hrefs = (href for rel, href in links if rel == "alternate")
    return next((url for href in hrefs if (url := _http_url(href, base))), None)


def _entry_url(entry: _RawEntry, base: str) -> str | None:
    """The entry's alternate link, else its guid when the guid is an absolute URL.

    feedparser copies a permalink guid (an RSS guid without
    isPermaLink="false", an Atom id) into `link`; a relative one such as
    "12345" is an identifier, not a page under the feed's URL.
    """
    if url := _alternate_url(entry.links, base):
        return url
    return _http_url(entry.link, "") if entry.guidislink else None


def _plain_text(value: str, content_type: str) -> str:
    """A title as plain text on one line: HTML titles lose their tags and entities."""
    if content_type in _HTML_TYPES:
        value = plain_text(value)
    return " ".join(value.split())


def _as_html(value: str, content_type: str) -> str:
    """Plain text escaped for HTML, line breaks kept as <br> (fits inside a <p>)."""
    if content_type != "text/plain":
        return value
    return "<br>\n".join(html.escape(line, quote=False) for line in value.splitlines())


def _content(entry: _RawEntry) -> str:
    """The best entry.content value as HTML, else the summary as HTML."""
    for wanted in _CONTENT_TYPES:
        for content_type, value in entry.content:
            if content_type == wanted and value.strip():
                return _as_html(value, content_type)
    return _as_html(entry.summary, entry.summary_type)


def _author_name(name: str, email: str) -> str:
    """A name, else an email; RSS "email (Name)" and "Name <email>" give the name."""
    name = name.strip()
    if match := _AUTHOR_WITH_EMAIL.fullmatch(name):
        return match["paren"] or match["angle"]
    return name or email


# Dates outside these years are typos or placeholders (0001-01-01, 9999-12-31); they would make
# odd archive paths, pin an item to the top for ever, and overflow some databases.
_PLAUSIBLE_YEARS = (1970, 2200)


def _date(raw: str, parsed: time.struct_time | None, zone: ZoneInfo) -> datetime | None:
    """A raw date with its own UTC offset; None when missing or unreadable.

    feedparser's `<key>_parsed` is a UTC struct_time that has lost the
    offset, so the raw text is read first and the struct is the fallback
    for formats only feedparser knows (see _FEEDPARSER_DATE).
    """
    text = raw.strip()
    if value := _date_from_text(text, zone):
        return value
    if not (isinstance(parsed, time.struct_time) and _FEEDPARSER_DATE.fullmatch(text)):
        return None
    try:
        value = datetime(*parsed[:6], tzinfo=UTC)
    except ValueError:  # a leap second
        return None
    return value if _PLAUSIBLE_YEARS[0] <= value.year < _PLAUSIBLE_YEARS[1] else None


@lru_cache(maxsize=256)  # the lxml reader checks a date that _build then reads: each is read once
def _date_from_text(text: str, zone: ZoneInfo) -> datetime | None:
    """ISO 8601 / W3CDTF or RFC 822; a date without offset, or with `zone`'s own abbreviation, is in `zone`.

    "-0000" (RFC 822) and "-00:00" (RFC 3339) state that the local offset is
    unknown, so they count as no offset.
    """
    if not text:
        return None
    if value := zone_abbreviation_date(text, zone):  # "CST" from a source in Asia/Shanghai is +0800
        return value if _PLAUSIBLE_YEARS[0] <= value.year < _PLAUSIBLE_YEARS[1] else None
    try:
        value = datetime.fromisoformat(text.upper().removesuffix("-00:00"))
    except ValueError:
        try:
            value = parsedate_to_datetime(_COLON_OFFSET.sub(r"\1\2", text))  # naive for "-0000"
        except (ValueError, OverflowError):
            return None
    value = value if value.tzinfo is not None else value.replace(tzinfo=zone)
    return value if _PLAUSIBLE_YEARS[0] <= value.year < _PLAUSIBLE_YEARS[1] else None
