"""The Prometheus metrics of ``streamml score``: throughput, batch sizes, latency, lag, drift.

Each scorer has a registry of its own, served over HTTP when a port is given. With metrics off
and prometheus-client absent (it comes with ``streamml[kafka]``), every metric counts nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from streamml.drift import DriftMonitor


class _NullMetric:
    """A metric that counts nothing: the scorer's metrics when they are off and prometheus-client is absent."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def labels(self, *args: Any) -> _NullMetric:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def observe(self, value: float) -> None:
        pass

    def set(self, value: float) -> None:
        pass


class _NullRegistry:
    """The registry of :class:`_NullMetric` s."""


class Metrics:
    """The scorer's Prometheus metrics, in a registry of its own (served when a port is given)."""

    def __init__(self, port: int | None) -> None:
        """The metrics, served on ``port`` (``None``: not served).

        Raises:
            ModuleNotFoundError: a port is given and prometheus-client is not installed.
        """
        try:
            from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
        except ModuleNotFoundError:
            if port is not None:
                raise
            # Metrics off and prometheus-client absent (it comes with streamml[kafka]): count nothing.
            CollectorRegistry, Counter, Gauge, Histogram = _NullRegistry, _NullMetric, _NullMetric, _NullMetric

        self.registry = CollectorRegistry()
        r = self.registry
        self.messages_in = Counter("streamml_score_messages_in", "Messages consumed and scored.", registry=r)
        self.messages_out = Counter("streamml_score_messages_out", "Predictions produced.", registry=r)
        self.dlq = Counter("streamml_score_dead_letters", "Messages sent to the dead-letter topic.", registry=r)
        self.batch_size = Histogram(
            "streamml_score_batch_size",
            "Messages per scored batch.",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
            registry=r,
        )
        self.scoring = Histogram(
            "streamml_score_scoring_seconds", "Decode + score + encode time of a batch (Rust).", registry=r
        )
        self.end_to_end = Histogram(
            "streamml_score_end_to_end_seconds",
            "From a message's timestamp to its output's acknowledgement (oldest and newest of each batch).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.lag = Gauge(
            "streamml_score_consumer_lag", "High watermark minus position.", ["topic", "partition"], registry=r
        )
        by_feature = ["feature", "role"]
        self.drift_rows = Gauge("streamml_drift_rows", "Rows counted in the open drift window.", by_feature, registry=r)
        self.drift_psi = Gauge(
            "streamml_drift_psi", "PSI of the open drift window against the reference.", by_feature, registry=r
        )
        self.drift_missing = Gauge(
            "streamml_drift_missing_rate", "Share of missing values in the open drift window.", by_feature, registry=r
        )
        self.drift_out_of_range = Gauge(
            "streamml_drift_out_of_range_rate",
            "Share of values outside the reference's edges in the open drift window.",
            by_feature,
            registry=r,
        )
        self._server = None
        self._lag_updated = 0.0
        if port is not None:
            self._server, _ = start_http_server(port, registry=r)

    def batch(self, rows: int, dead: int, seconds: float) -> None:
        """A committed batch of ``rows`` messages, ``dead`` of them dead-lettered, scored in ``seconds``."""
        self.messages_in.inc(rows)
        self.messages_out.inc(rows - dead)
        self.dlq.inc(dead)
        self.batch_size.observe(rows)
        self.scoring.observe(seconds)

    def acknowledged(self, batch: list[Any]) -> None:
        """End-to-end latency of the batch's oldest and newest message (creation to acknowledgement)."""
        now = time.time()
        for m in (batch[0], batch[-1]):
            kind, stamp = m.timestamp()
            if kind != 0 and stamp > 0:
                self.end_to_end.observe(max(0.0, now - stamp / 1000.0))

    def update_lag(self, consumer: Any, partitions: Callable[[], list[Any]]) -> None:
        """The consumer's lag on its ``partitions()`` (at most once a second)."""
        if time.monotonic() - self._lag_updated < 1.0:
            return
        self._lag_updated = time.monotonic()
        from confluent_kafka import KafkaException

        for tp in consumer.position(partitions()):
            _, high = consumer.get_watermark_offsets(tp, cached=True)
            if high < 0:  # nothing fetched yet: ask the broker (once a second at most)
                try:
                    _, high = consumer.get_watermark_offsets(tp, timeout=1.0)
                except KafkaException:
                    continue
            if high >= 0:
                position = tp.offset if tp.offset >= 0 else 0
                self.lag.labels(tp.topic, str(tp.partition)).set(max(0, high - position))

    def drift(self, monitor: DriftMonitor) -> None:
        """The statistics of the open drift window."""
        for row in monitor.stats():
            labels = (row["feature"], row["role"])
            self.drift_rows.labels(*labels).set(row["rows"])
            self.drift_psi.labels(*labels).set(row["psi"])
            self.drift_missing.labels(*labels).set(row["missing_rate"])
            self.drift_out_of_range.labels(*labels).set(row["out_of_range_rate"])

    def close(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
