"""Drift counters while scoring: `DriftMonitor` over the reference frozen in a model binary.

Counting happens in the Rust core (``operators/core/src/drift``): one u64 count
vector per feature and per score output, in the bins of the reference
(``streamml.compile.drift`` documents the layout: underflow, quantile bins,
overflow, missing; or top-k categories, other, missing). Counters add up across
workers, partitions and windows (:meth:`DriftMonitor.merge`); statistics are
computed when read (:meth:`DriftMonitor.stats`):

- PSI ``Σ (p - q) ln(p / q)``, with proportions below :data:`EPSILON` (1e-4)
  raised to it, not renormalised;
- Jensen-Shannon divergence in bits (0..1), Hellinger distance (0..1);
- KL(observed ‖ reference) in nats, with the same floor as PSI;
- missing rate, out-of-range rate (numeric: below the first or above the last
  edge), new-category rate (categorical: the ``other`` bucket).

:class:`Thresholds` turns PSI into a status; the defaults are the usual
table: PSI < 0.1 stable, 0.1-0.25 moderate, > 0.25 significant.

Examples:
    >>> import pyarrow as pa
    >>> monitor = DriftMonitor.fit(pa.table({"x": [0.0, 1.0, 2.0, 3.0]}), bins=2)
    >>> monitor.observe(pa.record_batch({"x": [0.5, 2.5, 2.9, 9.0]}))
    >>> monitor.counts()["x"]
    [0, 1, 2, 1, 0]
    >>> row = monitor.stats()[0]
    >>> row["feature"], row["rows"], row["out_of_range_rate"], row["status"]
    ('x', 4, 0.25, 'significant')
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from streamml import _streamml
from streamml.errors import InputError

#: The floor for empty bins in PSI and KL (a proportion).
EPSILON = 1e-4


@dataclass(frozen=True)
class Thresholds:
    """PSI boundaries between ``stable``, ``moderate`` and ``significant`` drift.

    Attributes:
        moderate: PSI at or above this is at least moderate (default 0.1).
        significant: PSI above this is significant (default 0.25).
    """

    moderate: float = 0.1
    significant: float = 0.25

    def status(self, psi: float) -> str:
        """``stable``, ``moderate``, ``significant``, or ``no data`` (PSI is NaN).

        Examples:
            >>> [Thresholds().status(p) for p in (0.05, 0.1, 0.25, 0.3)]
            ['stable', 'moderate', 'moderate', 'significant']
        """
        if psi != psi:
            return "no data"
        if psi > self.significant:
            return "significant"
        return "moderate" if psi >= self.moderate else "stable"


STAT_FIELDS = ("rows", "psi", "js", "hellinger", "kl", "missing_rate", "out_of_range_rate", "new_category_rate")


class DriftMonitor:
    """Drift counters for one model (or one window of it).

    Args:
        reference: a ``drift_reference`` document (``model.info["drift_reference"]``).
        thresholds: PSI status boundaries (defaults: 0.1 and 0.25).

    Raises:
        InputError: the reference is not a valid version-1 document; the message
            names the entry.
    """

    __slots__ = ("_inner", "_layout", "reference", "thresholds")

    def __init__(self, reference: dict[str, Any], *, thresholds: Thresholds | None = None) -> None:
        """Zeroed counters for ``reference``."""
        self.reference = reference
        self.thresholds = thresholds or Thresholds()
        self._inner = _streamml.DriftCounters.from_json(json.dumps(reference))
        self._layout = self._inner.layout()

    @classmethod
    def from_model(cls, model: Any, *, thresholds: Thresholds | None = None) -> DriftMonitor:
        """Counters over the reference frozen into ``model`` by ``streamml compile --reference``.

        Raises:
            InputError: the binary carries no drift reference.
        """
        reference = model.info.get("drift_reference")
        if not reference:
            name = model.info.get("name", "the model")
            msg = f"model '{name}' has no drift reference; compile it with `streamml compile --reference DATA`"
            raise InputError(msg)
        return cls(reference, thresholds=thresholds)

    @classmethod
    def fit(
        cls,
        data: Any,
        *,
        features: list[str] | None = None,
        scores: Any = None,
        bins: int = 10,
        thresholds: Thresholds | None = None,
    ) -> DriftMonitor:
        """Edges set from data at run time (quantile bins, as ``compile --reference`` does).

        Args:
            data: the reference inputs (anything Arrow, or a Parquet/CSV/Arrow path).
            features: the columns to watch (default: every column).
            scores: optional reference outputs of the model (an Arrow batch or table).
            bins: quantile bins per feature.
            thresholds: PSI status boundaries.
        """
        from streamml.compile import drift as layout

        table = layout.read_table(data)
        names = list(features or table.column_names)
        matrix = layout.feature_matrix(table, names)
        feats = [{"name": n, **layout.numeric_bins(matrix[:, j], bins)} for j, n in enumerate(names)]
        score_bins = []
        if scores is not None:
            for name, values in layout.score_columns(layout.read_table(scores)).items():
                score_bins.append({"name": name, **layout.numeric_bins(values, bins)})
        reference = {"version": 1, "rows": int(matrix.shape[0]), "bins": bins, "features": feats, "scores": score_bins}
        return cls(reference, thresholds=thresholds)

    def observe(self, inputs: Any, outputs: Any = None) -> None:
        """Count a batch of inputs (and, if given, the model's outputs for it).

        Args:
            inputs: an Arrow batch or table holding every watched feature (by name).
            outputs: the model's output batch or table for ``inputs``.

        Raises:
            InputError: a watched column is absent or not numeric; nothing is counted.
        """
        for batch in _batches(inputs):
            self._inner.observe(batch)
        if outputs is not None:
            for batch in _batches(outputs):
                self._inner.observe_outputs(batch)

    def merge(self, other: DriftMonitor) -> None:
        """Add ``other``'s counts (same reference: another worker, partition or window)."""
        self._inner.merge(other._inner)

    def copy(self) -> DriftMonitor:
        """An independent copy (same reference and counts)."""
        twin = DriftMonitor.__new__(DriftMonitor)
        twin.reference, twin.thresholds, twin._layout = self.reference, self.thresholds, self._layout
        twin._inner = self._inner.copy()
        return twin

    def reset(self) -> None:
        """Zero every count (start a new window)."""
        self._inner.reset()

    def counts(self) -> dict[str, list[int]]:
        """Counts per feature / score name, in the reference's bin layout."""
        return {name: c for (name, _, _), c in zip(self._layout, self._inner.counts(), strict=True)}

    def set_counts(self, counts: dict[str, list[int]]) -> None:
        """Restore counts (from :meth:`counts` or a store)."""
        for name, values in counts.items():
            self._inner.set_counts(name, list(values))

    def stats(self) -> list[dict[str, Any]]:
        """One dict per feature and score: role, kind, PSI, JS, Hellinger, KL, rates and status."""
        rows = []
        for (name, role, kind), values in zip(self._layout, self._inner.stats(), strict=True):
            row: dict[str, Any] = {
                "feature": name,
                "role": role,
                "kind": kind,
                **dict(zip(STAT_FIELDS, values, strict=True)),
            }
            row["status"] = self.thresholds.status(row["psi"])
            rows.append(row)
        return rows

    def bins(self) -> list[tuple[str, int, int]]:
        """``(feature, bin, count)`` for every non-zero bin (the ``drift`` table's rows)."""
        return [(name, i, n) for name, c in self.counts().items() for i, n in enumerate(c) if n]

    def table(self, *, model: str, model_version: str, window_start: int, shard: str) -> Any:
        """The ``drift`` table's rows for these counts (one per non-zero bin), as an Arrow table.

        ``window_start`` is the window's start (ms); ``shard`` names the worker or process
        that counted, so that the store keeps each one's cumulative counts apart.
        """
        import pyarrow as pa

        rows = self.bins()
        return pa.table(
            {
                "model": [model] * len(rows),
                "model_version": [model_version] * len(rows),
                "window_start": pa.array([window_start] * len(rows), pa.int64()),
                "shard": [shard] * len(rows),
                "feature": [r[0] for r in rows],
                "bin": pa.array([r[1] for r in rows], pa.int64()),
                "count": pa.array([r[2] for r in rows], pa.int64()),
            }
        )

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.reference, self.thresholds, self.counts())

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        reference, thresholds, counts = state
        self.__init__(reference, thresholds=thresholds)
        self.set_counts(counts)


class DriftWindows:
    """Drift counters per tumbling window of event time, for a host that flushes them.

    Windows only move forward: a row older than the open window (a replay, a slow
    partition) is counted in the open one.

    Args:
        reference: the ``drift_reference`` document.
        window_ms: the window's length (ms).
        thresholds: PSI status boundaries.

    Examples:
        >>> ref = {"version": 1, "rows": 2, "bins": 1, "scores": [],
        ...        "features": [{"name": "x", "kind": "numeric", "edges": [0.0, 1.0], "counts": [0, 2, 0, 0]}]}
        >>> w = DriftWindows(ref, window_ms=1000)
        >>> w.monitor_for(1500) is w.monitor_for(1999), w.open_start
        (True, 1000)
        >>> _ = w.monitor_for(2000); [start for start, _ in w.closed]
        [1000]
    """

    def __init__(self, reference: dict[str, Any], *, window_ms: int, thresholds: Thresholds | None = None) -> None:
        if window_ms <= 0:
            msg = f"drift window is {window_ms} ms; it must be positive"
            raise InputError(msg)
        self.reference = reference
        self.window_ms = int(window_ms)
        self.thresholds = thresholds
        self.open_start: int | None = None
        self.open: DriftMonitor | None = None
        #: Windows that ended and were not taken yet: ``(start_ms, monitor)``.
        self.closed: list[tuple[int, DriftMonitor]] = []

    def monitor_for(self, time_ms: int) -> DriftMonitor:
        """The counters of the window ``time_ms`` falls in (or of the open one, if that is later)."""
        start = int(time_ms) // self.window_ms * self.window_ms
        if self.open is None or self.open_start is None or start > self.open_start:
            if self.open is not None and self.open_start is not None:
                self.closed.append((self.open_start, self.open))
            self.open_start, self.open = start, DriftMonitor(self.reference, thresholds=self.thresholds)
        return self.open

    def take(self) -> list[tuple[int, DriftMonitor]]:
        """The closed windows (forgotten now) and then the open one, whose counts go on."""
        taken, self.closed = self.closed, []
        if self.open is not None and self.open_start is not None:
            taken.append((self.open_start, self.open))
        return taken


def _batches(data: Any) -> list[Any]:
    import pyarrow as pa

    if hasattr(data, "__arrow_c_array__"):
        return [data]
    if hasattr(data, "__arrow_c_stream__"):
        return pa.table(data).to_batches()
    msg = f"drift: expected an Arrow batch or table, got a {type(data).__name__}"
    raise InputError(msg)
