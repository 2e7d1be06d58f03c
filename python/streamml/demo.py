"""The main job on embedded defaults: the whole monitoring loop in one process.

1. Generate a fraud-like training set, train a scikit-learn gradient-boosting classifier,
   and compile it with ``streamml compile`` (``--reference``: the training data's
   distribution is frozen into the binary as the drift reference).
2. Generate an event stream (one card transaction every 20 ms of event time) with drift
   injected halfway: amounts and distances grow, merchants get riskier, and the fraud
   pattern itself changes (foreign transactions stop being a strong signal). Labels
   (fraud or not) arrive after a random delay (exponential, mean 40 s); 10% never arrive,
   and a few labels belong to no prediction.
3. Run a Bytewax dataflow in process: score each batch (:func:`streamml.bytewax.predict`), count drift
   per 1-minute window (:class:`streamml.drift.DriftMonitor`), join the labels onto the
   predictions (:func:`streamml.bytewax.feedback_join`, TTL 2 min), and write
   predictions, labels, feedback, drift and quality into the SQLite store.
4. Write the report (``streamml report``) and print where it is.

Everything goes under ``./streamml-demo/`` of the current directory (``--out DIR`` to choose).
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

#: Where the demo writes (its model, store and report) unless told: under the current directory.
OUT_DIR = Path("streamml-demo")
FEATURES = [
    "amount",
    "hour",
    "merchant_risk",
    "distance_km",
    "tx_last_hour",
    "account_age_days",
    "card_present",
    "foreign",
]
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z in ms
STEP_MS = 20
BATCH = 250  # events per batch: 5 s of event time
WINDOW = timedelta(minutes=1)
TTL = timedelta(minutes=2)


def transactions(n: int, seed: int, drift_from: int | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``n`` synthetic card transactions and their fraud labels; rows from ``drift_from`` on drift."""
    rng = np.random.default_rng(seed)
    drifted = np.zeros(n, dtype=bool) if drift_from is None else np.arange(n) >= drift_from
    x = {
        "amount": rng.lognormal(3.5, 1.0, n) * np.where(drifted, 2.2, 1.0),
        "hour": rng.integers(0, 24, n).astype(np.float64),
        "merchant_risk": np.where(drifted, rng.beta(4, 6, n), rng.beta(2, 8, n)),
        "distance_km": rng.exponential(10.0, n) * np.where(drifted, 3.0, 1.0),
        "tx_last_hour": rng.poisson(1.0, n).astype(np.float64),
        "account_age_days": rng.exponential(700.0, n),
        "card_present": (rng.random(n) < 0.6).astype(np.float64),
        "foreign": (rng.random(n) < 0.08).astype(np.float64),
    }
    logit = (
        -5.0
        + 0.9 * np.log(x["amount"] / 30.0)
        + 4.0 * x["merchant_risk"]
        + 0.04 * np.minimum(x["distance_km"], 60.0)
        + 0.5 * x["tx_last_hour"]
        - 0.001 * x["account_age_days"]
        - 1.0 * x["card_present"]
        + np.where(drifted, -1.0, 2.0) * x["foreign"]
        + 0.8 * (x["hour"] < 6)
        + np.where(drifted, 1.5 * (x["tx_last_hour"] == 0), 0.0)
    )
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float64)
    return x, y


def train_and_compile(out_dir: Path, *, seed: int = 1, rows: int = 30_000) -> Path:
    """Train the fraud model and compile it (with the drift reference) into ``out_dir``."""
    import pyarrow as pa
    from sklearn.ensemble import HistGradientBoostingClassifier

    from streamml.compile import compile as compile_model

    x, y = transactions(rows, seed)
    matrix = np.column_stack([x[f] for f in FEATURES])
    clf = HistGradientBoostingClassifier(max_iter=80, learning_rate=0.1, max_leaf_nodes=31, random_state=0)
    clf.fit(matrix, y.astype(np.int64))
    return compile_model(clf, out_dir / "fraud.so", name="fraud", version="1", features=FEATURES, reference=pa.table(x))


def stream_items(n: int, *, seed: int = 2) -> tuple[list[tuple[str, Any]], dict[str, int]]:
    """The event stream: ``("events" | "labels", pyarrow.Table)`` items in event-time order."""
    import pyarrow as pa

    rng = np.random.default_rng(seed + 100)
    x, y = transactions(n, seed, drift_from=n // 2)
    ids = np.arange(n, dtype=np.int64)
    t = T0 + ids * STEP_MS
    labelled = rng.random(n) >= 0.10
    label_t = t + rng.exponential(40_000.0, n).astype(np.int64)
    orphans = max(1, n // 200)
    lab_ids = np.concatenate([ids[labelled], 10**9 + np.arange(orphans)])
    lab_t = np.concatenate([label_t[labelled], T0 + rng.integers(0, n * STEP_MS, orphans)])
    lab_y = np.concatenate([y[labelled], np.zeros(orphans)])
    order = np.argsort(lab_t, kind="stable")
    lab_ids, lab_t, lab_y = lab_ids[order], lab_t[order], lab_y[order]

    items: list[tuple[int, int, str, Any]] = []
    for i in range(0, n, BATCH):
        cols = {"event_id": ids[i : i + BATCH], "event_time": t[i : i + BATCH]}
        cols.update({f: x[f][i : i + BATCH] for f in FEATURES})
        items.append((int(t[i]), 0, "events", pa.table(cols)))
    # Labels are delivered in 5 s chunks of arrival time, after the events of that time.
    chunk = (lab_t - T0) // (BATCH * STEP_MS)
    for c in np.unique(chunk).tolist():
        m = chunk == c
        table = pa.table({"event_id": lab_ids[m], "label_time": lab_t[m], "label": lab_y[m]})
        items.append((int(lab_t[m].max()), 1, "labels", table))
    items.sort(key=lambda it: (it[0], it[1]))
    facts = {"events": n, "labels": int(lab_ids.size), "orphans": orphans, "drift_at": int(t[n // 2])}
    return [(kind, table) for _, _, kind, table in items], facts


def list_source(items: list[Any]) -> Any:
    """A Bytewax source of ``items`` in order, one per batch, all read by worker 0."""
    from bytewax.inputs import DynamicSource, StatelessSourcePartition

    class _Partition(StatelessSourcePartition[Any]):
        def __init__(self, mine: list[Any]) -> None:
            self._items = iter(mine)

        def next_batch(self) -> list[Any]:
            return [next(self._items)]  # StopIteration at the end: the input is done

    class _Source(DynamicSource[Any]):
        def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
            return _Partition(items if worker_index == 0 else [])

    return _Source()


def build_flow(model: Any, items: list[tuple[str, Any]], store_uri: str) -> Any:
    """The Bytewax dataflow: score, count drift, join labels, write the store."""
    import bytewax.operators as op
    import pyarrow as pa
    from bytewax.dataflow import Dataflow

    from streamml.bytewax import drift_counts, predict
    from streamml.bytewax.feedback import feedback_join
    from streamml.bytewax.store_sink import StoreSink

    name, version = model.info["name"], model.info["version"]
    window_ms = int(WINDOW.total_seconds() * 1000)

    def tag(rows: Any, **extra: Any) -> Any:
        n = rows.num_rows
        for k, v in extra.items():
            rows = rows.append_column(k, pa.array([v] * n, pa.string()))
        return rows

    outputs = model.output_schema.names

    def one_batch(item: tuple[str, Any]) -> Any:
        return item[1].combine_chunks().to_batches()[0]

    def unscored(step: str, failure: Any) -> None:
        # Generated events are all well-formed: a failure here is a bug, said out loud.
        print(f"{step}: event not scored: {failure.reason}", file=sys.stderr)

    def predictions(pair: tuple[Any, Any]) -> Any:
        events, out = pair
        return pa.table(
            {"event_id": events["event_id"], "event_time": events["event_time"], "probability": out["probability"]}
        )

    flow = Dataflow("streamml_demo")
    source = op.input("stream", flow, list_source(items))
    kinds = op.branch("kind", source, lambda it: it[0] == "events")
    events = op.map("events", kinds.trues, one_batch)
    labels = op.map("labels", kinds.falses, lambda it: it[1])
    # One native call per batch of events; the outputs come back as added columns.
    scoring = predict("score", events, model)
    op.inspect("unscored", scoring.errs, unscored)
    scored = op.map("split", scoring.oks, lambda batch: (batch, batch.select(outputs)))
    preds = op.map("predictions", scored, predictions)
    drift = drift_counts("drift", scoring.oks, model, window=WINDOW)
    fb = feedback_join("feedback", preds, labels, ttl=TTL, window=WINDOW, model=name, model_version=version)

    def prediction_rows(p: Any) -> Any:
        starts = pa.compute.multiply(pa.compute.divide(p["event_time"], window_ms), window_ms)
        rows = pa.table(
            {
                "event_id": pa.compute.cast(p["event_id"], pa.string()),
                "event_time": p["event_time"],
                "window_start": starts,
                "score": p["probability"],
                "prediction": pa.compute.cast(pa.compute.greater_equal(p["probability"], 0.5), pa.float64()),
            }
        )
        return ("predictions", tag(rows, model=name, model_version=version))

    def label_rows(lab: Any) -> Any:
        return ("labels", lab.set_column(0, "event_id", pa.compute.cast(lab["event_id"], pa.string())))

    to_store = op.merge(
        "to_store",
        op.map("prediction_rows", preds, prediction_rows),
        op.map("label_rows", labels, label_rows),
        op.map("feedback_rows", fb.feedback, lambda t: ("feedback", t)),
        op.map("quality_rows", fb.quality, lambda t: ("quality", t)),
        op.map("drift_table", drift, lambda t: ("drift", t)),
    )
    op.output("store", to_store, StoreSink(store_uri))
    return flow


def write_reference(store_uri: str, model: Any) -> None:
    """The model's drift reference into ``drift_reference`` (the report's baseline)."""
    from streamml.store import Store, drift_reference_table

    with Store(store_uri) as store:
        store.write("drift_reference", drift_reference_table(model.info))


def run(events: int = 30_000, out_dir: str | Path | None = None, store_uri: str | None = None) -> int:
    """Run the whole loop, write the report, print a summary and where everything is."""
    from bytewax.run import cli_main

    from streamml.model import Model
    from streamml.report import write_report
    from streamml.store import Store

    out = (Path(out_dir) if out_dir else OUT_DIR).absolute()
    out.mkdir(parents=True, exist_ok=True)
    uri = store_uri or str(out / "monitoring.db")
    started = time.perf_counter()
    model = Model.load(train_and_compile(out))
    print(
        f"model    {model.info['name']} {model.info['version']} compiled to {model.path} "
        f"({time.perf_counter() - started:.1f} s)"
    )
    items, facts = stream_items(events)
    print(
        f"stream   {facts['events']} events (drift from event {events // 2}), {facts['labels']} labels "
        f"({facts['orphans']} for no prediction), delay ~ exp(40 s), ttl {TTL}, window {WINDOW}"
    )
    write_reference(uri, model)
    started = time.perf_counter()
    cli_main(build_flow(model, items, uri), workers_per_process=1, epoch_interval=timedelta(0))
    print(f"ran      the Bytewax dataflow in {time.perf_counter() - started:.1f} s into {uri}")
    with Store(uri) as store:
        for table in ("predictions", "labels", "feedback", "drift", "quality"):
            n = store.query(f"SELECT count(*) AS n FROM {table}").column("n")[0].as_py()
            print(f"store    {table:<12} {n} rows")
        sums = store.query(
            "SELECT window_start >= " + str(facts["drift_at"]) + " AS after, metric, SUM(value) AS v FROM quality "
            "WHERE metric IN ('predictions', 'labeled', 'expired', 'late_labels', 'orphan_labels', 'tp', 'tn') "
            "GROUP BY 1, 2"
        ).to_pylist()
    totals: dict[tuple[int, str], float] = {(int(r["after"]), r["metric"]): r["v"] for r in sums}
    for half, title in ((0, "before drift"), (1, "after drift")):
        labeled = totals.get((half, "labeled"), 0.0)
        acc = (totals.get((half, "tp"), 0.0) + totals.get((half, "tn"), 0.0)) / labeled if labeled else float("nan")
        print(
            f"quality  {title}: {int(labeled)} labeled of {int(totals.get((half, 'predictions'), 0))}, "
            f"expired {int(totals.get((half, 'expired'), 0))}, late {int(totals.get((half, 'late_labels'), 0))}, "
            f"accuracy {acc:.4f}"
        )
    report = write_report(uri, out / "report.html")
    print(f"report   {report}")
    return 0
