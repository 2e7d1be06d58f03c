"""The pure-Python feedback join that streamml used before the Rust join (the reference).

This is the implementation ``streamml.feedback.FeedbackJoin`` had until it moved to
``operators/core/src/feedback``: one dict of pending predictions, one lookup per label row,
numpy for the rest, with the rules added since (the first label wins and later ones are
duplicate labels; future labels and predictions are refused; non-finite scores stay out of the
sums). ``tests/test_feedback_differential.py`` checks the Rust join against it row for row and
sum for sum; ``benchmarks/monitoring.py`` measures both in one run. It is not part of the
package.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from streamml.errors import InputError
from streamml.feedback import BINARY, COUNTS, MAX_FUTURE_SKEW_MS, REGRESSION, Fields, Refused, _column, wall_clock_ms

_LOG_EPS = 1e-15


def _ids(table: Any, name: str, what: str) -> list[Any]:
    return _column(table, name, what).to_pylist()


def _floats(table: Any, name: str, what: str) -> np.ndarray:
    import pyarrow as pa

    col = _column(table, name, what)
    try:
        return np.asarray(col.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        msg = f"feedback join: {what} field '{name}' is {col.type}, not numeric: {e}"
        raise InputError(msg) from e


def _times(table: Any, name: str, what: str) -> np.ndarray:
    import pyarrow as pa

    col = _column(table, name, what)
    if pa.types.is_timestamp(col.type):
        col = col.cast(pa.timestamp("ms")).cast(pa.int64())
    if col.null_count:
        msg = f"feedback join: {what} field '{name}' has {col.null_count} null time(s); every row needs one"
        raise InputError(msg)
    try:
        return np.asarray(col.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        msg = f"feedback join: {what} field '{name}' is {col.type}; expected an integer time or a timestamp: {e}"
        raise InputError(msg) from e


class PyFeedbackJoin:
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
        self.ttl, self.window, self.task = int(ttl), int(window), task
        self.fields = fields or Fields()
        self.threshold, self.hist_bins = threshold, hist_bins
        self.late_horizon = int(ttl if late_horizon is None else late_horizon)
        self.bucket = max(1, int(bucket or ttl // 8))
        self.max_future_skew, self.max_watermark_jump = max_future_skew, max_watermark_jump
        self.watermark = -(2**62)
        # id -> complex(event_time, score): ms times stay exact (< 2**53) in the real part.
        self.pending: dict[Any, complex] = {}
        self.tombstones: dict[Any, int] = {}
        self._pending_buckets: dict[int, list[Any]] = {}
        # Predictions still pending per bucket (an upper bound: duplicates are not subtracted);
        # a bucket with none left is dropped without looking at its ids.
        self._live: dict[int, int] = {}
        self._tomb_buckets: dict[int, list[Any]] = {}
        # Bucket -> ids that got their label -> their prediction's event time (the first label
        # wins); a bucket is forgotten whole.
        self._labelled: dict[int, dict[Any, int]] = {}
        self.windows: dict[int, dict[str, float]] = {}
        self.hists: dict[int, np.ndarray] = {}
        self.touched: set[int] = set()
        self.refused: list[Refused] = []

    # --- state ---------------------------------------------------------------------------------

    def _window(self, start: int) -> dict[str, float]:
        w = self.windows.get(start)
        if w is None:
            names = COUNTS + (BINARY if self.task == "binary" else REGRESSION)
            w = self.windows[start] = dict.fromkeys(names, 0.0)
            if self.task == "binary":
                self.hists[start] = np.zeros((2, self.hist_bins), dtype=np.int64)
        self.touched.add(start)
        return w

    def _count(self, name: str, times: np.ndarray) -> None:
        if times.size == 0:
            return
        starts, n = np.unique(times // self.window * self.window, return_counts=True)
        for s, k in zip(starts.tolist(), n.tolist(), strict=True):
            self._window(s)[name] += k

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to resume (picklable; Bytewax recovery stores it)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("touched", "refused")}

    @classmethod
    def restore(cls, state: dict[str, Any]) -> PyFeedbackJoin:
        """A join resumed from :meth:`snapshot`."""
        join = cls.__new__(cls)
        join.__dict__.update(state)
        join.touched, join.refused = set(), []
        return join

    # --- inputs --------------------------------------------------------------------------------

    def _arrival(self, now: int) -> int:
        t = now if self.watermark == -(2**62) else self.watermark
        return t // self.window * self.window

    def add_predictions(self, batch: Any, *, now: int | None = None) -> None:
        """Add a batch of predictions (id, event time, score) to the pending state."""
        import pyarrow as pa

        table = pa.table(batch)
        f = self.fields
        ids = _ids(table, f.id, "predictions")
        times = _times(table, f.event_time, "predictions")
        scores = _floats(table, f.score, "predictions")
        now = wall_clock_ms() if now is None else now
        if self.max_future_skew is not None:
            ok = times <= now + self.max_future_skew
            if not ok.all():
                keep = np.flatnonzero(ok)
                ids, times, scores = [ids[i] for i in keep.tolist()], times[keep], scores[keep]
                refused = int((~ok).sum())
                self._refuse("predictions", table, ok)
                if ids:
                    self._add(ids, times, scores)
                self._window(self._arrival(now))["future_predictions"] += refused
                return
        if ids:
            self._add(ids, times, scores)

    def _add(self, ids: list[Any], times: np.ndarray, scores: np.ndarray) -> None:
        if not ids:
            return
        before = len(self.pending)
        pairs = times.astype(np.complex128)
        pairs.imag = scores  # (not times + 1j * scores: 1j * inf has a NaN real part)
        self.pending.update(zip(ids, pairs.tolist(), strict=True))
        duplicates = before + len(ids) - len(self.pending)
        self._count("predictions", times)
        if duplicates:
            self._window(int(times[0]) // self.window * self.window)["duplicates"] += duplicates
        buckets = times // self.bucket
        self._add_live(buckets, 1)
        if buckets[0] == buckets[-1] and (buckets == buckets[0]).all():
            self._pending_buckets.setdefault(int(buckets[0]), []).extend(ids)
        else:
            for b in np.unique(buckets).tolist():
                idx = np.flatnonzero(buckets == b).tolist()
                self._pending_buckets.setdefault(b, []).extend([ids[i] for i in idx])

    def add_labels(self, batch: Any, *, now: int | None = None) -> Any:
        """Join a batch of labels; returns the feedback rows (a ``pyarrow.Table``)."""
        import pyarrow as pa

        table = pa.table(batch)
        f = self.fields
        ids = _ids(table, f.id, "labels")
        label_times = _times(table, f.label_time, "labels")
        labels = _floats(table, f.label, "labels")
        now = wall_clock_ms() if now is None else now
        limit = 2**63 - 1
        if self.max_future_skew is not None:
            limit = min(limit, now + self.max_future_skew)
        if self.max_watermark_jump is not None and self.watermark != -(2**62):
            limit = min(limit, self.watermark + self.max_watermark_jump)
        ok = label_times <= limit
        if not ok.all():
            self._window(self._arrival(now))["future_labels"] += int((~ok).sum())
            self._refuse("labels", table, ok)
            keep = np.flatnonzero(ok)
            table, ids, label_times, labels = (
                table.take(pa.array(keep)),
                [ids[i] for i in keep.tolist()],
                label_times[keep],
                labels[keep],
            )
        pop = self.pending.pop
        hits = [pop(i, None) for i in ids]
        rows_list = [r for r, h in enumerate(hits) if h is not None]
        rows = np.array(rows_list, dtype=np.int64)
        found = np.zeros(len(hits), dtype=bool)
        found[rows] = True
        pairs = np.fromiter([hits[r] for r in rows_list], dtype=np.complex128, count=len(rows_list))
        t_pred = pairs.real.astype(np.int64)
        scores = pairs.imag.copy()
        if t_pred.size:
            self._add_live(t_pred // self.bucket, -1)
        for r, t in zip(rows_list, t_pred.tolist(), strict=True):
            self._label(ids[r], t)
        delay = label_times[rows] - t_pred
        timely = delay <= self.ttl
        # Labels after the ttl: their predictions expire now, the labels are late.
        self._count("expired", t_pred[~timely])
        self._count("late_labels", t_pred[~timely])
        # Misses: late if the id expired recently, else orphans.
        # (Misses: late if the id expired recently, a duplicate if it was labelled, else orphans.)
        late, duplicate, orphan_rows = [], [], []
        for r in np.flatnonzero(~found).tolist():
            t = self.tombstones.pop(ids[r], None)
            if t is not None:
                late.append(t)
                self._label(ids[r], t)
            else:
                t = next((d[ids[r]] for _, d in sorted(self._labelled.items(), reverse=True) if ids[r] in d), None)
                if t is not None:
                    duplicate.append(t)  # the newest bucket's, if the id was labelled again since
                else:
                    orphan_rows.append(r)
        self._count("late_labels", np.array(late, dtype=np.int64))
        self._count("orphan_labels", label_times[orphan_rows])
        self._count("duplicate_labels", np.array(duplicate, dtype=np.int64))
        joined = rows[timely]
        t_ok, s_ok, y_ok = t_pred[timely], scores[timely], labels[joined]
        self._quality(t_ok, s_ok, y_ok)
        if label_times.size:
            self._advance(int(label_times.max()))  # of the accepted labels
        starts = t_ok // self.window * self.window
        predicted = (s_ok >= self.threshold).astype(np.float64) if self.task == "binary" else s_ok
        return pa.table(
            {
                "event_id": pa.compute.cast(table.column(f.id).take(pa.array(joined)), pa.string()),
                "event_time": t_ok,
                "label_time": label_times[joined],
                "delay_ms": delay[timely],
                "window_start": starts,
                "score": s_ok,
                "prediction": predicted,
                "label": y_ok,
            }
        )

    def _refuse(self, kind: str, table: Any, ok: np.ndarray) -> None:
        import pyarrow as pa

        rows = table.take(pa.array(np.flatnonzero(~ok)))
        self.refused.append(Refused(kind, rows, ["refused as future"] * rows.num_rows))

    def take_refused(self) -> list[Refused]:
        """The rows refused as future since the last call (reasons not spelled out here)."""
        out, self.refused = self.refused, []
        return out

    def _label(self, i: Any, t: int) -> None:
        self._labelled.setdefault(t // self.bucket, {})[i] = t

    @property
    def labelled(self) -> dict[Any, int]:
        """The remembered labelled ids: id -> event time (of the newest bucket that has it)."""
        out: dict[Any, int] = {}
        for b in sorted(self._labelled):
            out.update(self._labelled[b])
        return out

    def _quality(self, t: np.ndarray, score: np.ndarray, y: np.ndarray) -> None:
        if t.size == 0:
            return
        starts = t // self.window * self.window
        for s in np.unique(starts).tolist():
            m = starts == s
            p, yy = score[m], y[m]
            w = self._window(s)
            w["labeled"] += int(m.sum())
            finite_p, finite_y = np.isfinite(p), np.isfinite(yy)
            w["non_finite_scores"] += int((~finite_p).sum())
            w["non_finite_labels"] += int((finite_p & ~finite_y).sum())
            p, yy = p[finite_p & finite_y], yy[finite_p & finite_y]
            if self.task == "regression":
                err = p - yy
                w["abs_err_sum"] += float(np.abs(err).sum())
                w["sq_err_sum"] += float((err * err).sum())
                w["label_sum"] += float(yy.sum())
                continue
            pos = yy > 0.5
            hat = p >= self.threshold
            w["tp"] += int((pos & hat).sum())
            w["fp"] += int((~pos & hat).sum())
            w["fn"] += int((pos & ~hat).sum())
            w["tn"] += int((~pos & ~hat).sum())
            w["pos"] += int(pos.sum())
            w["neg"] += int((~pos).sum())
            pc = np.clip(p, _LOG_EPS, 1 - _LOG_EPS)
            # log and log1p from the C library, as in Rust (numpy's SIMD log rounds differently on
            # some CPUs); summed by numpy as before.
            logs = [math.log(c) if q else math.log1p(-c) for c, q in zip(pc.tolist(), pos.tolist(), strict=True)]
            w["logloss_sum"] += float(-np.array(logs, dtype=np.float64).sum())
            w["brier_sum"] += float(((p - pos) ** 2).sum())
            bins = np.clip((p * self.hist_bins).astype(np.int64), 0, self.hist_bins - 1)
            h = self.hists[s]
            h[1] += np.bincount(bins[pos], minlength=self.hist_bins)
            h[0] += np.bincount(bins[~pos], minlength=self.hist_bins)

    def _add_live(self, buckets: np.ndarray, sign: int) -> None:
        live = self._live
        for b, k in zip(*(a.tolist() for a in np.unique(buckets, return_counts=True)), strict=True):
            live[b] = live.get(b, 0) + sign * k

    def _advance(self, t: int) -> None:
        """Move the watermark to ``t`` and expire what it passed."""
        if t <= self.watermark:
            return
        self.watermark = t
        # A whole bucket b is past when (b + 1) * bucket + ttl <= watermark.
        limit = (t - self.ttl) // self.bucket
        for b in [b for b in self._pending_buckets if b < limit]:
            ids = self._pending_buckets.pop(b)
            if self._live.pop(b, 0) <= 0:
                continue  # every prediction of the bucket was joined
            expired_times = []
            tombs = self._tomb_buckets.setdefault(b, [])
            for i in ids:
                entry = self.pending.get(i)
                if entry is not None and int(entry.real) // self.bucket == b:
                    del self.pending[i]
                    self.tombstones[i] = int(entry.real)
                    tombs.append(i)
                    expired_times.append(int(entry.real))
            self._count("expired", np.array(expired_times, dtype=np.int64))
        forget = (t - self.ttl - self.late_horizon) // self.bucket
        for b in [b for b in self._tomb_buckets if b < forget]:
            for i in self._tomb_buckets.pop(b):
                self.tombstones.pop(i, None)
        for b in [b for b in self._labelled if b < forget]:
            del self._labelled[b]

    # --- outputs -------------------------------------------------------------------------------

    def take_touched(self) -> list[int]:
        """The windows revised since the last call (sorted), and forget that they were."""
        touched, self.touched = sorted(self.touched), set()
        return touched

    def quality_rows(self, windows: list[int] | None = None) -> list[tuple[int, str, float]]:
        """``(window_start, metric, value)`` for ``windows`` (default all), histograms included."""
        out = []
        for s in sorted(self.windows) if windows is None else windows:
            out.extend((s, k, float(v)) for k, v in self.windows[s].items())
            if s in self.hists:
                h = self.hists[s]
                out.extend((s, f"hist_neg_{i:03d}", float(n)) for i, n in enumerate(h[0].tolist()) if n)
                out.extend((s, f"hist_pos_{i:03d}", float(n)) for i, n in enumerate(h[1].tolist()) if n)
        return out
