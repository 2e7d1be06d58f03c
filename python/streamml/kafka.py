"""`Scorer`: score a Kafka topic into another one (``streamml score``).

A consumer-producer loop (confluent-kafka) around the Rust core: a micro-batch
of messages is decoded (JSON objects or Arrow IPC streams), scored and encoded
in one call with the GIL released (``_streamml.MessageScorer``), then each
output is produced with its input's key (so partitioning holds) and headers
naming the model, its version and SHA-256. A message that cannot be read or
scored goes to the dead-letter topic with its original key and bytes and
headers naming the error and where it came from; the rest keep flowing.

Delivery:

* ``at-least-once`` (default): the consumer's offsets are committed only after
  every output and dead letter of the batch has been acknowledged (``flush``)
  and, with ``store_predictions``, its predictions are in the store; a crash
  re-scores at most the batch in flight.
* ``exactly-once``: each batch is one Kafka transaction holding its outputs,
  its dead letters and its consumer offsets; read the output with
  ``isolation.level=read_committed``.

Commit only what was produced: when a batch cannot be finished (an output or
dead letter the broker refused, a model that fails on every message, a store
that stays down, a fatal Kafka error) the scorer stops without committing it
(exactly-once: the transaction is aborted) and :meth:`Scorer.run` raises
:class:`KafkaScorerError`; a restart scores it again. The statistics count
committed batches only. A message whose output or dead letter would exceed the
topic's message size limit goes to the dead-letter topic, truncated if need
be, with headers giving its original size, topic, partition and offset.

Batches follow the design's rule: a batch is scored when it holds
``max_batch_rows`` messages or when its oldest message has waited
``max_wait_ms`` since it arrived. Pending messages are scored before
partitions are revoked (rebalance) and on shutdown (``stop``, SIGTERM/SIGINT).
A batch is scored on a worker thread while the next one is being consumed (its
clock runs meanwhile); its outputs are produced and it is committed before the
next batch is scored, so one batch at most is in flight.
While the producer's queue is full the consumer is paused (backpressure).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from streamml import _streamml
from streamml.drift import DriftMonitor, DriftWindows
from streamml.errors import StreammlError
from streamml.kafka_store import PredictionWriter, score_and_label_fields, timestamp_ms
from streamml.model import Model

log = logging.getLogger("streamml.kafka")

Guarantee = Literal["at-least-once", "exactly-once"]
Format = Literal["json", "arrow"]

#: Headers on every output (and dead letter): the model that scored it.
HEADER_MODEL = "streamml.model"
HEADER_VERSION = "streamml.model.version"
HEADER_SHA256 = "streamml.model.sha256"
#: Headers on a dead letter: why, and where it came from.
HEADER_ERROR = "streamml.error"
HEADER_TOPIC = "streamml.source.topic"
HEADER_PARTITION = "streamml.source.partition"
HEADER_OFFSET = "streamml.source.offset"
#: Header on a truncated dead letter: the size (bytes) of the message it copies.
HEADER_SIZE = "streamml.source.size"


#: Messages scored per call of the Rust step: the next chunk is scored while one is produced.
SCORE_CHUNK = 250
#: While a batch is being scored, consume in slices this long (s) to produce its outputs promptly.
POLL_SLICE = 0.002
#: At most this long (seconds) between two exports of the drift windows.
DRIFT_FLUSH_S = 5.0
#: Seconds a transaction or commit call may take, and how much longer the watchdog waits before exiting.
TXN_TIMEOUT = 60.0
WATCHDOG_GRACE = 30.0
#: Bytes a record needs beyond its key, value and headers (batch and record framing), with room to spare:
#: outputs and dead letters are kept this far under the limit.
RECORD_OVERHEAD = 512
#: A dead letter's reason is cut to this many characters.
MAX_REASON = 2000
#: A batch whose messages all failed inside the model (at least this many) stops the scorer:
#: the model is failing, not the messages, and dead-lettering the whole stream would commit it.
MODEL_FAULT_ROWS = 32
#: Transactions aborted one after another before the scorer gives up (a batch that can never commit).
MAX_ABORTS_IN_A_ROW = 5
#: librdkafka's default ``message.max.bytes`` and Kafka's default topic ``max.message.bytes``.
DEFAULT_MESSAGE_MAX_BYTES = 1_000_000
DEFAULT_TOPIC_MAX_BYTES = 1_048_588
#: In a reason, the mark of a model that failed (``PredictError``'s text), not of a message that could not be read.
_MODEL_FAILED = " failed on a batch of "
#: Client properties an admin client shares with the producer (where the brokers are and how to reach them).
_ADMIN_KEYS = {"bootstrap.servers", "security.protocol", "client.id", "socket.timeout.ms", "broker.address.family"}


@dataclass
class _Scoring:
    """The batch being scored: its chunks' results (in order) and what has been produced so far."""

    batch: list[Any]
    chunks: deque[Future[Any]] = field(default_factory=deque)
    produced: int = 0
    dead: int = 0
    seconds: float = 0.0
    #: Set when an aborted transaction rewound this batch before it was produced.
    rewound: bool = False


class KafkaScorerError(StreammlError):
    """The scorer cannot go on (bad configuration, a fatal Kafka error)."""


class Scorer:
    """Score the messages of one topic into another, in micro-batches.

    Args:
        model: a :class:`~streamml.Model` or the path of a model binary.
        bootstrap_servers: the Kafka brokers (``host:port,...``).
        input_topic: the topic to read.
        output_topic: where the predictions go.
        group_id: the consumer group (scorers in one group share the partitions).
        format: ``json`` (one JSON object per message) or ``arrow`` (one Arrow IPC stream).
        id_field: a field (JSON) or column (Arrow) copied from each input to its output
            (first; left out of an output whose input lacks it).
        carry_fields: more input fields (JSON) or columns (Arrow) copied to each output, after
            the id field and before the predictions: JSON values as written in the input, Arrow
            columns as they are. A message without one gets ``null`` there (Arrow: a column of
            type null); it is not a reason to refuse the message, as these are not model inputs.
            A name that is also a model output, or given twice, is refused at start.
        max_batch_rows: score a batch once it holds this many messages.
        max_wait_ms: score a batch once its oldest message has waited this long.
        guarantee: ``at-least-once`` or ``exactly-once`` (Kafka transactions).
        dlq_topic: the dead-letter topic (default ``<input_topic>.dlq``).
        metrics_port: serve Prometheus metrics on this port (``None``: no server).
        transactional_id: the producer's transactional id (exactly-once). Keep it
            stable across restarts of one scorer so a restart fences its
            predecessor and aborts its open transaction at once; give every
            scorer of a group its own. Default: ``streamml-<group>-<group.instance.id>``
            when a static member id is configured, else a random one.
        config: librdkafka properties for both clients (``-X key=value``); a key
            prefixed ``consumer.`` or ``producer.`` goes to that client only.
        drift: keep drift counters (when the model carries a drift reference, from
            ``streamml compile --reference``): per window of message timestamps, inputs and
            outputs of every scored message, exported to Prometheus (PSI, missing and
            out-of-range rates per feature and score) and written to ``store``.
        drift_window_s: the drift window's length (seconds).
        store: a store URI (``sqlite:///path``, ``postgresql://...``, ``duckdb:...``): each
            window's cumulative counts go to its ``drift`` table (and the reference to
            ``drift_reference``), under this scorer's shard, every few seconds and at exit.
        store_predictions: also write every prediction to the store's ``predictions`` table
            (event id from ``id_field``, event time = the message's timestamp, ``score`` from
            ``score_field``, ``prediction`` from the ``label`` output if there is one), each batch
            before its offsets are committed (see :mod:`streamml.kafka_store`). Needs ``store``
            and ``id_field``.
        score_field: the output stored as ``score`` (default: the model's first output).
        missing_fields: ``"error"`` (default): a message without an input field goes to the
            dead-letter topic, naming the field (an explicit ``null`` is a missing value where
            the input is nullable); ``"null"``: an absent input field is read as null.
        watchdog: end the process (exit status 3) when a call to the group or transaction
            coordinator blocks well past its timeout, for a supervisor to restart it.
            librdkafka 2.16 can lose the coordinator for good once its broker went away
            (confluentinc/librdkafka#5456, #5511): exactly-once's ``send_offsets_to_transaction``
            and at-least-once's synchronous offset commit then never return. Exactly-once: the
            restarted scorer (same transactional id) aborts the open transaction, so nothing is
            duplicated; at-least-once: the batch whose commit hung is scored again (at most one
            batch of duplicates). ``streamml score`` sets it.
        store_retry_s: with ``store_predictions``, how long (seconds) a batch retries a store
            that cannot be written before the scorer stops without committing it.
    """

    def __init__(
        self,
        model: Model | str | os.PathLike[str],
        bootstrap_servers: str,
        input_topic: str,
        output_topic: str,
        *,
        group_id: str = "streamml-score",
        format: Format = "json",
        id_field: str | None = None,
        carry_fields: Sequence[str] = (),
        max_batch_rows: int = 1000,
        max_wait_ms: float = 50.0,
        guarantee: Guarantee = "at-least-once",
        dlq_topic: str | None = None,
        metrics_port: int | None = None,
        transactional_id: str | None = None,
        config: Mapping[str, str] | None = None,
        drift: bool = True,
        drift_window_s: float = 60.0,
        store: str | None = None,
        store_predictions: bool = False,
        score_field: str | None = None,
        watchdog: bool = False,
        store_retry_s: float = 30.0,
        missing_fields: str = "error",
    ) -> None:
        if guarantee not in ("at-least-once", "exactly-once"):
            msg = f"guarantee '{guarantee}' is not one of at-least-once, exactly-once"
            raise KafkaScorerError(msg)
        if max_batch_rows < 1:
            msg = f"max_batch_rows is {max_batch_rows}; it must be at least 1"
            raise KafkaScorerError(msg)
        if max_wait_ms < 0:
            msg = f"max_wait_ms is {max_wait_ms}; it must not be negative"
            raise KafkaScorerError(msg)
        self.model = model if isinstance(model, Model) else Model.load(model)
        self.input_topic = input_topic
        self.output_topic = output_topic
        self.dlq_topic = dlq_topic or f"{input_topic}.dlq"
        if len({input_topic, output_topic, self.dlq_topic}) < 3:
            msg = (
                f"input topic '{input_topic}', output topic '{output_topic}' and dead-letter topic "
                f"'{self.dlq_topic}' must all differ"
            )
            raise KafkaScorerError(msg)
        self.group_id = group_id
        self.format = format
        self.max_batch_rows = max_batch_rows
        self.max_wait = max_wait_ms / 1000.0
        self.guarantee = guarantee
        self.metrics_port = metrics_port
        if isinstance(carry_fields, str):
            msg = f"carry_fields is the string {carry_fields!r}; pass a list of field names"
            raise KafkaScorerError(msg)
        self.carry_fields = list(carry_fields)
        self._codec = _streamml.MessageScorer.create(
            self.model._inner, format, id_field, self.carry_fields, missing_fields
        )
        common, consumer_only, producer_only = _split_config(config or {})
        self._consumer_config = {
            "bootstrap.servers": bootstrap_servers,
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            **common,
            **consumer_only,
        }
        self._producer_config: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "delivery.report.only.error": True,
            **common,
            **producer_only,
        }
        instance = self._consumer_config.get("group.instance.id")
        if guarantee == "exactly-once":
            self.transactional_id = transactional_id or (
                f"streamml-{group_id}-{instance}" if instance else f"streamml-{group_id}-{uuid.uuid4().hex[:12]}"
            )
            self._producer_config["transactional.id"] = self.transactional_id
        else:
            self.transactional_id = None
        sha = self.model.sha256 or ""
        self._headers = [
            (HEADER_MODEL, self.model.name.encode()),
            (HEADER_VERSION, self.model.version.encode()),
            (HEADER_SHA256, sha.encode()),
        ]
        #: Names this process's drift counts in the store (one row set per scorer).
        self.shard = f"{group_id}/{instance or uuid.uuid4().hex[:12]}"
        reference = self.model.info.get("drift_reference") if drift else None
        if reference:
            _check_drift_reference(self.model, reference)
        self._drift = DriftWindows(reference, window_ms=int(drift_window_s * 1000)) if reference else None
        self._predictions = self._prediction_writer(store, store_predictions, id_field, score_field, drift_window_s)
        if store is not None and self._drift is None and self._predictions is None:
            why = "drift is off" if not drift else f"model '{self.model.name}' has no drift reference"
            msg = (
                f"--store {store}: the scorer writes drift counts there, but {why} "
                "(add --store-predictions to write predictions there)"
            )
            raise KafkaScorerError(msg)
        if store is not None:
            from streamml.store import check_driver

            check_driver(store)  # a missing ADBC driver fails here, not at the first write
        self.store_uri = store
        self.store_retry_s = store_retry_s
        self._store: Any = None
        self._drift_flushed = 0.0
        self._drift_warned = False
        self._stopping = False
        self._watchdog = watchdog
        self._call_deadline = 0.0  # monotonic; 0 while no transaction or commit call runs
        self._call_name = ""
        self._fatal: Any = None
        self._pending: list[Any] = []
        self._scoring: _Scoring | None = None
        #: The batch scored ahead while ``_scoring`` is finished (``_start_scoring``).
        self._ahead: _Scoring | None = None
        self._first_arrival = 0.0
        self._assigned: set[int] = set()  # partitions of the input topic (the one subscribed)
        self._paused = False
        self._delivery_errors: list[str] = []
        #: Why the run stopped without committing its unfinished work (``None`` while it runs well).
        self._failure: str | None = None
        self._aborts_in_a_row = 0
        #: The size limit (bytes) of a message to the output or dead-letter topic (set in ``run``).
        self._max_bytes = DEFAULT_MESSAGE_MAX_BYTES - RECORD_OVERHEAD
        self._consumer: Any = None
        self._producer: Any = None
        self._metrics: _Metrics | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="streamml-score")
        self._lag_updated = 0.0
        #: Counts so far: messages in, outputs, dead letters, batches, times paused for backpressure.
        self.stats = {"in": 0, "out": 0, "dlq": 0, "batches": 0, "paused": 0}

    # --- running ------------------------------------------------------------------------------

    def _prediction_writer(
        self, store: str | None, on: bool, id_field: str | None, score_field: str | None, window_s: float
    ) -> PredictionWriter | None:
        if not on:
            return None
        if store is None:
            msg = "--store-predictions needs a store URI (--store)"
            raise KafkaScorerError(msg)
        if id_field is None:
            msg = "--store-predictions needs --id-field: the predictions table is keyed by event id"
            raise KafkaScorerError(msg)
        try:
            score, label = score_and_label_fields(self.model.output_schema.names, score_field)
        except ValueError as e:
            raise KafkaScorerError(str(e)) from e
        return PredictionWriter(
            store,
            model=self.model.name,
            model_version=self.model.version,
            id_field=id_field,
            score_field=score,
            label_field=label,
            window_ms=int(window_s * 1000),
        )

    def stop(self) -> None:
        """Ask the loop to finish: the pending batch is scored and committed, then :meth:`run` returns."""
        self._stopping = True

    def install_signal_handlers(self) -> None:
        """Make SIGTERM and SIGINT call :meth:`stop` (main thread only)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())

    def run(self) -> None:
        """Consume, score and produce until :meth:`stop` is called.

        Raises:
            KafkaScorerError: a batch could not be finished (a fatal Kafka error, e.g. this
                producer was fenced by another with the same transactional id; an output the
                broker refused; a model failing on every message; a store that stayed down).
                Nothing unfinished was committed: a restart scores it again.
        """
        try:
            self._run()
        except BaseException as e:
            self._abandon(e)
            raise
        finally:
            self._close()

    def _run(self) -> None:
        from confluent_kafka import Consumer, Producer

        self._metrics = _Metrics(self.metrics_port)
        limit = _message_limit(self._producer_config, [self.output_topic, self.dlq_topic])
        self._max_bytes = limit - RECORD_OVERHEAD
        # The producer refuses at once what the broker would refuse later (a batch's framing < 128 bytes).
        self._producer_config["message.max.bytes"] = limit - 128
        self._producer = Producer(
            {**self._producer_config, "error_cb": self._on_error, "on_delivery": self._on_delivery}
        )
        if self.transactional_id:
            self._producer.init_transactions(30)
        if self._watchdog:
            threading.Thread(target=self._watch_calls, name="streamml-watchdog", daemon=True).start()
        self._consumer = Consumer({**self._consumer_config, "error_cb": self._on_error})
        self._consumer.subscribe(
            [self.input_topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        log.info(
            "scoring %s -> %s (dead letters: %s) with %s %s, %s, batches of %d / %.0f ms",
            self.input_topic,
            self.output_topic,
            self.dlq_topic,
            self.model.name,
            self.model.version,
            self.guarantee,
            self.max_batch_rows,
            self.max_wait * 1000,
        )
        while not self._stopping:
            self._collect()
            if self._pending and (
                len(self._pending) >= self.max_batch_rows or time.monotonic() - self._first_arrival >= self.max_wait
            ):
                self._start_scoring()
            self._finish_scoring(block=False)
            if self._scoring is None:
                self._flush_drift()  # also while idle: the last window's counts get out
        self._check_fatal()
        self._flush_pending()  # drain

    def _abandon(self, error: BaseException) -> None:
        """The run failed: commit nothing more (abort an open transaction) and say what a restart re-scores."""
        self._failure = str(error) or type(error).__name__
        unfinished = [
            *(self._scoring.batch if self._scoring is not None else []),
            *(self._ahead.batch if self._ahead is not None and self._ahead is not self._scoring else []),
            *self._pending,
        ]
        if self.transactional_id and self._producer is not None:
            try:
                self._producer.abort_transaction(10)
            except Exception as e:  # no transaction open, or the producer is fenced: nothing to abort
                log.debug("abort_transaction: %s", e)
        firsts: dict[int, int] = {}
        for m in unfinished:
            firsts[m.partition()] = min(firsts.get(m.partition(), m.offset()), m.offset())
        where = ", ".join(f"partition {p} from offset {o}" for p, o in sorted(firsts.items())) or "none pending"
        log.error(
            "stopping without committing %d consumed message(s) of '%s' (%s): %s; a restart scores them again",
            len(unfinished),
            self.input_topic,
            where,
            self._failure,
        )

    def _check_fatal(self) -> None:
        if self._fatal is not None:
            msg = f"fatal Kafka error, stopping without committing pending work: {self._fatal}"
            raise KafkaScorerError(msg)

    def _collect(self) -> None:
        """Add messages to the pending batch until it is full or its oldest has waited ``max_wait``.

        Meanwhile the previous batch is scored on the worker thread; its outputs are
        produced (and the batch committed) between the consumer's calls.
        """
        while len(self._pending) < self.max_batch_rows and not self._stopping:
            self._check_fatal()
            self._finish_scoring(block=False)
            if self._pending:
                timeout = self._first_arrival + self.max_wait - time.monotonic()
                if timeout <= 0:
                    return
                want = self.max_batch_rows - len(self._pending)
            else:
                # consume() waits until it has ``num_messages`` or times out: with nothing
                # pending, wait for one message only, so the batch's clock starts when its
                # first message arrives (not up to 100 ms later).
                got = self._consumer.consume(num_messages=self.max_batch_rows, timeout=0)
                timeout, want = (0.1, 1) if not got else (0, 0)
            if want:
                if self._scoring is not None:
                    timeout = min(timeout, POLL_SLICE)
                got = self._consumer.consume(num_messages=want, timeout=timeout)
            if not got and not self._pending:
                self._update_lag()
                return
            assigned = self._assigned
            # Not ours: an error event, or a message fetched before its partition was revoked.
            good = [m for m in got if m.error() is None and m.partition() in assigned]
            if len(good) < len(got):
                for m in got:
                    err = m.error()
                    if err is not None and err.fatal():
                        msg = f"fatal consumer error on topic '{self.input_topic}': {err}"
                        raise KafkaScorerError(msg)
                    if err is not None:
                        log.warning("consumer: %s", err)
            if good and not self._pending:
                self._first_arrival = time.monotonic()
            self._pending += good

    def _flush_pending(self) -> None:
        """Score, produce and commit everything consumed so far (before a rebalance, at exit)."""
        self._finish_scoring(block=True)
        if self._pending:
            self._start_scoring()
            self._finish_scoring(block=True)

    def _flush_drift(self, *, final: bool = False) -> None:
        """Export the drift windows to Prometheus and the store: every few seconds, and at exit.

        Runs between batches, when no chunk is being scored (so no thread counts meanwhile).
        The store keeps cumulative counts per (window, shard, feature, bin); rewriting a
        window replaces them, so a flush repeated after a crash double-counts nothing it
        already wrote (messages rescored after a crash are counted again, as they are scored
        again: at-least-once).
        """
        if self._drift is None:
            return
        now = time.monotonic()
        if not final and now - self._drift_flushed < min(DRIFT_FLUSH_S, self._drift.window_ms / 1000):
            return
        self._drift_flushed = now
        windows = self._drift.take()
        if not windows:
            return
        if self._metrics is not None:
            self._metrics.drift(windows[-1][1])
        if self.store_uri is None:
            return
        from streamml.store import Store, drift_reference_table

        try:
            if self._store is None:
                self._store = Store(self.store_uri)
                self._store.write("drift_reference", drift_reference_table(self.model.info))
            name, version = self.model.name, self.model.version
            for start, monitor in windows:
                table = monitor.table(model=name, model_version=version, window_start=start, shard=self.shard)
                self._store.write("drift", table)
        except Exception as e:  # a store outage must not stop scoring: keep the windows, retry
            log.warning("drift: could not write to the store %s (will retry): %s", self.store_uri, e)
            self._drift.closed[:0] = [w for w in windows if w[1] is not self._drift.open]
            if self._store is not None:
                with contextlib.suppress(Exception):
                    self._store.close()
            self._store = None

    # --- one batch ----------------------------------------------------------------------------

    def _start_scoring(self) -> None:
        """Hand the pending batch to the worker thread (in chunks), then finish the previous batch.

        The worker scores the new batch while the previous one's outputs are produced and its
        offsets committed (which waits for the broker's acknowledgements), so neither thread waits
        on the other's part. Outputs still go out batch after batch, and one batch is produced
        (and in exactly-once mode, in its transaction) at a time: the new batch's transaction
        begins once the previous one is committed. If that commit aborts, the new batch is
        rewound with it and its scores are dropped.
        """
        if not self._pending:
            self._finish_scoring(block=True)
            return
        batch, self._pending = self._pending, []
        values = [m.value() or b"" for m in batch]
        chunks = deque(self._submit_chunk(batch, values, s) for s in range(0, len(values), SCORE_CHUNK))
        ahead = _Scoring(batch, chunks)
        self._ahead = ahead
        try:
            self._finish_scoring(block=True)
        finally:
            self._ahead = None
        if ahead.rewound:
            for chunk in chunks:  # the drift counters are the worker's until it is done with them
                chunk.exception()
            return
        self._scoring = ahead
        if self.transactional_id:
            with self._transaction_errors(self._scoring):
                self._producer.begin_transaction()

    def _finish_scoring(self, *, block: bool) -> None:
        """Produce the outputs of the batch's scored chunks, in order; once all are out, commit it.

        With ``block``, wait for the worker thread until the batch is committed.
        """
        scoring = self._scoring
        if scoring is None:
            return
        with self._transaction_errors(scoring):
            self._produce_scored(scoring, block=block)
            if scoring.chunks:
                return
            if self._predictions is not None:
                self._store_predictions()  # before the commit: a crash rewrites the same rows
            if self.transactional_id:
                self._commit_batch_transaction(scoring.batch)
            else:
                self._commit_batch(scoring.batch)
            self._scoring = None
            self._aborts_in_a_row = 0
            self._count_committed(scoring)
        if self._paused:
            self._consumer.resume(self._partitions())
            self._paused = False
        self._update_lag()

    def _produce_scored(self, scoring: _Scoring, *, block: bool) -> None:
        batch, headers = scoring.batch, self._headers
        writer = self._predictions
        store_out = None if writer is None else (writer.add if self.format == "json" else writer.add_arrow)
        while scoring.chunks and (block or scoring.chunks[0].done()):
            outputs, errors, took = scoring.chunks.popleft().result()
            start = scoring.produced
            scoring.produced += len(outputs)
            scoring.seconds += took
            if errors:
                _check_model_fault(errors, len(outputs))
            first = 0
            if not errors and store_out is None:
                # The common case, one produce call per output; an output too large for its topic
                # (refused by the producer at once) sends the rest of the chunk down the per-message path.
                first = self._produce_outputs(batch[start : start + len(outputs)], outputs)
                if first == len(outputs):
                    continue
            reasons = dict(errors)
            for i in range(first, len(outputs)):
                m, out = batch[start + i], outputs[i]
                if out is not None and self._fits(m.key(), out, headers):
                    self._produce(self.output_topic, m.key(), out, headers)
                    if store_out is not None:
                        store_out(out, timestamp_ms(m))
                    continue
                if out is not None:
                    reasons[i] = (
                        f"the output ({len(out)} bytes) does not fit the message size limit ({self._max_bytes} "
                        f"bytes) of topic '{self.output_topic}'; raise the topic's max.message.bytes (and "
                        "-X producer.message.max.bytes) to publish it"
                    )
                scoring.dead += 1
                self._dead_letter(m, reasons[i])

    def _count_committed(self, scoring: _Scoring) -> None:
        """Statistics and metrics of a committed batch (only committed work is counted)."""
        batch = scoring.batch
        if self._metrics is not None:
            self._metrics.batch(len(batch), scoring.dead, scoring.seconds)
        self.stats["in"] += len(batch)
        self.stats["dlq"] += scoring.dead
        self.stats["out"] += len(batch) - scoring.dead
        self.stats["batches"] += 1

    def _fits(self, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> bool:
        """Whether a message fits the topics' size limit (with room for the record's framing)."""
        return _record_size(key, value, headers) <= self._max_bytes

    def _dead_letter(self, m: Any, reason: str) -> None:
        """Send ``m`` to the dead-letter topic with the reason; cut to the topic's size limit if need be."""
        value, key = m.value() or b"", m.key()
        headers = [*self._headers, *_dlq_headers(m, reason[:MAX_REASON])]
        room = self._max_bytes - _record_size(key, b"", headers) - len(HEADER_SIZE) - 20
        if len(value) > room:
            if key is not None and len(key) > self._max_bytes // 2:  # a key nearly as large as the limit
                key = key[: self._max_bytes // 2]
                room = self._max_bytes - _record_size(key, b"", headers) - len(HEADER_SIZE) - 20
            headers.append((HEADER_SIZE, str(len(value)).encode()))
            value = value[: max(room, 0)]
        self._produce(self.dlq_topic, key, value, headers)

    def _store_predictions(self) -> None:
        """Write the batch's predictions; retry a store that fails for ``store_retry_s``, then stop."""
        writer = self._predictions
        assert writer is not None
        deadline = time.monotonic() + self.store_retry_s
        pause = 0.2
        while True:
            writer.flush()
            if not len(writer):
                return
            if time.monotonic() >= deadline:
                msg = (
                    f"could not write {len(writer)} prediction(s) to the store {self.store_uri} for "
                    f"{self.store_retry_s:.0f} s (last error: {writer.error}); the batch is not committed"
                )
                raise KafkaScorerError(msg)
            self._producer.poll(0)
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 5.0)

    def _submit_chunk(self, batch: list[Any], values: list[bytes], start: int) -> Any:
        """Score ``values[start:start + SCORE_CHUNK]`` on the worker thread (chunks run one at a time)."""
        end = start + SCORE_CHUNK
        stamps = [timestamp_ms(m) for m in batch[start:end]] if self._drift is not None else None
        return self._pool.submit(self._score_chunk, values[start:end], stamps)

    def _score_chunk(
        self, values: list[bytes], times: list[int] | None
    ) -> tuple[list[bytes | None], list[tuple[int, str]], float]:
        """Score a chunk; with drift, ``times`` are the messages' timestamps (``timestamp_ms``)."""
        started = time.perf_counter()
        if self._drift is None or times is None:
            outputs, errors, _ = self._codec.score(values)
            return outputs, errors, time.perf_counter() - started
        # Each run of messages in one drift window is scored into that window's counters
        # (only this thread touches them while a batch is scored).
        outputs, errors = [], []
        window = self._drift.window_ms
        run = 0
        for i in range(1, len(values) + 1):
            if i < len(values) and times[i] // window == times[run] // window:
                continue
            monitor = self._drift.monitor_for(times[run])
            out, errs, drift_error = self._codec.score(values[run:i], monitor._inner)
            outputs.extend(out)
            errors.extend((run + k, reason) for k, reason in errs)
            if drift_error and not self._drift_warned:
                self._drift_warned = True
                log.warning("drift counters could not count (predictions are unaffected): %s", drift_error)
            run = i
        return outputs, errors, time.perf_counter() - started

    def _produce(self, topic: str, key: Any, value: Any, headers: list[tuple[str, bytes]]) -> None:
        while True:
            try:
                self._producer.produce(topic, value, key, headers=headers)
                return
            except BufferError:
                self._wait_for_room()

    def _produce_outputs(self, messages: list[Any], outputs: list[bytes]) -> int:
        """``_produce`` of each output to the output topic, with the key of its input, in one loop.

        Returns how many were produced: all of them, or those before the first one the producer
        refused as too large (``message.max.bytes`` is set to the topics' limit, so the check is
        the producer's own and costs nothing here).
        """
        from confluent_kafka import KafkaError, KafkaException

        send, topic, headers = self._producer.produce, self.output_topic, self._headers
        done = 0
        while done < len(outputs):
            try:
                for m, out in zip(messages[done:], outputs[done:], strict=True):
                    send(topic, out, m.key(), headers=headers)
                    done += 1
            except BufferError:
                self._wait_for_room()
            except KafkaException as e:
                if e.args[0].code() != KafkaError.MSG_SIZE_TOO_LARGE:
                    raise
                return done
        return done

    def _wait_for_room(self) -> None:
        """The producer's queue is full: stop fetching until it drains."""
        if not self._paused and self._assigned:
            self._consumer.pause(self._partitions())
            self._paused = True
            self.stats["paused"] += 1
        self._producer.poll(0.05)

    def _commit_batch(self, batch: list[Any]) -> None:
        """At-least-once: wait until every output of the batch is acknowledged, then commit its offsets."""
        while self._producer.flush(1.0) > 0:
            log.warning("waiting for %d output(s) to be acknowledged", len(self._producer))
        if self._delivery_errors:
            first = self._delivery_errors[0]
            msg = (
                f"{len(self._delivery_errors)} output(s) could not be delivered (first: {first}); offsets not committed"
            )
            raise KafkaScorerError(msg)
        self._observe_end_to_end(batch)
        self._commit(_next_offsets(self.input_topic, batch))

    def _commit(self, offsets: list[Any]) -> None:
        from confluent_kafka import KafkaException

        for attempt in range(60):
            self._watch("commit", TXN_TIMEOUT)  # no timeout of its own: see the watchdog
            try:
                self._consumer.commit(offsets=offsets, asynchronous=False)
                return
            except KafkaException as e:
                err = e.args[0]
                if not err.retriable() or attempt == 59:
                    # The outputs are out; their inputs will be scored again after a restart.
                    log.error("could not commit offsets (%s); they will be scored again", err)
                    return
                time.sleep(0.5)
            finally:
                self._call_deadline = 0.0

    def _commit_batch_transaction(self, batch: list[Any]) -> None:
        """Exactly-once: the batch's offsets into its transaction, then commit it."""
        group = self._consumer.consumer_group_metadata()
        self._watch("send_offsets_to_transaction", TXN_TIMEOUT)
        self._producer.send_offsets_to_transaction(_next_offsets(self.input_topic, batch), group, TXN_TIMEOUT)
        self._commit_transaction()
        self._observe_end_to_end(batch)

    @contextlib.contextmanager
    def _transaction_errors(self, scoring: _Scoring) -> Iterator[None]:
        """Abort the batch's transaction on an abortable error; its messages (and those consumed since) are rewound."""
        from confluent_kafka import KafkaException

        if not self.transactional_id:
            yield
            return
        try:
            yield
        except KafkaException as e:
            err = e.args[0]
            batch = scoring.batch
            if err.fatal() or not err.txn_requires_abort():
                msg = f"transaction of {len(batch)} message(s) from '{self.input_topic}' failed: {err}"
                raise KafkaScorerError(msg) from e
            self._aborts_in_a_row += 1
            if self._aborts_in_a_row > MAX_ABORTS_IN_A_ROW:
                msg = (
                    f"{self._aborts_in_a_row} transactions aborted in a row (last: {err}); "
                    f"the batch from '{self.input_topic}' cannot be committed"
                )
                raise KafkaScorerError(msg) from e
            log.warning("aborting the transaction of %d message(s): %s; they will be scored again", len(batch), err)
            self._producer.abort_transaction(TXN_TIMEOUT)
            self._scoring = None
            ahead = self._ahead
            if ahead is not None and ahead is not scoring:
                ahead.rewound = True
                batch = [*batch, *ahead.batch]
            self._rewind([*batch, *self._pending])
            self._pending = []
        finally:
            self._call_deadline = 0.0

    def _commit_transaction(self) -> None:
        from confluent_kafka import KafkaException

        while True:
            self._watch("commit_transaction", TXN_TIMEOUT)
            try:
                self._producer.commit_transaction(TXN_TIMEOUT)
                return
            except KafkaException as e:
                if not e.args[0].retriable() or self._fatal is not None:
                    raise
                log.warning("commit_transaction: %s; retrying", e.args[0])

    def _watch(self, call: str, timeout: float) -> None:
        """Arm the watchdog for a coordinator call that should be done within ``timeout`` seconds."""
        self._call_name = call
        self._call_deadline = time.monotonic() + timeout + WATCHDOG_GRACE

    def _watch_calls(self) -> None:
        while True:
            time.sleep(1.0)
            deadline = self._call_deadline
            if deadline and time.monotonic() > deadline:
                after = (
                    f"transactional id {self.transactional_id}: the restart aborts the open transaction"
                    if self.transactional_id
                    else "at-least-once: the batch whose commit hung is scored again"
                )
                log.critical(
                    "Kafka %s has blocked %.0f s past its timeout (the coordinator is lost: "
                    "librdkafka#5456, #5511); exiting with status 3 for a supervisor to restart the scorer (%s)",
                    self._call_name,
                    WATCHDOG_GRACE,
                    after,
                )
                logging.shutdown()
                os._exit(3)

    def _rewind(self, batch: list[Any]) -> None:
        """Seek back to the first message of the batch on each partition (after an abort)."""
        from confluent_kafka import TopicPartition

        first: dict[int, int] = {}
        for m in batch:
            first.setdefault(m.partition(), m.offset())
        for partition, offset in first.items():
            if partition in self._assigned:
                self._consumer.seek(TopicPartition(self.input_topic, partition, offset))

    # --- callbacks ----------------------------------------------------------------------------

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self._assigned.update(p.partition for p in partitions)
        log.info("assigned %s", sorted(p.partition for p in partitions))

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        if self._failure is not None:  # closing after a failure: unfinished work is not committed
            self._pending = []
        else:  # finish the work of these partitions while this member still owns them
            self._flush_pending()
        for p in partitions:
            self._assigned.discard(p.partition)
        log.info("revoked %s", sorted(p.partition for p in partitions))

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        # Another member owns them now: drop their pending work, it is not ours to commit.
        lost = {p.partition for p in partitions}
        self._pending = [m for m in self._pending if m.partition() not in lost]
        self._assigned -= lost
        log.warning("lost %s", sorted(lost))

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._delivery_errors.append(f"topic '{msg.topic()}': {err}")

    def _on_error(self, err: Any) -> None:
        if err.fatal():
            log.error("fatal Kafka error: %s", err)
            self._fatal = err
        else:
            log.warning("kafka: %s", err)

    # --- metrics and closing ------------------------------------------------------------------

    def _observe_end_to_end(self, batch: list[Any]) -> None:
        """End-to-end latency of the batch's oldest and newest message (creation to acknowledgement)."""
        if self._metrics is None:
            return
        now = time.time()
        for m in (batch[0], batch[-1]):
            kind, stamp = m.timestamp()
            if kind != 0 and stamp > 0:
                self._metrics.end_to_end.observe(max(0.0, now - stamp / 1000.0))

    def _update_lag(self) -> None:
        if self._metrics is None or time.monotonic() - self._lag_updated < 1.0 or not self._assigned:
            return
        self._lag_updated = time.monotonic()
        from confluent_kafka import KafkaException

        for tp in self._consumer.position(self._partitions()):
            _, high = self._consumer.get_watermark_offsets(tp, cached=True)
            if high < 0:  # nothing fetched yet: ask the broker (once a second at most)
                try:
                    _, high = self._consumer.get_watermark_offsets(tp, timeout=1.0)
                except KafkaException:
                    continue
            if high >= 0:
                position = tp.offset if tp.offset >= 0 else 0
                self._metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, high - position))

    def _partitions(self) -> list[Any]:
        from confluent_kafka import TopicPartition

        return [TopicPartition(self.input_topic, p) for p in sorted(self._assigned)]

    def _close(self) -> None:
        log.info("closing the consumer and the producer")
        if self._consumer is not None:
            self._consumer.close()
        if self._producer is not None:
            self._producer.flush(10)
        try:
            self._flush_drift(final=True)
            if self._predictions is not None:
                self._predictions.flush()  # rows kept from a failed write: one last attempt
        finally:
            if self._predictions is not None:
                self._predictions.close()
            if self._store is not None:
                self._store.close()
            if self._metrics is not None:
                self._metrics.close()
            self._pool.shutdown(wait=False)
        log.info(
            "stopped after %d message(s): %d scored, %d dead letter(s), %d batch(es)",
            self.stats["in"],
            self.stats["out"],
            self.stats["dlq"],
            self.stats["batches"],
        )


def _message_limit(producer_config: Mapping[str, Any], topics: Sequence[str]) -> int:
    """The size (bytes) a message to any of ``topics`` may have, framing included.

    The smallest of the producer's ``message.max.bytes`` and each topic's ``max.message.bytes``
    (asked of the broker; a topic it cannot describe, e.g. not created yet, has the broker's
    default). A message over it would be refused by the broker after it was produced.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, ConfigResource

    limit = int(producer_config.get("message.max.bytes", DEFAULT_MESSAGE_MAX_BYTES))
    admin_config = {k: v for k, v in producer_config.items() if k in _ADMIN_KEYS or k.startswith(("ssl.", "sasl."))}
    admin = AdminClient(admin_config)
    resources = [ConfigResource(ConfigResource.Type.TOPIC, t) for t in topics]
    for resource, future in admin.describe_configs(resources, request_timeout=10).items():
        try:
            entry = future.result(15).get("max.message.bytes")
        except KafkaException as e:
            log.info("cannot read max.message.bytes of topic '%s' (%s); assuming the default", resource.name, e)
            entry = None
        topic_limit = int(entry.value) if entry is not None and entry.value else DEFAULT_TOPIC_MAX_BYTES
        limit = min(limit, topic_limit)
    return limit


def _record_size(key: bytes | None, value: bytes, headers: Sequence[tuple[str, bytes]]) -> int:
    """The bytes a record takes towards the size limit (key, value, headers; framing is in ``_max_bytes``)."""
    return len(key or b"") + len(value) + sum(len(k) + len(v) + 4 for k, v in headers)


def _check_model_fault(errors: Sequence[tuple[int, str]], rows: int) -> None:
    """Stop when a chunk's messages all failed inside the model: the model is failing, not the messages."""
    failed = [reason for _, reason in errors if _MODEL_FAILED in reason]
    if len(failed) == rows and rows >= MODEL_FAULT_ROWS:
        msg = f"the model failed on all {rows} message(s) of a batch (first: {failed[0]}); fix or roll back the model"
        raise KafkaScorerError(msg)


def _check_drift_reference(model: Model, reference: Any) -> None:
    """Refuse at start a drift reference that every batch would fail on."""
    try:
        DriftMonitor(reference)
    except Exception as e:
        msg = (
            f"model '{model.name}' carries a drift reference that cannot be used: {e}; "
            "compile it again with --reference, or score with --no-drift"
        )
        raise KafkaScorerError(msg) from e


def _dlq_headers(m: Any, reason: str) -> list[tuple[str, bytes]]:
    return [
        (HEADER_ERROR, reason.encode()),
        (HEADER_TOPIC, m.topic().encode()),
        (HEADER_PARTITION, str(m.partition()).encode()),
        (HEADER_OFFSET, str(m.offset()).encode()),
    ]


def _next_offsets(topic: str, batch: Sequence[Any]) -> list[Any]:
    """The offsets to commit after ``batch`` (of ``topic``): one past its last message on each partition."""
    from confluent_kafka import TopicPartition

    last: dict[int, int] = {}
    for m in batch:
        last[m.partition()] = m.offset()
    return [TopicPartition(topic, p, o + 1) for p, o in last.items()]


def _split_config(config: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    common: dict[str, str] = {}
    consumer: dict[str, str] = {}
    producer: dict[str, str] = {}
    for key, value in config.items():
        if key.startswith("consumer."):
            consumer[key.removeprefix("consumer.")] = value
        elif key.startswith("producer."):
            producer[key.removeprefix("producer.")] = value
        else:
            common[key] = value
    return common, consumer, producer


def parse_properties(items: Sequence[str]) -> dict[str, str]:
    """``["key=value", ...]`` (the ``-X`` options) as a dict.

    Examples:
        >>> parse_properties(["linger.ms=10", "consumer.fetch.min.bytes=1"])
        {'linger.ms': '10', 'consumer.fetch.min.bytes': '1'}

    Raises:
        KafkaScorerError: an item has no ``=``.
    """
    props = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            msg = f"-X {item!r} is not key=value (a librdkafka property)"
            raise KafkaScorerError(msg)
        props[key.strip()] = value.strip()
    return props


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


class _Metrics:
    """The scorer's Prometheus metrics, in a registry of its own (served when a port is given)."""

    def __init__(self, port: int | None) -> None:
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
        if port is not None:
            self._server, _ = start_http_server(port, registry=r)

    def batch(self, rows: int, dead: int, seconds: float) -> None:
        self.messages_in.inc(rows)
        self.messages_out.inc(rows - dead)
        self.dlq.inc(dead)
        self.batch_size.observe(rows)
        self.scoring.observe(seconds)

    def drift(self, monitor: DriftMonitor) -> None:
        for row in monitor.stats():
            labels = (row["feature"], row["role"])
            self.drift_rows.labels(*labels).set(row["rows"])
            self.drift_psi.labels(*labels).set(row["psi"])
            self.drift_missing.labels(*labels).set(row["missing_rate"])
            self.drift_out_of_range.labels(*labels).set(row["out_of_range_rate"])

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
