"""Settings of this program's processes: the command's and its parser processes'.

A module that imports nothing heavy, because a spawned parser process imports
the module of each function it is handed: when these lived in update.py, every
parser process first imported requests and SQLAlchemy (0.21 s of CPU, where
the parser needs 0.09 s), and a poll that waited for one read the bodies that
arrived meanwhile in its own threads.
"""

from __future__ import annotations

import gc
import signal


def collect_garbage_less_often() -> None:
    """Young-object collections every 50,000 allocations rather than 700, in the same proportions.

    Parsing and storing a large poll allocates millions of short-lived objects and
    no cycles worth chasing that often: the bench farm's first poll spent 0.2 s
    (2%) in 480 collections, and 0.03 s in 3 with these thresholds.
    """
    gc.set_threshold(50_000, 10, 10)


def parser_started() -> None:
    """In a parser process: SIGINT and SIGTERM are for the daemon, which ends its parsers once the
    tick in flight is done; a parser stopped by them would fail the bodies it holds."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    collect_garbage_less_often()
    import_parser()  # in every parser process, not only the one that runs the first job


def import_parser() -> None:
    """In a parser process, before its first body: the parser's modules, then frozen."""
    from . import parse  # noqa: F401

    # What the parser imported stays for the process's life: frozen, the collections skip it, and
    # the process ends sooner (its last collections walked it all: 0.05 s that a poll waited for).
    gc.freeze()
