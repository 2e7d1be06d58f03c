"""The worker threads of ``streamml score``: a batch's messages scored in chunks, drift counted.

The Rust step (``_streamml.MessageScorer``) decodes, scores and encodes a chunk of messages in one
call with the GIL released. :data:`SCORE_THREADS` threads score chunks at once (a machine's
second core scores the next chunk while the first scores this one) and the loop produces each
chunk's outputs in order while the next ones are scored, so the order of outputs is that of the
inputs whatever thread scored them. With drift counters, the loop assigns each run of messages in
one drift window (by message timestamp) to that window's counters when it hands a chunk over (in
order, so windows open and close as with one thread); a thread counts a run into counters of its
own and adds them to the window's under a lock, so the counts are those of one thread.
"""

from __future__ import annotations

import logging
import operator
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from streamml.drift import DriftWindows
from streamml.kafka.config import KafkaScorerError
from streamml.kafka.sinks import timestamp_ms

log = logging.getLogger("streamml.kafka")

#: Messages scored per call of the Rust step: the next chunks are scored while one is produced. A call
#: has a fixed cost (R1: ~0.09 ms), so 500 (2 % dearer per message than 1,000, 14 % cheaper than 250;
#: docs/performance.md) keeps two chunks of a default batch for the two threads.
SCORE_CHUNK = 500
#: Threads scoring chunks at once (the Rust step releases the GIL: they run on separate cores).
SCORE_THREADS = 2
#: A batch whose messages all failed inside the model (at least this many) stops the scorer:
#: the model is failing, not the messages, and dead-lettering the whole stream would commit it.
MODEL_FAULT_ROWS = 32
#: In a reason, the mark of a model that failed (``PredictError``'s text), not of a message that could not be read.
_MODEL_FAILED = " failed on a batch of "

_value = operator.methodcaller("value")
#: A chunk's result: an output per message (``None`` where it failed), ``(index, reason)`` of each failure, seconds.
Scored = tuple[list[bytes | None], list[tuple[int, str]], float]


@dataclass
class Scoring:
    """A batch being scored: its chunks' results (in order) and what has been produced so far."""

    batch: list[Any]
    chunks: deque[Future[Scored]] = field(default_factory=deque)
    produced: int = 0
    dead: int = 0
    seconds: float = 0.0
    #: Set when an aborted transaction rewound this batch before it was produced.
    rewound: bool = False
    #: Its outputs on their way (:class:`~streamml.kafka.delivery.Flight`), once it is being produced.
    flight: Any = None


class Worker:
    """Scores batches on :data:`SCORE_THREADS` threads, a chunk at a time; the chunks' results come back in order.

    Args:
        codec: the Rust step (``_streamml.MessageScorer``).
        drift: the drift windows to count in (``None``: no drift counters).
        threads: how many threads score chunks at once.
    """

    def __init__(self, codec: Any, drift: DriftWindows | None, threads: int = SCORE_THREADS) -> None:
        """Worker threads (started on first use)."""
        self.codec, self.drift = codec, drift
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="streamml-score")
        self._drift_warned = False
        #: Each thread's own drift counters (``_streamml.DriftCounters``, zero between runs).
        self._local = threading.local()
        #: Held while a thread adds its counts to a window's counters.
        self._merge = threading.Lock()

    def submit(self, batch: list[Any], codec: Any = None) -> Scoring:
        """Hand ``batch`` (consumed messages) to the threads in chunks, to score with ``codec`` (default: own)."""
        values = list(map(_value, batch))  # in C: no Python frame per message
        if None in values:  # a tombstone is an empty message (refused with a reason)
            values = [v or b"" for v in values]
        codec = self.codec if codec is None else codec
        return Scoring(batch, deque(self._submit(codec, batch, values, s) for s in range(0, len(values), SCORE_CHUNK)))

    def _submit(self, codec: Any, batch: list[Any], values: list[bytes], start: int) -> Future[Scored]:
        end = start + SCORE_CHUNK
        runs = self._drift_runs(batch[start:end]) if self.drift is not None else None
        return self._pool.submit(self._score, codec, values[start:end], runs)

    def _drift_runs(self, chunk: list[Any]) -> list[tuple[int, int, Any]]:
        """The runs of ``chunk`` in one drift window each: ``(start, end, that window's counters)``.

        Called in the order the chunks are scored in, so windows move forward as with one thread.
        """
        assert self.drift is not None
        times = [timestamp_ms(m) for m in chunk]
        window = self.drift.window_ms
        runs, run = [], 0
        for i in range(1, len(times) + 1):
            if i < len(times) and times[i] // window == times[run] // window:
                continue
            runs.append((run, i, self.drift.monitor_for(times[run])._inner))
            run = i
        return runs

    def _score(self, codec: Any, values: list[bytes], runs: list[tuple[int, int, Any]] | None) -> Scored:
        """Score a chunk with ``codec``; with drift, count each run in its window's counters (``runs``)."""
        started = time.perf_counter()
        if runs is None:
            outputs, errors, _ = codec.score(values)
            return outputs, errors, time.perf_counter() - started
        outputs, errors = [], []
        local = self._local.__dict__.get("counters")
        for start, end, counters in runs:
            if local is None:  # this thread's own, so that threads never count into one object at once
                local = self._local.counters = counters.copy()
                local.reset()
            out, errs, drift_error = codec.score(values[start:end], local)
            with self._merge:
                counters.merge(local)
            local.reset()
            outputs.extend(out)
            errors.extend((start + k, reason) for k, reason in errs)
            if drift_error and not self._drift_warned:
                self._drift_warned = True
                log.warning("drift counters could not count (predictions are unaffected): %s", drift_error)
        return outputs, errors, time.perf_counter() - started

    def shutdown(self) -> None:
        """Let the threads end once they are idle."""
        self._pool.shutdown(wait=False)


def check_model_fault(errors: Sequence[tuple[int, str]], rows: int) -> None:
    """Stop when a chunk's messages all failed inside the model: the model is failing, not the messages.

    Raises:
        KafkaScorerError: all ``rows`` (at least :data:`MODEL_FAULT_ROWS`) failed inside the model.
    """
    failed = [reason for _, reason in errors if _MODEL_FAILED in reason]
    if len(failed) == rows and rows >= MODEL_FAULT_ROWS:
        msg = f"the model failed on all {rows} message(s) of a batch (first: {failed[0]}); fix or roll back the model"
        raise KafkaScorerError(msg)
