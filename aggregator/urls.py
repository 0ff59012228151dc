"""The url key: one string per item, however its URL was written.

The same article reaches us through several sources with different
decorations (http or https, a default port, campaign parameters, a
fragment). `normalize_url` strips exactly those and nothing that could tell
two pages apart: the path and the remaining query are kept byte for byte,
because servers differ on case, commas and percent-encoding. `item_key`
falls back to the guid and then to a content hash, so every item gets a key.

Keys are identifiers, not addresses to fetch: every key uses "https://"
whatever the scheme of the original URL, so the http and https forms of a
URL give one key.
"""

from __future__ import annotations

import hashlib
import re
from types import MappingProxyType
from urllib.parse import unquote_plus, urlsplit

# Query parameters that only identify a campaign, a click or a mail
# recipient, never which page is served; every `utm_*` name is dropped too.
# Compared case-insensitively. Generic names (id, ref, source, page, ...)
# are deliberately absent: some sites use them for content.
TRACKING_PARAMETERS = frozenset(
    {
        "fbclid",  # Facebook click
        "gclid",  # Google Ads click
        "gclsrc",  # Google Ads click source
        "dclid",  # Google Display click
        "gbraid",  # Google Ads (iOS, app to web)
        "wbraid",  # Google Ads (iOS, web to app)
        "srsltid",  # Google Merchant Center
        "_ga",  # Google Analytics cross-domain linker
        "_gl",  # Google Analytics cross-domain linker
        "msclkid",  # Microsoft Ads click
        "yclid",  # Yandex click
        "twclid",  # X/Twitter Ads click
        "ttclid",  # TikTok Ads click
        "li_fat_id",  # LinkedIn first-party ad tracking
        "epik",  # Pinterest click
        "igshid",  # Instagram share
        "mc_cid",  # Mailchimp campaign
        "mc_eid",  # Mailchimp recipient
        "mkt_tok",  # Marketo recipient
        "_hsenc",  # HubSpot mail
        "_hsmi",  # HubSpot mail
        "__hstc",  # HubSpot visitor
        "__hssc",  # HubSpot session
        "__hsfp",  # HubSpot fingerprint
        "hsctatracking",  # HubSpot call-to-action
        "__s",  # Drip recipient
        "_kx",  # Klaviyo recipient
        "ml_subscriber",  # MailerLite recipient
        "ml_subscriber_hash",  # MailerLite recipient
        "vero_id",  # Vero recipient
        "vero_conv",  # Vero conversion
        "oly_anon_id",  # Omeda visitor
        "oly_enc_id",  # Omeda recipient
        "rb_clickid",  # Rakuten click
        "wickedid",  # Wicked Reports click
        "_openstat",  # Yandex/Openstat campaign
        "_branch_match_id",  # Branch deep link
    }
)

_WHITESPACE = re.compile(r"\s")  # what str.isspace() calls whitespace
_DEFAULT_PORTS = MappingProxyType({"http": 80, "https": 443})


def _is_tracking(name: str) -> bool:
    name = unquote_plus(name).lower()
    return name.startswith("utm_") or name in TRACKING_PARAMETERS


def _kept_query(query: str) -> str:
    """The query without tracking or empty pairs, the rest untouched and in order."""
    pairs = [pair for pair in query.split("&") if pair and not _is_tracking(pair.partition("=")[0])]
    return "&".join(pairs)


def _ascii_host(host: str, url: str) -> str:
    """The host in ASCII (urlsplit already lower-cased it): IDN labels become punycode."""
    if not host or _WHITESPACE.search(host):
        raise ValueError(f"not a URL with a usable host: {url!r}")
    if ":" in host:  # IPv6 literal; urlsplit removed the brackets
        return f"[{host}]"
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError(f"host is not a valid internationalized domain name: {url!r}") from exc


def normalize_url(url: str) -> str:
    """The url key of an http(s) URL.

    Raises ValueError for anything else, so callers can fall back to
    another key instead of storing a key that identifies nothing.
    """
    text = url.strip()
    if plain := _PLAIN_URL.fullmatch(text):  # nearly every link: no need to split it in the general way
        scheme, host, port, path, query = plain.groups()
        return _key_of(scheme, host, int(port) if port else None, path or "", query or "")
    return _normalize_split(text)


# A lower-case http(s) URL with an ASCII host and no control characters: split by this pattern,
# it gives the same parts as urlsplit would, so normalize_url takes it apart here.
_PLAIN_URL = re.compile(
    r"(https?)://([a-z0-9](?:[a-z0-9.-]*[a-z0-9])?)(?::([1-9][0-9]{0,3}))?(/[^?#\x00-\x1f]*)?"
    r"(?:\?([^#\x00-\x1f]*))?(?:#[^\x00-\x1f]*)?"
)


def _normalize_split(text: str) -> str:
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"cannot parse URL {text!r}: {exc}") from exc
    if parts.scheme not in _DEFAULT_PORTS:
        raise ValueError(f"not an http(s) URL: {text!r}")
    return _key_of(parts.scheme, _ascii_host(parts.hostname or "", text), port, parts.path, parts.query)


def _key_of(scheme: str, host: str, port: int | None, path: str, query: str) -> str:
    """The key of a URL's parts: https, no default port, no tracking parameters, no fragment."""
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    kept = _kept_query(query)
    return f"https://{netloc}{path or '/'}{'?' + kept if kept else ''}"


def _url_key_or_none(value: str) -> str | None:
    try:
        return normalize_url(value)
    except ValueError:
        return None


def item_key(link: str | None, guid: str | None, title: str, content: str, *, source: str) -> str:
    """The url key of an item: its link, else its guid, else a hash of its text.

    Never empty, so an item without link or guid is still stored (once)
    rather than silently dropped or merged with every other such item.
    The "guid:" and "hash:" prefixes keep those keys apart from URL keys.
    A guid that is not a URL (often a bare number) and a text hash only mean
    something within one source, so those keys carry the source name: two
    sources' item "12345" are different articles.
    """
    if link and (key := _url_key_or_none(link)):
        return _bounded(key)
    guid = (guid or "").strip()
    if guid:
        return _bounded(_url_key_or_none(guid) or f"guid:{source}:{guid}")
    digest = hashlib.sha256(f"{source}\n{title}\n{content}".encode()).hexdigest()
    return f"{HASH_KEY_PREFIX}{digest}"


HASH_KEY_PREFIX = "hash:"  # the key of an item with neither link nor guid: a hash of its text


MAX_KEY_BYTES = 1000  # PostgreSQL's btree refuses index entries over ~2.7 kB; real URLs stay far below


def _bounded(key: str) -> str:
    """Keys too long to index become a digest of themselves: still one key per URL."""
    if len(key.encode("utf-8")) <= MAX_KEY_BYTES:
        return key
    return "long:" + hashlib.sha256(key.encode("utf-8")).hexdigest()
