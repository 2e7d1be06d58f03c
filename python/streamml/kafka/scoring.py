"""The worker thread of ``streamml score``: a batch's messages scored in chunks, drift counted.

The Rust step (``_streamml.MessageScorer``) decodes, scores and encodes a chunk of messages in one
call with the GIL released; the loop produces one chunk's outputs while the next is scored. With
challengers (shadow), the same call scores the chunk with every version, decoding it once for all
the versions of the same inputs. With drift counters, each run of messages in one drift window
(by message timestamp) is counted in that window's counters; only the worker thread touches them
while a batch is being scored.
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
#: A chunk scored with challengers: the champion's :data:`Scored` (its seconds those of the whole
#: step), each challenger's (seconds 0), and each message's canary side (``None`` without a canary).
Shadowed = tuple[Scored, list[Scored], list[bool] | None]


@dataclass
class Scoring:
    """A batch being scored: its chunks' results (in order) and what has been produced so far."""

    batch: list[Any]
    #: Per chunk, in order: its :data:`Scored`; with challengers, its :data:`Shadowed`.
    chunks: deque[Future[Any]] = field(default_factory=deque)
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
        every chunk beside it (shadow; one decoding of the chunk for every version of the same
        inputs), and ``canary(values)`` picks each message's side.
        """
        values = [m.value() or b"" for m in batch]
        scoring = Scoring(batch, version=version, challengers=list(challengers))
        champion = (self.codec, self.drift) if version is None else (version.codec, version.drift)
        versions = [champion, *((c.codec, c.drift) for c in challengers)]
        timed = any(drift is not None for _, drift in versions)
        for s in range(0, len(values), SCORE_CHUNK):
            chunk = values[s : s + SCORE_CHUNK]
            stamps = [timestamp_ms(m) for m in batch[s : s + SCORE_CHUNK]] if timed else None
            if challengers:
                scoring.chunks.append(self._pool.submit(self._shadowed, chunk, stamps, versions, canary))
            else:
                scoring.chunks.append(self._pool.submit(self._score, chunk, stamps, versions))
        return scoring

    def _score(self, values: list[bytes], times: list[int] | None, versions: Sequence[Any]) -> Scored:
        """Score a chunk with the champion alone."""
        started = time.perf_counter()
        [(outputs, errors)] = self._score_all(values, times, versions)
        return outputs, errors, time.perf_counter() - started

    def _shadowed(self, values: list[bytes], times: list[int] | None, versions: Sequence[Any], canary: Any) -> Shadowed:
        """Score a chunk with the champion and every challenger; the canary sides."""
        started = time.perf_counter()
        (outputs, errors), *others = self._score_all(values, times, versions)
        sides = canary(values) if canary is not None else None
        return (outputs, errors, time.perf_counter() - started), [(o, e, 0.0) for o, e in others], sides

    def _score_all(
        self, values: list[bytes], times: list[int] | None, versions: Sequence[tuple[Any, DriftWindows | None]]
    ) -> list[tuple[list[bytes | None], list[tuple[int, str]]]]:
        """Each version's outputs and failures of a chunk (``versions``: ``(codec, drift)``, the champion first).

        One Rust call scores the chunk with every version; with drift counters, one call per run
        of messages in one drift window (by ``times``, the messages' timestamps), each version
        counting the run in that window's counters.
        """
        (codec, _), shadows = versions[0], versions[1:]
        windows = [drift for _, drift in versions if drift is not None]
        if not windows or times is None:
            scored = codec.score_shadowed(values, None, [(c, None) for c, _ in shadows])
            return [(outputs, errors) for outputs, errors, _ in scored]
        results: list[tuple[list[bytes | None], list[tuple[int, str]]]] = [([], []) for _ in versions]
        run = 0
        for i in range(1, len(values) + 1):
            if i < len(values) and all(times[i] // w.window_ms == times[run] // w.window_ms for w in windows):
                continue
            counters = [None if drift is None else drift.monitor_for(times[run])._inner for _, drift in versions]
            shadowed = [(c, k) for (c, _), k in zip(shadows, counters[1:], strict=True)]
            scored = codec.score_shadowed(values[run:i], counters[0], shadowed)
            for (outputs, errors), (out, errs, drift_error) in zip(results, scored, strict=True):
                outputs.extend(out)
                errors.extend((run + k, reason) for k, reason in errs)
                if drift_error and not self._drift_warned:
                    self._drift_warned = True
                    log.warning("drift counters could not count (predictions are unaffected): %s", drift_error)
            run = i
        return results

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
