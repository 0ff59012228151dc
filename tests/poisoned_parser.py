"""parse_feed that kills its process on a marked body: a crash in the XML library, on demand.

A module of its own so that spawned parser processes can import it by name.
"""

from __future__ import annotations

import os
import sys
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


POLLING_MODULES = ("requests", "sqlalchemy", "aggregator.update", "aggregator.store")


def parse_without_polling_modules(body: bytes, headers: Mapping[str, str], **options: Any) -> ParsedFeed:
    """parse_feed that fails in a process that imported what only the polling process needs."""
    loaded = [name for name in POLLING_MODULES if name in sys.modules]
    if loaded:
        raise AssertionError(f"the parser process imported {loaded}")
    return parse_feed(body, headers, **options)
