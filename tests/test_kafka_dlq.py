"""Poison messages on a real broker: each one in the dead-letter topic with its reason; the rest scored."""

from __future__ import annotations

import json
import random

import pytest

from kafka_support import consume, feature_rows, json_values, kafka_topics, produce
from streamml import Model
from streamml.kafka import HEADER_ERROR, HEADER_MODEL, HEADER_OFFSET, HEADER_PARTITION, HEADER_TOPIC, ScoringLoop
from test_kafka_roundtrip import run_in_thread

pytestmark = pytest.mark.kafka

#: Kinds of malformed message: (make it from a valid one, the reason the DLQ must carry).
MALFORMED = {
    "truncated": (lambda v: v[: len(v) // 2], "invalid JSON: EOF while parsing"),
    "not-json": (lambda v: b"id=1;x0=2", "invalid JSON: expected value"),
    "array": (lambda v: b"[" + v + b"]", "expected a JSON object, got an array"),
    "missing": (lambda v: v.replace(b'"x7":', b'"y7":'), "field 'x7' is absent; send null for a missing value"),
    "wrong-type": (lambda v: v.replace(b'"x3":', b'"x3":"oops","z":'), "field 'x3' is a string, expected float64"),
    "null": (lambda v: v.replace(b'"x0":', b'"x0":null,"z":'), "field 'x0' is null but the input is not nullable"),
    "empty": (lambda v: b"", "invalid JSON: EOF while parsing"),
}


def test_every_malformed_message_goes_to_the_dlq_with_its_reason(kafka_bootstrap: str, s1: Model) -> None:
    valid_n, bad_n = 10_000, 1_400
    good = json_values(feature_rows(valid_n + bad_n, seed=5))
    rng = random.Random(7)
    bad_at = set(rng.sample(range(valid_n + bad_n), bad_n))
    kinds = list(MALFORMED)
    values, keys, kind_of = [], [], {}
    for i, v in enumerate(good):
        if i in bad_at:
            kind = kinds[len(kind_of) % len(kinds)]
            kind_of[i] = kind
            v = MALFORMED[kind][0](v)
        values.append(v)
        keys.append(f"key-{i}".encode())
    with kafka_topics(kafka_bootstrap, ["in", "out", "dlq"]) as (inp, out, dlq):
        produce(kafka_bootstrap, inp, values, keys)
        scorer = ScoringLoop(
            s1, kafka_bootstrap, inp, out, group_id=f"g-{inp}", dlq_topic=dlq, id_field="id", max_batch_rows=500
        )
        run_in_thread(scorer, len(values))
        dead = consume(kafka_bootstrap, dlq, at_least=bad_n)
        scored = consume(kafka_bootstrap, out, at_least=valid_n)
        inputs = {(r.partition, r.offset): r for r in consume(kafka_bootstrap, inp, at_least=len(values), idle=0.5)}

    assert (scorer.stats["in"], scorer.stats["out"], scorer.stats["dlq"]) == (len(values), valid_n, bad_n)
    assert len(dead) == bad_n
    seen = set()
    for r in dead:
        i = int(r.key.decode().removeprefix("key-"))
        kind = kind_of[i]
        assert r.value == values[i], kind  # the original bytes
        assert r.headers[HEADER_ERROR].decode().startswith(MALFORMED[kind][1]), (kind, r.headers[HEADER_ERROR])
        assert r.headers[HEADER_TOPIC] == inp.encode()
        source = inputs[(int(r.headers[HEADER_PARTITION]), int(r.headers[HEADER_OFFSET]))]
        assert source.key == r.key
        assert source.value == r.value
        assert r.headers[HEADER_MODEL] == b"s1_logistic"
        seen.add(i)
    assert seen == bad_at
    ids = sorted(json.loads(r.value)["id"] for r in scored)
    assert ids == sorted(set(range(valid_n + bad_n)) - bad_at)
