"""The worker thread of ``streamml score``: a batch's messages scored in chunks, drift counted.

The Rust step (``_streamml.MessageScorer``) decodes, scores and encodes a chunk of messages in one
call with the GIL released; the loop produces one chunk's outputs while the next is scored. With
drift counters, each run of messages in one drift window (by message timestamp) is counted in
that window's counters; only the worker thread touches them while a batch is being scored.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from streamml.drift import DriftWindows
from streamml.kafka.config import KafkaScorerError
from streamml.kafka.sinks import timestamp_ms

log = logging.getLogger("streamml.kafka")

#: Messages scored per call of the Rust step: the next chunk is scored while one is produced.
SCORE_CHUNK = 500
#: A batch whose messages all failed inside the model (at least this many) stops the scorer:
#: the model is failing, not the messages, and dead-lettering the whole stream would commit it.
MODEL_FAULT_ROWS = 32
#: In a reason, the mark of a model that failed (``PredictError``'s text), not of a message that could not be read.
_MODEL_FAILED = " failed on a batch of "

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
    #: The champion's version that scores it (:class:`~streamml.kafka.versions.Serving`), ``None``: the worker's.
    version: Any = None
    #: The challengers' versions that score it too (shadow), in order.
    challengers: list[Any] = field(default_factory=list)
    #: Per chunk (with challengers): each challenger's :data:`Scored` and the canary side of each message.
    shadow: deque[Future[tuple[list[Scored], list[bool] | None]]] = field(default_factory=deque)


class Worker:
    """Scores batches on one thread, a chunk at a time.

    Args:
        codec: the Rust step (``_streamml.MessageScorer``).
        drift: the drift windows to count in (``None``: no drift counters).
    """

    def __init__(self, codec: Any, drift: DriftWindows | None) -> None:
        """A worker thread (started on first use)."""
        self.codec, self.drift = codec, drift
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="streamml-score")
        self._drift_warned = False

    def submit(
        self,
        batch: list[Any],
        version: Any = None,
        challengers: Sequence[Any] = (),
        canary: Callable[[list[bytes]], list[bool]] | None = None,
    ) -> Scoring:
        """Hand ``batch`` (consumed messages) to the thread, in chunks.

        ``version`` (a :class:`~streamml.kafka.versions.Serving`: its codec and drift windows)
        scores the whole batch (default: the worker's codec); each of ``challengers`` scores
        every chunk after it (shadow), and ``canary(values)`` picks each message's side.
        """
        values = [m.value() or b"" for m in batch]
        scoring = Scoring(batch, version=version, challengers=list(challengers))
        codec, drift = (self.codec, self.drift) if version is None else (version.codec, version.drift)
        for s in range(0, len(values), SCORE_CHUNK):
            scoring.chunks.append(self._submit(batch, values, s, codec, drift))
            if challengers:
                chunk = values[s : s + SCORE_CHUNK]
                scoring.shadow.append(
                    self._pool.submit(self._shadow, batch[s : s + SCORE_CHUNK], chunk, challengers, canary)
                )
        return scoring

    def _submit(self, batch: list[Any], values: list[bytes], start: int, codec: Any, drift: Any) -> Future[Scored]:
        end = start + SCORE_CHUNK
        stamps = [timestamp_ms(m) for m in batch[start:end]] if drift is not None else None
        return self._pool.submit(self._score, values[start:end], stamps, codec, drift)

    def _shadow(
        self, messages: list[Any], values: list[bytes], challengers: Sequence[Any], canary: Any
    ) -> tuple[list[Scored], list[bool] | None]:
        """Score a chunk with every challenger (each with its own drift windows); the canary sides."""
        results = []
        for c in challengers:
            stamps = [timestamp_ms(m) for m in messages] if c.drift is not None else None
            results.append(self._score(values, stamps, c.codec, c.drift))
        return results, (canary(values) if canary is not None else None)

    def _score(self, values: list[bytes], times: list[int] | None, codec: Any = None, drift: Any = None) -> Scored:
        """Score a chunk; with drift, ``times`` are the messages' timestamps (``timestamp_ms``)."""
        started = time.perf_counter()
        codec = self.codec if codec is None else codec
        if drift is None or times is None:
            outputs, errors, _ = codec.score(values)
            return outputs, errors, time.perf_counter() - started
        outputs, errors = [], []
        window = drift.window_ms
        run = 0
        for i in range(1, len(values) + 1):
            if i < len(values) and times[i] // window == times[run] // window:
                continue
            monitor = drift.monitor_for(times[run])
            out, errs, drift_error = codec.score(values[run:i], monitor._inner)
            outputs.extend(out)
            errors.extend((run + k, reason) for k, reason in errs)
            if drift_error and not self._drift_warned:
                self._drift_warned = True
                log.warning("drift counters could not count (predictions are unaffected): %s", drift_error)
            run = i
        return outputs, errors, time.perf_counter() - started

    def shutdown(self) -> None:
        """Let the thread end once it is idle."""
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
