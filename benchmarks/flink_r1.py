"""R1 in Flink: rows/s per slot through streamml's Flink functions, beside PyFlink and Python.

One command (``make bench``, or ``python benchmarks/flink_r1.py``) measures, in the same run and
on the same rows (R1's scoring set, seed 43):

- Flink SQL on a local MiniCluster, parallelism 1 (one slot), into a blackhole sink: no model (the
  pipe's ceiling), streamml's per-row ``ScalarFunction``, the batching ``AsyncScalarFunction`` and
  ``ML_PREDICT`` with the streamml model provider (``connectors/flink``,
  ``dev.streamml.flink.bench.FlinkR1Bench``);
- PyFlink's Pandas UDF calling LightGBM's own predict (apache-flink, in its own virtualenv);
- Python's ``Model.predict`` on the same rows (one thread, one call).

Targets (issue 7): batching >= 10x the Pandas UDF, and within 2x of ``Model.predict``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from harness import base_machine_info
from r1_models import BENCH_DIR, R1_ROWS, R1_TREES, train_lightgbm
from streamml import Model
from streamml.compile import compile as compile_model
from streamml.workloads import FEATURE_NAMES, SCORE_SEED, r1_data

ROOT = Path(__file__).resolve().parent.parent
CONNECTOR = ROOT / "connectors" / "flink"
PYFLINK_PYTHON = Path(os.environ.get("STREAMML_PYFLINK_PYTHON", ROOT / ".venv-pyflink" / "bin" / "python"))
JVM_OPENS = [
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.invoke=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
]
PANDAS = "PyFlink Pandas UDF (LightGBM predict)"
PREDICT = "Python Model.predict (one call)"
BATCHED = "batching AsyncScalarFunction"
PIPE = "no model (Flink pipe)"
#: The FlinkR1Bench cases that score (the same job as PIPE plus the model).
JAVA_MODEL_CASES = ("per-row ScalarFunction", BATCHED, "ML_PREDICT (async, batched)")


def java_classpath() -> str:
    """Compile connectors/flink's tests and return their classpath (Maven resolves it)."""
    out = BENCH_DIR / "flink-classpath.txt"
    subprocess.run(
        ["mvn", "-B", "-q", "test-compile", "dependency:build-classpath", "-Dstreamml.skipFixtures=true",
         "-Dmdep.includeScope=test", f"-Dmdep.outputFile={out}"],
        cwd=CONNECTOR, check=True,
    )
    return os.pathsep.join([str(CONNECTOR / "target" / "classes"), str(CONNECTOR / "target" / "test-classes"),
                            out.read_text().strip()])


def run_java(model: Path, rows_file: Path, runs: int) -> dict[str, list[float]]:
    """Seconds per case and run from FlinkR1Bench."""
    cmd = ["java", *JVM_OPENS, "-cp", java_classpath(), "dev.streamml.flink.bench.FlinkR1Bench",
           str(model), str(rows_file), str(runs)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    seconds: dict[str, list[float]] = {}
    for line in done.stdout.splitlines():
        if "\t" in line:
            case, value = line.rsplit("\t", 1)
            seconds.setdefault(case, []).append(float(value))
    return seconds


def run_pyflink(model_txt: Path, rows_file: Path, runs: int) -> list[float] | str:
    """Seconds per run of the Pandas UDF, or why it could not run."""
    if not PYFLINK_PYTHON.is_file():
        return f"{PYFLINK_PYTHON} missing (make bench creates it)"
    script = Path(__file__).resolve().parent / "flink_r1_pyflink.py"
    done = subprocess.run([str(PYFLINK_PYTHON), str(script), str(model_txt), str(rows_file), str(runs)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return f"failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"
    return [float(v) for v in done.stdout.split()]


def plain_table(rows: list[tuple[str, ...]]) -> str:
    """Rows of cells, the first a header, aligned (the first column left, the rest right)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    BENCH_DIR.mkdir(parents=True, exist_ok=True)

    trained = train_lightgbm(R1_TREES, R1_ROWS, retrain=False)
    model_path = compile_model(
        trained.path, BENCH_DIR / "r1_flink.so", name="r1", version="1", features=list(FEATURE_NAMES)
    )
    x, _ = r1_data(args.rows, SCORE_SEED)
    rows_file = BENCH_DIR / f"r1_score_{args.rows}.f64"
    np.ascontiguousarray(x, dtype="<f8").tofile(rows_file)

    model = Model.load(model_path)
    batch = pa.record_batch([pa.array(x[:, i]) for i in range(x.shape[1])], names=list(FEATURE_NAMES))
    predict_seconds = []
    for _ in range(args.runs):
        start = time.perf_counter()
        model.predict(batch)
        predict_seconds.append(time.perf_counter() - start)

    seconds = run_java(Path(model_path), rows_file, args.runs)
    pandas = run_pyflink(Path(trained.path), rows_file, args.runs)
    if isinstance(pandas, list):
        seconds[PANDAS] = pandas
    seconds[PREDICT] = predict_seconds

    median = {case: statistics.median(s) for case, s in seconds.items()}
    rate = {case: args.rows / m for case, m in median.items()}
    table = []
    for case, r in rate.items():
        vs_pandas = f"{r / rate[PANDAS]:.1f}x" if PANDAS in rate else "-"
        # The Java cases run the same job as the pipe (source, start-up, sink): their time over
        # the pipe's is what the model costs, start-up excluded.
        over = median[case] - median[PIPE]
        marginal = f"{args.rows / over:,.0f}" if case in JAVA_MODEL_CASES and over > 0 else "-"
        table.append((case, f"{r:,.0f}", vs_pandas, f"{r / rate[PREDICT]:.3f}x", marginal))
    info = base_machine_info()
    print(f"R1 ({R1_TREES} trees) in Flink, {args.rows:,} rows, median of {args.runs} runs, parallelism 1; "
          f"{info['cpu']}, {info['nproc']} cores")
    header = ("case", "rows/s per slot", "vs Pandas UDF", "vs Model.predict", "rows/s over the pipe")
    print(plain_table([header, *table]))
    if not isinstance(pandas, list):
        print(f"PyFlink Pandas UDF not measured: {pandas}")
    if PANDAS in rate:
        ok = rate[BATCHED] >= 10 * rate[PANDAS]
        print(f"target batching >= 10x Pandas UDF: {'met' if ok else 'not met'} ({rate[BATCHED] / rate[PANDAS]:.1f}x)")
    ok = rate[BATCHED] * 2 >= rate[PREDICT]
    print(f"target batching within 2x of Model.predict: {'met' if ok else 'not met'} "
          f"({rate[PREDICT] / rate[BATCHED]:.1f}x slower)")


if __name__ == "__main__":
    main()
