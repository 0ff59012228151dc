"""The config a command starts from: which file, where its paths point, and its validated content.

Importing PyYAML and pydantic and validating the YAML of 1,000 sources
(config.py) took nearly a fifth of a one-shot poll in which nothing changed.
So the validated config of an unchanged file is kept in a cache (one file
per config path, under $XDG_CACHE_HOME/aggregator or ~/.cache/aggregator)
and read back in a few milliseconds, without importing either library. An
entry is used only when what it came from is the same: the file's bytes and
path, this program's code, and the libraries that validated it (PyYAML,
pydantic, lxml and cssselect for selectors, tzdata for time zones).

What depends on the machine rather than on the file is worked out again at
every start: the database URL from $AGGREGATOR_DATABASE_URL, relative paths
(resolved against the config file's folder, which may hold symbolic links),
and whether the time zones the config names are still known.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import pickle
import stat
import sys
import tempfile
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from . import __version__
from .errors import ConfigError
from .fingerprint import own_code_digest
from .models import SiteConfig, SourceConfig

log = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = Path("config/sources.yaml")
CONFIG_ENV = "AGGREGATOR_CONFIG"
DATABASE_ENV = "AGGREGATOR_DATABASE_URL"
CACHE_FORMAT = b"aggregator config cache 1"
# What validates a config besides this package (pydantic and what its constraints use; lxml and
# cssselect compile selectors; tzdata holds time zones).
_VALIDATING_LIBRARIES = (
    "yaml", "pydantic", "pydantic_core", "annotated_types", "typing_extensions", "typing_inspection",
    "lxml", "cssselect", "tzdata",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Config:
    """Everything the aggregator needs, with paths resolved against the config file."""

    path: Path
    site: SiteConfig
    database_url: str
    output_dir: Path
    formats: frozenset[str]
    sources: tuple[SourceConfig, ...]
    workers: int = 16  # concurrent fetches in one process
    per_host: int = 2  # connections at once to one host
    lease: timedelta = timedelta(minutes=5)  # how long a claimed source stays this worker's
    parse_processes: int = 1  # processes parsing large feeds beside the polling threads (0: in them)

    def source(self, name: str) -> SourceConfig:
        for source in self.sources:
            if source.name == name:
                return source
        raise ConfigError(f"{self.path}: no source named {name!r}")


def config_path(cli_value: str | None) -> Path:
    """-c/--config, else $AGGREGATOR_CONFIG, else config/sources.yaml."""
    return Path(cli_value or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)


def resolve_paths(config: Config) -> Config:
    """The config with $AGGREGATOR_DATABASE_URL applied and relative paths made absolute.

    `config` holds the database URL and output folder as the file writes
    them; relative ones are relative to the config file's folder.
    """
    url_text = os.environ.get(DATABASE_ENV) or config.database_url
    try:
        url = make_url(url_text)
    except ArgumentError:
        raise ConfigError(f"{config.path}: database: not a database URL: {url_text!r}") from None
    folder = config.path.parent
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        database = Path(url.database)
        if not database.is_absolute():
            url = url.set(database=str((folder / database).resolve()))
    output = config.output_dir if config.output_dir.is_absolute() else (folder / config.output_dir).resolve()
    return replace(config, database_url=url.render_as_string(hide_password=False), output_dir=output)


def load_config_cached(path: Path) -> Config:
    """load_config(path), from the cache when the file and the code are unchanged (see the module)."""
    try:
        text = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config: {error.strerror or error}") from None
    entry = _cache_entry(path)
    key = _key(path, text) if entry is not None else None  # no work for a cache there is nowhere to keep
    config = _read_entry(entry, key) if entry is not None and key is not None else None
    if config is not None and not _zones_known(config):
        config = None  # the machine's time zone data changed: a full read says which zone is gone
    if config is None:
        from .config import read_config  # PyYAML and pydantic: only when the cache cannot answer

        config = read_config(path, text)
        if entry is not None and key is not None:
            _write_entry(entry, key, config)
    return resolve_paths(replace(config, path=path))


def _zones_known(config: Config) -> bool:
    """Whether every time zone the config names is still known here (as config.py checked it)."""
    try:
        for zone in {config.site.timezone, *(source.timezone for source in config.sources)}:
            ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _key(path: Path, text: bytes) -> bytes | None:
    """What the validated config depends on, besides the machine (see the module); None if that
    cannot be told (an import finder that fails, say): no cache then, never a failure."""
    try:
        program = f"{__version__}\n{_libraries()}".encode("utf-8", "surrogateescape")
        parts = (os.fsencode(path), text, own_code_digest(), program)
    except Exception as error:
        log.debug("config cache not used: %s", error)
        return None
    key = hashlib.blake2b(CACHE_FORMAT, digest_size=32)
    for part in parts:
        key.update(len(part).to_bytes(8, "big"))
        key.update(part)
    return key.digest()


def _libraries() -> str:
    """The Python version, and where and when each library that validates a config was installed
    (its module file: an installer writes it anew, with the time it did)."""
    found = [sys.version]
    for name in _VALIDATING_LIBRARIES:
        spec = importlib.util.find_spec(name)  # finds the module without importing it
        origin = spec.origin if spec is not None else None
        installed = ""
        with contextlib.suppress(OSError, TypeError):
            status = os.stat(origin)  # type: ignore[arg-type]  # None (not installed) is a TypeError
            installed = f"{status.st_mtime_ns}:{status.st_size}"
        found.append(f"{name}:{origin}:{installed}")
    return "\n".join(found)


def _cache_entry(path: Path) -> Path | None:
    """Where the cache keeps the config of `path`; None without a home folder to keep it in."""
    try:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aggregator"
        absolute = path.absolute()
    except (RuntimeError, OSError):  # no $HOME and no user entry; a working directory deleted meanwhile
        return None
    name = hashlib.blake2b(os.fsencode(absolute), digest_size=16).hexdigest()
    return root / f"config-{name}.pickle"


def _read_entry(entry: Path, key: bytes) -> Config | None:
    """The cached config if `entry` holds one for `key` and is this user's own file, else None.

    A pickle runs code: only a regular file of this user's is read, never
    one through a symbolic link, and never a FIFO that would block.
    """
    try:
        descriptor = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:  # none yet, a symbolic link, not ours to read...
        return None
    try:
        status = os.fstat(descriptor)
        usable = stat.S_ISREG(status.st_mode) and status.st_uid == os.getuid()
    except OSError:
        usable = False
    if not usable:
        os.close(descriptor)
        return None
    try:
        with os.fdopen(descriptor, "rb") as handle:
            if handle.read(len(key)) != key:
                return None
            config = pickle.load(handle)
    except Exception as error:  # a damaged entry is a miss, never a failure
        log.debug("config cache %s unusable: %s", entry, error)
        return None
    return config if isinstance(config, Config) else None


def _write_entry(entry: Path, key: bytes, config: Config) -> None:
    """Write the entry whole or not at all (a temporary file renamed over it); failures only cost speed."""
    try:
        data = key + pickle.dumps(config, protocol=pickle.HIGHEST_PROTOCOL)
        entry.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=entry.parent, prefix=entry.name, suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
            os.replace(temporary, entry)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    except Exception as error:  # read-only home, a rule that cannot be pickled...: read the YAML next time
        log.debug("config cache %s not written: %s", entry, error)
