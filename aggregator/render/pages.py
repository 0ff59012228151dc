"""Stored items to HTML pages (archive and index pages) and to Jekyll posts.

Templates live in `aggregator/templates/`; the values they show are worked
out here, so the templates only lay them out and escape them.
"""

from __future__ import annotations

import functools
import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html.parser import HTMLParser
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from aggregator.layout import (
    Listing,
    absolute_url,
    link_path,
    numbered_pages,
    page_window,
    post_path_for,
    protocol_relative_url,
    site_relative_url,
)
from aggregator.models import SiteConfig, StoredItem
from aggregator.render.html import http_url, sanitize_html
from aggregator.text import plain_text, shorten

_DESCRIPTION_CHARS = 160  # what search engines show of a meta description
_EXCERPT_CHARS = 140  # the summary under a title on an index page

# A tag written bare in Jekyll front matter must stay one YAML string that
# Jekyll splits on spaces: a letter first, no YAML syntax, no YAML 1.1 keyword.
_BARE_TAG = re.compile(r"[^\W\d_][\w.+\-]*")
_YAML_KEYWORDS = frozenset({"true", "false", "yes", "no", "on", "off", "null"})
_FULLWIDTH_BAR = "\uff5c"  # between the seed's back links

# Jekyll runs Liquid over the whole post before kramdown sees it: a "{" that
# opens "{{" or "{%" becomes a character reference, which renders the same.
_LIQUID_OPENER = re.compile(r"\{(?=[{%])")
# A summary is one line of Markdown. Every character kramdown can give meaning
# there is written so that it stands for itself: backslash escapes where
# kramdown accepts them, character references for "{" (kramdown's "{:" and
# "{::" syntax, and Liquid) and "~" (GFM strikethrough, not escapable in plain
# kramdown). "<", ">" and "&" are already character references by then.
_SUMMARY_ESCAPES = str.maketrans(
    {
        **{char: "\\" + char for char in "\\`*_[]()}#+-.!:|\"'$="},
        "{": "&#123;",
        "~": "&#126;",
    }
)
# What may stay as it is in the `<...>` autolink: RFC 3986's characters, "%"
# (URLs arrive already percent-encoded) and the backslash (browsers read it as
# "/" in http(s) URLs, so encoding it would change where the link goes, and it
# cannot end the autolink). Everything else, including "<", ">", spaces,
# quotes, "{" and non-ASCII, is percent-encoded as UTF-8.
_AUTOLINK_SAFE = "!#$%&'()*+,-./:;=?@[]_~\\"
# Elements HTML lays out as blocks; anything else at the top level of the
# content (text and phrasing elements) is wrapped in a paragraph for kramdown.
_BLOCK_ELEMENTS = frozenset(
    {
        "address", "article", "aside", "blockquote", "caption", "center", "col", "colgroup",
        "dd", "details", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer",
        "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol",
        "p", "pre", "section", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
    }
)  # fmt: skip
_VOID_ELEMENTS = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
)


@dataclass(frozen=True, slots=True)
class _Link:
    url: str
    text: str


@dataclass(frozen=True, slots=True)
class _Source:
    text: str
    url: str | None  # the publisher's site, when known


@dataclass(frozen=True, slots=True)
class _Time:
    iso: str  # for the datetime attribute
    text: str  # "2022-03-14 10:55:11 +0800", in the publisher's offset as the seed shows it
    date: str


@dataclass(frozen=True, slots=True)
class _Feed:
    title: str
    url: str  # absolute, for autodiscovery
    site_url: str  # site-relative, for the visible subscribe link


@dataclass(frozen=True, slots=True)
class _Entry:
    url: str
    title: str
    published: _Time
    category: _Link
    summary: str


@functools.cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("aggregator", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _time(moment: datetime) -> _Time:
    return _Time(
        iso=moment.isoformat(timespec="seconds"),
        text=moment.strftime("%Y-%m-%d %H:%M:%S %z"),
        date=moment.strftime("%Y-%m-%d"),
    )


def _summary(item: StoredItem) -> str:
    """The summary as plain text, or "" when it would only repeat the content."""
    summary = plain_text(item.summary)
    return "" if summary == plain_text(item.content) else summary


def _category_listing(site: SiteConfig, slug: str) -> Listing:
    return Listing("category", slug, site.category_title(slug))


def _feed(site: SiteConfig, listing: Listing) -> _Feed:
    return _Feed(
        title=listing.full_title(site.title),
        url=absolute_url(site.base_url, listing.feed_path),
        site_url=site_relative_url(site.base_url, listing.feed_path),
    )


def _listing_link(site: SiteConfig, listing: Listing, text: str | None = None) -> _Link:
    """A link to a listing's first index page, named by its title unless told otherwise."""
    return _Link(site_relative_url(site.base_url, listing.folder), listing.title if text is None else text)


def render_archive_page(site: SiteConfig, item: StoredItem) -> str:
    """The archive page of one item: everything the seed post carries, as HTML."""
    category = _category_listing(site, item.category)
    summary = _summary(item)
    template = _environment().get_template("archive.html")
    return template.render(
        site=site,
        page_title=f"{item.title} · {site.title}",
        description=shorten(summary or plain_text(item.content), _DESCRIPTION_CHARS),
        canonical_url=absolute_url(site.base_url, item.archive_path),
        feed=_feed(site, category),
        home_url=site_relative_url(site.base_url, ""),
        item=item,
        published=_time(item.published),
        sources=[_Source(source.title, http_url(source.link)) for source in item.sources],
        categories=[_listing_link(site, _category_listing(site, slug)) for slug in item.categories],
        tags=[_listing_link(site, Listing("tag", tag, tag)) for tag in item.tags],
        summary=summary,
        content=Markup(sanitize_html(item.content, item.url, site.iframe_hosts)),  # sanitized just now
        original_url=http_url(item.url),
        back_to_category=_listing_link(
            site, category, site.labels.back_to_category.format(title=category.title)
        ),
        back_to_home=_Link(site_relative_url(site.base_url, ""), site.labels.back_to_home),
    )


def render_index_pages(
    site: SiteConfig, listing: Listing, items: Sequence[StoredItem]
) -> list[tuple[str, str]]:
    """Every index page of a listing as (path, html), from all its items newest first.

    The front page first, then the numbered pages (see layout.numbered_pages);
    always at least the front page.
    """
    per_page = max(1, site.items_per_page)
    total = len(items)
    numbers: list[int | None] = [None, *range(1, numbered_pages(total, per_page) + 1)]
    return [
        render_index_page(
            site, listing, items[page_window(total, per_page, number)], number=number, total=total
        )
        for number in numbers
    ]


def render_index_page(
    site: SiteConfig, listing: Listing, items: Sequence[StoredItem], *, number: int | None, total: int
) -> tuple[str, str]:
    """One index page: the front page (number None) or numbered page `number`, of a listing of `total` items.

    `items` are exactly that page's items, newest first.
    """
    per_page = max(1, site.items_per_page)
    pages = numbered_pages(total, per_page)
    title = listing.full_title(site.title)
    if number is not None:
        title = f"{title} · {site.labels.page.format(number=number)}"
    if number is None:
        newer, older = None, (pages or None)
    else:
        newer, older = (number + 1 if number < pages else None), (number - 1 or None)
    html_text = (
        _environment()
        .get_template("index.html")
        .render(
            site=site,
            page_title=title,
            description=title,
            canonical_url=absolute_url(site.base_url, link_path(listing.page_path(number))),
            feed=_feed(site, listing),
            home_url=site_relative_url(site.base_url, ""),
            heading=site.title if listing.kind == "home" else listing.title,
            categories=[
                _listing_link(site, Listing("category", category.slug, category.title))
                for category in site.categories
            ]
            if listing.kind == "home" and number is None
            else [],
            entries=[_entry(site, item) for item in items],
            empty_text=site.labels.empty,
            page_label=site.labels.page.format(number=number) if number is not None else "",
            newer=_page_link(site, listing, newer, site.labels.newer) if number is not None else None,
            older=_page_link(site, listing, older, site.labels.older) if older is not None else None,
        )
    )
    return listing.page_path(number), html_text


def _entry(site: SiteConfig, item: StoredItem) -> _Entry:
    return _Entry(
        url=site_relative_url(site.base_url, item.archive_path),
        title=item.title,
        published=_time(item.published),
        category=_listing_link(site, _category_listing(site, item.category)),
        summary=shorten(plain_text(item.summary) or plain_text(item.content), _EXCERPT_CHARS),
    )


def _page_link(site: SiteConfig, listing: Listing, number: int | None, text: str) -> _Link:
    return _Link(site_relative_url(site.base_url, link_path(listing.page_path(number))), text)


def render_jekyll_post(site: SiteConfig, item: StoredItem) -> tuple[str, str]:
    """The item as a Jekyll post, byte for byte in the seed's format: (path, text)."""
    front_matter = [
        "---",
        "layout: post",
        f"title: {json.dumps(item.title, ensure_ascii=False)}",  # JSON strings are YAML scalars
        f"date: {_time(item.published).text}",
        # Only the archive category: Jekyll builds the post URL from its categories
        # (/:categories/:year/:month/:day/:title.html), and that must be the archive path.
        f"categories: {item.category}",
        f"tags: {_yaml_tags(item.tags)}",
        "---",
    ]
    blocks = []
    if summary := _summary(item):
        blocks.append("> " + _markdown_text(summary))
    if content := _kramdown_html(sanitize_html(item.content, item.url, site.iframe_hosts)):
        blocks.append(content)
    if original := http_url(item.url):
        blocks.append(f"<{_autolink_url(original)}>")
    category = _category_listing(site, item.category)
    back_to_category = site.labels.back_to_category.format(title=category.title)
    blocks.append(
        f"[{back_to_category}]({protocol_relative_url(site.base_url, category.folder)})"
        f"{_FULLWIDTH_BAR}[{site.labels.back_to_home}]({protocol_relative_url(site.base_url, '')})"
    )
    # The seed has no newline after the last line.
    text = "\n".join(front_matter) + "\n" + "\n\n".join(blocks)
    return post_path_for(item.archive_path), text


def _yaml_tags(tags: Sequence[str]) -> str:
    """Space-separated like the seed, or a YAML flow list when a tag would not survive that."""
    if all(_BARE_TAG.fullmatch(tag) and tag.lower() not in _YAML_KEYWORDS for tag in tags):
        return " ".join(tags) if tags else "[]"
    return "[" + ", ".join(json.dumps(tag, ensure_ascii=False) for tag in tags) + "]"


def _markdown_text(text: str) -> str:
    """Plain text as one line of Markdown that Jekyll shows as exactly that text.

    HTML-escaped first, because Markdown passes raw HTML through; then every
    character that Markdown or Liquid could read as syntax is neutralised.
    """
    return html.escape(text, quote=False).translate(_SUMMARY_ESCAPES)


def _autolink_url(url: str) -> str:
    """An http(s) URL that cannot end the `<...>` autolink early or open Liquid syntax."""
    # Lone surrogates cannot be encoded, and no valid URL has them.
    return quote(url.encode("utf-8", "ignore"), safe=_AUTOLINK_SAFE)


def _kramdown_html(content: str) -> str:
    """Sanitized HTML that kramdown passes through without reading Markdown in it.

    kramdown leaves the inside of a block-level HTML element alone (its
    `parse_block_html` option is off by default) but reads top-level text and
    inline elements as Markdown, where `[x](javascript:...)` is a link again:
    such runs are wrapped in `<p>`. Whitespace between top-level elements
    (where HTML ignores it) is cut to a line break at most: indented, it would
    make kramdown show the next element as a code block. Content made of block
    elements alone, without whitespace between them (the seed's), is unchanged.
    Liquid openers are neutralised everywhere.
    """
    pieces = []
    position = 0
    for start, end, is_text in _TopLevelRuns.of(content):
        pieces.append(content[position:start])
        run = content[start:end]
        if is_text:
            pieces += ["<p>", run, "</p>"]
        elif "\n" in run and 0 < start and end < len(content):
            pieces.append("\n")
        position = end
    pieces.append(content[position:])
    return _LIQUID_OPENER.sub("&#123;", "".join(pieces))


class _TopLevelRuns(HTMLParser):
    """Finds the runs of text and inline elements at the top level of an HTML fragment."""

    def __init__(self, html_text: str) -> None:
        super().__init__(convert_charrefs=True)
        self._text = html_text
        self._line_starts = [0, *(match.end() for match in re.finditer("\n", html_text))]
        self._depth = 0
        self._run_start: int | None = None
        self.runs: list[tuple[int, int, bool]] = []

    @classmethod
    def of(cls, html_text: str) -> list[tuple[int, int, bool]]:
        """(start, end, is_text) of each top-level run, in order.

        Whitespace at either end of a run is a run of its own, with is_text False.
        """
        parser = cls(html_text)
        parser.feed(html_text)
        parser.close()
        parser._end_run(len(html_text))
        return parser.runs

    def _offset(self) -> int:
        line, column = self.getpos()
        return self._line_starts[line - 1] + column

    def _end_run(self, end: int) -> None:
        if self._run_start is not None:
            run = self._text[self._run_start : end]
            start = self._run_start + len(run) - len(run.lstrip())
            text_end = start + len(run.strip())
            self.runs += [
                (begin, stop, is_text)
                for begin, stop, is_text in (
                    (self._run_start, start, False),
                    (start, text_end, True),
                    (text_end, end, False),
                )
                if begin < stop
            ]
        self._run_start = None

    def _top_level_node(self, inline: bool) -> None:
        if not inline:
            self._end_run(self._offset())
        elif self._run_start is None:
            self._run_start = self._offset()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._depth == 0:
            self._top_level_node(tag not in _BLOCK_ELEMENTS)
        if tag not in _VOID_ELEMENTS:
            self._depth += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._depth == 0:
            self._top_level_node(tag not in _BLOCK_ELEMENTS)

    def handle_endtag(self, tag: str) -> None:
        if tag not in _VOID_ELEMENTS:
            self._depth = max(0, self._depth - 1)

    def handle_data(self, data: str) -> None:
        if self._depth == 0:
            self._top_level_node(inline=True)
