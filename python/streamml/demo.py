"""The main job on embedded defaults: the whole monitoring loop in one process, with a challenger.

1. Generate a fraud-like training set, train a scikit-learn gradient-boosting classifier,
   and compile it with ``streamml compile`` (``--reference``: the training data's
   distribution is frozen into the binary as the drift reference): version ``1``, the
   **champion**. Train a second one on a labelled sample of drifted transactions (as a team
   retrains after it sees drift) and compile it: version ``2``, the **challenger**. Both go
   into a model directory (``fraud/1.so``, ``fraud/2.so`` and the alias files ``champion``
   and ``challenger``; ``docs/lifecycle.md``).
2. Generate an event stream (one card transaction every 20 ms of event time) with drift
   injected halfway: amounts and distances grow, merchants get riskier, and the fraud
   pattern itself changes (foreign transactions stop being a strong signal). Labels
   (fraud or not) arrive after a random delay (exponential, mean 40 s); 10% never arrive,
   and a few labels belong to no prediction.
3. Run a Bytewax dataflow in process: score each batch with the champion and the challenger
   in shadow (:func:`streamml.bytewax.predict` with ``challengers``: only the champion's
   outputs are published, every version's predictions are stored), count drift of the
   champion per 1-minute window (:class:`streamml.drift.DriftMonitor`), join the labels onto
   every version's predictions (:func:`streamml.bytewax.feedback_join` with
   ``version_field``, TTL 2 min), and write predictions, labels, feedback, drift and quality
   per version into the SQLite store.
4. Print each version's quality before and after the drift point (from the store's
   ``quality`` rows: after the drift the challenger beats the champion), write the report
   (``streamml report``: the versions side by side) and print where it is.

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
CHAMPION, CHALLENGER = "1", "2"  # the versions in the demo's model directory
CHALLENGER_ROWS = 10_000  # the labelled sample of drifted transactions the challenger is trained on


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


def train_and_compile(
    out_dir: Path,
    *,
    seed: int = 1,
    rows: int = 30_000,
    version: str = "1",
    drifted: bool = False,
    file: str = "fraud.so",
) -> Path:
    """Train the fraud model and compile it (with the drift reference) into ``out_dir / file``.

    ``drifted``: train on transactions drawn after the drift (a challenger's data) instead of before.
    """
    import pyarrow as pa
    from sklearn.ensemble import HistGradientBoostingClassifier

    from streamml.compile import compile as compile_model

    x, y = transactions(rows, seed, drift_from=0 if drifted else None)
    matrix = np.column_stack([x[f] for f in FEATURES])
    clf = HistGradientBoostingClassifier(max_iter=80, learning_rate=0.1, max_leaf_nodes=31, random_state=0)
    clf.fit(matrix, y.astype(np.int64))
    return compile_model(clf, out_dir / file, name="fraud", version=version, features=FEATURES, reference=pa.table(x))


def model_directory(out_dir: Path) -> Path:
    """Compile the champion and the challenger into the model directory ``out_dir / "fraud"``.

    Version ``1`` (alias ``champion``) is trained on pre-drift transactions, version ``2``
    (alias ``challenger``) on a labelled sample of drifted ones (:data:`CHALLENGER_ROWS`).
    """
    from streamml.lifecycle import path_suffix, set_alias

    models = out_dir / "fraud"
    models.mkdir(parents=True, exist_ok=True)
    train_and_compile(models, version=CHAMPION, file=f"{CHAMPION}{path_suffix()}")
    train_and_compile(
        models, seed=3, rows=CHALLENGER_ROWS, version=CHALLENGER, drifted=True, file=f"{CHALLENGER}{path_suffix()}"
    )
    set_alias(models, "champion", CHAMPION)
    set_alias(models, "challenger", CHALLENGER)
    return models


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


def build_flow(models: Path, items: list[tuple[str, Any]], store_uri: str) -> Any:
    """The Bytewax dataflow: score with champion and challenger, count drift, join labels, write the store."""
    import bytewax.operators as op
    import pyarrow as pa
    from bytewax.dataflow import Dataflow

    from streamml.bytewax import drift_counts, predict
    from streamml.bytewax.feedback import feedback_join
    from streamml.bytewax.store_sink import StoreSink
    from streamml.lifecycle import ModelSlot

    # No reload interval: the demo's aliases do not move while it runs (no reload thread).
    champion, challenger = ModelSlot(models), ModelSlot(f"{models}@challenger")
    name = champion.current.model.info["name"]
    window_ms = int(WINDOW.total_seconds() * 1000)

    def one_batch(item: tuple[str, Any]) -> Any:
        return item[1].combine_chunks().to_batches()[0]

    def unscored(step: str, failure: Any) -> None:
        # Generated events are all well-formed: a failure here is a bug, said out loud.
        print(f"{step}: event not scored: {failure.reason}", file=sys.stderr)

    def predictions(batch: Any) -> Any:
        return pa.table({c: batch[c] for c in ("event_id", "event_time", "probability", "model_version")})

    flow = Dataflow("streamml_demo")
    source = op.input("stream", flow, list_source(items))
    kinds = op.branch("kind", source, lambda it: it[0] == "events")
    events = op.map("events", kinds.trues, one_batch)
    labels = op.map("labels", kinds.falses, lambda it: it[1])
    # One native call per batch of events and version; the outputs come back as added columns.
    # `oks` is what a deployment publishes (the champion's); `shadow` holds every version's.
    scoring = predict("score", events, champion, challengers=[challenger])
    assert scoring.shadow is not None
    op.inspect("unscored", scoring.errs, unscored)
    preds = op.map("predictions", scoring.shadow, predictions)
    drift = drift_counts("drift", scoring.oks, champion.current.model, window=WINDOW)
    fb = feedback_join("feedback", preds, labels, ttl=TTL, window=WINDOW, model=name, version_field="model_version")

    def prediction_rows(p: Any) -> Any:
        starts = pa.compute.multiply(pa.compute.divide(p["event_time"], window_ms), window_ms)
        rows = pa.table(
            {
                "event_id": pa.compute.cast(p["event_id"], pa.string()),
                "model": pa.repeat(pa.scalar(name, pa.string()), p.num_rows),
                "model_version": pa.compute.cast(p["model_version"], pa.string()),
                "event_time": p["event_time"],
                "window_start": starts,
                "score": p["probability"],
                "prediction": pa.compute.cast(pa.compute.greater_equal(p["probability"], 0.5), pa.float64()),
            }
        )
        return ("predictions", rows)

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


def quality_before_after(store: Any, drift_at: int, *, model: str = "fraud") -> dict[tuple[str, str], dict[str, float]]:
    """Each version's quality over the windows wholly before and wholly after ``drift_at``.

    Read from the store's ``quality`` rows (summed over shards and windows; a window the drift
    point falls inside counts in neither half). Keys ``(version, "before" | "after")``; values
    ``predictions``, ``labeled``, ``expired``, ``late_labels``, ``auc`` (from the summed score
    histograms), ``logloss`` and ``accuracy`` (over the labelled pairs with finite score and label).
    """
    from streamml.feedback import auc_from_histograms

    window_ms = int(WINDOW.total_seconds() * 1000)
    rows = store.query(
        "SELECT model_version, window_start, metric, SUM(value) AS v FROM quality WHERE model = '"
        + model.replace("'", "''")
        + "' GROUP BY model_version, window_start, metric"
    ).to_pylist()
    sums: dict[tuple[str, str], dict[str, float]] = {}
    for r in rows:
        w = r["window_start"]
        half = "before" if w + window_ms <= drift_at else "after" if w >= drift_at else None
        if half is not None:
            m = sums.setdefault((str(r["model_version"]), half), {})
            m[r["metric"]] = m.get(r["metric"], 0.0) + r["v"]
    out = {}
    for key, m in sorted(sums.items()):
        finite = m.get("labeled", 0.0) - m.get("non_finite_scores", 0.0) - m.get("non_finite_labels", 0.0)
        size = 1 + max((int(k[9:]) for k in m if k.startswith("hist_")), default=0)
        neg = np.array([m.get(f"hist_neg_{i:03d}", 0.0) for i in range(size)])
        pos = np.array([m.get(f"hist_pos_{i:03d}", 0.0) for i in range(size)])
        out[key] = {
            **{k: m.get(k, 0.0) for k in ("predictions", "labeled", "expired", "late_labels")},
            "auc": auc_from_histograms(neg, pos) if finite else float("nan"),
            "logloss": m.get("logloss_sum", 0.0) / finite if finite else float("nan"),
            "accuracy": (m.get("tp", 0.0) + m.get("tn", 0.0)) / finite if finite else float("nan"),
        }
    return out


def run(events: int = 30_000, out_dir: str | Path | None = None, store_uri: str | None = None) -> int:
    """Run the whole loop, write the report, print a summary and where everything is."""
    from bytewax.run import cli_main

    from streamml.lifecycle import resolve
    from streamml.model import Model
    from streamml.report import write_report
    from streamml.store import Store

    out = (Path(out_dir) if out_dir else OUT_DIR).absolute()
    out.mkdir(parents=True, exist_ok=True)
    uri = store_uri or str(out / "monitoring.db")
    started = time.perf_counter()
    models = model_directory(out)
    champion = Model.load(resolve(models).path)
    print(
        f"models   {models}: champion {CHAMPION} (trained before the drift), challenger {CHALLENGER} "
        f"(trained on {CHALLENGER_ROWS} labelled drifted transactions), compiled in "
        f"{time.perf_counter() - started:.1f} s"
    )
    items, facts = stream_items(events)
    print(
        f"stream   {facts['events']} events (drift from event {events // 2}), {facts['labels']} labels "
        f"({facts['orphans']} for no prediction), delay ~ exp(40 s), ttl {TTL}, window {WINDOW}"
    )
    write_reference(uri, champion)
    started = time.perf_counter()
    cli_main(build_flow(models, items, uri), workers_per_process=1, epoch_interval=timedelta(0))
    seconds = time.perf_counter() - started
    print(f"ran      the Bytewax dataflow (champion and challenger in shadow) in {seconds:.1f} s into {uri}")
    with Store(uri) as store:
        for table in ("predictions", "labels", "feedback", "drift", "quality"):
            n = store.query(f"SELECT count(*) AS n FROM {table}").column("n")[0].as_py()
            print(f"store    {table:<12} {n} rows")
        halves = quality_before_after(store, facts["drift_at"])
    roles = {CHAMPION: "champion", CHALLENGER: "challenger"}
    for half in ("before", "after"):
        for version in (CHAMPION, CHALLENGER):
            q = halves.get((version, half))
            if q is None:
                continue  # a stream too short for a whole window on this side of the drift
            print(
                f"quality  {half + ' drift,':<14}v{version} {roles[version]:<10}: {int(q['labeled'])} labeled of "
                f"{int(q['predictions'])}, expired {int(q['expired'])}, late {int(q['late_labels'])}, "
                f"AUC {q['auc']:.4f}, log-loss {q['logloss']:.4f}, accuracy {q['accuracy']:.4f}"
            )
    report = write_report(uri, out / "report.html")
    print(f"report   {report}")
    print(summary(halves))
    return 0


def summary(halves: dict[tuple[str, str], dict[str, float]]) -> str:
    """One line: whether the challenger beats the champion after the drift, with both versions' figures."""
    champ, chal = halves.get((CHAMPION, "after")), halves.get((CHALLENGER, "after"))
    if champ is None or chal is None:
        return "summary  no whole window after the drift point: run more events to compare the versions"
    beats = chal["auc"] > champ["auc"] and chal["logloss"] < champ["logloss"]
    verdict = "beats" if beats else "does not beat"
    return (
        f"summary  after the drift the challenger (v{CHALLENGER}) {verdict} the champion (v{CHAMPION}): "
        f"AUC {chal['auc']:.4f} vs {champ['auc']:.4f}, log-loss {chal['logloss']:.4f} vs {champ['logloss']:.4f}"
    )
