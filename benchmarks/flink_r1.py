"""R1 in Flink: rows/s per slot through streamml's Flink functions, beside PyFlink and Python.

One command (``make bench``, or ``python benchmarks/flink_r1.py``) measures, in the same run and
on the same rows (R1's scoring set, seed 43):

- Flink SQL on a local MiniCluster, parallelism 1 (one slot), into a blackhole sink: no model (the
  pipe's ceiling), an ``AsyncScalarFunction`` that sums its inputs and completes at once (the
  ceiling of Flink's async path: the planner runs an async function in a task of its own, fed over a
  serialising channel), streamml's per-row ``ScalarFunction`` and ``ML_PREDICT`` without async (the
  core's one-row path over JNI), the batching ``AsyncScalarFunction`` and ``ML_PREDICT`` (async)
  with the streamml model provider (``connectors/flink``,
  ``dev.streamml.flink.bench.FlinkR1Bench``);
- PyFlink's Pandas UDF calling LightGBM's own predict (apache-flink, in its own virtualenv);
- Python's ``Model.predict`` on the same rows (one thread, one call).

Those runs are short (100k rows: a few seconds each), so job start-up and ``fromData``, which
serialises every row into the job graph, weigh on every Flink case. Two more tables (``--generated
N``, default 500,000; 0 skips them) run the same cases on N rows made inside the job (every case
on all N). They add the DataStream operator (``StreammlStreams.predict``, from ``toDataStream`` of
the same table) beside its own no-model pipe. Each run of FlinkR1Bench runs every case once, one
after the other, so the ratios are also given run by run (a case against its peer of the same run),
beside the ratio of the medians. A 500k-row job is still about half start-up (~0.9 s, planning and
deployment, the same in every job), which pulls every ratio toward 1; two last tables (``--steady
N``, default 5,000,000; 0 skips them) run the two pairs with a ratio target (batching / async no-op,
DataStream operator / its pipe) on jobs long enough to show the rate a running job keeps.
Every generated table gives each job's JVM CPU and, per pair, the ceiling the machine's cores
put on the ratio in the same run (:func:`ceiling_lines`); the steady tables add what one more row
costs once a job runs, from the two lengths, and its ceiling (:func:`marginal_lines`).
The two sources:

- ``datagen``: Flink's datagen connector, a sequence id and 32 doubles uniform in [-3, 3]. Its
  random draws cost more per row than R1 does, so its table mostly measures datagen;
  ``Model.predict`` is timed there on uniform rows drawn by numpy (the same distribution);
- ``hashed``: a datagen table of the sequence id alone, under a view that computes the 32 inputs
  from the id by a few integer operations each (:func:`hashed_sql`): a source that costs little per
  row, so its table shows what the scoring functions cost inside Flink. ``Model.predict`` is timed
  on the very same rows (:func:`hashed_inputs`, the formula in numpy; the run checks that Flink's
  first and last rows equal numpy's).

The PyFlink Pandas UDF runs on both sources too.

Targets (issue 7): batching >= 10x the Pandas UDF, and within 2x of ``Model.predict``; (issue 25) on
the generated rows, the batching function >= 0.9x the async no-op, the DataStream operator >= 0.9x
its no-model pipe, and the per-row cases >= 50,000 rows/s per slot.
"""

from __future__ import annotations

import argparse
import functools
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
from streamml_dev.workloads import FEATURE_NAMES, SCORE_SEED, r1_data

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
ASYNC_PIPE = "async no-op AsyncScalarFunction"
DATASTREAM = "DataStream StreammlStreams.predict"
DATASTREAM_PIPE = "DataStream pipe, no model"
PER_ROW = "per-row ScalarFunction"
SYNC_PREDICT = "ML_PREDICT (sync, per row)"
#: The per-row cases' target (issue 25): rows/s per slot.
PER_ROW_TARGET = 50_000
#: The FlinkR1Bench cases that score (the same job as PIPE plus the model).
JAVA_MODEL_CASES = (PER_ROW, SYNC_PREDICT, BATCHED, "ML_PREDICT (async, batched)")
#: The cases with a ratio target, each beside its peer (the same job without the model).
RATIO_PAIRS = ((BATCHED, ASYNC_PIPE), (DATASTREAM, DATASTREAM_PIPE))
#: FlinkR1Bench's switches for the steady tables: the two pairs, no run on the rows file.
STEADY_PROPS = (f"-Dbench.cases={ASYNC_PIPE}|{BATCHED}|DataStream.*", "-Dbench.collection=false")
#: Rows of each source that Model.predict scores for R1's CPU a row when no generated table runs.
STEADY_PREDICT_ROWS = 500_000
#: The sources of the generated rows, and how the tables name them.
SOURCES = {
    "datagen": "Flink's datagen connector drawing the 32 inputs uniform in [-3, 3]",
    "hashed": "a datagen sequence id, the 32 inputs hashed from it in SQL (hashed_sql)",
}

# The hashed source: x_i = MOD(MOD(id * id, M) * Q_i + id * P_i + C_i, M) / 166667 - 3, with M the
# prime 1,000,003 (so x_i in [-3, 3] in steps of 6e-6, and no period within M rows). The quadratic
# term keeps consecutive rows apart (a linear id * P_i alone steps each input by a constant) and
# any two inputs jointly uniform; Q, P and C were drawn once, uniformly (numpy, seed 7). On 500k
# rows, as for 500k numpy uniform draws: mean 0.000, std 1.732, largest correlation between two
# inputs 0.005 (uniform 0.004), between consecutive rows 0.004 (0.003), chi-square / dof of every
# pair of inputs on 20x20 cells <= 1.23, of triples on 10x10x10 <= 1.05.
HASH_MODULUS = 1_000_003
HASH_SCALE = 166_667.0  # (HASH_MODULUS - 1) / 6
HASH_Q = (855926, 600078, 647346, 817773, 562635, 720550, 766923, 280166, 144425, 340133, 328054,
          798845, 830101, 104212, 499830, 756985, 205152, 737657, 195266, 474349, 753174, 342426,
          373283, 322741, 675578, 303896, 892370, 456062, 482520, 503640, 566036, 542799)
HASH_P = (507559, 896403, 746133, 734131, 660221, 597745, 372821, 891171, 472985, 272247, 776072,
          228170, 785961, 590033, 191771, 135153, 455808, 128544, 213246, 511912, 876214, 472966,
          746759, 833736, 758772, 603382, 453119, 511295, 313016, 497500, 403502, 298012)
HASH_C = (993254, 11794, 97192, 192402, 969021, 692034, 881846, 200607, 720978, 369537, 489015,
          3734, 617543, 830050, 663691, 154461, 533803, 267600, 964898, 880334, 186232, 509792,
          939754, 847152, 707924, 639719, 42114, 741773, 473514, 91495, 244485, 541145)


def hashed_sql() -> str:
    """The hashed source's 32 inputs as Flink SQL expressions of ``id`` (BIGINT throughout)."""
    m = f"CAST({HASH_MODULUS} AS BIGINT)"
    return ", ".join(
        f"CAST(MOD(MOD(id * id, {m}) * CAST({q} AS BIGINT) + id * CAST({p} AS BIGINT) + CAST({c} AS BIGINT), {m})"
        f" AS DOUBLE) / {HASH_SCALE:.1f}E0 - 3.0E0 AS {name}"
        for name, q, p, c in zip(FEATURE_NAMES, HASH_Q, HASH_P, HASH_C, strict=True)
    )


def hashed_inputs(ids: np.ndarray) -> np.ndarray:
    """The hashed source's inputs of ``ids`` (int64), computed as :func:`hashed_sql` does."""
    ids = ids.astype(np.int64)[:, None]
    v = ((ids * ids) % HASH_MODULUS * np.array(HASH_Q) + ids * np.array(HASH_P) + np.array(HASH_C)) % HASH_MODULUS
    return v.astype(np.float64) / HASH_SCALE - 3.0


@functools.cache
def java_classpath() -> str:
    """Compile connectors/flink's tests and return their classpath (Maven resolves it; once a run)."""
    out = BENCH_DIR / "flink-classpath.txt"
    subprocess.run(
        ["mvn", "-B", "-q", "test-compile", "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:build-classpath",
         "-Dstreamml.skipFixtures=true",
         "-Dmdep.includeScope=test", f"-Dmdep.outputFile={out}"],
        cwd=CONNECTOR, check=True,
    )
    return os.pathsep.join([str(CONNECTOR / "target" / "classes"), str(CONNECTOR / "target" / "test-classes"),
                            out.read_text().strip()])


#: Per source, per case: (rows, seconds) of each run on generated rows.
Generated = dict[str, dict[str, list[tuple[int, float]]]]
#: Per source, per case: the JVM's CPU seconds (every thread) of each run on generated rows.
Cpu = dict[str, dict[str, list[float]]]


def run_java(model: Path, rows_file: Path, runs: int, generated: int,
             props: tuple[str, ...] = ()) -> tuple[dict[str, list[float]], Generated, Cpu]:
    """Seconds per case and run from FlinkR1Bench, and its runs on generated rows (time and CPU).

    ``props`` are FlinkR1Bench's ``-Dbench.*`` switches (e.g. the cases to run).
    """
    cmd = ["java", *JVM_OPENS, *props, "-cp", java_classpath(), "dev.streamml.flink.bench.FlinkR1Bench",
           str(model), str(rows_file), str(runs), str(generated), hashed_sql()]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    seconds: dict[str, list[float]] = {}
    gen: Generated = {}
    cpu: Cpu = {}
    sample = []
    for line in done.stdout.splitlines():
        cells = line.split("\t")
        if len(cells) == 2:
            seconds.setdefault(cells[0], []).append(float(cells[1]))
        elif len(cells) == 5 and cells[0] == "generated":
            gen.setdefault(cells[1], {}).setdefault(cells[2], []).append((int(cells[3]), float(cells[4])))
        elif len(cells) == 5 and cells[0] == "cpu":
            cpu.setdefault(cells[1], {}).setdefault(cells[2], []).append(float(cells[4]))
        elif cells[0] == "sample":
            sample.append([float(cells[1]), *(float.fromhex(c) for c in cells[2:])])
    check_hashed(np.array(sample), generated)
    return seconds, gen, cpu


def check_hashed(sample: np.ndarray, generated: int) -> None:
    """Raise unless Flink's rows of the hashed view (id, x0..x31) equal :func:`hashed_inputs`'s."""
    if generated <= 0:
        return
    if len(sample) == 0:
        msg = "FlinkR1Bench printed no rows of the hashed source; expected its first and last 100"
        raise RuntimeError(msg)
    ids = sample[:, 0].astype(np.int64)
    wrong = np.flatnonzero((sample[:, 1:] != hashed_inputs(ids)).any(axis=1))
    if len(wrong):
        msg = (f"the hashed source's inputs differ between Flink SQL and numpy for {len(wrong)} of "
               f"{len(ids)} rows (first id {ids[wrong[0]]}); hashed_sql and hashed_inputs must compute the same")
        raise RuntimeError(msg)


def run_pyflink(model_txt: Path, rows_file: Path, runs: int, generated: int) -> tuple[list[float], Generated] | str:
    """Seconds per run of the Pandas UDF and its runs on generated rows, or why it could not run."""
    if not PYFLINK_PYTHON.is_file():
        return f"{PYFLINK_PYTHON} missing (make bench creates it)"
    script = Path(__file__).resolve().parent / "flink_r1_pyflink.py"
    done = subprocess.run(
        [str(PYFLINK_PYTHON), str(script), str(model_txt), str(rows_file), str(runs), str(generated), hashed_sql()],
        capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        return f"failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"
    seconds = []
    gen: Generated = {}
    for line in done.stdout.splitlines():
        cells = line.split()
        if len(cells) == 1:
            seconds.append(float(cells[0]))
        elif len(cells) == 4 and cells[0] == "generated":
            gen.setdefault(cells[1], {}).setdefault(PANDAS, []).append((int(cells[2]), float(cells[3])))
    return seconds, gen


def time_predict(model: Model, x: np.ndarray, runs: int) -> list[tuple[float, float]]:
    """Seconds and CPU seconds of each of ``runs`` ``Model.predict`` calls on all of ``x`` (one RecordBatch)."""
    batch = pa.record_batch([pa.array(x[:, i]) for i in range(x.shape[1])], names=list(FEATURE_NAMES))
    seconds = []
    for _ in range(runs):
        start, cpu = time.perf_counter(), time.process_time()
        model.predict(batch)
        seconds.append((time.perf_counter() - start, time.process_time() - cpu))
    return seconds


def generated_table(gen: dict[str, list[tuple[int, float]]], cpu: dict[str, list[float]] | None = None,
                    r1_row: float | None = None) -> str:
    """The table of one source's runs on generated rows: median rows/s per case, and the ratios.

    "rows/s over the pipe" takes the pipe's time (the same source, job and sink without the
    model: the SQL pipe for the SQL cases, the DataStream pipe for the DataStream operator) out
    of the case's, per row: what the model costs inside Flink. With ``cpu`` (the JVM's CPU seconds
    of each run) and ``r1_row`` (R1's CPU seconds a row) the table adds each case's CPU and cores
    busy, and :func:`ceiling_lines`.
    """
    rate = {case: statistics.median(n / s for n, s in runs) for case, runs in gen.items() if runs}
    pipes = {case: DATASTREAM_PIPE if case == DATASTREAM else PIPE for case in (*JAVA_MODEL_CASES, DATASTREAM)}
    table = []
    for case, r in rate.items():
        vs_pandas = f"{r / rate[PANDAS]:.1f}x" if PANDAS in rate else "-"
        rows = statistics.median(n for n, _ in gen[case])
        over = "-"
        if pipes.get(case) in rate:
            extra = 1 / r - 1 / rate[pipes[case]]  # seconds per row the model adds
            over = f"{1 / extra:,.0f}" if extra > 0 else "-"
        row = (case, f"{rows:,.0f}", f"{r:,.0f}", vs_pandas, f"{r / rate[PREDICT]:.3f}x", over)
        if cpu is not None:
            busy = [c / s for c, (_, s) in zip(cpu.get(case, []), gen[case], strict=False)]
            row += (f"{statistics.median(cpu[case]):.2f}", f"{statistics.median(busy):.2f}") if busy else ("-", "-")
        table.append(row)
    header = ("case", "rows", "rows/s per slot", "vs Pandas UDF", "vs Model.predict", "rows/s over the pipe")
    if cpu is not None:
        header += ("JVM CPU s", "cores busy")
    lines = [plain_table([header, *table])]
    if PANDAS in rate:
        ok = rate[BATCHED] >= 10 * rate[PANDAS]
        lines.append(f"target batching >= 10x Pandas UDF: {'met' if ok else 'not met'} "
                     f"({rate[BATCHED] / rate[PANDAS]:.1f}x)")
    ok = rate[BATCHED] * 2 >= rate[PREDICT]
    lines.append(f"target batching within 2x of Model.predict: {'met' if ok else 'not met'} "
                 f"({rate[PREDICT] / rate[BATCHED]:.2f}x slower)")
    lines.extend(same_run_lines(gen))
    ceilings = ceiling_lines(gen, cpu, r1_row) if cpu is not None and r1_row is not None else {}
    if ASYNC_PIPE in rate:
        # Flink runs an async function in its own task, fed over a serialising channel; the
        # no-op's rate is what any AsyncScalarFunction reaches here, before it does any work.
        vs = f"{rate[ASYNC_PIPE] / rate[PANDAS]:.1f}x the Pandas UDF, " if PANDAS in rate else ""
        lines.append(f"ceiling of an AsyncScalarFunction (the no-op): {vs}{rate[ASYNC_PIPE] / rate[PREDICT]:.3f}x "
                     f"Model.predict; batching runs at {rate[BATCHED] / rate[ASYNC_PIPE]:.2f}x of it")
        ratio = rate[BATCHED] / rate[ASYNC_PIPE]
        lines.append(f"target batching >= 0.9x the async no-op: {verdict(ratio, ceilings.get(BATCHED))}")
    if DATASTREAM in rate and DATASTREAM_PIPE in rate:
        ratio = rate[DATASTREAM] / rate[DATASTREAM_PIPE]
        ceiling = ceilings.get(DATASTREAM)
        lines.append(f"target DataStream operator >= 0.9x its no-model pipe: {verdict(ratio, ceiling)}")
    lines.extend(line for _, line in ceilings.values())
    lines.extend(per_row_lines(rate))
    return "\n".join(lines)


def verdict(ratio: float, ceiling: tuple[float, str] | None) -> str:
    """Met or not met, and whether 0.9x is above the ceiling measured in the same run."""
    out = f"{'met' if ratio >= 0.9 else 'not met'} ({ratio:.2f}x)"
    if ceiling is not None and ratio < 0.9:
        out += f"; this machine's ceiling for it {ceiling[0]:.2f}x" + (", below the target" if ceiling[0] < 0.9 else "")
    return out


#: The cores this process may run on: what the ceilings spread a job's CPU over.
CORES = len(os.sched_getaffinity(0))


def cpu_ceiling(peer_wall: float, peer_cpu: float, r1_cpu: float) -> float:
    """The highest ratio to its peer the cores allow a case that does the peer's work and R1's."""
    return min(1.0, CORES * peer_wall / (peer_cpu + r1_cpu))


def ceiling_lines(gen: dict[str, list[tuple[int, float]]], cpu: dict[str, list[float]],
                  r1_row: float) -> dict[str, tuple[float, str]]:
    """Per scoring case, the highest ratio to its peer that the machine's cores allow, run by run.

    A case runs its peer's job (the same source, operators and sink) and evaluates R1 on every
    row, so it needs at least the peer's CPU plus R1's own (``r1_row``: Model.predict's CPU on
    one thread, the least of its runs, per row), and it cannot finish before that CPU spread over
    every core: ratio <= cores * peer's wall / (peer's CPU + R1's CPU). (The no-op's sum of 32
    inputs, which the batching job does not do, is ~0.01 us a row.) While the peer leaves cores
    idle (a short job is mostly start-up on one thread) the bound is above 1 and says nothing; on
    a long job, where the peer keeps the cores busy, it is the ceiling.
    """
    out = {}
    for case, peer in RATIO_PAIRS:
        if not all(c in gen and c in cpu for c in (case, peer)):
            continue
        bounds = [cpu_ceiling(s, c, r1_row * n) for (n, s), c in zip(gen[peer], cpu[peer], strict=False)]
        ratios = [(n / s) / (pn / ps) for (n, s), (pn, ps) in zip(gen[case], gen[peer], strict=False)]
        got = statistics.median(ratios) / statistics.median(bounds)
        out[case] = (statistics.median(bounds), (
            f"{CORES}-core CPU ceiling of {case} / {peer} (the peer's CPU + R1's "
            f"{r1_row * 1e6:.2f} us a row, over {CORES} cores): run by run "
            + " ".join(f"{b:.2f}x" for b in bounds)
            + "; measured " + " ".join(f"{r:.2f}x" for r in ratios) + f" ({got:.0%} of the ceiling)"))
    return out


def marginal_lines(short: tuple[dict[str, list[tuple[int, float]]], dict[str, list[float]]],
                   long: tuple[dict[str, list[tuple[int, float]]], dict[str, list[float]]],
                   r1_row: float) -> list[str]:
    """Per pair, the rate a running job keeps and its ceiling, free of every job's fixed costs.

    ``short`` and ``long`` are (runs, JVM CPU) of the same cases on two job lengths in one run.
    The difference of their median times and CPU over the difference of their rows is what one more
    row costs once a job runs: start-up, planning and the JIT's compiling of each job's generated
    classes, the same at any length, cancel out. The ceiling is :func:`ceiling_lines`' bound on
    those per-row figures: cores * the peer's wall a row / (the peer's CPU a row + R1's). On the
    shorter jobs (n rows, the peer's time T) the case needs at least n * (that CPU a row / cores -
    the peer's wall a row) longer than the peer, as its fixed costs are no smaller (the same job,
    and the model to load): a ceiling of T / (T + that) for them.
    """
    (short_gen, short_cpu), (long_gen, long_cpu) = short, long

    def per_row(case: str) -> tuple[float, float]:
        (n0, t0), (n1, t1) = ((statistics.median(n for n, _ in g[case]), statistics.median(t for _, t in g[case]))
                              for g in (short_gen, long_gen))
        c0, c1 = statistics.median(short_cpu[case]), statistics.median(long_cpu[case])
        return (t1 - t0) / (n1 - n0), (c1 - c0) / (n1 - n0)

    lines = []
    for case, peer in RATIO_PAIRS:
        if not all(c in g for c in (case, peer) for g in (short_gen, long_gen, short_cpu, long_cpu)):
            continue
        (wall, used), (peer_wall, peer_cpu) = per_row(case), per_row(peer)
        ceiling = cpu_ceiling(peer_wall, peer_cpu, r1_row)
        n, t = statistics.median(n for n, _ in short_gen[peer]), statistics.median(t for _, t in short_gen[peer])
        short_ceiling = t / (t + n * max(0.0, (peer_cpu + r1_row) / CORES - peer_wall))
        lines.append(
            f"one more row once the job runs (medians, these rows against the shorter table's): {case} "
            f"{wall * 1e6:.2f} us ({used / wall:.2f} cores busy), {peer} {peer_wall * 1e6:.2f} us "
            f"({peer_cpu / peer_wall:.2f} cores busy): {peer_wall / wall:.2f}x; "
            f"{CORES}-core ceiling {ceiling:.2f}x ({peer_cpu * 1e6:.2f} + {r1_row * 1e6:.2f} us of CPU a row)"
            f"{', below 0.9x' if ceiling < 0.9 else ''}; on the shorter table's {n:,.0f}-row jobs "
            f"{short_ceiling:.2f}x{', below 0.9x' if short_ceiling < 0.9 else ''}")
    return lines


def same_run_lines(gen: dict[str, list[tuple[int, float]]]) -> list[str]:
    """Each run's rows/s of the cases with a target, and their ratios to their peer of the same run."""
    rates = {case: [n / s for n, s in runs] for case, runs in gen.items()}
    lines = []
    for case, peer in (*RATIO_PAIRS, (PER_ROW, None), (SYNC_PREDICT, None)):
        if case not in rates:
            continue
        runs = "  ".join(f"{r:,.0f}" for r in rates[case])
        line = f"runs of {case}: {runs} rows/s"
        if peer in rates:
            peers = "  ".join(f"{r:,.0f}" for r in rates[peer])
            ratios = " ".join(f"{r / p:.2f}x" for r, p in zip(rates[case], rates[peer], strict=False))
            line += f"; {peer}: {peers}; run by run {ratios}"
        lines.append(line)
    return lines


def per_row_lines(rate: dict[str, float]) -> list[str]:
    """The per-row cases (the core's one-row path) against their target and the async no-op."""
    lines = []
    for case in (PER_ROW, SYNC_PREDICT):
        if case not in rate:
            continue
        ok = rate[case] >= PER_ROW_TARGET
        vs = f", {rate[case] / rate[ASYNC_PIPE]:.2f}x the async no-op" if ASYNC_PIPE in rate else ""
        lines.append(f"target {case} >= {PER_ROW_TARGET:,} rows/s per slot: {'met' if ok else 'not met'} "
                     f"({rate[case]:,.0f}{vs})")
    return lines


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
    parser.add_argument("--generated", type=int, default=500_000,
                        help="rows for the tables on rows generated in the job, datagen's and hashed (0: skip them)")
    parser.add_argument("--steady", type=int, default=5_000_000,
                        help="rows for the steady-state tables of the async and DataStream pairs (0: skip them)")
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
    predict_seconds = [wall for wall, _ in time_predict(model, x, args.runs)]

    seconds, gen, cpu = run_java(Path(model_path), rows_file, args.runs, args.generated)
    pandas = run_pyflink(Path(trained.path), rows_file, args.runs, args.generated)
    if not isinstance(pandas, str):
        seconds[PANDAS] = pandas[0]
        for source, cases in pandas[1].items():
            gen.setdefault(source, {}).update(cases)
    seconds[PREDICT] = predict_seconds
    # Model.predict on each source's rows (the same rows as Flink's): the peer of the tables on
    # generated rows, and R1's own CPU a row in their ceilings.
    r1_rows = args.generated or STEADY_PREDICT_ROWS
    r1 = predict_on_sources(model, r1_rows, args.runs)
    r1_row = {source: min(c for _, c in runs) / r1_rows for source, runs in r1.items()}
    r1_table = {source: [(r1_rows, wall) for wall, _ in runs] for source, runs in r1.items()}
    if args.generated > 0:
        for source, runs in r1_table.items():
            gen.setdefault(source, {})[PREDICT] = runs

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
    if isinstance(pandas, str):
        print(f"PyFlink Pandas UDF not measured: {pandas}")
    if PANDAS in rate:
        ok = rate[BATCHED] >= 10 * rate[PANDAS]
        print(f"target batching >= 10x Pandas UDF: {'met' if ok else 'not met'} ({rate[BATCHED] / rate[PANDAS]:.1f}x)")
    ok = rate[BATCHED] * 2 >= rate[PREDICT]
    print(f"target batching within 2x of Model.predict: {'met' if ok else 'not met'} "
          f"({rate[PREDICT] / rate[BATCHED]:.1f}x slower)")
    for line in per_row_lines(rate):
        print(line)
    for source, about in SOURCES.items() if args.generated > 0 else ():
        print(f"\nthe same cases on {args.generated:,} rows generated inside the job, source '{source}': {about}; "
              f"median of {args.runs} runs:")
        print(generated_table(gen[source], cpu.get(source), r1_row[source]))
    if args.steady > 0:
        # The pairs with a ratio target again, on jobs long enough that start-up (~0.9 s, the
        # same in both jobs of a pair) no longer makes up much of them: the rate a running job keeps.
        _, steady, steady_cpu = run_java(Path(model_path), rows_file, args.runs, args.steady, STEADY_PROPS)
        for source, about in SOURCES.items():
            steady[source][PREDICT] = r1_table[source]
            print(f"\nsteady state: the async and DataStream pairs on {args.steady:,} rows generated inside the job, "
                  f"source '{source}': {about}; median of {args.runs} runs:")
            print(generated_table(steady[source], steady_cpu[source], r1_row[source]))
            if args.generated > 0 and args.generated < args.steady:
                for line in marginal_lines((gen[source], cpu[source]), (steady[source], steady_cpu[source]),
                                           r1_row[source]):
                    print(line)



def predict_on_sources(model: Model, n: int, runs: int) -> dict[str, list[tuple[float, float]]]:
    """Seconds and CPU seconds of each ``Model.predict`` run on the first ``n`` rows of each generated source."""
    uniform = np.random.default_rng(SCORE_SEED).uniform(-3, 3, (n, len(FEATURE_NAMES)))
    hashed = hashed_inputs(np.arange(n))
    return {"datagen": time_predict(model, uniform, runs), "hashed": time_predict(model, hashed, runs)}


if __name__ == "__main__":
    main()
