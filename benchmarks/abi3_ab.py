"""A/B of two builds of the extension (e.g. abi3 vs per-version) on one-row paths, in one run.

Each build is a directory holding a ``streamml`` package (its ``_streamml`` extension inside);
child processes alternate between them, ``--rounds`` times each, so a noisy neighbour hurts both
alike. Per round a child times, after a warm-up, on S1 (``build/models/s1_logistic.so``):
``Model.predict_numpy`` of one row, ``Model.predict`` of a 1-row ``RecordBatch`` and of a list of
one dict, and
``op.map(predict_op)`` in a Bytewax flow of 20,000 events. The table gives the median over rounds
of each child's median (ns per call; per event for the flow) and B / A.

Usage::

    python benchmarks/abi3_ab.py --a DIR_A --b DIR_B [--rounds 7]
"""

# ruff: noqa: E402  (the thread limits below must be set before numpy is imported)

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import argparse
import json
import statistics
import subprocess
import sys
import time

CALLS = 20_000
EVENTS = 20_000


def child() -> None:
    import bytewax.operators as op
    import numpy as np
    import pyarrow as pa
    from bytewax.dataflow import Dataflow
    from bytewax.testing import TestingSink, TestingSource, run_main

    import streamml
    from streamml import Model
    from streamml.bytewax import predict_op
    from streamml_dev.repo import example_model

    model = Model.load(example_model("s1_logistic"))
    x = np.random.default_rng(1).normal(size=32)
    batch = pa.record_batch({f"x{i}": [x[i]] for i in range(32)})

    def per_call(fn, *args) -> float:
        for _ in range(2000):
            fn(*args)
        blocks = []
        for _ in range(CALLS // 100):
            t0 = time.perf_counter_ns()
            for _ in range(100):
                fn(*args)
            blocks.append((time.perf_counter_ns() - t0) / 100)
        return statistics.median(blocks)

    events = [{f"x{i}": float(v) for i, v in enumerate(x)} for _ in range(EVENTS)]
    out: list = []
    flow = Dataflow("ab")
    source = op.input("in", flow, TestingSource(events, batch_size=1000))
    op.output("out", op.map("score", source, predict_op(model)), TestingSink(out))
    t0 = time.perf_counter_ns()
    run_main(flow)
    flow_ns = (time.perf_counter_ns() - t0) / EVENTS
    assert len(out) == EVENTS
    print(json.dumps({
        "module": streamml._streamml.__file__,
        "predict_numpy(1 row)": per_call(model.predict_numpy, x),
        "predict(1-row RecordBatch)": per_call(model.predict, batch),
        "predict([dict])": per_call(model.predict, events[:1]),
        "bytewax op.map(predict_op) per event": flow_ns,
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", required=True, help="directory holding build A's streamml package")
    parser.add_argument("--b", required=True, help="directory holding build B's streamml package")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    results: dict[str, list[dict]] = {"A": [], "B": []}
    for _ in range(args.rounds):
        for name, path in (("A", args.a), ("B", args.b)):
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([path, os.environ.get("PYTHONPATH", "")])}
            cmd = [sys.executable, __file__, "--child"]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            results[name].append(json.loads(done.stdout.splitlines()[-1]))
    print(f"A: {results['A'][0]['module']}\nB: {results['B'][0]['module']}")
    print(f"{'case':<40} {'A ns':>10} {'B ns':>10} {'B / A':>8}")
    for case in [k for k in results["A"][0] if k != "module"]:
        a = statistics.median(r[case] for r in results["A"])
        b = statistics.median(r[case] for r in results["B"])
        print(f"{case:<40} {a:>10.0f} {b:>10.0f} {b / a:>8.3f}")


if __name__ == "__main__":
    child() if sys.argv[1:] == ["--child"] else main()
