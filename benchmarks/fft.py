"""Fast-and-frugal trees: fit time against scikit-learn's DecisionTreeClassifier, and scoring through the binary.

Data: R1's features and labels (``streamml_dev.workloads.r1_data``, 32 float64 cues), 1,000,000 rows.
Fit: ``FastFrugalTreeClassifier(max_levels=5)`` (ifan, and dfan) against
``DecisionTreeClassifier(max_depth=5)`` on the same rows, one thread each (the FFT's fit is
single-threaded; BLAS/OpenMP pools are held to one thread), by wall time and by the process's
CPU time (on a shared machine the CPU time is the steadier measure of single-threaded work).
Scoring: the compiled binary on one RecordBatch of the rows, through ``streamml.Model.predict``
(one thread), beside the estimator's own ``predict_proba`` and the decision tree's
``predict_proba``. Best of ``--rounds`` runs per case.

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
from streamml_dev.workloads import FEATURE_NAMES, r1_data


@dataclass
class Row:
    """One line of the table."""

    section: str
    case: str
    value: float
    unit: str
    peer: float | None = None  # the peer's value in the same unit; None for the peer itself
    lower_is_better: bool = True


def best_wall_and_cpu(fn: Callable[[], Any], rounds: int) -> tuple[float, float]:
    """(best wall seconds, best CPU seconds of this process) over ``rounds`` calls."""
    wall, cpu = float("inf"), float("inf")
    for _ in range(rounds):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - w0), min(cpu, time.process_time() - c0)
    return wall, cpu


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
        dt_wall, dt_cpu = best_wall_and_cpu(lambda: tree.fit(x, y), max(1, args.rounds - 1))
        peer = "scikit-learn DecisionTreeClassifier(max_depth=5)"
        rows.append(Row("fit, 1 thread, CPU seconds", peer, dt_cpu, "s"))
        rows.append(Row("fit, 1 thread, wall seconds", peer, dt_wall, "s"))
        ffts = {}
        for algorithm in ("ifan", "dfan"):
            fft = FastFrugalTreeClassifier(max_levels=5, algorithm=algorithm)
            wall, cpu = best_wall_and_cpu(lambda fft=fft: fft.fit(batch, y), args.rounds)
            ffts[algorithm] = fft
            case = f"streamml FFT {algorithm}, max_levels=5"
            rows.append(Row("fit, 1 thread, CPU seconds", case, cpu, "s", dt_cpu))
            rows.append(Row("fit, 1 thread, wall seconds", case, wall, "s", dt_wall))
        fft = ffts["ifan"]
        path = compile(fft, os.path.join(tempfile.mkdtemp(), "fft.so"))
        model = Model.load(path)
        inputs = batch.select(model.input_schema.names)
        assert np.array_equal(model.predict(inputs).column("label").to_numpy(), fft.predict(batch))
        for n in (100_000, batch.num_rows):
            part, xs, est_part = inputs.slice(0, n), x[:n], batch.slice(0, n)
            reps = max(args.rounds, 10 * 100_000 // n)
            cases = [
                ("scikit-learn DecisionTree predict_proba (numpy)", lambda xs=xs: tree.predict_proba(xs)),
                ("streamml FFT predict_proba (estimator)", lambda b=est_part: fft.predict_proba(b)),
                ("streamml FFT binary, Model.predict(RecordBatch)", lambda b=part: model.predict(b)),
            ]
            peer_rate: dict[str, float] = {}
            for label, fn in cases:
                wall, cpu = best_wall_and_cpu(fn, reps)
                for clock, seconds in (("CPU", cpu), ("wall", wall)):
                    section = f"scoring {n:,} rows a batch, 1 thread, rows/s by {clock} time"
                    rate = n / seconds
                    rows.append(Row(section, label, rate, "rows/s", peer_rate.get(clock), False))
                    peer_rate.setdefault(clock, rate)
    info = base_machine_info()
    print(f"FFT benchmark: {args.rows:,} rows x 32 cues (R1), best of {args.rounds}")
    print(f"machine: {info['cpu']}, {info['nproc']} cores; {info['thread_pools']}")
    print(f"tree: {fft.describe().text}")
    print()

    def ratio(r: Row) -> str:
        if r.peer is None:
            return "peer"
        return f"{(r.peer / r.value if r.lower_is_better else r.value / r.peer):.1f}x"

    order = list(dict.fromkeys(r.section for r in rows))
    rows.sort(key=lambda r: (not r.section.startswith("fit"), order.index(r.section)))
    print(format_table(rows, ratio))


if __name__ == "__main__":
    main()
