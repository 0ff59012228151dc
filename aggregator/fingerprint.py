"""A digest of this program's code: for what must be worked out again when the code changes.

Two things depend on it: the config cache (config_file.py) and the digests
of the entries already stored (parse.code_fingerprint). Light on purpose:
parser processes import it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.resources
from collections.abc import Iterator
from importlib.resources.abc import Traversable


def code_digest(package: Traversable | None = None) -> bytes:
    """A digest of every module of `package` (this one by default), from a folder or a zip.

    Without sources to read (a frozen build) it is a digest of nothing, and
    whoever uses it adds the program's version.
    """
    code = hashlib.blake2b(digest_size=16)
    with contextlib.suppress(OSError):
        for name, source in _sources(package or importlib.resources.files("aggregator")):
            code.update(f"{name}\x00{len(source)}\x00".encode())
            code.update(source)
    return code.digest()


@functools.cache
def own_code_digest() -> bytes:
    """code_digest() of this package, read once per process (the config cache and the parser use it)."""
    return code_digest()


def _sources(folder: Traversable, prefix: str = "") -> Iterator[tuple[str, bytes]]:
    """(path, bytes) of every .py file under `folder`, in a fixed order."""
    for entry in sorted(folder.iterdir(), key=lambda entry: entry.name):
        if entry.is_dir():
            yield from _sources(entry, f"{prefix}{entry.name}/")
        elif entry.name.endswith(".py"):
            yield f"{prefix}{entry.name}", entry.read_bytes()
