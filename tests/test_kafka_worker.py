"""The scorer's worker and its produce loop, without a broker.

The worker scores a batch in chunks: the outputs come back in the inputs' order and each drift
window's counts equal a DriftMonitor's over that window's readable rows (runs across window
boundaries inside chunks, bad messages among them). The produce loop counts exactly the outputs
it handed to the producer, in order, when the producer's queue is full part-way or it refuses an
output as too large: a flight never waits for fewer acknowledgements than it has outputs out, so
its offsets are never committed early.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from confluent_kafka import KafkaError, KafkaException

from kafka_support import FEATURES, feature_rows, json_values, logistic_model
from streamml import Model, _streamml
from streamml.drift import DriftMonitor, DriftWindows
from streamml.kafka import ScoringLoop
from streamml.kafka.delivery import AtLeastOnce, Flight
from streamml.kafka.scoring import SCORE_CHUNK, Worker

WINDOW_MS = 1000


class Message:
    """What the worker and the loop read of a consumed message."""

    def __init__(self, value: bytes, offset: int, partition: int = 0, time_ms: int = 0, key: bytes | None = None):
        self._value, self._offset, self._partition, self._time, self._key = value, offset, partition, time_ms, key

    def value(self) -> bytes:
        return self._value

    def offset(self) -> int:
        return self._offset

    def partition(self) -> int:
        return self._partition

    def timestamp(self) -> tuple[int, int]:
        return (1, self._time)

    def key(self) -> bytes | None:
        return self._key

    def error(self) -> None:
        return None


@pytest.fixture(scope="module")
def referenced(tmp_path_factory: pytest.TempPathFactory) -> Model:
    return logistic_model(tmp_path_factory.mktemp("kafka-workers"), 3000, seed=5, label=lambda x: x[:, 0] + x[:, 2])


def messages(n: int, seed: int) -> list[Message]:
    """``n`` messages over 5 drift windows (a run crosses a window inside a chunk), 1 in 50 unreadable."""
    x = feature_rows(n, seed=seed)
    x[n // 2 :, 0] += 1.0  # the later windows drift
    values = json_values(x)
    for i in range(0, n, 50):
        values[i] = b'{"id": %d, "x0": "high"}' % i
    # Timestamps rise, in steps that do not line up with the chunks; window k starts at k * WINDOW_MS.
    stamps = [10_000 + (i * 5 * WINDOW_MS) // n for i in range(n)]
    return [Message(v, i, i % 3, stamps[i], str(i).encode()) for i, v in enumerate(values)]


def score(model: Model, batch: list[Message]) -> tuple[list[Any], list[tuple[int, str]], list[Any]]:
    """Every output and failure of ``batch`` scored by the worker, and the drift windows' counts."""
    windows = DriftWindows(model.info["drift_reference"], window_ms=WINDOW_MS)
    codec = _streamml.MessageScorer.create(model._inner, "json", "id")
    worker = Worker(codec, windows)
    try:
        outputs, errors = [], []
        for start in range(0, len(batch), 1000):  # batches of the scorer's default size
            scoring = worker.submit(batch[start : start + 1000])
            done = 0
            while scoring.chunks:
                out, errs, _ = scoring.chunks.popleft().result()
                errors += [(done + start + i, reason) for i, reason in errs]
                outputs += out
                done += len(out)
    finally:
        worker.shutdown()
    counts = [(start, monitor.counts()) for start, monitor in windows.take()]
    return outputs, errors, counts


def test_chunks_keep_the_order_and_count_drift_per_window(referenced: Model) -> None:
    batch = messages(6 * 1000 + 123, seed=21)
    outputs, errors, counts = score(referenced, batch)
    # The order of the inputs: each output carries its input's id.
    ids = [json.loads(o)["id"] for o in outputs if o is not None]
    assert ids == [i for i in range(len(batch)) if i % 50]
    assert [i for i, _ in errors] == list(range(0, len(batch), 50))
    # Runs cross windows inside chunks; every window is counted.
    assert [start for start, _ in counts] == [10_000, 11_000, 12_000, 13_000, 14_000]
    # And those are the counts of a DriftMonitor over each window's readable rows.
    rows = np.array([[json.loads(m.value())[f] for f in FEATURES] for m in batch if m.offset() % 50])
    stamps = np.array([m.timestamp()[1] for m in batch if m.offset() % 50])
    for start, got in counts:
        inside = (stamps >= start) & (stamps < start + WINDOW_MS)
        expected = DriftMonitor.from_model(referenced)
        table = pa.table({f: rows[inside, j] for j, f in enumerate(FEATURES)})
        expected.observe(table, referenced.predict(table))
        assert got == expected.counts(), start
    assert len(batch) // SCORE_CHUNK > 2  # batches of several chunks


@pytest.fixture(scope="module")
def challenger(tmp_path_factory: pytest.TempPathFactory) -> Model:
    """Another model of the same inputs (trained on another label), with its own drift reference."""
    out = tmp_path_factory.mktemp("kafka-workers-challenger")
    return logistic_model(out, 3000, seed=6, label=lambda x: x[:, 1] - x[:, 3])


class Version:
    """What the worker reads of a version (:class:`~streamml.kafka.versions.Serving`)."""

    def __init__(self, model: Model) -> None:
        self.codec = _streamml.MessageScorer.create(model._inner, "json", "id")
        self.drift = DriftWindows(model.info["drift_reference"], window_ms=WINDOW_MS)


def test_challengers_score_every_chunk_as_they_would_alone(referenced: Model, challenger: Model) -> None:
    """One decoding for both versions changes nothing a version gets: outputs, failures, drift counts."""
    batch = messages(3 * 1000 + 77, seed=23)
    champion, other = Version(referenced), Version(challenger)
    worker = Worker(champion.codec, champion.drift)
    sides: list[bool] = []
    try:
        results: list[tuple[list[Any], list[tuple[int, str]]]] = [([], []), ([], [])]
        for start in range(0, len(batch), 1000):
            part = batch[start : start + 1000]
            scoring = worker.submit(part, champion, [other], lambda values: [b'"id": 1' in v for v in values])
            assert len(scoring.chunks) == -(-len(part) // SCORE_CHUNK)
            done = 0
            while scoring.chunks:
                first, shadowed, on_canary = scoring.chunks.popleft().result()
                assert [r[2] for r in shadowed] == [0.0]
                assert first[2] > 0
                for (outputs, errors), (out, errs, _) in zip(results, [first, *shadowed], strict=True):
                    errors += [(done + start + i, reason) for i, reason in errs]
                    outputs += out
                sides += on_canary
                done += len(first[0])
    finally:
        worker.shutdown()
    assert sides == [b'"id": 1' in m.value() for m in batch]
    for model, version, (outputs, errors) in [(referenced, champion, results[0]), (challenger, other, results[1])]:
        alone_outputs, alone_errors, alone_counts = score(model, batch)
        assert outputs == alone_outputs
        assert errors == alone_errors
        assert [(start, m.counts()) for start, m in version.drift.take()] == alone_counts
    assert results[0][0] != results[1][0]  # two models, two sets of scores
    assert sum(o is not None for o in results[1][0]) == len(batch) - len(range(0, len(batch), 50))


class Producer:
    """Records ``produce`` calls; its queue is full at ``full`` (once each), it refuses the value at ``too_large``."""

    def __init__(self, full: set[int] = frozenset(), too_large: int | None = None) -> None:
        self.sent: list[tuple[Any, ...]] = []
        self.full, self.too_large = set(full), too_large
        self.polls = 0

    def produce(self, *args: Any, **kwargs: Any) -> None:
        i = len(self.sent)
        if i in self.full:
            self.full.discard(i)
            raise BufferError("Local: Queue full")
        if i == self.too_large:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        self.sent.append((*args, kwargs))

    def poll(self, timeout: float = 0) -> int:
        self.polls += 1
        return 0


class Consumer:
    def pause(self, partitions: Any) -> None:
        pass


@pytest.fixture
def loop(referenced: Model) -> ScoringLoop:
    scorer = ScoringLoop(referenced, "127.0.0.1:1", "in", "out", drift=False)
    scorer._consumer = Consumer()
    scorer._assigned = {0, 1, 2}
    return scorer


@pytest.mark.parametrize("full", [set(), {0}, {3, 4}, {199}])
def test_the_produce_loop_counts_every_output_it_handed_over(loop: ScoringLoop, full: set[int]) -> None:
    batch = [Message(b"{}", i, i % 3, key=str(i).encode()) for i in range(200)]
    outputs = [b"out-%d" % i for i in range(200)]
    flight = AtLeastOnce("in").open(batch, None)
    loop._producer = producer = Producer(full)
    headers = [("streamml.model.version", b"7")]
    assert loop._produce_outputs(batch, outputs, flight, headers) == 200
    assert flight.unacked == 200
    assert [(a[1], a[2]) for a in producer.sent] == [(o, m.key()) for o, m in zip(outputs, batch, strict=True)]
    topic, _, _, kwargs = producer.sent[0]
    assert topic == "out"
    assert kwargs == {"headers": headers, "on_delivery": flight.on_delivery}
    assert producer.polls == len(full)  # waited for room once per full queue


def test_the_produce_loop_stops_at_an_output_too_large(loop: ScoringLoop) -> None:
    batch = [Message(b"{}", i, key=b"k") for i in range(50)]
    flight = Flight(batch, None)
    loop._producer = producer = Producer(full={7}, too_large=31)
    assert loop._produce_outputs(batch, [b"o"] * 50, flight, []) == 31
    assert flight.unacked == 31 == len(producer.sent)


def test_a_flight_commits_no_offset_before_its_last_acknowledgement() -> None:
    """Offsets per partition from a batch of interleaved partitions; acknowledged only once every output is."""
    batch = [Message(b"{}", 100 + i, p) for i, p in enumerate([2, 0, 2, 1, 0, 2])]
    flight = Flight(batch, None)
    assert flight.first == {2: 100, 0: 101, 1: 103}
    assert flight.next == {2: 106, 0: 105, 1: 104}
    flight.unacked = 6
    flight.produced = True
    for _ in range(5):
        flight.on_delivery(None, None)
        assert not flight.acknowledged
    flight.on_delivery(None, None)
    assert flight.acknowledged
