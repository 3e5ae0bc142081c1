"""Prometheus metrics of the ingest worker (served on its own port by ``citypark ingest``).

Rates come from the counters (``rate(citypark_ingest_events_total[1m])``); rejects are also
visible in the API's ``/metrics`` (``citypark_rejected_messages``, read from the table).
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

MESSAGES = Counter("citypark_ingest_messages", "MQTT messages received", ["worker"])
EVENTS = Counter("citypark_ingest_events", "Accepted events written", ["worker", "kind"])
DUPLICATES = Counter("citypark_ingest_duplicates", "Occupancy events already in history", ["worker"])
REJECTED = Counter("citypark_ingest_rejected", "Rejected messages", ["worker", "reason"])
BATCH_SIZE = Histogram("citypark_ingest_batch_size", "Messages per committed batch", ["worker"],
                       buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000))
BATCH_SECONDS = Histogram("citypark_ingest_batch_seconds", "Time to write and commit a batch", ["worker"],
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
LAG = Gauge("citypark_ingest_lag_seconds",
            "Commit time minus observed_at of the newest event of the last batch", ["worker"])
QUEUE_LAG = Gauge("citypark_ingest_queue_lag_seconds",
                  "Commit time minus arrival of the oldest message of the last batch", ["worker"])
BUFFERED = Gauge("citypark_ingest_buffered_messages", "Received, not yet committed and acknowledged",
                 ["worker"])
DB_ERRORS = Counter("citypark_ingest_db_errors", "Failed batch writes (retried)", ["worker"])
CONNECTED = Gauge("citypark_ingest_mqtt_connected", "1 while connected to the broker", ["worker"])


def serve(port: int, host: str = "127.0.0.1") -> None:
    """Serve /metrics on ``host:port`` (``CITYPARK_METRICS_HOST``, loopback by default: a scraper on
    another machine needs it set, e.g. to 0.0.0.0); port 0 turns it off. A busy port is logged, not fatal."""
    if port <= 0:
        return
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        log.warning("metrics port %s unavailable: %s", port, exc)
