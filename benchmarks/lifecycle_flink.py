"""Model references in the Flink DataStream step: what the lifecycle costs (issue 26).

Runs ``dev.streamml.flink.bench.FlinkLifecycleBench`` (connectors/flink's tests) on a local
MiniCluster, parallelism 1: a fixed binary's path, the same binary as the champion of a model
directory re-resolved every 100 ms (no swap happens), and the champion with one challenger of the
same size in shadow. The cases run interleaved and in rotated order in each run; it prints rows/s
and rows per CPU second of the process per run, then the medians and the medians of the per-run
ratios to the fixed path (the issue asks for the reference within 1 %, the shadow at most 2.1x the
champion-only cost).

The models are the lifecycle tests' versions (4-feature logistic models, compiled): a few ns of
compute per row, so the per-batch costs of the lifecycle are as visible as they can be.

With ``--sql``: Flink SQL's ``ML_PREDICT`` (async and sync), champion only against champion + 1
challenger with its ``shadow`` column UNNESTed into a second sink table (process CPU per row).

Run: ``.venv/bin/python benchmarks/lifecycle_flink.py [--rows N] [--runs K] [--sql]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

from flink_r1 import JVM_OPENS, java_classpath
from harness import base_machine_info
from streamml_dev.lifecycle import compile_versions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000, help="rows per job (default 5,000,000)")
    parser.add_argument("--runs", type=int, default=7, help="measured runs, after one warm-up (default 7)")
    parser.add_argument("--sql", action="store_true", help="ML_PREDICT champion only vs + 1 challenger, async and sync")
    args = parser.parse_args()
    info = base_machine_info()
    print(json.dumps({k: info[k] for k in sorted(info)}, default=str), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        compile_versions(Path(tmp), ["1", "2"])
        cmd = ["java", *JVM_OPENS, "-cp", java_classpath(), "dev.streamml.flink.bench.FlinkLifecycleBench",
               tmp, str(args.rows), str(args.runs), *(["sql"] if args.sql else [])]  # fmt: skip
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
