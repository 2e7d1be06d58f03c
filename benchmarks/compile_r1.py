"""R1 compiled by streamml against the tree compilers and runtimes, all measured in one run, one thread.

R1 is the design's LightGBM binary classifier: 300 trees, ``num_leaves=63``,
``learning_rate=0.05``, trained on ``r1_data(100_000, seed=42)`` (32 float64
features ``x0..x31``) and scored on the 100,000 rows of ``r1_data(100_000,
seed=43)``. Beside it, an XGBoost model of the same size on the same data (300
rounds, ``max_depth=6`` so at most 64 leaves, ``eta=0.05``, ``tree_method=hist``).
Everything runs on one thread: the thread-pool variables are set before numpy
loads, threadpoolctl holds every loaded pool to one thread while measuring,
and each peer is told one thread through its own option.

Trained models are cached under ``build/bench/`` (keyed by the parameters, the
data and the framework's version), so only the first run trains; ``--retrain``
trains again. The header says how long training took. See ``r1_models.py``.

What is measured:

1. **Throughput on the 100,000 scoring rows**, in thousands of rows/s, best of
   N runs, the cases interleaved run by run so a noisy neighbour hurts them all
   alike: the streamml binary compiled from the LightGBM model
   (``Model.predict`` on a ``pyarrow.RecordBatch`` of ``x0..x31``); LightGBM
   ``Booster.predict(num_threads=1)``; lleaves (``n_jobs=1``) with its default
   options and with ``finline=False``; TL2cgen (``Predictor(nthread=1)`` on a
   ``DMatrix``); ONNX Runtime on the model converted by onnxmltools (one
   intra- and inter-op thread; **float32** input and thresholds, as ONNX's tree
   ensembles are float32). And the XGBoost model scored by XGBoost's
   ``inplace_predict`` and by the streamml binary compiled from it. Each case
   gets its input in its own native form, built before the clock starts
   (RecordBatch, float64 C-ordered array, DMatrix, float32 array). Targets:
   streamml at least 2x lleaves and at least 10x LightGBM. Beside it, for
   information, streamml's ``Model.predict_numpy`` on the same float64
   C-ordered array the peers get (it copies the rows into the ABI's
   column-major layout first).
2. **Correctness, before any timing**, on all scoring rows: streamml against
   LightGBM (largest absolute difference of the probability below 1e-9) and
   streamml against XGBoost (largest relative difference below 1e-6), or the
   run stops: a benchmark of wrong answers is worthless. The differences of
   lleaves, TL2cgen and ONNX Runtime from LightGBM are reported, not enforced.
3. **Latency of scoring one row from Python**, per call, in µs (median and
   p99 over many calls after a warm-up, cases interleaved in rounds, GC off,
   the timer's own cost subtracted): streamml's ``Model.predict_numpy`` on a
   ``(1, 32)`` float64 array, and ``Model.predict`` on a 1-row RecordBatch, a
   1-row StructArray and a list of one dict; lleaves and LightGBM on the same
   ``(1, 32)`` float64 array; ONNX Runtime on ``(1, 32)`` float32. Target:
   streamml at most 10 µs. The target line and the latency ratios use
   ``predict_numpy``: the peers are timed on NumPy input, so it is the
   like-for-like case (NumPy in, NumPy out); the RecordBatch case is printed
   beside it. Also shown: what pyarrow's own export of the 1-row, 32-column
   batch (``__arrow_c_array__``, which ``predict`` calls) costs: that part is
   the producer's, paid by any consumer of the C Data Interface.
4. **Compile time of R1**: ``streamml.compile.compile`` (target at most 10 s)
   beside lleaves' ``Model(...).compile`` (both variants), TL2cgen's
   ``export_lib`` (gcc, ``nthread=1``, default parameters) and onnxmltools'
   conversion.
5. **Scaling with the number of trees**: a 2,000-tree LightGBM model (same
   parameters) trained on ``r1_data(20_000, seed=42)`` (fewer rows, to keep
   training short), scored beside R1 on the first 20,000 scoring rows: rows/s
   of streamml, LightGBM and lleaves, and compile times. lleaves runs here
   with ``finline=False`` only: with its defaults it inlines every tree into
   one function, and LLVM took over 14 minutes and 13 GB of memory on 2,000
   trees without finishing.

How to read it: absolute timings move with the machine and its neighbours,
the ratios between cases measured side by side in one run much less. The last
column, "streamml xfaster", says how many times faster the streamml binary of
the same model is than the case on that row (throughput: streamml rows/s /
case rows/s; latency and compile time: case time / streamml time); below 1
means streamml is slower. A peer that cannot run is listed with its error and
the rest of the run goes on.

Usage::

    python benchmarks/compile_r1.py [--quick] [--retrain] [--json PATH]
"""

# ruff: noqa: E402  (the thread limits below must be set before numpy is imported)

import os

# One thread everywhere: streamml scores a batch on the calling thread, so the
# peers' OpenMP/BLAS pools get one thread too. Set before numpy loads its BLAS.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import argparse
import gc
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness import base_machine_info, format_table, limit_threads, time_calls, timer_floor_ns
from r1_models import (
    BENCH_DIR,
    LIGHTGBM_TOLERANCE,
    LLEAVES,
    LLEAVES_NOINLINE,
    R1_ROWS,
    R1_TREES,
    XGBOOST_TOLERANCE,
    Peers,
    Suite,
    Trained,
    check_lightgbm,
    check_xgboost,
    compile_streamml,
    lightgbm_run,
    lleaves_run,
    load_xgboost,
    onnx_run,
    record_batch,
    set_up,
    streamml_run,
    tl2cgen_run,
    train_lightgbm,
    train_xgboost,
    version_of,
    xgboost_run,
)
from streamml_dev.workloads import FEATURE_NAMES, SCORE_SEED, r1_data

SCALE_TREES = 2_000
SCALE_TRAIN_ROWS = 20_000
SCALE_ROWS = 20_000
LATENCY_TARGET_US = 10.0
COMPILE_TARGET_S = 10.0
LLEAVES_TARGET = 2.0
LIGHTGBM_TARGET = 10.0
TIMES = "\N{MULTIPLICATION SIGN}"

SML = "streamml predict(RecordBatch)"
SML_NUMPY = "streamml predict_numpy(ndarray)"
SML_NUMPY_1 = "streamml predict_numpy((1, 32) float64)"
SML_STRUCT = "streamml predict(StructArray)"
SML_DICTS = "streamml predict([dict])"
EXPORT = "(of which pyarrow's export: batch.__arrow_c_array__())"
LGB = "LightGBM Booster.predict"
TL2 = "TL2cgen Predictor.predict(DMatrix)"
ONNX = "ONNX Runtime (float32)"
SML_XGB = "streamml (from XGBoost) predict(RecordBatch)"
XGB = "XGBoost inplace_predict"
SML_COMPILE = "streamml compile"
SML_XGB_COMPILE = "streamml compile (XGBoost twin)"
COMPILE_NAMES = {
    LLEAVES: "lleaves Model + compile",
    LLEAVES_NOINLINE: "lleaves Model + compile (finline=False)",
    TL2: "treelite load + tl2cgen.export_lib (gcc)",
    ONNX: "onnxmltools.convert_lightgbm + session",
}

PEER_CASES = (LGB, LLEAVES, LLEAVES_NOINLINE, TL2, ONNX, XGB)

Cases = dict[str, tuple[Callable[..., Any], tuple[Any, ...]]]


@dataclass(frozen=True)
class Settings:
    """How long to measure."""

    runs: int  # throughput: interleaved runs per case, the best one counts
    rounds: int  # latency: rounds, each timing every case in turn
    calls_per_round: int  # latency: timed calls per case and round
    warmup: int  # latency: untimed calls per case first
    scale_runs: int  # scaling: interleaved runs per case; 0 skips the 2,000-tree part
    fresh: bool  # compile the peers' libraries in this run (else reuse build/bench's)


FULL = Settings(runs=5, rounds=10, calls_per_round=1_000, warmup=500, scale_runs=3, fresh=True)
QUICK = Settings(runs=2, rounds=3, calls_per_round=300, warmup=100, scale_runs=0, fresh=False)


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    section: str
    case: str
    value: float
    unit: str
    ratio: float | None  # how many times faster streamml is; None: no ratio
    role: str = "peer"  # "reference" (the streamml case the ratios compare with), "peer" or "info"


# --- environment -------------------------------------------------------------------------------


def gcc_version() -> str:
    """``gcc --version``'s first line, or why not."""
    try:
        out = subprocess.run(["gcc", "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        return f"gcc unavailable ({e})"
    return out.splitlines()[0] if out else "gcc: unknown version"


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on, and with which versions."""
    dists = ("lightgbm", "xgboost", "lleaves", "llvmlite", "treelite", "tl2cgen", "onnxruntime", "onnxmltools")
    return {**base_machine_info(), "gcc": gcc_version(), "versions": {d: version_of(d) for d in dists}}


# --- timing ------------------------------------------------------------------------------------


def runnable(cases: Cases, peers: Peers) -> Cases:
    """The cases whose first (untimed, warm-up) call works; the others are noted in ``peers``."""
    return {name: case for name, case in cases.items() if peers.attempt(name, case[0], *case[1]) is not None}


def interleaved_seconds(cases: Cases, runs: int) -> dict[str, list[float]]:
    """Time every case ``runs`` times, in seconds, case after case within each run."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    gc.collect()
    gc.disable()
    try:
        for _ in range(runs):
            for name, (fn, args) in cases.items():
                t0 = time.perf_counter_ns()
                fn(*args)
                samples[name].append((time.perf_counter_ns() - t0) / 1e9)
    finally:
        gc.enable()
    return samples


def measure_latency(cases: Cases, settings: Settings, floor_ns: int) -> dict[str, np.ndarray]:
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


def throughput_cases(suite: Suite, x: np.ndarray, *, tag: str = "") -> Cases:
    """Scoring all of ``x`` with streamml and each peer of ``suite``, inputs prepared beforehand."""
    cases: Cases = {
        SML + tag: (streamml_run, (suite.streamml, record_batch(x))),
        SML_NUMPY + tag: (suite.streamml.predict_numpy, (x,)),
        LGB + tag: (lightgbm_run, (suite.booster, x)),
    }
    for case, built in suite.lleaves.items():
        cases[case + tag] = (lleaves_run, (built.predictor, x))
    if suite.tl2cgen is not None:
        import tl2cgen

        cases[TL2 + tag] = (tl2cgen_run, (suite.tl2cgen.predictor, tl2cgen.DMatrix(x)))
    if suite.onnx is not None:
        cases[ONNX + tag] = (onnx_run, (suite.onnx.predictor, x.astype(np.float32)))
    return cases


def latency_cases(suite: Suite, x1: np.ndarray) -> Cases:
    """The 1-row calls to time: ``name -> (function, arguments)``."""
    batch = record_batch(x1)
    cases: Cases = {
        SML_NUMPY_1: (suite.streamml.predict_numpy, (x1,)),
        SML: (streamml_run, (suite.streamml, batch)),
        EXPORT: (batch.__arrow_c_array__, ()),
        SML_STRUCT: (streamml_run, (suite.streamml, batch.to_struct_array())),
        SML_DICTS: (streamml_run, (suite.streamml, [dict(zip(FEATURE_NAMES, x1[0].tolist(), strict=True))])),
    }
    for case, built in suite.lleaves.items():
        cases[case] = (lleaves_run, (built.predictor, x1))
    if suite.onnx is not None:
        cases[ONNX] = (onnx_run, (suite.onnx.predictor, x1.astype(np.float32)))
    cases[LGB] = (lightgbm_run, (suite.booster, x1))
    return cases


# --- report ------------------------------------------------------------------------------------


def rate_rows(section: str, seconds: dict[str, list[float]], rows: int, ref: str, names: Sequence[str]) -> list[Row]:
    """Thousands of rows/s (best run) for ``names``, each ratio being ``ref``'s rate over the case's."""
    out = []
    ref_rate = rows / min(seconds[ref])
    for name in names:
        if name in seconds:
            rate = rows / min(seconds[name])
            is_ref = name == ref
            role = "reference" if is_ref else ("info" if name == SML_NUMPY else "peer")
            out.append(Row(section, name, rate / 1e3, "k rows/s", None if is_ref else ref_rate / rate, role))
    return out


def latency_rows(latency: dict[str, np.ndarray]) -> list[Row]:
    """Median and p99 rows, each ratio being the case's time over streamml ``predict_numpy``'s."""
    rows = []
    for label, q in (("median", 50), ("p99", 99)):
        section = f"latency, 1 row from Python, R1, {label}"
        ref = float(np.percentile(latency[SML_NUMPY_1], q))
        for name, samples in latency.items():
            value = float(np.percentile(samples, q))
            role = "reference" if name == SML_NUMPY_1 else ("peer" if name in PEER_CASES else "info")
            ratio = None if name in (SML_NUMPY_1, EXPORT) else value / ref
            rows.append(Row(section, name, value, "µs/call", ratio, role))
    return rows


def compile_rows(suite: Suite, xgb_compile_s: float) -> list[Row]:
    """R1's compile times, each ratio being the case's time over streamml's."""
    section = "compile time, R1 (wall, 1 thread)"
    ref = suite.compile_seconds
    rows = [Row(section, SML_COMPILE, ref, "s", None, "reference")]
    peers = {**suite.lleaves, TL2: suite.tl2cgen, ONNX: suite.onnx}
    for case, built in peers.items():
        if built is not None:
            name = COMPILE_NAMES[case] + (" (cached)" if built.cached else "")
            rows.append(Row(section, name, built.seconds, "s", built.seconds / ref))
    rows.append(Row(section, SML_XGB_COMPILE, xgb_compile_s, "s", None, "info"))
    return rows


def scaling_rows(suites: dict[str, Suite], seconds: dict[str, list[float]], runs: int) -> list[Row]:
    """Rows/s, cost per row and tree, and compile times per model; then how each grew with the trees."""
    rows: list[Row] = []
    names = (SML, LGB, LLEAVES_NOINLINE)
    for tag, s in suites.items():
        trees = s.trained.trees
        section = (
            f"scaling, {trees:,} trees (trained on {s.trained.train_rows:,} rows), {SCALE_ROWS:,} rows, best of {runs}"
        )
        for row in rate_rows(section, seconds, SCALE_ROWS, SML + tag, [n + tag for n in names]):
            rows.append(Row(row.section, row.case.removesuffix(tag), row.value, row.unit, row.ratio, row.role))
        for name in names:
            if name + tag in seconds:
                ns = min(seconds[name + tag]) / SCALE_ROWS / trees * 1e9
                rows.append(Row(section, f"{name}: per row per tree", ns, "ns", None, "info"))
        rows.append(Row(section, SML_COMPILE, s.compile_seconds, "s", None, "reference"))
        if (built := s.lleaves.get(LLEAVES_NOINLINE)) is not None:
            name = COMPILE_NAMES[LLEAVES_NOINLINE] + (" (cached)" if built.cached else "")
            rows.append(Row(section, name, built.seconds, "s", built.seconds / s.compile_seconds))
    (small_tag, small), (big_tag, big) = suites.items()
    section = f"scaling, growth from {small.trained.trees} to {big.trained.trees:,} trees"
    rows.append(Row(section, "trees", big.trained.trees / small.trained.trees, TIMES, None, "info"))
    for name in names:
        if name + small_tag in seconds and name + big_tag in seconds:
            growth = min(seconds[name + big_tag]) / min(seconds[name + small_tag])
            rows.append(Row(section, f"{name}: time per row", growth, TIMES, None, "info"))
    rows.append(Row(section, f"{SML_COMPILE}: time", big.compile_seconds / small.compile_seconds, TIMES, None, "info"))
    if LLEAVES_NOINLINE in small.lleaves and LLEAVES_NOINLINE in big.lleaves:
        growth = big.lleaves[LLEAVES_NOINLINE].seconds / small.lleaves[LLEAVES_NOINLINE].seconds
        rows.append(Row(section, f"{COMPILE_NAMES[LLEAVES_NOINLINE]}: time", growth, TIMES, None, "info"))
    return rows


def format_ratio(row: Row) -> str:
    """``12.3x`` or ``0.45x``; "reference" for the streamml case the ratios compare with."""
    if row.role == "reference":
        return "reference"
    if row.ratio is None:
        return ""
    return f"{row.ratio:.1f}{TIMES}" if row.ratio >= 10 else f"{row.ratio:.2f}{TIMES}"


def describe_training(label: str, t: Trained) -> str:
    """One header line: what was trained on what, and how long it took."""
    where = t.path.relative_to(BENCH_DIR.parent.parent)
    how = f"trained {t.when} in" if t.cached else "trained in this run in"
    cached = f"; cached as {where}" if t.cached else f"; saved as {where}"
    return f"{label}: {t.trees:,} trees on {t.train_rows:,} rows, {how} {t.seconds:.1f} s (1 thread){cached}"


def format_header(machine: dict[str, Any], settings: Settings, floor_ns: int, trained: dict[str, Trained]) -> str:
    """What ran where, how, and how to read the table."""
    calls = settings.rounds * settings.calls_per_round
    lines = [
        f"streamml compile benchmark: R1 (LightGBM binary, {R1_TREES} trees, num_leaves 63, lr 0.05, "
        "32 float64 features), one thread",
        f"machine: {machine['platform']}, {machine['cpu']}, nproc {machine['nproc']}; python {machine['python']}; "
        f"numpy {machine['numpy']}; pyarrow {machine['pyarrow']}; streamml {machine['streamml']}",
        "peers: " + "; ".join(f"{d} {v}" for d, v in machine["versions"].items()) + f"; {machine['gcc']}",
        f"thread pools: {machine['thread_pools']}",
        *(describe_training(label, t) for label, t in trained.items()),
        f"throughput: best of {settings.runs} interleaved runs on {R1_ROWS:,} scoring rows (seed {SCORE_SEED}), "
        "inputs built before timing; "
        f"latency: {calls:,} calls per case after {settings.warmup:,} warm-up calls, {settings.rounds} interleaved "
        f"rounds, GC off, timer cost ({floor_ns} ns) subtracted",
        "ONNX Runtime runs in float32 (input and thresholds): its differences from LightGBM are float32 rounding.",
        *(
            []
            if settings.fresh
            else [
                "quick run: peers' libraries are reused from build/bench when there; a compile time marked "
                "(cached) is the one measured when the library was built."
            ]
        ),
        "note: timings are noisy on shared machines; read the ratios (measured side by side in this run), "
        "not the absolute numbers.",
        f"streamml {TIMES}faster = how many times faster the streamml binary of the same model is than the case "
        "(throughput: streamml/case; times: case/streamml); below 1 = streamml slower.",
    ]
    return "\n".join(lines)


def format_checks(diffs: dict[str, float], xgb_rel: float, big_diffs: dict[str, float] | None) -> str:
    """The correctness checks that ran before the timing."""
    lines = [
        f"checks on the {R1_ROWS:,} scoring rows, before timing:",
        f"  streamml vs LightGBM: max |diff| of P(y=1) {diffs['streamml']:.2g} (must be < {LIGHTGBM_TOLERANCE:g})",
        f"  streamml (from XGBoost) vs XGBoost: max relative diff {xgb_rel:.2g} (must be < {XGBOOST_TOLERANCE:g})",
    ]
    others = [f"{peer} {d:.2g}" for peer, d in diffs.items() if peer != "streamml"]
    if others:
        lines.append(f"  peers vs LightGBM, for the record: max |diff| {', '.join(others)}")
    if big_diffs is not None:
        extra = "".join(f", {p} {d:.2g}" for p, d in big_diffs.items() if p != "streamml")
        lines.append(
            f"  {SCALE_TREES:,} trees, {SCALE_ROWS:,} rows: streamml vs LightGBM {big_diffs['streamml']:.2g}{extra}"
        )
    return "\n".join(lines)


def format_targets(rows: Sequence[Row], latency_us: float, batch_latency_us: float, compile_s: float) -> str:
    """The issue's targets, met or not (informative only: benchmarks assert nothing)."""

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    def ratio_of(name: str) -> float | None:
        return next((r.ratio for r in rows if r.case == name and r.unit == "k rows/s"), None)

    lines = ["targets (informative; benchmarks assert nothing):"]
    for peers, goal in (((LLEAVES, LLEAVES_NOINLINE), LLEAVES_TARGET), ((LGB,), LIGHTGBM_TARGET)):
        for peer in peers:
            ratio = ratio_of(peer)
            got = f"{ratio:.2f}{TIMES}, {verdict(ratio >= goal)}" if ratio is not None else "not measured (failed)"
            lines.append(f"  streamml throughput >= {goal:g}{TIMES} {peer}: {got}")
    lines.append(
        f"  streamml 1-row latency (predict_numpy, NumPy in and out like the peers, median) <= "
        f"{LATENCY_TARGET_US:g} µs: {latency_us:.2f} µs, {verdict(latency_us <= LATENCY_TARGET_US)}"
        f" (predict on a RecordBatch: {batch_latency_us:.2f} µs)"
    )
    lines.append(
        f"  streamml compile of R1 <= {COMPILE_TARGET_S:g} s: {compile_s:.2f} s, "
        f"{verdict(compile_s <= COMPILE_TARGET_S)}"
    )
    return "\n".join(lines)


# --- main --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer repetitions, no 2,000-tree part, peers' libraries reused"
    )
    parser.add_argument("--retrain", action="store_true", help="train the models again instead of using build/bench/")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Train (or load), compile, check, measure, print the tables (and write JSON if asked)."""
    args = parse_args(argv)
    settings = QUICK if args.quick else FULL
    started = time.perf_counter()
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    peers = Peers()

    # The models (trained once, then cached) and everything compiled from them.
    trained = {"R1 LightGBM": train_lightgbm(R1_TREES, R1_ROWS, args.retrain)}
    trained["XGBoost twin (depth 6, eta 0.05, hist)"] = xgb_trained = train_xgboost(args.retrain)
    if settings.scale_runs:
        label = "scaling LightGBM (fewer rows, to keep training short)"
        trained[label] = train_lightgbm(SCALE_TREES, SCALE_TRAIN_ROWS, args.retrain)
    suite = set_up(
        trained["R1 LightGBM"], "r1", peers, fresh=settings.fresh, lleaves=(LLEAVES, LLEAVES_NOINLINE), others=True
    )
    xgb_booster = load_xgboost(xgb_trained)
    xgb_model, xgb_compile_s = compile_streamml(xgb_booster, "r1_xgboost", f"the XGBoost model {xgb_trained.path.name}")
    big = None
    if settings.scale_runs:
        big_trained = trained[label]
        big = set_up(big_trained, "r1_2000", peers, fresh=settings.fresh, lleaves=(LLEAVES_NOINLINE,), others=False)

    x, _ = r1_data(R1_ROWS, SCORE_SEED)
    x_small = np.ascontiguousarray(x[:SCALE_ROWS])
    with limit_threads():
        machine = machine_info()
        diffs = check_lightgbm(suite, x, peers)
        xgb_rel = check_xgboost(xgb_model, xgb_booster, x)
        big_diffs = check_lightgbm(big, x_small, peers) if big else None

        cases = throughput_cases(suite, x)
        cases[SML_XGB] = (streamml_run, (xgb_model, record_batch(x)))
        cases[XGB] = (xgboost_run, (xgb_booster, x))
        seconds = interleaved_seconds(runnable(cases, peers), settings.runs)

        floor_ns = timer_floor_ns()
        latency = measure_latency(runnable(latency_cases(suite, x[:1].copy()), peers), settings, floor_ns)

        scale_seconds: dict[str, list[float]] = {}
        suites = {}
        if big is not None:
            suites = {f" [{R1_TREES} trees]": suite, f" [{SCALE_TREES:,} trees]": big}
            scale_cases = {}
            for tag, s in suites.items():
                keep = {name + tag for name in (SML, LGB, LLEAVES_NOINLINE)}
                scale_cases.update({k: v for k, v in throughput_cases(s, x_small, tag=tag).items() if k in keep})
            scale_seconds = interleaved_seconds(runnable(scale_cases, peers), settings.scale_runs)

    rows = rate_rows(
        f"throughput, R1 (LightGBM, {R1_TREES} trees, 63 leaves), {R1_ROWS:,} rows, 1 thread, best of {settings.runs}",
        seconds,
        R1_ROWS,
        SML,
        (SML, LGB, LLEAVES, LLEAVES_NOINLINE, TL2, ONNX, SML_NUMPY),
    )
    rows += rate_rows(
        f"throughput, XGBoost twin ({R1_TREES} rounds, depth 6), {R1_ROWS:,} rows, 1 thread, best of {settings.runs}",
        seconds,
        R1_ROWS,
        SML_XGB,
        (SML_XGB, XGB),
    )
    rows += latency_rows(latency)
    rows += compile_rows(suite, xgb_compile_s)
    if suites:
        rows += scaling_rows(suites, scale_seconds, settings.scale_runs)
    latency_us = float(np.median(latency[SML_NUMPY_1]))
    batch_latency_us = float(np.median(latency[SML]))

    print(format_header(machine, settings, floor_ns, trained))
    print()
    print(format_checks(diffs, xgb_rel, big_diffs))
    print()
    print(format_table(rows, format_ratio))
    print()
    print(format_targets(rows, latency_us, batch_latency_us, suite.compile_seconds))
    if peers.failures:
        print("\npeers that could not run:")
        for peer, error in peers.failures.items():
            print(f"  {peer}: {error}")
    elapsed = time.perf_counter() - started
    print(f"\nwhole run: {elapsed:.0f} s")

    if args.json:
        report = {
            "machine": machine,
            "settings": asdict(settings),
            "timer_floor_ns": floor_ns,
            "training": {label: {**asdict(t), "path": str(t.path)} for label, t in trained.items()},
            "checks": {"lightgbm_max_abs_diff": diffs, "xgboost_max_rel_diff": xgb_rel, "scaling": big_diffs},
            "rows": [asdict(r) for r in rows],
            "throughput_seconds": seconds,
            "scaling_seconds": scale_seconds,
            "latency_us": {
                n: {"median": float(np.median(s)), "p99": float(np.percentile(s, 99))} for n, s in latency.items()
            },
            "failures": peers.failures,
            "elapsed_seconds": elapsed,
        }
        Path(args.json).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
