"""A Bytewax dataflow that scores JSON events from Kafka with a model binary.

JSON events from a topic → ``streamml.bytewax.predict`` (micro-batches per
partition: 512 rows or 5 ms, whichever comes first) → JSON predictions to
another topic. Events that cannot be scored (not JSON, not an object, a
missing field, a wrong type) go to a dead-letter topic with the reason and
where they came from; the rest keeps flowing.

Run it (see README.md in this folder)::

    STREAMML_MODEL=model.so python -m bytewax.run examples/kafka/bytewax_flow.py

Settings (environment):
    STREAMML_MODEL: the model binary (required).
    STREAMML_KAFKA_BOOTSTRAP: brokers, comma-separated (default ``127.0.0.1:19092``).
    STREAMML_IN_TOPIC / STREAMML_OUT_TOPIC / STREAMML_DLQ_TOPIC: the topics
        (default ``events`` / ``predictions`` / ``events-dlq``).
    STREAMML_TAIL: ``0`` to stop at the end of the input topic instead of waiting for more.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from typing import Any

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSinkMessage, KafkaSourceMessage
from bytewax.connectors.kafka import operators as kop
from bytewax.dataflow import Dataflow

from streamml.bytewax import PredictFailure, predict

BROKERS = os.environ.get("STREAMML_KAFKA_BOOTSTRAP", "127.0.0.1:19092").split(",")
IN_TOPIC = os.environ.get("STREAMML_IN_TOPIC", "events")
OUT_TOPIC = os.environ.get("STREAMML_OUT_TOPIC", "predictions")
DLQ_TOPIC = os.environ.get("STREAMML_DLQ_TOPIC", "events-dlq")
TAIL = os.environ.get("STREAMML_TAIL", "1") != "0"


def where(msg: KafkaSourceMessage) -> str:
    """``topic[partition]@offset``, for dead letters."""
    return f"{msg.topic}[{msg.partition}]@{msg.offset}"


def decode(msg: KafkaSourceMessage) -> Any:
    """``(partition, event)`` for a JSON object; a ``PredictFailure`` for anything else."""
    try:
        event = json.loads(msg.value)
    except (TypeError, ValueError) as e:
        return PredictFailure(msg.value, f"{where(msg)}: not JSON; {e}")
    if not isinstance(event, dict):
        return PredictFailure(event, f"{where(msg)}: expected a JSON object, got {type(event).__name__}")
    # Batches are per key: keying by partition batches well and keeps each partition's order.
    return (str(msg.partition), event)


def prediction(key_event: tuple[str, dict]) -> KafkaSinkMessage:
    """A scored event as a JSON message, keyed by its ``id`` when it has one."""
    _, event = key_event
    key = str(event["id"]).encode() if "id" in event else None
    return KafkaSinkMessage(key, json.dumps(event).encode())


def dead_letter(failure: PredictFailure) -> KafkaSinkMessage:
    """A refused event with the reason."""
    item = failure.item
    if isinstance(item, bytes):
        item = item.decode("utf-8", "replace")
    return KafkaSinkMessage(None, json.dumps({"reason": failure.reason, "item": item}, default=str).encode())


def build(model: str | None = None) -> Dataflow:
    """The dataflow; ``model`` defaults to ``$STREAMML_MODEL``."""
    model = model or os.environ["STREAMML_MODEL"]
    flow = Dataflow("streamml_kafka_bytewax")
    source = kop.input("kafka_in", flow, brokers=BROKERS, topics=[IN_TOPIC], tail=TAIL)
    decoded = op.map("decode", source.oks, decode)
    split = op.branch("json_ok", decoded, PredictFailure.__instancecheck__)
    scored = predict("score", split.falses, model, max_batch_rows=512, max_wait=timedelta(milliseconds=5))
    kop.output("predictions", op.map("encode", scored.oks, prediction), brokers=BROKERS, topic=OUT_TOPIC)
    broken = op.map("kafka_errors", source.errs, lambda e: PredictFailure(None, f"kafka error: {e.err}"))
    failures = op.merge("failures", split.trues, scored.errs, broken)
    kop.output("dead_letters", op.map("dlq", failures, dead_letter), brokers=BROKERS, topic=DLQ_TOPIC)
    return flow


if "STREAMML_MODEL" in os.environ:
    flow = build()
