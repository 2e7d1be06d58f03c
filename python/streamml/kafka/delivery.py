"""How ``streamml score`` commits what it produced: at-least-once or exactly-once.

Commit only what was produced: a message's offset (at-least-once) or transaction (exactly-once)
is committed only after its output or dead letter, and those of every message consumed before it,
were acknowledged; on any failure the scorer stops or aborts, never commits more.

Each batch handed to the producer is a :class:`Flight`: its messages' offsets, its rows and how
many of its outputs and dead letters the broker has not acknowledged yet. Batches are not waited
for one by one; the loop keeps consuming and scoring while earlier ones are in flight.

* :class:`AtLeastOnce`: the producer's delivery reports (served by ``poll(0)`` in the loop) count
  each flight down; the committable offsets are those of the longest run of fully acknowledged
  flights from the oldest one (a per-batch watermark), committed asynchronously every commit
  interval, and synchronously (exactly those, never more) on shutdown, revoke and failure. At most
  ``max_in_flight_rows`` consumed rows wait for their commit to be confirmed, which bounds what a
  crash scores again.
* :class:`ExactlyOnce`: one Kafka transaction spans the batches of a commit interval, with their
  consumed offsets sent in it; ``commit_transaction`` (which waits for every acknowledgement)
  runs while the worker thread scores the next batch. Read the output with
  ``isolation.level=read_committed``.

Both arm a :class:`Watchdog` around the calls to the group or transaction coordinator, which
can block for good once the coordinator is lost (librdkafka 2.16: confluentinc/librdkafka#5456,
#5511).
"""

from __future__ import annotations

import logging
import operator
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from streamml.kafka.config import KafkaScorerError

log = logging.getLogger("streamml.kafka")

#: Seconds a transaction or commit call may take, and how much longer the watchdog waits before exiting.
TXN_TIMEOUT = 60.0
WATCHDOG_GRACE = 30.0
#: Transactions aborted one after another before the scorer gives up (a batch that can never commit).
MAX_ABORTS_IN_A_ROW = 5
#: How often (ms) offsets, or a transaction spanning batches, are committed (Kafka Streams' exactly-once default).
DEFAULT_COMMIT_INTERVAL_MS = 100.0
#: Consumed rows whose commit is not confirmed yet, at most (at-least-once): what a crash may score again.
DEFAULT_MAX_IN_FLIGHT_ROWS = 50_000
#: A callback given a flight's work once it is acknowledged (at-least-once) or committed (exactly-once).
Done = Callable[[Any], None]
#: A message's partition and offset, called from C in ``map`` (no Python frame per message).
_partition, _offset = operator.methodcaller("partition"), operator.methodcaller("offset")


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


class Flight:
    """One batch on its way: its offsets, rows, and outputs or dead letters not acknowledged yet.

    Args:
        batch: the consumed messages, in order.
        work: what the loop keeps for this batch (given back to ``done`` once it is finished).
    """

    __slots__ = ("errors", "first", "next", "produced", "rows", "unacked", "work")

    def __init__(self, batch: Sequence[Any], work: Any) -> None:
        """A flight of ``batch``; nothing produced yet."""
        partitions, offsets = list(map(_partition, batch)), list(map(_offset, batch))
        # Offsets rise within a partition: the last one seen is the smallest going backwards.
        self.first: dict[int, int] = dict(zip(reversed(partitions), reversed(offsets), strict=True))
        self.next: dict[int, int] = {p: o + 1 for p, o in dict(zip(partitions, offsets, strict=True)).items()}
        self.rows = len(batch)
        self.work = work
        self.unacked = 0
        self.produced = False
        #: Deliveries the broker refused (``topic '<t>': <error>``).
        self.errors: list[str] = []

    def on_delivery(self, err: Any, msg: Any) -> None:
        """The producer's delivery report of one of this flight's messages."""
        self.unacked -= 1
        if err is not None:
            self.errors.append(f"topic '{msg.topic()}': {err}")

    @property
    def acknowledged(self) -> bool:
        """Every output and dead letter was produced and acknowledged (or refused: see ``errors``)."""
        return self.produced and self.unacked <= 0


class Watchdog:
    """Ends the process (exit status 3) when a coordinator call blocks well past its timeout.

    A supervisor then restarts it. Exactly-once: the restarted scorer (same transactional id)
    aborts the open transaction, so nothing is duplicated; at-least-once: what was not committed
    is scored again (at most the rows in flight).
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
    """Commit offsets up to the last message whose output, and every earlier one's, was acknowledged.

    Args:
        topic: the input topic (whose offsets are committed).
        commit_interval_s: how often acknowledged offsets are committed (asynchronously).
        max_in_flight_rows: consumed rows whose commit is not confirmed yet, at most.
    """

    transactional_id: str | None = None
    #: The producer reports every delivery (the flights count down), not only failures.
    reports_every_delivery = True

    def __init__(
        self,
        topic: str,
        commit_interval_s: float = DEFAULT_COMMIT_INTERVAL_MS / 1000,
        max_in_flight_rows: int = DEFAULT_MAX_IN_FLIGHT_ROWS,
    ) -> None:
        """Nothing in flight yet."""
        self.topic = topic
        self.commit_interval = commit_interval_s
        self.max_in_flight_rows = max_in_flight_rows
        self.watchdog = Watchdog("at-least-once: what was not committed is scored again")
        #: The fatal error a client reported (``error_cb``), if any: the run must stop.
        self.fatal: Any = None
        self._producer: Any = None
        self._consumer: Any = None
        self._done: Done = lambda work: None
        #: Handed to the producer, oldest first; the acknowledged ones leave from the front.
        self._flights: deque[Flight] = deque()
        #: Acknowledged flights (their next offsets, rows) whose commit is not confirmed yet.
        self._unconfirmed: deque[tuple[dict[int, int], int]] = deque()
        #: Per partition: the committable offset (acknowledged), the last one asked for, the last one confirmed.
        self._acked: dict[int, int] = {}
        self._asked: dict[int, int] = {}
        self._confirmed: dict[int, int] = {}
        #: Rows handed to the producer whose commit is not confirmed yet.
        self.in_flight_rows = 0
        self._last_commit = time.monotonic()

    def start(self, producer: Any, consumer: Any, done: Done) -> None:
        """Use these clients (the consumer built with ``on_commit=self.on_commit``); ``done`` gets finished work."""
        self._producer, self._consumer, self._done = producer, consumer, done

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

    # --- a batch's life -----------------------------------------------------------------------

    def open(self, batch: Sequence[Any], work: Any) -> Flight:
        """A batch's outputs are about to be produced: its flight (pass ``flight.on_delivery`` to ``produce``)."""
        flight = Flight(batch, work)
        self._flights.append(flight)
        self.in_flight_rows += flight.rows
        return flight

    def produced(self, flight: Flight) -> None:
        """Every output and dead letter of ``flight`` was handed to the producer."""
        flight.produced = True

    def tick(self, *, between_batches: bool = True) -> None:
        """Serve delivery reports; commit what is acknowledged once the interval has passed.

        Raises:
            KafkaScorerError: an output or dead letter was refused (the acknowledged offsets
                before it may still be committed by :meth:`abandon`).
        """
        self._producer.poll(0)
        self._advance()
        if self._acked != self._asked and time.monotonic() - self._last_commit >= self.commit_interval:
            self._commit(asynchronous=True)

    def wait_for_room(self, rows: int) -> None:
        """Before ``rows`` more rows go in flight: wait while the bound would be passed.

        Raises:
            KafkaScorerError: an output or dead letter was refused meanwhile.
        """
        if self.in_flight_rows + rows <= self.max_in_flight_rows or not self.in_flight_rows:
            return
        while self.in_flight_rows + rows > self.max_in_flight_rows and self.in_flight_rows:
            self._producer.poll(0.005)
            self._advance()
            if self._unconfirmed:
                self._commit(asynchronous=False)  # confirmed at once: the rows leave the bound
            self.check_fatal()

    def drain(self) -> None:
        """Wait until everything produced is acknowledged, then commit exactly that (shutdown, revoke).

        Raises:
            KafkaScorerError: an output or dead letter was refused; only the offsets before it are committed.
        """
        while self._producer.flush(1.0) > 0:
            log.warning("waiting for %d output(s) to be acknowledged", len(self._producer))
            self.check_fatal()
        self._advance()
        if self._acked != self._asked or self._unconfirmed:
            self._commit(asynchronous=False)

    def forget(self, partitions: Iterable[int]) -> None:
        """``partitions`` were lost to another member: never commit their offsets."""
        lost = set(partitions)
        for flight in self._flights:
            for p in lost:
                flight.next.pop(p, None)
        for offsets, _ in self._unconfirmed:
            for p in lost:
                offsets.pop(p, None)
        for offsets in (self._acked, self._asked, self._confirmed):
            for p in lost:
                offsets.pop(p, None)
        self._release_confirmed()

    def abandon(self) -> None:
        """The run failed: commit the offsets already acknowledged (never more); nothing to abort."""
        if self._consumer is None:
            return
        try:
            self._producer.poll(0)
            self._advance()
        except KafkaScorerError:
            pass  # the refused flight stops the watermark; what came before it is committable
        if self._acked != self._asked:
            try:
                self._commit(asynchronous=False)
            except Exception as e:  # the consumer may be what failed
                log.warning("could not commit the acknowledged offsets while stopping: %s", e)

    @property
    def flights(self) -> list[Flight]:
        """Batches handed to the producer and not acknowledged (exactly-once: not committed) yet, oldest first."""
        return list(self._flights)

    # --- commits ------------------------------------------------------------------------------

    def _advance(self) -> None:
        """Move the watermark past the acknowledged flights at the front.

        Raises:
            KafkaScorerError: a flight's output or dead letter was refused.
        """
        flights = self._flights
        moved = False
        while flights and flights[0].acknowledged:
            flight = flights[0]
            if flight.errors:
                break
            flights.popleft()
            self._acked.update(flight.next)
            self._unconfirmed.append((flight.next, flight.rows))
            self._done(flight.work)
            moved = True
        if moved:  # a flight of lost partitions only has nothing left to confirm
            self._release_confirmed()
        for flight in flights:
            if flight.errors:
                errors = flight.errors
                msg = (
                    f"{len(errors)} output(s) could not be delivered (first: {errors[0]}); "
                    "offsets from that batch on are not committed"
                )
                raise KafkaScorerError(msg)

    def on_commit(self, err: Any, partitions: list[Any]) -> None:
        """The consumer's commit callback: offsets the group coordinator has stored."""
        if err is not None:
            log.warning("committing offsets failed (%s); the next commit covers them", err)
            self._asked = {}  # ask again at the next interval
            return
        for tp in partitions:
            if tp.topic == self.topic and tp.error is None and tp.offset >= 0:
                self._confirm(tp.partition, tp.offset)
        self._release_confirmed()

    def _confirm(self, partition: int, offset: int) -> None:
        if offset > self._confirmed.get(partition, -1):
            self._confirmed[partition] = offset

    def _release_confirmed(self) -> None:
        confirmed, unconfirmed = self._confirmed, self._unconfirmed
        while unconfirmed and all(confirmed.get(p, -1) >= o for p, o in unconfirmed[0][0].items()):
            self.in_flight_rows -= unconfirmed.popleft()[1]

    def _commit(self, *, asynchronous: bool) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        self._last_commit = time.monotonic()
        wanted = dict(self._acked)
        offsets = [TopicPartition(self.topic, p, o) for p, o in wanted.items()]
        if not offsets:
            return
        if asynchronous:
            try:
                self._consumer.commit(offsets=offsets, asynchronous=True)
                self._asked = wanted
            except KafkaException as e:  # e.g. no coordinator right now: the next interval tries again
                log.warning("could not ask to commit offsets (%s); trying again", e.args[0])
            return
        for attempt in range(60):
            self.watchdog.arm("commit", TXN_TIMEOUT)  # no timeout of its own: see the watchdog
            try:
                self._consumer.commit(offsets=offsets, asynchronous=False)
                self._asked = wanted
                for p, o in wanted.items():
                    self._confirm(p, o)
                self._release_confirmed()
                return
            except KafkaException as e:
                err = e.args[0]
                if not err.retriable() or attempt == 59:
                    # The outputs are out; their inputs will be scored again after a restart.
                    log.error("could not commit offsets (%s); they will be scored again", err)
                    self._asked = wanted
                    return
                time.sleep(0.5)
            finally:
                self.watchdog.disarm()


class ExactlyOnce(AtLeastOnce):
    """One transaction spans the batches of a commit interval: their outputs, dead letters and offsets.

    Args:
        topic: the input topic.
        transactional_id: the producer's transactional id (stable across restarts of one scorer,
            so a restart fences its predecessor and aborts its open transaction at once).
        commit_interval_s: a transaction is committed once it has been open this long, or
            once it holds ``max_in_flight_rows`` consumed rows (its batches are kept until it
            commits), and at shutdown and revoke.
        max_in_flight_rows: see ``commit_interval_s``.
    """

    reports_every_delivery = False  # commit_transaction waits for every acknowledgement itself

    def __init__(
        self,
        topic: str,
        transactional_id: str,
        commit_interval_s: float = DEFAULT_COMMIT_INTERVAL_MS / 1000,
        max_in_flight_rows: int = DEFAULT_MAX_IN_FLIGHT_ROWS,
    ) -> None:
        """Transactions under ``transactional_id``; none open, none aborted yet."""
        super().__init__(topic, commit_interval_s, max_in_flight_rows)
        self.transactional_id = transactional_id
        self.watchdog = Watchdog(f"transactional id {transactional_id}: the restart aborts the open transaction")
        self._aborts_in_a_row = 0
        self._open_since: float | None = None

    def start(self, producer: Any, consumer: Any, done: Done) -> None:
        """Use these clients; fence an earlier producer with this transactional id."""
        super().start(producer, consumer, done)
        producer.init_transactions(30)

    def open(self, batch: Sequence[Any], work: Any) -> Flight:
        """A batch joins the open transaction (one begins if none is open)."""
        if self._open_since is None:
            self._producer.begin_transaction()
            self._open_since = time.monotonic()
        flight = Flight(batch, work)
        self._flights.append(flight)
        self.in_flight_rows += flight.rows
        return flight

    def tick(self, *, between_batches: bool = True) -> None:
        """Serve the producer's callbacks; commit the transaction once the interval has passed (between batches)."""
        self._producer.poll(0)
        if between_batches and self._due():
            self.commit()

    def produced(self, flight: Flight) -> None:
        """Every output of ``flight`` is in the transaction; commit it if the interval has passed."""
        flight.produced = True
        if self._due():
            self.commit()

    def wait_for_room(self, rows: int) -> None:
        """A transaction bounds itself (the commit interval); nothing to wait for."""

    def drain(self) -> None:
        """Commit the open transaction (shutdown, revoke)."""
        if self._open_since is not None:
            self.commit()

    def _due(self) -> bool:
        since = self._open_since
        if since is None:
            return False
        return self.in_flight_rows >= self.max_in_flight_rows or time.monotonic() - since >= self.commit_interval

    def commit(self) -> None:
        """Put the consumed offsets of the transaction's batches into it, then commit it."""
        from confluent_kafka import TopicPartition

        offsets: dict[int, int] = {}
        for flight in self._flights:
            offsets.update(flight.next)
        group = self._consumer.consumer_group_metadata()
        if offsets:
            tps = [TopicPartition(self.topic, p, o) for p, o in offsets.items()]
            self.watchdog.arm("send_offsets_to_transaction", TXN_TIMEOUT)
            try:
                self._producer.send_offsets_to_transaction(tps, group, TXN_TIMEOUT)
            finally:
                self.watchdog.disarm()
        self._commit_transaction()
        self._open_since = None
        self.in_flight_rows = 0
        self._aborts_in_a_row = 0
        flights, self._flights = self._flights, deque()
        for flight in flights:
            self._done(flight.work)

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
            finally:
                self.watchdog.disarm()

    def abort(self, err: Any) -> dict[int, int]:
        """Abort the open transaction after ``err`` (a ``KafkaError``); the first offset of its messages per partition.

        Raises:
            KafkaScorerError: ``err`` is fatal or needs no abort, or too many transactions were
                aborted in a row (a batch that can never commit).
        """
        rows = sum(f.rows for f in self._flights)
        if err.fatal() or not err.txn_requires_abort():
            msg = f"transaction of {rows} message(s) from '{self.topic}' failed: {err}"
            raise KafkaScorerError(msg)
        self._aborts_in_a_row += 1
        if self._aborts_in_a_row > MAX_ABORTS_IN_A_ROW:
            msg = (
                f"{self._aborts_in_a_row} transactions aborted in a row (last: {err}); "
                f"the batches from '{self.topic}' cannot be committed"
            )
            raise KafkaScorerError(msg)
        log.warning("aborting the transaction of %d message(s): %s; they will be scored again", rows, err)
        self._producer.abort_transaction(TXN_TIMEOUT)
        first: dict[int, int] = {}
        for flight in self._flights:
            for p, o in flight.first.items():
                first.setdefault(p, o)
        self._flights = deque()
        self._open_since = None
        self.in_flight_rows = 0
        return first

    def abandon(self) -> None:
        """The run failed: abort the open transaction, if any."""
        if self._producer is None:
            return
        try:
            self._producer.abort_transaction(10)
        except Exception as e:  # no transaction open, or the producer is fenced: nothing to abort
            log.debug("abort_transaction: %s", e)
