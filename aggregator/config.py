"""YAML -> validated, frozen config objects, read once at start-up and passed down.

Every error names the file, the source and the field, so that an operator
can fix a config without reading code. Commands start from config_file.py,
which keeps what this module validated and imports it only when the file
changed.
"""

from __future__ import annotations

import re
from dataclasses import fields
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .charset import is_known_encoding
from .config_file import Config, resolve_paths
from .errors import ConfigError
from .filters import SourceFilters, compile_filters
from .layout import RESERVED_FOLDERS
from .models import (
    DEFAULT_MAX_PAGES,
    Category,
    FetchPolicy,
    FullContentSpec,
    Labels,
    ListingSpec,
    SiteConfig,
    SourceConfig,
)

DEFAULT_USER_AGENT = "aggregator/0.1 (+https://github.com/aggregator/aggregator)"
DEFAULT_IFRAME_HOSTS = ("www.youtube.com", "youtube.com", "www.youtube-nocookie.com", "player.vimeo.com")

LABELS_BY_LANGUAGE: dict[str, Labels] = {
    "en": Labels(
        home="Home",
        back_to_home="Back to home",
        back_to_category="Back to {title}",
        original="Original",
        tags="Tags",
        category="Category",
        subscribe="Subscribe (Atom)",
        newer="Newer",
        older="Older",
        page="Page {number}",
        empty="Nothing here yet.",
    ),
    "zh": Labels(
        home="首页",
        back_to_home="返回首页",
        back_to_category="返回{title}",
        original="原文",
        tags="标签",
        category="分类",
        subscribe="订阅 (Atom)",
        newer="较新",
        older="较早",
        page="第 {number} 页",
        empty="这里还没有内容。",
    ),
}
LABEL_NAMES = tuple(f.name for f in fields(Labels))
_LABEL_PLACEHOLDERS = {"back_to_category": "title", "page": "number"}  # the one placeholder each may use

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "kb": 1000, "mb": 1000**2, "gb": 1000**3}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


MIN_INTERVAL = timedelta(seconds=1)


def parse_duration(value: object) -> timedelta:
    """`"30m"`, `"20s"`, `"1.5h"`, `"2d"` or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected a duration like '30s', '5m' or '1h', got {value!r}")
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"expected a duration like '30s', '5m' or '1h', got {value!r}")
    seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {value!r}")
    return timedelta(seconds=seconds)


def parse_size(value: object) -> int:
    """`"15MiB"`, `"500KB"` or a number of bytes."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"expected a size like '15MiB', got {value!r}")
    match = _SIZE.match(str(value))
    if not match or int(match.group(1)) <= 0:
        raise ValueError(f"expected a positive size like '15MiB' or '500KB', got {value!r}")
    return int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()]


def _at_least_a_second(value: timedelta) -> timedelta:
    if value < MIN_INTERVAL:
        raise ValueError(f"an interval must be at least {MIN_INTERVAL.total_seconds():g}s, got {value}")
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Interval = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_at_least_a_second)]
Size = Annotated[int, BeforeValidator(parse_size)]


def _check_http_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an absolute http(s) URL, got {value!r}")
    return value.strip()


def _check_safe_name(value: str, what: str) -> str:
    if not _SAFE_NAME.match(value):
        raise ValueError(
            f"{what} {value!r} must be 1-64 characters of letters, digits, '_', '.' or '-', "
            "starting with a letter or digit (it is used in paths and URLs)"
        )
    return value


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (use an IANA name such as 'Asia/Shanghai')") from None
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteModel(_Strict):
    title: str = Field(min_length=1)
    base_url: str
    timezone: str = "UTC"
    language: str = "en"
    labels: dict[str, str] = Field(default_factory=dict)
    items_per_feed: int = Field(default=50, ge=1, le=1000)
    items_per_page: int = Field(default=50, ge=1, le=1000)
    iframe_hosts: tuple[str, ...] = DEFAULT_IFRAME_HOSTS

    @field_validator("iframe_hosts")
    @classmethod
    def _iframe_hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        hosts = tuple(host.strip().lower() for host in value)
        if any(not host or "/" in host or ":" in host for host in hosts):
            raise ValueError(f"expected host names such as 'player.vimeo.com', got {list(value)!r}")
        return hosts

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        value = _check_http_url(value)
        return value if value.endswith("/") else value + "/"

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return _check_timezone(value)

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(LABEL_NAMES))
        if unknown:
            raise ValueError(f"unknown label(s) {', '.join(unknown)}; known: {', '.join(LABEL_NAMES)}")
        for name, text in value.items():
            placeholder = _LABEL_PLACEHOLDERS.get(name)
            try:
                text.format(**({placeholder: "x"} if placeholder else {}))
            except (KeyError, IndexError, ValueError):
                expected = f"only {{{placeholder}}}" if placeholder else "no {...} placeholder"
                raise ValueError(f"label {name} {text!r}: use {expected}") from None
        return value


class OutputModel(_Strict):
    dir: str = "feeds"
    formats: tuple[Literal["html", "jekyll"], ...] = Field(default=("html",), min_length=1)


class DefaultsModel(_Strict):
    interval: Interval = timedelta(minutes=30)
    timeout: Duration = timedelta(seconds=20)
    deadline: Duration = timedelta(seconds=60)
    max_size: Size = 15 * 1024**2
    max_redirects: int = Field(default=5, ge=0, le=30)
    user_agent: str = Field(default=DEFAULT_USER_AGENT, min_length=1)


class PollingModel(_Strict):
    workers: int = Field(default=16, ge=1, le=256)
    per_host: int = Field(default=2, ge=1, le=64)
    lease: Duration = timedelta(minutes=5)
    parse_processes: int = Field(default=1, ge=0, le=64)


class CategoryModel(_Strict):
    title: str = Field(min_length=1)


class ListingFieldsModel(_Strict):
    """fields: of a kind html or json source: one expression per item field."""

    title: str | None = Field(default=None, min_length=1)
    link: str | None = Field(default=None, min_length=1)
    guid: str | None = Field(default=None, min_length=1)
    date: str | None = Field(default=None, min_length=1)
    summary: str | None = Field(default=None, min_length=1)
    content: str | None = Field(default=None, min_length=1)
    author: str | None = Field(default=None, min_length=1)
    tags: str | None = Field(default=None, min_length=1)


class FullContentModel(_Strict):
    """A source's `full_content:` mapping (`true` means all defaults: readability)."""

    selector: str | None = None
    remove: list[str] = Field(default_factory=list)
    update: bool = False
    concurrency: int = Field(default=4, ge=1, le=32)

    @field_validator("selector")
    @classmethod
    def _selector(cls, value: str | None) -> str | None:
        return None if value is None else _check_selector(value)

    @field_validator("remove")
    @classmethod
    def _remove(cls, value: list[str]) -> list[str]:
        for selector in value:
            if selector.startswith("/"):
                raise ValueError(f"remove: {selector!r}: use CSS selectors here")
            _check_selector(selector)
        return value

    def spec(self) -> FullContentSpec:
        return FullContentSpec(self.selector, tuple(self.remove), self.update, self.concurrency)


def _full_content_shorthand(value: object) -> object:
    """`true` is every default (readability), `false` none at all."""
    if isinstance(value, bool):
        return {} if value else None
    if value is not None and not isinstance(value, dict):
        raise ValueError("expected true, false or a mapping (selector, remove, update, concurrency)")
    return value


def _check_selector(value: str) -> str:
    from .markup import compile_selector  # lxml is loaded only for sources that use it

    compile_selector(value)
    return value


class SourceModel(_Strict):
    name: str
    url: str
    category: str
    tags: list[str] = Field(default_factory=list)
    interval: Interval | None = None
    timeout: Duration | None = None
    timezone: str | None = None
    keep_source_tags: bool = False
    # Sites without a feed (README "Sites without a feed"): how to read an HTML page or a JSON API.
    kind: Literal["feed", "html", "json"] = "feed"
    items: str | None = Field(default=None, min_length=1)
    fields: ListingFieldsModel | None = None
    date_format: str | None = None
    next_page: str | None = Field(default=None, min_length=1)
    max_pages: int | None = Field(default=None, ge=1, le=100)

    @model_validator(mode="after")
    def _listing(self) -> SourceModel:
        _check_listing_keys(self)
        return self

    # content fidelity: charset override and item filters (README "Content fidelity")
    encoding: str | None = None
    include: list[Any] = Field(default_factory=list)
    exclude: list[Any] = Field(default_factory=list)
    rewrite: list[Any] = Field(default_factory=list)

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str | None) -> str | None:
        if value is not None and not is_known_encoding(value):
            raise ValueError(f"unknown encoding {value!r} (use a codec name such as 'gb18030' or 'big5')")
        return value

    # full articles (README "Full articles"): fetch each new item's page
    full_content: Annotated[FullContentModel | None, BeforeValidator(_full_content_shorthand)] = None
    allow_private: bool = False

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_http_url(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_safe_name(value, "name")

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        return None if value is None else _check_timezone(value)

    @field_validator("category")
    @classmethod
    def _category(cls, value: str) -> str:
        _check_safe_name(value, "category")
        if "." in value:  # "atom.xml" or "index.html" as a folder would shadow our own files
            raise ValueError(f"category {value!r} must not contain '.' (it is a folder beside our files)")
        if value.lower() in RESERVED_FOLDERS:
            reserved = ", ".join(sorted(RESERVED_FOLDERS))
            raise ValueError(f"category {value!r} is reserved (reserved names: {reserved})")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        tags = [tag.strip() for tag in value]
        if any(not tag for tag in tags):
            raise ValueError("tags must not be empty strings")
        return list(dict.fromkeys(tags))


_LISTING_KEYS = ("items", "fields", "date_format", "next_page", "max_pages")
_HTML_ONLY_KEYS = ("next_page", "max_pages")


def _check_listing_keys(source: SourceModel) -> None:
    """Keys of kind html/json only on those kinds, the required ones present, every expression valid."""
    if source.kind == "feed":
        present = [key for key in _LISTING_KEYS if getattr(source, key) is not None]
        if present:
            raise ValueError(
                f"{', '.join(present)}: only for kind html or json (this source has no kind, so it is "
                "read as an RSS/Atom feed)"
            )
        return
    if source.kind == "json":
        for key in _HTML_ONLY_KEYS:
            if getattr(source, key) is not None:
                raise ValueError(f"{key}: only for kind html")
    if source.max_pages is not None and source.next_page is None:
        raise ValueError("max_pages: only with next_page (it bounds the pages read through it)")
    if source.items is None:
        raise ValueError(f"items: required for kind {source.kind} (what selects each item)")
    fields = source.fields
    if fields is None or fields.title is None:
        raise ValueError(f"fields.title: required for kind {source.kind}")
    if fields.link is None and fields.guid is None:
        raise ValueError(f"fields.link: required for kind {source.kind} (or fields.guid)")
    if source.date_format is not None and "%" not in source.date_format:
        raise ValueError(
            f"date_format: expected a strptime format such as '%Y-%m-%d %H:%M:%S', got {source.date_format!r}"
        )
    from .scrape import check_expression  # lxml and cssselect are loaded only for configs that need them

    expressions = {"items": source.items, "next_page": source.next_page}
    expressions |= {f"fields.{name}": value for name, value in fields.model_dump().items()}
    for key, expression in expressions.items():
        if expression is not None:
            try:
                check_expression(source.kind, expression, relative=key.startswith("fields."))
            except ValueError as error:
                raise ValueError(f"{key}: {error}") from None


def _listing_spec(source: SourceModel) -> ListingSpec | None:
    if source.kind == "feed" or source.items is None or source.fields is None or source.fields.title is None:
        return None  # a feed (the other cases were refused by _check_listing_keys)
    return ListingSpec(
        kind=source.kind,
        items=source.items,
        **source.fields.model_dump(),
        date_format=source.date_format,
        next_page=source.next_page,
        max_pages=source.max_pages or DEFAULT_MAX_PAGES,
    )


class ConfigModel(_Strict):
    site: SiteModel
    database: str = "sqlite:///data/aggregator.db"
    output: OutputModel = Field(default_factory=OutputModel)
    defaults: DefaultsModel = Field(default_factory=DefaultsModel)
    polling: PollingModel = Field(default_factory=PollingModel)
    categories: dict[str, CategoryModel] = Field(default_factory=dict)
    sources: list[SourceModel] = Field(min_length=1)

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, sources: list[SourceModel]) -> list[SourceModel]:
        seen: set[str] = set()
        for source in sources:
            if source.name in seen:
                raise ValueError(f"duplicate source name {source.name!r}")
            seen.add(source.name)
        return sources


def load_config(path: Path) -> Config:
    """Read and validate the YAML file; raise ConfigError with a precise message."""
    try:
        text = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config: {error.strerror or error}") from None
    return resolve_paths(read_config(path, text))


def read_config(path: Path, text: bytes) -> Config:
    """The config in `text` (the bytes of `path`), its database URL and output folder as written."""
    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present
        raw = yaml.load(text.decode("utf-8"), Loader=loader)
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8: {error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with 'site' and 'sources' at the top level")
    try:
        model = ConfigModel.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_describe(path, raw, error)) from None
    return _build(path, model)


def _describe(path: Path, raw: dict[str, Any], error: ValidationError) -> str:
    """One line per problem: file, source (by name when it has one) and field."""
    lines = []
    sources = raw.get("sources")
    for problem in error.errors():
        location = list(problem["loc"])
        source = ""
        if len(location) >= 2 and location[0] == "sources" and isinstance(location[1], int):
            index = location[1]
            name = None
            if isinstance(sources, list) and index < len(sources) and isinstance(sources[index], dict):
                name = sources[index].get("name")
            source = f"source {name!r}: " if name else f"sources[{index}]: "
            location = location[2:]
        where = ".".join(str(part) for part in location)
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{path}: {source}{where + ': ' if where else ''}{message}")
    return "\n".join(lines)


def _filters(path: Path, source: SourceModel) -> SourceFilters | None:
    try:
        return compile_filters(source.include, source.exclude, source.rewrite)
    except ValueError as error:
        raise ConfigError(f"{path}: source {source.name!r}: {error}") from None


def _build(path: Path, model: ConfigModel) -> Config:
    site_model = model.site
    labels = LABELS_BY_LANGUAGE.get(site_model.language.split("-")[0].lower(), LABELS_BY_LANGUAGE["en"])
    labels = Labels(**{name: site_model.labels.get(name, getattr(labels, name)) for name in LABEL_NAMES})
    used = dict.fromkeys(source.category for source in model.sources)
    unknown = sorted(set(model.categories) - set(used))
    if unknown:
        raise ConfigError(f"{path}: categories: {', '.join(unknown)} not used by any source")
    categories = tuple(
        Category(slug=slug, title=model.categories[slug].title if slug in model.categories else slug)
        for slug in used
    )
    site = SiteConfig(
        title=site_model.title,
        base_url=site_model.base_url,
        timezone=site_model.timezone,
        language=site_model.language,
        labels=labels,
        items_per_feed=site_model.items_per_feed,
        items_per_page=site_model.items_per_page,
        categories=categories,
        iframe_hosts=site_model.iframe_hosts,
    )
    defaults = model.defaults
    sources = tuple(
        SourceConfig(
            name=source.name,
            url=source.url,
            category=source.category,
            tags=tuple(source.tags),
            interval=source.interval or defaults.interval,
            timezone=source.timezone or site.timezone,
            keep_source_tags=source.keep_source_tags,
            fetch=FetchPolicy(
                user_agent=defaults.user_agent,
                connect_timeout=min((source.timeout or defaults.timeout).total_seconds(), 10.0),
                read_timeout=(source.timeout or defaults.timeout).total_seconds(),
                deadline=defaults.deadline.total_seconds(),
                max_bytes=defaults.max_size,
                max_redirects=defaults.max_redirects,
            ),
            listing=_listing_spec(source),
            encoding=source.encoding,
            filters=_filters(path, source),
            full_content=source.full_content.spec() if source.full_content else None,
            allow_private=source.allow_private,
        )
        for source in model.sources
    )
    return Config(
        path=path,
        site=site,
        database_url=model.database,
        output_dir=Path(model.output.dir),
        formats=frozenset(model.output.formats),
        sources=sources,
        workers=model.polling.workers,
        per_host=model.polling.per_host,
        lease=model.polling.lease,
        parse_processes=model.polling.parse_processes,
    )
