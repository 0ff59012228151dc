"""Command line: builds the objects, sets up logging, maps errors to exit codes.

Exit codes: 0 success (a failing source is not a failing run), 1 unexpected
error, 2 bad usage or bad config, 3 database unavailable, 141 output closed
early (`aggregator status | head`).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import logging
import os
import select
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from . import __version__
from .config_file import Config, config_path, load_config_cached
from .daemon import Daemon, polling_for, run_tick
from .errors import ConfigError, StoreError
from .models import SourceStatus
from .processes import collect_garbage_less_often
from .store import Store, display_url

log = logging.getLogger("aggregator")

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_STORE = 0, 1, 2, 3
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a program SIGPIPE ended: `... | head`


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aggregator",
        description="Poll RSS/Atom sources and republish them as a static archive with Atom feeds.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-c", "--config", help="config file (default: $AGGREGATOR_CONFIG or config/sources.yaml)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="json: one object per line, for log shippers",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="poll due sources and publish, forever (or --once)")
    run.add_argument("--once", action="store_true", help="run one tick and exit (for cron or a first look)")
    run.add_argument("--workers", type=int, help="concurrent fetches (default: polling.workers, 16)")
    run.add_argument(
        "--no-publish", action="store_true", help="only poll; another process publishes (several workers)"
    )
    run.add_argument("--metrics-port", type=int, help="serve /healthz and Prometheus /metrics on this port")
    run.add_argument("--metrics-host", default="127.0.0.1", help="address for --metrics-port (127.0.0.1)")

    poll = commands.add_parser("poll", help="poll sources now regardless of schedule, then publish")
    poll.add_argument("--all", action="store_true", help="every configured source")
    poll.add_argument("names", nargs="*", metavar="NAME", help="source names")
    poll.add_argument("--workers", type=int, help="concurrent fetches (default: polling.workers, 16)")
    poll.add_argument(
        "--no-publish", action="store_true", help="only poll and store; publish later with `publish`"
    )

    publish_command = commands.add_parser("publish", help="write the output folder from the database")
    publish_command.add_argument("--full", action="store_true", help="re-render everything, not only changes")

    enable = commands.add_parser("enable", help="re-enable a source disabled by 410 Gone; poll it next tick")
    enable.add_argument("name", metavar="NAME")

    commands.add_parser("check", help="validate the config and print a summary")
    commands.add_parser("status", help="a table of sources: last poll, HTTP status, items, errors, next due")

    database = commands.add_parser("db", help="database maintenance")
    database_commands = database.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    database_commands.add_parser("upgrade", help="apply schema migrations (also done on every start)")
    return parser


def run() -> None:
    """The `aggregator` command (and `python -m aggregator`): main(), then exit.

    Objects still alive are frozen first: at exit the interpreter collects
    garbage again and again while it tears the modules down, walking every
    object the program made (0.06 s of a 1 s poll); frozen, they are left
    to the operating system.
    """
    parser_processes_skip_this_script()
    try:
        code = main()
        if sys.stdout is not None:  # None when started with stdout closed (`>&-`)
            sys.stdout.flush()
    except BrokenPipeError:
        if not _stdout_reader_gone():  # a broken pipe elsewhere is a bug to see, not a reader leaving
            raise
        # `aggregator status | head`: the reader took what it wanted and left. Python flushes
        # stdout again at exit: /dev/null takes that, rather than a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_BROKEN_PIPE
    gc.freeze()
    sys.exit(code)


def _stdout_reader_gone() -> bool:
    """Whether stdout is a pipe whose reading end is closed (poll reports POLLERR for it)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _fd, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no stdout, or not a file
        return False


def parser_processes_skip_this_script() -> None:
    """Spawned parser processes run the parent's main script again, unless it is a package's
    __main__ (`python -m aggregator`). The `aggregator` command's script imports this module, and
    with it requests and SQLAlchemy: a parser process was up 0.34 s after it was started rather than
    0.10 s. Named as aggregator.__main__, which spawn does not run, the script is left alone."""
    script = sys.modules["__main__"]
    if getattr(script, "__spec__", None) is None:
        script.__spec__ = importlib.util.find_spec("aggregator.__main__")


def main(argv: Sequence[str] | None = None) -> int:
    collect_garbage_less_often()
    args = build_parser().parse_args(argv)
    set_up_logging(
        args.log_format, logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    )
    try:
        if args.command == "check":  # validates the file itself, whatever the cache holds
            from .config import load_config

            print(describe_config(load_config(config_path(args.config))))
            return EXIT_OK
        config = load_config_cached(config_path(args.config))
        store = Store.open(config.database_url)
        try:
            return _dispatch(args, config, store)
        finally:
            store.close()
    except ConfigError as error:
        print(f"aggregator: config error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except StoreError as error:
        print(f"aggregator: database error: {error}", file=sys.stderr)
        return EXIT_STORE


def _dispatch(args: argparse.Namespace, config: Config, store: Store) -> int:
    store.sync_sources(config.sources)
    polling = polling_for(config, getattr(args, "workers", None))
    if args.command == "run":
        if args.once:
            run_tick(store, config, polling=polling, publish_after=not args.no_publish)
        else:
            metrics = None if args.metrics_port is None else (args.metrics_host, args.metrics_port)
            Daemon(
                store, config, polling=polling, publish_after=not args.no_publish, metrics_address=metrics
            ).run()
    elif args.command == "poll":
        if args.all == bool(args.names):
            print("aggregator: poll needs either --all or source names", file=sys.stderr)
            return EXIT_USAGE
        names = [source.name for source in config.sources] if args.all else args.names
        known = {source.name for source in config.sources}  # a set: 10,000 sources, 10,000 names
        for name in (name for name in names if name not in known):
            config.source(name)  # ConfigError for an unknown name
        run_tick(store, config, names=names, polling=polling, publish_after=not args.no_publish)
    elif args.command == "publish":
        from .publish import publish  # the render stack, imported by the commands that render

        publish(store, config, full=args.full)
    elif args.command == "enable":
        config.source(args.name)  # ConfigError for an unknown name
        store.enable(args.name)
        print(f"source {args.name} enabled; it is polled at the next tick")
    elif args.command == "status":
        print(format_status(store, config))
    elif args.command == "db":
        print(f"database {display_url(config.database_url)} is at the latest schema")
    return EXIT_OK


class JsonFormatter(logging.Formatter):
    """One JSON object per line; fields given with `extra=` (source, status, new...) become keys."""

    _STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry |= {key: value for key, value in vars(record).items() if key not in self._STANDARD}
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def set_up_logging(log_format: str, level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("alembic").setLevel(logging.DEBUG if level <= logging.DEBUG else logging.WARNING)


def describe_config(config: Config) -> str:
    site = config.site
    lines = [
        f"{config.path}: OK",
        f"site: {site.title} <{site.base_url}> ({site.language}, {site.timezone})",
        f"database: {display_url(config.database_url)}",
        f"output: {config.output_dir} ({', '.join(sorted(config.formats))})",
        f"categories: {', '.join(f'{c.slug} ({c.title})' for c in site.categories)}",
        f"sources ({len(config.sources)}):",
    ]
    width = max(len(source.name) for source in config.sources)
    for source in config.sources:
        tags = f" tags={','.join(source.tags)}" if source.tags else ""
        lines.append(
            f"  {source.name:<{width}}  every {_duration(source.interval.total_seconds())}"
            f"  category={source.category}{tags}  {source.url}"
        )
    return "\n".join(lines)


def format_status(store: Store, config: Config) -> str:
    zone = ZoneInfo(config.site.timezone)
    configured = {source.name for source in config.sources}
    header = ("SOURCE", "LAST POLL", "HTTP", "ITEMS", "ERRORS", "NEXT DUE", "NOTE")
    rows = [
        (
            row.name if row.name in configured else f"{row.name} (not in config)",
            _when(row.last_polled_at, zone),
            str(row.last_status) if row.last_status is not None else "-",
            str(row.items),
            str(row.error_count),
            "disabled"
            if row.disabled_reason
            else _when(row.next_check_at, zone)
            if row.next_check_at
            else "now",
            _note(row),
        )
        for row in store.status()
    ]
    widths = [max(len(line[column]) for line in [header, *rows]) for column in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [header, *rows]
    )


def _note(row: SourceStatus) -> str:
    """What an operator should know about a source, most important first."""
    notes = []
    if row.disabled_reason:
        notes.append(f"disabled: {row.disabled_reason}")
    if row.url != row.config_url:
        notes.append(f"moved permanently to {row.url} (update the config)")
    elif row.moved_to:
        notes.append(f"redirects permanently to {row.moved_to} (not adopted yet)")
    if row.last_error and not row.disabled_reason:
        notes.append(f"last error: {row.last_error[:80]}")
    return "; ".join(notes)


def _when(moment: datetime | None, zone: ZoneInfo) -> str:
    return "never" if moment is None else moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %z")


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
