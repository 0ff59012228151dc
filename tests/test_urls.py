"""Tables of cases for the url key: each row pins one normalization rule."""

from __future__ import annotations

import hashlib

import pytest

from aggregator.urls import TRACKING_PARAMETERS, _normalize_split, item_key, normalize_url

NORMALIZED = [
    pytest.param("https://ex.test/a", "https://ex.test/a", id="already-normal"),
    pytest.param("HTTPS://Ex.TEST/a", "https://ex.test/a", id="scheme-and-host-lower-cased"),
    pytest.param("http://ex.test/a", "https://ex.test/a", id="http-keyed-as-https"),
    pytest.param("  https://ex.test/a \n", "https://ex.test/a", id="surrounding-whitespace"),
    pytest.param("http://ex.test:80/a", "https://ex.test/a", id="default-http-port"),
    pytest.param("https://ex.test:443/a", "https://ex.test/a", id="default-https-port"),
    pytest.param("http://ex.test:080/a", "https://ex.test/a", id="default-port-leading-zero"),
    pytest.param("https://ex.test:8443/a", "https://ex.test:8443/a", id="other-port-kept"),
    pytest.param("http://ex.test:443/a", "https://ex.test:443/a", id="https-port-on-http-kept"),
    pytest.param("http://ex.test:/a", "https://ex.test/a", id="empty-port"),
    pytest.param("https://user:secret@ex.test/a", "https://ex.test/a", id="userinfo-dropped"),
    pytest.param("https://ex.test/a#comments", "https://ex.test/a", id="fragment-dropped"),
    pytest.param("https://ex.test/a?", "https://ex.test/a", id="empty-query-dropped"),
    pytest.param("https://ex.test/a?#top", "https://ex.test/a", id="empty-query-and-fragment"),
    pytest.param("https://ex.test", "https://ex.test/", id="empty-path-becomes-slash"),
    pytest.param("https://ex.test?p=1", "https://ex.test/?p=1", id="empty-path-with-query"),
    pytest.param("https://bücher.example/a", "https://xn--bcher-kva.example/a", id="idn-host-punycode"),
    pytest.param("https://BÜCHER.Example/a", "https://xn--bcher-kva.example/a", id="idn-host-mixed-case"),
    pytest.param("https://例え.テスト/", "https://xn--r8jz45g.xn--zckzah/", id="idn-host-cjk"),
    pytest.param(
        "https://xn--BCHER-kva.example/", "https://xn--bcher-kva.example/", id="punycode-lower-cased"
    ),
    pytest.param("http://[2001:DB8::1]:8080/a", "https://[2001:db8::1]:8080/a", id="ipv6-host"),
    pytest.param("https://ex.test/Path/To/", "https://ex.test/Path/To/", id="path-case-and-slash-kept"),
    pytest.param("https://ex.test/a/", "https://ex.test/a/", id="trailing-slash-kept"),
    pytest.param(
        "http://finance.eastmoney.com/news/1345,202203142307712884.html",
        "https://finance.eastmoney.com/news/1345,202203142307712884.html",
        id="eastmoney-comma-path",
    ),
    pytest.param(
        "https://ex.test/%E6%96%B0%E9%97%BB/1.html",
        "https://ex.test/%E6%96%B0%E9%97%BB/1.html",
        id="percent-encoded-cjk-path-kept",
    ),
    pytest.param("https://ex.test/%e6%96%b0", "https://ex.test/%e6%96%b0", id="lower-hex-escapes-kept"),
    pytest.param("https://ex.test/新闻/1.html", "https://ex.test/新闻/1.html", id="raw-cjk-path-kept"),
    pytest.param("https://ex.test/a%2Fb", "https://ex.test/a%2Fb", id="encoded-slash-kept"),
    pytest.param("https://ex.test/a?utm_source=rss", "https://ex.test/a", id="only-utm-param"),
    pytest.param(
        "https://ex.test/a?utm_source=rss&utm_medium=feed&utm_campaign=x",
        "https://ex.test/a",
        id="several-utm-params",
    ),
    pytest.param("https://ex.test/a?UTM_Source=rss&Utm_Medium=x", "https://ex.test/a", id="utm-mixed-case"),
    pytest.param("https://ex.test/a?utm%5Fsource=rss", "https://ex.test/a", id="utm-name-percent-encoded"),
    pytest.param("https://ex.test/a?utm_content", "https://ex.test/a", id="utm-without-value"),
    pytest.param("https://ex.test/a?id=7&fbclid=abc&p=2", "https://ex.test/a?id=7&p=2", id="fbclid-middle"),
    pytest.param("https://ex.test/a?gclid=abc&id=7", "https://ex.test/a?id=7", id="gclid-first"),
    pytest.param("https://ex.test/a?id=7&FBCLID=x", "https://ex.test/a?id=7", id="fbclid-upper-case"),
    pytest.param(
        "https://ex.test/a?mc_cid=1&b=2&mc_eid=3&_hsenc=4&msclkid=5",
        "https://ex.test/a?b=2",
        id="listed-tracking-params",
    ),
    pytest.param(
        "https://ex.test/a?id=1&ref=home&source=rss&page=2&utm_term=x",
        "https://ex.test/a?id=1&ref=home&source=rss&page=2",
        id="generic-names-kept",
    ),
    pytest.param("https://ex.test/a?utm=1&xutm_a=2", "https://ex.test/a?utm=1&xutm_a=2", id="not-utm-prefix"),
    pytest.param("https://ex.test/a?b=2&a=1", "https://ex.test/a?b=2&a=1", id="param-order-kept"),
    pytest.param("https://ex.test/a?a=&b=1", "https://ex.test/a?a=&b=1", id="blank-value-kept"),
    pytest.param("https://ex.test/a?flag&b=1", "https://ex.test/a?flag&b=1", id="bare-name-kept"),
    pytest.param(
        "https://ex.test/a?q=%E6%96%B0+x&r=a%2bb",
        "https://ex.test/a?q=%E6%96%B0+x&r=a%2bb",
        id="query-encoding-kept",
    ),
    pytest.param("https://ex.test/a?a=1&&b=2&", "https://ex.test/a?a=1&b=2", id="empty-pairs-dropped"),
    pytest.param("https://ex.test/a?a=1;utm_source=x", "https://ex.test/a?a=1;utm_source=x", id="semicolon"),
]


@pytest.mark.parametrize(("url", "expected"), NORMALIZED)
def test_normalize_url(url: str, expected: str) -> None:
    assert normalize_url(url) == expected


SAME_KEY = [
    pytest.param("http://ex.test/a?x=1", "https://ex.test/a?x=1", id="http-vs-https"),
    pytest.param("http://Ex.test:80/a", "https://ex.test:443/a#frag", id="port-case-fragment"),
    pytest.param(
        "https://ex.test/a?utm_source=twitter",
        "https://ex.test/a?utm_source=rss&utm_medium=feed",
        id="utm-variants",
    ),
]


@pytest.mark.parametrize(("first", "second"), SAME_KEY)
def test_same_key(first: str, second: str) -> None:
    assert normalize_url(first) == normalize_url(second)


DIFFERENT_KEY = [
    pytest.param("https://ex.test/a", "https://ex.test/A", id="path-case"),
    pytest.param("https://ex.test/a", "https://ex.test/a/", id="trailing-slash"),
    pytest.param("https://ex.test/a?id=1", "https://ex.test/a?id=2", id="content-param"),
    pytest.param("https://ex.test:8080/a", "https://ex.test/a", id="non-default-port"),
    pytest.param("https://a.ex.test/x", "https://b.ex.test/x", id="host"),
]


@pytest.mark.parametrize(("first", "second"), DIFFERENT_KEY)
def test_different_key(first: str, second: str) -> None:
    assert normalize_url(first) != normalize_url(second)


@pytest.mark.parametrize("name", sorted(TRACKING_PARAMETERS))
def test_every_listed_tracking_parameter_is_dropped(name: str) -> None:
    assert normalize_url(f"https://ex.test/a?k=1&{name}=v") == "https://ex.test/a?k=1"


INVALID = [
    pytest.param("", "not an http", id="empty"),
    pytest.param("   ", "not an http", id="blank"),
    pytest.param("ftp://ex.test/a", "not an http", id="ftp"),
    pytest.param("mailto:someone@ex.test", "not an http", id="mailto"),
    pytest.param("javascript:alert(1)", "not an http", id="javascript"),
    pytest.param("//ex.test/a", "not an http", id="scheme-relative"),
    pytest.param("/news/1.html", "not an http", id="relative-path"),
    pytest.param("ex.test/a", "not an http", id="no-scheme"),
    pytest.param("urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a", "not an http", id="urn"),
    pytest.param("http:///a", "usable host", id="no-host"),
    pytest.param("http://exa mple.com/", "usable host", id="space-in-host"),
    pytest.param("http://ex.test:port/", "cannot parse", id="bad-port"),
    pytest.param("http://ex.test:99999/", "cannot parse", id="port-out-of-range"),
    pytest.param("http://[::1/", "cannot parse", id="broken-ipv6"),
    pytest.param("http://bücher..example/", "internationalized", id="bad-idn"),
]


@pytest.mark.parametrize(("url", "message"), INVALID)
def test_normalize_url_rejects(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        normalize_url(url)


def _hash_key(title: str, content: str) -> str:
    return "hash:" + hashlib.sha256(f"src\n{title}\n{content}".encode()).hexdigest()


ITEM_KEYS = [
    pytest.param(
        "http://ex.test/a?utm_source=rss#x",
        "tag:ex.test,2024:1",
        "T",
        "C",
        "https://ex.test/a",
        id="link-wins",
    ),
    pytest.param(" https://ex.test/a ", None, "T", "C", "https://ex.test/a", id="link-stripped"),
    pytest.param(None, "http://ex.test/p?fbclid=1", "T", "C", "https://ex.test/p", id="guid-url"),
    pytest.param("/relative/1", "https://ex.test/p", "T", "C", "https://ex.test/p", id="relative-link"),
    pytest.param("http://[::1/", "https://ex.test/p", "T", "C", "https://ex.test/p", id="broken-link"),
    pytest.param(None, " tag:ex.test,2024:1 ", "T", "C", "guid:src:tag:ex.test,2024:1", id="guid-text"),
    pytest.param("", "12345", "T", "C", "guid:src:12345", id="empty-link-guid-text"),
    pytest.param(None, "HTTP://Ex.test", "T", "C", "https://ex.test/", id="guid-url-normalized"),
    pytest.param(None, None, "标题", "正文", _hash_key("标题", "正文"), id="hash-no-link-no-guid"),
    pytest.param("", "   ", "T", "C", _hash_key("T", "C"), id="hash-blank-guid"),
    pytest.param("mailto:a@b.c", "", "", "", _hash_key("", ""), id="hash-non-http-link-empty-text"),
]


@pytest.mark.parametrize(("link", "guid", "title", "content", "expected"), ITEM_KEYS)
def test_item_key(link: str | None, guid: str | None, title: str, content: str, expected: str) -> None:
    assert item_key(link, guid, title, content, source="src") == expected


DIFFERENT_HASH = [
    pytest.param(("A", "body"), ("B", "body"), id="title"),
    pytest.param(("A", "body"), ("A", "other"), id="content"),
    pytest.param(("AB", ""), ("A", "B"), id="separator"),
]


@pytest.mark.parametrize(("first", "second"), DIFFERENT_HASH)
def test_hash_keys_differ(first: tuple[str, str], second: tuple[str, str]) -> None:
    assert item_key(None, None, *first, source="src") != item_key(None, None, *second, source="src")


def test_item_key_same_for_utm_variants_of_link() -> None:
    keys = {
        item_key("https://ex.test/a?utm_source=rss", None, "T1", "C1", source="one"),
        item_key("http://ex.test/a?utm_source=twitter&utm_medium=social", "g2", "T2", "C2", source="two"),
        item_key("https://ex.test/a", "g3", "T3", "C3", source="three"),
    }
    assert keys == {"https://ex.test/a"}


def test_bare_guids_and_text_hashes_are_per_source() -> None:
    assert item_key(None, "12345", "T", "C", source="one") != item_key(None, "12345", "T", "C", source="two")
    assert item_key(None, None, "T", "C", source="one") != item_key(None, None, "T", "C", source="two")
    same_url_guid = {item_key(None, "https://ex.test/p", "T", "C", source=name) for name in ("one", "two")}
    assert same_url_guid == {"https://ex.test/p"}


def test_very_long_urls_get_a_bounded_key() -> None:
    long_url = "https://ex.test/" + "a" * 5000
    key = item_key(long_url, None, "T", "C", source="src")
    assert key.startswith("long:") and len(key) < 100
    assert key == item_key(long_url + "?utm_source=x", None, "T", "C", source="other")
    assert key != item_key(long_url + "b", None, "T", "C", source="src")


@pytest.mark.parametrize(
    "url",
    [
        *(param.values[0] for param in NORMALIZED),
        *(value for param in SAME_KEY for value in param.values),
        "http://ex.test:8080/a",
        "https://ex.test:443/a",
        "https://ex.test:0/a",
        "https://ex.test:08/a",
        "https://ex.test:99999/a",
        "https://ex.test:/a",
        "https://ex.test?",
        "https://ex.test/a?#",
        "https://ex.test/a#b?c",
        "https://user@ex.test/a",
        "https://ex.test./a",
        "https://ex-.test/a",
        "https://ex.test/a\tb",
        "https://ex.test/a b?c d",
        "HTTPS://EX.test/A",
        "https://例子.cn/新闻",
        "ftp://ex.test/a",
    ],
)
def test_plain_urls_get_the_key_the_general_way_gives(url: str) -> None:
    """normalize_url reads most URLs with one pattern; every key must be the one urlsplit would give."""
    try:
        general: str | None = _normalize_split(url.strip())
    except ValueError:
        general = None
    try:
        fast: str | None = normalize_url(url)
    except ValueError:
        fast = None
    assert fast == general
