"""The PyFlink peer of ``flink_r1.py``: a Pandas UDF calling LightGBM's own predict, per slot.

Runs in its own virtualenv (apache-flink pins numpy and pyarrow apart from streamml's; ``make
bench`` creates it from ``benchmarks/pyflink-constraints.txt``). Arguments: LIGHTGBM_MODEL_TXT
ROWS_FILE (float64 little-endian, row-major, 32 per row) RUNS [GENERATED [HASHED_INPUTS]]. Prints
``seconds`` per run; with GENERATED > 0 also ``generated SOURCE ROWS SECONDS`` per run on rows made
inside the job, as ``FlinkR1Bench`` makes them: source ``datagen``, Flink's datagen connector (a
sequence id, 32 doubles uniform in [-3, 3]), and, given HASHED_INPUTS, source ``hashed``, a datagen
sequence id under a view whose inputs are those SQL expressions of ``id``.
"""

from __future__ import annotations

import sys
import time

import lightgbm as lgb
import numpy as np
import pandas as pd
from pyflink.table import DataTypes, EnvironmentSettings, TableEnvironment
from pyflink.table.udf import udf

N_FEATURES = 32


def main() -> None:
    """Time INSERT INTO blackhole SELECT r1(x0..x31) FROM rows, RUNS times."""
    model_file, rows_file, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    generated = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    hashed = sys.argv[5] if len(sys.argv) > 5 else None
    x = np.fromfile(rows_file, dtype="<f8").reshape(-1, N_FEATURES)
    names = [f"x{i}" for i in range(N_FEATURES)]
    frame = pd.DataFrame(x, columns=names)
    frame.insert(0, "id", np.arange(len(frame), dtype=np.int64))
    booster = lgb.Booster(model_file=model_file)

    @udf(result_type=DataTypes.DOUBLE(), func_type="pandas")
    def r1(*columns: pd.Series) -> pd.Series:
        return pd.Series(booster.predict(np.column_stack(columns), num_threads=1))

    for _ in range(runs):
        env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
        env.get_config().set("parallelism.default", "1")
        env.get_config().set("python.fn-execution.arrow.batch.size", "10000")
        env.get_config().set("python.fn-execution.bundle.size", "10000")
        schema = DataTypes.ROW([DataTypes.FIELD("id", DataTypes.BIGINT())]
                               + [DataTypes.FIELD(n, DataTypes.DOUBLE()) for n in names])
        env.create_temporary_view("t", env.from_pandas(frame, schema))
        env.create_temporary_function("r1", r1)
        env.execute_sql("CREATE TABLE sink (id BIGINT, p DOUBLE) WITH ('connector' = 'blackhole')")
        start = time.perf_counter()
        env.execute_sql(f"INSERT INTO sink SELECT id, r1({', '.join(names)}) FROM t").wait()
        print(time.perf_counter() - start, flush=True)
        if generated > 0:
            env.execute_sql(datagen("datagen", generated, names))
            if hashed is not None:
                env.execute_sql(datagen("ids", generated, []))
                env.execute_sql(f"CREATE TEMPORARY VIEW hashed AS SELECT id, {hashed} FROM ids")
            for source in ("datagen", "hashed") if hashed is not None else ("datagen",):
                start = time.perf_counter()
                env.execute_sql(f"INSERT INTO sink SELECT id, r1({', '.join(names)}) FROM {source}").wait()
                print("generated", source, generated, time.perf_counter() - start, flush=True)


def datagen(name: str, rows: int, names: list[str]) -> str:
    """The DDL of a datagen table of ``rows`` rows: a sequence id and ``names`` uniform in [-3, 3]."""
    fields = "".join(f", '{f}' = '{v}'" for n in names for f, v in ((f"fields.{n}.min", -3), (f"fields.{n}.max", 3)))
    columns = "".join(f", {n} DOUBLE" for n in names)
    return (
        f"CREATE TEMPORARY TABLE {name} (id BIGINT{columns}) WITH ('connector' = 'datagen', "
        f"'rows-per-second' = '1000000000', 'fields.id.kind' = 'sequence', 'fields.id.start' = '0', "
        f"'fields.id.end' = '{rows - 1}'{fields})"
    )


if __name__ == "__main__":
    main()
