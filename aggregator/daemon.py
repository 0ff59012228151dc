"""The polling daemon: APScheduler 3 ticks, the database holds the schedule.

A tick polls the sources that are due (per-source `next_check_at` in the
database) and then publishes. One tick runs at a time (max_instances=1,
coalesce=True); SIGTERM/SIGINT let the tick in flight finish its fetched
sources and its publish, skip sources not started yet, then exit.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING

from .config_file import Config
from .errors import StoreError
from .models import PublishResult, UpdateResult
from .store import Store
from .update import FeedParsers, Polling, update_sources

if TYPE_CHECKING:  # imported by the daemon: one-shot commands (`run --once`, `poll`) keep no metrics
    from .metrics import Metrics

log = logging.getLogger(__name__)

MAX_TICK = timedelta(seconds=60)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class TickResult:
    polled: list[UpdateResult]
    published: PublishResult


def polling_for(config: Config, workers: int | None = None) -> Polling:
    """This process's polling settings: the config's, with --workers if given."""
    return Polling(
        workers=workers or config.workers,
        per_host=config.per_host,
        lease=config.lease,
        parse_processes=config.parse_processes,
    )


def tick_interval(config: Config) -> timedelta:
    """Often enough that no source waits much past its interval, at most once a minute."""
    return min([MAX_TICK, *(source.interval for source in config.sources)])


def run_tick(
    store: Store,
    config: Config,
    *,
    names: list[str] | None = None,
    polling: Polling | None = None,
    stop: threading.Event | None = None,
    publish_after: bool = True,
    parsers: FeedParsers | None = None,
) -> TickResult:
    """Poll the due sources this worker can claim (or exactly `names`, due or not), then publish."""
    wanted = set(names) if names is not None else None
    sources = [source for source in config.sources if wanted is None or source.name in wanted]
    polled = update_sources(
        store, sources, utc_now, polling=polling or polling_for(config), due_only=names is None, stop=stop,
        parsers=parsers,
    )  # fmt: skip
    published = PublishResult(0, 0, 0, 0)
    if publish_after:
        from .publish import publish  # the render stack: a third of the start-up of `poll --no-publish`

        published = publish(store, config)
    result = TickResult(polled=polled, published=published)
    log.info(
        "tick polled=%d failed=%d new=%d updated=%d written=%d",
        len(polled),
        sum(1 for poll in polled if not poll.ok),
        sum(poll.new for poll in polled),
        sum(poll.updated for poll in polled),
        result.published.written,
    )
    return result


class Daemon:
    """`aggregator run`: ticks until told to stop."""

    def __init__(
        self,
        store: Store,
        config: Config,
        *,
        polling: Polling,
        publish_after: bool = True,
        metrics_address: tuple[str, int] | None = None,
    ) -> None:
        from .metrics import Metrics  # with http.server: 15 ms that one-shot commands need not import

        self.store = store
        self.config = config
        self.polling = polling
        self.publish_after = publish_after
        self.metrics: Metrics = Metrics(started=time.time())
        self.metrics_address = metrics_address
        self.stop = threading.Event()
        self.parsers = FeedParsers(polling.parse_processes)  # kept from tick to tick; ended by run()
        # Imported here: one-shot commands (`run --once`, `poll`) never schedule anything.
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.blocking import BlockingScheduler

        self._scheduler = BlockingScheduler(
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
            timezone=UTC,
        )

    def tick(self) -> None:
        """One scheduled tick; an unexpected error is logged and the next tick tries again."""
        try:
            result = run_tick(
                self.store,
                self.config,
                polling=self.polling,
                stop=self.stop,
                publish_after=self.publish_after,
                parsers=self.parsers,
            )
            self.metrics.observe_polls(result.polled)
            lag = self.store.queue_lag(utc_now()).total_seconds()
        except StoreError as error:  # the database is away: say so in one line, try again next tick
            log.error("tick failed: database error: %s; the next tick tries again", error)
            return
        except Exception:
            log.exception("tick failed; the next tick tries again")
            return
        self.metrics.observe_tick(time.time(), lag)

    def healthy(self) -> bool:
        """Ticks keep ending: a stuck or dead scheduler shows within a few tick intervals."""
        interval = tick_interval(self.config).total_seconds()
        return self.metrics.healthy(time.time(), max_silence=3 * interval + self.config.lease.total_seconds())

    def run(self) -> None:
        """Block until SIGTERM or SIGINT; the first tick starts at once."""
        interval = tick_interval(self.config)
        self._scheduler.add_job(
            self.tick,
            "interval",
            seconds=interval.total_seconds(),
            next_run_time=utc_now(),
            id="tick",
        )
        server = None
        if self.metrics_address is not None:
            from .metrics import MetricsServer

            server = MetricsServer(self.metrics, self.healthy, *self.metrics_address)
            server.start()
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        log.info(
            "daemon started: %d sources, tick every %ss", len(self.config.sources), interval.total_seconds()
        )
        try:
            self._scheduler.start()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if server is not None:
                server.close()
            self.parsers.close()
        log.info("daemon stopped")

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.stop.is_set():
            log.info("%s again: still finishing the tick in flight", signal.Signals(signum).name)
            return
        log.info("%s received: finishing the tick in flight, then stopping", signal.Signals(signum).name)
        self.stop.set()
        self._scheduler.shutdown(wait=True)
