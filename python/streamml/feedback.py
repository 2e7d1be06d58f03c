"""The feedback join: labels that arrive later, joined onto the predictions they belong to.

:class:`FeedbackJoin` is the join state and the quality accounting of one shard;
hosts (the Bytewax operator :func:`streamml.bytewax.feedback.feedback_join`, the
``streamml feedback`` service, the demo) feed it Arrow batches. It works a batch
at a time, in Rust (``operators/core/src/feedback``) with the GIL released: pending
predictions in a hash table per id kind (int64 or string, read straight from the Arrow
column), expiry buckets in time order, and the quality sums in numpy's summation order
(the numbers are those of the former numpy implementation, bit for bit). Its state
is compact bytes with a CRC-32C in a versioned header (:meth:`FeedbackJoin.snapshot`);
tampered or truncated bytes are refused on restore.

Event-time rules (``ttl`` and ``window`` in the unit of the time columns, e.g. ms):

- A prediction waits ``ttl`` for its label. A label with ``label_time - event_time <= ttl``
  is **joined**: a feedback row, and the quality of the prediction's window is revised.
- The watermark is the largest accepted label time: how far the label stream has come (the
  prediction stream, usually ahead, does not move it, or predictions would expire before
  their labels could arrive). A prediction with ``event_time + ttl < watermark`` is
  **expired** (counted once, in its window). So is a
  prediction whose label comes after the ttl; that label is **late**, counted in the
  prediction's window. The ids of expired predictions are kept for another ``late_horizon``
  (default ``ttl``) to tell late labels from orphans; pending state is therefore bounded by
  the predictions within ``ttl + late_horizon`` of the label stream's time.
- A label for an id never seen (or forgotten beyond the horizon) is an **orphan**, counted
  in the window of its label time.
- A prediction id seen twice while pending keeps the later row (counted as ``duplicates``).
- **The first label wins.** Ids that got a label (joined, or late) are remembered as long as
  tombstones; a second label for one is a **duplicate label** (``duplicate_labels``, in the
  prediction's window): not joined again, not an orphan.
- **Future events are refused.** One label stamped years ahead would move the watermark and
  expire every pending prediction, so a label with ``label_time`` more than ``max_future_skew``
  (default 1 h) ahead of the wall clock, or more than ``max_watermark_jump`` (default: no cap)
  ahead of the watermark, is refused: counted (``future_labels``), handed to the host
  (:meth:`FeedbackJoin.take_refused`; hosts dead-letter it), not joined, and it moves nothing.
  A prediction more than ``max_future_skew`` ahead of the wall clock likewise
  (``future_predictions``; the watermark cap does not apply to predictions, which run ahead).
  Both are counted in the window of the watermark (of the wall clock before the first label).
  The wall-clock cap reads times as ms since the Unix epoch: pass ``max_future_skew=None`` for
  time columns in other units.
- **Non-finite scores** (NaN, ±inf) of joined pairs are counted (``non_finite_scores``; a
  non-finite label: ``non_finite_labels``) and left out of every quality sum and histogram, so
  one bad score cannot make a window's log loss NaN. Such pairs still count as ``labeled``
  (label coverage is unchanged); means divide by ``labeled - non_finite_scores -
  non_finite_labels``.

Quality per window (all sums, so windows and shards add up):
``predictions``, ``labeled``, ``expired``, ``late_labels``, ``orphan_labels``, ``duplicates``,
``duplicate_labels``, ``non_finite_scores``, ``non_finite_labels``, ``future_labels``,
``future_predictions``;
binary: ``tp``, ``fp``, ``tn``, ``fn`` at ``threshold``, ``logloss_sum``, ``brier_sum``,
``pos``/``neg`` counts and per-class score histograms ``hist_pos_<i>``/``hist_neg_<i>`` over
``hist_bins`` equal bins of [0, 1] (AUC from them: :func:`auc_from_histograms`);
regression: ``abs_err_sum``, ``sq_err_sum``, ``label_sum``.

Examples:
    >>> import pyarrow as pa
    >>> join = FeedbackJoin(ttl=100, window=1000)
    >>> join.add_predictions(pa.table({"event_id": [1, 2], "event_time": [10, 20], "probability": [0.9, 0.2]}))
    >>> fb = join.add_labels(pa.table({"event_id": [1, 7], "label_time": [50, 60], "label": [1.0, 0.0]}))
    >>> fb.column("event_id").to_pylist(), fb.column("delay_ms").to_pylist()
    (['1'], [40])
    >>> join.add_labels(pa.table({"event_id": [2], "label_time": [500], "label": [0.0]})).num_rows
    0
    >>> w = join.windows[0]
    >>> w["predictions"], w["labeled"], w["expired"], w["late_labels"], w["orphan_labels"], w["tp"]
    (2.0, 1.0, 1.0, 1.0, 1.0, 1.0)
"""

from __future__ import annotations

import math
import time
from dataclasses import astuple, dataclass
from typing import Any

import numpy as np

from streamml import _streamml
from streamml.errors import InputError

COUNTS = (
    "predictions",
    "labeled",
    "expired",
    "late_labels",
    "orphan_labels",
    "duplicates",
    "duplicate_labels",
    "non_finite_scores",
    "non_finite_labels",
    "future_labels",
    "future_predictions",
)
#: The default ``max_future_skew``: one hour, in ms.
MAX_FUTURE_SKEW_MS = 3_600_000
BINARY = ("tp", "fp", "tn", "fn", "pos", "neg", "logloss_sum", "brier_sum")
REGRESSION = ("abs_err_sum", "sq_err_sum", "label_sum")


@dataclass(frozen=True)
class Fields:
    """Column names the join reads.

    Attributes:
        id: the event id, on both inputs (int or string).
        event_time: the prediction's event time (int, e.g. ms since epoch).
        score: the prediction's score (binary: probability of class 1; regression: the value).
        label_time: the label's event time.
        label: the label (binary: 0/1; regression: the value).
    """

    id: str = "event_id"
    event_time: str = "event_time"
    score: str = "probability"
    label_time: str = "label_time"
    label: str = "label"


@dataclass(frozen=True)
class Refused:
    """Rows the join refused as future (:meth:`FeedbackJoin.take_refused`).

    Attributes:
        kind: ``"predictions"`` or ``"labels"``.
        rows: the refused input rows (a ``pyarrow.Table`` with the input's columns).
        reasons: one message per row, naming the field, its time and the cap it broke.
    """

    kind: str
    rows: Any
    reasons: list[str]


def wall_clock_ms() -> int:
    """The wall clock in ms since the Unix epoch (what ``max_future_skew`` is measured from)."""
    return time.time_ns() // 1_000_000


def _column(table: Any, name: str, what: str) -> Any:
    if name not in table.column_names:
        msg = f"feedback join: {what} lack the field '{name}'; they have {table.column_names}"
        raise InputError(msg)
    return table.column(name)


def _single(col: Any) -> Any:
    return col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()


def _ids(table: Any, name: str, what: str) -> Any:
    return _single(_column(table, name, what))


def _floats(table: Any, name: str, what: str) -> Any:
    import pyarrow as pa

    col = _column(table, name, what)
    try:
        values = _single(col.cast(pa.float64()))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        msg = f"feedback join: {what} field '{name}' is {col.type}, not numeric: {e}"
        raise InputError(msg) from e
    return values.fill_null(math.nan) if values.null_count else values


def event_times_ms(col: Any, what: str) -> Any:
    """An event-time column as one int64 array of ms: integers as they are, timestamps converted.

    Args:
        col: an Arrow array or chunked array.
        what: names the column in errors (``"feedback join: labels field 'label_time'"``).

    Raises:
        InputError: a null time, or a column that is neither integer nor timestamp.
    """
    import pyarrow as pa

    if pa.types.is_timestamp(col.type):
        col = col.cast(pa.timestamp("ms")).cast(pa.int64())
    if col.null_count:
        msg = f"{what} has {col.null_count} null time(s); every row needs one"
        raise InputError(msg)
    try:
        values = col.cast(pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        msg = f"{what} is {col.type}; expected an integer time or a timestamp: {e}"
        raise InputError(msg) from e
    return _single(values) if isinstance(values, pa.ChunkedArray) else values


def _times(table: Any, name: str, what: str) -> Any:
    return event_times_ms(_column(table, name, what), f"feedback join: {what} field '{name}'")


_FORMAT = "streamml.feedback_join/3"


class FeedbackJoin:
    """Join state and quality accounting of one shard (see the module docstring).

    Args:
        ttl: how long a prediction waits for its label (event time, time-column units).
        window: quality window length (the prediction's ``event_time // window``).
        task: ``"binary"`` or ``"regression"``.
        fields: the column names.
        threshold: binary decision threshold for the confusion counts.
        hist_bins: score histogram bins per class (binary).
        late_horizon: how long expired ids are remembered (default ``ttl``).
        bucket: expiry granularity (default ``ttl / 8``); expiry runs when a whole bucket is past.
        max_future_skew: how far ahead of the wall clock (ms) an event time may be (default 1 h;
            ``None``: no wall-clock cap, for time columns that are not ms since the epoch).
        max_watermark_jump: how far ahead of the watermark one label may be (default ``None``: no cap).
    """

    def __init__(
        self,
        *,
        ttl: int,
        window: int,
        task: str = "binary",
        fields: Fields | None = None,
        threshold: float = 0.5,
        hist_bins: int = 200,
        late_horizon: int | None = None,
        bucket: int | None = None,
        max_future_skew: int | None = MAX_FUTURE_SKEW_MS,
        max_watermark_jump: int | None = None,
    ) -> None:
        """Empty state."""
        if task not in ("binary", "regression"):
            msg = f"feedback join: task '{task}' is not one of binary, regression"
            raise InputError(msg)
        if ttl <= 0 or window <= 0:
            msg = f"feedback join: ttl ({ttl}) and window ({window}) must be positive"
            raise InputError(msg)
        ttl = int(ttl)
        state = _streamml.FeedbackJoinState(
            ttl=ttl,
            window=int(window),
            task=task,
            threshold=float(threshold),
            hist_bins=int(hist_bins),
            late_horizon=int(ttl if late_horizon is None else late_horizon),
            bucket=max(1, int(bucket or ttl // 8)),
            max_future_skew=None if max_future_skew is None else int(max_future_skew),
            max_watermark_jump=None if max_watermark_jump is None else int(max_watermark_jump),
        )
        self._init(state, fields or Fields())

    def _init(self, state: Any, fields: Fields) -> None:
        self._state, self.fields = state, fields
        self._refused: list[Refused] = []
        (
            self.ttl,
            self.window,
            self.task,
            self.threshold,
            self.hist_bins,
            self.late_horizon,
            self.bucket,
            self.max_future_skew,
            self.max_watermark_jump,
        ) = state.config()

    # --- state ---------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to resume: the field names and the state as checksummed bytes.

        Plain data (str, tuple, bytes): Bytewax recovery pickles it; ``streamml feedback``
        stores ``state`` itself (:func:`streamml.feedback_service.encode_checkpoint`).
        """
        return {"format": _FORMAT, "fields": astuple(self.fields), "state": self._state.state()}

    @classmethod
    def restore(cls, state: dict[str, Any]) -> FeedbackJoin:
        """A join resumed from :meth:`snapshot`."""
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            got = state.get("format", "the pure-Python join's") if isinstance(state, dict) else type(state).__name__
            msg = (
                f"feedback join: cannot restore a snapshot in format {got}; expected {_FORMAT} "
                "(a snapshot of the pure-Python join from before the Rust join cannot be resumed; start afresh)"
            )
            raise InputError(msg)
        join = cls.__new__(cls)
        join._init(_streamml.FeedbackJoinState.from_state(state["state"]), Fields(*state["fields"]))
        return join

    def __getstate__(self) -> dict[str, Any]:
        """Pickle as :meth:`snapshot`."""
        return self.snapshot()

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickle from :meth:`snapshot`."""
        restored = self.restore(state)
        self._init(restored._state, restored.fields)

    @property
    def watermark(self) -> int:
        """The largest accepted label time."""
        return self._state.watermark

    @property
    def pending(self) -> dict[Any, complex]:
        """A copy of the pending predictions: id -> ``complex(event_time, score)``."""
        ints, strs = self._state.pending()
        return {i: complex(t, s) for i, t, s in (*ints, *strs)}

    @property
    def tombstones(self) -> dict[Any, int]:
        """A copy of the remembered expired ids: id -> the prediction's event time."""
        ints, strs = self._state.tombstones()
        return dict((*ints, *strs))

    @property
    def labelled(self) -> dict[Any, int]:
        """A copy of the remembered labelled ids: id -> the prediction's event time."""
        ints, strs = self._state.labelled()
        return dict((*ints, *strs))

    @property
    def pending_count(self) -> int:
        """How many predictions are pending (without copying them)."""
        return self._state.pending_len()

    @property
    def labelled_count(self) -> int:
        """How many labelled ids are remembered (without copying them)."""
        return self._state.labelled_len()

    @property
    def tombstone_count(self) -> int:
        """How many expired ids are remembered (without copying them)."""
        return self._state.tombstones_len()

    @property
    def windows(self) -> dict[int, dict[str, float]]:
        """A copy of the quality sums: window start -> metric -> value."""
        names = self._state.metric_names()
        return {s: dict(zip(names, v, strict=True)) for s, v in self._state.window_sums()}

    @property
    def hists(self) -> dict[int, np.ndarray]:
        """A copy of the score histograms (binary): window start -> ``[negatives, positives]`` counts."""
        if self.task != "binary":
            return {}
        return {s: np.asarray(h, dtype=np.int64).reshape(2, -1) for s, h in self._state.window_hists()}

    # --- inputs --------------------------------------------------------------------------------

    def unseen(self, ids: Any) -> list[int]:
        """The rows of ``ids`` whose prediction the join does not hold, and that no earlier row repeats.

        The join holds an id while it is pending, and after it expired or got its label for
        ``late_horizon`` more: a host that may read a prediction twice (a replayed topic, the
        champion's output on both its topic and the shadow topic) adds only these rows, so the
        first copy wins (:meth:`add_predictions` lets a later copy of a pending id replace it).

        Examples:
            >>> join = FeedbackJoin(ttl=100, window=1000)
            >>> join.add_predictions({"event_id": ["a"], "event_time": [0], "probability": [0.5]}, now=0)
            >>> join.unseen(["b", "a", "b", "c"])
            [0, 3]
        """
        import pyarrow as pa

        if isinstance(ids, pa.ChunkedArray):
            ids = _single(ids)
        elif not isinstance(ids, pa.Array):
            ids = pa.array(ids)
        return self._state.unseen(self.fields.id, ids)

    def add_predictions(self, batch: Any, *, now: int | None = None) -> None:
        """Add a batch of predictions (id, event time, score) to the pending state.

        Rows more than ``max_future_skew`` ahead of ``now`` (ms; default the wall clock) are
        refused (:meth:`take_refused`).
        """
        import pyarrow as pa

        table = pa.table(batch)
        f = self.fields
        ids = _ids(table, f.id, "predictions")
        times = _times(table, f.event_time, "predictions")
        scores = _floats(table, f.score, "predictions")
        now = wall_clock_ms() if now is None else int(now)
        refused = self._state.add_predictions(f.id, ids, times, scores, now)
        if refused:
            cap = f"max_future_skew ({self.max_future_skew} ms) ahead of the wall clock ({now})"
            self._refuse("predictions", table, refused, times, f.event_time, [cap] * len(refused))

    def add_labels(self, batch: Any, *, now: int | None = None) -> Any:
        """Join a batch of labels; returns the feedback rows (a ``pyarrow.Table``).

        Labels after :meth:`label_limit` of ``now`` (ms; default the wall clock) are refused
        (:meth:`take_refused`): not joined, and they do not move the watermark.
        """
        import pyarrow as pa

        table = pa.table(batch)
        f = self.fields
        ids = _ids(table, f.id, "labels")
        label_times = _times(table, f.label_time, "labels")
        labels = _floats(table, f.label, "labels")
        now = wall_clock_ms() if now is None else int(now)
        watermark = self._state.watermark
        rows, refused = self._state.add_labels(f.id, ids, label_times, labels, now)
        if refused:
            wall = None if self.max_future_skew is None else now + self.max_future_skew
            caps = []
            for r in refused:
                if wall is not None and label_times[r].as_py() > wall:
                    caps.append(f"max_future_skew ({self.max_future_skew} ms) ahead of the wall clock ({now})")
                else:
                    caps.append(f"max_watermark_jump ({self.max_watermark_jump}) ahead of the watermark ({watermark})")
            self._refuse("labels", table, refused, label_times, f.label_time, caps)
        return pa.Table.from_batches([rows])

    def _refuse(self, kind: str, table: Any, rows: list[int], times: Any, field: str, caps: list[str]) -> None:
        import pyarrow as pa

        reasons = [
            f"feedback join: {kind} field '{field}' is {times[r].as_py()}, more than {cap}; the row is refused "
            "(counted, not joined, the watermark unmoved); fix the producer's clock, or raise the cap"
            for r, cap in zip(rows, caps, strict=True)
        ]
        self._refused.append(Refused(kind, table.take(pa.array(rows, pa.int64())), reasons))

    def take_refused(self) -> list[Refused]:
        """The rows refused as future since the last call (one :class:`Refused` per input batch)."""
        out, self._refused = self._refused, []
        return out

    def label_limit(self, now: int | None = None) -> int:
        """The latest label time accepted at ``now`` (ms; default the wall clock)."""
        return self._state.label_limit(wall_clock_ms() if now is None else int(now))

    # --- outputs -------------------------------------------------------------------------------

    def take_touched(self) -> list[int]:
        """The windows revised since the last call (sorted), and forget that they were."""
        return self._state.take_touched()

    def quality_rows(self, windows: list[int] | None = None) -> list[tuple[int, str, float]]:
        """``(window_start, metric, value)`` for ``windows`` (default all), histograms included."""
        return self._state.quality_rows(windows)

    def quality_table(self, windows: list[int] | None = None) -> Any:
        """:meth:`quality_rows` as a ``pyarrow.Table`` (``window_start``, ``metric``, ``value``)."""
        import pyarrow as pa

        return pa.Table.from_batches([self._state.quality_batch(windows)])


def auc_from_histograms(neg: np.ndarray, pos: np.ndarray) -> float:
    """ROC AUC from per-class score histograms over the same bins (ties within a bin count half).

    Examples:
        >>> auc_from_histograms(np.array([2, 0]), np.array([0, 3]))
        1.0
        >>> auc_from_histograms(np.array([1, 1]), np.array([1, 1]))
        0.5
    """
    neg, pos = np.asarray(neg, dtype=np.float64), np.asarray(pos, dtype=np.float64)
    n_neg, n_pos = neg.sum(), pos.sum()
    if n_neg == 0 or n_pos == 0:
        return math.nan
    below = np.cumsum(neg) - neg
    return float((pos * (below + 0.5 * neg)).sum() / (n_neg * n_pos))
