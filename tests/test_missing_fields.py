"""Absent is not null, in every Python host: one table of cases (tests/fixtures/missing_fields.json,
which the Flink connector's MissingFieldsTest runs too) through ``Model.predict`` on dicts, the
Bytewax ``predict_op`` and ``predict`` operators, the Kafka codec (``MessageScorer``, JSON and Arrow
IPC messages) and, on a real broker, ``streamml.kafka.ScoringLoop``: the same outcome and the same
message, with ``missing_fields="error"`` (the default) and ``"null"``."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import bytewax.operators as op
import pyarrow as pa
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from streamml import InputError, Model, _streamml
from streamml.bytewax import predict, predict_op
from streamml_dev.bytewax_flows import train_small_lightgbm
from streamml_dev.repo import REPO_ROOT

TABLE = json.loads((REPO_ROOT / "tests" / "fixtures" / "missing_fields.json").read_text())
CASES = {c["name"]: c for c in TABLE["cases"]}
MODES = ["error", "null"]

#: (score, None) when the event was scored, (None, reason) when it was refused.
Outcome = tuple[float | None, str | None]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Model:
    m = Model.load(train_small_lightgbm(tmp_path_factory.mktemp("missing-fields") / "small.so"))
    assert all(f.nullable and f.type == pa.float64() for f in m.input_schema), m.input_schema
    return m


def names(model: Model) -> list[str]:
    return list(model.input_schema.names)


def field(model: Model, token: str) -> str:
    """``$3`` -> the fourth input's name; other keys as they are."""
    return names(model)[int(token[1:])] if token.startswith("$") else token


def event(model: Model, case: dict[str, Any]) -> dict[str, Any]:
    """The case's event, built as the table says."""
    if case.get("empty"):
        return {}
    e: dict[str, Any] = {n: (i + 1) / 10 for i, n in enumerate(names(model))}
    for token in case.get("drop", []):
        del e[field(model, token)]
    for token, value in case.get("set", {}).items():
        for name in names(model) if token == "*" else [field(model, token)]:
            e[name] = value
    for token, new in case.get("rename", {}).items():
        e[new] = e.pop(field(model, token))
    return e


def expected(model: Model, case: dict[str, Any], mode: str) -> str | None:
    """The reason the table gives for ``mode``, with the field named."""
    outcome = case["outcome"][mode]
    if outcome is None:
        return None
    kind, token = outcome.split(" ")
    assert kind == "absent", outcome
    return TABLE["absent"].replace("$", field(model, token))


# The hosts: each scores one event and returns its outcome.


def via_predict(model: Model, e: dict[str, Any], mode: str) -> Outcome:
    try:
        out = model.predict([e], missing_fields=mode)
    except InputError as err:
        reason = str(err)
        assert reason.startswith("row 0: "), reason  # Model.predict names the row
        return None, reason.removeprefix("row 0: ")
    return out.column(0)[0].as_py(), None


def via_predict_op(model: Model, e: dict[str, Any], mode: str) -> Outcome:
    try:
        out = predict_op(model, missing_fields=mode)(dict(e))
    except InputError as err:
        return None, str(err)
    return out[model.output_schema.names[0]], None


def via_bytewax_predict(model: Model, e: dict[str, Any], mode: str) -> Outcome:
    oks: list[Any] = []
    errs: list[Any] = []
    flow = Dataflow("missing-fields")
    scored = predict("score", op.input("in", flow, TestingSource([dict(e)])), model, missing_fields=mode)
    op.output("oks", scored.oks, TestingSink(oks))
    op.output("errs", scored.errs, TestingSink(errs))
    run_main(flow)
    assert len(oks) + len(errs) == 1, (oks, errs)
    if errs:
        return None, errs[0].reason
    return oks[0][model.output_schema.names[0]], None


def via_codec(fmt: str) -> Callable[[Model, dict[str, Any], str], Outcome]:
    def score(model: Model, e: dict[str, Any], mode: str) -> Outcome:
        codec = _streamml.MessageScorer.create(model._inner, fmt, missing_fields=mode)
        outputs, errors, _ = codec.score([encode(e, fmt)])
        if errors:
            assert errors[0][0] == 0, errors
            assert outputs == [None], outputs
            return None, errors[0][1]
        return decode(outputs[0], fmt)[model.output_schema.names[0]], None

    return score


def encode(e: dict[str, Any], fmt: str) -> bytes:
    if fmt == "json":
        return json.dumps(e).encode()
    # One row: an explicit null is a null float64, an absent field no column ({}: no columns).
    columns = {k: pa.array([v], pa.float64() if v is None else None) for k, v in e.items()}
    if columns:
        struct = pa.StructArray.from_arrays(list(columns.values()), list(columns))
    else:
        struct = pa.array([{}], pa.struct([]))
    batch = pa.RecordBatch.from_struct_array(struct)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as w:
        w.write_batch(batch)
    return sink.getvalue().to_pybytes()


def decode(value: bytes, fmt: str) -> dict[str, Any]:
    if fmt == "json":
        return json.loads(value)
    return pa.ipc.open_stream(value).read_all().to_pylist()[0]


HOSTS = {
    "Model.predict": via_predict,
    "bytewax.predict_op": via_predict_op,
    "bytewax.predict": via_bytewax_predict,
    "MessageScorer.json": via_codec("json"),
    "MessageScorer.arrow": via_codec("arrow"),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", list(CASES))
def test_every_host_gives_the_table_outcome(model: Model, case: str, mode: str) -> None:
    c = CASES[case]
    e = event(model, c)
    reason = expected(model, c, mode)
    outcomes = {host: run(model, e, mode) for host, run in HOSTS.items()}
    for host, (score, got) in outcomes.items():
        assert got == reason, (host, case, mode)
        assert (score is None) == (reason is not None), (host, case, mode, score)
    scores = {host: s for host, (s, _) in outcomes.items()}
    if reason is None:
        first = next(iter(scores.values()))
        assert all(math.isclose(s, first, rel_tol=0, abs_tol=0) for s in scores.values()), scores
        if "scores_as" in c:
            # An absent field read as null scores as an explicit null; an extra field changes nothing.
            same, _ = via_predict(model, event(model, CASES[c["scores_as"]]), "error")
            assert first == same, (case, first, same)


def test_an_unknown_mode_is_refused(model: Model) -> None:
    words = "missing_fields is 'maybe', expected \"error\""
    with pytest.raises(InputError, match=words):
        model.predict([{}], missing_fields="maybe")
    with pytest.raises(InputError, match=words):
        predict_op(model, missing_fields="maybe")
    with pytest.raises(InputError, match=words):
        _streamml.MessageScorer.create(model._inner, "json", missing_fields="maybe")


@pytest.mark.kafka
def test_kafka_scorer_dead_letters_absent_fields_and_scores_nulls(kafka_bootstrap: str, model: Model) -> None:
    from kafka_support import consume, kafka_topics, produce
    from streamml.kafka import HEADER_ERROR, ScoringLoop
    from test_kafka_roundtrip import run_in_thread

    results: dict[str, dict[str, Outcome]] = {}
    for mode in MODES:
        values = [json.dumps({**event(model, c), "id": c["name"]}).encode() for c in TABLE["cases"]]
        keys = [c["name"].encode() for c in TABLE["cases"]]
        with kafka_topics(kafka_bootstrap, ["in", "out", "dlq"], partitions=1) as (inp, out, dlq):
            produce(kafka_bootstrap, inp, values, keys)
            scorer = ScoringLoop(
                model, kafka_bootstrap, inp, out, group_id=f"g-{inp}", dlq_topic=dlq, id_field="id",
                missing_fields=mode,
            )  # fmt: skip
            run_in_thread(scorer, len(values))
            refused = sum(c["outcome"][mode] is not None for c in TABLE["cases"])
            dead = consume(kafka_bootstrap, dlq, at_least=refused, idle=0.5) if refused else []
            scored = consume(kafka_bootstrap, out, at_least=len(values) - refused, idle=0.5)
        got: dict[str, Outcome] = {r.key.decode(): (None, r.headers[HEADER_ERROR].decode()) for r in dead}
        for r in scored:
            v = json.loads(r.value)
            got[v["id"]] = (v[model.output_schema.names[0]], None)
        results[mode] = got
    for mode in MODES:
        assert set(results[mode]) == set(CASES), mode
        for name, c in CASES.items():
            score, reason = results[mode][name]
            assert reason == expected(model, c, mode), (name, mode)
            if reason is None:
                assert score == via_codec("json")(model, event(model, c), mode)[0], (name, mode)
