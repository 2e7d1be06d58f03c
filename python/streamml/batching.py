"""The micro-batching rule every streamml host follows, and its defaults.

A host (a Bytewax step, the Kafka consume loop, a Flink function) keeps the rows
it has received and owns its clock and timers; a :class:`MicroBatcher` counts
those rows and says when to score them:

- a batch is scored once it holds ``max_batch_rows`` rows, or once its
  **oldest** row has waited ``max_wait`` — measured from that row's arrival, so
  a steady trickle cannot hold a row back (it is not an inactivity timeout);
- the host hands rows over as they come, several at once when its engine
  delivers them together (a Bytewax batch, the messages one Kafka poll returned,
  one row at a time in Flink): full batches are split off; then, when the oldest
  row waiting is due, everything waiting is scored, the rows that came with it
  included;
- a zero ``max_wait`` therefore scores what is waiting at the end of each
  hand-over (each Bytewax batch, each poll; each row in Flink, which hands rows
  over one by one);
- the host scores what is waiting on demand: shutdown, end of input, a Kafka
  rebalance before partitions are revoked, a checkpoint (or keeps it in state).

Times are integers in nanoseconds on any clock the host chooses (``time.monotonic_ns()``, or a
datetime converted by :func:`ns_of`). Java's ``dev.streamml.flink.MicroBatcher`` is the same rule;
one table of cases (``tests/fixtures/batching.json``) runs against both.

Examples:
    >>> from datetime import timedelta
    >>> b = MicroBatcher(BatchPolicy(max_batch_rows=3, max_wait=timedelta(milliseconds=10)))
    >>> b.add(2, now=0)            # two rows at t=0: not full, not due
    []
    >>> b.due_in(now=4_000_000)   # nanoseconds until the oldest has waited 10 ms
    6000000
    >>> b.add(2, now=5_000_000)   # a full batch of 3 goes; the fourth row waits from t=5 ms
    [3]
    >>> b.poll(now=15_000_000)    # a timer: the fourth row is due
    1
    >>> b.pending, b.deadline()
    (0, None)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

#: Rows per batch where a host batches by the rule and none is given (every host, the CLI too).
DEFAULT_MAX_BATCH_ROWS = 1024
#: How long the oldest row may wait where none is given (every host, the CLI too).
DEFAULT_MAX_WAIT = timedelta(milliseconds=10)

_ONE_US = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ns_of(t: datetime | timedelta) -> int:
    """A datetime (aware: since the Unix epoch) or a timedelta in nanoseconds, exactly.

    Examples:
        >>> ns_of(timedelta(milliseconds=1, microseconds=5))
        1005000
    """
    if isinstance(t, datetime):
        t = t - _EPOCH
    return t // _ONE_US * 1000


def datetime_of(ns: int) -> datetime:
    """The aware UTC datetime of ``ns`` nanoseconds since the Unix epoch (to the microsecond)."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


@dataclass(frozen=True)
class BatchPolicy:
    """When a batch is scored: at ``max_batch_rows`` rows, or when its oldest row has waited ``max_wait``.

    Attributes:
        max_batch_rows: score a batch once it holds this many rows (at least 1).
        max_wait: score a batch once its oldest row has waited this long (zero: at the
            end of each hand-over of rows; see the module docs).

    Raises:
        ValueError: ``max_batch_rows`` is less than 1, or ``max_wait`` is negative.
        TypeError: ``max_wait`` is not a ``datetime.timedelta``.
    """

    max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS
    max_wait: timedelta = DEFAULT_MAX_WAIT

    def __post_init__(self) -> None:
        """Check both knobs."""
        rows = self.max_batch_rows
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
            msg = f"max_batch_rows must be an integer of at least 1, got {rows!r}"
            raise ValueError(msg)
        if not isinstance(self.max_wait, timedelta):
            msg = f"max_wait must be a datetime.timedelta, got a {type(self.max_wait).__name__}"
            raise TypeError(msg)
        if self.max_wait < timedelta(0):
            msg = f"max_wait must not be negative, got {self.max_wait}"
            raise ValueError(msg)


class MicroBatcher:
    """Counts the rows a host holds for one batch and says when to score them (the rule above).

    It holds no rows: each call returns how many of the host's oldest rows to score now,
    and the host takes that many from the front of what it keeps, in order.
    """

    __slots__ = ("_first", "_max_rows", "_pending", "_wait", "policy")

    def __init__(self, policy: BatchPolicy, pending: int = 0, first_arrival: int | None = None) -> None:
        """Start empty, or resume ``pending`` rows whose oldest arrived at ``first_arrival`` (ns)."""
        if pending and first_arrival is None:
            msg = f"resuming {pending} pending row(s) needs the oldest's arrival; got first_arrival=None"
            raise ValueError(msg)
        self.policy = policy
        self._max_rows = policy.max_batch_rows
        self._wait = ns_of(policy.max_wait)
        self._pending = pending
        self._first = first_arrival if pending else None

    @property
    def pending(self) -> int:
        """Rows waiting."""
        return self._pending

    @property
    def first_arrival(self) -> int | None:
        """When the oldest row waiting arrived (ns), or None."""
        return self._first

    def add(self, rows: int, now: int) -> list[int]:
        """``rows`` rows arrived together at ``now``: the sizes of the batches to score now, oldest first."""
        out: list[int] = []
        if rows <= 0:
            return out
        if not self._pending:
            self._first = now
        old = self._pending
        self._pending += rows
        taken = 0
        while self._pending >= self._max_rows:
            out.append(self._max_rows)
            self._pending -= self._max_rows
            taken += self._max_rows
        if taken >= old and out:
            self._first = now  # every row left came in this hand-over
        first = self._first
        if not self._pending:
            self._first = None
        elif first is not None and now - first >= self._wait:
            out.append(self._take())
        return out

    def deadline(self) -> int | None:
        """When the rows waiting are due (ns): the oldest's arrival plus ``max_wait``; None if none wait."""
        return None if self._first is None else self._first + self._wait

    def due_in(self, now: int) -> int | None:
        """Nanoseconds from ``now`` until the rows waiting are due (0: due); None if none wait."""
        return None if self._first is None else max(0, self._first + self._wait - now)

    def is_due(self, now: int) -> bool:
        """Whether rows wait and the oldest has waited ``max_wait`` by ``now``."""
        return self._first is not None and now - self._first >= self._wait

    def poll(self, now: int) -> int:
        """The rows to score now because the oldest is due (a timer fired, a poll returned); 0 if not due."""
        return self._take() if self.is_due(now) else 0

    def flush(self) -> int:
        """All the rows waiting, to be scored now (shutdown, end of input, rebalance, checkpoint)."""
        return self._take()

    def _take(self) -> int:
        n = self._pending
        self._pending = 0
        self._first = None
        return n
