"""`streamml feedback` on a real Kafka broker: two topics into the store, poison to the dead-letter topic."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamml.store import Store

pytestmark = pytest.mark.kafka


@pytest.fixture
def topics(kafka_bootstrap: str) -> Iterator[tuple[str, str, str]]:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    names = tuple(f"streamml-{kind}-{uuid.uuid4().hex[:8]}" for kind in ("predictions", "labels", "dlq"))
    for f in admin.create_topics([NewTopic(n, num_partitions=2, replication_factor=1) for n in names]).values():
        f.result(30)
    yield names
    for f in admin.delete_topics(list(names)).values():
        f.result(30)


def test_the_service_joins_two_topics_into_the_store(
    kafka_bootstrap: str, topics: tuple[str, str, str], tmp_path: Path
) -> None:
    from confluent_kafka import Consumer, Producer

    from streamml.feedback_service import run

    preds_topic, labels_topic, dlq_topic = topics
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(300):
        producer.produce(
            preds_topic, json.dumps({"event_id": i, "event_time": 1000 + i, "probability": (i % 10) / 10}), key=str(i)
        )
    producer.produce(preds_topic, b"{not json", key=b"bad")
    for i in range(0, 300, 2):  # every other prediction gets a label, 100 ms later
        producer.produce(
            labels_topic, json.dumps({"event_id": i, "label_time": 1100 + i, "label": i % 3 == 0}), key=str(i)
        )
    producer.produce(
        labels_topic, json.dumps({"event_id": 5000, "label_time": 9999, "label": 1}), key=b"5000"
    )  # orphan
    producer.flush(30)

    uri = str(tmp_path / "store.db")
    stats = run(
        kafka_bootstrap,
        preds_topic,
        labels_topic,
        uri,
        group_id=f"g-{uuid.uuid4().hex[:6]}",
        ttl_ms=60_000,
        window_ms=100_000,
        model="m",
        model_version="1",
        dead_letter_topic=dlq_topic,
        idle_exit_s=8,
    )
    assert (stats.predictions, stats.labels, stats.dead_letters) == (300, 151, 1)
    assert "offset" in stats.errors[0]
    with Store(uri) as store:
        assert store.query("SELECT count(*) AS n FROM predictions").column("n")[0].as_py() == 300
        assert store.query("SELECT count(*) AS n FROM feedback").column("n")[0].as_py() == stats.feedback
        q = {
            r["metric"]: r["v"]
            for r in store.query("SELECT metric, SUM(value) AS v FROM quality GROUP BY metric").to_pylist()
        }
    # Labels can be read before their predictions (two topics, no order between them): those are orphans.
    assert q["labeled"] == stats.feedback
    assert q["labeled"] + q["orphan_labels"] + q.get("late_labels", 0) == 151
    assert q["orphan_labels"] >= 1

    dlq = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "dlq-reader", "auto.offset.reset": "earliest"})
    dlq.subscribe([dlq_topic])
    got = []
    for _ in range(30):
        got += [m for m in dlq.consume(10, 1.0) if m.error() is None]
        if got:
            break
    dlq.close()
    assert [m.value() for m in got] == [b"{not json"]
    assert dict(got[0].headers())["error"].decode().startswith(f"topic {preds_topic} partition")


def test_a_restarted_service_resumes_its_pending_predictions_without_double_counting(
    kafka_bootstrap: str, topics: tuple[str, str, str], tmp_path: Path
) -> None:
    """Run 1 reads 300 predictions and stops; run 2 (same group) reads their labels: each is joined
    (the pending state came back from the checkpoint) and nothing is counted twice."""
    from confluent_kafka import Producer

    from streamml.feedback_service import run

    preds_topic, labels_topic, _ = topics
    uri = str(tmp_path / "store.db")
    group = f"g-{uuid.uuid4().hex[:6]}"

    def service() -> object:
        return run(
            kafka_bootstrap, preds_topic, labels_topic, uri, group_id=group, ttl_ms=60_000, window_ms=100_000,
            model="m", model_version="1", idle_exit_s=4,
        )  # fmt: skip

    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(300):
        producer.produce(preds_topic, json.dumps({"event_id": i, "event_time": 1000 + i, "probability": 0.7}))
    producer.flush(30)
    first = service()
    assert (first.predictions, first.labels) == (300, 0)
    for i in range(0, 300, 2):
        producer.produce(labels_topic, json.dumps({"event_id": i, "label_time": 1100 + i, "label": 1}))
    producer.flush(30)
    second = service()
    # Run 2 read only the labels: the predictions' offsets were covered by the checkpoint.
    assert (second.predictions, second.labels, second.feedback) == (0, 150, 150)
    with Store(uri) as store:
        q = {
            r["metric"]: r["v"]
            for r in store.query("SELECT metric, SUM(value) AS v FROM quality GROUP BY metric").to_pylist()
        }
        assert store.query("SELECT count(*) AS n FROM feedback").column("n")[0].as_py() == 150
        (saved,) = store.read("checkpoints").to_pylist()
    assert (q["predictions"], q["labeled"], q.get("orphan_labels", 0), q["tp"]) == (300, 150, 0, 150)
    assert (saved["service"], saved["shard"]) == ("feedback", group)
