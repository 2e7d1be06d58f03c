"""`streamml feedback` on a real Kafka broker: two topics into the store, poison to the dead-letter topic."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamml.kafka import HEADER_ERROR
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
        dlq_topic=dlq_topic,
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
    assert dict(got[0].headers())[HEADER_ERROR].decode().startswith(f"topic {preds_topic} partition")


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
    assert (saved["service"], saved["model"], saved["model_version"], saved["shard"]) == ("feedback", "*", "*", group)
    # The checkpoint is JSON (no pickle): each version's checksummed bytes and the offsets they cover.
    from streamml.feedback_service import decode_checkpoint

    joins, offsets = decode_checkpoint(saved["state"], "saved")
    assert list(joins) == [("m", "1")]  # the predictions had no version headers: the given version
    join = joins[("m", "1")]
    assert (join.pending_count, len(join.labelled)) == (150, 150)
    assert sum(o for (t, _), o in offsets.items() if t == preds_topic) == 300


def committed(bootstrap: str, group: str, topic: str) -> list[int]:
    """The group's committed offset of each of the topic's two partitions (-1001: none)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        return [tp.offset for tp in c.committed([TopicPartition(topic, p) for p in (0, 1)], timeout=30)]
    finally:
        c.close()


def dead_letters(bootstrap: str, topic: str, at_least: int) -> list:
    from confluent_kafka import Consumer

    c = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"dlq-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest"}
    )
    c.subscribe([topic])
    got: list = []
    try:
        for _ in range(60):
            got += [m for m in c.consume(100, 0.5) if m.error() is None]
            if len(got) >= at_least:
                got += [m for m in c.consume(100, 2.0) if m.error() is None]
                break
    finally:
        c.close()
    return got


def test_a_store_outage_stops_the_service_without_committing_and_a_restart_stores_everything(
    kafka_bootstrap: str, topics: tuple[str, str, str], tmp_path: Path
) -> None:
    """Run 1 stores 300 predictions. Run 2 reads 150 labels (plus a poison message and a label
    stamped 31 years ahead) while another connection holds the SQLite file locked: its store
    writes fail, it stops without committing. Run 3 (store back) reads the labels again:
    every row is stored once, and the counts are exact."""
    import subprocess
    import sys
    import threading
    import time

    from confluent_kafka import Producer

    from streamml.feedback_service import FeedbackServiceError, run

    preds_topic, labels_topic, dlq_topic = topics
    uri = str(tmp_path / "store.db")
    group = f"g-{uuid.uuid4().hex[:6]}"

    def service(**kw: object) -> object:
        return run(
            kafka_bootstrap, preds_topic, labels_topic, uri, group_id=group, ttl_ms=60_000, window_ms=100_000,
            model="m", model_version="1", dlq_topic=dlq_topic, **kw,
        )  # fmt: skip

    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(300):
        producer.produce(preds_topic, json.dumps({"event_id": i, "event_time": 1000 + i, "probability": 0.7}))
    producer.flush(30)
    first = service(idle_exit_s=4)
    assert (first.predictions, first.labels) == (300, 0)
    preds_committed = committed(kafka_bootstrap, group, preds_topic)
    assert sum(o for o in preds_committed if o >= 0) == 300
    assert committed(kafka_bootstrap, group, labels_topic) == [-1001, -1001]

    outcome: dict[str, object] = {}

    def second_run() -> None:
        try:
            outcome["stats"] = service(idle_exit_s=20, checkpoint_s=3600, store_retry_s=1.0)
        except Exception as e:
            outcome["error"] = e

    thread = threading.Thread(target=second_run)
    thread.start()
    time.sleep(4)  # the service has opened the store and joined the group
    # The store is out: another process holds the SQLite file locked, every write of the service
    # fails (a lock of this process would not do: POSIX locks do not conflict within a process).
    hold = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0); "
    hold += "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); sys.stdin.read(); c.execute('ROLLBACK')"
    lock = subprocess.Popen([sys.executable, "-c", hold, uri], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert lock.stdout.readline() == "locked\n"
    for i in range(150):
        producer.produce(labels_topic, json.dumps({"event_id": i, "label_time": 1100 + i, "label": 1}))
    producer.produce(labels_topic, b"{not json")
    producer.produce(labels_topic, json.dumps({"event_id": 299, "label_time": 10**12 * 3, "label": 1}))  # 2065
    producer.flush(30)
    thread.join(60)
    lock.stdin.close()
    assert lock.wait(30) == 0
    lock.stdout.close()
    assert not thread.is_alive()
    error = outcome.get("error")
    assert isinstance(error, FeedbackServiceError), outcome
    assert str(error).startswith("feedback service: the write of table '")
    assert "stopped without committing the offsets of unstored work" in str(error)
    assert committed(kafka_bootstrap, group, labels_topic) == [-1001, -1001], "nothing past unstored work"
    assert committed(kafka_bootstrap, group, preds_topic) == preds_committed

    third = service(idle_exit_s=4)
    assert (third.predictions, third.labels, third.feedback, third.dead_letters, third.refused) == (0, 150, 150, 2, 1)
    assert sum(o for o in committed(kafka_bootstrap, group, labels_topic) if o >= 0) == 152
    with Store(uri) as store:
        count = {
            t: store.query(f"SELECT count(*) AS n FROM {t}").column("n")[0].as_py()
            for t in ("predictions", "labels", "feedback")
        }
        q = {
            r["metric"]: r["v"]
            for r in store.query("SELECT metric, SUM(value) AS v FROM quality GROUP BY metric").to_pylist()
        }
    assert count == {"predictions": 300, "labels": 150, "feedback": 150}
    assert (q["predictions"], q["labeled"], q["future_labels"], q["orphan_labels"], q["expired"]) == (300, 150, 1, 0, 0)
    assert (q["duplicate_labels"], q["non_finite_scores"], q["tp"]) == (0, 0, 150)
    # The dead letters of run 3, and those run 2 sent before its store write failed (at least once).
    letters = dead_letters(kafka_bootstrap, dlq_topic, at_least=2)
    future = json.dumps({"event_id": 299, "label_time": 10**12 * 3, "label": 1}).encode()
    assert {m.value() for m in letters} == {b"{not json", future}
    reasons = {dict(m.headers())[HEADER_ERROR].decode().split(": ", 1)[1] for m in letters}
    want = "feedback join: labels field 'label_time' is 3000000000000, more than max_future_skew"
    assert any(r.startswith(want) for r in reasons), reasons


def test_the_checkpoint_is_json_and_a_pickled_or_altered_one_is_refused() -> None:
    import base64
    import pickle

    import pyarrow as pa

    from streamml import InputError
    from streamml.feedback import FeedbackJoin
    from streamml.feedback_service import decode_checkpoint, encode_checkpoint

    join = FeedbackJoin(ttl=100, window=1000)
    join.add_predictions(pa.table({"event_id": [1, 2], "event_time": [5, 6], "probability": [0.2, 0.9]}))
    text = encode_checkpoint({("m", "1"): join}, {("p", 1): 7, ("l", 0): 3})
    doc = json.loads(text)
    assert (doc["format"], doc["offsets"]) == ("streamml.feedback_checkpoint/2", [["l", 0, 3], ["p", 1, 7]])
    joins, offsets = decode_checkpoint(text, "row x")
    back = joins[("m", "1")]
    assert (back.pending, back.windows, back.watermark) == (join.pending, join.windows, join.watermark)
    assert offsets == {("p", 1): 7, ("l", 0): 3}
    legacy = base64.b64encode(pickle.dumps({"join": join.snapshot(), "offsets": {}})).decode()
    with pytest.raises(InputError, match=r"^feedback service: the checkpoint row x cannot be read: it is not JSON"):
        decode_checkpoint(legacy, "row x")
    state = bytearray(base64.b64decode(doc["versions"][0]["state"]))
    state[-1] ^= 1
    altered = json.dumps(dict(doc, versions=[dict(doc["versions"][0], state=base64.b64encode(bytes(state)).decode())]))
    with pytest.raises(InputError, match=r"cannot be read: the payload's CRC-32C is [0-9a-f]{8}, the header says"):
        decode_checkpoint(altered, "row x")
    with pytest.raises(InputError, match=r"'offsets' is not a list of \[topic, partition, offset\]"):
        decode_checkpoint(json.dumps(dict(doc, offsets=[["p", 0, -5]])), "row x")


def test_feedback_takes_X_properties_and_writes_score_s_dead_letters(
    kafka_bootstrap: str, topics: tuple[str, str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`streamml feedback` with score's flags: the brokers reach both clients only through `-X` (the
    `--bootstrap-servers` given is a dead port), the dead-letter producer's size limit is `-X
    producer.message.max.bytes`, and a dead letter carries score's headers, cut to that limit."""
    from confluent_kafka import Producer

    from streamml.cli import main
    from streamml.compile import write_binary
    from streamml.kafka import (
        HEADER_ERROR,
        HEADER_MODEL,
        HEADER_OFFSET,
        HEADER_PARTITION,
        HEADER_SIZE,
        HEADER_TOPIC,
        HEADER_VERSION,
    )

    ir = {
        "format": "streamml-ir", "version": 1, "name": "lin", "model_version": "3", "framework": "test",
        "task": "regression", "features": ["a"], "classes": None, "link": "identity",
        "model": {"type": "linear", "n_outputs": 1, "coef": [[1.0]], "intercept": [0.0]},
    }  # fmt: skip
    model = write_binary(ir, tmp_path / "lin.so")
    preds_topic, labels_topic, dlq_topic = topics
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(50):
        producer.produce(preds_topic, json.dumps({"event_id": i, "event_time": 1000 + i, "probability": 0.7}))
    poison = b"[" + b"0," * 5000 + b"0]"  # JSON, not an object; 10,002 bytes
    producer.produce(preds_topic, poison, key=b"poison", partition=1)
    for i in range(20):
        producer.produce(labels_topic, json.dumps({"event_id": i, "label_time": 1100 + i, "label": 1}))
    producer.flush(30)
    uri = str(tmp_path / "store.db")
    code = main(
        [
            "feedback", "--bootstrap-servers", "127.0.0.1:1", "--predictions-topic", preds_topic,
            "--labels-topic", labels_topic, "--store", uri, "--group-id", f"g-{uuid.uuid4().hex[:6]}",
            "--dlq-topic", dlq_topic, "--model", str(model), "--window-s", "100", "--ttl-s", "60",
            "--idle-exit-s", "6", "-X", f"bootstrap.servers={kafka_bootstrap}",
            "-X", "producer.message.max.bytes=3000",
        ]
    )  # fmt: skip
    assert code == 0
    # Labels may be read before their predictions (two topics): those are orphans, not feedback.
    out = capsys.readouterr().out
    assert out.startswith("predictions 50, labels 20, feedback ")
    assert out.endswith(", dead letters 1 (future-stamped 0)\n")
    with Store(uri) as store:
        rows = store.query("SELECT DISTINCT model, model_version, window_start FROM predictions").to_pylist()
    assert rows == [{"model": "lin", "model_version": "3", "window_start": 0}]
    (letter,) = dead_letters(kafka_bootstrap, dlq_topic, at_least=1)
    headers = dict(letter.headers())
    assert sorted(headers) == sorted(
        [HEADER_MODEL, HEADER_VERSION, HEADER_ERROR, HEADER_TOPIC, HEADER_PARTITION, HEADER_OFFSET, HEADER_SIZE]
    )
    assert (headers[HEADER_MODEL], headers[HEADER_VERSION]) == (b"lin", b"3")
    assert (headers[HEADER_TOPIC], headers[HEADER_PARTITION], headers[HEADER_OFFSET]) == (
        preds_topic.encode(),
        b"1",
        str(letter_offset(kafka_bootstrap, preds_topic)).encode(),
    )
    assert headers[HEADER_ERROR].decode() == f"topic {preds_topic} partition 1 offset {int(headers[HEADER_OFFSET])}: " \
        "expected a JSON object, got list"  # fmt: skip
    assert headers[HEADER_SIZE] == str(len(poison)).encode()
    assert letter.key() == b"poison"
    assert poison.startswith(letter.value())
    assert 2000 < len(letter.value()) < 3000 - 512


def letter_offset(bootstrap: str, topic: str) -> int:
    """The offset of the last message of partition 1 of ``topic``."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"w-{uuid.uuid4().hex[:6]}"})
    try:
        _, high = c.get_watermark_offsets(TopicPartition(topic, 1), timeout=30)
    finally:
        c.close()
    return high - 1
