"""How ``streamml score`` commits a batch: at-least-once or exactly-once.

Commit only what was produced: a batch's offsets (at-least-once) or transaction (exactly-once)
are committed only after every output and dead letter of it was acknowledged; on any failure the
scorer stops or retries, never commits.

* :class:`AtLeastOnce`: wait until the producer has no message left in flight and none was
  refused, then commit the batch's offsets (synchronously); a crash re-scores at most the batch
  in flight.
* :class:`ExactlyOnce`: each batch is one Kafka transaction holding its outputs, its dead letters
  and its consumer offsets; read the output with ``isolation.level=read_committed``.

Both arm a :class:`Watchdog` around the calls to the group or transaction coordinator, which
can block for good once the coordinator is lost (librdkafka 2.16: confluentinc/librdkafka#5456,
#5511).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from streamml.kafka.config import KafkaScorerError

log = logging.getLogger("streamml.kafka")

#: Seconds a transaction or commit call may take, and how much longer the watchdog waits before exiting.
TXN_TIMEOUT = 60.0
WATCHDOG_GRACE = 30.0
#: Transactions aborted one after another before the scorer gives up (a batch that can never commit).
MAX_ABORTS_IN_A_ROW = 5
#: A callback given a batch once its outputs are acknowledged (end-to-end latency).
Acknowledged = Callable[[list[Any]], None]


def next_offsets(topic: str, batch: Sequence[Any]) -> list[Any]:
    """The offsets to commit after ``batch`` (of ``topic``): one past its last message on each partition."""
    from confluent_kafka import TopicPartition

    last: dict[int, int] = {}
    for m in batch:
        last[m.partition()] = m.offset()
    return [TopicPartition(topic, p, o + 1) for p, o in last.items()]


def transactional_id(group_id: str, instance_id: str | None) -> str:
    """The default transactional id: stable for a static member (``group.instance.id``), else random."""
    return f"streamml-{group_id}-{instance_id}" if instance_id else f"streamml-{group_id}-{uuid.uuid4().hex[:12]}"


class Watchdog:
    """Ends the process (exit status 3) when a coordinator call blocks well past its timeout.

    A supervisor then restarts it. Exactly-once: the restarted scorer (same transactional id)
    aborts the open transaction, so nothing is duplicated; at-least-once: the batch whose commit
    hung is scored again (at most one batch of duplicates).
    """

    def __init__(self, after_restart: str) -> None:
        """A watchdog whose exit message says what a restart does (``after_restart``); not running yet."""
        self.after_restart = after_restart
        self._deadline = 0.0  # monotonic; 0 while no call is watched
        self._call = ""

    def start(self) -> None:
        """Watch from a daemon thread."""
        threading.Thread(target=self._watch, name="streamml-watchdog", daemon=True).start()

    def arm(self, call: str, timeout: float) -> None:
        """A coordinator call that should be done within ``timeout`` seconds begins."""
        self._call = call
        self._deadline = time.monotonic() + timeout + WATCHDOG_GRACE

    def disarm(self) -> None:
        """The watched call returned."""
        self._deadline = 0.0

    def _watch(self) -> None:
        while True:
            time.sleep(1.0)
            deadline = self._deadline
            if deadline and time.monotonic() > deadline:
                log.critical(
                    "Kafka %s has blocked %.0f s past its timeout (the coordinator is lost: "
                    "librdkafka#5456, #5511); exiting with status 3 for a supervisor to restart the scorer (%s)",
                    self._call,
                    WATCHDOG_GRACE,
                    self.after_restart,
                )
                logging.shutdown()
                os._exit(3)


class AtLeastOnce:
    """Commit a batch's offsets once its outputs and dead letters are acknowledged."""

    transactional_id: str | None = None

    def __init__(self) -> None:
        """No delivery failed yet."""
        self.watchdog = Watchdog("at-least-once: the batch whose commit hung is scored again")
        #: Deliveries the broker refused (``topic '<t>': <error>``), from the producer's ``on_delivery``.
        self.delivery_errors: list[str] = []
        #: The fatal error a client reported (``error_cb``), if any: the run must stop.
        self.fatal: Any = None
        self._producer: Any = None
        self._consumer: Any = None

    def start(self, producer: Any, consumer: Any) -> None:
        """Use these clients (the producer built with ``on_delivery=self.on_delivery``)."""
        self._producer, self._consumer = producer, consumer

    def on_delivery(self, err: Any, msg: Any) -> None:
        """The producer's delivery callback: keep what the broker refused."""
        if err is not None:
            self.delivery_errors.append(f"topic '{msg.topic()}': {err}")

    def on_error(self, err: Any) -> None:
        """The clients' error callback: keep a fatal error, log the others."""
        if err.fatal():
            log.error("fatal Kafka error: %s", err)
            self.fatal = err
        else:
            log.warning("kafka: %s", err)

    def check_fatal(self) -> None:
        """Raise once a client reported a fatal error.

        Raises:
            KafkaScorerError: a fatal error was reported.
        """
        if self.fatal is not None:
            msg = f"fatal Kafka error, stopping without committing pending work: {self.fatal}"
            raise KafkaScorerError(msg)

    def begin(self) -> None:
        """A batch begins (nothing to do)."""

    def commit(self, topic: str, batch: list[Any], acknowledged: Acknowledged) -> None:
        """Wait until every output of the batch is acknowledged, then commit its offsets.

        Raises:
            KafkaScorerError: an output or dead letter was refused; nothing is committed.
        """
        while self._producer.flush(1.0) > 0:
            log.warning("waiting for %d output(s) to be acknowledged", len(self._producer))
        if self.delivery_errors:
            errors = self.delivery_errors
            msg = f"{len(errors)} output(s) could not be delivered (first: {errors[0]}); offsets not committed"
            raise KafkaScorerError(msg)
        acknowledged(batch)
        self._commit(next_offsets(topic, batch))

    def _commit(self, offsets: list[Any]) -> None:
        from confluent_kafka import KafkaException

        for attempt in range(60):
            self.watchdog.arm("commit", TXN_TIMEOUT)  # no timeout of its own: see the watchdog
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
                self.watchdog.disarm()

    def abandon(self) -> None:
        """The run failed: nothing to abort (uncommitted offsets are re-read by a restart)."""


class ExactlyOnce(AtLeastOnce):
    """Each batch is one transaction: its outputs, its dead letters and its offsets.

    Args:
        transactional_id: the producer's transactional id (stable across restarts of one scorer,
            so a restart fences its predecessor and aborts its open transaction at once).
    """

    def __init__(self, transactional_id: str) -> None:
        """Transactions under ``transactional_id``; none aborted yet."""
        super().__init__()
        self.transactional_id = transactional_id
        self.watchdog = Watchdog(f"transactional id {transactional_id}: the restart aborts the open transaction")
        self._aborts_in_a_row = 0

    def start(self, producer: Any, consumer: Any) -> None:
        """Use these clients; fence an earlier producer with this transactional id."""
        super().start(producer, consumer)
        producer.init_transactions(30)

    def begin(self) -> None:
        """Open the batch's transaction."""
        self._producer.begin_transaction()

    def commit(self, topic: str, batch: list[Any], acknowledged: Acknowledged) -> None:
        """Put the batch's offsets into its transaction, then commit it."""
        group = self._consumer.consumer_group_metadata()
        self.watchdog.arm("send_offsets_to_transaction", TXN_TIMEOUT)
        try:
            self._producer.send_offsets_to_transaction(next_offsets(topic, batch), group, TXN_TIMEOUT)
            self._commit_transaction()
        finally:
            self.watchdog.disarm()
        self._aborts_in_a_row = 0
        acknowledged(batch)

    def _commit_transaction(self) -> None:
        from confluent_kafka import KafkaException

        while True:
            self.watchdog.arm("commit_transaction", TXN_TIMEOUT)
            try:
                self._producer.commit_transaction(TXN_TIMEOUT)
                return
            except KafkaException as e:
                if not e.args[0].retriable() or self.fatal is not None:
                    raise
                log.warning("commit_transaction: %s; retrying", e.args[0])

    def abort(self, err: Any, rows: int, topic: str) -> None:
        """Abort the open transaction of ``rows`` messages from ``topic`` after ``err`` (a ``KafkaError``).

        Raises:
            KafkaScorerError: ``err`` is fatal or needs no abort, or too many transactions were
                aborted in a row (a batch that can never commit).
        """
        if err.fatal() or not err.txn_requires_abort():
            msg = f"transaction of {rows} message(s) from '{topic}' failed: {err}"
            raise KafkaScorerError(msg)
        self._aborts_in_a_row += 1
        if self._aborts_in_a_row > MAX_ABORTS_IN_A_ROW:
            msg = (
                f"{self._aborts_in_a_row} transactions aborted in a row (last: {err}); "
                f"the batch from '{topic}' cannot be committed"
            )
            raise KafkaScorerError(msg)
        log.warning("aborting the transaction of %d message(s): %s; they will be scored again", rows, err)
        self._producer.abort_transaction(TXN_TIMEOUT)

    def abandon(self) -> None:
        """The run failed: abort the open transaction, if any."""
        if self._producer is None:
            return
        try:
            self._producer.abort_transaction(10)
        except Exception as e:  # no transaction open, or the producer is fenced: nothing to abort
            log.debug("abort_transaction: %s", e)
