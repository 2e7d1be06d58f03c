"""``Model.load`` time of R1 (300 trees, ``num_leaves=63``), A/B against another build of streamml.

Usage::

    .venv/bin/python benchmarks/load_time.py --peer /path/to/other/checkout/python [--loads 20]

``--peer`` is the ``python/`` directory of another streamml checkout whose extension
(``streamml/_streamml*.so``) and evaluator (``streamml/_evaluator/``) are built in place. Each side
compiles R1 with its own ``streamml compile`` and evaluator, then loads its binary ``--loads`` times
in a fresh process (after one warm-up load, so the private copy exists); the sides alternate for
``--rounds`` rounds, in one run, on the same machine. Prints the median, minimum and 90th
percentile per side, in milliseconds, of wall time and of the process's CPU time (less disturbed
by other processes on a busy machine).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from r1_models import BENCH_DIR, R1_ROWS, R1_TREES, train_lightgbm  # noqa: E402

COMPILE = """
import sys
from streamml.compile import compile
compile(sys.argv[1], sys.argv[2], name="r1", version="1")
"""

LOAD = """
import json, sys, time
from streamml import Model
Model.load(sys.argv[1])  # warm-up: writes the private copy, opens the library
times = []
for _ in range(int(sys.argv[2])):
    t0, c0 = time.perf_counter(), time.process_time()
    Model.load(sys.argv[1])
    times.append(((time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000))
print(json.dumps(times))
"""


def run(code: str, pythonpath: str, cache: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": pythonpath, "STREAMML_CACHE_DIR": cache}
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=True)
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer", required=True, help="the python/ directory of the other build")
    parser.add_argument("--loads", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    trained = train_lightgbm(R1_TREES, R1_ROWS, retrain=False)
    sides = {"this checkout": str(HERE.parent / "python"), "peer": str(Path(args.peer).resolve())}
    times: dict[str, list[list[float]]] = {side: [] for side in sides}
    with tempfile.TemporaryDirectory() as tmp:
        binaries = {}
        for i, (side, path) in enumerate(sides.items()):
            binaries[side] = str(BENCH_DIR / f"load_time_r1_{i}.so")
            run(COMPILE, path, f"{tmp}/{i}", str(trained.path), binaries[side])
        for _ in range(args.rounds):
            for i, (side, path) in enumerate(sides.items()):
                times[side] += json.loads(run(LOAD, path, f"{tmp}/{i}", binaries[side], str(args.loads)))
    for side, pairs in times.items():
        size = Path(binaries[side]).stat().st_size
        for k, what in enumerate(("wall", "cpu")):
            ms = sorted(p[k] for p in pairs)
            p90 = ms[int(0.9 * (len(ms) - 1))]
            print(
                f"{side:<14} {what:<4} Model.load of R1 ({size} bytes), {len(ms)} loads: "
                f"median {statistics.median(ms):.2f} ms, min {ms[0]:.2f} ms, p90 {p90:.2f} ms"
            )


if __name__ == "__main__":
    main()
