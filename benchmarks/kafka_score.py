"""`streamml score` on a loopback Kafka broker with R1, beside its peers, in one run.

Cases (each reads the same JSON messages and writes its own output topic), on an input topic of
1 and of 4 partitions:

* ``streamml score``: one process of the CLI, at-least-once and exactly-once (batches of
  1,000 / 50 ms, the default commit interval).
* raw pipe (the ceiling of any scorer written on confluent-kafka in Python): consume, produce the
  same bytes, ``poll(0)``, no flush per batch; done when every output is acknowledged.
* flush-and-commit pipe: the same with ``flush()`` and a synchronous commit per 1,000-message
  batch (the design ``streamml score`` had before issue 29), so the difference stays visible.
* plain confluent-kafka loop: ``json.loads`` and LightGBM ``predict`` per message (one thread),
  then produce; the loop a team writes without streamml. It reads a smaller topic (it is slow).

The cases take turns, ``--repeats`` rounds, the order rotating each round; the table gives each
case's median and the median of its per-round ratios to the raw pipe (and exactly-once to
at-least-once), so a neighbour's burst on a shared machine hits every case of a round.

Throughput is the number of outputs over the span between the first and the last output's
broker timestamp (start-up and group join are left out). Then the latency: messages produced
at 10,000/s for a while, end-to-end = received from the output topic minus produced to the input
topic, against ``max_wait + 20 ms``, whole and in legs (the input topic stamps append times, so
the scorer's own leg, input appended -> output produced, is told apart from the load generator's
and the reader's). Then memory: the scorer's RSS sampled once a second over a long run (10M messages;
only the samples taken while outputs come out count, so the interpreter's start-up is left out).

With ``--ab PYTHON`` it runs only an A/B of throughput: ``streamml score`` of this checkout and
of another one (``PYTHON``: the interpreter of that checkout's virtualenv, e.g. main before a
change) take turns on the same input topic, ``--repeats`` times each, the side that starts
alternating; the table gives each side's median and the median of the per-turn ratios.

Run: ``python benchmarks/kafka_score.py [--messages N] [--long N] [--quick] [--only throughput] [--ab PYTHON]``
(``make bench``).
The broker: ``$STREAMML_KAFKA_BOOTSTRAP``, else ``scripts/kafka.sh start``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from harness import base_machine_info, format_table
from r1_models import BENCH_DIR, R1_ROWS, R1_TREES, compile_streamml, train_lightgbm
from streamml_dev.repo import kafka_bootstrap
from streamml_dev.workloads import FEATURE_NAMES, SCORE_SEED, r1_data

PARTITIONS = 4
MAX_BATCH_ROWS = 1000
MAX_WAIT_MS = 50


@dataclass
class Row:
    """One line of the table."""

    section: str
    case: str
    value: float
    unit: str
    ratio: str = ""


def json_messages(x: np.ndarray, start: int = 0) -> list[bytes]:
    names = [f'"{f}":' for f in FEATURE_NAMES]
    return [
        f'{{"id":{start + i},{",".join(n + repr(v) for n, v in zip(names, row, strict=True))}}}'.encode()
        for i, row in enumerate(x.tolist())
    ]


class Broker:
    """The broker the cases run on, and the topics they made (dropped at the end)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self.topics: list[str] = []

    def topic(self, name: str, config: dict[str, str] | None = None, partitions: int = PARTITIONS) -> str:
        """A new topic of ``partitions`` partitions (with topic ``config``, if given)."""
        topic = f"bench-{name}-{uuid.uuid4().hex[:8]}"
        self.admin.create_topics([NewTopic(topic, partitions, 1, config=config or {})])[topic].result(30)
        self.topics.append(topic)
        return topic

    def produce(self, topic: str, values: list[bytes]) -> None:
        """Produce and wait for every acknowledgement."""
        p = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 20, "batch.size": 1_000_000})
        for i, v in enumerate(values):
            while True:
                try:
                    p.produce(topic, v, str(i % 1024).encode())
                    break
                except BufferError:
                    p.poll(0.05)
        p.flush(120)

    def drop(self) -> None:
        """Delete the topics made."""
        if self.topics:
            for f in self.admin.delete_topics(self.topics, operation_timeout=30).values():
                f.result(30)


@dataclass
class Span:
    """Outputs read from a topic: their count, first and last timestamps (epoch s), and CPU seconds.

    ``cpu``: what the process writing them used (all threads) between the first and the last read.
    """

    count: int
    first: float
    last: float
    cpu: float = float("nan")
    #: CPU seconds per thread role of that process (:func:`thread_cpu`), and of the broker, over the same span.
    threads: dict[str, float] = field(default_factory=dict)
    broker_cpu: float = float("nan")
    #: CPU seconds of this process (the reader of the outputs) over the same span.
    reader_cpu: float = float("nan")

    @property
    def rate(self) -> float:
        """Outputs per second between the first and the last."""
        return self.count / (self.last - self.first)


def output_span(bootstrap: str, topic: str, n: int, timeout: float = 900, pid: int | None = None) -> Span:
    """Read ``n`` outputs (fewer if ``timeout`` runs out): their count and first and last timestamps.

    With ``pid``, also the CPU time that process used from the first output read to the last.
    """
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"r-{uuid.uuid4().hex}", "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    count, first, last = 0, None, None
    cpu_first = None
    threads_first: dict[str, float] = {}
    broker = broker_pid()
    broker_first = reader_first = float("nan")
    deadline = time.monotonic() + timeout
    while count < n and time.monotonic() < deadline:
        for m in c.consume(num_messages=10_000, timeout=0.5):
            if m.error() is None:
                if pid is not None and cpu_first is None:
                    cpu_first = cpu_seconds(pid)
                    threads_first = thread_cpu(pid)
                    broker_first = cpu_seconds(broker) if broker else float("nan")
                    reader_first = cpu_seconds(os.getpid())
                count += 1
                ts = m.timestamp()[1] / 1000
                first = ts if first is None else min(first, ts)
                last = ts if last is None else max(last, ts)
    cpu = cpu_seconds(pid) - cpu_first if pid is not None and cpu_first is not None else float("nan")
    threads: dict[str, float] = {}
    broker_cpu = reader_cpu = float("nan")
    if pid is not None and cpu_first is not None:
        threads = {k: v - threads_first.get(k, 0.0) for k, v in thread_cpu(pid).items()}
        broker_cpu = cpu_seconds(broker) - broker_first if broker else float("nan")
        reader_cpu = cpu_seconds(os.getpid()) - reader_first
    c.close()
    return Span(count, first or float("nan"), last or float("nan"), cpu, threads, broker_cpu, reader_cpu)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[str, float]:
    """User + system CPU seconds of each thread of a process (``/proc/PID/task``), by role.

    The main thread is ``main``; librdkafka's threads keep their names (``rdk:main``,
    ``rdk:broker1``, ...), numbered ``#1``, ``#2`` in the order they were created when two
    clients have one of the same name (the scorer makes its producer first, the pipes their
    consumer first); Python's other threads (the scorer's worker threads) are ``python``.
    """
    tick = os.sysconf("SC_CLK_TCK")
    seen: list[tuple[int, str, float]] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            stat = (task / "stat").read_text()
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat.rsplit(")", 1)[1].split()
            tid = int(task.name)
            seen.append((tid, "main" if tid == pid else name if name.startswith("rdk:") else "python",
                         (int(fields[11]) + int(fields[12])) / tick))  # fmt: skip
    out: dict[str, float] = {}
    counts: dict[str, int] = {}
    for _, role, seconds in sorted(seen):
        if role.startswith("rdk:"):
            counts[role] = counts.get(role, 0) + 1
            role = f"{role}#{counts[role]}"
        out[role] = out.get(role, 0.0) + seconds
    return out


def broker_pid() -> int | None:
    """The pid of the broker ``scripts/kafka.sh`` started on ``$STREAMML_KAFKA_PORT`` (``None``: another broker)."""
    if os.environ.get("STREAMML_KAFKA_BOOTSTRAP"):
        return None
    state = Path(os.environ.get("STREAMML_KAFKA_DIR", Path.home() / ".cache/streamml/kafka"))
    pidfile = state / f"broker-{os.environ.get('STREAMML_KAFKA_PORT', '19092')}.pid"
    with contextlib.suppress(FileNotFoundError, ValueError):
        pid = int(pidfile.read_text().strip())
        if Path(f"/proc/{pid}").exists():
            return pid
    return None


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_scorer(
    bootstrap: str,
    model_path: Path,
    inp: str,
    out: str,
    log: Path,
    python: str = sys.executable,
    guarantee: str = "at-least-once",
) -> subprocess.Popen[bytes]:
    args = [
        python, "-m", "streamml.cli", "score", "--model", str(model_path), "--bootstrap-servers", bootstrap,
        "--input-topic", inp, "--output-topic", out, "--group-id", f"bench-{uuid.uuid4().hex[:8]}",
        "--id-field", "id", "--max-batch-rows", str(MAX_BATCH_ROWS), "--max-wait-ms", str(MAX_WAIT_MS),
        "--guarantee", guarantee, "--transactional-id", f"bench-{uuid.uuid4().hex[:8]}",
    ]  # fmt: skip
    return subprocess.Popen(args, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def ab_rows(
    broker: Broker, model_path: Path, inp: str, n: int, repeats: int, other: str, log: Path, guarantee: str
) -> list[Row]:
    """Throughput of this checkout's scorer (A) and another's (B, run by ``other``), taking turns."""
    runs: dict[str, list[float]] = {"A": [], "B": []}
    pythons = {"A": sys.executable, "B": other}
    for k in range(repeats):
        for side in ("A", "B") if k % 2 == 0 else ("B", "A"):
            out = broker.topic(f"ab-{side}-{k}")
            proc = start_scorer(broker.bootstrap, model_path, inp, out, log, python=pythons[side], guarantee=guarantee)
            runs[side].append(output_span(broker.bootstrap, out, n).rate)
            stop(proc)
            print(f"turn {k + 1}/{repeats} {side}: {runs[side][-1]:,.0f} events/s", flush=True)
    ratios = [a / b for a, b in zip(runs["A"], runs["B"], strict=True)]
    section = f"A/B throughput, R1, JSON, {guarantee}, {n:,} messages, {repeats} turns each"
    return [
        Row(section, f"A: {sys.executable}", statistics.median(runs["A"]), "events/s",
            f"A/B median {statistics.median(ratios):.3f} (turns: {', '.join(f'{r:.3f}' for r in ratios)})"),
        Row(section, f"B: {other}", statistics.median(runs["B"]), "events/s"),
    ]  # fmt: skip


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(60)


def consumer_for(bootstrap: str, topic: str) -> Consumer:
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"peer-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    c.subscribe([topic])
    return c


def run_pipe(bootstrap: str, inp: str, out: str, n: int, *, flush_each_batch: bool) -> tuple[Consumer, Producer]:
    """Consume, produce the same bytes, ``poll(0)``; the run ends once every output is acknowledged.

    Without ``flush_each_batch``, the raw pipe (the ceiling): no flush per batch. With it, the
    flush-and-commit pipe (``streamml score``'s loop before issue 29, no model): ``flush`` and a
    synchronous commit after each batch. Delivery reports only for failures (a report per message
    costs this loop about a third more CPU). Returns the clients, open (their threads' CPU time is read
    once the benchmark has read every output; the caller closes them).
    """
    c = consumer_for(bootstrap, inp)
    failed = []
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5,
                  "delivery.report.only.error": True, "on_delivery": lambda err, _: failed.append(err)})  # fmt: skip
    done = 0
    while done < n:
        batch = [m for m in c.consume(num_messages=MAX_BATCH_ROWS, timeout=MAX_WAIT_MS / 1000) if m.error() is None]
        for m in batch:
            while True:
                try:
                    p.produce(out, m.value(), m.key())
                    break
                except BufferError:
                    p.poll(0.05)
        p.poll(0)
        if batch and flush_each_batch:
            p.flush()
            c.commit(asynchronous=False, offsets=_next(batch))
        done += len(batch)
    while p.flush(1.0) > 0:
        pass
    if failed:
        raise SystemExit(f"the pipe could not deliver {len(failed)} message(s) (first: {failed[0]})")
    return c, p


def run_plain(bootstrap: str, booster: Any, inp: str, out: str, n: int) -> None:
    """What a team writes without streamml: per message, json.loads, LightGBM predict, produce."""
    c = consumer_for(bootstrap, inp)
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    names = list(FEATURE_NAMES)
    done = 0
    while done < n:
        batch = [m for m in c.consume(num_messages=100, timeout=0.1) if m.error() is None]
        for m in batch:
            event = json.loads(m.value())
            row = np.array([[event[f] for f in names]])
            probability = float(booster.predict(row, num_threads=1)[0])
            p.produce(out, json.dumps({"id": event["id"], "probability": probability}).encode(), m.key())
            p.poll(0)
        if batch:
            p.flush()
            c.commit(asynchronous=False, offsets=_next(batch))
            done += len(batch)
    c.close()


def _next(batch: list[Any]) -> list[TopicPartition]:
    last: dict[tuple[str, int], int] = {}
    for m in batch:
        last[(m.topic(), m.partition())] = m.offset()
    return [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]


#: The cases that take turns: name -> how to run one over (input topic, output topic, messages).
CASES = ["streamml score, at-least-once", "streamml score, exactly-once", "raw pipe (ceiling)",
         "flush-and-commit pipe"]  # fmt: skip
#: With ``--baseline LABEL=PYTHON``: ``streamml score`` at-least-once run by that interpreter (another checkout).
BASELINE = "streamml score, at-least-once, {}"
RAW = CASES[2]


def case_list(names: str | None, baselines: dict[str, str]) -> list[str]:
    """The cases to run: those whose names hold a part of ``names`` (comma-separated; default all), and the raw pipe."""
    cases = [*CASES, *(BASELINE.format(label) for label in baselines)]
    if names:
        wanted = names.split(",")
        cases = [c for c in cases if c == RAW or any(w in c for w in wanted)]
    return cases


def throughput_rows(
    broker: Broker,
    model_path: Path,
    values: list[bytes],
    partitions: int,
    n: int,
    repeats: int,
    log: Path,
    cases: list[str] = CASES,
    baselines: dict[str, str] | None = None,
) -> list[Row]:
    """Every case of ``cases`` ``repeats`` times on one input topic of ``partitions``, in rotating order.

    ``baselines``: label -> the interpreter of that :data:`BASELINE` case (another checkout's, e.g. main
    before a change).
    """
    pythons = {BASELINE.format(label): python for label, python in (baselines or {}).items()}
    bootstrap = broker.bootstrap
    inp = broker.topic(f"in{partitions}", partitions=partitions)
    broker.produce(inp, values[:n])
    runs: dict[str, list[float]] = {case: [] for case in cases}
    cpu: dict[str, list[float]] = {case: [] for case in cases}  # microseconds of CPU per event, all threads
    threads: dict[str, list[dict[str, float]]] = {case: [] for case in cases}  # the same per thread, and the broker
    for k in range(repeats):
        for case in cases[k % len(cases) :] + cases[: k % len(cases)]:
            out = broker.topic(f"out-{k}", partitions=partitions)
            if case in pythons:
                proc = start_scorer(bootstrap, model_path, inp, out, log, python=pythons[case])
            elif case.startswith("streamml"):
                proc = start_scorer(bootstrap, model_path, inp, out, log, guarantee=case.rsplit(", ", 1)[1])
            else:  # a process of its own too, so that its CPU time is its own
                kind = "raw" if case.startswith("raw") else "flush"
                args = [sys.executable, __file__, "pipe", kind, bootstrap, inp, out, str(n)]
                proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=log.open("ab"), stderr=subprocess.STDOUT)
            span = output_span(bootstrap, out, n, pid=proc.pid)
            runs[case].append(span.rate)
            cpu[case].append(span.cpu / span.count * 1e6)
            per_thread = {k: v / span.count * 1e6 for k, v in span.threads.items()}
            per_thread["(the broker, all its threads)"] = span.broker_cpu / span.count * 1e6
            per_thread["(the benchmark's reader)"] = span.reader_cpu / span.count * 1e6
            threads[case].append(per_thread)
            if proc.stdin is not None:
                proc.stdin.close()  # the pipe exits once told
                proc.wait(60)
            else:
                stop(proc)
            print(
                f"{partitions} partition(s), round {k + 1}/{repeats}, {case}: {runs[case][-1]:,.0f} events/s, "
                f"{cpu[case][-1]:.1f} us CPU/event ("
                + ", ".join(f"{k} {v:.2f}" for k, v in per_thread.items() if not v < 0.05)
                + ")",
                flush=True,
            )
    section = f"throughput, R1, JSON, {n:,} messages, {partitions} partition(s), median of {repeats}"
    raw = runs[RAW]
    rows = []
    for case in cases:
        ratios = [a / b for a, b in zip(runs[case], raw, strict=True)]
        note = (
            ""
            if case == RAW
            else f"{statistics.median(ratios):.0%} of raw (runs: {', '.join(f'{r:.0%}' for r in ratios)})"
        )
        if case in pythons and CASES[0] in runs:
            ab = [a / b for a, b in zip(runs[CASES[0]], runs[case], strict=True)]
            turns = ", ".join(f"{r:.2f}" for r in ab)
            note += f"; at-least-once / this {statistics.median(ab):.2f}x (runs: {turns})"
        if case == CASES[1] and CASES[0] in runs:
            eos = [a / b for a, b in zip(runs[CASES[1]], runs[CASES[0]], strict=True)]
            note += f"; {statistics.median(eos):.2f}x at-least-once (runs: {', '.join(f'{r:.2f}' for r in eos)})"
        rows.append(Row(section, case, statistics.median(runs[case]), "events/s", note))
    section = f"CPU per event (all threads of the process), {partitions} partition(s), median of {repeats}"
    for case in cases:
        ratios = [a / b for a, b in zip(cpu[case], cpu[RAW], strict=True)]
        note = "" if case == RAW else f"{statistics.median(ratios):.2f}x raw"
        rows.append(Row(section, case, statistics.median(cpu[case]), "us", note))
    section = f"CPU per event by thread (us), {partitions} partition(s), median of {repeats}"
    for case in cases:
        roles = sorted({k for t in threads[case] for k in t})
        for role in roles:
            value = statistics.median(t.get(role, 0.0) for t in threads[case])
            if value >= 0.05:
                rows.append(Row(section, f"{case}: {role}", value, "us"))
    return rows


def plain_rows(broker: Broker, booster: Any, values: list[bytes], n: int, rows: list[Row]) -> list[Row]:
    """The plain loop (json + LightGBM per message), against streamml score at-least-once on 4 partitions."""
    plain_in = broker.topic("plain-in")
    broker.produce(plain_in, values[:n])
    plain_out = broker.topic("plain")
    plain_thread = threading.Thread(target=run_plain, args=(broker.bootstrap, booster, plain_in, plain_out, n))
    plain_thread.start()
    plain = output_span(broker.bootstrap, plain_out, n).rate
    plain_thread.join()
    ours = [r.value for r in rows if r.case == CASES[0]]
    note = f"streamml at-least-once {ours[-1] / plain:.0f}x" if ours else ""
    return [Row("throughput, R1, JSON", "plain loop: json + LightGBM per message", plain, "events/s", note)]


def codec_rows(model: Any, values: list[bytes], x: np.ndarray) -> list[Row]:
    """The Rust step alone (decode + score + encode, batches of ``MAX_BATCH_ROWS``), with R1 and with S1.

    Also R1 with the drift counters ``streamml score`` keeps (32 features + the score, bins fitted on ``x``),
    and the cost of a carried field (``--carry-field event_time``) beside the id alone.
    """
    import pyarrow as pa

    from streamml import Model, _streamml
    from streamml.drift import DriftMonitor
    from streamml_dev.repo import example_model

    out = []
    models = [("R1", model)]
    with contextlib.suppress(FileNotFoundError):  # `make models` builds it
        models.append(("S1 (logistic: the codec's own cost)", Model.load(example_model("s1_logistic"))))
    batches = [values[i : i + MAX_BATCH_ROWS] for i in range(0, min(len(values), 100_000), MAX_BATCH_ROWS)]
    for name, m in models:
        codec = _streamml.MessageScorer.create(m._inner, "json", "id")
        t0 = time.perf_counter()
        for b in batches:
            codec.score(b)
        seconds = time.perf_counter() - t0
        out.append(Row("Rust step alone, JSON in and out", f"{name}", sum(map(len, batches)) / seconds, "events/s"))
    inputs = pa.table({f.name: x[:20_000, j] for j, f in enumerate(model.input_schema)})
    monitor = DriftMonitor.fit(inputs, scores=model.predict(inputs))
    codec = _streamml.MessageScorer.create(model._inner, "json", "id")
    timings = []
    for counters in (None, monitor._inner) * 6:  # interleaved, best of 6: the machine is noisy
        t0 = time.perf_counter()
        for b in batches:
            codec.score(b, counters)
        timings.append((counters is not None, time.perf_counter() - t0))
    plain = min(t for on, t in timings if not on)
    counted = min(t for on, t in timings if on)
    rows = sum(map(len, batches))
    out.append(
        Row(
            "Rust step alone, JSON, with drift counters",
            f"R1 ({counted / plain - 1:+.1%} time vs without)",
            rows / counted,
            "events/s",
        )
    )
    out += carry_rows(models[-1], batches)
    return out


def carry_rows(named: tuple[str, Any], batches: list[list[bytes]]) -> list[Row]:
    """Interleaved best of 10: the id alone vs the id and ``event_time`` carried, on messages holding both."""
    from streamml import _streamml

    name, model = named
    stamped = [[v[:-1] + b',"event_time":%d}' % (1_767_225_600_000 + 20 * i) for i, v in enumerate(b)] for b in batches]
    codecs = {
        False: _streamml.MessageScorer.create(model._inner, "json", "id"),
        True: _streamml.MessageScorer.create(model._inner, "json", "id", ["event_time"]),
    }
    timings = []
    for carried in (False, True) * 10:
        t0 = time.perf_counter()
        for b in stamped:
            codecs[carried].score(b)
        timings.append((carried, time.perf_counter() - t0))
    alone = min(t for on, t in timings if not on)
    carried = min(t for on, t in timings if on)
    rows = sum(map(len, stamped))
    model_name = name.split(" ")[0]
    section = "Rust step alone, JSON, carried fields (messages with event_time)"
    return [
        Row(section, f"{model_name}, --id-field id", rows / alone, "events/s"),
        Row(
            section,
            f"{model_name}, --id-field id --carry-field event_time ({carried / alone - 1:+.1%} time)",
            rows / carried,
            "events/s",
        ),
    ]


@dataclass
class Latency:
    """Per message of a latency run (seconds): the whole way, and its legs."""

    end_to_end: np.ndarray  # produced to the input topic -> read from the output topic
    to_input: np.ndarray  # produced -> appended to the input topic (the load generator's linger)
    scorer: np.ndarray  # appended to the input topic -> the scorer's produce call of its output
    from_output: np.ndarray  # the scorer's produce call -> read (linger, broker, the reader's fetch)


def latency_run(broker: Broker, model_path: Path, x: np.ndarray, rate: int, seconds: float, log: Path) -> Latency:
    """Produce at ``rate``/s into a scorer; return the latencies seen on the output, split in legs.

    The input topic stamps each message with the broker's append time (``LogAppendTime``) and a
    second reader records those stamps; an output's timestamp is its creation time, taken when
    the scorer calls ``produce``. So the scorer's own leg (input appended -> output produced:
    fetch, batch wait, scoring) is told apart from the load generator's and the reader's.
    """
    inp = broker.topic("lat-in", {"message.timestamp.type": "LogAppendTime"})
    out = broker.topic("lat-out")
    proc = start_scorer(broker.bootstrap, model_path, inp, out, log)
    n = int(rate * seconds)
    values = json_messages(x[: min(n, len(x))])
    sent = np.zeros(n)
    received = np.full(n + 1, np.nan)  # [n]: the warm-up message
    produced = np.full(n + 1, np.nan)  # the output's creation time
    appended = np.full(n + 1, np.nan)  # the input's broker append time
    stop_reading = threading.Event()

    def on_output(m: Any) -> None:
        i = json.loads(m.value())["id"]
        received[i] = time.time()
        produced[i] = m.timestamp()[1] / 1000

    def on_input(m: Any) -> None:
        v = m.value()
        appended[int(v[6 : v.index(b",")])] = m.timestamp()[1] / 1000  # b'{"id":N,...'

    def read(topic: str, record: Callable[[Any], None]) -> None:
        reader = consumer_for(broker.bootstrap, topic)
        while not stop_reading.is_set():
            # A short timeout: consume() waits until it has num_messages or times out, and
            # the receive time is taken when it returns (at 5 ms, up to 5 ms was added to each
            # receive time, so to the end-to-end and reader legs).
            for m in reader.consume(num_messages=10_000, timeout=0.001):
                if m.error() is None:
                    record(m)
        reader.close()

    threads = [threading.Thread(target=read, args=a) for a in ((out, on_output), (inp, on_input))]
    for thread in threads:
        thread.start()
    # librdkafka's default linger (5 ms, counted in the latency): with linger.ms=0 every event is
    # its own produce request and the broker, not the scorer, falls behind at 10k/s.
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    # The clock starts once a warm-up message went through: the scorer's start-up (imports,
    # model load, group join) is not end-to-end latency.
    p.produce(inp, values[0].replace(b'"id":0,', f'"id":{n},'.encode(), 1), b"warm-up")
    p.flush(30)
    deadline = time.monotonic() + 120
    while np.isnan(received[n]) and time.monotonic() < deadline:
        time.sleep(0.05)
    # Pacing: every millisecond, produce the messages that are due (a busy-waiting loop
    # would take a whole core from the scorer and the broker on a 2-core machine).
    t0 = time.perf_counter()
    i = 0
    while i < n:
        due = min(n, int((time.perf_counter() - t0) * rate) + 1)
        now = time.time()
        while i < due:
            v = values[i % len(values)]
            if i >= len(values):
                v = v.replace(f'"id":{i % len(values)},'.encode(), f'"id":{i},'.encode(), 1)
            sent[i] = now
            p.produce(inp, v, str(i % 1024).encode())
            i += 1
        p.poll(0)
        time.sleep(0.001)
    p.flush(30)
    deadline = time.monotonic() + 30
    while (np.isnan(received[:n]).any() or np.isnan(appended[:n]).any()) and time.monotonic() < deadline:
        time.sleep(0.2)
    stop_reading.set()
    for thread in threads:
        thread.join()
    stop(proc)
    seen = ~np.isnan(received[:n]) & ~np.isnan(appended[:n])

    def leg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (b[:n] - a[:n])[seen]

    return Latency(leg(sent, received), leg(sent, appended), leg(appended, produced), leg(produced, received))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000, help="messages for streamml and the pipe")
    parser.add_argument("--plain-messages", type=int, default=10_000, help="messages for the plain loop")
    parser.add_argument(
        "--long", type=int, default=None, help="messages of the memory run (default 10M, 1M with --quick; 0: skip)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="turns of the scorer and the pipe")
    parser.add_argument("--rate", type=int, default=10_000, help="events/s of the latency run")
    parser.add_argument("--quick", action="store_true", help="50k messages, 5 s of latency, 1M for memory")
    parser.add_argument("--ab", metavar="PYTHON", help="only an A/B of throughput against another checkout's python")
    parser.add_argument(
        "--ab-guarantee",
        type=lambda v: v.split(","),
        default=["at-least-once"],
        help="with --ab: the guarantees to compare (at-least-once,exactly-once)",
    )
    parser.add_argument(
        "--only",
        choices=["codec", "throughput", "latency"],
        help="only this part (latency: also memory, unless --long 0)",
    )
    parser.add_argument(
        "--cases", help="throughput: only the cases whose names hold one of these comma-separated parts"
    )
    parser.add_argument(
        "--baseline",
        metavar="LABEL=PYTHON",
        action="append",
        default=[],
        help="throughput: also streamml score at-least-once run by this interpreter (repeatable)",
    )
    parser.add_argument(
        "--partitions", type=lambda v: [int(p) for p in v.split(",")], default=[1, 4], help="input partitions (1,4)"
    )
    args = parser.parse_args()
    baselines = dict(b.split("=", 1) for b in args.baseline)
    if args.quick:
        args.messages, args.plain_messages = 50_000, 3_000
    if args.long is None:
        args.long = 1_000_000 if args.quick else 10_000_000
    latency_seconds = 5.0 if args.quick else 15.0
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    log = BENCH_DIR / "kafka_score.log"
    log.write_text("")
    bootstrap = kafka_bootstrap()
    trained = train_lightgbm(R1_TREES, R1_ROWS, retrain=False)
    booster = lightgbm.Booster(model_file=str(trained.path))
    model, _ = compile_streamml(booster, "r1_kafka", f"the LightGBM model {trained.path.name}")
    model_path = Path(model.path or "")
    x, _ = r1_data(max(args.messages, args.plain_messages), SCORE_SEED)
    x = np.round(x, 6)  # shorter messages; the same rows for every case
    print(f"machine: {json.dumps(base_machine_info())}")
    print(f"broker {bootstrap}; R1 ({R1_TREES} trees); {args.messages:,} messages; input partitions {args.partitions}")
    values = json_messages(x[: args.messages])
    print(f"message size {np.mean([len(v) for v in values]):.0f} bytes (JSON, 32 float64 features + id)")
    broker = Broker(bootstrap)
    rows: list[Row] = []
    try:
        # Check streamml's outputs against LightGBM on a few rows before timing anything.
        sample = model.predict([dict(zip(FEATURE_NAMES, r, strict=True)) for r in x[:100].tolist()])
        diff = np.max(np.abs(sample.column("probability").to_numpy() - booster.predict(x[:100], num_threads=1)))
        if not diff < 1e-9:
            raise SystemExit(f"streamml and LightGBM disagree on R1 by {diff:.3g}; not timing wrong answers")

        if args.ab:
            inp = broker.topic("in")
            broker.produce(inp, values)
            for guarantee in args.ab_guarantee:
                rows += ab_rows(broker, model_path, inp, args.messages, args.repeats, args.ab, log, guarantee)
            print(format_table(rows, lambda r: r.ratio))
            return 0
        if args.only in (None, "codec"):
            rows += codec_rows(model, values, x)
        if args.only in (None, "throughput"):
            for partitions in args.partitions:
                rows += throughput_rows(
                    broker, model_path, values, partitions, args.messages, args.repeats, log,
                    case_list(args.cases, baselines), baselines,
                )  # fmt: skip
        if args.only is None:
            rows += plain_rows(broker, booster, values, args.plain_messages, rows)
        if args.only not in (None, "latency"):
            print(format_table(rows, lambda r: r.ratio))
            return 0
        lat = latency_run(broker, model_path, x, args.rate, latency_seconds, log)
        target = MAX_WAIT_MS + 20
        section = f"latency at {args.rate:,} events/s (ms)"
        for case, samples, q, note in [
            ("end to end, p50", lat.end_to_end, 50, ""),
            ("end to end, p99", lat.end_to_end, 99, f"target <= {target} ms"),
            ("end to end, max", lat.end_to_end, 100, ""),
            ("produced -> input appended, p99 (the load generator)", lat.to_input, 99, ""),
            ("input appended -> output produced, p50 (the scorer)", lat.scorer, 50, ""),
            ("input appended -> output produced, p99 (the scorer)", lat.scorer, 99, f"target <= {target} ms"),
            ("output produced -> read, p99 (linger, broker, the reader)", lat.from_output, 99, ""),
        ]:
            rows.append(Row(section, case, float(np.percentile(samples, q)) * 1000, "ms", note))
        rows.append(Row(section, "outputs seen", float(len(lat.end_to_end)), "events"))
        if args.long:
            long_in, long_out = broker.topic("long-in"), broker.topic("long-out")
            chunk = values
            for start in range(0, args.long, len(chunk)):
                broker.produce(long_in, chunk[: min(len(chunk), args.long - start)])
            proc = start_scorer(bootstrap, model_path, long_in, long_out, log)
            samples: list[tuple[float, float]] = []  # (epoch seconds, MB)
            sampling = threading.Event()

            def sample_rss(pid: int = proc.pid) -> None:
                while not sampling.is_set():
                    samples.append((time.time(), rss_mb(pid)))
                    time.sleep(1.0)

            sampler = threading.Thread(target=sample_rss)
            sampler.start()
            span = output_span(bootstrap, long_out, args.long, timeout=3600)
            sampling.set()
            sampler.join()
            stop(proc)
            # Only the samples taken while outputs came out: before the first, the scorer's
            # interpreter is still starting (a few MB) or loading the model.
            mem = [mb for t, mb in samples if span.first <= t <= span.last]
            if len(mem) < 10:
                raise SystemExit(f"the memory run lasted {span.last - span.first:.0f} s: too short to sample")
            tenth = len(mem) // 10
            section = f"memory over {span.count:,} messages ({len(mem)} samples, 1 a second)"
            first, last = float(np.mean(mem[:tenth])), float(np.mean(mem[-tenth:]))
            # A leak grows with the messages, a warm-up stops: the slope over the second half
            # (MB per million messages) tells them apart, and each tenth's mean shows the shape.
            half = np.asarray(mem[len(mem) // 2 :])
            slope = float(np.polyfit(np.arange(len(half)), half, 1)[0]) * 1e6 / span.rate
            tenths = "  ".join(f"{np.mean(mem[k * tenth : (k + 1) * tenth]):.0f}" for k in range(10))
            rows += [
                Row(section, "RSS over the first 10% of the run", first, "MB"),
                Row(section, "RSS over the last 10% of the run", last, "MB", f"{last - first:+.1f} MB"),
                Row(section, "RSS max", float(max(mem)), "MB"),
                Row(section, "RSS slope over the second half", slope, "MB/M msgs", f"tenths: {tenths}"),
                Row(section, "throughput of that run", span.rate, "events/s"),
            ]
    finally:
        broker.drop()
    print(format_table(rows, lambda r: r.ratio))
    print(
        f"targets: at-least-once >= 80% of the raw pipe, exactly-once >= 0.9x at-least-once, >= 100x the plain loop, "
        f"p99 <= {MAX_WAIT_MS + 20} ms; log: {log}"
    )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if sys.argv[1:2] == ["pipe"]:  # a pipe case in its own process: pipe raw|flush BOOTSTRAP IN OUT N
        kind, bootstrap, inp, out, n = sys.argv[2:]
        consumer, _producer = run_pipe(bootstrap, inp, out, int(n), flush_each_batch=kind == "flush")
        sys.stdin.read()  # stay until the benchmark has read the CPU time
        consumer.close()
        sys.exit(0)
    sys.exit(main())
