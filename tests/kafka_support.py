"""Helpers for the Kafka scorer's tests: uuid topics, producing rows, reading outputs, scorer processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

FEATURES = [f"x{i}" for i in range(32)]


@contextlib.contextmanager
def kafka_topics(
    bootstrap: str, names: Sequence[str], partitions: int = 3, config: dict[str, str] | None = None
) -> Iterator[list[str]]:
    """Create uuid-suffixed topics (with topic ``config``, if given); delete them afterwards."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    suffix = uuid.uuid4().hex[:10]
    topics = [f"test-{n}-{suffix}" for n in names]
    for future in admin.create_topics([NewTopic(t, partitions, 1, config=config or {}) for t in topics]).values():
        future.result(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # metadata of new topics takes a moment to settle
        meta = admin.list_topics(timeout=10).topics
        if all(t in meta and len(meta[t].partitions) == partitions for t in topics):
            break
        time.sleep(0.1)
    try:
        yield topics
    finally:
        with contextlib.suppress(Exception):
            for future in admin.delete_topics(topics, operation_timeout=30).values():
                future.result(30)


def feature_rows(n: int, seed: int) -> np.ndarray:
    """``n`` rows of the 32 S1/R1 features, rounded so messages stay small."""
    return np.round(np.random.default_rng(seed).standard_normal((n, 32)), 6)


def logistic_model(out: Path, n: int, seed: int, label: Callable[[np.ndarray], np.ndarray]) -> Any:
    """A logistic regression on ``n`` :func:`feature_rows` (class ``label(x) > 0``), compiled into
    ``out/m.so`` with those rows as its drift reference, and loaded."""
    import pyarrow as pa
    from sklearn.linear_model import LogisticRegression

    from streamml import Model
    from streamml.compile import compile

    x = feature_rows(n, seed=seed)
    ref = pa.table({name: x[:, j] for j, name in enumerate(FEATURES)})
    fitted = LogisticRegression().fit(x, (label(x) > 0).astype(int))
    return Model.load(compile(fitted, out / "m.so", features=FEATURES, reference=ref))


def json_values(x: np.ndarray, start: int = 0) -> list[bytes]:
    """One JSON object per row: ``{"id": start + i, "x0": ..., "x31": ...}``."""
    names = [f'"{f}":' for f in FEATURES]
    out = []
    for i, row in enumerate(x.tolist()):
        body = ",".join(n + repr(v) for n, v in zip(names, row, strict=True))
        out.append(f'{{"id":{start + i},{body}}}'.encode())
    return out


def produce(
    bootstrap: str,
    topic: str,
    values: Sequence[bytes],
    keys: Sequence[bytes | None],
    timestamps: Sequence[int] | None = None,
    max_bytes: int = 1_000_000,
) -> None:
    """Produce values with keys (and message timestamps, ms), in order, and wait until all are acknowledged."""
    p = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, "enable.idempotence": True, "message.max.bytes": max_bytes}
    )
    stamps = timestamps if timestamps is not None else [0] * len(values)
    for v, k, t in zip(values, keys, stamps, strict=True):
        while True:
            try:
                p.produce(topic, v, k, timestamp=t)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0


@dataclass
class Record:
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]
    partition: int
    offset: int


def consume(
    bootstrap: str, topic: str, *, at_least: int, idle: float = 1.0, timeout: float = 120.0, committed: bool = True
) -> list[Record]:
    """Read a topic from the start until ``at_least`` records came and then ``idle`` seconds passed with none."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed" if committed else "read_uncommitted",
        }
    )
    c.subscribe([topic])
    out: list[Record] = []
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    try:
        while time.monotonic() < deadline:
            msgs = c.consume(num_messages=10_000, timeout=0.2)
            for m in msgs:
                if m.error() is not None:
                    continue
                out.append(Record(m.key(), m.value() or b"", dict(m.headers() or []), m.partition(), m.offset()))
            if msgs:
                last = time.monotonic()
            elif len(out) >= at_least and time.monotonic() - last >= idle:
                break
    finally:
        c.close()
    return out


def committed_total(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    """Sum of the group's committed offsets on the topic (-1 while the broker cannot say, e.g. restarting)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    except KafkaException:
        return -1
    finally:
        c.close()
    return sum(max(tp.offset, 0) for tp in got)


class ScorerProcess:
    """``streamml score ...`` in a subprocess (so it can be SIGKILLed), its log in a file."""

    def __init__(self, args: Sequence[str], log: Path) -> None:
        self.args = [sys.executable, "-m", "streamml.cli", "score", *args]
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ScorerProcess:
        with self.log.open("ab") as f:
            f.write(f"--- start {time.time():.3f}\n".encode())
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            self.proc = subprocess.Popen(self.args, stdout=f, stderr=subprocess.STDOUT, env=env)
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM once the scorer runs (its handlers are installed), then the exit code.

        A SIGTERM that lands while the interpreter still imports would kill it (-15): no
        Python handler can exist yet. So wait for the current start's "scoring" log line.
        """
        assert self.proc is not None
        wait_until(
            lambda: not self.alive() or "INFO scoring " in self.output().rsplit("--- start ", 1)[-1],
            timeout,
            "the scorer to start",
        )
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def dump(self) -> str:
        """Every thread's stack (SIGUSR1, faulthandler), then the log."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(1)
        return self.output()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def run_scorer(scorer: Any, until: int, timeout: float = 60) -> BaseException | None:
    """Run a ``streamml.kafka.ScoringLoop`` in a thread until its statistics count ``until`` messages (or it
    stopped), then stop it and wait for it; what ``run`` raised, if anything."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            scorer.run()
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=target)
    thread.start()
    try:
        wait_until(lambda: scorer.stats["in"] >= until or not thread.is_alive(), timeout, f"{until} messages scored")
    finally:
        scorer.stop()
        thread.join(60)
    assert not thread.is_alive()
    return errors[0] if errors else None


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def ids_of(records: Sequence[Record]) -> list[int]:
    return [json.loads(r.value)["id"] for r in records]
