"""Metrics and health as a supervisor reads them."""

from __future__ import annotations

import requests

from aggregator.metrics import Metrics, MetricsServer
from aggregator.models import UpdateResult


def test_health_needs_a_recent_tick() -> None:
    metrics = Metrics(started=1000.0)
    assert metrics.healthy(1050.0, max_silence=60), "the first tick gets a grace period from start"
    assert not metrics.healthy(1100.0, max_silence=60), "no tick ever finished"
    metrics.observe_tick(1090.0, queue_lag=0.0)
    assert metrics.healthy(1100.0, max_silence=60)
    assert not metrics.healthy(1200.0, max_silence=60), "ticks stopped"


def test_metrics_endpoint_counts_polls() -> None:
    metrics = Metrics(started=0.0)
    metrics.observe_polls(
        [
            UpdateResult("a", status=200, new=3, updated=1, seen=10, duration=0.2),
            UpdateResult("b", status=304, not_modified=True, duration=0.01),
            UpdateResult("c", error="HTTP 500", duration=12.0),
        ]
    )
    metrics.observe_tick(5.0, queue_lag=42.5)
    server = MetricsServer(metrics, lambda: False, "127.0.0.1", 0)
    server.start()
    try:
        text = requests.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5).text
        health = requests.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5)
        missing = requests.get(f"http://127.0.0.1:{server.port}/nope", timeout=5)
    finally:
        server.close()
    for line in [
        'aggregator_polls_total{outcome="ok"} 1',
        'aggregator_polls_total{outcome="not_modified"} 1',
        'aggregator_polls_total{outcome="error"} 1',
        "aggregator_poll_errors_total 1",
        "aggregator_new_items_total 3",
        "aggregator_updated_items_total 1",
        'aggregator_poll_duration_seconds_bucket{le="0.05"} 1',
        'aggregator_poll_duration_seconds_bucket{le="0.25"} 2',
        'aggregator_poll_duration_seconds_bucket{le="10.0"} 2',
        'aggregator_poll_duration_seconds_bucket{le="30.0"} 3',
        'aggregator_poll_duration_seconds_bucket{le="+Inf"} 3',
        "aggregator_poll_duration_seconds_count 3",
        "aggregator_queue_lag_seconds 42.500",
        "aggregator_ticks_total 1",
    ]:
        assert line in text.splitlines(), line
    assert health.status_code == 503 and missing.status_code == 404
