"""Faults injected into `streamml score` on a real broker: every input is accounted for after a restart.

Each case breaks a batch on purpose (a dead letter or an output too large for its topic, a model
that fails on every message, a store that goes away), under both guarantees, then restarts the
scorer in the same group and counts: nothing lost, nothing committed that was not produced, and
duplicates only where at-least-once allows them (the batch that failed).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pytest

from kafka_support import (
    ScorerProcess,
    committed_total,
    consume,
    feature_rows,
    json_values,
    kafka_topics,
    produce,
    run_scorer,
)
from streamml import Model
from streamml.kafka import HEADER_ERROR, HEADER_OFFSET, HEADER_SIZE, KafkaScorerError, ScoringLoop
from streamml.store import Store
from streamml_dev.repo import example_model

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

GUARANTEES = ["at-least-once", "exactly-once"]
BIG = 1_200_000  # over the producer's and the broker's default limit (1,000,000 / 1,048,588 bytes)


def run_for(scorer: ScoringLoop, seconds: float) -> None:
    """Run the scorer for ``seconds`` (a restart that should find nothing to do), then stop it."""
    thread = threading.Thread(target=scorer.run)
    thread.start()
    time.sleep(seconds)
    scorer.stop()
    thread.join(60)
    assert not thread.is_alive()


def scorer(model: Model, bootstrap: str, topics: list[str], group: str, guarantee: str, **options) -> ScoringLoop:
    inp, out, dlq = topics
    return ScoringLoop(
        model, bootstrap, inp, out, group_id=group, dlq_topic=dlq, guarantee=guarantee, max_wait_ms=20,
        transactional_id=f"{group}-txn", **options,
    )  # fmt: skip


@pytest.mark.parametrize("guarantee", GUARANTEES)
def test_too_large_dead_letters_and_outputs_go_to_the_dlq_cut_to_size(
    kafka_bootstrap: str, s1: Model, guarantee: str
) -> None:
    n = 41
    values = json_values(feature_rows(n, seed=3))
    unparsable = b'{"id": 20, "x0": ' + b"9" * BIG  # a dead letter as large as the message
    # A valid message whose output (which carries the id) is over the limit.
    row = json.loads(values[30])
    row["id"] = "i" * BIG
    huge_output = json.dumps(row).encode()
    values[20], values[30] = unparsable, huge_output
    group = f"g-{uuid.uuid4().hex[:8]}"
    with (
        kafka_topics(kafka_bootstrap, ["in"], partitions=1, config={"max.message.bytes": "3000000"}) as [inp],
        kafka_topics(kafka_bootstrap, ["out", "dlq"], partitions=1) as (out, dlq),
    ):
        produce(kafka_bootstrap, inp, values, [f"k{i}".encode() for i in range(n)], max_bytes=3_000_000)
        first = scorer(s1, kafka_bootstrap, [inp, out, dlq], group, guarantee, id_field="id")
        assert run_scorer(first, n) is None
        assert first.stats == {"in": n, "out": n - 2, "dlq": 2, "batches": first.stats["batches"], "paused": 0}
        # The restart finds everything committed: it scores nothing again.
        again = scorer(s1, kafka_bootstrap, [inp, out, dlq], group, guarantee, id_field="id")
        run_for(again, 6)
        assert again.stats["in"] == 0
        outputs = consume(kafka_bootstrap, out, at_least=n - 2)
        letters = consume(kafka_bootstrap, dlq, at_least=2)
        assert committed_total(kafka_bootstrap, group, inp, 1) == n
    assert sorted(json.loads(r.value)["id"] for r in outputs) == [i for i in range(n) if i not in (20, 30)]
    assert len(letters) == 2
    by_offset = {int(r.headers[HEADER_OFFSET]): r for r in letters}
    for offset, original in ((20, unparsable), (30, huge_output)):
        letter = by_offset[offset]
        assert int(letter.headers[HEADER_SIZE]) == len(original)
        assert 900_000 < len(letter.value) < 1_000_000
        assert original.startswith(letter.value)
        assert letter.key == f"k{offset}".encode()
    assert re.fullmatch(
        rf"the output \(\d+ bytes\) does not fit the message size limit \(\d+ bytes\) of topic '{out}'; .*",
        by_offset[30].headers[HEADER_ERROR].decode(),
    )
    assert by_offset[20].headers[HEADER_ERROR].decode().startswith("invalid JSON")


@pytest.mark.parametrize("guarantee", GUARANTEES)
def test_a_model_failing_on_every_message_stops_the_scorer_without_committing(
    kafka_bootstrap: str, tmp_path: Path, guarantee: str
) -> None:
    n = 100
    broken = example_model("panicking")  # panics on a negative x: here, on every message
    values = [json.dumps({"id": i, "x": -1.0 - i}).encode() for i in range(n)]
    group = f"g-{uuid.uuid4().hex[:8]}"
    with kafka_topics(kafka_bootstrap, ["in", "out", "dlq"], partitions=2) as (inp, out, dlq):
        produce(kafka_bootstrap, inp, values, [f"k{i}".encode() for i in range(n)])
        args = [
            "--bootstrap-servers", kafka_bootstrap, "--input-topic", inp, "--output-topic", out,
            "--dlq-topic", dlq, "--group-id", group, "--guarantee", guarantee, "--id-field", "id",
            "--transactional-id", f"{group}-txn", "--max-wait-ms", "200",
        ]  # fmt: skip
        proc = ScorerProcess(["--model", str(broken), *args], tmp_path / "scorer.log").start()
        assert proc.proc is not None
        assert proc.proc.wait(90) == 1
        log = proc.output()
        assert "streamml score: error: the model failed on all " in log
        assert "model binary" in log
        assert "stopping without committing" in log
        assert committed_total(kafka_bootstrap, group, inp, 2) == 0
        assert consume(kafka_bootstrap, dlq, at_least=0, idle=2) == []
        # The model is fixed (y = x, the same schema); the restart scores every message.
        fixed = Model.from_callable(
            lambda b: pa.record_batch({"y": b["x"]}),
            input_schema=pa.schema([("x", pa.float64(), False)]),
            output_schema=pa.schema([("y", pa.float64(), False)]),
            name="fixed",
        )
        restarted = scorer(fixed, kafka_bootstrap, [inp, out, dlq], group, guarantee, id_field="id")
        assert run_scorer(restarted, n) is None
        outputs = consume(kafka_bootstrap, out, at_least=n)
        assert committed_total(kafka_bootstrap, group, inp, 2) == n
    assert sorted(json.loads(r.value)["id"] for r in outputs) == list(range(n))
    assert all(json.loads(r.value)["y"] == -1.0 - json.loads(r.value)["id"] for r in outputs)


@pytest.mark.parametrize("guarantee", GUARANTEES)
def test_a_store_outage_stops_the_scorer_without_committing_and_a_restart_stores_every_prediction(
    kafka_bootstrap: str, s1: Model, tmp_path: Path, guarantee: str
) -> None:
    n = 300
    values = json_values(feature_rows(n, seed=8))
    missing = tmp_path / "not-yet"
    uri = f"sqlite:///{missing}/store.db"
    group = f"g-{uuid.uuid4().hex[:8]}"
    with kafka_topics(kafka_bootstrap, ["in", "out", "dlq"], partitions=2) as topics:
        inp, out, _ = topics
        produce(kafka_bootstrap, inp, values, [f"k{i}".encode() for i in range(n)])
        options = {"id_field": "id", "store": uri, "store_predictions": True, "drift": False}
        down = scorer(s1, kafka_bootstrap, topics, group, guarantee, store_retry_s=1.0, **options)
        error = run_scorer(down, n)
        assert isinstance(error, KafkaScorerError)
        assert "prediction(s) to the store" in str(error)
        assert "the batch is not committed" in str(error)
        assert down.stats["in"] == 0
        assert committed_total(kafka_bootstrap, group, inp, 2) == 0
        # The store is back: the restart scores everything and stores each prediction once.
        missing.mkdir()
        restarted = scorer(s1, kafka_bootstrap, topics, group, guarantee, **options)
        assert run_scorer(restarted, n) is None
        outputs = consume(kafka_bootstrap, out, at_least=n)
        assert committed_total(kafka_bootstrap, group, inp, 2) == n
    ids = sorted(json.loads(r.value)["id"] for r in outputs)
    if guarantee == "exactly-once":
        assert ids == list(range(n))
    else:  # the failed batch's outputs went out before the store failed: scored again
        assert sorted(set(ids)) == list(range(n))
    store = Store(uri)
    try:
        rows = store.query("SELECT event_id FROM predictions").column("event_id").to_pylist()
    finally:
        store.close()
    assert sorted(int(i) for i in rows) == list(range(n))


def test_a_short_store_outage_is_retried_and_loses_nothing(kafka_bootstrap: str, s1: Model, tmp_path: Path) -> None:
    n = 200
    values = json_values(feature_rows(n, seed=9))
    missing = tmp_path / "later"
    uri = f"sqlite:///{missing}/store.db"
    with kafka_topics(kafka_bootstrap, ["in", "out", "dlq"], partitions=1) as topics:
        produce(kafka_bootstrap, topics[0], values, [None] * n)
        s = scorer(
            s1, kafka_bootstrap, topics, f"g-{uuid.uuid4().hex[:8]}", "at-least-once",
            id_field="id", store=uri, store_predictions=True, drift=False, store_retry_s=60.0,
        )  # fmt: skip
        threading.Timer(2.0, missing.mkdir).start()
        started = time.monotonic()
        assert run_scorer(s, n) is None
        assert time.monotonic() - started >= 2.0
    assert s.stats["in"] == n
    store = Store(uri)
    try:
        assert store.query("SELECT count(*) AS n FROM predictions").column("n").to_pylist() == [n]
    finally:
        store.close()


def test_a_malformed_drift_reference_is_refused_at_start(s1_path: Path) -> None:
    model = Model.load(s1_path)
    model._info["drift_reference"] = {"version": 1, "rows": 2, "bins": 1, "scores": [], "features": [{"name": "x0"}]}
    with pytest.raises(KafkaScorerError, match=r"model 's1_logistic' carries a drift reference that cannot be used: "):
        ScoringLoop(model, "127.0.0.1:1", "a", "b")


CORPUS = Path(__file__).resolve().parent.parent / "operators" / "core" / "tests" / "corpus" / "ipc"


def corpus_reader() -> Model:
    """The inputs of the codec fuzz test's model (``operators/core/tests/fuzz``): ``y = a + 2b + len(s) + f``."""
    import pyarrow.compute as pc

    def score(b: pa.RecordBatch) -> pa.RecordBatch:
        y = pc.add(b["a"], pc.multiply(pc.cast(pc.fill_null(b["b"], 0), pa.float64()), 2.0))
        y = pc.add(y, pc.cast(pc.fill_null(pc.utf8_length(b["s"]), 0), pa.float64()))
        y = pc.add(y, pc.cast(pc.fill_null(b["f"], False), pa.float64()))
        return pa.record_batch({"y": y})

    inputs = pa.schema([("a", pa.float64(), False), ("b", pa.int64()), ("s", pa.string()), ("f", pa.bool_())])
    return Model.from_callable(score, inputs, pa.schema([("y", pa.float64())]), name="reader")


@pytest.mark.parametrize("guarantee", GUARANTEES)
def test_messages_that_crashed_the_ipc_decoder_are_dead_letters_and_the_rest_is_scored(
    kafka_bootstrap: str, guarantee: str
) -> None:
    files = sorted(CORPUS.iterdir())
    crashing = [f for f in files if f.name.startswith("crash-")]
    assert len(crashing) >= 10
    values = [f.read_bytes() for f in files]
    n = len(values)
    model = corpus_reader()
    group = f"g-{uuid.uuid4().hex[:8]}"
    options = {"format": "arrow", "id_field": "id", "carry_fields": ["t"]}
    with kafka_topics(kafka_bootstrap, ["in", "out", "dlq"], partitions=1) as topics:
        inp, out, dlq = topics
        produce(kafka_bootstrap, inp, values, [f.name.encode() for f in files])
        first = scorer(model, kafka_bootstrap, topics, group, guarantee, **options)
        assert run_scorer(first, n) is None
        again = scorer(model, kafka_bootstrap, topics, group, guarantee, **options)
        run_for(again, 5)
        assert again.stats["in"] == 0
        outputs = consume(kafka_bootstrap, out, at_least=first.stats["out"])
        letters = consume(kafka_bootstrap, dlq, at_least=first.stats["dlq"])
        assert committed_total(kafka_bootstrap, group, inp, 1) == n
    assert first.stats["in"] == n
    assert len(outputs) + len(letters) == n
    assert {r.key for r in outputs} | {r.key for r in letters} == {f.name.encode() for f in files}
    assert {r.key for r in outputs} == {f.name.encode() for f in files if f.name.startswith("valid-")}
    assert {r.key for r in letters} == {f.name.encode() for f in crashing}
    for letter in letters:
        assert letter.headers[HEADER_ERROR].decode().startswith("not an Arrow IPC stream: ")
        assert letter.value == values[int(letter.headers[HEADER_OFFSET])]
