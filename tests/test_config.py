"""Config: the shipped example loads; every mistake gets a message naming file, source and field."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from aggregator.config import load_config, parse_duration, parse_size
from aggregator.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

VALID = """
site: {title: Demo, base_url: "https://news.example.org", timezone: Asia/Shanghai, language: zh}
database: "sqlite:///data/aggregator.db"
output: {dir: out, formats: [html, jekyll]}
defaults: {interval: 30m, timeout: 20s, user_agent: "demo/1.0 (+https://example.org)"}
categories: {emnews: {title: 东财滚动新闻}}
sources:
  - {name: em, url: "https://example.com/rss", category: emnews, tags: [东财滚动新闻], interval: 5m}
  - {name: other, url: "https://example.net/atom.xml", category: tech, timezone: Europe/Paris}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_example_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGGREGATOR_DATABASE_URL", raising=False)
    config = load_config(REPO / "config" / "sources.yaml")
    assert config.sources
    assert config.output_dir == (REPO / "feeds").resolve()
    assert config.database_url == f"sqlite:///{(REPO / 'data' / 'aggregator.db').resolve()}"


def test_valid_config_resolves_defaults_paths_and_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGGREGATOR_DATABASE_URL", raising=False)
    config = load_config(_write(tmp_path, VALID))
    em, other = config.sources
    assert config.site.base_url == "https://news.example.org/"
    assert config.database_url == f"sqlite:///{tmp_path / 'data' / 'aggregator.db'}"
    assert config.output_dir == tmp_path / "out"
    assert config.formats == {"html", "jekyll"}
    assert em.interval == timedelta(minutes=5) and other.interval == timedelta(minutes=30)
    assert em.timezone == "Asia/Shanghai" and other.timezone == "Europe/Paris"
    assert em.tags == ("东财滚动新闻",)
    assert em.fetch.read_timeout == 20 and em.fetch.user_agent == "demo/1.0 (+https://example.org)"
    assert config.site.category_title("emnews") == "东财滚动新闻"
    assert config.site.category_title("tech") == "tech"
    assert config.site.labels.back_to_home == "返回首页"
    assert config.site.labels.back_to_category.format(title="东财滚动新闻") == "返回东财滚动新闻"


def test_labels_can_be_overridden(tmp_path: Path) -> None:
    text = VALID.replace("language: zh}", "language: en, labels: {back_to_home: Home page}}")
    labels = load_config(_write(tmp_path, text)).site.labels
    assert labels.back_to_home == "Home page"
    assert labels.original == "Original"


def test_environment_overrides_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGGREGATOR_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    assert load_config(_write(tmp_path, VALID)).database_url.startswith("postgresql+psycopg://")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("name: other", "name: em"), "sources: duplicate source name 'em'"),
        (
            ('url: "https://example.net/atom.xml"', 'url: "ftp://example.net/x"'),
            "source 'other': url: must be",
        ),
        (("interval: 5m", "interval: soon"), "source 'em': interval: expected a duration"),
        (("interval: 5m", "intervall: 5m"), "source 'em': intervall: unknown key"),
        (("name: other", "name: ../../etc"), "name '../../etc' must be"),
        (("category: tech", "category: ../outside"), "category '../outside' must be"),
        (("category: tech", "category: tags"), "category 'tags' is reserved"),
        (("timezone: Europe/Paris", "timezone: Mars/Olympus"), "unknown time zone 'Mars/Olympus'"),
        (('base_url: "https://news.example.org"', 'base_url: "/relative"'), "site.base_url: must be"),
        (("formats: [html, jekyll]", "formats: [pdf]"), "output.formats.0:"),
        (("language: zh}", "language: zh, labels: {nope: x}}"), "unknown label(s) nope"),
        (("emnews: {title: 东财滚动新闻}", "emnews: {title: x}, unused: {title: y}"), "unused not used"),
        (("category: tech", "category: atom.xml"), "category 'atom.xml' must not contain '.'"),
        (("interval: 5m", "interval: 1ms"), "source 'em': interval: an interval must be at least 1s"),
        (("language: zh}", "language: zh, labels: {back_to_category: 'To {name}'}}"), "use only {title}"),
        (("language: zh}", "language: zh, labels: {back_to_home: 'Home {x}'}}"), "no {...} placeholder"),
    ],
    ids=[
        "duplicate-name",
        "bad-url",
        "bad-interval",
        "unknown-key",
        "name-escapes",
        "category-escapes",
        "category-reserved",
        "bad-timezone",
        "relative-base-url",
        "unknown-format",
        "unknown-label",
        "unused-category",
        "category-with-dot",
        "interval-too-short",
        "label-wrong-placeholder",
        "label-unexpected-placeholder",
    ],
)
def test_config_errors_name_file_source_and_field(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    path = _write(tmp_path, VALID.replace(*change))
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: "), message
    assert expected in message, message


def test_missing_file_and_bad_yaml_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(_write(tmp_path, "site: [unclosed"))
    with pytest.raises(ConfigError, match="sources: Field required"):
        load_config(_write(tmp_path, "site: {title: t, base_url: 'https://x.org/'}"))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("20s", 20), ("1.5h", 5400), ("2d", 172800), (90, 90), ("250ms", 0.25)],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5m", "0s", "5 weeks", True])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(("text", "size"), [("15MiB", 15 * 2**20), ("500KB", 500_000), (1024, 1024)])
def test_sizes(text: str | int, size: int) -> None:
    assert parse_size(text) == size
