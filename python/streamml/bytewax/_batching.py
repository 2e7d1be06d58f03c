"""Micro-batching per key for ``predict``, by the design's rule.

A key's batch is scored when it holds ``max_rows`` rows or when its oldest
row has waited ``max_wait`` (from that row's arrival, not the last one's),
and at the end of the input. The rows waiting are the state Bytewax
snapshots for recovery, together with the oldest row's arrival time, so a
resumed flow scores them (and flushes them at once if their time is up).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.operators import StatefulBatchLogic

#: The snapshot: the rows waiting, in order, and when the first of them arrived.
State = tuple[list[Any], datetime | None]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class BatchLogic(StatefulBatchLogic[Any, Any, State]):
    """One key's rows waiting to be scored; emits what ``score`` returns, once per scored batch."""

    def __init__(
        self,
        score: Callable[[list[Any]], Any],
        max_rows: int,
        max_wait: timedelta | None,
        resume: State | None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """Start empty, or from a snapshot; ``clock`` (tests) gives the time, UTC."""
        self._clock = clock or _utc_now
        self._score = score
        self._max_rows = max_rows
        self._max_wait = max_wait
        pending, first = resume if resume is not None else ([], None)
        self._pending: list[Any] = list(pending)
        self._first: datetime | None = first

    def _result(self, out: list[Any]) -> tuple[list[Any], bool]:
        return out, (StatefulBatchLogic.DISCARD if not self._pending else StatefulBatchLogic.RETAIN)

    def _flush(self) -> list[Any]:
        out = [self._score(self._pending)] if self._pending else []
        self._pending = []
        self._first = None
        return out

    def on_batch(self, values: list[Any]) -> tuple[list[Any], bool]:
        """Buffer the rows; score every full batch, and all if the oldest is due."""
        now = self._clock()
        if not self._pending:
            self._first = now
        self._pending.extend(values)
        out: list[Any] = []
        if len(self._pending) >= self._max_rows:
            n = self._max_rows
            full = len(self._pending) // n * n
            for start in range(0, full, n):
                out.append(self._score(self._pending[start : start + n]))
            del self._pending[:full]
            # The rows left came in this call (fewer than max_rows were waiting before).
            self._first = now if self._pending else None
        if self._max_wait is not None and self._first is not None and now - self._first >= self._max_wait:
            out.extend(self._flush())
        return self._result(out)

    def on_notify(self) -> tuple[list[Any], bool]:
        """The oldest row has waited ``max_wait``: score what is waiting."""
        return self._result(self._flush())

    def on_eof(self) -> tuple[list[Any], bool]:
        """End of the input: score what is waiting."""
        return self._result(self._flush())

    def notify_at(self) -> datetime | None:
        """When the oldest row waiting will have waited ``max_wait``."""
        if self._max_wait is None or self._first is None:
            return None
        return self._first + self._max_wait

    def snapshot(self) -> State:
        """The rows waiting (a copy of the list; rows are never mutated) and the oldest's arrival."""
        return (list(self._pending), self._first)


def batch_builder(
    score: Callable[[list[Any]], Any], max_rows: int, max_wait: timedelta | None
) -> Callable[[State | None], BatchLogic]:
    """The ``builder`` of ``op.stateful_batch``: a :class:`BatchLogic` per key."""

    def build(resume: State | None) -> BatchLogic:
        return BatchLogic(score, max_rows, max_wait, resume)

    return build
