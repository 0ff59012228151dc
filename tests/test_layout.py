"""The output contract: slugs, archive paths, tag folders and URLs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from aggregator.layout import (
    Listing,
    absolute_url,
    archive_path,
    numbered_pages,
    page_of,
    page_window,
    post_path_for,
    protocol_relative_url,
    site_relative_url,
    slug_for,
    tag_folder,
)

CST = timezone(timedelta(hours=8))


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Markets rally as rates hold", "markets-rally-as-rates-hold"),
        ("Héllo, Wörld: C++ 2.0!", "hello-world-c-2-0"),
        ("  --  Spaces -- and dashes  ", "spaces-and-dashes"),
        ("A" * 10 + " " + "b" * 70, "aaaaaaaaaa"),  # cut at a word boundary within 60 characters
    ],
)
def test_latin_titles_give_ascii_slugs(title: str, expected: str) -> None:
    assert slug_for(title, "https://example.com/x") == expected


@pytest.mark.parametrize("title", ["广东省：建设省数据交易场所", "Привет мир", "!!!", "", "Tokyo 東京"])
def test_other_titles_give_a_stable_hash_of_the_url_key(title: str) -> None:
    slug = slug_for(title, "https://example.com/x")
    assert slug == slug_for("其他", "https://example.com/x") and len(slug) == 10 and slug.isalnum()
    assert slug != slug_for(title, "https://example.com/y")


def test_archive_path_uses_the_publishers_local_date() -> None:
    late_evening_utc = datetime(2022, 3, 13, 18, 30, tzinfo=UTC).astimezone(CST)
    assert archive_path("emnews", late_evening_utc, "abc") == "emnews/2022/03/14/abc.html"
    assert post_path_for(archive_path("emnews", late_evening_utc, "abc")) == "_posts/2022-03-14-abc.md"


@pytest.mark.parametrize(
    ("tag", "folder"),
    [
        ("东财滚动新闻", "东财滚动新闻"),
        ("release notes", "release notes"),
        ("C++", "C++"),
        ("Python", "Python"),
        ("a/b", "a-b-"),
        ("../../etc", "etc-"),
        (".hidden", "hidden-"),
        ("..", "tag-"),
        ("100%", "100-"),
        ("x" * 80, "x" * 51 + "-"),
    ],
)
def test_tag_folders_are_the_tag_when_safe_else_cleaned_with_a_hash(tag: str, folder: str) -> None:
    name = tag_folder(tag)
    if folder.endswith("-") and not tag.endswith("-"):
        assert name.startswith(folder) and len(name) == len(folder) + 8, name
    else:
        assert name == folder
    assert "/" not in name and not name.startswith(".") and len(name) <= 60


def test_different_tags_never_share_a_folder() -> None:
    tags = ["a/b", "a-b", "a\\b", "a?b", "a#b", "..", ".", "a:b", "a*b"]
    assert len({tag_folder(tag) for tag in tags}) == len(tags)


def test_urls_are_percent_encoded_and_relative_forms_agree() -> None:
    base = "https://news.example.org/archive/"
    listing = Listing("tag", "东财 滚动", "东财 滚动")
    assert listing.feed_path == "tags/东财 滚动/atom.xml"
    assert absolute_url(base, listing.feed_path) == (
        "https://news.example.org/archive/tags/%E4%B8%9C%E8%B4%A2%20%E6%BB%9A%E5%8A%A8/atom.xml"
    )
    assert site_relative_url(base, "emnews/") == "/archive/emnews/"
    assert protocol_relative_url(base, "emnews/") == "//news.example.org/archive/emnews/"
    assert Listing("home", "", "Site").page_path(None) == "index.html"
    assert Listing("category", "emnews", "E").page_path(3) == "emnews/page/3/index.html"


@pytest.mark.parametrize(
    ("total", "pages"), [(0, 0), (1, 0), (4, 0), (5, 1), (8, 1), (9, 2), (10, 2), (12, 2), (13, 3)]
)
def test_numbered_pages_count_from_the_oldest_and_never_shift(total: int, pages: int) -> None:
    per_page = 4
    assert numbered_pages(total, per_page) == pages
    items = list(reversed(range(total)))  # newest first: item n is the n-th oldest
    for number in range(1, pages + 1):
        window = items[page_window(total, per_page, number)]
        assert sorted(window) == list(range((number - 1) * 4, number * 4))
        assert all(page_of(position, total, per_page) == number for position in range(total)
                   if items[position] // 4 + 1 == number)  # fmt: skip
    assert items[page_window(total, per_page, None)] == items[:4]
