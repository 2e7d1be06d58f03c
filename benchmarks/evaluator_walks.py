"""The evaluator's tree walks side by side on R1, through ``streamml.Model``, beside lleaves.

One process, one R1 model binary loaded once per walk (``STREAMML_EVALUATOR_WALK`` is read when
the binary initialises; only an evaluator built with the cargo feature ``bench-switches`` reads it,
so this builds one into build/bench and compiles the model with it: shipped evaluators ignore it),
calls interleaved round by round on the same 100,000 scoring rows: on a shared machine single runs
vary by ±20%, so only such same-process, interleaved comparisons tell walks apart. Prints min and
median rows/s per case and each case's ratio to the first walk.

Run: ``python benchmarks/evaluator_walks.py [--rounds 15] [--walks lockstep,refill] [--trees 300]``
(after ``make .venv/.bench-deps``; the model and the lleaves library come from build/bench when
``benchmarks/compile_r1.py`` left them there, else they are trained and compiled first: lleaves
takes more than 10 minutes for the 2,000-tree model).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import lightgbm

from harness import limit_threads
from r1_models import (
    BENCH_DIR,
    LLEAVES,
    LLEAVES_OPTIONS,
    Peers,
    build_lleaves,
    compile_streamml,
    lleaves_run,
    record_batch,
    streamml_run,
    train_lightgbm,
)
from streamml import Model
from streamml.testing import LIBRARY_SUFFIX
from streamml_dev.repo import REPO_ROOT
from streamml_dev.workloads import SCORE_SEED, r1_data


def switchable_evaluator() -> str:
    """The evaluator built with ``--features bench-switches``, copied into build/bench.

    The shipped one (``make models``) is rebuilt right after, so cargo's output is left as it was.
    """
    target = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "streamml" / "cargo-target"))
    cmd = ["cargo", "build", "--release", "--quiet", "-p", "streamml-evaluator"]
    cmd += ["--manifest-path", str(REPO_ROOT / "operators" / "Cargo.toml")]
    subprocess.run([*cmd, "--features", "bench-switches"], check=True)
    out = BENCH_DIR / f"libstreamml_evaluator_bench_switches{LIBRARY_SUFFIX}"
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(target / "release" / f"libstreamml_evaluator{LIBRARY_SUFFIX}", out)
    subprocess.run(cmd, check=True)
    return str(out)


def main(argv: Sequence[str] | None = None) -> None:
    """Time each walk and lleaves on R1, interleaved, and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--walks", default="lockstep,refill", help="STREAMML_EVALUATOR_WALK values")
    parser.add_argument("--trees", type=int, default=300, help="300 (R1) or 2000")
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args(argv)
    trained = train_lightgbm(args.trees, 100_000 if args.trees == 300 else 20_000, retrain=False)
    os.environ["STREAMML_EVALUATOR"] = switchable_evaluator()
    model, _ = compile_streamml(lightgbm.Booster(model_file=str(trained.path)), f"walks_{args.trees}", "R1")
    os.environ.pop("STREAMML_EVALUATOR")
    x, _ = r1_data(args.rows, SCORE_SEED)
    batch = record_batch(x)
    cases = {}
    for walk in args.walks.split(","):
        # A copy per walk: each load initialises its own evaluator from its own file.
        path = BENCH_DIR / f"streamml_walks_{args.trees}_{walk}.so"
        shutil.copyfile(model.path, path)
        os.environ["STREAMML_EVALUATOR_WALK"] = walk
        cases[f"streamml, {walk} walk"] = (streamml_run, (Model.load(path), batch))
    os.environ.pop("STREAMML_EVALUATOR_WALK")
    results = {name: fn(*a).column("probability").to_numpy() for name, (fn, a) in cases.items()}
    first = next(iter(results.values()))
    for name, probability in results.items():
        if probability.tobytes() != first.tobytes():
            raise SystemExit(f"{name} differs from the first walk; the walks must give the same bits")
    built = Peers().attempt(LLEAVES, build_lleaves, trained.path, LLEAVES_OPTIONS[LLEAVES], False)
    if built is not None:
        cases[LLEAVES] = (lleaves_run, (built.predictor, x))
    names = list(cases)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    with limit_threads():
        for r in range(args.rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                fn, a = cases[name]
                t0 = time.perf_counter()
                fn(*a)
                seconds[name].append(time.perf_counter() - t0)
    print(f"R1 ({args.trees} trees), {args.rows:,} rows, 1 thread, {args.rounds} interleaved rounds; rows/s")
    ref = args.rows / statistics.median(seconds[names[0]])
    width = max(len(name) for name in names)
    print(f"{'case':<{width}}  {'best':>10}  {'median':>10}  median / first walk")
    for name in names:
        best, median = args.rows / min(seconds[name]), args.rows / statistics.median(seconds[name])
        print(f"{name:<{width}}  {best / 1e3:>8.1f} k  {median / 1e3:>8.1f} k  {median / ref:.3f}x")


if __name__ == "__main__":
    main()
