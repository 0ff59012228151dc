"""Large feeds parsed in another process: the result of the polling thread, and a crash stays there."""

from __future__ import annotations

import multiprocessing
import os
import signal
from datetime import timedelta

import pytest

from aggregator.errors import ParseError
from aggregator.models import Fetched, FetchPolicy, SourceConfig
from aggregator.update import PARSE_ELSEWHERE_FROM, FeedParsers
from tests.test_parse import big_rss20

SOURCE = SourceConfig(
    name="wire",
    url="https://news.example.com/feed.xml",
    category="world",
    tags=(),
    interval=timedelta(minutes=30),
    timezone="Asia/Shanghai",
    keep_source_tags=True,
    fetch=FetchPolicy("aggregator-test/1.0", 2, 2, 5, 1 << 20, 5),
)


def _fetched(body: bytes) -> Fetched:
    url = SOURCE.url
    return Fetched(url, url, 200, {"content-type": "application/rss+xml; charset=utf-8"}, body)


def test_a_large_feed_parsed_in_another_process_is_the_feed_parsed_here() -> None:
    body = big_rss20(200)
    assert len(body) >= PARSE_ELSEWHERE_FROM
    here = FeedParsers(0).parse(SOURCE, _fetched(body))
    parsers = FeedParsers(1)
    try:
        elsewhere = parsers.parse(SOURCE, _fetched(body))
        assert [child.name for child in multiprocessing.active_children()], "no parser process was started"
    finally:
        parsers.close()
    assert elsewhere == here and len(here.items) == 200
    assert not multiprocessing.active_children(), "close() ends the parser processes"


def test_small_feeds_never_start_a_process() -> None:
    parsers = FeedParsers(1)
    try:
        feed = parsers.parse(SOURCE, _fetched(big_rss20(3)))
        assert len(feed.items) == 3
        assert not multiprocessing.active_children()
    finally:
        parsers.close()


def test_a_parser_process_that_dies_fails_that_source_only_and_is_replaced() -> None:
    body = big_rss20(200)
    parsers = FeedParsers(1)
    try:
        parsers.parse(SOURCE, _fetched(body))
        for child in multiprocessing.active_children():
            os.kill(child.pid or 0, signal.SIGKILL)  # as a crash in the XML library would
            child.join(10)
        with pytest.raises(ParseError, match="parser process died"):
            parsers.parse(SOURCE, _fetched(body))
        assert len(parsers.parse(SOURCE, _fetched(body)).items) == 200, "a new process reads the next body"
    finally:
        parsers.close()
