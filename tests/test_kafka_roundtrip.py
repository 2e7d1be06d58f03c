"""The Kafka scorer on a real broker: JSON and Arrow round trips, keys, order, headers, metrics."""

from __future__ import annotations

import io
import json
import socket
import threading
import urllib.request
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pytest

from kafka_support import (
    FEATURES,
    consume,
    feature_rows,
    json_values,
    kafka_topics,
    produce,
    run_scorer,
    wait_until,
)
from streamml import Model
from streamml.errors import InputError
from streamml.kafka import HEADER_MODEL, HEADER_SHA256, HEADER_VERSION, KafkaScorerError, ScoringLoop

pytestmark = pytest.mark.kafka


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_in_thread(scorer: ScoringLoop, until: int, timeout: float = 60) -> None:
    """Run the scorer until it has consumed ``until`` messages, then stop it and wait for it; it must not fail."""
    error = run_scorer(scorer, until, timeout)
    assert error is None, error


def test_json_round_trip_matches_model_predict_and_keeps_keys_and_order(kafka_bootstrap: str, s1: Model) -> None:
    n = 3000
    x = feature_rows(n, seed=1)
    keys = [f"k{i % 17}".encode() for i in range(n)]
    expected = s1.predict(pa.record_batch([pa.array(x[:, j]) for j in range(32)], names=FEATURES))
    port = free_port()
    with kafka_topics(kafka_bootstrap, ["in", "out", "dlq"]) as (inp, out, dlq):
        produce(kafka_bootstrap, inp, json_values(x), keys)
        scorer = ScoringLoop(
            s1,
            kafka_bootstrap,
            inp,
            out,
            group_id=f"g-{inp}",
            dlq_topic=dlq,
            id_field="id",
            max_batch_rows=256,
            max_wait_ms=20,
            metrics_port=port,
        )
        metrics_text: list[str] = []

        def scrape() -> bool:
            if scorer.stats["in"] < n:
                return False
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            metrics_text.append(text)
            # The lag gauge is refreshed once a second: wait until it shows the caught-up consumer.
            return all(f'consumer_lag{{partition="{p}",topic="{inp}"}} 0.0' in text for p in range(3))

        thread = threading.Thread(target=scorer.run)
        thread.start()
        try:
            wait_until(scrape, 60, "all messages scored")
        finally:
            scorer.stop()
            thread.join(30)
        records = consume(kafka_bootstrap, out, at_least=n)
        inputs = consume(kafka_bootstrap, inp, at_least=n, idle=0.5)
        assert consume(kafka_bootstrap, dlq, at_least=0, idle=0.5) == []

    assert len(records) == n
    probability = expected.column("probability").to_numpy()
    label = expected.column("label").to_pylist()
    in_partition = {json.loads(r.value)["id"]: r.partition for r in inputs}
    per_key: dict[bytes, list[int]] = defaultdict(list)
    for r in records:
        got = json.loads(r.value)
        i = got["id"]
        assert list(got) == ["id", "probability", "label"]
        assert got["probability"] == probability[i], i  # the same float64, through JSON and back
        assert got["label"] == label[i]
        assert r.key == keys[i]
        assert r.partition == in_partition[i]
        assert r.headers[HEADER_MODEL] == b"s1_logistic"
        assert r.headers[HEADER_VERSION] == s1.version.encode()
        assert r.headers[HEADER_SHA256] == s1.sha256.encode()
        per_key[r.key].append(i)
    for key, ids in per_key.items():
        assert ids == sorted(ids), f"order of key {key!r} not kept"
    text = metrics_text[-1]
    assert f"streamml_score_messages_in_total {float(n)}" in text
    assert f"streamml_score_messages_out_total {float(n)}" in text
    assert "streamml_score_dead_letters_total 0.0" in text
    assert f"streamml_score_batch_size_sum {float(n)}" in text
    assert "streamml_score_scoring_seconds_count" in text
    assert "streamml_score_end_to_end_seconds_count" in text
    assert 'streamml_score_consumer_lag{partition="0"' in text


def ipc_bytes(batch: pa.RecordBatch) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue()


def test_arrow_round_trip_matches_model_predict(kafka_bootstrap: str, s1: Model) -> None:
    rng = np.random.default_rng(2)
    sizes = rng.integers(1, 6, size=300)
    x = feature_rows(int(sizes.sum()), seed=3)
    values, start = [], 0
    for size in sizes:
        rows = x[start : start + size]
        # Columns in another order and as float32/int where that still casts: mapped by name.
        columns = {"id": pa.array(np.arange(start, start + size))}
        columns.update({f: pa.array(rows[:, j]) for j, f in reversed(list(enumerate(FEATURES)))})
        values.append(ipc_bytes(pa.record_batch(columns)))
        start += size
    expected = s1.predict(pa.record_batch([pa.array(x[:, j]) for j in range(32)], names=FEATURES))
    keys = [f"k{i % 5}".encode() for i in range(len(values))]
    with kafka_topics(kafka_bootstrap, ["in", "out", "dlq"]) as (inp, out, dlq):
        produce(kafka_bootstrap, inp, values, keys)
        scorer = ScoringLoop(
            s1,
            kafka_bootstrap,
            inp,
            out,
            group_id=f"g-{inp}",
            dlq_topic=dlq,
            format="arrow",
            id_field="id",
            max_batch_rows=64,
            max_wait_ms=10,
            guarantee="exactly-once",
        )
        run_in_thread(scorer, len(values))
        records = consume(kafka_bootstrap, out, at_least=len(values))
    assert len(records) == len(values)
    seen = np.zeros(len(x), dtype=int)
    for r in records:
        batch = pa.ipc.open_stream(r.value).read_all()
        assert batch.schema.names == ["id", "probability", "label"]
        ids = batch.column("id").to_numpy()
        np.testing.assert_array_equal(
            batch.column("probability").to_numpy(), expected.column("probability").to_numpy()[ids]
        )
        assert r.key == keys[list(sizes.cumsum() - sizes).index(ids[0])]
        seen[ids] += 1
    assert (seen == 1).all()


def test_a_full_producer_queue_pauses_the_consumer_and_loses_nothing(kafka_bootstrap: str, s1: Model) -> None:
    n = 4000
    with kafka_topics(kafka_bootstrap, ["in", "out", "dlq"]) as (inp, out, dlq):
        produce(kafka_bootstrap, inp, json_values(feature_rows(n, seed=4)), [None] * n)
        scorer = ScoringLoop(
            s1,
            kafka_bootstrap,
            inp,
            out,
            group_id=f"g-{inp}",
            dlq_topic=dlq,
            id_field="id",
            max_batch_rows=1000,
            config={"producer.queue.buffering.max.messages": "100"},  # far below one batch
        )
        run_in_thread(scorer, n)
        records = consume(kafka_bootstrap, out, at_least=n)
    assert scorer.stats["paused"] >= 1
    assert sorted(json.loads(r.value)["id"] for r in records) == list(range(n))


def test_bad_options_are_refused_with_the_reason(s1: Model) -> None:
    with pytest.raises(KafkaScorerError, match="guarantee 'twice' is not one of"):
        ScoringLoop(s1, "127.0.0.1:1", "a", "b", guarantee="twice")  # type: ignore[arg-type]
    with pytest.raises(KafkaScorerError, match="must all differ"):
        ScoringLoop(s1, "127.0.0.1:1", "a", "a")
    with pytest.raises(KafkaScorerError, match="max_batch_rows is 0"):
        ScoringLoop(s1, "127.0.0.1:1", "a", "b", max_batch_rows=0)
    with pytest.raises(InputError, match="format 'csv' is not one of json, arrow"):
        ScoringLoop(s1, "127.0.0.1:1", "a", "b", format="csv")  # type: ignore[arg-type]
    with pytest.raises(KafkaScorerError, match="commit_interval_ms is -1; it must not be negative"):
        ScoringLoop(s1, "127.0.0.1:1", "a", "b", commit_interval_ms=-1)
    with pytest.raises(KafkaScorerError, match="max_in_flight_rows is 0; it must be at least 1"):
        ScoringLoop(s1, "127.0.0.1:1", "a", "b", max_in_flight_rows=0)


def test_the_old_name_scorer_still_imports_with_a_deprecation_warning() -> None:
    import streamml.kafka

    with pytest.warns(DeprecationWarning, match=r"streamml.kafka.Scorer is deprecated; .*ScoringLoop"):
        from streamml.kafka import Scorer
    assert Scorer is ScoringLoop
    with pytest.raises(AttributeError, match="has no attribute 'Scorers'"):
        _ = streamml.kafka.Scorers
