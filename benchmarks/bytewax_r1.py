"""R1 in a one-worker Bytewax flow: events/s for streamml and its peers, measured in the same run.

Cases (each a flow ``TestingSource(events, batch_size=1000)`` -> step -> a sink
that counts the items and drops them, as a sink that writes them out does; an
event is a dict of R1's 32 float features, the output the dict with the model's
outputs added):

* ``op.map`` calling LightGBM per event (the plain way);
* ``op.flat_map_batch`` calling LightGBM per Bytewax batch (numpy built from the dicts);
* ``op.map(predict_op(model))``;
* ``op.map(predict_op)`` with S1 (the hand-written logistic binary of
  ``make models``, a few ns of compute on the same 32 inputs): the cost of the
  binding and the flow alone, so R1's ``predict_op`` minus it is R1's own
  one-row evaluation;
* ``streamml.bytewax.predict`` (one native call per Bytewax batch);
* a no-op ``op.map`` (the ceiling).

The cases run in rounds (``--rounds``, each round every case in a rotated
order) and the table gives each case's median over the rounds: on a shared,
noisy machine a burst then slows one round of every case, not every round of
one case. Bytewax's ``TestingSink`` (which keeps every output in a list) is not
used for throughput: the garbage collector's walks of that growing list cost
the cases that make new items, which a sink writing them out does not.

Then the latency ``predict(max_batch_rows=512, max_wait=5ms)`` adds per event
in a flow fed at a steady 1,000 events/s (p50/p99 of sink time minus emit
time, against the same flow with a no-op step).

Run: ``make bench`` or ``.venv/bin/python benchmarks/bytewax_r1.py [--quick]``.
"""

from __future__ import annotations

# ruff: noqa: E402  (the thread limits below must be set before numpy is imported)
import os

# A one-worker flow on one thread: without this, numpy's and scipy's OpenBLAS
# pools (scipy comes with LightGBM) keep server threads that poll the two cores
# the flow runs on, though no case makes a BLAS call. Set before numpy loads.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
import lightgbm
import numpy as np
from bytewax.dataflow import Dataflow
from bytewax.inputs import DynamicSource, StatelessSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import TestingSource, run_main

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import base_machine_info, format_value
from r1_models import R1_ROWS, R1_TREES, compile_streamml, train_lightgbm
from streamml import Model
from streamml.bytewax import predict, predict_op
from streamml_dev.repo import example_model
from streamml_dev.workloads import FEATURE_NAMES, r1_record_batch

BATCH_SIZE = 1000
#: The two predict_op cases, whose difference is R1's one-row evaluation in a flow.
PREDICT_OP = "op.map(predict_op)"
PREDICT_OP_S1 = "op.map(predict_op), S1: binding + flow only"


class _CountPartition(StatelessSinkPartition[Any]):
    def __init__(self, count: list[int]) -> None:
        self._count = count

    def write_batch(self, items: list[Any]) -> None:
        self._count[0] += len(items)


class _CountSink(DynamicSink[Any]):
    """Counts what reaches it and keeps nothing."""

    def __init__(self, count: list[int]) -> None:
        self._count = count

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _CountPartition:
        return _CountPartition(self._count)


def throughput(name: str, events: list[dict], step: Any, clock: Callable[[], float] = time.perf_counter) -> float:
    """Events per second of ``clock`` (wall time, or e.g. ``time.process_time``) of ``input -> step -> sink``."""
    flow = Dataflow("bench")
    up = op.input("in", flow, TestingSource(events, batch_size=BATCH_SIZE))
    count = [0]
    op.output("out", step(up), _CountSink(count))
    t0 = clock()
    run_main(flow)
    seconds = clock() - t0
    assert count[0] == len(events), f"{name}: {count[0]} outputs for {len(events)} events"
    return len(events) / seconds


def rounds(
    cases: list[tuple[str, list[dict], Any]], n: int, clock: Callable[[], float] = time.perf_counter
) -> list[tuple[str, float, int, list[float]]]:
    """Every case ``n`` times, in rounds whose order rotates; per case its median, events and rates."""
    rates: list[list[float]] = [[] for _ in cases]
    for r in range(n):
        for k in range(len(cases)):
            i = (r + k) % len(cases)
            name, events, step = cases[i]
            rates[i].append(throughput(name, events, step, clock))
    return [(name, float(np.median(rs)), len(ev), rs) for (name, ev, _), rs in zip(cases, rates, strict=True)]


def lightgbm_cases(booster: lightgbm.Booster) -> tuple[Any, Any]:
    names = list(FEATURE_NAMES)

    def per_event(e: dict) -> dict:
        p = booster.predict(np.array([[e[n] for n in names]]), num_threads=1)
        return {**e, "probability": float(p[0])}

    def per_batch(batch: list[dict]) -> list[dict]:
        x = np.array([[e[n] for n in names] for e in batch])
        p = booster.predict(x, num_threads=1)
        return [{**e, "probability": float(v)} for e, v in zip(batch, p.tolist(), strict=True)]

    return per_event, per_batch


class _Ticker(StatelessSourcePartition[dict]):
    """One event every ``1/rate`` s, stamped with its emit time."""

    def __init__(self, events: list[dict], rate: float) -> None:
        self._events = iter(events)
        self._period = timedelta(seconds=1 / rate)
        self._next = datetime.now(UTC)

    def next_batch(self) -> list[Any]:
        e = next(self._events, None)
        if e is None:
            raise StopIteration
        self._next += self._period
        return [("0", {**e, "t_emit": time.perf_counter_ns()})]

    def next_awake(self) -> datetime:
        return self._next


class _TickerSource(DynamicSource[dict]):
    def __init__(self, events: list[dict], rate: float) -> None:
        self._events = events
        self._rate = rate

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Ticker:
        return _Ticker(self._events, self._rate)


class _LatencyPartition(StatelessSinkPartition[Any]):
    def __init__(self, out: list[int]) -> None:
        self._out = out

    def write_batch(self, items: list[Any]) -> None:
        now = time.perf_counter_ns()
        self._out.extend(now - v["t_emit"] for _, v in items)


class _LatencySink(DynamicSink[Any]):
    def __init__(self, out: list[int]) -> None:
        self._out = out

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _LatencyPartition:
        return _LatencyPartition(self._out)


def latency(events: list[dict], step: Any, rate: float) -> np.ndarray:
    """Sink time minus emit time (µs) of each event, at ``rate`` events/s."""
    flow = Dataflow("latency")
    up = op.input("in", flow, _TickerSource(events, rate))
    out: list[int] = []
    op.output("out", step(up), _LatencySink(out))
    run_main(flow)
    assert len(out) == len(events)
    return np.asarray(out[len(out) // 10 :]) / 1e3  # the first tenth warms up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer events per case")
    parser.add_argument("--rounds", type=int, default=3, help="runs of every case (median reported)")
    args = parser.parse_args()
    scale = 0.2 if args.quick else 1.0

    trained = train_lightgbm(R1_TREES, R1_ROWS, retrain=False)
    booster = lightgbm.Booster(model_file=str(trained.path))
    model, _ = compile_streamml(booster, "r1_bytewax", "R1 (LightGBM)")
    events = r1_record_batch(100_000).to_pylist()

    def take(n: int) -> list[dict]:
        n = max(int(n * scale), 200)
        return (events * (n // len(events) + 1))[:n]

    per_event, per_batch = lightgbm_cases(booster)
    score_op = predict_op(model)
    s1_op = predict_op(Model.load(example_model("s1_logistic")))
    check = score_op(events[0])["probability"]
    assert abs(check - booster.predict(np.array([[events[0][n] for n in FEATURE_NAMES]]))[0]) < 1e-9

    cases = [
        ("op.map: LightGBM per event", take(2_000), lambda up: op.map("s", up, per_event)),
        ("op.flat_map_batch: LightGBM per batch", take(100_000), lambda up: op.flat_map_batch("s", up, per_batch)),
        (PREDICT_OP, take(100_000), lambda up: op.map("s", up, score_op)),
        (PREDICT_OP_S1, take(100_000), lambda up: op.map("s", up, s1_op)),
        ("streamml.bytewax.predict", take(200_000), lambda up: predict("s", up, model).oks),
        ("no-op op.map (ceiling)", take(1_000_000), lambda up: op.map("s", up, lambda e: e)),
    ]
    measured = rounds(cases, args.rounds)
    results = [(name, rate, n) for name, rate, n, _ in measured]
    # Context, not peers: the model binary's own speed outside Bytewax (what the flows can reach).
    batch = r1_record_batch(20_000)
    t0 = time.perf_counter()
    for i in range(0, 20_000, BATCH_SIZE):
        model.predict(batch.slice(i, BATCH_SIZE))
    bulk = 20_000 / (time.perf_counter() - t0)
    one = [events[i] for i in range(2_000)]
    t0 = time.perf_counter()
    for e in one:
        score_op(e)
    single = len(one) / (time.perf_counter() - t0)
    results += [
        ("(no flow) Model.predict, 1000-row RecordBatches", bulk, 20_000),
        ("(no flow) predict_op(event) in a Python loop", single, len(one)),
    ]
    plain = results[0][1]
    print(
        f"R1 (LightGBM, 300 trees, 32 features) in a 1-worker Bytewax flow, TestingSource batch_size={BATCH_SIZE}, "
        "into a counting sink"
    )
    print(f"machine: {base_machine_info()}")
    w = max(len(r[0]) for r in results)
    print(f"{'case':<{w}}  {'events':>9}  {'events/s':>11}  {'x plain op.map':>14}")
    print("-" * (w + 40))
    for name, rate, n in results:
        print(f"{name:<{w}}  {n:>9,}  {format_value(rate):>11}  {format_value(rate / plain):>14}")
    print(f"(flows: the median of {args.rounds} rounds; per round, events/s:)")
    for name, _, _, rates in measured:
        print(f"  {name:<{w}}  " + "  ".join(format_value(r) for r in rates))
    rate = {name: r for name, r, _ in results}
    r1_us, s1_us = 1e6 / rate[PREDICT_OP], 1e6 / rate[PREDICT_OP_S1]
    print(
        f"op.map(predict_op) per event: R1 {r1_us:.2f} µs, S1 {s1_us:.2f} µs, so R1's one-row evaluation "
        f"{r1_us - s1_us:.2f} µs; 100k events/s is 10 µs an event"
    )

    n_lat = max(int(3_000 * scale), 1_000)
    lat_events = take(n_lat)
    base = latency(lat_events, lambda up: op.map("s", up, lambda kv: kv), 1_000)
    batched = latency(
        lat_events,
        lambda up: predict("s", up, model, max_batch_rows=512, max_wait=timedelta(milliseconds=5)).oks,
        1_000,
    )
    print()
    print(f"latency at a steady 1,000 events/s, {len(lat_events):,} events (the first tenth dropped), µs")
    print(f"{'flow':<44}  {'p50':>8}  {'p99':>8}")
    for name, lat in (("no-op op.map", base), ("predict(max_batch_rows=512, max_wait=5ms)", batched)):
        print(f"{name:<44}  {format_value(np.percentile(lat, 50)):>8}  {format_value(np.percentile(lat, 99)):>8}")
    added50 = np.percentile(batched, 50) - np.percentile(base, 50)
    added99 = np.percentile(batched, 99) - np.percentile(base, 99)
    print(f"{'added by predict':<44}  {format_value(added50):>8}  {format_value(added99):>8}")


if __name__ == "__main__":
    main()
