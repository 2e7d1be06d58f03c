"""Kafka hosts: ``streamml score`` (:class:`ScoringLoop`) and what ``streamml feedback`` shares with it.

A consumer-producer (confluent-kafka) around the Rust core: a micro-batch of messages is decoded
(JSON objects or Arrow IPC streams), scored and encoded in one call with the GIL released, then
each output is produced with its input's key and headers naming the model, its version and
SHA-256; a message that cannot be read or scored goes to the dead-letter topic. At-least-once by
default, exactly-once with Kafka transactions; a batch's offsets or transaction are committed only
after everything it produced was acknowledged.

The modules, each for one concern:

* :mod:`~streamml.kafka.config`: the brokers, the group and the ``-X`` librdkafka properties
  (TLS/SASL pass-through) of every client; topic size limits.
* :mod:`~streamml.kafka.dlq`: message headers and the dead-letter writer (both commands).
* :mod:`~streamml.kafka.delivery`: at-least-once and exactly-once commits, the watchdog.
* :mod:`~streamml.kafka.scoring`: the worker thread that scores a batch in chunks.
* :mod:`~streamml.kafka.versions`: model references (hot swap between batches), the headers naming
  the version that scored, shadow challengers and the canary.
* :mod:`~streamml.kafka.sinks`: predictions and drift counts to the store; the store retry.
* :mod:`~streamml.kafka.metrics`: Prometheus metrics.
* :mod:`~streamml.kafka.loop`: the consumer loop (:class:`ScoringLoop`) and the batching decision.

``Scorer`` is the old name of :class:`ScoringLoop`: it still imports, with a ``DeprecationWarning``,
until the next release.
"""

import warnings
from typing import Any

from streamml.kafka.config import ClientConfig, KafkaScorerError, parse_properties
from streamml.kafka.dlq import (
    HEADER_ERROR,
    HEADER_MODEL,
    HEADER_OFFSET,
    HEADER_PARTITION,
    HEADER_SHA256,
    HEADER_SIZE,
    HEADER_TOPIC,
    HEADER_VERSION,
    DeadLetters,
)
from streamml.kafka.loop import Format, Guarantee, ScoringLoop
from streamml.kafka.sinks import PredictionWriter

__all__ = [
    "HEADER_ERROR",
    "HEADER_MODEL",
    "HEADER_OFFSET",
    "HEADER_PARTITION",
    "HEADER_SHA256",
    "HEADER_SIZE",
    "HEADER_TOPIC",
    "HEADER_VERSION",
    "ClientConfig",
    "DeadLetters",
    "Format",
    "Guarantee",
    "KafkaScorerError",
    "PredictionWriter",
    "ScoringLoop",
    "parse_properties",
]


def __getattr__(name: str) -> Any:
    if name == "Scorer":
        warnings.warn(
            "streamml.kafka.Scorer is deprecated; it is now called streamml.kafka.ScoringLoop (same arguments)",
            DeprecationWarning,
            stacklevel=2,
        )
        return ScoringLoop
    msg = f"module 'streamml.kafka' has no attribute {name!r}"
    raise AttributeError(msg)
