"""Per-call overhead and throughput of streamml on S1, against peers measured in the same run.

S1 is the design's logistic regression over the 32 float64 R1 features
(``x0..x31``), compiled into ``build/models/s1_logistic.so``; the peers use the
very same coefficients (scikit-learn's ``LogisticRegression`` from
``streamml_dev.workloads.train_s1()``). Everything runs on one thread.

What is measured:

1. **Latency of scoring one row**, per call, in µs: ``Model.predict`` on a
   1-row ``pyarrow.RecordBatch``, on a 1-row ``StructArray`` and on a list of
   one dict; numpy ``1/(1+exp(-(x @ w + b)))`` and scikit-learn
   ``predict_proba`` on a ``(1, 32)`` array. Each call is timed on its own with
   ``time.perf_counter_ns`` after a warm-up (the timer's own cost is
   subtracted); the cases are interleaved in rounds, so a noisy neighbour
   hurts them all alike, and the garbage collector is off while timing. The
   table gives the median and the p99.
2. **Where streamml's time goes** (medians): pyarrow's
   ``batch.__arrow_c_array__()`` export of the 1-row batch (the producer's
   share, paid by any consumer of the C Data Interface), the S1 binary's own
   compute for one row (estimated as the per-row time of the 1M-row batch),
   and what is left of ``predict(RecordBatch)``: streamml's own overhead,
   compared with the target of at most 5 µs beyond the model's compute. That
   overhead includes handing the result to pyarrow; the table shows pyarrow's
   share of it (an export + import round trip of the result minus its export).
3. **Throughput on 1,000,000 rows**, best of N runs, in millions of rows/s:
   ``Model.predict(RecordBatch)``; numpy ``X @ w`` and the sigmoid with ``X``
   C-ordered and Fortran-ordered; scikit-learn ``predict_proba``. Target for
   streamml: at least 20M rows/s.

Before any timing, streamml, numpy and scikit-learn must agree on 10,000 rows
(largest absolute difference of the probability below 1e-9, same labels);
otherwise the script stops, since a benchmark of wrong answers is worthless.

How to read it: absolute timings move with the machine and its neighbours,
the ratios between cases measured side by side in one run much less. The
last column, streamml "times faster", says how many times faster streamml's
``predict(RecordBatch)`` is than the case on that row (latency: case time /
streamml time; throughput: streamml rows/s / case rows/s); below 1 means
streamml is slower.

Usage::

    python benchmarks/overhead.py [--quick] [--json PATH]
"""

# ruff: noqa: E402  (the thread limits below must be set before numpy is imported)

import os

# One thread everywhere: streamml scores a batch on the calling thread, so the
# peers' BLAS pools get one thread too. Set before numpy loads its BLAS.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import argparse
import gc
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import sklearn

from harness import base_machine_info, format_table, limit_threads, time_calls, timer_floor_ns
from streamml import Model
from streamml_dev.repo import example_model
from streamml_dev.workloads import FEATURE_NAMES, SCORE_SEED, r1_data, train_s1

CHECK_ROWS = 10_000
CHECK_TOLERANCE = 1e-9
OVERHEAD_TARGET_US = 5.0
THROUGHPUT_TARGET_M = 20.0

RB = "streamml predict(RecordBatch)"
STRUCT = "streamml predict(StructArray)"
DICTS = "streamml predict([dict])"
NUMPY = "numpy 1/(1+exp(-(x @ w + b)))"
NUMPY_C = "numpy X @ w + sigmoid, C order"
NUMPY_F = "numpy X @ w + sigmoid, Fortran order"
SKLEARN = "sklearn predict_proba"
EXPORT = "pyarrow batch.__arrow_c_array__()"
OUT_EXPORT = "pyarrow export of the 1-row result"
OUT_ROUNDTRIP = "pyarrow export + import of the 1-row result"
TIMES = "\N{MULTIPLICATION SIGN}"


@dataclass(frozen=True)
class Settings:
    """How long to measure."""

    rounds: int  # latency: rounds, each timing every case in turn
    calls_per_round: int  # latency: timed calls per case and round
    warmup: int  # latency: untimed calls per case first
    runs: int  # throughput: runs per case, the best one counts
    rows: int = 1_000_000  # throughput: rows per batch


FULL = Settings(rounds=10, calls_per_round=5_000, warmup=2_000, runs=7)
QUICK = Settings(rounds=4, calls_per_round=500, warmup=200, runs=2)


@dataclass(frozen=True)
class S1:
    """S1 three ways: the model binary, scikit-learn and plain coefficients."""

    model: Model
    sklearn: Any  # sklearn.linear_model.LogisticRegression
    w: np.ndarray  # (32,)
    b: float


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    section: str
    case: str
    value: float
    unit: str
    ratio: float | None  # how many times faster streamml predict(RecordBatch) is; None: not a peer


# --- setup -------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {**base_machine_info(), "sklearn": sklearn.__version__}


def load_s1() -> S1:
    """Load the S1 binary and train its scikit-learn twin."""
    model = Model.load(example_model("s1_logistic"))
    lr = train_s1()
    return S1(model=model, sklearn=lr, w=lr.coef_[0].copy(), b=float(lr.intercept_[0]))


def record_batch(x: np.ndarray) -> pa.RecordBatch:
    """The rows of ``x`` (shape ``(n, 32)``) as a batch with columns ``x0..x31``."""
    return pa.record_batch([pa.array(x[:, i]) for i in range(x.shape[1])], names=list(FEATURE_NAMES))


def numpy_proba(x: np.ndarray, w: np.ndarray, b: float) -> np.ndarray:
    """S1's probability in plain numpy."""
    return 1.0 / (1.0 + np.exp(-(x @ w + b)))


def check_agreement(s1: S1, x: np.ndarray) -> float:
    """Stop the run unless streamml, numpy and scikit-learn give the same answers on ``x``.

    Returns:
        The largest absolute difference of the probability between streamml and scikit-learn.
    """
    out = s1.model.predict(record_batch(x))
    ours = out.column("probability").to_numpy()
    theirs = s1.sklearn.predict_proba(x)[:, 1]
    plain = numpy_proba(x, s1.w, s1.b)
    diff = float(np.max(np.abs(ours - theirs)))
    numpy_diff = float(np.max(np.abs(plain - theirs)))
    labels_differ = int(np.sum(out.column("label").to_numpy() != s1.sklearn.predict(x)))
    if diff >= CHECK_TOLERANCE or numpy_diff >= CHECK_TOLERANCE or labels_differ:
        msg = (
            f"streamml and scikit-learn disagree on S1 over {len(x):,} rows: largest probability "
            f"difference {diff:.3g} (numpy vs scikit-learn {numpy_diff:.3g}; tolerance "
            f"{CHECK_TOLERANCE:g}), {labels_differ} label(s) differ; the model binary was probably "
            "built from other coefficients: run `python benchmarks/s1_coefficients.py` and "
            "`make models`; not timing wrong answers"
        )
        raise SystemExit(msg)
    return diff


# --- latency -----------------------------------------------------------------------------------


def pyarrow_roundtrip(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Export ``batch`` and import it again, the way streamml hands its result to pyarrow."""
    return pa.RecordBatch._import_from_c_capsule(*batch.__arrow_c_array__())


def latency_cases(s1: S1, x1: np.ndarray) -> dict[str, tuple[Callable[..., Any], tuple[Any, ...]]]:
    """The 1-row calls to time: ``name -> (function, arguments)``."""
    batch = record_batch(x1)
    struct = batch.to_struct_array()
    rows = [dict(zip(FEATURE_NAMES, x1[0].tolist(), strict=True))]
    result = s1.model.predict(batch)
    return {
        RB: (s1.model.predict, (batch,)),
        STRUCT: (s1.model.predict, (struct,)),
        DICTS: (s1.model.predict, (rows,)),
        NUMPY: (numpy_proba, (x1, s1.w, s1.b)),
        SKLEARN: (s1.sklearn.predict_proba, (x1,)),
        EXPORT: (batch.__arrow_c_array__, ()),
        OUT_EXPORT: (result.__arrow_c_array__, ()),
        OUT_ROUNDTRIP: (pyarrow_roundtrip, (result,)),
    }


def measure_latency(
    cases: dict[str, tuple[Callable[..., Any], tuple[Any, ...]]], settings: Settings, floor_ns: int
) -> dict[str, np.ndarray]:
    """Per-call times in µs for every case, the cases interleaved round by round."""
    for fn, args in cases.values():
        time_calls(fn, args, settings.warmup)
    samples: dict[str, list[int]] = {name: [] for name in cases}
    gc.collect()
    gc.disable()
    try:
        for _ in range(settings.rounds):
            for name, (fn, args) in cases.items():
                samples[name] += time_calls(fn, args, settings.calls_per_round)
    finally:
        gc.enable()
    return {name: np.maximum(np.array(s) - floor_ns, 0) / 1e3 for name, s in samples.items()}


# --- throughput --------------------------------------------------------------------------------


def best_seconds(fn: Callable[..., Any], args: tuple[Any, ...], runs: int) -> float:
    """The fastest of ``runs`` timed calls of ``fn(*args)`` (after one untimed call), in seconds."""
    fn(*args)
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        fn(*args)
        best = min(best, (time.perf_counter_ns() - t0) / 1e9)
    return best


def measure_throughput(s1: S1, x: np.ndarray, settings: Settings) -> dict[str, float]:
    """Best time in seconds to score all of ``x`` (C-ordered) for each case."""
    batch = record_batch(x)
    x_fortran = np.asfortranarray(x)
    cases = {
        RB: (s1.model.predict, (batch,)),
        NUMPY_C: (numpy_proba, (x, s1.w, s1.b)),
        NUMPY_F: (numpy_proba, (x_fortran, s1.w, s1.b)),
        SKLEARN: (s1.sklearn.predict_proba, (x,)),
    }
    return {name: best_seconds(fn, args, settings.runs) for name, (fn, args) in cases.items()}


# --- report ------------------------------------------------------------------------------------


def latency_rows(stats: dict[str, tuple[float, float]]) -> list[Row]:
    """Median and p99 rows, each peer's ratio being its time over streamml's."""
    rows = []
    for index, label in ((0, "median"), (1, "p99")):
        section = f"latency, 1 row, {label}"
        ref = stats[RB][index]
        for name in (RB, STRUCT, DICTS, NUMPY, SKLEARN):
            value = stats[name][index]
            rows.append(Row(section, name, value, "µs/call", None if name == RB else value / ref))
    return rows


def breakdown_rows(stats: dict[str, tuple[float, float]], compute_us: float) -> list[Row]:
    """``predict(RecordBatch)`` split into the producer's export, the model's compute and the rest."""
    section = "where predict(RecordBatch) goes, medians"
    export_us = stats[EXPORT][0]
    own_us = stats[RB][0] - export_us - compute_us
    import_us = stats[OUT_ROUNDTRIP][0] - stats[OUT_EXPORT][0]
    return [
        Row(section, RB, stats[RB][0], "µs/call", None),
        Row(section, f"- {EXPORT}", export_us, "µs/call", None),
        Row(section, "- S1 compute, 1 row (1M-row batch / 1M)", compute_us, "µs/row", None),
        Row(section, "= streamml's own overhead", own_us, "µs/call", None),
        Row(section, "  of which pyarrow's import of the result", import_us, "µs/call", None),
    ]


def throughput_rows(seconds: dict[str, float], rows: int) -> list[Row]:
    """Millions of rows/s, each peer's ratio being streamml's rate over its own."""
    section = f"throughput, {rows:,} rows, 1 thread, best run"
    rates = {name: rows / s / 1e6 for name, s in seconds.items()}
    return [
        Row(section, name, rate, "M rows/s", None if name == RB else rates[RB] / rate) for name, rate in rates.items()
    ]


def format_ratio(ratio: float | None, case: str) -> str:
    """``12.3`` or ``0.45`` and a multiplication sign; "reference" for streamml; nothing for non-peers."""
    if ratio is None:
        return "reference" if case == RB else ""
    return f"{ratio:.1f}{TIMES}" if ratio >= 10 else f"{ratio:.2f}{TIMES}"


def format_header(machine: dict[str, Any], settings: Settings, floor_ns: int) -> str:
    """What ran where, how, and how to read the table."""
    calls = settings.rounds * settings.calls_per_round
    return "\n".join(
        [
            "streamml overhead benchmark: S1 (logistic regression, 32 float64 features), one thread",
            f"machine: {machine['platform']}, {machine['cpu']}, nproc {machine['nproc']}; "
            f"python {machine['python']}; numpy {machine['numpy']}; pyarrow {machine['pyarrow']}; "
            f"scikit-learn {machine['sklearn']}; streamml {machine['streamml']}",
            f"thread pools: {machine['thread_pools']}",
            f"latency: {calls:,} calls per case after {settings.warmup:,} warm-up calls, "
            f"{settings.rounds} interleaved rounds, GC off, timer cost ({floor_ns} ns) subtracted; "
            f"throughput: best of {settings.runs} runs",
            "note: timings are noisy on shared machines; read the ratios (measured side by side in "
            "this run), not the absolute numbers.",
            f"streamml {TIMES}faster = how many times faster streamml predict(RecordBatch) is than the case "
            "(latency: case/streamml; throughput: streamml/case); below 1 = streamml slower.",
        ]
    )


def format_targets(own_us: float, beyond_compute_us: float, rate_m: float) -> str:
    """The two targets of the issue, met or not (informative only: benchmarks assert nothing)."""

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    return "\n".join(
        [
            "targets:",
            f"  streamml's own overhead per 1-row call <= {OVERHEAD_TARGET_US:g} µs beyond the model's "
            f"compute: {own_us:.2f} µs, {verdict(own_us <= OVERHEAD_TARGET_US)} "
            f"(counting pyarrow's export too: {beyond_compute_us:.2f} µs)",
            f"  streamml throughput >= {THROUGHPUT_TARGET_M:g}M rows/s: {rate_m:.1f}M rows/s, "
            f"{verdict(rate_m >= THROUGHPUT_TARGET_M)}",
        ]
    )


def write_json(path: str, report: dict[str, Any]) -> None:
    """Write the results (machine, settings, table rows, raw statistics) as JSON."""
    Path(path).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")


# --- main --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Check S1's answers, measure, print the table (and write JSON if asked)."""
    args = parse_args(argv)
    settings = QUICK if args.quick else FULL
    s1 = load_s1()
    with limit_threads():
        machine = machine_info()
        x, _ = r1_data(settings.rows, SCORE_SEED)
        max_diff = check_agreement(s1, x[:CHECK_ROWS])
        floor_ns = timer_floor_ns()
        samples = measure_latency(latency_cases(s1, x[:1].copy()), settings, floor_ns)
        seconds = measure_throughput(s1, x, settings)

    stats = {name: (float(np.median(s)), float(np.percentile(s, 99))) for name, s in samples.items()}
    compute_us = seconds[RB] / settings.rows * 1e6
    beyond_compute_us = stats[RB][0] - compute_us
    own_us = beyond_compute_us - stats[EXPORT][0]
    rate_m = settings.rows / seconds[RB] / 1e6
    rows = [*latency_rows(stats), *breakdown_rows(stats, compute_us), *throughput_rows(seconds, settings.rows)]

    print(format_header(machine, settings, floor_ns))
    print(f"check: streamml vs scikit-learn on {CHECK_ROWS:,} rows, max |diff| of probability {max_diff:.2g}")
    print()
    print(format_table(rows, lambda r: format_ratio(r.ratio, r.case)))
    print()
    print(format_targets(own_us, beyond_compute_us, rate_m))

    if args.json:
        write_json(
            args.json,
            {
                "machine": machine,
                "settings": asdict(settings),
                "timer_floor_ns": floor_ns,
                "check_max_abs_diff": max_diff,
                "rows": [asdict(r) for r in rows],
                "latency_us": {n: {"median": m, "p99": p} for n, (m, p) in stats.items()},
                "throughput_seconds": seconds,
                "own_overhead_us": own_us,
                "targets": {
                    "own_overhead_us_max": OVERHEAD_TARGET_US,
                    "own_overhead_met": own_us <= OVERHEAD_TARGET_US,
                    "throughput_m_rows_per_s_min": THROUGHPUT_TARGET_M,
                    "throughput_met": rate_m >= THROUGHPUT_TARGET_M,
                },
            },
        )
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
