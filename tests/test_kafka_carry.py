"""Carried fields in ``streamml score`` on a real broker: the values arrive unchanged beside the predictions."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pytest

from kafka_support import FEATURES, consume, feature_rows, kafka_topics, produce
from streamml import Model
from streamml.cli import build_parser
from streamml.errors import InputError
from streamml.kafka import KafkaScorerError, ScoringLoop
from test_kafka_roundtrip import run_in_thread

pytestmark = pytest.mark.kafka


def carried_values(i: int) -> dict[str, object]:
    """The fields carried for message ``i``: every JSON kind, a few written unusually, some absent."""
    out: dict[str, object] = {"event_time": 1_767_225_600_000 + 20 * i, "user": f"u{i % 7}\u00e9"}
    if i % 5 == 0:
        out["ctx"] = {"k": [i, None, True], "s": 'a"b'}
    elif i % 5 == 1:
        out["ctx"] = None
    elif i % 5 == 2:
        out["ctx"] = 2.5
    # i % 5 in (3, 4): no "ctx" at all (the output has null there)
    return out


def test_json_carried_fields_arrive_unchanged_beside_the_predictions(kafka_bootstrap: str, s1: Model) -> None:
    n = 2000
    x = feature_rows(n, seed=11)
    values = []
    for i, row in enumerate(x.tolist()):
        fields = {"id": i, **carried_values(i), **dict(zip(FEATURES, row, strict=True))}
        # Written with spaces and escapes the scorer must keep (it copies the raw text).
        values.append(json.dumps(fields, ensure_ascii=True, separators=(", ", ": ")).encode())
    expected = s1.predict(pa.record_batch([pa.array(x[:, j]) for j in range(32)], names=FEATURES))
    with kafka_topics(kafka_bootstrap, ["in", "out", "dlq"]) as (inp, out, dlq):
        produce(kafka_bootstrap, inp, values, [None] * n)
        scorer = ScoringLoop(
            s1,
            kafka_bootstrap,
            inp,
            out,
            group_id=f"g-{inp}",
            dlq_topic=dlq,
            id_field="id",
            carry_fields=["event_time", "user", "ctx"],
            max_batch_rows=300,
            max_wait_ms=20,
        )
        run_in_thread(scorer, n)
        records = consume(kafka_bootstrap, out, at_least=n)
        assert consume(kafka_bootstrap, dlq, at_least=0, idle=0.5) == []
    assert len(records) == n
    probability = expected.column("probability").to_numpy()
    label = expected.column("label").to_pylist()
    seen = set()
    for r in records:
        got = json.loads(r.value)
        i = got["id"]
        seen.add(i)
        assert list(got) == ["id", "event_time", "user", "ctx", "probability", "label"]
        want = carried_values(i)
        assert got["event_time"] == want["event_time"]
        assert got["user"] == want["user"]
        assert got["ctx"] == want.get("ctx")
        # The raw text, as the input wrote it (spaces, escapes); an absent field is null.
        text = r.value.decode()
        assert f'"user":"u{i % 7}\\u00e9"' in text
        assert '"ctx":' + json.dumps(want.get("ctx"), separators=(", ", ": ")) + "," in text
        assert got["probability"] == probability[i], i
        assert got["label"] == label[i]
    assert seen == set(range(n))


def ipc_bytes(batch: pa.RecordBatch) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue()


def test_arrow_carried_columns_arrive_unchanged(kafka_bootstrap: str, s1: Model) -> None:
    sizes = np.random.default_rng(5).integers(1, 5, size=200)
    x = feature_rows(int(sizes.sum()), seed=12)
    values, start = [], 0
    for k, size in enumerate(sizes):
        rows = np.arange(start, start + size)
        columns = {"id": pa.array(rows), "event_time": pa.array(1_767_225_600_000 + rows * 20, pa.timestamp("ms"))}
        if k % 4:  # every fourth message lacks "tag": a null column there
            columns["tag"] = pa.array([f"t{r}" for r in rows.tolist()])
        columns.update({f: pa.array(x[start : start + size, j]) for j, f in enumerate(FEATURES)})
        values.append(ipc_bytes(pa.record_batch(columns)))
        start += size
    expected = s1.predict(pa.record_batch([pa.array(x[:, j]) for j in range(32)], names=FEATURES))
    with kafka_topics(kafka_bootstrap, ["in", "out", "dlq"]) as (inp, out, dlq):
        produce(kafka_bootstrap, inp, values, [None] * len(values))
        scorer = ScoringLoop(
            s1,
            kafka_bootstrap,
            inp,
            out,
            group_id=f"g-{inp}",
            dlq_topic=dlq,
            format="arrow",
            id_field="id",
            carry_fields=["event_time", "tag"],
            max_batch_rows=64,
            max_wait_ms=10,
        )
        run_in_thread(scorer, len(values))
        records = consume(kafka_bootstrap, out, at_least=len(values))
    assert len(records) == len(values)
    seen = np.zeros(len(x), dtype=int)
    for r in records:
        batch = pa.ipc.open_stream(r.value).read_all()
        assert batch.schema.names == ["id", "event_time", "tag", "probability", "label"]
        ids = batch.column("id").to_numpy()
        assert batch.schema.field("event_time").type == pa.timestamp("ms")
        assert batch.column("event_time").cast(pa.int64()).to_pylist() == (1_767_225_600_000 + ids * 20).tolist()
        if batch.schema.field("tag").type == pa.null():
            assert batch.column("tag").null_count == len(ids)
        else:
            assert batch.column("tag").to_pylist() == [f"t{i}" for i in ids.tolist()]
        np.testing.assert_array_equal(
            batch.column("probability").to_numpy(), expected.column("probability").to_numpy()[ids]
        )
        seen[ids] += 1
    assert (seen == 1).all()
    kinds = [pa.ipc.open_stream(r.value).schema.field("tag").type for r in records]
    assert kinds.count(pa.null()) == 50


def test_carried_fields_that_clash_are_refused_at_start(s1: Model) -> None:
    with pytest.raises(InputError, match="carried field 'probability' has the name of an output of model binary"):
        ScoringLoop(s1, "127.0.0.1:1", "a", "b", carry_fields=["event_time", "probability"])
    with pytest.raises(InputError, match="carried field 'id' is named twice"):
        ScoringLoop(s1, "127.0.0.1:1", "a", "b", id_field="id", carry_fields=["id"])
    with pytest.raises(KafkaScorerError, match="carry_fields is the string 'event_time'"):
        ScoringLoop(s1, "127.0.0.1:1", "a", "b", carry_fields="event_time")  # type: ignore[arg-type]
    args = build_parser().parse_args(
        ["score", "--model", "m", "--bootstrap-servers", "b", "--input-topic", "i", "--output-topic", "o",
         "--carry-field", "event_time", "--carry-field", "user"]
    )  # fmt: skip
    assert args.carry_field == ["event_time", "user"]
