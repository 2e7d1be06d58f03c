"""``streamml.bytewax.drift_counts``: per-window counters in a dataflow equal a DriftMonitor over the same rows."""

from __future__ import annotations

from datetime import timedelta

import bytewax.operators as op
import numpy as np
import pyarrow as pa
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from streamml.bytewax import drift_counts
from streamml.drift import DriftMonitor
from streamml.errors import InputError

WINDOW_MS = 60_000


def scored_batches(n_batches: int = 12, rows: int = 250) -> list[pa.RecordBatch]:
    """Batches of two features and a score whose rows straddle windows (times not sorted within a batch)."""
    rng = np.random.default_rng(5)
    out = []
    for b in range(n_batches):
        t = b * 20_000 + rng.integers(0, 40_000, rows)
        shift = 1.5 if b >= n_batches // 2 else 0.0
        out.append(
            pa.record_batch(
                {
                    "event_time": pa.array(t, pa.int64()),
                    "x0": rng.normal(shift, 1, rows),
                    "x1": rng.normal(0, 1, rows),
                    "probability": rng.random(rows),
                    "part": pa.array([f"p{b % 2}"] * rows),
                }
            )
        )
    return out


@pytest.fixture(scope="module")
def reference() -> dict:
    rng = np.random.default_rng(1)
    ref = pa.table({"x0": rng.normal(0, 1, 5000), "x1": rng.normal(0, 1, 5000)})
    return DriftMonitor.fit(ref, scores=pa.table({"probability": rng.random(5000)})).reference


def run_flow(batches: list[pa.RecordBatch], reference: dict, **kw) -> list[pa.Table]:
    flow = Dataflow("drift_test")
    rows = drift_counts("drift", op.input("in", flow, TestingSource(batches)), reference,
                        model="m", model_version="1", window=timedelta(milliseconds=WINDOW_MS), **kw)  # fmt: skip
    out: list[pa.Table] = []
    op.output("out", rows, TestingSink(out))
    run_main(flow)
    return out


def last_counts(tables: list[pa.Table]) -> dict[tuple[int, str, str, int], int]:
    """The store's view: the newest cumulative count per (window, shard, feature, bin)."""
    latest: dict[tuple[int, str, str, int], int] = {}
    for t in tables:
        for r in t.to_pylist():
            latest[(r["window_start"], r["shard"], r["feature"], r["bin"])] = r["count"]
    return latest


def direct_counts(batches: list[pa.RecordBatch], reference: dict) -> dict[tuple[int, str, int], int]:
    table = pa.Table.from_batches(batches)
    starts = table["event_time"].to_numpy() // WINDOW_MS * WINDOW_MS
    out = {}
    for start in np.unique(starts).tolist():
        monitor = DriftMonitor(reference)
        rows = table.filter(pa.array(starts == start))
        monitor.observe(rows, rows)
        for feature, b, count in monitor.bins():
            out[(start, feature, b)] = count
    return out


def test_counts_per_window_equal_a_monitor_over_the_same_rows(reference: dict) -> None:
    batches = scored_batches()
    latest = last_counts(run_flow(batches, reference, keep_windows=10))
    got = {(w, f, b): c for (w, shard, f, b), c in latest.items()}
    assert {shard for (_, shard, _, _) in latest} == {"0"}
    assert got == direct_counts(batches, reference)
    # Every row of every window counted once per feature: x0's bins add up to the window's rows.
    table = pa.Table.from_batches(batches)
    starts = table["event_time"].to_numpy() // WINDOW_MS * WINDOW_MS
    for start in np.unique(starts).tolist():
        assert sum(c for (w, f, _), c in got.items() if w == start and f == "x0") == int((starts == start).sum())


def test_shards_sum_to_the_single_counter(reference: dict) -> None:
    batches = scored_batches()
    latest = last_counts(run_flow(batches, reference, keep_windows=10, shard_key=lambda b: b["part"][0].as_py()))
    assert {shard for (_, shard, _, _) in latest} == {"p0", "p1"}
    summed: dict[tuple[int, str, int], int] = {}
    for (w, _, f, b), c in latest.items():
        summed[(w, f, b)] = summed.get((w, f, b), 0) + c
    assert summed == direct_counts(batches, reference)


def test_a_batch_without_the_time_field_is_refused_with_the_reason(reference: dict) -> None:
    batch = pa.record_batch({"x0": [0.1], "x1": [0.2], "probability": [0.5]})
    with pytest.raises(Exception) as info:  # noqa: PT011 - Bytewax wraps it; the cause is checked below
        run_flow([batch], reference)
    causes, e = [], info.value
    while e is not None:
        causes.append(e)
        e = e.__cause__ or e.__context__
    refused = [c for c in causes if isinstance(c, InputError)]
    assert refused, causes
    assert "drift_counts: the batch lacks the time field 'event_time'; it has" in str(refused[0])


def test_a_model_without_a_reference_is_refused() -> None:
    class NoReference:
        def __init__(self) -> None:
            self.info = {"name": "plain", "version": "1"}

    flow = Dataflow("no_ref")
    with pytest.raises(ValueError, match="model 'plain' has no drift reference"):
        drift_counts("drift", op.input("in", flow, TestingSource([])), NoReference())
