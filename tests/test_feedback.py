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


# --- refused, duplicate and non-finite rows ----------------------------------------------------

NOW = 1_767_225_600_000  # the wall clock these tests give the join: 2026-01-01T00:00:00Z
YEAR = 365 * 24 * 3_600_000


def test_a_label_31_years_ahead_expires_nothing_and_is_refused() -> None:
    join = FeedbackJoin(ttl=60_000, window=300_000)
    ids = list(range(1000))
    join.add_predictions(preds(ids, [NOW - 100_000 + i for i in ids], [0.7] * 1000), now=NOW)
    fb = join.add_labels(labels([5, 6], [NOW + 31 * YEAR, NOW - 99_000], [1, 1]), now=NOW)
    assert fb.column("event_id").to_pylist() == ["6"]
    assert join.pending_count == 999, "no prediction expired"
    assert join.watermark == NOW - 99_000
    (refused,) = join.take_refused()
    assert (refused.kind, refused.rows.column("event_id").to_pylist()) == ("labels", [5])
    assert refused.reasons == [
        f"feedback join: labels field 'label_time' is {NOW + 31 * YEAR}, more than max_future_skew (3600000 ms) "
        f"ahead of the wall clock ({NOW}); the row is refused (counted, not joined, the watermark unmoved); "
        "fix the producer's clock, or raise the cap"
    ]
    assert join.take_refused() == []
    w = join.windows[NOW - 300_000]
    assert (w["future_labels"], w["expired"], w["orphan_labels"], w["labeled"]) == (0, 0, 0, 1)
    # Before the first label there is no watermark: the refused label counts in the wall clock's window.
    assert join.windows[NOW]["future_labels"] == 1
    # The prediction of 5 still waits for its real label.
    assert join.add_labels(labels([5], [NOW - 98_000], [1]), now=NOW).num_rows == 1


def test_future_predictions_and_the_watermark_jump_are_refused() -> None:
    join = FeedbackJoin(ttl=100, window=1000, max_watermark_jump=5000)
    join.add_predictions(preds([1, 2, 3], [0, NOW + 2 * 3_600_000, 10], [0.5] * 3), now=NOW)
    join.add_labels(labels([1], [50], [1]), now=NOW)
    join.add_labels(labels([3, 9], [5051, 5050], [1, 0]), now=NOW)
    refused = join.take_refused()
    assert [(r.kind, r.rows.num_rows) for r in refused] == [("predictions", 1), ("labels", 1)]
    assert "max_watermark_jump (5000) ahead of the watermark (50)" in refused[1].reasons[0]
    assert join.windows[0]["future_labels"] == 1
    assert join.windows[NOW // 1000 * 1000]["future_predictions"] == 1
    with pytest.raises(InputError, match=r"max_future_skew \(-1\) must not be negative"):
        FeedbackJoin(ttl=10, window=10, max_future_skew=-1)
    # Without the wall-clock cap (times that are not ms since the epoch) nothing is refused.
    free = FeedbackJoin(ttl=100, window=1000, max_future_skew=None)
    free.add_labels(labels([1], [NOW + 31 * YEAR], [1]), now=NOW)
    assert free.take_refused() == []


def test_non_finite_scores_are_counted_and_left_out_of_the_sums() -> None:
    join = FeedbackJoin(ttl=100, window=1000)
    scores = [float("nan"), float("inf"), float("-inf"), 0.9, 0.2, None]  # a null score is NaN
    join.add_predictions(preds([1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6], scores), now=NOW)
    fb = join.add_labels(labels([1, 2, 3, 4, 5, 6], [9] * 6, [1, 0, 1, 1, 0, 1]), now=NOW)
    assert fb.num_rows == 6
    w = join.windows[0]
    assert (w["labeled"], w["non_finite_scores"], w["non_finite_labels"]) == (6, 4, 0)
    assert np.isfinite(w["logloss_sum"])
    assert np.isfinite(w["brier_sum"])
    assert w["logloss_sum"] == pytest.approx(-np.log(0.9) - np.log(0.8), rel=1e-12)
    assert (w["pos"], w["neg"], join.hists[0].sum()) == (1, 1, 2)


def test_the_first_label_wins() -> None:
    join = FeedbackJoin(ttl=100, window=1000, bucket=10)
    join.add_predictions(preds([1, 2], [0, 10], [0.9, 0.8]), now=NOW)
    fb = join.add_labels(labels([1, 1, 2], [30, 31, 40], [1, 0, 0]), now=NOW)
    assert fb.column("label").to_pylist() == [1.0, 0.0]
    join.add_labels(labels([2, 1], [50, 60], [1, 1]), now=NOW)
    w = join.windows[0]
    assert (w["labeled"], w["duplicate_labels"], w["orphan_labels"], w["tp"], w["fp"]) == (2, 3, 0, 1, 1)
    assert join.labelled == {1: 0, 2: 10}


def test_the_bytewax_operator_sends_refused_rows_to_errs() -> None:
    items = [
        ("p", preds([1, 2], [0, 10], [0.9, 0.2])),
        ("l", labels([1, 2], [20, 31 * YEAR + NOW], [1, 0])),
    ]
    flow = Dataflow("fb_errs")
    both = op.branch("tag", op.input("in", flow, TestingSource(items, batch_size=1)), lambda x: x[0] == "p")
    out = feedback_join(
        "join", op.map("p", both.trues, lambda x: x[1]), op.map("l", both.falses, lambda x: x[1]), ttl=100, window=1000
    )
    errs: list = []
    fb: list = []
    op.output("errs", out.errs, TestingSink(errs))
    op.output("fb", out.feedback, TestingSink(fb))
    run_main(flow, epoch_interval=EPOCH)
    assert [(e.kind, e.rows.column("event_id").to_pylist()) for e in errs] == [("labels", [2])]
    assert "max_future_skew (3600000 ms) ahead of the wall clock" in errs[0].reasons[0]
    assert [t.column("event_id").to_pylist() for t in fb] == [["1"]]
