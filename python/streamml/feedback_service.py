"""``streamml feedback``: join a predictions topic with a labels topic into the store.

A confluent-kafka consumer reads both topics (JSON messages), joins them with
:class:`streamml.feedback.FeedbackJoin` a poll at a time, and writes predictions, labels,
feedback and quality into the store (bulk Arrow ingest, idempotent by key). Offsets are
committed only after the store has the rows (at-least-once; a replay changes nothing in the
store). A message that is not a JSON object with the needed fields goes to the dead-letter
topic (if given) with the reason in its ``error`` header, and is counted; the rest keeps
flowing.

Restarts: every ``checkpoint_s`` seconds and at exit, the join's state (pending predictions
within the TTL, tombstones, quality windows) is saved in the store's ``checkpoints`` table in
one row with the offsets it covers, and then those offsets are committed. A restarted service
restores that state and seeks to those offsets (not to what the group committed), so every
message changes the state exactly once, whatever the point of the crash; the messages after
the checkpoint are read again, and their rows in the event tables are written again unchanged.
One service per consumer group (the group is the checkpoint's shard).
"""

from __future__ import annotations

import base64
import json
import pickle
import time
from dataclasses import dataclass, field
from typing import Any

from streamml.feedback import FeedbackJoin, Fields
from streamml.store import Store

#: Seconds between two checkpoints of the join's state (and offset commits).
CHECKPOINT_S = 5.0
SERVICE = "feedback"


def load_checkpoint(store: Store, group_id: str, model: str, model_version: str) -> dict[str, Any] | None:
    """The last saved ``{"join": snapshot, "offsets": {(topic, partition): next offset}}``, or None."""
    rows = store.read("checkpoints").to_pylist()
    for r in rows:
        if (r["service"], r["model"], r["model_version"], r["shard"]) == (SERVICE, model, model_version, group_id):
            return pickle.loads(base64.b64decode(r["state"]))  # written by this service (docs/store.md)
    return None


def save_checkpoint(
    store: Store, group_id: str, model: str, model_version: str, join: FeedbackJoin, offsets: dict
) -> None:
    """Save the join's state and the offsets it covers (one row, replacing the last)."""
    import pyarrow as pa

    state = base64.b64encode(pickle.dumps({"join": join.snapshot(), "offsets": dict(offsets)})).decode()
    row = {
        "service": [SERVICE],
        "model": [model],
        "model_version": [model_version],
        "shard": [group_id],
        "saved_at": pa.array([int(time.time() * 1000)], pa.int64()),
        "state": [state],
    }
    store.write("checkpoints", pa.table(row))


@dataclass
class FeedbackStats:
    """What one run of the service did."""

    predictions: int = 0
    labels: int = 0
    feedback: int = 0
    dead_letters: int = 0
    errors: list[str] = field(default_factory=list)


def _rows(messages: list[Any], needed: tuple[str, ...], stats: FeedbackStats, dlq: Any, dlq_topic: str | None) -> list:
    rows = []
    for m in messages:
        try:
            value = json.loads(m.value())
            if not isinstance(value, dict):
                msg = f"expected a JSON object, got {type(value).__name__}"
                raise ValueError(msg)
            missing = [k for k in needed if value.get(k) is None]
            if missing:
                msg = f"lacks the field(s) {missing}"
                raise ValueError(msg)
            rows.append(value)
        except (ValueError, TypeError) as e:
            reason = f"topic {m.topic()} partition {m.partition()} offset {m.offset()}: {e}"
            stats.dead_letters += 1
            stats.errors.append(reason)
            if dlq is not None and dlq_topic:
                dlq.produce(dlq_topic, m.value(), key=m.key(), headers={"error": reason})
    return rows


def run(
    bootstrap: str,
    predictions_topic: str,
    labels_topic: str,
    store_uri: str,
    *,
    group_id: str = "streamml-feedback",
    fields: Fields | None = None,
    ttl_ms: int = 3_600_000,
    window_ms: int = 300_000,
    model: str = "model",
    model_version: str = "0",
    dead_letter_topic: str | None = None,
    batch_size: int = 10_000,
    idle_exit_s: float | None = None,
    checkpoint_s: float = CHECKPOINT_S,
) -> FeedbackStats:
    """Run the service until interrupted (or idle for ``idle_exit_s``); returns its counts."""
    import pyarrow as pa
    from confluent_kafka import Consumer, Producer, TopicPartition

    f = fields or Fields()
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    dlq = Producer({"bootstrap.servers": bootstrap}) if dead_letter_topic else None
    stats = FeedbackStats()
    last = time.monotonic()
    try:
        with Store(store_uri) as store:
            saved = load_checkpoint(store, group_id, model, model_version)
            if saved is None:
                join, positions = FeedbackJoin(ttl=ttl_ms, window=window_ms, fields=f), {}
            else:
                join, positions = FeedbackJoin.restore(saved["join"]), dict(saved["offsets"])

            def on_assign(c: Any, partitions: list[Any]) -> None:
                for p in partitions:
                    at = positions.get((p.topic, p.partition))
                    if at is not None:
                        p.offset = at  # where the restored state ends
                c.assign(partitions)

            def checkpoint() -> None:
                save_checkpoint(store, group_id, model, model_version, join, positions)
                if positions:
                    tps = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
                    consumer.commit(offsets=tps, asynchronous=False)

            consumer.subscribe([predictions_topic, labels_topic], on_assign=on_assign)
            saved_at = time.monotonic()
            while idle_exit_s is None or time.monotonic() - last < idle_exit_s:
                if time.monotonic() - saved_at >= checkpoint_s:
                    checkpoint()
                    saved_at = time.monotonic()
                messages = [m for m in consumer.consume(batch_size, 0.5) if m.error() is None]
                if not messages:
                    continue
                last = time.monotonic()
                for m in messages:
                    positions[(m.topic(), m.partition())] = m.offset() + 1
                preds = _rows(
                    [m for m in messages if m.topic() == predictions_topic],
                    (f.id, f.event_time, f.score),
                    stats,
                    dlq,
                    dead_letter_topic,
                )
                labs = _rows(
                    [m for m in messages if m.topic() == labels_topic],
                    (f.id, f.label_time, f.label),
                    stats,
                    dlq,
                    dead_letter_topic,
                )
                if preds:
                    table = pa.table(
                        {
                            f.id: [str(r[f.id]) for r in preds],
                            f.event_time: pa.array([int(r[f.event_time]) for r in preds], pa.int64()),
                            f.score: pa.array([float(r[f.score]) for r in preds], pa.float64()),
                        }
                    )
                    join.add_predictions(table)
                    n = table.num_rows
                    t = table.column(f.event_time)
                    store.write(
                        "predictions",
                        pa.table(
                            {
                                "event_id": table.column(f.id),
                                "model": [model] * n,
                                "model_version": [model_version] * n,
                                "event_time": t,
                                "window_start": pa.compute.multiply(pa.compute.divide(t, window_ms), window_ms),
                                "score": table.column(f.score),
                                "prediction": pa.compute.cast(
                                    pa.compute.greater_equal(table.column(f.score), 0.5), pa.float64()
                                ),
                            }
                        ),
                    )
                    stats.predictions += n
                if labs:
                    table = pa.table(
                        {
                            f.id: [str(r[f.id]) for r in labs],
                            f.label_time: pa.array([int(r[f.label_time]) for r in labs], pa.int64()),
                            f.label: pa.array([float(r[f.label]) for r in labs], pa.float64()),
                        }
                    )
                    fb = join.add_labels(table)
                    store.write(
                        "labels",
                        pa.table(
                            {
                                "event_id": table.column(f.id),
                                "label_time": table.column(f.label_time),
                                "label": table.column(f.label),
                            }
                        ),
                    )
                    if fb.num_rows:
                        n = fb.num_rows
                        fb = fb.append_column("model", pa.array([model] * n)).append_column(
                            "model_version", pa.array([model_version] * n)
                        )
                        store.write("feedback", fb)
                    stats.labels += table.num_rows
                    stats.feedback += fb.num_rows
                rows = join.quality_rows(join.take_touched())
                if rows:
                    k = len(rows)
                    store.write(
                        "quality",
                        pa.table(
                            {
                                "model": [model] * k,
                                "model_version": [model_version] * k,
                                "window_start": pa.array([r[0] for r in rows], pa.int64()),
                                "shard": [group_id] * k,
                                "metric": [r[1] for r in rows],
                                "value": pa.array([r[2] for r in rows], pa.float64()),
                            }
                        ),
                    )
                if dlq is not None:
                    dlq.flush(10)
            checkpoint()
    finally:
        consumer.close()
    return stats
