"""Publisher HTML made safe to republish.

Everything a source sends is untrusted: it is republished on our own origin,
so scripts, event handlers and dangerous URL schemes must never survive.
"""

from __future__ import annotations

from types import MappingProxyType
from urllib.parse import urlsplit

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
        "img": frozenset({"src", "alt", "title", "width", "height"}),
        "ol": frozenset({"start", "reversed"}),
        "q": frozenset({"cite"}),
        "td": frozenset({"colspan", "rowspan"}),
        "th": frozenset({"colspan", "rowspan", "scope"}),
        "time": frozenset({"datetime"}),
    }
)

# Removed together with their content. iframes go until an allowlist of
# embeds exists; noscript content would otherwise show up as escaped markup.
_DROPPED_WITH_CONTENT = frozenset(
    {"script", "style", "iframe", "object", "embed", "template", "noscript", "svg", "math"}
)

_URL_SCHEMES = frozenset({"http", "https", "mailto"})
_LINK_REL = "noopener noreferrer"

__all__ = ["http_url", "sanitize_html"]


def http_url(url: str | None) -> str | None:
    """The URL if it is absolute http(s), else None: feeds may carry `javascript:` links."""
    if url and urlsplit(url.strip()).scheme.lower() in {"http", "https"}:
        return url.strip()
    return None


def sanitize_html(html: str, base_url: str | None) -> str:
    """Publisher HTML reduced to an allowlist, with links and images made absolute.

    Relative URLs are resolved against `base_url` (the article's original
    URL). Without a usable base they are dropped: left as they are they would
    point into our own site.
    """
    base = http_url(base_url)
    return nh3.clean(
        html,
        tags=_TAGS,
        clean_content_tags=_DROPPED_WITH_CONTENT,
        attributes=dict(_ATTRIBUTES),  # nh3 insists on a real dict
        url_schemes=_URL_SCHEMES,
        link_rel=_LINK_REL,
        strip_comments=True,
        url_relative=("rewrite_with_base", base) if base else "deny",
    )
