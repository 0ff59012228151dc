"""Per-source include/exclude patterns and rewrite rules, applied to Items before storing.

Pure. Rules are compiled once when the config is loaded (compile_filters
raises ValueError naming the bad field, which config turns into a ConfigError
naming file and source); apply_filters then works on Item records of any
source kind (RSS/Atom, HTML, JSON), so every kind gets the same filters.

An item is kept when it matches any `include` pattern (if there are any) and
no `exclude` pattern. A plain-string pattern searches the title, summary,
content and URL; a mapping `{field, pattern}` searches one of them. Kept
items then go through `rewrite` rules in order, on summary and content:
`{pattern, replace}` is a regular-expression substitution, `{remove}` drops
the elements a CSS selector matches (site boilerplate such as inline
stock-quote widgets).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from .models import Item

if TYPE_CHECKING:
    from .markup import Select

__all__ = [
    "FIELDS",
    "FieldPattern",
    "FilterOutcome",
    "RewriteRule",
    "SourceFilters",
    "apply_filters",
    "compile_filters",
    "rewrite_articles",
]

Field = Literal["title", "summary", "content", "url"]
FIELDS: tuple[Field, ...] = ("title", "summary", "content", "url")


@dataclass(frozen=True, slots=True)
class FieldPattern:
    """A regular expression searched in some of an item's fields."""

    pattern: re.Pattern[str]
    fields: tuple[Field, ...] = FIELDS

    def matches(self, item: Item) -> bool:
        return any(self.pattern.search(_field(item, name)) for name in self.fields)


@dataclass(frozen=True, slots=True)
class RewriteRule:
    """Either a substitution (`pattern` -> `replace`) or a removal of what `remove` selects."""

    pattern: re.Pattern[str] | None = None
    replace: str = ""
    remove: Select | None = None
    remove_text: str = ""  # the selector as written, for messages

    def apply(self, html: str) -> str:
        if self.pattern is not None:
            return self.pattern.sub(self.replace, html)
        return _remove(html, self.remove) if self.remove is not None and html.strip() else html

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled (by the config cache) as written: a compiled CSS selector cannot be pickled."""
        if self.remove is not None:
            return _removal, (self.remove_text,)
        return RewriteRule, (self.pattern, self.replace)


def _removal(selector: str) -> RewriteRule:
    """A rule removing what `selector` selects; ValueError if it is not a valid CSS selector."""
    from .markup import compile_selector  # lxml and cssselect: for sources with `remove` rules only

    return RewriteRule(remove=compile_selector(selector, xpath=False), remove_text=selector)


@dataclass(frozen=True, slots=True)
class SourceFilters:
    include: tuple[FieldPattern, ...] = ()
    exclude: tuple[FieldPattern, ...] = ()
    rewrite: tuple[RewriteRule, ...] = ()

    def keeps(self, item: Item) -> bool:
        included = not self.include or any(rule.matches(item) for rule in self.include)
        return included and not any(rule.matches(item) for rule in self.exclude)

    def description(self) -> str:
        """The rules as configured, in full (a pattern's repr stops at 200 characters)."""
        patterns = [
            [(rule.pattern.pattern, rule.pattern.flags, rule.fields) for rule in rules]
            for rules in (self.include, self.exclude)
        ]
        rewrites = [
            (rule.pattern.pattern, rule.pattern.flags, rule.replace) if rule.pattern else rule.remove_text
            for rule in self.rewrite
        ]
        return repr((patterns, rewrites))


@dataclass(frozen=True, slots=True)
class FilterOutcome:
    items: tuple[Item, ...]
    dropped: int  # how many items include/exclude left out


def apply_filters(filters: SourceFilters | None, items: Iterable[Item]) -> FilterOutcome:
    """The items a source keeps, rewritten; and how many it dropped."""
    items = tuple(items)
    if filters is None:
        return FilterOutcome(items, 0)
    kept = tuple(_rewritten(filters.rewrite, item) for item in items if filters.keeps(item))
    return FilterOutcome(kept, len(items) - len(kept))


def rewrite_articles(filters: SourceFilters | None, items: Iterable[Item]) -> tuple[Item, ...]:
    """The rewrite rules on articles taken from the items' pages (full_content), which came after them."""
    items = tuple(items)
    if filters is None or not filters.rewrite:
        return items
    return tuple(
        replace(item, content=_all_applied(filters.rewrite, item.content))
        if item.feed_content is not None
        else item
        for item in items
    )


def _all_applied(rules: Sequence[RewriteRule], html: str) -> str:
    for rule in rules:
        html = rule.apply(html)
    return html


def _rewritten(rules: Sequence[RewriteRule], item: Item) -> Item:
    if not rules:
        return item
    summary, content = item.summary, item.content
    for rule in rules:
        summary, content = rule.apply(summary), rule.apply(content)
    return replace(item, summary=summary, content=content)


def _field(item: Item, name: Field) -> str:
    return (item.url or "") if name == "url" else str(getattr(item, name))


def _remove(html: str, selector: Select) -> str:
    """`html` without the elements `selector` matches (their tail text is kept)."""
    import lxml.html  # type: ignore[import-untyped]  # with markup: only sources with `remove` rules

    from .markup import inner_html

    root = lxml.html.fragment_fromstring(html, create_parent="div")
    matched = selector(root)
    if not matched:
        return html
    for element in matched:
        if element is not root and element.getparent() is not None:
            element.drop_tree()
    return inner_html(root)


# --- compiling the YAML --------------------------------------------------------


def _regex(value: object, where: str) -> re.Pattern[str]:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: expected a regular expression string, got {value!r}")
    try:
        return re.compile(value)
    except re.error as error:
        raise ValueError(f"{where}: invalid regular expression {value!r}: {error}") from None


def _field_pattern(raw: object, where: str) -> FieldPattern:
    if isinstance(raw, str):
        return FieldPattern(_regex(raw, where))
    if isinstance(raw, Mapping) and set(raw) == {"field", "pattern"}:
        field = raw["field"]
        if field not in FIELDS:
            raise ValueError(f"{where}.field: expected one of {', '.join(FIELDS)}, got {field!r}")
        return FieldPattern(_regex(raw["pattern"], f"{where}.pattern"), (field,))
    raise ValueError(f"{where}: expected a pattern string or {{field: ..., pattern: ...}}, got {raw!r}")


def _rewrite_rule(raw: object, where: str) -> RewriteRule:
    if isinstance(raw, Mapping) and set(raw) == {"remove"}:
        selector = raw["remove"]
        if not isinstance(selector, str) or not selector.strip():
            raise ValueError(f"{where}.remove: expected a CSS selector, got {selector!r}")
        try:
            return _removal(selector)
        except ValueError as error:
            raise ValueError(f"{where}.remove: {error}") from None
    if isinstance(raw, Mapping) and set(raw) in ({"pattern"}, {"pattern", "replace"}):
        replacement = raw.get("replace", "")
        if not isinstance(replacement, str):
            raise ValueError(f"{where}.replace: expected a string, got {replacement!r}")
        pattern = _regex(raw["pattern"], f"{where}.pattern")
        try:
            pattern.sub(replacement, "")  # a bad group reference fails here, not on the first item
        except (re.error, IndexError) as error:
            raise ValueError(f"{where}.replace: {error}") from None
        return RewriteRule(pattern=pattern, replace=replacement)
    raise ValueError(
        f"{where}: expected {{pattern: ..., replace: ...}} or {{remove: <css selector>}}, got {raw!r}"
    )


def compile_filters(
    include: Sequence[object], exclude: Sequence[object], rewrite: Sequence[object]
) -> SourceFilters | None:
    """The compiled rules; None when there are none. Raises ValueError naming the field."""
    if not (include or exclude or rewrite):
        return None
    return SourceFilters(
        include=tuple(_field_pattern(raw, f"include[{index}]") for index, raw in enumerate(include)),
        exclude=tuple(_field_pattern(raw, f"exclude[{index}]") for index, raw in enumerate(exclude)),
        rewrite=tuple(_rewrite_rule(raw, f"rewrite[{index}]") for index, raw in enumerate(rewrite)),
    )
