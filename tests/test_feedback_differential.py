"""The Rust feedback join against the pure-Python join it replaced, and its state round trip.

The reference (``tests/feedback_reference.py``) is the former implementation with the rules added
since. On a random stream of 120k events (int and string ids, duplicate predictions and labels,
labels out of order, late, orphan and expired cases, NaN and infinite scores, labels and
predictions stamped far in the future, batches spanning several windows) every feedback table,
every revised window's quality rows (floats compared bit for bit) and the final state are equal.
"""

from __future__ import annotations

import math
import pickle

import numpy as np
import pyarrow as pa
import pytest

from feedback_reference import PyFeedbackJoin
from streamml import InputError, _streamml
from streamml.feedback import FeedbackJoin

TTL, WINDOW = 2000, 1500
NOW = 0  # the wall clock the joins are given: the stream's times are around it
FUTURE = 10**9  # added to the times of the events stamped in the future


def random_stream(n: int, seed: int) -> list[tuple[str, pa.Table]]:
    """``("p" | "l", batch)`` items in emit order; ids are ints or strings in blocks of 5000 events."""
    rng = np.random.default_rng(seed)
    ids = np.arange(n, dtype=np.int64)
    dup = rng.random(n) < 0.02  # predicted again: the id of an event up to 300 before
    ids[dup] = np.maximum(0, ids[dup] - rng.integers(0, 300, dup.sum()))
    t = np.arange(n, dtype=np.int64) + rng.integers(-50, 50, n)
    # Scores: uniform, a few exactly 0, 1 and at the threshold.
    score = rng.random(n)
    score[rng.random(n) < 0.01] = 0.0
    score[rng.random(n) < 0.01] = 1.0
    score[rng.random(n) < 0.01] = 0.5
    score[rng.random(n) < 0.004] = np.nan
    score[rng.random(n) < 0.002] = np.inf
    score[rng.random(n) < 0.002] = -np.inf
    t[rng.random(n) < 0.002] += FUTURE  # refused: beyond max_future_skew
    is_str = (np.arange(n) // 5000) % 2 == 1

    def id_values(rows: np.ndarray) -> pa.Array:
        if is_str[rows[0]]:
            return pa.array([f"e{i}" for i in ids[rows].tolist()], pa.string())
        return pa.array(ids[rows])

    def cut(rows: np.ndarray, events: np.ndarray) -> list[np.ndarray]:
        """Batches of 1-1000 rows, each split by id kind (``events``: each row's event)."""
        out, i = [], 0
        while i < rows.size:
            j = min(rows.size, i + int(rng.integers(1, 1000)))
            kinds = is_str[events[rows[i:j]]]
            out += [part for part in (rows[i:j][~kinds], rows[i:j][kinds]) if part.size]
            i = j
        return out

    items: list[tuple[int, int, str, pa.Table]] = []
    for k, rows in enumerate(cut(np.arange(n), np.arange(n))):
        batch = pa.table({"event_id": id_values(rows), "event_time": t[rows], "probability": score[rows]})
        items.append((int(t[rows].min()), k, "p", batch))  # predictions run ahead
    # Labels: 85% of events; delays mostly in time, some around the ttl, after it, beyond the horizon.
    labelled = np.flatnonzero(rng.random(n) < 0.85)
    labelled = np.concatenate([labelled, labelled[rng.random(labelled.size) < 0.03]])  # duplicate labels
    kind = rng.choice(4, labelled.size, p=[0.7, 0.15, 0.1, 0.05])
    lo, hi = np.array([0, 1800, 2600, 5000])[kind], np.array([1800, 2600, 5000, 9000])[kind]
    lt = t[labelled] + rng.integers(lo, hi)
    lt[rng.random(lt.size) < 0.002] += FUTURE
    y = (rng.random(labelled.size) < score[labelled]).astype(np.float64)
    order = np.argsort(lt + rng.integers(-300, 300, lt.size), kind="stable")  # out of order
    labelled, lt, y = labelled[order], lt[order], y[order]
    unknown = rng.random(labelled.size) < 0.02  # ids never predicted: orphans
    for k, rows in enumerate(cut(np.arange(labelled.size), labelled)):
        ev = labelled[rows]
        col = id_values(ev)
        if unknown[rows].any():
            bogus = [(f"x{r}" if is_str[ev[0]] else -1 - int(r)) for r in rows.tolist()]
            col = pa.array([b if u else v for b, u, v in zip(bogus, unknown[rows], col.to_pylist(), strict=True)])
        batch = pa.table({"event_id": col, "label_time": lt[rows], "label": y[rows]})
        items.append((int(lt[rows].max()), 10**9 + k, "l", batch))
    items.sort(key=lambda x: (x[0], x[1]))
    return [(tag, b) for _, _, tag, b in items]


def run(join, items) -> tuple[list[pa.Table], list[tuple[list[int], list]]]:
    tables, revised = [], []
    for tag, batch in items:
        if tag == "p":
            join.add_predictions(batch, now=NOW)
        else:
            tables.append(join.add_labels(batch, now=NOW))
        touched = join.take_touched()
        revised.append((touched, join.quality_rows(touched)))
    return tables, revised


def assert_same_tables(got: list[pa.Table], want: list[pa.Table]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.schema.types == w.schema.types
        assert g.column_names == w.column_names
        assert nan_as_text(g.to_pydict()) == nan_as_text(w.to_pydict())  # floats compared exactly


def nan_as_text(value: object) -> object:
    """``value`` with every NaN as the text ``"nan"`` (NaN is not equal to itself)."""
    if isinstance(value, dict):
        return {k: nan_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [nan_as_text(v) for v in value]
    if isinstance(value, complex):
        return (value.real, nan_as_text(value.imag))
    return "nan" if isinstance(value, float) and value != value else value


@pytest.mark.parametrize(("task", "jump"), [("binary", None), ("binary", 3000), ("regression", None)])
def test_the_rust_join_equals_the_python_join_on_a_random_stream(task: str, jump: int | None) -> None:
    items = random_stream(120_000 if task == "binary" else 30_000, seed=17)
    kw = {"ttl": TTL, "window": WINDOW, "task": task, "max_watermark_jump": jump}
    rust, ref = FeedbackJoin(**kw), PyFeedbackJoin(**kw)
    assert isinstance(rust._state, _streamml.FeedbackJoinState), "the native join ran"
    got, want = run(rust, items), run(ref, items)
    assert_same_tables(got[0], want[0])
    assert got[1] == want[1]  # every revised window, every batch, floats bit for bit
    assert rust.windows == ref.windows
    assert nan_as_text(rust.pending) == nan_as_text(ref.pending)
    assert rust.tombstones == ref.tombstones
    assert rust.labelled == ref.labelled
    assert rust.watermark == ref.watermark
    if task == "binary":
        assert rust.hists.keys() == ref.hists.keys()
        assert all(np.array_equal(rust.hists[s], ref.hists[s]) for s in ref.hists)
    # The stream has every case, and more than one window per batch.
    totals = {m: sum(w[m] for w in ref.windows.values()) for m in next(iter(ref.windows.values()))}
    assert min(totals[m] for m in ("expired", "late_labels", "orphan_labels", "duplicates", "duplicate_labels")) > 100
    assert min(totals[m] for m in ("non_finite_scores", "future_labels", "future_predictions")) > 50
    assert all(math.isfinite(v) for w in ref.windows.values() for v in w.values())
    assert totals["labeled"] > 0.5 * totals["predictions"]
    assert any(len(touched) > 2 for touched, _ in got[1])


def scripted() -> list[tuple[str, pa.Table]]:
    """A short stream with late, orphan, expired and duplicate cases in both id kinds."""

    def p(ids, times, scores):
        return "p", pa.table({"event_id": ids, "event_time": pa.array(times, pa.int64()), "probability": scores})

    def lab(ids, times, ys):
        return "l", pa.table({"event_id": ids, "label_time": pa.array(times, pa.int64()), "label": ys})

    return [
        p([1, 2, 3, 4, 4], [0, 10, 20, 30, 35], [0.9, 0.8, 0.1, 0.4, 0.45]),
        p(["a", "b"], [5, 15], [0.7, 0.2]),
        lab([1, 2, 99], [50, 200, 60], [1.0, 1.0, 0.0]),
        lab(["a", "zz"], [205, 205], [1.0, 0.0]),
        lab([3, 4, 4], [210, 210, 210], [0.0, 0.0, 1.0]),
        p([5, 6, 6], [1500, 1510, 1520], [0.7, 0.3, 0.6]),
        lab([5], [1600], [1.0]),
        lab(["b"], [1601], [0.0]),
        lab([3, 1, 6], [1700, 1700, 1700], [0.0, 1.0, 1.0]),
        p([7], [4000], [0.99]),
    ]


@pytest.mark.parametrize("how", ["pickle", "snapshot"])
def test_a_restored_join_continues_like_an_unbroken_one(how: str) -> None:
    items = scripted()
    straight = run(FeedbackJoin(ttl=100, window=1000, bucket=10), items)
    join, tables, revised = FeedbackJoin(ttl=100, window=1000, bucket=10), [], []
    for tag, batch in items:
        # Round-trip the state before every batch (the hosts checkpoint between batches).
        if how == "pickle":
            join = pickle.loads(pickle.dumps(join))
        else:
            join = FeedbackJoin.restore(pickle.loads(pickle.dumps(join.snapshot())))
        part = run(join, [(tag, batch)])
        tables += part[0]
        revised += part[1]
    assert_same_tables(tables, straight[0])
    assert revised == straight[1]
    final = run(PyFeedbackJoin(ttl=100, window=1000, bucket=10), items)
    assert revised == final[1], "and both equal the Python join"
    assert join.pending == {7: complex(4000, 0.99)}
    w0 = join.windows[0]
    counts = ("predictions", "expired", "late_labels", "orphan_labels", "duplicates", "duplicate_labels")
    assert tuple(w0[m] for m in counts) == (
        7.0,
        5.0,
        4.0,
        2.0,  # 99 and zz
        1.0,
        1.0,  # the second label of 4: the first won
    )


def test_the_snapshot_is_compact_and_old_snapshots_are_refused() -> None:
    join = FeedbackJoin(ttl=10**9, window=10**9)
    n = 10_000
    join.add_predictions(pa.table({"event_id": np.arange(n), "event_time": np.arange(n), "probability": np.ones(n)}))
    state = join.snapshot()["state"]
    assert isinstance(state, bytes)
    assert n * 24 < len(state) < n * 40 + 4096
    with pytest.raises(InputError, match=r"cannot restore a snapshot in format the pure-Python join's; expected"):
        FeedbackJoin.restore(PyFeedbackJoin(ttl=10, window=10).snapshot())
    bad = dict(join.snapshot(), state=state[:-5])
    with pytest.raises(InputError, match=r"^feedback join: the saved state cannot be read: the header declares"):
        FeedbackJoin.restore(bad)
