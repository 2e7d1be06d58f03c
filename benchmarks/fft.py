"""Fast-and-frugal trees: fit time against scikit-learn's DecisionTreeClassifier, and scoring through the binary.

Data: R1's features and labels (``streamml.workloads.r1_data``, 32 float64 cues), 1,000,000 rows.
Fit: ``FastFrugalTreeClassifier(max_levels=5)`` (ifan, and dfan) against
``DecisionTreeClassifier(max_depth=5)`` on the same rows, one thread each (the FFT's fit is
single-threaded; BLAS/OpenMP pools are held to one thread). Scoring: the compiled binary on one
RecordBatch of the rows, through ``streamml.Model.predict`` (one thread), beside the estimator's own
``predict_proba`` and the decision tree's ``predict_proba``. Best of ``--rounds`` runs per case.

Run: ``python benchmarks/fft.py [--rows 1000000] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pyarrow as pa
from sklearn.tree import DecisionTreeClassifier

from harness import base_machine_info, format_table, limit_threads
from streamml import Model
from streamml.compile import compile
from streamml.models import FastFrugalTreeClassifier
from streamml.workloads import FEATURE_NAMES, r1_data


@dataclass
class Row:
    """One line of the table."""

    section: str
    case: str
    value: float
    unit: str
    peer: float | None = None  # the peer's value in the same unit; None for the peer itself
    lower_is_better: bool = True


def best_seconds(fn: Callable[[], Any], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: Sequence[str] | None = None) -> None:
    """Time the fits and the scoring, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    x, y = r1_data(args.rows, 42)
    batch = pa.record_batch([pa.array(x[:, j]) for j in range(x.shape[1])], names=list(FEATURE_NAMES))
    rows: list[Row] = []
    with limit_threads():
        tree = DecisionTreeClassifier(max_depth=5, random_state=0)
        dt_fit = best_seconds(lambda: tree.fit(x, y), max(1, args.rounds - 1))
        rows.append(Row("fit, 1 thread", "scikit-learn DecisionTreeClassifier(max_depth=5)", dt_fit, "s"))
        ffts = {}
        for algorithm in ("ifan", "dfan"):
            fft = FastFrugalTreeClassifier(max_levels=5, algorithm=algorithm)
            seconds = best_seconds(lambda fft=fft: fft.fit(batch, y), args.rounds)
            ffts[algorithm] = fft
            rows.append(Row("fit, 1 thread", f"streamml FFT {algorithm}, max_levels=5", seconds, "s", dt_fit))
        fft = ffts["ifan"]
        path = compile(fft, os.path.join(tempfile.mkdtemp(), "fft.so"))
        model = Model.load(path)
        inputs = batch.select(model.input_schema.names)
        assert np.array_equal(model.predict(inputs).column("label").to_numpy(), fft.predict(batch))
        n = batch.num_rows
        dt_score = n / best_seconds(lambda: tree.predict_proba(x), args.rounds)
        rows.append(
            Row("scoring, 1 thread", "scikit-learn DecisionTree predict_proba (numpy)", dt_score, "rows/s", None, False)
        )
        est = n / best_seconds(lambda: fft.predict_proba(batch), args.rounds)
        rows.append(Row("scoring, 1 thread", "streamml FFT predict_proba (estimator)", est, "rows/s", dt_score, False))
        binary = n / best_seconds(lambda: model.predict(inputs), args.rounds)
        rows.append(
            Row(
                "scoring, 1 thread",
                "streamml FFT binary, Model.predict(RecordBatch)",
                binary,
                "rows/s",
                dt_score,
                False,
            )
        )
    info = base_machine_info()
    print(f"FFT benchmark: {args.rows:,} rows x 32 cues (R1), best of {args.rounds}")
    print(f"machine: {info['cpu']}, {info['nproc']} cores; {info['thread_pools']}")
    print(f"tree: {fft.describe().text}")
    print()

    def ratio(r: Row) -> str:
        if r.peer is None:
            return "peer"
        return f"{(r.peer / r.value if r.lower_is_better else r.value / r.peer):.1f}x"

    print(format_table(rows, ratio))


if __name__ == "__main__":
    main()
