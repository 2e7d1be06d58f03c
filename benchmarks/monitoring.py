"""Monitoring costs, with peers measured in the same run.

1. Drift counters over R1's 32 features (+ the score) as a share of R1 scoring throughput
   (target <= 10%), against the obvious numpy binning (searchsorted + bincount per column)
   and whylogs profiling the same batches (in its own virtualenv, ``.venv-whylogs``: whylogs
   needs NumPy < 2; ``make bench`` creates it).
2. The feedback join in the Bytewax operator, joined pairs/s (target >= 500k), against the
   same join state called directly (the ceiling), the former pure-Python join
   (``tests/feedback_reference.py``) called directly and inside the same operator, and a
   per-event Bytewax ``op.join``.
3. RSS while 10M events flow through the join with a TTL: it must stay flat (bounded by the
   pending predictions within the TTL).

Usage: ``python benchmarks/monitoring.py [--quick]`` (``make bench`` runs it).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the former Python join

from harness import format_value, limit_threads
from streamml.drift import DriftMonitor
from streamml.feedback import FeedbackJoin
from streamml_dev.workloads import FEATURE_NAMES, TRAIN_SEED, r1_data

ROOT = Path(__file__).resolve().parents[1]
#: whylogs pins NumPy < 2: it runs in its own virtualenv (``make bench`` creates it).
WHYLOGS_PYTHON = Path(os.environ.get("STREAMML_WHYLOGS_PYTHON", ROOT / ".venv-whylogs" / "bin" / "python"))


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def drift_section(rows: list[tuple[str, float, str, str]], n: int) -> None:
    import lightgbm

    from r1_models import BENCH_DIR, R1_ROWS, R1_TREES, compile_streamml, train_lightgbm

    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    trained = train_lightgbm(R1_TREES, R1_ROWS, retrain=False)
    model, _ = compile_streamml(lightgbm.Booster(model_file=str(trained.path)), "r1", "R1")
    x_ref, _ = r1_data(R1_ROWS, TRAIN_SEED)
    x, _ = r1_data(n, 7)
    ref = pa.table({f: x_ref[:, j] for j, f in enumerate(FEATURE_NAMES)})
    scores_ref = model.predict(
        pa.record_batch([pa.array(x_ref[:20_000, j]) for j in range(32)], names=list(FEATURE_NAMES))
    )
    monitor = DriftMonitor.fit(ref, scores=scores_ref)
    batches = [
        pa.record_batch([pa.array(x[i : i + 10_000, j]) for j in range(32)], names=list(FEATURE_NAMES))
        for i in range(0, n, 10_000)
    ]
    outputs = [model.predict(b) for b in batches]
    t_score = best_of(lambda: [model.predict(b) for b in batches], 1)
    t_drift = best_of(lambda: [monitor.observe(b, o) for b, o in zip(batches, outputs, strict=True)])
    edges = [np.asarray(f["edges"]) for f in monitor.reference["features"]]

    def numpy_bins() -> None:
        for b in batches:
            for j in range(32):
                v = b.column(j).to_numpy()
                np.bincount(np.searchsorted(edges[j], v, side="right"), minlength=edges[j].size + 3)

    t_numpy = best_of(numpy_bins)
    rows.append(("drift", n / t_score, "rows/s", "R1 scoring (streamml, 300 trees)"))
    rows.append(
        ("drift", n / t_drift, "rows/s", f"drift counters, 32 features + score ({t_drift / t_score:.2%} of scoring)")
    )
    rows.append(
        (
            "drift",
            n / t_numpy,
            "rows/s",
            f"numpy searchsorted+bincount, 32 features (streamml {t_numpy / t_drift:.2f}x)",
        )
    )
    why_runs = run_whylogs(x)
    if isinstance(why_runs, str):
        rows.append(("drift", float("nan"), "rows/s", f"whylogs: not measured ({why_runs})"))
    else:
        t_why = min(why_runs)
        rows.append(
            ("drift", n / t_why, "rows/s", f"whylogs profile, 32 features (streamml {t_why / t_drift:.1f}x faster)")
        )


def run_whylogs(x: np.ndarray) -> list[float] | str:
    """Seconds per run of whylogs profiling ``x`` in batches of 10,000 rows, or why it could not run."""
    if not WHYLOGS_PYTHON.is_file():
        return f"{WHYLOGS_PYTHON} missing (make bench creates it)"
    with tempfile.TemporaryDirectory() as tmp:
        rows_file = Path(tmp) / "rows.npy"
        np.save(rows_file, x)
        script = Path(__file__).resolve().parent / "whylogs_peer.py"
        done = subprocess.run(
            [str(WHYLOGS_PYTHON), str(script), str(rows_file), "3"], capture_output=True, text=True, check=False
        )
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return f"failed: {lines[-1] if lines else done.returncode}"
    return [float(v) for v in done.stdout.split()]


def join_items(n: int, batch: int = 10_000) -> list[tuple[str, pa.Table]]:
    """Predictions in batches; each label batch follows two prediction batches later (all joined)."""
    rng = np.random.default_rng(3)
    items = []
    for i in range(0, n, batch):
        ids = np.arange(i, i + batch, dtype=np.int64)
        t = ids * 2
        items.append(("p", pa.table({"event_id": ids, "event_time": t, "probability": rng.random(batch)})))
        if i >= 2 * batch:
            lids = rng.permutation(np.arange(i - 2 * batch, i - batch, dtype=np.int64))
            items.append(
                (
                    "l",
                    pa.table(
                        {"event_id": lids, "label_time": lids * 2 + 40_000, "label": (rng.random(batch) < 0.5) * 1.0}
                    ),
                )
            )
    for k in (2, 1):
        lids = np.arange(n - k * batch, n - (k - 1) * batch, dtype=np.int64)
        items.append(("l", pa.table({"event_id": lids, "label_time": lids * 2 + 40_000, "label": np.ones(batch)})))
    return items


def join_section(rows: list[tuple[str, float, str, str]], n: int) -> None:
    import bytewax.operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.testing import TestingSink, TestingSource, run_main

    import streamml.bytewax.feedback as bytewax_feedback
    from feedback_reference import PyFeedbackJoin
    from streamml.bytewax.feedback import feedback_join

    items = join_items(n)

    class FormerJoin(PyFeedbackJoin):
        def quality_table(self, windows: list[int]) -> pa.Table:
            # What the operator did before the Rust join: rows as Python tuples, then a table.
            rows = self.quality_rows(windows)
            return pa.table(
                {
                    "window_start": pa.array([r[0] for r in rows], pa.int64()),
                    "metric": [r[1] for r in rows],
                    "value": pa.array([r[2] for r in rows], pa.float64()),
                }
            )

    def direct(cls: type) -> float:
        join = cls(ttl=100_000, window=60_000)
        t0 = time.perf_counter()
        joined = 0
        for tag, b in items:
            if tag == "l":
                joined += join.add_labels(b).num_rows
            else:
                join.add_predictions(b)
            join.quality_rows(join.take_touched())  # what every host does after a batch
        dt = time.perf_counter() - t0
        assert joined == n, (joined, n)
        return dt

    def in_bytewax(cls: type) -> float:
        sink: list = []
        flow = Dataflow("bench_join")
        both = op.branch("tag", op.input("in", flow, TestingSource(items, batch_size=1)), lambda x: x[0] == "p")
        out = feedback_join(
            "join",
            op.map("p", both.trues, lambda x: x[1]),
            op.map("l", both.falses, lambda x: x[1]),
            ttl=100_000,
            window=60_000,
        )
        op.output("fb", op.map("n", out.feedback, lambda t: t.num_rows), TestingSink(sink))
        saved, bytewax_feedback.FeedbackJoin = bytewax_feedback.FeedbackJoin, cls
        try:
            t0 = time.perf_counter()
            run_main(flow, epoch_interval=timedelta(0))
            dt = time.perf_counter() - t0
        finally:
            bytewax_feedback.FeedbackJoin = saved
        assert sum(sink) == n, (sum(sink), n)
        return dt

    # Interleaved, best of 2: this machine's load swings more than the differences.
    t_direct = t_direct_py = t_bytewax = t_bytewax_py = float("inf")
    for _ in range(2):
        t_direct = min(t_direct, direct(FeedbackJoin))
        t_direct_py = min(t_direct_py, direct(PyFeedbackJoin))
        t_bytewax = min(t_bytewax, in_bytewax(FeedbackJoin))
        t_bytewax_py = min(t_bytewax_py, in_bytewax(FormerJoin))

    m = min(n, 100_000)
    per_event: list = []
    flow = Dataflow("bench_per_event")
    preds = op.input("p", flow, TestingSource([(str(i), 0.5) for i in range(m)]))
    labs = op.input("l", flow, TestingSource([(str(i), 1.0) for i in range(m)]))
    j = op.join("join", preds, labs, emit_mode="complete")
    op.output("o", j, TestingSink(per_event))
    t0 = time.perf_counter()
    run_main(flow)
    t_event = time.perf_counter() - t0
    assert len(per_event) == m

    rows.append(("join", n / t_bytewax, "pairs/s", "feedback_join in Bytewax (batches of 10k; Rust join)"))
    rows.append(
        (
            "join",
            n / t_bytewax_py,
            "pairs/s",
            f"feedback_join in Bytewax with the former Python join (streamml {t_bytewax_py / t_bytewax:.2f}x)",
        )
    )
    rows.append(
        (
            "join",
            n / t_direct,
            "pairs/s",
            f"FeedbackJoin (Rust) called directly, no Bytewax (ceiling; Bytewax costs {t_bytewax / t_direct - 1:.0%})",
        )
    )
    rows.append(
        (
            "join",
            n / t_direct_py,
            "pairs/s",
            f"former Python FeedbackJoin called directly (Rust {t_direct_py / t_direct:.2f}x)",
        )
    )
    rows.append(
        (
            "join",
            m / t_event,
            "pairs/s",
            f"per-event Bytewax op.join, {m} pairs (streamml {(m / t_event) ** -1 * (n / t_bytewax):.1f}x)",
        )
    )


def rss_section(rows: list[tuple[str, float, str, str]], n: int) -> None:
    rng = np.random.default_rng(9)
    join = FeedbackJoin(ttl=20_000, window=60_000)  # ttl 20 s at 1 event/ms: ~20k pending
    batch, marks = 10_000, max(n // 5, 10_000)
    for i in range(0, n, batch):
        ids = np.arange(i, i + batch, dtype=np.int64)
        join.add_predictions(pa.table({"event_id": ids, "event_time": ids, "probability": rng.random(batch)}))
        if i >= 30_000:
            lids = np.arange(i - 30_000, i - 20_000, dtype=np.int64)
            keep = lids[rng.random(batch) < 0.5]  # half get a label (after 20-30 s: some late)
            join.add_labels(pa.table({"event_id": keep, "label_time": keep + 25_000, "label": np.ones(keep.size)}))
        if (i + batch) % marks == 0:
            rows.append(
                (
                    "rss",
                    rss_mb(),
                    "MB",
                    f"RSS after {i + batch:,} events (pending {join.pending_count:,}, "
                    f"expired ids kept {join.tombstone_count:,})",
                )
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (CI smoke, not for quoting)")
    parser.add_argument(
        "--only", choices=("drift", "join", "rss"), action="append", help="run only these sections (repeatable)"
    )
    args = parser.parse_args()
    only = set(args.only or ("drift", "join", "rss"))
    rows: list[tuple[str, float, str, str]] = []
    with limit_threads():
        if "drift" in only:
            drift_section(rows, 20_000 if args.quick else 100_000)
        if "join" in only:
            join_section(rows, 200_000 if args.quick else 1_000_000)
        if "rss" in only:
            rss_section(rows, 1_000_000 if args.quick else 10_000_000)
    width = max(len(r[3]) for r in rows)
    section = None
    for sec, value, unit, case in rows:
        if sec != section:
            section = sec
            print(f"[{sec}]")
        print(f"  {case:<{width}}  {format_value(value):>12}  {unit}")


if __name__ == "__main__":
    main()
