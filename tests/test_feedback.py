"""The feedback join: exact counts on a scripted stream, AUC, the Bytewax operator, restarts, the store."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import bytewax.operators as op
import numpy as np
import pyarrow as pa
import pytest
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, TestingSource, cluster_main, run_main
from sklearn.metrics import roc_auc_score

from streamml import InputError
from streamml.bytewax.feedback import feedback_join
from streamml.feedback import FeedbackJoin, auc_from_histograms
from streamml.store import TABLES, Store


def preds(ids, times, scores) -> pa.Table:
    return pa.table({"event_id": ids, "event_time": pa.array(times, pa.int64()), "probability": scores})


def labels(ids, times, ys) -> pa.Table:
    return pa.table({"event_id": ids, "label_time": pa.array(times, pa.int64()), "label": [float(y) for y in ys]})


def test_scripted_stream_counts_late_orphan_and_expired_exactly() -> None:
    join = FeedbackJoin(ttl=100, window=1000, bucket=10)
    join.add_predictions(preds([1, 2, 3, 4], [0, 10, 20, 30], [0.9, 0.8, 0.1, 0.4]))
    # 1 in time; 2 after its ttl while still pending (expired + late); 99 never predicted (orphan).
    # The watermark (200) then expires 3 and 4, unlabeled.
    fb = join.add_labels(labels([1, 2, 99], [50, 200, 60], [1, 1, 0]))
    assert fb.column("event_id").to_pylist() == ["1"]
    assert fb.column("delay_ms").to_pylist() == [50]
    assert sorted(join.pending) == []
    assert sorted(join.tombstones) == [3, 4]
    # Labels for the expired 3 and 4 within the late horizon: late.
    assert join.add_labels(labels([3, 4], [210, 210], [0, 0])).num_rows == 0
    join.add_predictions(preds([5], [1500], [0.7]))
    assert join.add_labels(labels([5], [1600], [1])).column("event_id").to_pylist() == ["5"]
    # 1 was joined already and 3 is forgotten past the horizon: both orphans now.
    assert join.add_labels(labels([3, 1], [1700, 1700], [0, 1])).num_rows == 0
    w0, w1 = join.windows[0], join.windows[1000]
    assert (w0["predictions"], w0["labeled"], w0["expired"], w0["late_labels"], w0["orphan_labels"]) == (4, 1, 3, 3, 1)
    assert (w1["predictions"], w1["labeled"], w1["expired"], w1["late_labels"], w1["orphan_labels"]) == (1, 1, 0, 0, 2)
    assert (w0["tp"], w0["fp"], w0["tn"], w0["fn"], w1["tp"]) == (1, 0, 0, 0, 1)
    assert join.pending == {}
    assert join.tombstones == {}


def test_pending_state_is_bounded_by_the_ttl() -> None:
    join = FeedbackJoin(ttl=1000, window=60_000)
    for k in range(100):
        t = np.arange(k * 100, (k + 1) * 100, dtype=np.int64)
        join.add_predictions(preds(list(range(k * 100, (k + 1) * 100)), t, [0.5] * 100))
        join.add_labels(labels([-1], [(k + 1) * 100], [0]))  # the label stream moves on
    # Only the predictions of the last ttl (plus one expiry bucket) are pending; expired ids
    # are remembered for another horizon, then forgotten.
    assert len(join.pending) <= 1000 + join.bucket
    assert len(join.tombstones) <= 1000 + join.bucket
    assert join.windows[0]["expired"] == 10_000 - len(join.pending)


def test_auc_from_histograms_is_within_0_005_of_sklearn() -> None:
    rng = np.random.default_rng(5)
    n = 20_000
    y = rng.random(n) < 0.3
    score = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.2 * y)))
    join = FeedbackJoin(ttl=10**9, window=10**9)
    join.add_predictions(preds(list(range(n)), np.zeros(n, dtype=np.int64), score))
    join.add_labels(labels(list(range(n)), np.ones(n, dtype=np.int64), y.astype(int)))
    h = join.hists[0]
    assert abs(auc_from_histograms(h[0], h[1]) - roc_auc_score(y, score)) < 0.005
    w = join.windows[0]
    assert w["logloss_sum"] / n == pytest.approx(-np.mean(np.where(y, np.log(score), np.log(1 - score))), rel=1e-9)
    assert w["brier_sum"] / n == pytest.approx(np.mean((score - y) ** 2), rel=1e-9)


def test_regression_error_sums() -> None:
    join = FeedbackJoin(ttl=10, window=100, task="regression", bucket=1)
    join.add_predictions(pa.table({"event_id": ["a", "b"], "event_time": [1, 2], "probability": [3.0, 5.0]}))
    join.add_labels(labels(["a", "b"], [3, 4], [1, 7]))
    w = join.windows[0]
    assert (w["abs_err_sum"], w["sq_err_sum"], w["label_sum"], w["labeled"]) == (4.0, 8.0, 8.0, 2)


def test_bad_batches_name_the_field() -> None:
    join = FeedbackJoin(ttl=10, window=100)
    with pytest.raises(InputError, match=r"feedback join: predictions lack the field 'event_time'"):
        join.add_predictions(pa.table({"event_id": [1], "probability": [0.5]}))
    with pytest.raises(InputError, match=r"labels field 'label_time' has 1 null time"):
        join.add_labels(pa.table({"event_id": [1], "label_time": pa.array([None], pa.int64()), "label": [1.0]}))


# --- the Bytewax operator ----------------------------------------------------------------------


def scripted(n: int = 4000, seed: int = 11) -> list[tuple[str, pa.Table]]:
    """Predictions 5 ms apart in batches of 200; labels for 80% after 0-3 s, and 200 orphans.

    Items are tagged ``("p" | "l", batch)`` and in event-time order: a label batch comes
    after every prediction batch that starts before its last label.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.int64) * 5
    score = rng.random(n)
    y = (rng.random(n) < score).astype(int)
    labelled = np.flatnonzero(rng.random(n) < 0.8)
    lt = t[labelled] + rng.integers(0, 3000, labelled.size)
    order = np.argsort(lt, kind="stable")
    lab_ids = [int(i) for i in labelled[order]] + [10**6 + i for i in range(200)]
    lab_t = np.concatenate([lt[order], np.full(200, t[-1] + 3000)])
    lab_y = np.concatenate([y[labelled][order], np.zeros(200, dtype=int)])
    items = [
        (int(t[i]), "p", preds(list(range(i, i + 200)), t[i : i + 200], score[i : i + 200])) for i in range(0, n, 200)
    ]
    items += [
        (int(lab_t[i : i + 150].max()), "l", labels(lab_ids[i : i + 150], lab_t[i : i + 150], lab_y[i : i + 150]))
        for i in range(0, len(lab_ids), 150)
    ]
    items.sort(key=lambda x: (x[0], x[1] == "l"))
    return [(tag, b) for _, tag, b in items]


def expected_counts(items: list[tuple[str, pa.Table]], ttl: int = 2000) -> dict[str, int]:
    """The counts the join must reach, from the script itself."""
    t_pred = {
        i: t
        for tag, b in items
        if tag == "p"
        for i, t in zip(b["event_id"].to_pylist(), b["event_time"].to_pylist(), strict=True)
    }
    delays = [
        t - t_pred[i]
        for tag, b in items
        if tag == "l"
        for i, t in zip(b["event_id"].to_pylist(), b["label_time"].to_pylist(), strict=True)
        if i in t_pred
    ]
    labeled = sum(d <= ttl for d in delays)
    n_labels = sum(b.num_rows for tag, b in items if tag == "l")
    return {
        "predictions": len(t_pred),
        "labeled": labeled,
        "expired": len(t_pred) - labeled,
        "late_labels": len(delays) - labeled,
        "orphan_labels": n_labels - len(delays),
    }


def flow_of(items: list, sink: list, *, shards: int, abort_after: int | None = None) -> Dataflow:
    """Both inputs from one ordered source (each item its own epoch keeps the order)."""
    flow = Dataflow("fb")
    if abort_after is not None:
        items = [*items[:abort_after], TestingSource.ABORT(), *items[abort_after:]]
    both = op.branch("tag", op.input("in", flow, TestingSource(items, batch_size=1)), lambda x: x[0] == "p")
    ps = op.map("p", both.trues, lambda x: x[1])
    ls = op.map("l", both.falses, lambda x: x[1])
    out = feedback_join("join", ps, ls, ttl=2000, window=5000, shards=shards, model="m", model_version="1")
    op.output("fb", out.feedback, TestingSink(sink))
    op.output("q", out.quality, TestingSink(sink))
    return flow


EPOCH = timedelta(0)


def final_quality(tables: list[pa.Table]) -> dict[tuple[int, str], float]:
    """The last value per (window, shard, metric), summed over shards."""
    last: dict[tuple[int, str, str], float] = {}
    for t in tables:
        if "metric" in t.column_names:
            for r in t.to_pylist():
                last[(r["window_start"], r["shard"], r["metric"])] = r["value"]
    total: dict[tuple[int, str], float] = {}
    for (w, _, m), v in last.items():
        total[(w, m)] = total.get((w, m), 0.0) + v
    return total


def test_two_workers_give_the_counters_of_one() -> None:
    items = scripted()
    one: list = []
    run_main(flow_of(items, one, shards=4), epoch_interval=EPOCH)
    two: list = []
    cluster_main(flow_of(items, two, shards=4), [], 0, worker_count_per_proc=2, epoch_interval=EPOCH)
    q1, q2 = final_quality(one), final_quality(two)
    assert q1 == q2
    total = {
        m: sum(v for (_, k), v in q1.items() if k == m)
        for m in ("predictions", "labeled", "expired", "late_labels", "orphan_labels")
    }
    assert total == expected_counts(items)
    joined = sum(t.num_rows for t in one if "label" in t.column_names)
    assert joined == sum(v for (_, m), v in q1.items() if m == "labeled")


def test_a_restart_resumes_without_double_counting(tmp_path: Path) -> None:
    items = scripted()
    straight: list = []
    run_main(flow_of(items, straight, shards=2), epoch_interval=EPOCH)
    init_db_dir(tmp_path, 1)
    recovery = RecoveryConfig(str(tmp_path))
    resumed: list = []
    flow = flow_of(items, resumed, shards=2, abort_after=25)
    run_main(flow, epoch_interval=EPOCH, recovery_config=recovery)  # stops at the ABORT item
    aborted_at = len(resumed)
    run_main(flow, epoch_interval=EPOCH, recovery_config=recovery)
    assert 0 < aborted_at < len(resumed)
    assert final_quality(resumed) == final_quality(straight)


def test_replaying_the_stream_into_the_store_changes_nothing(tmp_path: Path) -> None:
    items = scripted(n=1000)
    uri = str(tmp_path / "m.db")

    def run_into_store() -> dict[str, list]:
        sink: list = []
        run_main(flow_of(items, sink, shards=2), epoch_interval=EPOCH)
        with Store(uri) as store:
            for t in sink:
                store.write("quality" if "metric" in t.column_names else "feedback", t)
            return {name: store.read(name).to_pylist() for name in TABLES}

    first = run_into_store()
    assert len(first["feedback"]) > 500
    assert run_into_store() == first
