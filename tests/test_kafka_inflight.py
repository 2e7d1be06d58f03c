"""At-least-once with many batches in flight: the committed offset never passes an unacknowledged message.

The dead-letter topic does not exist yet (and the scorer's producer may not create it), and a
range of the input is unreadable, so those messages' dead letters wait unacknowledged in the
producer while the outputs of the messages around them are acknowledged. The scorer keeps consuming and producing
past them (up to its rows in flight) and is SIGKILLed there; then every committed offset is
checked against what actually arrived in the output topic. Then the dead-letter topic is
created, a restarted scorer finishes, and every input has its output or dead letter.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from kafka_support import (
    ScorerProcess,
    committed_total,
    consume,
    feature_rows,
    json_values,
    kafka_topics,
    produce,
    wait_until,
)
from streamml.kafka import HEADER_OFFSET, HEADER_PARTITION

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PARTITIONS = 4
BATCH = 500
IN_FLIGHT = 30 * BATCH
N = 40_000
#: Inputs whose dead letters cannot be acknowledged until the topic is mended.
POISON = range(8_000, 8_040)


@contextlib.contextmanager
def made_later(admin: AdminClient, name: str) -> Iterator[str]:
    """A topic name the test creates when it wants to; deleted afterwards if it was."""
    try:
        yield name
    finally:
        with contextlib.suppress(Exception):
            admin.delete_topics([name], operation_timeout=30)[name].result(30)


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
    finally:
        c.close()
    return {tp.partition: max(tp.offset, 0) for tp in got}


def input_positions(bootstrap: str, topic: str) -> dict[int, tuple[int, int]]:
    """Each input's id (the poison ones: their index) -> its (partition, offset)."""
    out = {}
    for r in consume(bootstrap, topic, at_least=N, idle=0.5):
        out[int(r.value.split(b",", 1)[0].removeprefix(b'{"id":').removeprefix(b"poison "))] = (r.partition, r.offset)
    return out


def arrived(bootstrap: str, out: str, dlq: str | None, positions: dict[int, tuple[int, int]]) -> set[tuple[int, int]]:
    """The (partition, offset) of every input whose output or dead letter (if ``dlq``) is in its topic."""
    done = {
        positions[json.loads(r.value)["id"]] for r in consume(bootstrap, out, at_least=0, idle=0.5, committed=False)
    }
    for r in consume(bootstrap, dlq, at_least=0, idle=0.5, committed=False) if dlq else []:
        done.add((int(r.headers[HEADER_PARTITION]), int(r.headers[HEADER_OFFSET])))
    return done


def test_a_sigkill_with_batches_in_flight_never_commits_past_an_unacknowledged_message(
    kafka_bootstrap: str, s1_path: Path, tmp_path: Path
) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    with (
        kafka_topics(kafka_bootstrap, ["in", "out"], PARTITIONS) as (inp, out),
        made_later(admin, f"{inp}.dlq") as dlq,
    ):
        values = json_values(feature_rows(N, seed=29))
        for i in POISON:
            values[i] = f"poison {i}".encode()
        produce(kafka_bootstrap, inp, values, [f"k{i % 97}".encode() for i in range(N)])
        group = f"g-{uuid.uuid4().hex[:8]}"
        args = [
            "--model", str(s1_path), "--bootstrap-servers", kafka_bootstrap, "--input-topic", inp,
            "--output-topic", out, "--dlq-topic", dlq, "--group-id", group, "--id-field", "id",
            "--max-batch-rows", str(BATCH), "--max-wait-ms", "20", "--commit-interval-ms", "20",
            "--max-in-flight-rows", str(IN_FLIGHT),
        ]  # fmt: skip
        # Dead letters wait for the topic: the producer may not create it, and does not give up on them.
        no_dlq = [
            "-X",
            "producer.allow.auto.create.topics=false",
            "-X",
            "producer.topic.metadata.propagation.max.ms=600000",
        ]
        scorer = ScorerProcess([*args, *no_dlq], tmp_path / "scorer.log").start()
        positions = input_positions(kafka_bootstrap, inp)
        poison_at = {positions[i] for i in POISON}
        first_poison = {p: min(o for q, o in poison_at if q == p) for p, _ in poison_at}

        def outputs() -> int:
            return len(consume(kafka_bootstrap, out, at_least=0, idle=0.2, committed=False))

        try:
            # The scorer runs ahead of its last committable offset until its rows in flight are used up.
            wait_until(
                lambda: outputs() >= POISON.stop + 8 * BATCH or not scorer.alive(), 120, "outputs past the poison"
            )
            assert scorer.alive(), scorer.output()
            scorer.kill()
        finally:
            if scorer.alive():
                scorer.kill()
        offsets = committed(kafka_bootstrap, group, inp)
        assert dlq not in admin.list_topics(timeout=10).topics, "the dead-letter topic was created"
        done = arrived(kafka_bootstrap, out, None, positions)
        beyond = 0
        for p, committed_offset in offsets.items():
            missing = [o for o in range(committed_offset) if (p, o) not in done]
            assert missing == [], (
                f"partition {p} committed at {committed_offset} past unacknowledged offsets {missing[:5]}"
            )
            if p in first_poison:
                assert committed_offset <= first_poison[p]
            beyond += sum(1 for q, o in done if q == p and o >= committed_offset)
        # Progress before the poison was committed, and many batches were acknowledged past the commit point.
        assert sum(offsets.values()) > 0, offsets
        assert beyond >= 3 * BATCH, f"only {beyond} outputs beyond the committed offsets: not many batches in flight"

        # Mended: a restart scores from the committed offsets; every input gets its output or dead letter.
        admin.create_topics([NewTopic(dlq, 1, 1)])[dlq].result(30)
        scorer = ScorerProcess(args, tmp_path / "scorer.log").start()
        try:
            wait_until(lambda: committed_total(kafka_bootstrap, group, inp, PARTITIONS) >= N, 180, "all committed", 0.2)
            assert scorer.stop() == 0, scorer.output()
        finally:
            if scorer.alive():
                scorer.kill()
        done = arrived(kafka_bootstrap, out, dlq, positions)
        assert len(done) == N, f"{N - len(done)} input(s) lost"
        letters = consume(kafka_bootstrap, dlq, at_least=len(POISON), idle=0.5)
        assert {(int(r.headers[HEADER_PARTITION]), int(r.headers[HEADER_OFFSET])) for r in letters} == poison_at
