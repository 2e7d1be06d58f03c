"""``streamml feedback``: join a predictions topic with a labels topic into the store.

A confluent-kafka consumer reads both topics (JSON messages), joins them with
:class:`streamml.feedback.FeedbackJoin` a poll at a time, and writes predictions, labels,
feedback and quality into the store (bulk Arrow ingest, idempotent by key). A message that is
not a JSON object with the needed fields, and a row the join refuses as stamped too far in the
future (``max_future_skew``, ``max_watermark_jump``), goes to the dead-letter topic (if given),
and is counted; the rest keeps flowing. The clients, the dead letters and the store retry are
those of ``streamml score`` (:mod:`streamml.kafka`): the same ``-X`` librdkafka properties (so
TLS and SASL work), the same letter headers (``streamml.error`` with the reason,
``streamml.source.topic``/``.partition``/``.offset``, the model's name and version), the same
size limit, and the same retry of a failing store write.

Offsets are committed only for work that is done: a batch counts as done once every row of it
is in the store and every dead letter of it was acknowledged by the broker. A store write is
retried for ``store_retry_s`` seconds; after that, or when the broker refuses a dead letter, the
service stops (:class:`FeedbackServiceError`) without committing, and a restart reads the
batch again (a replay changes nothing in the store).

Restarts: every ``checkpoint_s`` seconds and at exit, the join's state (pending predictions
within the TTL, tombstones, labelled ids, quality windows: the Rust join's checksummed bytes)
is saved in the store's ``checkpoints`` table in one row together with the offsets it covers —
one JSON document (:func:`encode_checkpoint`), never a pickle, so whoever can write the table
can corrupt the state (which is then refused) but cannot run code — and only then are those
offsets committed. A restarted service restores that state and seeks to those offsets (not to
what the group committed), so every message changes the state exactly once, whatever the point
of the crash. One service per consumer group (the group is the checkpoint's shard).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streamml.errors import InputError, StreammlError
from streamml.feedback import MAX_FUTURE_SKEW_MS, FeedbackJoin, Fields
from streamml.kafka.config import ClientConfig, message_limit
from streamml.kafka.dlq import HEADER_ERROR, RECORD_OVERHEAD, model_headers
from streamml.kafka.dlq import DeadLetters as DeadLetterWriter
from streamml.kafka.sinks import with_retry
from streamml.store import Store

#: Seconds between two checkpoints of the join's state (and offset commits).
CHECKPOINT_S = 5.0
#: Seconds a failing store write is retried before the service stops.
STORE_RETRY_S = 30.0
SERVICE = "feedback"
CHECKPOINT_FORMAT = "streamml.feedback_checkpoint/1"


class FeedbackServiceError(StreammlError):
    """The service stopped without committing: the store or the broker refused a batch's work."""


def encode_checkpoint(join: FeedbackJoin, offsets: dict[tuple[str, int], int]) -> str:
    """The checkpoint document: the join's field names and state bytes, and the offsets it covers.

    JSON text (the state base64-encoded): reading it back runs no code, and the state bytes
    carry their own CRC-32C (:meth:`streamml.feedback.FeedbackJoin.restore` refuses altered bytes).
    """
    snap = join.snapshot()
    doc = {
        "format": CHECKPOINT_FORMAT,
        "join_format": snap["format"],
        "fields": list(snap["fields"]),
        "state": base64.b64encode(snap["state"]).decode("ascii"),
        "offsets": [[t, p, o] for (t, p), o in sorted(offsets.items())],
    }
    return json.dumps(doc, separators=(",", ":"))


def decode_checkpoint(text: str, where: str) -> tuple[FeedbackJoin, dict[tuple[str, int], int]]:
    """The join and offsets of :func:`encode_checkpoint` text; ``where`` names the row in errors.

    Raises:
        InputError: the text is not such a document (e.g. a pickle written by an older streamml),
            or its state bytes are refused.
    """

    def bad(why: str) -> InputError:
        return InputError(
            f"feedback service: the checkpoint {where} cannot be read: {why}; expected a {CHECKPOINT_FORMAT} "
            "JSON document; delete that row to start the join afresh (the service then re-reads what the "
            "group has not committed)"
        )

    try:
        doc = json.loads(text)
    except (ValueError, TypeError) as e:
        raise bad(f"it is not JSON ({e}; a checkpoint written with pickle by an older streamml is not read)") from e
    if not isinstance(doc, dict) or doc.get("format") != CHECKPOINT_FORMAT:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise bad(f"its format is {got!r}")
    fields, state, offsets = doc.get("fields"), doc.get("state"), doc.get("offsets")
    n_fields = len(dataclasses.fields(Fields))
    if not (isinstance(fields, list) and len(fields) == n_fields and all(isinstance(f, str) for f in fields)):
        raise bad(f"'fields' is {fields!r}, not {n_fields} names")
    if not isinstance(offsets, list) or not all(
        isinstance(o, list)
        and len(o) == 3
        and isinstance(o[0], str)
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in o[1:])
        for o in offsets
    ):
        raise bad("'offsets' is not a list of [topic, partition, offset] with non-negative integers")
    try:
        raw = base64.b64decode(state, validate=True) if isinstance(state, str) else None
    except (binascii.Error, ValueError) as e:
        raise bad(f"'state' is not base64 ({e})") from e
    if raw is None:
        raise bad("'state' is missing")
    join = FeedbackJoin.restore({"format": doc.get("join_format"), "fields": tuple(fields), "state": raw})
    return join, {(t, p): o for t, p, o in offsets}


def load_checkpoint(
    store: Store, group_id: str, model: str, model_version: str
) -> tuple[FeedbackJoin, dict[tuple[str, int], int]] | None:
    """The last saved join and the offsets it covers (``{(topic, partition): next offset}``), or None."""
    for r in store.read("checkpoints").to_pylist():
        if (r["service"], r["model"], r["model_version"], r["shard"]) == (SERVICE, model, model_version, group_id):
            where = f"of service {SERVICE}, model {model} {model_version}, group {group_id} in {store.uri}"
            return decode_checkpoint(r["state"], where)
    return None


def save_checkpoint(
    store: Store, group_id: str, model: str, model_version: str, join: FeedbackJoin, offsets: dict
) -> None:
    """Save the join's state and the offsets it covers (one row, replacing the last; one transaction)."""
    import pyarrow as pa

    row = {
        "service": [SERVICE],
        "model": [model],
        "model_version": [model_version],
        "shard": [group_id],
        "saved_at": pa.array([int(time.time() * 1000)], pa.int64()),
        "state": [encode_checkpoint(join, offsets)],
    }
    store.write("checkpoints", pa.table(row))


@dataclass
class FeedbackStats:
    """What one run of the service did.

    Attributes:
        predictions: prediction rows stored.
        labels: label rows stored.
        feedback: joined rows stored.
        dead_letters: messages that could not be read, plus rows refused as future.
        refused: of those, the rows refused as future (``future_labels``/``future_predictions``).
        store_retries: store writes that failed and were tried again.
        errors: the reason of every dead letter.
    """

    predictions: int = 0
    labels: int = 0
    feedback: int = 0
    dead_letters: int = 0
    refused: int = 0
    store_retries: int = 0
    errors: list[str] = field(default_factory=list)


class DeadLetters:
    """Dead letters of one batch: produced like ``streamml score``'s, then confirmed by the broker.

    Args:
        producer: a confluent-kafka ``Producer`` (``None``: letters are only counted).
        writer: the dead-letter writer (topic, headers, size limit); ``None`` with no producer.
        stats: where letters are counted.
    """

    def __init__(self, producer: Any, writer: DeadLetterWriter | None, stats: FeedbackStats) -> None:
        """Nothing sent yet."""
        self.producer, self.writer, self.stats = producer, writer, stats
        #: Letters the broker refused (``on_delivery`` of the producer).
        self.failures: list[str] = []

    def on_delivery(self, err: Any, msg: Any) -> None:
        """The producer's delivery callback: keep what the broker refused."""
        if err is not None:
            headers = dict(msg.headers() or [])
            self.failures.append(f"{headers.get(HEADER_ERROR, b'').decode(errors='replace')}: {err}")

    def produce(self, topic: str, key: Any, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        """Produce one letter, waiting while the producer's queue is full."""
        while True:
            try:
                self.producer.produce(topic, value, key, headers=headers)
                break
            except BufferError:
                self.producer.poll(0.05)
        self.producer.poll(0)

    def send(self, message: Any, reason: str) -> None:
        """Dead-letter ``message`` (a consumed message) for ``reason``."""
        self.stats.dead_letters += 1
        self.stats.errors.append(reason)
        if self.producer is not None and self.writer is not None:
            self.writer.send(message, reason)

    def confirm(self, timeout_s: float = 30.0) -> None:
        """Wait until the broker acknowledged every letter sent.

        Raises:
            FeedbackServiceError: a letter was refused, or not acknowledged within ``timeout_s``.
        """
        if self.producer is None or self.writer is None:
            return
        left = self.producer.flush(timeout_s)
        if left or self.failures:
            msg = (
                f"feedback service: the dead-letter topic {self.writer.topic} did not acknowledge {left} message(s) "
                f"within {timeout_s} s and refused {len(self.failures)} ({self.failures[:3]}); stopped without "
                "committing the batch's offsets; check the topic and the broker, then restart (the batch is read again)"
            )
            self.failures = []
            raise FeedbackServiceError(msg)


def write_with_retry(store: Store, writes: list[tuple[str, Any]], retry_s: float, stats: FeedbackStats) -> None:
    """Write ``(table, rows)`` in order, retrying the failing write (idempotent) for ``retry_s`` seconds.

    Raises:
        FeedbackServiceError: a write still fails after ``retry_s``.
    """
    for table, rows in writes:
        _retry(lambda t=table, r=rows: store.write(t, r), f"the write of table '{table}'", store, retry_s, stats)


def _retry(action: Callable[[], None], what: str, store: Store, retry_s: float, stats: FeedbackStats) -> None:
    def count(_: Exception) -> None:
        stats.store_retries += 1

    try:
        with_retry(action, retry_s, on_retry=count)
    except Exception as e:
        msg = (
            f"feedback service: {what} to the store {store.uri} failed for {retry_s} s ({e}); stopped "
            "without committing the offsets of unstored work; restart once the store is back (the "
            "batch is read again)"
        )
        raise FeedbackServiceError(msg) from e


def _rows(messages: list[Any], needed: tuple[str, ...], dead: DeadLetters) -> tuple[list[dict], list[Any]]:
    rows, kept = [], []
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
            row = [str(value[needed[0]]), int(value[needed[1]]), float(value[needed[2]])]
        except (ValueError, TypeError, OverflowError) as e:
            dead.send(m, f"topic {m.topic()} partition {m.partition()} offset {m.offset()}: {e}")
            continue
        if not -(2**63) <= row[1] < 2**63:
            dead.send(m, f"topic {m.topic()} partition {m.partition()} offset {m.offset()}: {needed[1]} out of int64")
            continue
        rows.append(row)
        kept.append(m)
    return rows, kept


def _refused(join: FeedbackJoin, messages: list[Any], dead: DeadLetters) -> set[int]:
    """Dead-letter the rows the join refused (``messages`` in row order); returns their rows."""
    out: set[int] = set()
    for r in join.take_refused():
        rows = r.rows.column("__row").to_pylist()
        for row, reason in zip(rows, r.reasons, strict=True):
            m = messages[row]
            dead.send(m, f"topic {m.topic()} partition {m.partition()} offset {m.offset()}: {reason}")
            dead.stats.refused += 1
            out.add(row)
    return out


def _without(table: Any, rows: set[int]) -> Any:
    import pyarrow as pa

    table = table.drop_columns(["__row"])
    if not rows:
        return table
    return table.take(pa.array([i for i in range(table.num_rows) if i not in rows], pa.int64()))


def run(
    bootstrap_servers: str,
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
    dlq_topic: str | None = None,
    config: Mapping[str, str] | None = None,
    batch_size: int = 10_000,
    idle_exit_s: float | None = None,
    checkpoint_s: float = CHECKPOINT_S,
    max_future_skew_ms: int | None = MAX_FUTURE_SKEW_MS,
    max_watermark_jump_ms: int | None = None,
    store_retry_s: float = STORE_RETRY_S,
    dead_letter_topic: str | None = None,
) -> FeedbackStats:
    """Run the service until interrupted (or idle for ``idle_exit_s``); returns its counts.

    ``bootstrap_servers``, ``group_id``, ``dlq_topic`` and ``config`` (librdkafka properties,
    ``consumer.``/``producer.`` prefixed for one client) mean what they mean to
    :class:`streamml.kafka.ScoringLoop`; ``dead_letter_topic`` is the old name of ``dlq_topic``
    (deprecated; removed in the next release).

    Raises:
        FeedbackServiceError: the store or the dead-letter topic failed; nothing after the last
            checkpoint was committed.
    """
    import pyarrow as pa
    from confluent_kafka import Consumer, Producer, TopicPartition

    if dead_letter_topic is not None:
        warnings.warn(
            "feedback_service.run(dead_letter_topic=...) is deprecated; use dlq_topic=...", DeprecationWarning, 2
        )
        dlq_topic = dlq_topic or dead_letter_topic
    f = fields or Fields()
    clients = ClientConfig(bootstrap_servers, group_id, dict(config or {}))
    stats = FeedbackStats()
    dead = DeadLetters(None, None, stats)
    producer = None
    if dlq_topic:
        producer_config = clients.producer()
        writer = DeadLetterWriter(dlq_topic, model_headers(model, model_version), dead.produce)
        writer.max_bytes = message_limit(producer_config, [dlq_topic]) - RECORD_OVERHEAD
        producer_config["message.max.bytes"] = writer.max_bytes + RECORD_OVERHEAD - 128
        producer = Producer({**producer_config, "on_delivery": dead.on_delivery})
        dead.producer, dead.writer = producer, writer
    consumer = Consumer(clients.consumer())
    last = time.monotonic()
    try:
        with Store(store_uri) as store:
            saved = load_checkpoint(store, group_id, model, model_version)
            if saved is None:
                join = FeedbackJoin(
                    ttl=ttl_ms,
                    window=window_ms,
                    fields=f,
                    max_future_skew=max_future_skew_ms,
                    max_watermark_jump=max_watermark_jump_ms,
                )
                positions: dict[tuple[str, int], int] = {}
            else:
                join, positions = saved

            def on_assign(c: Any, partitions: list[Any]) -> None:
                for p in partitions:
                    at = positions.get((p.topic, p.partition))
                    if at is not None:
                        p.offset = at  # where the restored state ends
                c.assign(partitions)

            def checkpoint() -> None:
                # The state and the offsets it covers in one row first, then the commit.
                _retry(
                    lambda: save_checkpoint(store, group_id, model, model_version, join, positions),
                    "the checkpoint",
                    store,
                    store_retry_s,
                    stats,
                )
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
                writes: list[tuple[str, Any]] = []
                preds, pred_msgs = _rows(
                    [m for m in messages if m.topic() == predictions_topic], (f.id, f.event_time, f.score), dead
                )
                labs, lab_msgs = _rows(
                    [m for m in messages if m.topic() == labels_topic], (f.id, f.label_time, f.label), dead
                )
                if preds:
                    ids, times, scores = zip(*preds, strict=True)
                    table = pa.table(
                        {
                            f.id: list(ids),
                            f.event_time: pa.array(times, pa.int64()),
                            f.score: pa.array(scores, pa.float64()),
                            "__row": pa.array(range(len(preds)), pa.int64()),
                        }
                    )
                    join.add_predictions(table)
                    table = _without(table, _refused(join, pred_msgs, dead))
                    n = table.num_rows
                    t = table.column(f.event_time)
                    writes.append(
                        (
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
                    )
                    stats.predictions += n
                if labs:
                    ids, times, ys = zip(*labs, strict=True)
                    table = pa.table(
                        {
                            f.id: list(ids),
                            f.label_time: pa.array(times, pa.int64()),
                            f.label: pa.array(ys, pa.float64()),
                            "__row": pa.array(range(len(labs)), pa.int64()),
                        }
                    )
                    fb = join.add_labels(table)
                    table = _without(table, _refused(join, lab_msgs, dead))
                    writes.append(
                        (
                            "labels",
                            pa.table(
                                {
                                    "event_id": table.column(f.id),
                                    "label_time": table.column(f.label_time),
                                    "label": table.column(f.label),
                                }
                            ),
                        )
                    )
                    if fb.num_rows:
                        n = fb.num_rows
                        fb = fb.append_column("model", pa.array([model] * n)).append_column(
                            "model_version", pa.array([model_version] * n)
                        )
                        writes.append(("feedback", fb))
                    stats.labels += table.num_rows
                    stats.feedback += fb.num_rows
                rows = join.quality_rows(join.take_touched())
                if rows:
                    k = len(rows)
                    writes.append(
                        (
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
                    )
                dead.confirm()
                write_with_retry(store, writes, store_retry_s, stats)
                # Only now is the batch done: the next checkpoint may cover (and commit) it.
                for m in messages:
                    positions[(m.topic(), m.partition())] = m.offset() + 1
            checkpoint()
    finally:
        consumer.close()
    return stats
