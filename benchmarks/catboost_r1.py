"""CatBoost (and IsolationForest) compiled by streamml against the frameworks' own predict, one thread.

The CatBoost model: ``CatBoostClassifier(iterations=500, depth=6, learning_rate=0.05)``, binary
(Logloss), trained on R1's features and labels (``r1_data(20_000, seed=42)``: 32 float64
features ``x0..x31``; fewer rows than R1's 100,000 to keep training short) and scored on the
100,000 rows of ``r1_data(100_000, seed=43)``. It is cached under ``build/bench/`` (keyed by the
parameters and CatBoost's version); ``--retrain`` trains again.

What is measured (rows/s, best of ``--rounds`` runs, the cases interleaved run by run; every run
and the ratio of the medians are printed too):

- CatBoost's ``predict_proba`` and ``predict(prediction_type="RawFormulaVal")`` with
  ``thread_count=1`` on the float64 C-ordered array;
- the streamml binary of the same model, oblivious trees walked branch-free (the default), by
  ``Model.predict`` on a ``pyarrow.RecordBatch``;
- the streamml binary with the oblivious trees expanded into ordinary IR trees
  (``from_catboost.to_ir(model, oblivious=False)``), the same way;
- an ``IsolationForest(n_estimators=100)`` fitted on the same 20,000 rows: scikit-learn's
  ``score_samples`` (one thread) against its streamml binary.

Before any timing, the binaries' probabilities are checked against CatBoost's (largest relative
difference below 1e-9) and the IsolationForest's scores against scikit-learn's, or the run stops.
The last column says how many times faster the streamml binary (oblivious walk) is than the case
on that row (the IsolationForest binary for its peer). Target: at least 2x CatBoost's ``predict``.

Usage::

    python benchmarks/catboost_r1.py [--rounds 5] [--retrain]
"""

# ruff: noqa: E402  (the thread limits below must be set before numpy is imported)

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from harness import base_machine_info, format_table, limit_threads
from streamml import Model
from streamml.compile import compile, from_catboost, write_binary
from streamml_dev.workloads import FEATURE_NAMES, SCORE_SEED, TRAIN_SEED, r1_data

TREES, DEPTH, LEARNING_RATE = 500, 6, 0.05
TRAIN_ROWS, SCORE_ROWS = 20_000, 100_000
TARGET = 2.0
BENCH_DIR = Path(__file__).resolve().parent.parent / "build" / "bench"

SML = "streamml predict(RecordBatch), oblivious walk"
SML_EXPANDED = "streamml predict(RecordBatch), expanded into ordinary trees"
CB_PROBA = "CatBoost predict_proba(thread_count=1)"
CB_RAW = "CatBoost predict(RawFormulaVal, thread_count=1)"
IF_SML = "streamml predict(RecordBatch), IsolationForest"
IF_SK = "scikit-learn IsolationForest.score_samples"


@dataclass
class Row:
    """One line of the table."""

    section: str
    case: str
    value: float
    unit: str
    ours: float | None = None  # streamml's value in the same unit, for the ratio


def train(retrain: bool) -> Any:
    import catboost

    path = BENCH_DIR / f"catboost_r1_{TREES}x{DEPTH}_{TRAIN_ROWS}_{catboost.__version__}.cbm"
    model = catboost.CatBoostClassifier()
    if path.is_file() and not retrain:
        return model.load_model(str(path)), 0.0
    x, y = r1_data(TRAIN_ROWS, TRAIN_SEED)
    model = catboost.CatBoostClassifier(
        iterations=TREES,
        depth=DEPTH,
        learning_rate=LEARNING_RATE,
        thread_count=1,
        verbose=0,
        random_seed=0,
        allow_writing_files=False,
    )
    started = time.perf_counter()
    model.fit(x, y)
    took = time.perf_counter() - started
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    model.save_model(str(path))
    return model, took


def timed_rates(cases: dict[str, Callable[[], Any]], rows: int, rounds: int) -> dict[str, list[float]]:
    """Rows/s of each case in each of ``rounds`` runs, the cases interleaved run by run."""
    rates: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            rates[name].append(rows / (time.perf_counter() - t0))
    return rates


def main(argv: Sequence[str] | None = None) -> None:
    """Train (or load), check, time, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--retrain", action="store_true")
    args = parser.parse_args(argv)
    from sklearn.ensemble import IsolationForest

    model, took = train(args.retrain)
    x = r1_data(SCORE_ROWS, SCORE_SEED)[0]
    batch = pa.record_batch([pa.array(x[:, j]) for j in range(x.shape[1])], names=list(FEATURE_NAMES))
    features = list(FEATURE_NAMES)
    with tempfile.TemporaryDirectory(prefix="streamml-bench-") as scratch, limit_threads():
        oblivious = Model.load(compile(model, Path(scratch) / "cb.so", features=features))
        expanded_ir = from_catboost.to_ir(model, features=features, oblivious=False)
        expanded = Model.load(write_binary(expanded_ir, Path(scratch) / "cb_expanded.so"))
        forest = IsolationForest(n_estimators=100, random_state=0).fit(r1_data(TRAIN_ROWS, TRAIN_SEED)[0])
        iforest = Model.load(compile(forest, Path(scratch) / "if.so", features=features))

        want = model.predict_proba(x, thread_count=1)[:, 1]
        for name, binary in ((SML, oblivious), (SML_EXPANDED, expanded)):
            got = binary.predict(batch).column("probability").to_numpy()
            worst = float(np.max(np.abs(got - want) / np.abs(want)))
            if worst > 1e-9:
                raise SystemExit(f"{name}: relative difference {worst:.3g} from CatBoost; not timing wrong answers")
        if_got = iforest.predict(batch).column("score_samples").to_numpy()
        if_worst = float(np.max(np.abs(if_got - forest.score_samples(x)) / np.abs(forest.score_samples(x))))
        if if_worst > 1e-9:
            raise SystemExit(f"IsolationForest: relative difference {if_worst:.3g}; not timing wrong answers")

        runs = timed_rates(
            {
                SML: lambda: oblivious.predict(batch),
                SML_EXPANDED: lambda: expanded.predict(batch),
                CB_PROBA: lambda: model.predict_proba(x, thread_count=1),
                CB_RAW: lambda: model.predict(x, prediction_type="RawFormulaVal", thread_count=1),
                IF_SML: lambda: iforest.predict(batch),
                IF_SK: lambda: forest.score_samples(x),
            },
            SCORE_ROWS,
            args.rounds,
        )
    rates = {name: max(r) for name, r in runs.items()}
    import catboost
    import sklearn

    info = {
        **base_machine_info(),
        "catboost": catboost.__version__,
        "scikit-learn": sklearn.__version__,
        "model": f"CatBoostClassifier {TREES} trees, depth {DEPTH}, trained on {TRAIN_ROWS:,} R1 rows"
        + (f" in {took:.0f} s" if took else " (cached)"),
        "scored": f"{SCORE_ROWS:,} R1 rows, best of {args.rounds}",
        "IsolationForest": "100 trees, max_samples=256, same training rows",
    }
    for k, v in info.items():
        print(f"{k:<16} {v}")
    table = "throughput, 1 thread, thousand rows/s"
    rows = [
        Row(table, SML, rates[SML] / 1e3, "k rows/s", rates[SML] / 1e3),
        Row(table, SML_EXPANDED, rates[SML_EXPANDED] / 1e3, "k rows/s", rates[SML] / 1e3),
        Row(table, CB_PROBA, rates[CB_PROBA] / 1e3, "k rows/s", rates[SML] / 1e3),
        Row(table, CB_RAW, rates[CB_RAW] / 1e3, "k rows/s", rates[SML] / 1e3),
        Row(table, IF_SML, rates[IF_SML] / 1e3, "k rows/s", rates[IF_SML] / 1e3),
        Row(table, IF_SK, rates[IF_SK] / 1e3, "k rows/s", rates[IF_SML] / 1e3),
    ]
    print()
    print(format_table(rows, lambda r: f"{r.ours / r.value:.2f}" if r.ours else ""))
    print("\nall runs, k rows/s (run by run, the cases interleaved):")
    for name in (SML, CB_PROBA, CB_RAW):
        print(f"  {name}: {', '.join(f'{r / 1e3:,.0f}' for r in runs[name])}")
    median = {name: statistics.median(r) for name, r in runs.items()}
    print(f"median ratio streamml / CatBoost predict_proba: {median[SML] / median[CB_PROBA]:.2f}x")
    ratio = rates[SML] / rates[CB_PROBA]
    verdict = "met" if ratio >= TARGET else "NOT met"
    print(f"\ntarget: streamml >= {TARGET:.0f}x CatBoost predict_proba (best runs): {ratio:.2f}x, {verdict}")


if __name__ == "__main__":
    main()
