"""The consumer loop of ``streamml score``: consume, batch, score, produce, commit.

Batches follow the rule of every streamml host (:mod:`streamml.batching`, whose
:class:`~streamml.batching.MicroBatcher` counts the pending messages): a batch is scored when it
holds ``max_batch_rows`` messages or when its oldest message has waited ``max_wait_ms`` since it
arrived; a zero wait scores what each poll returned. A batch is scored on the worker thread
(:mod:`streamml.kafka.scoring`) while the previous one's outputs are produced with their input's key
(so partitioning holds); batches are not waited for one by one: the loop goes on consuming and
scoring while earlier batches' outputs are in flight, and :mod:`streamml.kafka.delivery` commits
what was acknowledged (at-least-once: offsets, asynchronously every commit interval; exactly-once:
one transaction per commit interval). A message that cannot be read or scored, or
whose output would exceed the topic's size limit, goes to the dead-letter topic
(:mod:`streamml.kafka.dlq`); the rest keep flowing. Pending messages are scored before partitions
are revoked (rebalance) and on shutdown (``stop``, SIGTERM/SIGINT). While the producer's queue is
full the consumer is paused (backpressure).

Commit only what was produced: when a batch cannot be finished (an output or dead letter the
broker refused, a model that fails on every message, a store that stays down, a fatal Kafka
error) the scorer stops without committing it (exactly-once: the transaction is aborted) and
:meth:`ScoringLoop.run` raises :class:`~streamml.kafka.KafkaScorerError`; a restart scores it again.
The statistics count committed batches only.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any, Literal

from streamml.batching import DEFAULT_MAX_BATCH_ROWS, DEFAULT_MAX_WAIT, BatchPolicy, MicroBatcher
from streamml.kafka.config import DEFAULT_MESSAGE_MAX_BYTES, ClientConfig, KafkaScorerError, message_limit
from streamml.kafka.delivery import (
    DEFAULT_COMMIT_INTERVAL_MS,
    DEFAULT_MAX_IN_FLIGHT_ROWS,
    AtLeastOnce,
    ExactlyOnce,
    Flight,
)
from streamml.kafka.delivery import transactional_id as default_transactional_id
from streamml.kafka.dlq import RECORD_OVERHEAD, DeadLetters, record_size
from streamml.kafka.metrics import Metrics
from streamml.kafka.scoring import Scoring, Worker, check_model_fault
from streamml.kafka.sinks import DriftExport, PredictionWriter, score_and_label_fields, timestamp_ms, with_retry
from streamml.kafka.versions import (
    HEADER_SERVED_BY,
    SERVED_BY_CANARY,
    SERVED_BY_CHAMPION,
    LifecycleCollector,
    Preparer,
    Serving,
    canary_sides,
    challenger_slots,
    champion_slot,
)
from streamml.model import Model, TrustedSha256

log = logging.getLogger("streamml.kafka")

Guarantee = Literal["at-least-once", "exactly-once"]
Format = Literal["json", "arrow"]

#: While a batch is being scored, consume in slices this long (s) to produce its outputs promptly.
POLL_SLICE = 0.002
#: The producer's queue holds at most this much (KiB) unless ``-X queue.buffering.max.kbytes`` says
#: otherwise: the bound on bytes in flight (librdkafka's default is 1 GiB).
QUEUE_MAX_KBYTES = 65536


class ScoringLoop:
    """Score the messages of one topic into another, in micro-batches: the loop of ``streamml score``.

    Called ``Scorer`` up to 0.1 (one of several "scorers"); that name still imports, deprecated,
    for one release.

    Args:
        model: a :class:`~streamml.Model` (scored as it is), or a model reference: a binary's path,
            a model directory (its ``champion``), ``DIR@ALIAS``, ``models:/NAME@ALIAS`` or
            ``models:/NAME/VERSION`` (see :mod:`streamml.lifecycle` and ``docs/lifecycle.md``). A
            reference is held in a :class:`~streamml.lifecycle.ModelSlot`, asked once per batch: a
            new version is loaded off the scoring path and swapped in between batches.
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
            before its offsets are committed (see :mod:`streamml.kafka.sinks`). Needs ``store``
            and ``id_field``.
        score_field: the output stored as ``score`` (default: the model's first output).
        missing_fields: ``"error"`` (default): a message without an input field goes to the
            dead-letter topic, naming the field (an explicit ``null`` is a missing value where
            the input is nullable); ``"null"``: an absent input field is read as null.
        watchdog: end the process (exit status 3) when a call to the group or transaction
            coordinator blocks well past its timeout, for a supervisor to restart it
            (:class:`~streamml.kafka.delivery.Watchdog`). ``streamml score`` sets it.
        store_retry_s: with ``store_predictions``, how long (seconds) a batch retries a store
            that cannot be written before the scorer stops without committing it.
        commit_interval_ms: at-least-once: how often the acknowledged offsets are committed
            (asynchronously; and synchronously at shutdown and revoke); exactly-once: how long
            one transaction spans batches before it is committed (Kafka Streams'
            ``commit.interval.ms``). Longer: fewer commits, more to score again (at-least-once)
            or to wait for (``read_committed`` readers) after it.
        max_in_flight_rows: at-least-once: consumed rows handed to the producer whose offsets
            are not committed yet, at most; the loop waits for acknowledgements beyond it. A
            crash scores at most these again (the producer's queue, 64 MiB unless
            ``-X queue.buffering.max.kbytes`` says otherwise, bounds the bytes). Exactly-once:
            a transaction holding this many rows is committed before its interval is up.
        reload_interval: re-resolve the references this often (seconds; default 30 for a model
            directory or ``models:/`` reference; a binary's path stays fixed unless it is given).
        challengers: model references also scoring every batch (shadow): only the champion's
            outputs are published; every version's predictions go to ``store`` (``store`` with
            challengers implies ``store_predictions``) and to ``shadow_topic``. A challenger's
            failure on a message is counted (:attr:`challenger_failures`) and logged.
        canary: the fraction of events (by :func:`~streamml.lifecycle.canary_share` of the id
            field) served by the first challenger; outputs then carry ``streamml.served_by``.
        shadow_topic: where every version's outputs also go (with challengers).
        trusted_sha256: the trust list every resolved binary must be in (champion and challengers).
        sha256: with a reference, refuse every version of ``model`` whose SHA-256 is not this.
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
        max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS,
        max_wait_ms: float = DEFAULT_MAX_WAIT / timedelta(milliseconds=1),
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
        commit_interval_ms: float = DEFAULT_COMMIT_INTERVAL_MS,
        max_in_flight_rows: int = DEFAULT_MAX_IN_FLIGHT_ROWS,
        reload_interval: float | None = None,
        challengers: Sequence[str | os.PathLike[str]] = (),
        canary: float = 0.0,
        shadow_topic: str | None = None,
        trusted_sha256: TrustedSha256 = None,
        sha256: str | None = None,
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
        if not commit_interval_ms >= 0:
            msg = f"commit_interval_ms is {commit_interval_ms}; it must not be negative"
            raise KafkaScorerError(msg)
        if max_in_flight_rows < 1:
            msg = f"max_in_flight_rows is {max_in_flight_rows}; it must be at least 1"
            raise KafkaScorerError(msg)
        self.input_topic = input_topic
        self.output_topic = output_topic
        self.dlq_topic = dlq_topic or f"{input_topic}.dlq"
        if len({input_topic, output_topic, self.dlq_topic}) < 3:
            msg = (
                f"input topic '{input_topic}', output topic '{output_topic}' and dead-letter topic "
                f"'{self.dlq_topic}' must all differ"
            )
            raise KafkaScorerError(msg)
        self.shadow_topic = shadow_topic
        if shadow_topic is not None and shadow_topic in (input_topic, output_topic, self.dlq_topic):
            msg = f"shadow topic '{shadow_topic}' must differ from the input, output and dead-letter topics"
            raise KafkaScorerError(msg)
        if isinstance(challengers, (str, os.PathLike)):
            msg = f"challengers is {challengers!r}; pass a list of model references"
            raise KafkaScorerError(msg)
        if not 0.0 <= canary <= 1.0:
            msg = f"canary is {canary}; it must be a fraction between 0 and 1"
            raise KafkaScorerError(msg)
        if canary and not challengers:
            msg = "--canary needs a challenger (--challenger): the canary's share is served by the first one"
            raise KafkaScorerError(msg)
        if canary and (id_field is None or format != "json"):
            msg = "--canary needs --id-field and JSON messages: the event id picks each event's side"
            raise KafkaScorerError(msg)
        if shadow_topic is not None and not challengers:
            msg = "--shadow-topic needs a challenger (--challenger)"
            raise KafkaScorerError(msg)
        self.group_id = group_id
        self.format = format
        self.max_batch_rows = max_batch_rows
        self.max_wait = max_wait_ms / 1000.0
        self._policy = BatchPolicy(max_batch_rows, timedelta(milliseconds=max_wait_ms))
        #: Counts ``_pending`` by the batching rule; ``_due``: it released them, score them now.
        self._batcher = MicroBatcher(self._policy)
        self._due = False
        self.guarantee = guarantee
        self.metrics_port = metrics_port
        if isinstance(carry_fields, str):
            msg = f"carry_fields is the string {carry_fields!r}; pass a list of field names"
            raise KafkaScorerError(msg)
        self.carry_fields = list(carry_fields)
        self.client_config = ClientConfig(bootstrap_servers, group_id, dict(config or {}))
        instance = self.client_config.instance_id
        #: Names this process's drift counts in the store (one row set per scorer).
        self.shard = f"{group_id}/{instance or uuid.uuid4().hex[:12]}"
        if store_predictions is False and challengers and store is not None:
            store_predictions = True  # shadow: every version's predictions go to the store
        self._prepare = Preparer(
            format, id_field, self.carry_fields, missing_fields, drift, int(drift_window_s * 1000), self.shard,
            store, None, sha256,  # the score field is checked of later versions (_prediction_writer sets it)
        )  # fmt: skip
        #: The slot of the model reference (``acquire`` once per batch) and of each challenger.
        self.slot = champion_slot(model, reload_interval, trusted_sha256, self._prepare)
        try:
            self.challengers = challenger_slots(challengers, reload_interval, trusted_sha256, self._prepare)
        except BaseException:
            self.slot.close()
            raise
        self.canary = canary
        self._id_field = id_field
        #: Messages each challenger version could not score: ``(model, version) -> count``.
        self.challenger_failures: dict[tuple[str, str], int] = {}
        self.model = self.slot.current.model
        first: Serving = self.slot.current.prepared
        if guarantee == "exactly-once":
            self.transactional_id: str | None = transactional_id or default_transactional_id(group_id, instance)
            self._delivery: AtLeastOnce = ExactlyOnce(
                input_topic, self.transactional_id, commit_interval_ms / 1000, max_in_flight_rows
            )
        else:
            self.transactional_id = None
            self._delivery = AtLeastOnce(input_topic, commit_interval_ms / 1000, max_in_flight_rows)
        self._headers = first.headers
        self._dead_letters = DeadLetters(self.dlq_topic, self._headers, self._produce)
        #: The first version's drift windows (a fixed model's, always).
        self._drift = first.drift
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
        self._worker = Worker(first.codec, self._drift)
        #: The drift exports of every version scored so far (by its Serving's id): their windows get out after a swap.
        self._exports: dict[int, DriftExport] = {}
        self._note_exports(self.slot.current.prepared, *(c.current.prepared for c in self.challengers))
        self._stopping = False
        self._watchdog = watchdog
        self._pending: list[Any] = []
        self._scoring: Scoring | None = None
        #: The batch scored ahead while ``_scoring`` is finished (``_start_scoring``).
        self._ahead: Scoring | None = None
        self._assigned: set[int] = set()  # partitions of the input topic (the one subscribed)
        self._paused = False
        #: Why the run stopped without committing its unfinished work (``None`` while it runs well).
        self._failure: str | None = None
        #: The size limit (bytes) of a message to the output or dead-letter topic (set in ``run``).
        self._max_bytes = DEFAULT_MESSAGE_MAX_BYTES - RECORD_OVERHEAD
        self._consumer: Any = None
        self._producer: Any = None
        self._metrics: Metrics | None = None
        #: Counts so far: messages in, outputs, dead letters, batches, times paused for backpressure.
        self.stats = {"in": 0, "out": 0, "dlq": 0, "batches": 0, "paused": 0}

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
        self._prepare.score_field = score
        for c in self.challengers:
            if score not in c.current.model.output_schema.names:
                msg = (
                    f"challenger {c.reference}: version {c.current.version} has no output '{score}' (the stored "
                    f"score); its outputs are {c.current.model.output_schema.names}"
                )
                raise KafkaScorerError(msg)
        return PredictionWriter(
            store,
            model=self.model.name,
            model_version=self.model.version,
            id_field=id_field,
            score_field=score,
            label_field=label,
            window_ms=int(window_s * 1000),
        )

    # --- running ------------------------------------------------------------------------------

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

        self._metrics = Metrics(self.metrics_port)
        if hasattr(self._metrics.registry, "register"):  # prometheus-client present
            self._metrics.registry.register(LifecycleCollector(self.slot, self.challengers, self.challenger_failures))
        producer_config = self.client_config.producer()
        if self.transactional_id:
            producer_config["transactional.id"] = self.transactional_id
        limit = message_limit(
            producer_config, [self.output_topic, self.dlq_topic, *([self.shadow_topic] if self.shadow_topic else [])]
        )
        self._max_bytes = self._dead_letters.max_bytes = limit - RECORD_OVERHEAD
        # The producer refuses at once what the broker would refuse later (a batch's framing < 128 bytes).
        producer_config["message.max.bytes"] = limit - 128
        producer_config.setdefault("queue.buffering.max.kbytes", QUEUE_MAX_KBYTES)
        delivery = self._delivery
        if delivery.reports_every_delivery:  # each batch counts its acknowledgements down
            producer_config["delivery.report.only.error"] = False
        self._producer = Producer({**producer_config, "error_cb": delivery.on_error})
        self._consumer = Consumer(
            {**self.client_config.consumer(), "error_cb": delivery.on_error, "on_commit": delivery.on_commit}
        )
        delivery.start(self._producer, self._consumer, self._count_committed)
        if self._watchdog:
            delivery.watchdog.start()
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
            if self._due_in() <= 0:
                self._start_scoring()
            self._finish_scoring(block=False)
            if self._scoring is None:
                self._flush_drift()  # also while idle: the last window's counts get out
        delivery.check_fatal()
        self._flush_pending()  # drain

    def _due_in(self) -> float:
        """Seconds until the pending batch is due; ``<= 0``: due now; ``inf``: nothing pending."""
        if self._due:
            return 0.0
        due_in = self._batcher.due_in(time.monotonic_ns())
        return math.inf if due_in is None else due_in / 1e9

    def _drop_pending(self) -> None:
        """Forget the pending messages (handed to scoring, rewound or not ours to commit)."""
        self._pending = []
        self._batcher.flush()
        self._due = False

    def _abandon(self, error: BaseException) -> None:
        """The run failed: commit no more than was acknowledged (abort a transaction); say what a restart re-scores."""
        self._failure = str(error) or type(error).__name__
        self._delivery.abandon()
        flights = [f.work for f in self._delivery.flights]
        unfinished = [
            *(m for work in flights if work is not self._scoring for m in work.batch),
            *(self._scoring.batch if self._scoring is not None else []),
            *(self._ahead.batch if self._ahead is not None and self._ahead is not self._scoring else []),
            *self._pending,
        ]
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

    def _collect(self) -> None:
        """Add messages to the pending batch until it is due (the batching rule says so).

        Meanwhile the previous batch is scored on the worker thread; its outputs are
        produced (and the batch committed) between the consumer's calls.
        """
        while len(self._pending) < self.max_batch_rows and not self._stopping:
            self._delivery.check_fatal()
            self._finish_scoring(block=False)
            with self._transaction_errors():
                self._delivery.tick(between_batches=self._scoring is None)
            if self._pending:
                timeout = self._due_in()
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
            self._pending += good
            if good and self._batcher.add(len(good), time.monotonic_ns()):
                # ``want`` never exceeds the room left: the rule released every pending message.
                self._due = True
                return

    def _flush_pending(self) -> None:
        """Score, produce and commit everything consumed so far (before a rebalance, at exit)."""
        self._finish_scoring(block=True)
        if self._pending:
            self._start_scoring()
            self._finish_scoring(block=True)
        with self._transaction_errors():
            self._delivery.drain()

    # --- one batch ----------------------------------------------------------------------------

    def _start_scoring(self) -> None:
        """Hand the pending batch to the worker thread (in chunks), then finish the previous batch.

        The worker scores the new batch while the previous one's outputs are produced (and, when
        the commit interval has passed, its transaction committed), so neither thread waits on the
        other's part. Outputs go out batch after batch; acknowledgements are not waited for here
        (only when ``max_in_flight_rows`` would be passed). If a transaction aborts, the new batch
        is rewound with it and its scores are dropped.
        """
        if not self._pending:
            self._finish_scoring(block=True)
            return
        batch = self._pending
        self._drop_pending()
        version: Serving = self.slot.acquire().prepared  # once per batch: the batch is scored wholly by it
        if self.challengers:
            shadows = [c.acquire().prepared for c in self.challengers]
            self._note_exports(version, *shadows)
            ahead = self._worker.submit(batch, version, shadows, self._canary_rule)
        else:
            if id(version) not in self._exports:
                self._note_exports(version)
            ahead = self._worker.submit(batch, version)
        self._ahead = ahead
        try:
            self._finish_scoring(block=True)
        finally:
            self._ahead = None
        if ahead.rewound:
            for chunk in ahead.chunks:  # the drift counters are the worker's until it is done
                chunk.exception()
            return
        self._scoring = ahead
        with self._transaction_errors():
            self._delivery.wait_for_room(len(ahead.batch))
            ahead.flight = self._delivery.open(ahead.batch, ahead)

    def _finish_scoring(self, *, block: bool) -> None:
        """Produce the outputs of the batch's scored chunks, in order; once all are out, hand it to the commit protocol.

        With ``block``, wait for the worker thread until the batch is produced.
        """
        scoring = self._scoring
        if scoring is None:
            return
        with self._transaction_errors():
            self._produce_scored(scoring, block=block)
            if scoring.chunks:
                return
            if self._predictions is not None:
                self._store_predictions()  # before the commit: a crash rewrites the same rows
            self._scoring = None
            self._delivery.produced(scoring.flight)
        if self._paused:
            self._consumer.resume(self._partitions())
            self._paused = False
        self._update_lag()

    def _produce_scored(self, scoring: Scoring, *, block: bool) -> None:
        if scoring.challengers:
            self._produce_shadowed(scoring, block=block)
            return
        batch, flight = scoring.batch, scoring.flight
        version: Serving = scoring.version
        headers = self._dead_letters.headers = version.headers
        writer = self._predictions
        store_out = None if writer is None else (writer.add if self.format == "json" else writer.add_arrow)
        tag = (version.name, version.version)
        while scoring.chunks and (block or scoring.chunks[0].done()):
            outputs, errors, took = scoring.chunks.popleft().result()
            start = scoring.produced
            scoring.produced += len(outputs)
            scoring.seconds += took
            if errors:
                check_model_fault(errors, len(outputs))
            first = 0
            if not errors and store_out is None:
                # The common case, one produce call per output; an output too large for its topic
                # (refused by the producer at once) sends the rest of the chunk down the per-message path.
                first = self._produce_outputs(batch[start : start + len(outputs)], outputs, flight, headers)
                if first == len(outputs):
                    continue
            reasons = dict(errors)
            for i in range(first, len(outputs)):
                m, out = batch[start + i], outputs[i]
                if out is not None and record_size(m.key(), out, headers) <= self._max_bytes:
                    self._produce(self.output_topic, m.key(), out, headers)
                    if store_out is not None:
                        store_out(out, timestamp_ms(m), tag)
                    continue
                if out is not None:
                    reasons[i] = (
                        f"the output ({len(out)} bytes) does not fit the message size limit ({self._max_bytes} "
                        f"bytes) of topic '{self.output_topic}'; raise the topic's max.message.bytes (and "
                        "-X producer.message.max.bytes) to publish it"
                    )
                scoring.dead += 1
                self._dead_letters.send(m, reasons[i])

    def _produce_shadowed(self, scoring: Scoring, *, block: bool) -> None:
        """Produce chunks scored by the champion and every challenger (shadow, canary): see :mod:`.versions`.

        The serving side's output is published with its version's headers (and, with a canary,
        the side that served); the serving side's failures are dead-lettered; every version's
        outputs go to the store and the shadow topic; a challenger's failures are counted.
        """
        batch, _flight = scoring.batch, scoring.flight
        champion: Serving = scoring.version
        challengers: list[Serving] = scoring.challengers
        writer = self._predictions
        store_out = None if writer is None else (writer.add if self.format == "json" else writer.add_arrow)
        canary = self.canary > 0
        sides = [
            [*champion.headers, (HEADER_SERVED_BY, SERVED_BY_CHAMPION)] if canary else champion.headers,
            [*challengers[0].headers, (HEADER_SERVED_BY, SERVED_BY_CANARY)],
        ]
        while scoring.chunks and (block or scoring.chunks[0].done()):
            (outputs, errors, took), shadowed, on_canary = scoring.chunks.popleft().result()
            start = scoring.produced
            scoring.produced += len(outputs)
            scoring.seconds += took + sum(r[2] for r in shadowed)
            if errors:
                check_model_fault(errors, len(outputs))
            reasons = [dict(errors), *(dict(r[1]) for r in shadowed)]
            versions = [champion, *challengers]
            results = [outputs, *(r[0] for r in shadowed)]
            for v, (_, errs, _) in zip(challengers, shadowed, strict=True):
                if errs:
                    key = (str(v.name), v.version)
                    self.challenger_failures[key] = self.challenger_failures.get(key, 0) + len(errs)
                    log.warning(
                        "challenger %s %s could not score %d message(s) of a batch (not dead-lettered); first: %s",
                        v.name, v.version, len(errs), errs[0][1],
                    )  # fmt: skip
            for i, m in enumerate(batch[start : start + len(outputs)]):
                side = 1 if on_canary is not None and on_canary[i] else 0
                out = results[side][i]
                if out is not None and record_size(m.key(), out, sides[side]) <= self._max_bytes:
                    self._produce(self.output_topic, m.key(), out, sides[side])
                else:
                    reason = reasons[side].get(i) or (
                        f"the output ({len(out or b'')} bytes) does not fit the message size limit ({self._max_bytes} "
                        f"bytes) of topic '{self.output_topic}'; raise the topic's max.message.bytes (and "
                        "-X producer.message.max.bytes) to publish it"
                    )
                    scoring.dead += 1
                    self._dead_letters.headers = versions[side].headers
                    self._dead_letters.send(m, reason)
                stamp = timestamp_ms(m) if store_out is not None else 0
                for v, res in zip(versions, results, strict=True):
                    o = res[i]
                    if o is None:
                        continue
                    if store_out is not None:
                        store_out(o, stamp, (v.name, v.version))
                    if self.shadow_topic is not None and record_size(m.key(), o, v.headers) <= self._max_bytes:
                        self._produce(self.shadow_topic, m.key(), o, v.headers)

    def _canary_rule(self, values: list[bytes]) -> list[bool] | None:
        """Each message's side (on the worker thread): the canary when ``canary_share(id) < canary``."""
        if not self.canary:
            return None
        assert self._id_field is not None
        return canary_sides(values, self._id_field, self.canary)

    def _note_exports(self, *versions: Serving) -> None:
        for v in versions:
            if v.export is not None and id(v) not in self._exports:
                self._exports[id(v)] = v.export

    def _flush_drift(self, *, final: bool = False) -> None:
        """Export every version's drift windows (the champion's open window also to Prometheus)."""
        serving = id(self.slot.current.prepared)
        for key, export in self._exports.items():
            export.flush(self._metrics if key == serving else None, final=final)

    def _count_committed(self, scoring: Scoring) -> None:
        """Statistics and metrics of an acknowledged (exactly-once: committed) batch; only such work is counted."""
        batch = scoring.batch
        if self._metrics is not None:
            self._metrics.acknowledged(batch)
            self._metrics.batch(len(batch), scoring.dead, scoring.seconds)
        self.stats["in"] += len(batch)
        self.stats["dlq"] += scoring.dead
        self.stats["out"] += len(batch) - scoring.dead
        self.stats["batches"] += 1

    def _store_predictions(self) -> None:
        """Write the batch's predictions; retry a store that fails for ``store_retry_s``, then stop."""
        writer = self._predictions
        assert writer is not None

        def write() -> None:
            writer.flush()
            if len(writer):
                raise KafkaScorerError(writer.error or "the store refused the write")

        try:
            with_retry(write, self.store_retry_s, pause=0.2, max_pause=5.0, between=lambda: self._producer.poll(0))
        except KafkaScorerError as e:
            msg = (
                f"could not write {len(writer)} prediction(s) to the store {self.store_uri} for "
                f"{self.store_retry_s:.0f} s (last error: {writer.error}); the batch is not committed"
            )
            raise KafkaScorerError(msg) from e

    def _produce(self, topic: str, key: Any, value: Any, headers: list[tuple[str, bytes]]) -> None:
        """Produce one message of the batch being produced (its flight counts the acknowledgement)."""
        assert self._scoring is not None
        flight = self._scoring.flight
        while True:
            try:
                self._producer.produce(topic, value, key, headers=headers, on_delivery=flight.on_delivery)
                flight.unacked += 1
                return
            except BufferError:
                self._wait_for_room()

    def _produce_outputs(
        self, messages: list[Any], outputs: list[bytes], flight: Flight, headers: list[tuple[str, bytes]]
    ) -> int:
        """``_produce`` of each output to the output topic, with the key of its input, in one loop.

        Returns how many were produced: all of them, or those before the first one the producer
        refused as too large (``message.max.bytes`` is set to the topics' limit, so the check is
        the producer's own and costs nothing here).
        """
        from confluent_kafka import KafkaError, KafkaException

        send, topic, acked = self._producer.produce, self.output_topic, flight.on_delivery
        done = 0
        try:
            while done < len(outputs):
                try:
                    for m, out in zip(messages[done:], outputs[done:], strict=True):
                        send(topic, out, m.key(), headers=headers, on_delivery=acked)
                        done += 1
                except BufferError:
                    self._wait_for_room()
                except KafkaException as e:
                    if e.args[0].code() != KafkaError.MSG_SIZE_TOO_LARGE:
                        raise
                    return done
            return done
        finally:
            flight.unacked += done

    def _wait_for_room(self) -> None:
        """The producer's queue is full: stop fetching until it drains."""
        if not self._paused and self._assigned:
            self._consumer.pause(self._partitions())
            self._paused = True
            self.stats["paused"] += 1
        self._producer.poll(0.05)

    @contextlib.contextmanager
    def _transaction_errors(self) -> Iterator[None]:
        """Abort the open transaction on an abortable error; everything since the last committed one is rewound."""
        from confluent_kafka import KafkaException

        delivery = self._delivery
        if not isinstance(delivery, ExactlyOnce):
            yield
            return
        try:
            yield
        except KafkaException as e:
            first = delivery.abort(e.args[0])  # the transaction's batches, oldest first
            scoring, ahead = self._scoring, self._ahead
            self._scoring = None
            later = [*(scoring.batch if scoring is not None else [])]
            if ahead is not None and ahead is not scoring:
                ahead.rewound = True
                later += ahead.batch
            for m in [*later, *self._pending]:
                first.setdefault(m.partition(), m.offset())
            self._rewind(first)
            self._drop_pending()

    def _rewind(self, first: dict[int, int]) -> None:
        """Seek back to these offsets (partition: the first message to score again) after an abort."""
        from confluent_kafka import TopicPartition

        for partition, offset in first.items():
            if partition in self._assigned:
                self._consumer.seek(TopicPartition(self.input_topic, partition, offset))

    # --- callbacks ----------------------------------------------------------------------------

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self._assigned.update(p.partition for p in partitions)
        log.info("assigned %s", sorted(p.partition for p in partitions))

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        if self._failure is not None:  # closing after a failure: unfinished work is not committed
            self._drop_pending()
        else:  # finish the work of these partitions while this member still owns them
            self._flush_pending()
        self._delivery.forget(p.partition for p in partitions)
        for p in partitions:
            self._assigned.discard(p.partition)
        log.info("revoked %s", sorted(p.partition for p in partitions))

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        # Another member owns them now: drop their pending work, it is not ours to commit.
        lost = {p.partition for p in partitions}
        kept = [m for m in self._pending if m.partition() not in lost]
        if len(kept) < len(self._pending):
            # The oldest kept message arrived no earlier than the oldest of all: keep that clock.
            first, due = self._batcher.first_arrival, self._due
            self._drop_pending()
            self._pending, self._due = kept, due and bool(kept)
            if kept and not due:
                self._batcher = MicroBatcher(self._policy, len(kept), first)
        self._delivery.forget(lost)
        self._assigned -= lost
        log.warning("lost %s", sorted(lost))

    # --- metrics and closing ------------------------------------------------------------------

    def _update_lag(self) -> None:
        if self._metrics is not None and self._assigned:
            self._metrics.update_lag(self._consumer, self._partitions)

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
            for export in self._exports.values():
                export.close()
            self.slot.close()
            for c in self.challengers:
                c.close()
            if self._metrics is not None:
                self._metrics.close()
            self._worker.shutdown()
        log.info(
            "stopped after %d message(s): %d scored, %d dead letter(s), %d batch(es)",
            self.stats["in"],
            self.stats["out"],
            self.stats["dlq"],
            self.stats["batches"],
        )
