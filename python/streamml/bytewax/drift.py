"""``drift_counts``: drift counters per event-time window inside a Bytewax dataflow.

The operator takes the scored Arrow batches of :func:`streamml.bytewax.predict` (inputs and
outputs in one batch, as ``predict`` returns them for record batches) and counts each row into
the :class:`streamml.drift.DriftMonitor` of its window (by the row's own event time, not the
batch's). After each batch it emits, for every window the batch touched, that window's
**cumulative** counts as ``drift`` table rows (:meth:`DriftMonitor.table`), ready for
:class:`streamml.bytewax.StoreSink`: the store keeps the newest cumulative value per
(window, shard, feature, bin), so re-emitting a window replaces it and a replay after recovery
double-counts nothing the store already has.

Counters are kept per key of ``shard_key`` (default: one per flow); each key is one ``shard``
in the store, so sum over ``shard`` to combine them. Windows more than ``keep_windows`` behind
the newest window a key has seen are dropped from the state (their last rows were emitted);
a row older than that opens its window again (its counts start from zero, and replace the
stored ones — keep ``keep_windows`` above the stream's disorder). The counters are part of
Bytewax's recovery snapshot.

Examples:
    >>> import bytewax.operators as op
    >>> import pyarrow as pa
    >>> from bytewax.dataflow import Dataflow
    >>> from bytewax.testing import TestingSink, TestingSource, run_main
    >>> from streamml.drift import DriftMonitor
    >>> reference = DriftMonitor.fit(pa.table({"x": [0.0, 1.0, 2.0, 3.0]}), bins=2).reference
    >>> batches = [pa.record_batch({"t": [10, 20, 70_000], "x": [0.5, 3.0, 0.2]})]
    >>> flow = Dataflow("drift_doc")
    >>> rows = drift_counts("drift", op.input("in", flow, TestingSource(batches)), reference,
    ...                     time_field="t", model="m", model_version="1")
    >>> out = []
    >>> op.output("out", rows, TestingSink(out))
    >>> run_main(flow)
    >>> [(r["window_start"], r["bin"], r["count"]) for t in out for r in t.to_pylist()]
    [(0, 1, 1), (0, 2, 1), (60000, 1, 1)]
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Stream, operator

from streamml.drift import DriftMonitor
from streamml.errors import InputError
from streamml.feedback import event_times_ms


def _window_starts(batch: Any, time_field: str, window_ms: int) -> Any:
    import numpy as np

    if time_field not in batch.schema.names:
        msg = f"drift_counts: the batch lacks the time field '{time_field}'; it has {batch.schema.names}"
        raise InputError(msg)
    times = event_times_ms(batch.column(time_field), f"drift_counts: the time field '{time_field}'")
    times = np.asarray(times.to_numpy(zero_copy_only=False), dtype=np.int64)
    return times - times % window_ms


@operator
def drift_counts(
    step_id: str,
    up: Stream[Any],
    reference: dict[str, Any] | Any,
    *,
    time_field: str = "event_time",
    window: timedelta = timedelta(minutes=1),
    model: str | None = None,
    model_version: str | None = None,
    shard_key: Callable[[Any], str] = lambda _: "0",
    keep_windows: int = 2,
    version_field: str | None = None,
) -> Stream[Any]:
    """Count scored batches into per-window drift counters; emit each touched window's ``drift`` rows.

    Args:
        step_id: unique ID.
        up: Arrow record batches (or tables) holding the watched inputs, the model's outputs
            (when the reference has a score) and ``time_field``.
        reference: a :class:`streamml.Model` whose info carries a drift reference (then
            ``model`` and ``model_version`` default to its name and version), or the reference
            dict itself.
        time_field: the event time column (int ms or a timestamp).
        window: the tumbling window's length.
        model: the model name written in the rows.
        model_version: the model version written in the rows.
        shard_key: a batch's counter key, written as ``shard`` (e.g. the partition).
        keep_windows: windows kept behind the newest one per key.
        version_field: drift per model version (the ``shadow`` stream of :func:`predict` with
            challengers): the column naming each row's version. Each version is counted against
            its own frozen reference, so ``reference`` is then a callable ``version -> reference``
            (e.g. ``lambda v: streamml.lifecycle.version_info(ref, v)["drift_reference"]``), and
            the rows carry the version.

    Returns:
        A stream of Arrow tables of ``drift`` rows (one table per window a batch touched).

    Raises:
        ValueError: the model has no drift reference, or ``window`` is not positive.
    """
    if version_field is not None:
        return _drift_per_version(
            up, reference, version_field, time_field, window, model or "", shard_key, keep_windows
        )
    info = getattr(reference, "info", None)
    if info is not None:
        ref = info.get("drift_reference")
        if ref is None:
            msg = f"model '{info.get('name')}' has no drift reference (compile it with --reference)"
            raise ValueError(msg)
        model = model if model is not None else info.get("name", "")
        model_version = model_version if model_version is not None else info.get("version", "")
    else:
        ref = reference
    if window <= timedelta(0):
        msg = f"window must be positive, got {window}"
        raise ValueError(msg)
    window_ms = int(window.total_seconds() * 1000)
    name, version = model or "", model_version or ""

    def count(state: dict[int, DriftMonitor] | None, key_batch: Any) -> tuple[dict[int, DriftMonitor], list[Any]]:
        import numpy as np

        state = state if state is not None else {}
        key, batch = key_batch
        starts = _window_starts(batch, time_field, window_ms)
        tables = []
        for start in np.unique(starts).tolist():
            rows = batch.filter(starts == start)
            monitor = state.get(start)
            if monitor is None:
                monitor = state[start] = DriftMonitor(ref)
            monitor.observe(rows, rows)  # counters find their columns (inputs and score) by name
            tables.append(monitor.table(model=name, model_version=version, window_start=start, shard=key))
        newest = max(state)
        for old in [w for w in state if w < newest - keep_windows * window_ms]:
            del state[old]
        return state, tables

    def keyed_by_shard(batch: Any) -> tuple[str, tuple[str, Any]]:
        key = shard_key(batch)
        return key, (key, batch)

    keyed = op.map("key", up, keyed_by_shard)
    counted = op.stateful_map("count", keyed, count)
    return op.flat_map("tables", counted, lambda key_tables: key_tables[1])


def _drift_per_version(
    up: Stream[Any],
    references: Callable[[str], dict[str, Any]],
    version_field: str,
    time_field: str,
    window: timedelta,
    model: str,
    shard_key: Callable[[Any], str],
    keep_windows: int,
) -> Stream[Any]:
    """``drift_counts`` with one counter set per (shard, version), each on its version's reference."""
    if not callable(references):
        msg = "with version_field, reference must be a callable: version -> that version's drift reference"
        raise TypeError(msg)
    if window <= timedelta(0):
        msg = f"window must be positive, got {window}"
        raise ValueError(msg)
    window_ms = int(window.total_seconds() * 1000)

    def split(batch: Any) -> list[tuple[str, tuple[str, str, Any]]]:
        import pyarrow as pa
        import pyarrow.compute as pc

        table = pa.table(batch)
        if version_field not in table.column_names:
            msg = f"drift_counts: the batch lacks the version field '{version_field}'; it has {table.column_names}"
            raise InputError(msg)
        shard, column = shard_key(batch), table.column(version_field)
        return [
            (f"{shard}\x00{v}", (shard, str(v), table.filter(pc.equal(column, v))))
            for v in pc.unique(column).to_pylist()
        ]

    def count(state: dict[int, DriftMonitor] | None, item: Any) -> tuple[dict[int, DriftMonitor], list[Any]]:
        import numpy as np

        state = state if state is not None else {}
        shard, version, batch = item
        starts = _window_starts(batch, time_field, window_ms)
        tables = []
        for start in np.unique(starts).tolist():
            rows = batch.filter(starts == start)
            monitor = state.get(start)
            if monitor is None:
                monitor = state[start] = DriftMonitor(references(version))
            monitor.observe(rows, rows)
            tables.append(monitor.table(model=model, model_version=version, window_start=start, shard=shard))
        newest = max(state)
        for old in [w for w in state if w < newest - keep_windows * window_ms]:
            del state[old]
        return state, tables

    counted = op.stateful_map("count", op.flat_map("split_versions", up, split), count)
    return op.flat_map("tables", counted, lambda key_tables: key_tables[1])
