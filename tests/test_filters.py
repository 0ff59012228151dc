"""Per-source include/exclude/rewrite: compiled from YAML at load, applied to Item records."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import html as lxml_html

from aggregator.config import load_config
from aggregator.errors import ConfigError
from aggregator.filters import SourceFilters, apply_filters
from aggregator.models import Item


def item(title: str, *, summary: str = "", content: str = "", url: str | None = None) -> Item:
    url = url or f"https://news.example.cn/{abs(hash(title))}.html"
    return Item(url, url, None, title, summary, content, None, None, (), ())


def filters_from_yaml(tmp_path: Path, rules: str) -> SourceFilters | None:
    """Rules as an operator writes them, through load_config."""
    config = tmp_path / "sources.yaml"
    config.write_text(
        'site: {title: T, base_url: "https://example.org/"}\n'
        "sources:\n"
        "  - name: em\n"
        '    url: "https://example.cn/rss"\n'
        "    category: news\n" + "".join(f"    {line}\n" for line in rules.strip().splitlines()),
        encoding="utf-8",
    )
    return load_config(config).source("em").filters


ITEMS = (
    item("央行宣布降准", summary="货币政策", url="https://news.example.cn/finance/1.html"),
    item("Sponsored: buy now", content="<p>advert</p>", url="https://news.example.cn/ads/2.html"),
    item("足球联赛战报", summary="体育新闻", url="https://news.example.cn/sports/3.html"),
    item("Rates hold", content="<p>The 央行 kept rates.</p>", url="https://news.example.cn/finance/4.html"),
)


def titles(items: tuple[Item, ...]) -> list[str]:
    return [i.title for i in items]


def test_no_rules_compile_to_nothing_and_keep_everything(tmp_path: Path) -> None:
    assert filters_from_yaml(tmp_path, "tags: [x]") is None
    outcome = apply_filters(None, ITEMS)
    assert outcome.items == ITEMS and outcome.dropped == 0


def test_plain_include_searches_title_summary_content_and_url(tmp_path: Path) -> None:
    rules = filters_from_yaml(tmp_path, 'include: ["央行", "/sports/"]')
    outcome = apply_filters(rules, ITEMS)
    assert titles(outcome.items) == ["央行宣布降准", "足球联赛战报", "Rates hold"]
    assert outcome.dropped == 1


def test_field_patterns_search_only_their_field(tmp_path: Path) -> None:
    rules = filters_from_yaml(tmp_path, 'include: [{field: title, pattern: "央行"}]')
    assert titles(apply_filters(rules, ITEMS).items) == [
        "央行宣布降准"
    ]  # "Rates hold" has it in content only


def test_exclude_wins_over_include(tmp_path: Path) -> None:
    rules = filters_from_yaml(
        tmp_path,
        """
include: [{field: url, pattern: "^https://news\\\\.example\\\\.cn/(finance|ads)/"}]
exclude: ["(?i)^sponsored", {field: content, pattern: "kept rates"}]
""",
    )
    outcome = apply_filters(rules, ITEMS)
    assert titles(outcome.items) == ["央行宣布降准"]
    assert outcome.dropped == 3


def test_rewrite_removes_widgets_by_selector_and_substitutes_text(tmp_path: Path) -> None:
    rules = filters_from_yaml(
        tmp_path,
        """
rewrite:
  - {remove: "span.stock-quote"}
  - {pattern: "（来源：(.+?)）", replace: "[\\\\1]"}
""",
    )
    content = (
        '<p>贵州茅台<span class="stock-quote" data-code="600519">1,700.00 +1.2%</span>今日公告，'
        "业绩增长。</p><p>（来源：东方财富）</p>"
    )
    [kept] = apply_filters(
        rules, [item("茅台公告", summary="贵州茅台（来源：新华社）", content=content)]
    ).items
    assert kept.summary == "贵州茅台[新华社]"
    page = lxml_html.fragment_fromstring(kept.content, create_parent="div")
    assert page.cssselect("span.stock-quote") == []
    paragraphs = [p.text_content() for p in page.findall("p")]
    assert paragraphs == ["贵州茅台今日公告，业绩增长。", "[东方财富]"]  # the text after the widget stays
    assert kept.title == "茅台公告" and kept.url_key.startswith("https://")


def test_remove_leaves_html_without_a_match_untouched(tmp_path: Path) -> None:
    rules = filters_from_yaml(tmp_path, 'rewrite: [{remove: "div.ad"}]')
    content = "<p>A &amp; B<br>line</p>"
    assert apply_filters(rules, [item("t", content=content)]).items[0].content == content


def test_remove_keeps_escaped_text_before_the_first_element_escaped(tmp_path: Path) -> None:
    rules = filters_from_yaml(tmp_path, 'rewrite: [{remove: "span.ad"}]')
    content = '5 &lt; 6 &amp; 7, not &lt;script&gt;<span class="ad">buy</span><p>x &amp; y</p>'
    [kept] = apply_filters(rules, [item("t", content=content)]).items
    assert kept.content == "5 &lt; 6 &amp; 7, not &lt;script&gt;<p>x &amp; y</p>"
    text = lxml_html.fragment_fromstring(kept.content, create_parent="div").text_content()
    assert text == "5 < 6 & 7, not <script>x & y"


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ('include: ["(unclosed"]', r"source 'em': include\[0\]: invalid regular expression '\(unclosed'"),
        (
            'exclude: [{field: body, pattern: "x"}]',
            r"source 'em': exclude\[0\]\.field: expected one of title",
        ),
        (
            'exclude: [{field: title, pattern: "[z-a]"}]',
            r"source 'em': exclude\[0\]\.pattern: invalid regular",
        ),
        (
            'rewrite: [{remove: "p >> > a"}]',
            r"source 'em': rewrite\[0\]\.remove: 'p >> > a' is not a valid CSS selector",
        ),
        ('rewrite: [{pattern: "a", replace: "\\\\9"}]', r"source 'em': rewrite\[0\]\.replace: invalid group"),
        ('rewrite: [{pattern: "a", remove: "p"}]', r"source 'em': rewrite\[0\]: expected \{pattern"),
        ("include: [42]", r"source 'em': include\[0\]: expected a pattern string or \{field"),
    ],
)
def test_bad_rules_are_config_errors_naming_file_source_and_field(
    tmp_path: Path, rules: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        filters_from_yaml(tmp_path, rules)
    assert str(raised.value).startswith(str(tmp_path / "sources.yaml"))
