"""R1 compiled from its ONNX export against R1 compiled from LightGBM, and ONNX Runtime, in one run, one thread.

R1 (the design's LightGBM binary classifier, 300 trees, ``num_leaves=63``; see
``compile_r1.py``) is converted by onnxmltools (``convert_lightgbm``, float32
input, no ZipMap) and compiled twice by streamml: from the LightGBM model and
from the ONNX graph. The three are scored on the 100,000 rows of
``r1_data(100_000, seed=43)``:

1. **Checks, before timing**: the ONNX-compiled binary against ONNX Runtime on
   the same graph (relative difference of P(y=1), or one float32 step at 1.0 on
   small probabilities, where ONNX Runtime's float32 ``1 - sigmoid`` rounds) and
   the LightGBM-compiled binary against LightGBM (below 1e-9 absolute). The
   rows where the two streamml binaries differ by more than 1e-4 are counted:
   ONNX's thresholds are float32, so rows between a threshold and its rounding
   may take the other branch.
2. **Throughput**, thousands of rows/s, best of N interleaved runs:
   ``Model.predict`` on a RecordBatch for each binary, ONNX Runtime's
   ``run`` on float32 rows (one intra- and inter-op thread). Target: the two
   streamml binaries within 5 % of each other. For diagnosis, the ONNX IR is
   also compiled with float64 tree sums (onnxruntime sums in float32, so this
   one is not its arithmetic): the gap between the two ONNX rows is the
   evaluator's float32-sum path.

Usage::

    python benchmarks/compile_onnx_r1.py [--runs N] [--retrain]
"""

# ruff: noqa: E402  (the thread limits below must be set before numpy is imported)

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import argparse
import time

import lightgbm
import numpy as np
import onnxruntime
from onnxmltools import convert_lightgbm
from onnxmltools.convert.common.data_types import FloatTensorType

from harness import base_machine_info, limit_threads
from r1_models import BENCH_DIR, R1_ROWS, R1_TREES, compile_streamml, record_batch, train_lightgbm, version_of
from streamml import Model
from streamml.compile import to_ir, write_binary
from streamml_dev.workloads import FEATURE_NAMES, SCORE_SEED, r1_data

FLOAT32_STEP = 2.0**-23
TARGET = 0.05


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="interleaved runs per case (the best counts)")
    parser.add_argument("--retrain", action="store_true", help="train R1 again instead of using build/bench's")
    args = parser.parse_args()

    trained = train_lightgbm(R1_TREES, 100_000, args.retrain)
    booster = lightgbm.Booster(model_file=str(trained.path))
    graph = convert_lightgbm(
        booster, initial_types=[("input", FloatTensorType([None, len(FEATURE_NAMES)]))], zipmap=False
    )
    onnx_path = BENCH_DIR / "lightgbm_r1.onnx"
    onnx_path.write_bytes(graph.SerializeToString())
    from_lgb, lgb_s = compile_streamml(booster, "r1", "R1 from LightGBM")
    from_onnx, onnx_s = compile_streamml(onnx_path, "r1_onnx", "R1 from its ONNX export")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(graph.SerializeToString(), options, providers=["CPUExecutionProvider"])

    x, _ = r1_data(R1_ROWS, SCORE_SEED)
    batch, x32 = record_batch(x), x.astype(np.float32)

    p_lgb = from_lgb.predict(batch).column("probability").to_numpy()
    p_onnx = from_onnx.predict(batch).column("probability").to_numpy()
    p_ort = session.run(["probabilities"], {"input": x32})[0][:, 1].astype(np.float64)
    lgb_diff = float(np.max(np.abs(p_lgb - booster.predict(x, num_threads=1))))
    ort_ok = np.abs(p_onnx - p_ort) <= np.maximum(1e-6 * np.abs(p_ort), FLOAT32_STEP)
    if not (lgb_diff < 1e-9 and ort_ok.all()):
        msg = f"wrong answers, not timing: vs LightGBM {lgb_diff:.3g}; rows off ONNX Runtime {(~ort_ok).sum()}"
        raise SystemExit(msg)
    moved = int(np.sum(np.abs(p_onnx - p_lgb) > 1e-4))  # a float32 threshold sent the row elsewhere

    # Diagnostic: the same ONNX IR summed in float64 (not onnxruntime's arithmetic), to show what
    # the float32 sums cost in the evaluator.
    ir = to_ir(onnx_path, features=list(FEATURE_NAMES))
    ir["model"]["accumulate"] = "float64"
    from_onnx64 = Model.load(write_binary(ir, BENCH_DIR / "streamml_r1_onnx_f64sums.so"))

    cases = {
        "streamml from LightGBM, predict(RecordBatch)": lambda: from_lgb.predict(batch),
        "streamml from ONNX, predict(RecordBatch)": lambda: from_onnx.predict(batch),
        "(diagnostic) ONNX IR with float64 sums": lambda: from_onnx64.predict(batch),
        "ONNX Runtime (float32), run": lambda: session.run(["probabilities"], {"input": x32}),
    }
    best = dict.fromkeys(cases, float("inf"))
    with limit_threads():
        for fn in cases.values():
            fn()
        for _ in range(args.runs):
            for name, fn in cases.items():
                t0 = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - t0)

    machine = base_machine_info()
    print(
        f"R1 ({R1_TREES} trees, num_leaves 63) from LightGBM and from its onnxmltools export, {R1_ROWS:,} rows, "
        f"one thread, best of {args.runs} interleaved runs"
    )
    print(
        f"machine: {machine['platform']}, {machine['cpu']}, nproc {machine['nproc']}; streamml {machine['streamml']}; "
        f"lightgbm {version_of('lightgbm')}; onnxmltools {version_of('onnxmltools')}; "
        f"onnxruntime {version_of('onnxruntime')}"
    )
    print(f"compile: from LightGBM {lgb_s:.2f} s, from ONNX {onnx_s:.2f} s")
    print(
        f"checks: LightGBM binary vs LightGBM max |diff| {lgb_diff:.2g}; ONNX binary vs ONNX Runtime: all rows within "
        f"1e-6 relative or {FLOAT32_STEP:.2g}; rows where the binaries differ by > 1e-4 (float32 thresholds): {moved}"
    )
    ref = best["streamml from LightGBM, predict(RecordBatch)"]
    for name, seconds in best.items():
        print(
            f"  {name:<48} {R1_ROWS / seconds / 1e3:9.0f} k rows/s   {seconds / ref:5.3f}x the LightGBM binary's time"
        )
    gap = best["streamml from ONNX, predict(RecordBatch)"] / ref - 1
    verdict = "met" if abs(gap) <= TARGET else "MISSED"
    print(f"ONNX binary vs LightGBM binary: {gap:+.1%} (target within {TARGET:.0%}): {verdict}")


if __name__ == "__main__":
    main()
