"""parse_feed that kills its process on a marked body: a crash in the XML library, on demand.

A module of its own so that spawned parser processes can import it by name.
"""

from __future__ import annotations

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
