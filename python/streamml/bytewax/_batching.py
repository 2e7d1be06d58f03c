"""Micro-batching per key for ``predict``: :mod:`streamml.batching`'s rule on Bytewax's clock.

A key's rows wait here until :class:`streamml.batching.MicroBatcher` says to score
them; Bytewax's ``notify_at`` is the batcher's deadline. The rows waiting are the
state Bytewax snapshots for recovery, together with the oldest row's arrival time,
so a resumed flow scores them (at once if their time is up).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bytewax.operators import StatefulBatchLogic

from streamml.batching import BatchPolicy, MicroBatcher, datetime_of, ns_of

#: The snapshot: the rows waiting, in order, and when the first of them arrived.
State = tuple[list[Any], datetime | None]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class BatchLogic(StatefulBatchLogic[Any, Any, State]):
    """One key's rows waiting to be scored; emits what ``score`` returns, once per scored batch."""

    def __init__(
        self,
        score: Callable[[list[Any]], Any],
        policy: BatchPolicy,
        resume: State | None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """Start empty, or from a snapshot; ``clock`` (tests) gives the time, UTC."""
        self._clock = clock or _utc_now
        self._score = score
        pending, first = resume if resume is not None else ([], None)
        self._pending: list[Any] = list(pending)
        first_ns = ns_of(first) if first is not None and self._pending else None
        self._batcher = MicroBatcher(policy, len(self._pending), first_ns)

    def _take(self, sizes: list[int]) -> tuple[list[Any], bool]:
        """Score the first ``sizes`` rows waiting, a batch per size, in order."""
        out: list[Any] = []
        start = 0
        for n in sizes:
            if not n:
                continue
            out.append(self._score(self._pending[start : start + n]))
            start += n
        if start:
            del self._pending[:start]
        return out, (StatefulBatchLogic.DISCARD if not self._pending else StatefulBatchLogic.RETAIN)

    def on_batch(self, values: list[Any]) -> tuple[list[Any], bool]:
        """Buffer the rows (one hand-over); score the batches the rule says are due."""
        self._pending.extend(values)
        return self._take(self._batcher.add(len(values), ns_of(self._clock())))

    def on_notify(self) -> tuple[list[Any], bool]:
        """The oldest row has waited ``max_wait``: score what is waiting.

        Bytewax calls this once :meth:`notify_at` has passed on its clock, so the rows are due
        (no second reading of the clock, which could disagree by a microsecond).
        """
        return self._take([self._batcher.flush()])

    def on_eof(self) -> tuple[list[Any], bool]:
        """End of the input: score what is waiting."""
        return self._take([self._batcher.flush()])

    def notify_at(self) -> datetime | None:
        """When the oldest row waiting will have waited ``max_wait``."""
        deadline = self._batcher.deadline()
        return None if deadline is None else datetime_of(deadline)

    def snapshot(self) -> State:
        """The rows waiting (a copy of the list; rows are never mutated) and the oldest's arrival."""
        first = self._batcher.first_arrival
        return (list(self._pending), None if first is None else datetime_of(first))


def batch_builder(score: Callable[[list[Any]], Any], policy: BatchPolicy) -> Callable[[State | None], BatchLogic]:
    """The ``builder`` of ``op.stateful_batch``: a :class:`BatchLogic` per key."""

    def build(resume: State | None) -> BatchLogic:
        return BatchLogic(score, policy, resume)

    return build
