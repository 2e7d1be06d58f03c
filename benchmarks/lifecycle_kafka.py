"""Model references in ``streamml score`` (the Kafka scorer, in process): what the lifecycle costs.

Cases, measured in the same run on a loopback broker (rounds in rotated order, median per case):

* (a) a fixed binary's path vs the same binary as a model directory reference re-resolved every
  second (no swap happens): messages per CPU second of the process (CPU time, since wall time on
  the shared machine swings between rounds). The issue asks for the reference within 1 %.
* (c) champion-only vs the reference with one challenger of the same size (shadow, both versions'
  outputs scored, the champion's published): the step's cost (the CPU time of the worker thread,
  which decodes, scores and encodes every chunk and counts drift) and the process's CPU per
  message. The issue asks for at most 2.1x the champion-only cost of the step.
* (b) latency around a swap: messages produced at a steady rate for a while, the alias moved
  every 2 s (1 -> 2 -> 1 -> 2 ...) with a 0.2 s reload interval, vs the same run with no move;
  end-to-end latency (output's producer timestamp minus input's) of the messages produced within
  0.5 s after each move, p50/p99, against the same windows of the run without a move.

The models are the lifecycle tests' versions (4-feature logistic models, compiled): a few ns of
compute per row, so the per-batch costs of the lifecycle are as visible as they can be.

Run: ``.venv/bin/python benchmarks/lifecycle_kafka.py [--quick]``. The broker:
``$STREAMML_KAFKA_BOOTSTRAP``, else ``scripts/kafka.sh start`` (``$STREAMML_KAFKA_PORT``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from harness import base_machine_info, format_value
from streamml.kafka import ScoringLoop
from streamml.lifecycle import set_alias
from streamml_dev.lifecycle import compile_versions, events, model_directory
from streamml_dev.repo import kafka_bootstrap

PARTITIONS = 2
BATCH = 1000
WAIT_MS = 20


def topic(bootstrap: str, name: str) -> str:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    t = f"bench-{name}-{uuid.uuid4().hex[:8]}"
    for f in admin.create_topics([NewTopic(t, PARTITIONS, 1)]).values():
        f.result(30)
    time.sleep(0.5)
    return t


def produce(bootstrap: str, t: str, values: list[bytes]) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for i, v in enumerate(values):
        while True:
            try:
                p.produce(t, v, str(i % 64).encode())
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0


def thread_cpu(name_prefix: str) -> float:
    """CPU seconds of this process's threads whose name starts with ``name_prefix``.

    From ``/proc/self/task/<tid>/schedstat`` (nanoseconds; ``stat``'s ticks of 10 ms were ~5 % of a step).
    """
    total = 0.0
    for t in threading.enumerate():
        if t.name.startswith(name_prefix) and t.native_id is not None:
            total += int(Path(f"/proc/self/task/{t.native_id}/schedstat").read_text().split()[0]) / 1e9
    return total


def run_loop(scorer: ScoringLoop, n: int) -> tuple[float, float]:
    """Run until ``n`` messages are committed: (process CPU seconds, the worker thread's CPU seconds).

    The worker thread decodes, scores and encodes every chunk (and counts drift): its CPU time is
    the step's cost, without the waits for the GIL that its wall-clock timing includes.
    """
    thread = threading.Thread(target=scorer.run)
    cpu = time.process_time()
    thread.start()
    while scorer.stats["in"] < n and thread.is_alive():
        time.sleep(0.01)
    cpu = time.process_time() - cpu
    step = thread_cpu("streamml-score")
    scorer.stop()
    thread.join(60)
    assert scorer.stats["in"] >= n, scorer.stats
    return cpu, step


def throughput(bootstrap: str, inp: str, n: int, model: Any, **options: Any) -> tuple[float, float]:
    """(messages per CPU second, step seconds per million messages) of one run over the topic."""
    out = topic(bootstrap, "out")
    scorer = ScoringLoop(
        model, bootstrap, inp, out, group_id=f"g-{uuid.uuid4().hex}", id_field="id",
        max_batch_rows=BATCH, max_wait_ms=WAIT_MS, **options,
    )  # fmt: skip
    cpu, step = run_loop(scorer, n)
    AdminClient({"bootstrap.servers": bootstrap}).delete_topics([out])
    return n / cpu, step / n * 1e6


def latency(bootstrap: str, models: Path, rate: int, seconds: float, move: bool) -> tuple[list[float], list[float]]:
    """End-to-end latencies (ms) of the messages produced within 0.5 s after each move (or the same times)."""
    set_alias(models, "champion", "1")
    inp, out = topic(bootstrap, "lat-in"), topic(bootstrap, "lat-out")
    scorer = ScoringLoop(
        str(models), bootstrap, inp, out, group_id=f"g-{uuid.uuid4().hex}", id_field="id",
        max_batch_rows=BATCH, max_wait_ms=WAIT_MS, reload_interval=0.2,
    )  # fmt: skip
    thread = threading.Thread(target=scorer.run)
    thread.start()
    time.sleep(3)  # group join
    rows = events(int(rate * seconds), seed=3)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
    start = time.time()
    moves = [start + s for s in range(2, int(seconds), 2)]
    pending = list(moves)
    version = "1"
    for i, r in enumerate(rows):
        due = start + i / rate
        while time.time() < due:
            time.sleep(0.0005)
        if pending and time.time() >= pending[0]:
            pending.pop(0)
            if move:
                version = "2" if version == "1" else "1"
                set_alias(models, "champion", version)
        p.produce(inp, json.dumps(r).encode(), str(i % 64).encode())
        p.poll(0)
    p.flush(30)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex, "auto.offset.reset": "earliest"})
    c.subscribe([inp, out])
    sent: dict[int, int] = {}
    got: dict[int, int] = {}
    deadline = time.monotonic() + 60
    while len(got) < len(rows) and time.monotonic() < deadline:
        for m in c.consume(10_000, 0.5):
            if m.error() is None:
                (sent if m.topic() == inp else got)[json.loads(m.value())["id"]] = m.timestamp()[1]
    c.close()
    scorer.stop()
    thread.join(60)
    assert len(got) == len(rows), (len(got), len(rows))
    near, rest = [], []
    for i, t in sent.items():
        ms = got[i] - t
        (near if any(0 <= t / 1000 - m < 0.5 for m in moves) else rest).append(ms)
    if move:
        assert scorer.slot.swaps == len(moves), (scorer.slot.swaps, len(moves))
    return near, rest


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages and rounds")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    n = 60_000 if args.quick else 200_000
    rounds = args.rounds or (2 if args.quick else 5)
    bootstrap = kafka_bootstrap()
    info = base_machine_info()
    print(json.dumps({k: info[k] for k in sorted(info)}, default=str))
    with tempfile.TemporaryDirectory() as tmp:
        binaries = compile_versions(Path(tmp) / "v", ["1", "2"])
        models = model_directory(Path(tmp) / "fraud", binaries, champion="1", challenger="2")
        inp = topic(bootstrap, "in")
        produce(bootstrap, inp, [json.dumps(r).encode() for r in events(n, seed=1)])
        cases: list[tuple[str, dict[str, Any]]] = [
            ("fixed path", {"model": str(binaries["1"])}),
            ("directory reference, no swap (1 s)", {"model": str(models), "reload_interval": 1.0}),
            ("directory reference, no swap (30 s)", {"model": str(models)}),
            ("reference + 1 challenger (shadow)", {"model": str(models), "reload_interval": 1.0,
                                                   "challengers": [f"{models}@challenger"]}),
        ]  # fmt: skip
        rates: dict[str, list[float]] = {c: [] for c, _ in cases}
        steps: dict[str, list[float]] = {c: [] for c, _ in cases}
        ratio_ref: list[float] = []
        ratio_ref30: list[float] = []
        ratio_shadow_step: list[float] = []
        ratio_shadow_cpu: list[float] = []
        for r in range(rounds):
            got = {}
            for k in range(len(cases)):
                name, options = cases[(r + k) % len(cases)]
                got[name] = throughput(bootstrap, inp, n, **options)
                rates[name].append(got[name][0])
                steps[name].append(got[name][1])
            fixed, ref, ref30, shadow = (got[c] for c, _ in cases)
            ratio_ref.append(ref[0] / fixed[0])
            ratio_ref30.append(ref30[0] / fixed[0])
            ratio_shadow_step.append(shadow[1] / ref[1])
            ratio_shadow_cpu.append(ref[0] / shadow[0])
            print(f"round {r + 1}: " + ", ".join(f"{c}: {format_value(v[0])} msg/CPU-s, step {v[1]:.2f} CPU-s/M"
                                                 for c, v in got.items()), flush=True)  # fmt: skip
        print(f"\n{n:,} JSON messages, {PARTITIONS} partitions, batches of {BATCH} / {WAIT_MS} ms, {rounds} rounds")
        print(f"{'case':38} {'msg/CPU-s (median)':>20} {'step CPU-s per 1M':>20}")
        for c, _ in cases:
            print(f"{c:38} {format_value(statistics.median(rates[c])):>20} {statistics.median(steps[c]):>20.3f}")
        med = statistics.median
        print(f"reference (1 s) / fixed throughput (median of per-round ratios): {med(ratio_ref):.3f}")
        print(f"reference (30 s) / fixed throughput (median of per-round ratios): {med(ratio_ref30):.3f}")
        print(f"shadow / champion-only step cost (median of per-round ratios): {med(ratio_shadow_step):.2f}")
        print(f"shadow / champion-only CPU per message (median of per-round ratios): {med(ratio_shadow_cpu):.2f}")
        rate, seconds = (2_000, 8.0) if args.quick else (4_000, 12.0)
        for move in (False, True, False, True) if not args.quick else (False, True):
            near, rest = latency(bootstrap, models, rate, seconds, move)
            what = "alias moved every 2 s" if move else "no move              "
            print(
                f"latency, {what}: 0.5 s after each move p50 {pct(near, 0.5):.0f} ms p99 {pct(near, 0.99):.0f} ms "
                f"({len(near)} msgs); elsewhere p50 {pct(rest, 0.5):.0f} ms p99 {pct(rest, 0.99):.0f} ms",
                flush=True,
            )


if __name__ == "__main__":
    main()
