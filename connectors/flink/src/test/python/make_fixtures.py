"""Write the Java tests' fixtures: rows, models and Python's ``Model.predict`` on those rows.

Run by Maven (generate-test-resources) with the checkout's .venv. Writes to ``--out``:

- ``lgbm_small.so``: a small LightGBM model on the R1 features, compiled by ``streamml compile``;
- ``lgbm_cycle.so``: the same with a cycle in its first tree (a valid checksum), which must be refused;
- ``rows.tsv``: ``id``, ``x0..x31`` and each model's first output as Python computed it, every
  float64 written as the 16 hex digits of its IEEE-754 bits, so the Java side compares bit for bit;
- ``models.properties``: the model binaries' paths, by the column names of ``rows.tsv``;
- ``versions/<v>.so``: the lifecycle tests' model versions 1-4 (inputs x0..x3, output
  ``probability``; each trained on its own seed, so their scores differ).
"""

from __future__ import annotations

import argparse
import struct
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pyarrow as pa

from streamml import Model
from streamml.compile import compile as compile_model
from streamml.compile import to_ir, write_binary
from streamml_dev.lifecycle import compile_versions
from streamml_dev.workloads import FEATURE_NAMES, r1_data

N_ROWS = 500


def bits(value: float) -> str:
    """The IEEE-754 bits of a float64 as 16 hex digits."""
    return f"{struct.unpack('<Q', struct.pack('<d', value))[0]:016x}"


def main() -> None:
    """Train, compile, score and write the fixtures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=Path, required=True, help="build/models (make models)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    x_train, y_train = r1_data(5_000, seed=42)
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 15, "learning_rate": 0.1, "verbose": -1, "seed": 1},
        lgb.Dataset(x_train, y_train, feature_name=list(FEATURE_NAMES)),
        num_boost_round=40,
    )
    lgbm_path = compile_model(booster, args.out / "lgbm_small.so", name="lgbm_small", version="1")
    models = {"s1": args.models / "s1_logistic.so", "lgbm": Path(lgbm_path)}
    cycle = to_ir(booster)
    cycle["model"]["trees"][0]["left"][1] = 0  # node 1 leads back to the root
    write_binary(cycle, args.out / "lgbm_cycle.so")

    compile_versions(args.out / "versions", ["1", "2", "3", "4"])

    x, _ = r1_data(N_ROWS, seed=7)
    # Missing values (NaN) take the trees' default branches; they must match too.
    x[3, 0] = np.nan
    x[11, 5] = np.nan
    batch = pa.record_batch([pa.array(x[:, i]) for i in range(x.shape[1])], names=list(FEATURE_NAMES))
    expected = {}
    for name, path in models.items():
        out = Model.load(path).predict(batch)
        expected[name] = out.column(0).to_numpy(zero_copy_only=False)

    with (args.out / "rows.tsv").open("w") as f:
        f.write("\t".join(["id", *FEATURE_NAMES, *models]) + "\n")
        for i in range(N_ROWS):
            values = [bits(v) for v in x[i]] + [bits(float(expected[m][i])) for m in models]
            f.write("\t".join([str(i), *values]) + "\n")
    with (args.out / "models.properties").open("w") as f:
        for name, path in models.items():
            f.write(f"{name}={Path(path).resolve()}\n")


if __name__ == "__main__":
    main()
