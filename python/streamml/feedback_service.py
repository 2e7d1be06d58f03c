"""``streamml feedback``: join predictions topics with a labels topic into the store, per model version.

A confluent-kafka consumer reads the topics (JSON messages), joins them a poll at a time with one
:class:`streamml.feedback.FeedbackJoin` per model version (:mod:`streamml.feedback_versions`: the
version a prediction's headers name, ``model``/``model_version`` for one without them; a
(version, event) prediction read twice, e.g. from ``streamml score``'s output and shadow topics,
is taken once), and writes predictions, labels (once each), feedback and quality, each row with
its version, into the store (bulk Arrow ingest, idempotent by key). A message that is
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

Restarts: every ``checkpoint_s`` seconds and at exit, every version's join state (pending
predictions within the TTL, tombstones, labelled ids, quality windows: the Rust join's checksummed
bytes) is saved in the store's ``checkpoints`` table in one row (model and version ``*``) together
with the offsets it covers —
one JSON document (:func:`encode_checkpoint`), never a pickle, so whoever can write the table
can corrupt the state (which is then refused) but cannot run code — and only then are those
offsets committed (a ``/1`` row of an earlier release, one join, is read as the fallback
version's). A restarted service restores that state and seeks to those offsets (not to
what the group committed), so every message changes the state exactly once, whatever the point
of the crash. One service per consumer group (the group is the checkpoint's shard).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import logging
import time
import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamml.errors import InputError, StreammlError
from streamml.feedback import MAX_FUTURE_SKEW_MS, FeedbackJoin, Fields, wall_clock_ms
from streamml.feedback_versions import JoinSettings, Key, VersionedJoins, version_of
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
log = logging.getLogger("streamml.feedback")
#: The checkpoint document: every version's join and the offsets they cover.
CHECKPOINT_FORMAT = "streamml.feedback_checkpoint/2"
#: The single-join document of earlier releases (still read: the fallback version's join).
CHECKPOINT_FORMAT_1 = "streamml.feedback_checkpoint/1"
#: ``(model, model_version)`` of the checkpoint row of every version (one row per consumer group).
CHECKPOINT_KEY = ("*", "*")


class FeedbackServiceError(StreammlError):
    """The service stopped without committing: the store or the broker refused a batch's work."""


def encode_checkpoint(joins: Mapping[Key, FeedbackJoin], offsets: dict[tuple[str, int], int]) -> str:
    """The checkpoint document: each version's join (field names, state bytes) and the offsets they cover.

    JSON text (the states base64-encoded): reading it back runs no code, and the state bytes
    carry their own CRC-32C (:meth:`streamml.feedback.FeedbackJoin.restore` refuses altered bytes).
    """
    versions = []
    for (model, version), join in sorted(joins.items()):
        snap = join.snapshot()
        versions.append(
            {
                "model": model,
                "version": version,
                "join_format": snap["format"],
                "fields": list(snap["fields"]),
                "state": base64.b64encode(snap["state"]).decode("ascii"),
            }
        )
    doc = {
        "format": CHECKPOINT_FORMAT,
        "versions": versions,
        "offsets": [[t, p, o] for (t, p), o in sorted(offsets.items())],
    }
    return json.dumps(doc, separators=(",", ":"))


def decode_checkpoint(
    text: str, where: str, fallback: Key = ("model", "0")
) -> tuple[dict[Key, FeedbackJoin], dict[tuple[str, int], int]]:
    """Each version's join and the offsets of :func:`encode_checkpoint` text; ``where`` names the row in errors.

    A ``streamml.feedback_checkpoint/1`` document (one join, from an earlier release) is read as
    the join of the ``fallback`` version.

    Raises:
        InputError: the text is not such a document (e.g. a pickle written by an older streamml),
            or its state bytes are refused.
    """

    def bad(why: str) -> InputError:
        return InputError(
            f"feedback service: the checkpoint {where} cannot be read: {why}; expected a {CHECKPOINT_FORMAT} "
            f"(or {CHECKPOINT_FORMAT_1}) JSON document; delete that row to start the join afresh (the service "
            "then re-reads what the group has not committed)"
        )

    try:
        doc = json.loads(text)
    except (ValueError, TypeError) as e:
        raise bad(f"it is not JSON ({e}; a checkpoint written with pickle by an older streamml is not read)") from e
    if not isinstance(doc, dict) or doc.get("format") not in (CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_1):
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise bad(f"its format is {got!r}")
    offsets = doc.get("offsets")
    if not isinstance(offsets, list) or not all(
        isinstance(o, list)
        and len(o) == 3
        and isinstance(o[0], str)
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in o[1:])
        for o in offsets
    ):
        raise bad("'offsets' is not a list of [topic, partition, offset] with non-negative integers")
    if doc["format"] == CHECKPOINT_FORMAT_1:
        entries, what = [dict(doc, model=fallback[0], version=fallback[1])], ""
    else:
        entries = doc.get("versions")
        if not isinstance(entries, list) or not all(isinstance(v, dict) for v in entries):
            raise bad("'versions' is not a list of objects")
    joins: dict[Key, FeedbackJoin] = {}
    for i, entry in enumerate(entries):
        model, version = entry.get("model"), entry.get("version")
        what = "" if doc["format"] == CHECKPOINT_FORMAT_1 else f"version {i}: "
        if not (isinstance(model, str) and isinstance(version, str)):
            raise bad(f"{what}'model' and 'version' are {model!r} and {version!r}, not strings")
        if (model, version) in joins:
            raise bad(f"{what}model {model} version {version} is listed twice")
        joins[(model, version)] = _join(entry, what, bad)
    return joins, {(t, p): o for t, p, o in offsets}


def _join(entry: dict, what: str, bad: Callable[[str], InputError]) -> FeedbackJoin:
    fields, state = entry.get("fields"), entry.get("state")
    n_fields = len(dataclasses.fields(Fields))
    if not (isinstance(fields, list) and len(fields) == n_fields and all(isinstance(f, str) for f in fields)):
        raise bad(f"{what}'fields' is {fields!r}, not {n_fields} names")
    try:
        raw = base64.b64decode(state, validate=True) if isinstance(state, str) else None
    except (binascii.Error, ValueError) as e:
        raise bad(f"{what}'state' is not base64 ({e})") from e
    if raw is None:
        raise bad(f"{what}'state' is missing")
    try:
        return FeedbackJoin.restore({"format": entry.get("join_format"), "fields": tuple(fields), "state": raw})
    except InputError as e:
        raise bad(f"{what}{e}") from e


@dataclass
class Saved:
    """A restored checkpoint: the joins, the offsets they cover, and the row's key.

    Attributes:
        joins: each version's join.
        offsets: ``{(topic, partition): next offset}``.
        legacy: the ``(model, model_version)`` of the ``/1`` row it came from (``None``: the ``/2`` row).
    """

    joins: dict[Key, FeedbackJoin]
    offsets: dict[tuple[str, int], int]
    legacy: Key | None = None


def load_checkpoint(store: Store, group_id: str, fallback: Key) -> Saved | None:
    """The last saved joins and offsets of ``group_id``, or None.

    The row of every version (``model_version`` ``*``) first; else the single-join row an
    earlier release saved under the fallback model and version.
    """
    rows = {
        (r["model"], r["model_version"]): r["state"]
        for r in store.read("checkpoints").to_pylist()
        if (r["service"], r["shard"]) == (SERVICE, group_id)
    }
    for key, legacy in ((CHECKPOINT_KEY, None), (fallback, fallback)):
        if key in rows:
            where = f"of service {SERVICE}, model {key[0]} {key[1]}, group {group_id} in {store.uri}"
            joins, offsets = decode_checkpoint(rows[key], where, fallback)
            return Saved(joins, offsets, legacy)
    return None


def save_checkpoint(
    store: Store,
    group_id: str,
    joins: Mapping[Key, FeedbackJoin],
    offsets: dict,
    legacy: Key | None = None,
) -> None:
    """Save every version's state and the offsets they cover: one row (one transaction), replacing the last.

    ``legacy``: the key of a ``/1`` row the state was restored from; it gets the same document
    in the same write, so it never holds an older state than the row of every version.
    """
    import pyarrow as pa

    text = encode_checkpoint(joins, offsets)
    keys = [CHECKPOINT_KEY] if legacy is None else [CHECKPOINT_KEY, legacy]
    row = {
        "service": [SERVICE] * len(keys),
        "model": [k[0] for k in keys],
        "model_version": [k[1] for k in keys],
        "shard": [group_id] * len(keys),
        "saved_at": pa.array([int(time.time() * 1000)] * len(keys), pa.int64()),
        "state": [text] * len(keys),
    }
    store.write("checkpoints", pa.table(row))


@dataclass
class FeedbackStats:
    """What one run of the service did.

    Attributes:
        predictions: prediction rows stored.
        labels: label rows stored.
        feedback: joined rows stored (one per version that had the event's prediction).
        duplicates: predictions not taken because their (version, event id) was taken before
            (e.g. the champion's on both the output and the shadow topic).
        dead_letters: messages that could not be read, plus rows refused as future.
        refused: of those, the rows refused as future (``future_labels``/``future_predictions``).
        store_retries: store writes that failed and were tried again.
        errors: the reason of every dead letter.
    """

    predictions: int = 0
    labels: int = 0
    feedback: int = 0
    duplicates: int = 0
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
        #: The headers of a letter of no particular version (the fallback's).
        self.headers = [] if writer is None else list(writer.headers)
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

    def send(self, message: Any, reason: str, version: Key | None = None) -> None:
        """Dead-letter ``message`` for ``reason``, with ``version``'s headers (default the fallback's)."""
        self.stats.dead_letters += 1
        self.stats.errors.append(reason)
        if self.producer is not None and self.writer is not None:
            self.writer.headers = self.headers if version is None else model_headers(*version)
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


def _rows(
    messages: list[Any], needed: tuple[str, ...], dead: DeadLetters, version: Key | None = None
) -> tuple[list[list], list[Any]]:
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
            dead.send(m, f"topic {m.topic()} partition {m.partition()} offset {m.offset()}: {e}", version)
            continue
        if not -(2**63) <= row[1] < 2**63:
            reason = f"topic {m.topic()} partition {m.partition()} offset {m.offset()}: {needed[1]} out of int64"
            dead.send(m, reason, version)
            continue
        rows.append(row)
        kept.append(m)
    return rows, kept


def _numbered(rows: list[list], names: tuple[str, ...]) -> Any:
    """``_rows``' rows as a table: id, an int64 time and a float64 value under ``names``, and ``__row``."""
    import pyarrow as pa

    ids, times, values = zip(*rows, strict=True)
    return pa.table(
        {
            names[0]: list(ids),
            names[1]: pa.array(times, pa.int64()),
            names[2]: pa.array(values, pa.float64()),
            "__row": pa.array(range(len(rows)), pa.int64()),
        }
    )


def _refusals(joins: list[FeedbackJoin]) -> dict[int, str]:
    """The rows the joins refused as future (``__row`` -> the first join's reason)."""
    out: dict[int, str] = {}
    for join in joins:
        for r in join.take_refused():
            for row, reason in zip(r.rows.column("__row").to_pylist(), r.reasons, strict=True):
                out.setdefault(row, reason)
    return out


def _dead_letter(refused: dict[int, str], messages: list[Any], dead: DeadLetters, version: Key | None) -> None:
    for row, reason in sorted(refused.items()):
        m = messages[row]
        dead.send(m, f"topic {m.topic()} partition {m.partition()} offset {m.offset()}: {reason}", version)
        dead.stats.refused += 1


def _without(table: Any, rows: Collection[int]) -> Any:
    import pyarrow as pa

    table = table.drop_columns(["__row"])
    if not rows:
        return table
    return table.take(pa.array([i for i in range(table.num_rows) if i not in rows], pa.int64()))


def _tagged(table: Any, key: Key) -> Any:
    import pyarrow as pa

    n = table.num_rows
    return table.append_column("model", pa.array([key[0]] * n, pa.string())).append_column(
        "model_version", pa.array([key[1]] * n, pa.string())
    )


def _predictions(
    joins: VersionedJoins, groups: dict[Key, list[Any]], f: Fields, window_ms: int, now: int, dead: DeadLetters
) -> tuple[Any, int]:
    """Each version's predictions into its join; returns the ``predictions`` rows (or None) and their count."""
    import pyarrow as pa
    import pyarrow.compute as pc

    tables = []
    for key, group in groups.items():
        preds, kept = _rows(group, (f.id, f.event_time, f.score), dead, key)
        if not preds:
            continue
        fresh = joins.take_predictions(key, [p[0] for p in preds])
        if len(fresh) < len(preds):
            preds, kept = [preds[r] for r in fresh], [kept[r] for r in fresh]
            if not preds:
                continue
        table = _numbered(preds, (f.id, f.event_time, f.score))
        join = joins.version(key).join
        join.add_predictions(table, now=now)
        refused = _refusals([join])
        _dead_letter(refused, kept, dead, key)
        table = _without(table, refused)
        t = table.column(f.event_time)
        rows = pa.table(
            {
                "event_id": table.column(f.id),
                "event_time": t,
                "window_start": pc.multiply(pc.divide(t, window_ms), window_ms),
                "score": table.column(f.score),
                "prediction": pc.cast(pc.greater_equal(table.column(f.score), 0.5), pa.float64()),
            }
        )
        tables.append(_tagged(rows, key))
    if not tables:
        return None, 0
    out = pa.concat_tables(tables)
    return out, out.num_rows


def _labels(joins: VersionedJoins, messages: list[Any], f: Fields, now: int, dead: DeadLetters) -> tuple[Any, Any, int]:
    """The labels to every live version's join; returns the ``labels`` rows, ``feedback`` rows (or None), label count.

    A label refused as future by a join is dead-lettered once and left out of ``labels``; with no
    live version, a join of the settings checks the wall-clock cap alone.
    """
    import pyarrow as pa

    labs, kept = _rows(messages, (f.id, f.label_time, f.label), dead)
    if not labs:
        return None, None, 0
    table = _numbered(labs, (f.id, f.label_time, f.label))
    live = joins.live()
    targets = [v.join for v in live] or [joins.settings.new()]
    feedback = []
    for v, join in zip(live or [None], targets, strict=True):
        fb = join.add_labels(table, now=now)
        if v is not None and fb.num_rows:
            feedback.append(_tagged(fb, (v.model, v.version)))
    refused = _refusals(targets)
    _dead_letter(refused, kept, dead, None)
    table = _without(table, refused)
    stored = pa.table(
        {"event_id": table.column(f.id), "label_time": table.column(f.label_time), "label": table.column(f.label)}
    )
    return stored, (pa.concat_tables(feedback) if feedback else None), table.num_rows


def _quality(joins: VersionedJoins, group_id: str) -> Any:
    """The ``quality`` rows of the windows each version revised since the last call (or None)."""
    import pyarrow as pa

    models, versions, starts, metrics, values = [], [], [], [], []
    for v in joins.versions.values():
        rows = v.join.quality_rows(v.join.take_touched())
        if not rows:
            continue
        models += [v.model] * len(rows)
        versions += [v.version] * len(rows)
        for start, metric, value in rows:
            starts.append(start)
            metrics.append(metric)
            values.append(value)
    if not starts:
        return None
    k = len(starts)
    return pa.table(
        {
            "model": models,
            "model_version": versions,
            "window_start": pa.array(starts, pa.int64()),
            "shard": [group_id] * k,
            "metric": metrics,
            "value": pa.array(values, pa.float64()),
        }
    )


def run(
    bootstrap_servers: str,
    predictions_topic: str | Sequence[str],
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

    ``predictions_topic`` is one topic or several (e.g. ``streamml score``'s output topic and its
    shadow topic): each prediction is joined by the version its headers name (``model`` and
    ``model_version`` for one without them; :mod:`streamml.feedback_versions`).
    ``bootstrap_servers``, ``group_id``, ``dlq_topic`` and ``config`` (librdkafka properties,
    ``consumer.``/``producer.`` prefixed for one client) mean what they mean to
    :class:`streamml.kafka.ScoringLoop`; ``dead_letter_topic`` is the old name of ``dlq_topic``
    (deprecated; removed in the next release).

    Raises:
        FeedbackServiceError: the store or the dead-letter topic failed; nothing after the last
            checkpoint was committed.
        InputError: the labels topic is also a predictions topic.
    """
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

    if dead_letter_topic is not None:
        warnings.warn(
            "feedback_service.run(dead_letter_topic=...) is deprecated; use dlq_topic=...", DeprecationWarning, 2
        )
        dlq_topic = dlq_topic or dead_letter_topic
    pred_topics = [predictions_topic] if isinstance(predictions_topic, str) else list(dict.fromkeys(predictions_topic))
    if not pred_topics or labels_topic in pred_topics:
        msg = (
            f"feedback service: the labels topic '{labels_topic}' must not be a predictions topic ({pred_topics}), "
            "and at least one predictions topic is needed"
        )
        raise InputError(msg)
    f = fields or Fields()
    fallback = (model, model_version)
    settings = JoinSettings(ttl_ms, window_ms, f, max_future_skew_ms, max_watermark_jump_ms)
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
        dead.producer, dead.writer, dead.headers = producer, writer, list(writer.headers)
    consumer = Consumer(clients.consumer())
    last = time.monotonic()
    try:
        with Store(store_uri) as store:
            saved = load_checkpoint(store, group_id, fallback)
            joins = VersionedJoins(settings, fallback)
            positions: dict[tuple[str, int], int] = {}
            legacy = None
            if saved is not None:
                joins = VersionedJoins.restore(settings, fallback, saved.joins)
                positions, legacy = saved.offsets, saved.legacy

            def on_assign(c: Any, partitions: list[Any]) -> None:
                for p in partitions:
                    at = positions.get((p.topic, p.partition))
                    if at is not None:
                        p.offset = at  # where the restored state ends
                c.assign(partitions)

            def checkpoint() -> None:
                # Every version's state and the offsets it covers in one row first, then the commit.
                _retry(
                    lambda: save_checkpoint(store, group_id, joins.joins(), positions, legacy),
                    "the checkpoint",
                    store,
                    store_retry_s,
                    stats,
                )
                if positions:
                    tps = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
                    try:
                        consumer.commit(offsets=tps, asynchronous=False)
                    except KafkaException as e:
                        # E.g. a rebalance (a crashed member leaving): the checkpoint row holds the offsets
                        # (a restart seeks to them); the next checkpoint commits again.
                        log.warning("feedback service: the offset commit failed (%s); the checkpoint has them", e)

            consumer.subscribe([*pred_topics, labels_topic], on_assign=on_assign)
            saved_at = time.monotonic()
            while idle_exit_s is None or time.monotonic() - last < idle_exit_s:
                if time.monotonic() - saved_at >= checkpoint_s:
                    checkpoint()
                    saved_at = time.monotonic()
                messages = [m for m in consumer.consume(batch_size, 0.5) if m.error() is None]
                if not messages:
                    continue
                last = time.monotonic()
                now = wall_clock_ms()
                groups: dict[Key, list[Any]] = {}
                labels = []
                for m in messages:
                    if m.topic() == labels_topic:
                        labels.append(m)
                    else:
                        groups.setdefault(version_of(m.headers(), fallback), []).append(m)
                writes: list[tuple[str, Any]] = []
                duplicates = joins.duplicates
                preds, n = _predictions(joins, groups, f, window_ms, now, dead)
                if preds is not None:
                    writes.append(("predictions", preds))
                stats.predictions += n
                stats.duplicates += joins.duplicates - duplicates
                stored, fb, n = _labels(joins, labels, f, now, dead)
                if stored is not None:
                    writes.append(("labels", stored))
                    stats.labels += n
                if fb is not None:
                    writes.append(("feedback", fb))
                    stats.feedback += fb.num_rows
                quality = _quality(joins, group_id)
                if quality is not None:
                    writes.append(("quality", quality))
                dead.confirm()
                write_with_retry(store, writes, store_retry_s, stats)
                # Only now is the batch done: the next checkpoint may cover (and commit) it.
                for m in messages:
                    positions[(m.topic(), m.partition())] = m.offset() + 1
            checkpoint()
    finally:
        consumer.close()
    return stats
