"""examples/kafka/bytewax_flow.py on the real broker: JSON events in, predictions and dead letters out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from streamml import Model
from streamml_dev.bytewax_flows import train_small_lightgbm
from streamml_dev.repo import REPO_ROOT
from test_bad_input import ABSENT

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

FLOW = REPO_ROOT / "examples" / "kafka" / "bytewax_flow.py"
N_EVENTS = 300


@pytest.fixture
def topics(kafka_bootstrap: str):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    names = {k: f"streamml-bytewax-{k}-{uuid.uuid4().hex[:10]}" for k in ("in", "out", "dlq")}
    futures = admin.create_topics([NewTopic(t, num_partitions=2, replication_factor=1) for t in names.values()])
    for f in futures.values():
        f.result(timeout=30)
    yield names
    for f in admin.delete_topics(list(names.values())).values():
        f.result(timeout=30)


def consume_all(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    out: list[bytes] = []
    empty_polls = 0
    try:
        while len(out) < expected or empty_polls < 3:
            msg = consumer.poll(1.0)
            if msg is None:
                empty_polls += 1
                if empty_polls > 30:
                    break
                continue
            assert msg.error() is None, msg.error()
            out.append(msg.value())
    finally:
        consumer.close()
    return out


def test_example_flow_scores_kafka_events(kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path) -> None:
    import numpy as np
    from confluent_kafka import Producer

    model_path = train_small_lightgbm(tmp_path / "model.so")
    model = Model.load(model_path)
    names = model.input_schema.names
    rng = np.random.default_rng(5)
    events = [
        {**{n: float(v) for n, v in zip(names, rng.normal(size=len(names)), strict=True)}, "id": i}
        for i in range(N_EVENTS)
    ]
    bad = [b"{not json", json.dumps([1, 2]).encode(), json.dumps({"id": -1, names[0]: 1.0}).encode()]
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i, e in enumerate(events):
        producer.produce(topics["in"], json.dumps(e).encode(), key=str(i).encode(), partition=i % 2)
        if i == 100:
            for b in bad:
                producer.produce(topics["in"], b, partition=0)
    assert producer.flush(30) == 0

    env = {
        **os.environ,
        "STREAMML_MODEL": str(model_path),
        "STREAMML_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "STREAMML_IN_TOPIC": topics["in"],
        "STREAMML_OUT_TOPIC": topics["out"],
        "STREAMML_DLQ_TOPIC": topics["dlq"],
        "STREAMML_TAIL": "0",
    }
    subprocess.run([sys.executable, "-m", "bytewax.run", str(FLOW), "-w", "2"], env=env, check=True, timeout=180)

    got = [json.loads(v) for v in consume_all(kafka_bootstrap, topics["out"], N_EVENTS)]
    scored = model.predict([{k: v for k, v in e.items() if k != "id"} for e in events]).to_pylist()
    want = {e["id"]: {**e, **s} for e, s in zip(events, scored, strict=True)}
    assert len(got) == N_EVENTS
    assert {g["id"]: g for g in got} == want

    dead = [json.loads(v) for v in consume_all(kafka_bootstrap, topics["dlq"], len(bad))]
    reasons = {d["reason"].split(":")[0]: d for d in dead}
    assert len(dead) == 3
    # partition 0 holds the 51 even events up to 100, then the three bad messages (offsets 51-53).
    source = f"{topics['in']}[0]"
    assert reasons[f"{source}@51"]["reason"].startswith(f"{source}@51: not JSON; Expecting property name")
    assert reasons[f"{source}@52"]["reason"] == f"{source}@52: expected a JSON object, got list"
    assert reasons[f"field 'f1' {ABSENT}"]["item"] == ["0", {"id": -1, names[0]: 1.0}]
