"""Where things live in the output folder and at which URL (the output contract).

Pure functions only: publish decides *which* files to write, render decides
*what* goes in them, and both agree on paths through this module.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import quote, urlsplit

# Top-level folder names that a category slug may not take.
RESERVED_FOLDERS = frozenset({"tags", "page", "_posts", "assets"})

_MAX_SLUG_LENGTH = 60
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_UNSAFE_IN_FOLDER = re.compile(r"[\x00-\x1f\x7f/\\?#%\"<>|:*]+")
_MAX_TAG_FOLDER = 60  # characters; 180 bytes of CJK stays under the usual 255-byte file name limit


def short_hash(text: str, length: int = 10) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def _is_latin(title: str) -> bool:
    """Every letter is a Latin one (ASCII or accented): such a title makes a readable slug."""
    if title.isascii():  # the common case, without a Unicode name lookup per letter
        return any(ch.isalpha() for ch in title)
    letters = [ch for ch in title if ch.isalpha()]
    return bool(letters) and all(unicodedata.name(ch, "").startswith("LATIN") for ch in letters)


def slug_for(title: str, url_key: str) -> str:
    """An ASCII slug of a Latin title, else a short stable hash of the url key."""
    if _is_latin(title):
        folded = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
        slug = _NON_ALNUM.sub("-", folded.lower()).strip("-")
        if len(slug) > _MAX_SLUG_LENGTH:
            slug = slug[:_MAX_SLUG_LENGTH].rsplit("-", 1)[0] or slug[:_MAX_SLUG_LENGTH]
        if slug:
            return slug
    return short_hash(url_key)


def archive_path(category: str, published: datetime, slug: str) -> str:
    """`<category>/<YYYY>/<MM>/<DD>/<slug>.html`, dated in the publisher's own offset."""
    return f"{category}/{published.year:04d}/{published.month:02d}/{published.day:02d}/{slug}.html"


def post_path_for(archive: str) -> str:
    """The Jekyll post of an archive page: `_posts/YYYY-MM-DD-<slug>.md`, fixed with the archive path.

    Jekyll's default permalink (/:categories/:year/:month/:day/:title.html)
    of that post is the archive path again.
    """
    _category, year, month, day, name = archive.rsplit("/", 4)
    return f"_posts/{year}-{month}-{day}-{name.removesuffix('.html')}.md"


def tag_folder(tag: str) -> str:
    """A folder name for a tag: the tag itself (CJK, case and spaces kept) when that is safe.

    A tag holding path syntax, starting with a dot or too long for a file
    name is cleaned and given a hash suffix, so that two different tags
    ("a/b" and "a-b") never share a folder.
    """
    name = unicodedata.normalize("NFKC", tag).strip()
    if name and len(name) <= _MAX_TAG_FOLDER and not _UNSAFE_IN_FOLDER.search(name) and name[0] != ".":
        return name
    cleaned = _UNSAFE_IN_FOLDER.sub("-", name)[: _MAX_TAG_FOLDER - 9].strip("-. ")
    return f"{cleaned or 'tag'}-{short_hash(tag, 8)}"


def absolute_url(base_url: str, path: str) -> str:
    """The public URL of a path in the output folder, percent-encoded (CJK tags)."""
    return base_url + quote(path, safe="/")


def site_relative_url(base_url: str, path: str) -> str:
    """The URL of a path as used in links between our own pages: no scheme or host."""
    return urlsplit(base_url).path + quote(path, safe="/")


def protocol_relative_url(base_url: str, path: str) -> str:
    """`//host/path`, the form the seed's Jekyll back links use."""
    return "//" + absolute_url(base_url, path).split("//", 1)[1]


def index_page_path(folder: str, number: int | None) -> str:
    """The front index page (None) or numbered page `number` of a listing folder."""
    return f"{folder}index.html" if number is None else f"{folder}page/{number}/index.html"


def numbered_pages(total: int, per_page: int) -> int:
    """How many numbered pages a listing of `total` items has besides its front page.

    Numbered pages are counted from the oldest item and hold exactly
    `per_page` items each, so a new item changes the front page and, once in
    `per_page` items, adds one page: old pages never shift, which keeps an
    incremental publish small and their URLs stable. The front page shows the
    newest `per_page` items; the newest, partial group of items lives only there.
    """
    full, rest = divmod(total, per_page)
    return full if rest else max(full - 1, 0)


def page_window(total: int, per_page: int, number: int | None) -> slice:
    """Which items of the newest-first list a page shows: the front page (None) or page `number`."""
    if number is None:
        return slice(0, per_page)
    return slice(total - number * per_page, total - (number - 1) * per_page)


def page_of(position: int, total: int, per_page: int) -> int:
    """The numbered page holding the item at `position` of the newest-first list (may be the partial one)."""
    return (total - 1 - position) // per_page + 1


def link_path(path: str) -> str:
    """The path to link to: a folder rather than its `index.html`, so each page has one URL."""
    if path == "index.html" or path.endswith("/index.html"):
        return path.removesuffix("index.html")
    return path


@dataclass(frozen=True, slots=True)
class Listing:
    """A set of items with its own index pages and output feed: home, a category or a tag."""

    kind: Literal["home", "category", "tag"]
    key: str  # "" for home, the category slug, or the tag text
    title: str

    @property
    def folder(self) -> str:
        if self.kind == "home":
            return ""
        if self.kind == "category":
            return f"{self.key}/"
        return f"tags/{tag_folder(self.key)}/"

    @property
    def feed_path(self) -> str:
        return f"{self.folder}atom.xml"

    def page_path(self, number: int | None) -> str:
        return index_page_path(self.folder, number)

    def full_title(self, site_title: str) -> str:
        """The title of the listing's index pages and output feed: the site's own for home."""
        return site_title if self.kind == "home" else f"{self.title} · {site_title}"
