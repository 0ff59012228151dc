"""parse_feed that kills its process on a marked body: a crash in the XML library, on demand.

A module of its own so that spawned parser processes can import it by name.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Mapping
from typing import Any

from aggregator.models import ParsedFeed
from aggregator.parse import parse_feed

MARK = b"<!--kills the parser-->"
SLOW = b"<!--takes a second to parse-->"  # so that a test kills the process while it parses


def parse_or_die(body: bytes, headers: Mapping[str, str], **options: Any) -> ParsedFeed:
    if MARK in body:
        os._exit(70)
    if SLOW in body:
        time.sleep(1)
    return parse_feed(body, headers, **options)


def parse_in_a_child_only(body: bytes, headers: Mapping[str, str], **options: Any) -> ParsedFeed:
    """parse_feed that refuses to run in the process that polls (the one without a parent process)."""
    if multiprocessing.parent_process() is None:
        raise AssertionError("parsed in the polling process")
    return parse_feed(body, headers, **options)
