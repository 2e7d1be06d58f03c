"""Model references in a one-worker Bytewax flow: what the lifecycle costs when nothing changes.

Cases, measured in the same run (rounds in rotated order, median per case; events per CPU second of
the process, since wall time on the shared 2-core machine swings by 3x between rounds):

* ``predict`` with a fixed path vs the same binary as a model directory reference (re-resolved
  every 30 s by the slot's thread: no swap happens during the run) — the issue asks for the
  reference to be within 1 %;
* the same reference with ``version_field=None``: the slot's check alone, without writing the
  version into every output;
* ``op.map(predict_op)`` likewise (each item asks the slot, so this is the worst case);
* ``predict`` with the reference and one challenger of the same size (shadow) vs champion-only —
  the issue asks for at most 2.1x the champion-only cost.

The model is S1 (the hand-written logistic binary of ``make models``: a few ns of compute per row,
so the per-batch and per-item costs of the lifecycle are as visible as they can be) or, with
``--r1``, R1 (300 trees).

Run: ``.venv/bin/python benchmarks/lifecycle_bytewax.py [--quick] [--r1]``.
"""

from __future__ import annotations

# ruff: noqa: E402  (the thread limits below must be set before numpy is imported)
import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import argparse
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bytewax_r1 import rounds
from harness import base_machine_info, format_value
from streamml.bytewax import predict, predict_op
from streamml.lifecycle import set_alias
from streamml_dev.repo import example_model
from streamml_dev.workloads import r1_record_batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer events per case")
    parser.add_argument("--r1", action="store_true", help="R1 (300 trees) instead of S1")
    parser.add_argument("--rounds", type=int, default=5, help="runs of every case (median reported)")
    args = parser.parse_args()
    scale = 0.2 if args.quick else 1.0
    if args.r1:
        import lightgbm

        from r1_models import R1_ROWS, R1_TREES, compile_streamml, train_lightgbm

        booster = lightgbm.Booster(model_file=str(train_lightgbm(R1_TREES, R1_ROWS, retrain=False).path))
        binary = Path(compile_streamml(booster, "r1_lifecycle", "R1 (LightGBM)")[0].path)
    else:
        binary = example_model("s1_logistic")
    events = r1_record_batch(50_000).to_pylist()

    def take(n: int) -> list[dict]:
        n = max(int(n * scale), 200)
        return (events * (n // len(events) + 1))[:n]

    work = Path(tempfile.mkdtemp(prefix="streamml-lifecycle-bench-"))
    try:
        models = work / "model"
        models.mkdir()
        shutil.copyfile(binary, models / "1.so")
        shutil.copyfile(binary, models / "2.so")
        set_alias(models, "champion", "1")
        set_alias(models, "challenger", "2")
        ref, every = str(models), timedelta(seconds=30)
        fixed_op = predict_op(binary)
        ref_op = predict_op(ref, reload_interval=every)
        many, few = take(400_000), take(100_000)
        cases: list[tuple[str, list[dict], Any]] = [
            ("predict, fixed path", many, lambda up: predict("s", up, binary).oks),
            ("predict, model directory reference", many, lambda up: predict("s", up, ref, reload_interval=every).oks),
            (
                "predict, reference, no version field",
                many,
                lambda up: predict("s", up, ref, reload_interval=every, version_field=None).oks,
            ),
            ("op.map(predict_op), fixed path", few, lambda up: op.map("s", up, fixed_op)),
            ("op.map(predict_op), reference", few, lambda up: op.map("s", up, ref_op)),
            (
                "predict, reference + 1 challenger (shadow)",
                many,
                lambda up: predict("s", up, ref, reload_interval=every, challengers=[f"{ref}@challenger"]).oks,
            ),
        ]
        measured = rounds(cases, args.rounds, clock=time.process_time)  # CPU time: the machine is shared
    finally:
        shutil.rmtree(work)
    rate = {name: r for name, r, _, _ in measured}
    print(f"{'R1' if args.r1 else 'S1'} in a 1-worker Bytewax flow (TestingSource batch_size=1000, counting sink)")
    print(f"machine: {base_machine_info()}")
    w = max(len(n) for n, *_ in measured)
    print(f"{'case':<{w}}  {'events':>9}  {'events/CPU s':>12}")
    for name, r, n, _ in measured:
        print(f"{name:<{w}}  {n:>9,}  {format_value(r):>12}")
    fixed, by_ref = rate["predict, fixed path"], rate["predict, model directory reference"]
    print(f"reference / fixed (predict): {by_ref / fixed:.3f}")
    bare = rate["predict, reference, no version field"]
    print(f"reference without the version field / fixed (predict): {bare / fixed:.3f}")
    op_ratio = rate["op.map(predict_op), reference"] / rate["op.map(predict_op), fixed path"]
    print(f"reference / fixed (predict_op): {op_ratio:.3f}")
    shadow = rate["predict, reference + 1 challenger (shadow)"]
    print(f"shadow cost / champion-only cost (predict): {by_ref / shadow:.2f}x")
    print(f"(median of {args.rounds} rounds; per round, events per CPU second:)")
    for name, _, _, rs in measured:
        print(f"  {name:<{w}}  " + "  ".join(format_value(r) for r in rs))


if __name__ == "__main__":
    main()
