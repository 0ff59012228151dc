"""Inner HTML: the one serializer behind article extraction, `@html` listing fields and `remove` rules."""

from __future__ import annotations

from pathlib import Path

import lxml.html
import pytest

from aggregator.extract import extract_article
from aggregator.filters import apply_filters
from aggregator.markup import inner_html
from aggregator.models import FullContentSpec, ListingSpec
from aggregator.scrape import scrape_page
from tests.test_filters import filters_from_yaml, item

# A leading text node with escaped characters, then elements, with text after them.
INNER = '5 &lt; 6 &amp; 7, not &lt;script&gt; <p class="x">a &amp; b<br>c</p> tail &gt; end'
PAGE_URL = "https://news.example.cn/a/1.html"


@pytest.mark.parametrize("text", [INNER, "&lt;b&gt;only text&lt;/b&gt;", "<p>only markup</p>", ""])
def test_inner_html_round_trips_what_the_parser_read(text: str) -> None:
    element = lxml.html.fragment_fromstring(text, create_parent="div")
    assert inner_html(element) == text
    again = lxml.html.fragment_fromstring(inner_html(element), create_parent="div")
    assert again.text_content() == element.text_content()


def test_article_listing_field_and_remove_rule_serialize_alike(tmp_path: Path) -> None:
    page = (
        f'<html><body><div id="ContentBody">{INNER}<span class="ad">buy</span></div></body></html>'.encode()
    )
    article = extract_article(page, {}, PAGE_URL, FullContentSpec(selector="#ContentBody", remove=(".ad",)))

    listing = f'<ul><li><a href="/a/1.html">t</a><div class="body">{INNER}</div></li></ul>'.encode()
    spec = ListingSpec(kind="html", items="li", title="a", link="a@href", content="div.body@html")
    (scraped,) = scrape_page(listing, {}, spec, url=PAGE_URL, source="s", timezone="UTC").feed.items

    rules = filters_from_yaml(tmp_path, 'rewrite: [{remove: "span.ad"}]')
    assert rules is not None
    [rewritten] = apply_filters(rules, [item("t", content=f'{INNER}<span class="ad">buy</span>')]).items

    assert article == scraped.content == rewritten.content == INNER
