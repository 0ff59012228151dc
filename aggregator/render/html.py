"""Publisher HTML made safe to republish.

Everything a source sends is untrusted: it is republished on our own origin,
so scripts, event handlers and dangerous URL schemes must never survive.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from types import MappingProxyType
from urllib.parse import urljoin, urlsplit

import nh3

# What an article needs to read well; anything else is unwrapped (text kept).
# `center` is kept: older CMSs centre figures with it (as the seed page does)
# and it carries no attributes, so it cannot do harm.
_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "caption", "center", "cite", "code", "col",
        "colgroup", "dd", "del", "dfn", "div", "dl", "dt", "em", "figcaption", "figure",
        "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark",
        "ol", "p", "pre", "q", "s", "samp", "small", "span", "strong", "sub", "sup",
        "table", "tbody", "td", "tfoot", "th", "thead", "time", "tr", "u", "ul", "var",
    }
)  # fmt: skip

# No style, class or id: the publisher's CSS is not ours, and ids could clash with our page.
_ATTRIBUTES = MappingProxyType(
    {
        "a": frozenset({"href", "title"}),
        "abbr": frozenset({"title"}),
        "blockquote": frozenset({"cite"}),
        "col": frozenset({"span"}),
        "colgroup": frozenset({"span"}),
        "img": frozenset({"src", "srcset", "alt", "title", "width", "height"}),
        "ol": frozenset({"start", "reversed"}),
        "q": frozenset({"cite"}),
        "td": frozenset({"colspan", "rowspan"}),
        "th": frozenset({"colspan", "rowspan", "scope"}),
        "time": frozenset({"datetime"}),
    }
)

# Removed together with their content (iframes too, unless their host is in
# site.iframe_hosts); noscript content would otherwise show up as escaped markup.
_DROPPED_WITH_CONTENT = frozenset(
    {"script", "style", "iframe", "object", "embed", "template", "noscript", "svg", "math"}
)

# An allowed embed: only these attributes, each checked by _attribute_filter.
_IFRAME_ATTRIBUTES = frozenset({"src", "width", "height", "allowfullscreen"})
# nh3 keeps an iframe's raw-text content; an iframe whose src did not survive is dropped whole.
_IFRAME = re.compile(r"<iframe\b([^>]*)>.*?</iframe>", re.DOTALL | re.IGNORECASE)
_UNSAFE_IN_URL = re.compile(r"[\x00-\x20<>\"'`\\]")
_SRCSET_CANDIDATE = re.compile(r"[\s,]*(?P<url>[^\s,][^\s]*)(?:(?<!,)\s+(?P<descriptor>[^,]*))?")
_DIMENSION = re.compile(r"^\d{1,4}%?$")

_URL_SCHEMES = frozenset({"http", "https", "mailto"})
_LINK_REL = "noopener noreferrer"

__all__ = ["http_url", "sanitize_html"]


def http_url(url: str | None) -> str | None:
    """The URL if it is absolute http(s), else None: feeds may carry `javascript:` links."""
    if url and urlsplit(url.strip()).scheme.lower() in {"http", "https"}:
        return url.strip()
    return None


def sanitize_html(html: str, base_url: str | None, iframe_hosts: Collection[str] = ()) -> str:
    """Publisher HTML reduced to an allowlist, with links and images made absolute.

    Relative URLs are resolved against `base_url` (the article's original
    URL), `srcset` candidates included. Without a usable base they are
    dropped: left as they are they would point into our own site. iframes
    survive only with an https `src` on one of `iframe_hosts` (video embeds),
    and then empty.
    """
    base = http_url(base_url)
    hosts = frozenset(host.lower() for host in iframe_hosts)
    attributes = dict(_ATTRIBUTES)  # nh3 insists on a real dict
    if hosts:
        attributes["iframe"] = _IFRAME_ATTRIBUTES
    cleaned = nh3.clean(
        html,
        tags=_TAGS | {"iframe"} if hosts else _TAGS,
        clean_content_tags=_DROPPED_WITH_CONTENT - {"iframe"} if hosts else _DROPPED_WITH_CONTENT,
        attributes=attributes,
        attribute_filter=lambda tag, name, value: _attribute_filter(tag, name, value, base, hosts),
        url_schemes=_URL_SCHEMES,
        link_rel=_LINK_REL,
        strip_comments=True,
        url_relative=("rewrite_with_base", base) if base else "deny",
    )
    return _IFRAME.sub(_empty_iframe, cleaned) if hosts else cleaned


def _attribute_filter(tag: str, name: str, value: str, base: str | None, hosts: frozenset[str]) -> str | None:
    """Checks nh3's allowlist cannot express: embed hosts, srcset candidates, sizes."""
    if tag == "iframe":
        if name == "src":
            parts = urlsplit(value.strip())
            allowed = parts.scheme == "https" and (parts.hostname or "") in hosts and parts.port is None
            return value.strip() if allowed and not _UNSAFE_IN_URL.search(value.strip()) else None
        if name in ("width", "height"):
            return value if _DIMENSION.match(value.strip()) else None
        return "" if name == "allowfullscreen" else None
    if tag == "img" and name == "srcset":
        return _srcset(value, base)
    return value


def _srcset(value: str, base: str | None) -> str | None:
    """Every candidate made absolute http(s) against `base`; unusable candidates left out.

    Split the way the HTML standard does: a URL runs to the next whitespace
    (it may hold commas, as data: URLs do), trailing commas end a candidate.
    """
    candidates = []
    for match in _SRCSET_CANDIDATE.finditer(value):
        url, descriptor = match.group("url").rstrip(","), match.group("descriptor") or ""
        absolute = http_url(urljoin(base, url) if base else url) if url else None
        if absolute and not _UNSAFE_IN_URL.search(absolute):
            candidates.append(f"{absolute} {descriptor.strip()}".strip())
    return ", ".join(candidates) or None


def _empty_iframe(match: re.Match[str]) -> str:
    """An allowed iframe without its raw-text content; one whose src was refused, removed."""
    return f"<iframe{match.group(1)}></iframe>" if " src=" in match.group(1) else ""
