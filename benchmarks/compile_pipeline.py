"""A scikit-learn preprocessing pipeline compiled by streamml against scikit-learn and ONNX Runtime, one thread.

The pipeline: ``ColumnTransformer(OneHotEncoder on 4 string columns, SimpleImputer + StandardScaler
on 8 numeric columns) -> HistGradientBoostingClassifier`` (100 iterations, 31 leaves), fitted on
50,000 rows of a synthetic mixed frame (numeric columns with 5 % NaN, string columns of 5 to 40
categories) and scored on another 100,000 rows that also hold categories never seen at fit.

Cases, each given its input in its own native form built before the clock starts, measured best
of N runs, interleaved run by run:

- **streamml**: the binary compiled from the pipeline (``Model.predict`` on a ``pyarrow.Table``
  with float64 and utf8 columns);
- **scikit-learn**: ``pipeline.predict_proba`` on the pandas DataFrame;
- **ONNX Runtime**: the skl2onnx export of the same pipeline (one input per column: float32
  numbers, strings; one intra- and inter-op thread), asking for the probabilities only.

Correctness first, on all scoring rows: streamml against scikit-learn (largest relative
difference below 1e-6) or the run stops; ONNX Runtime's difference (float32) is reported.
Targets: streamml at least 10x scikit-learn and 3x ONNX Runtime.

Run: ``.venv/bin/python benchmarks/compile_pipeline.py [--rows N] [--repeat N]``.
"""

from __future__ import annotations

# ruff: noqa: E402  (the thread limits below must be set before numpy is imported)
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from harness import base_machine_info, format_table, limit_threads

N_NUM = 8
STRINGS = {"s0": 5, "s1": 12, "s2": 25, "s3": 40}


def frame(rows: int, seed: int, *, unseen: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {}
    for j in range(N_NUM):
        x = rng.normal(j, 1 + j, rows)
        x[rng.random(rows) < 0.05] = np.nan
        data[f"x{j}"] = x
    for name, k in STRINGS.items():
        cats = np.array([f"{name}_{i}" for i in range(k + (3 if unseen else 0))], dtype=object)
        data[name] = cats[np.minimum(rng.geometric(1.5 / k, rows) - 1, len(cats) - 1)]
    return pd.DataFrame(data)


def target(df: pd.DataFrame) -> np.ndarray:
    z = np.nan_to_num(df["x0"].to_numpy()) - 0.3 * np.nan_to_num(df["x3"].to_numpy()) / 4
    z = z + (df["s0"] == "s0_1") * 1.2 - (df["s2"].str.len() > 5) * 0.5
    return (z + np.random.default_rng(9).normal(0, 0.8, len(df)) > 0.2).astype(int)


def pipeline() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    ct = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), list(STRINGS)),
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), [f"x{j}" for j in range(N_NUM)]),
        ],
        sparse_threshold=0,
    )
    model = HistGradientBoostingClassifier(max_iter=100, max_leaf_nodes=31, early_stopping=False, random_state=0)
    return Pipeline([("prep", ct), ("model", model)])


def onnx_session(pipe: Any, df: pd.DataFrame) -> tuple[Any, dict[str, np.ndarray]]:
    import onnxruntime as ort
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    types = [(c, StringTensorType([None, 1]) if c in STRINGS else FloatTensorType([None, 1])) for c in df.columns]
    onx = to_onnx(pipe, initial_types=types, options={"zipmap": False}, target_opset={"": 17, "ai.onnx.ml": 3})
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(onx.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feeds = {
        c: (df[c].to_numpy(dtype=object) if c in STRINGS else df[c].to_numpy(dtype=np.float32)).reshape(-1, 1)
        for c in df.columns
    }
    return session, feeds


@dataclass
class Row:
    """One line of the table."""

    section: str
    case: str
    value: float
    unit: str
    ratio: float | None = None


def seconds(fn: Any, args: tuple) -> float:
    """The wall time of one call."""
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--train-rows", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from streamml import Model
    from streamml.compile import compile as compile_model

    with limit_threads():
        train = frame(args.train_rows, 1)
        t0 = time.perf_counter()
        pipe = pipeline().fit(train, target(train))
        fit_s = time.perf_counter() - t0
        score = frame(args.rows, 2, unseen=True)
        with tempfile.TemporaryDirectory() as tmp:
            model = Model.load(compile_model(pipe, Path(tmp) / "pipeline.so"))
        table = pa.Table.from_pandas(score, preserve_index=False)
        session, feeds = onnx_session(pipe, score)

        want = pipe.predict_proba(score)[:, 1]
        got = model.predict(table).column("probability").to_numpy()
        rel = float(np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-300)))
        if rel > 1e-6:
            msg = f"streamml differs from scikit-learn by {rel:.3g} (relative); not benchmarking wrong answers"
            raise SystemExit(msg)
        onnx_diff = float(np.max(np.abs(session.run(["probabilities"], feeds)[0][:, 1] - want)))

        cases = {
            "streamml Model.predict (pyarrow Table)": (model.predict, (table,)),
            "scikit-learn predict_proba (DataFrame)": (pipe.predict_proba, (score,)),
            "ONNX Runtime (skl2onnx export)": (session.run, (["probabilities"], feeds)),
        }
        times = {name: float("inf") for name in cases}
        for _ in range(args.repeat):
            for name, (fn, fn_args) in cases.items():
                times[name] = min(times[name], seconds(fn, fn_args))

    ours = times["streamml Model.predict (pyarrow Table)"]
    rows = [Row("throughput, one thread", name, args.rows / t / 1e3, "k rows/s", t / ours) for name, t in times.items()]
    info = base_machine_info()
    import onnxruntime
    import skl2onnx
    import sklearn

    print(f"# {__doc__.splitlines()[0]}")
    print(
        f"# {info['cpu']} ({info['nproc']} cores), Python {info['python']}, numpy {info['numpy']}, "
        f"pyarrow {info['pyarrow']}, scikit-learn {sklearn.__version__}, onnxruntime {onnxruntime.__version__}, "
        f"skl2onnx {skl2onnx.__version__}, streamml {info['streamml']}"
    )
    print(
        f"# fit on {args.train_rows:,} rows in {fit_s:.1f} s; scored {args.rows:,} rows, best of {args.repeat}; "
        f"features after preprocessing: {model.info['metadata'].get('preprocess', [])[-1]}"
    )
    print(
        f"# streamml vs scikit-learn: max relative difference {rel:.2g}; "
        f"ONNX Runtime (float32): max abs {onnx_diff:.2g}"
    )
    print(format_table(rows, lambda r: "" if r.ratio is None or r.ratio == 1.0 else f"{r.ratio:.1f}x"))
    sk = times["scikit-learn predict_proba (DataFrame)"] / ours
    ox = times["ONNX Runtime (skl2onnx export)"] / ours
    print(
        f"targets: >= 10x scikit-learn: {sk:.1f}x {'met' if sk >= 10 else 'NOT met'}; "
        f">= 3x ONNX Runtime: {ox:.1f}x {'met' if ox >= 3 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
