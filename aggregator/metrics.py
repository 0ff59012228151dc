"""Health and Prometheus metrics for supervisors: `/healthz` and `/metrics` on --metrics-port.

The counters live in one Metrics object that the daemon owns and feeds after
every poll and tick; the HTTP server only reads it. Plain text exposition
format 0.0.4, so no client library is needed.
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .models import UpdateResult

log = logging.getLogger(__name__)

DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass
class Metrics:
    """Counters since the process started; thread-safe."""

    polls: dict[str, int] = field(default_factory=lambda: {"ok": 0, "not_modified": 0, "error": 0})
    new_items: int = 0
    updated_items: int = 0
    duration_buckets: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    duration_sum: float = 0.0
    ticks: int = 0
    last_tick_end: float | None = None  # unix time
    queue_lag: float = 0.0  # seconds the most overdue source has been waiting, at the last tick
    started: float = 0.0  # unix time the daemon started: the first tick's grace period counts from it
    lock: threading.Lock = field(default_factory=threading.Lock)

    def observe_polls(self, results: Iterable[UpdateResult]) -> None:
        with self.lock:
            for result in results:
                outcome = "error" if result.error else "not_modified" if result.not_modified else "ok"
                self.polls[outcome] += 1
                self.new_items += result.new
                self.updated_items += result.updated
                self.duration_buckets[bisect.bisect_left(DURATION_BUCKETS, result.duration)] += 1
                self.duration_sum += result.duration

    def observe_tick(self, ended_at: float, queue_lag: float) -> None:
        with self.lock:
            self.ticks += 1
            self.last_tick_end = ended_at
            self.queue_lag = queue_lag

    def healthy(self, now: float, max_silence: float) -> bool:
        """A tick has ended recently enough (the first tick gets the same grace from start)."""
        with self.lock:
            return now - (self.last_tick_end or self.started) <= max_silence

    def exposition(self) -> str:
        with self.lock:
            lines = [
                "# HELP aggregator_polls_total Source polls by outcome.",
                "# TYPE aggregator_polls_total counter",
                *(
                    f'aggregator_polls_total{{outcome="{name}"}} {count}'
                    for name, count in self.polls.items()
                ),
                "# HELP aggregator_poll_errors_total Source polls that failed.",
                "# TYPE aggregator_poll_errors_total counter",
                f"aggregator_poll_errors_total {self.polls['error']}",
                "# HELP aggregator_new_items_total Items stored for the first time.",
                "# TYPE aggregator_new_items_total counter",
                f"aggregator_new_items_total {self.new_items}",
                "# HELP aggregator_updated_items_total Items changed in place.",
                "# TYPE aggregator_updated_items_total counter",
                f"aggregator_updated_items_total {self.updated_items}",
                "# HELP aggregator_poll_duration_seconds Time to fetch and parse one source.",
                "# TYPE aggregator_poll_duration_seconds histogram",
            ]
            cumulative = 0
            for bound, count in zip(
                [*map(str, DURATION_BUCKETS), "+Inf"], self.duration_buckets, strict=True
            ):
                cumulative += count
                lines.append(f'aggregator_poll_duration_seconds_bucket{{le="{bound}"}} {cumulative}')
            lines += [
                f"aggregator_poll_duration_seconds_sum {self.duration_sum:.6f}",
                f"aggregator_poll_duration_seconds_count {cumulative}",
                "# HELP aggregator_queue_lag_seconds How late the most overdue source was at the last tick.",
                "# TYPE aggregator_queue_lag_seconds gauge",
                f"aggregator_queue_lag_seconds {self.queue_lag:.3f}",
                "# HELP aggregator_ticks_total Ticks completed.",
                "# TYPE aggregator_ticks_total counter",
                f"aggregator_ticks_total {self.ticks}",
                "# HELP aggregator_last_tick_timestamp_seconds When the last tick ended (unix time).",
                "# TYPE aggregator_last_tick_timestamp_seconds gauge",
                f"aggregator_last_tick_timestamp_seconds {self.last_tick_end or 0:.3f}",
            ]
        return "\n".join(lines) + "\n"


class MetricsServer:
    """Serves /healthz and /metrics from a thread until closed."""

    def __init__(self, metrics: Metrics, healthy: Callable[[], bool], host: str, port: int) -> None:
        handler = _handler(metrics, healthy)
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics, health on /healthz", *self._httpd.server_address[:2])

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def _handler(metrics: Metrics, healthy: Callable[[], bool]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, metrics.exposition(), "text/plain; version=0.0.4; charset=utf-8")
            elif self.path == "/healthz":
                ok = healthy()
                self._send(200 if ok else 503, "ok\n" if ok else "no tick finished recently\n", "text/plain")
            else:
                self._send(404, "not found\n", "text/plain")

        def _send(self, status: int, text: str, content_type: str) -> None:
            body = text.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Scrapes every few seconds would drown the poll log."""

    return Handler
