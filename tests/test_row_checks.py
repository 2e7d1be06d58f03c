"""The row checks every host shares, word for word: one table of cases (tests/fixtures/row_checks.json,
which the Flink connector's RowChecksTest runs too) through ``Model.predict`` on dicts (a batch of
rows), the Bytewax ``predict_op`` (the core's one-row path) and the Kafka JSON codec
(``MessageScorer``): the same outputs for a scored row, the same reason for a refused one, with
``missing_fields="error"`` and ``"null"``. The model has an input of each kind a row carries,
utf8 among them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from streamml import InputError, Model, _streamml
from streamml.bytewax import predict_op
from streamml_dev.repo import REPO_ROOT, example_model

TABLE = json.loads((REPO_ROOT / "tests" / "fixtures" / "row_checks.json").read_text())
CASES = {c["name"]: c for c in TABLE["cases"]}
MODES = ["error", "null"]
OUTPUTS = ["y", "nulls", "echo"]

#: ("scored", outputs) or ("refused", reason).
Outcome = tuple[str, Any]


@pytest.fixture(scope="module")
def model() -> Model:
    m = Model.load(example_model(TABLE["model"]))
    assert m.input_schema.names == ["x", "f", "n", "u", "b", "s"], m.input_schema
    assert m.output_schema.names == OUTPUTS, m.output_schema
    return m


def expected(case: dict[str, Any], mode: str) -> Outcome:
    outcome = case["outcome"].get(mode, case["outcome"].get("*"))
    assert outcome is not None, case
    assert len(outcome) == 1, case
    ((kind, value),) = outcome.items()
    return kind, value


def via_predict(model: Model, row: dict[str, Any], mode: str) -> Outcome:
    try:
        out = model.predict([row], missing_fields=mode)
    except InputError as err:
        reason = str(err)
        assert reason.startswith("row 0: "), reason  # Model.predict names the row
        return "refused", reason.removeprefix("row 0: ")
    return "scored", out.to_pylist()[0]


def via_predict_op(model: Model, row: dict[str, Any], mode: str) -> Outcome:
    try:
        out = predict_op(model, missing_fields=mode)(dict(row))
    except InputError as err:
        return "refused", str(err)
    return "scored", {k: out[k] for k in OUTPUTS}


def via_json_codec(model: Model, row: dict[str, Any], mode: str) -> Outcome:
    codec = _streamml.MessageScorer.create(model._inner, "json", missing_fields=mode)
    outputs, errors, _ = codec.score([json.dumps(row).encode()])
    if errors:
        assert errors[0][0] == 0, errors
        assert outputs == [None], outputs
        return "refused", errors[0][1]
    scored = json.loads(outputs[0])
    return "scored", {k: scored.get(k) for k in OUTPUTS}


HOSTS: dict[str, Callable[[Model, dict[str, Any], str], Outcome]] = {
    "Model.predict": via_predict,
    "bytewax.predict_op": via_predict_op,
    "MessageScorer.json": via_json_codec,
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", list(CASES))
def test_every_host_gives_the_table_outcome(model: Model, case: str, mode: str) -> None:
    c = CASES[case]
    want = expected(c, mode)
    for host, run in HOSTS.items():
        assert run(model, c["row"], mode) == want, (host, case, mode)


def test_the_table_covers_every_check() -> None:
    reasons = {v for c in TABLE["cases"] for o in c["outcome"].values() for k, v in o.items() if k == "refused"}
    for words in ["is absent", "is null but the input is not nullable", "is a string, expected",
                  "is a bool, expected", "is an integer, expected", "is a float, expected", "out of range for"]:
        assert any(words in r for r in reasons), words
    scored = [c for c in TABLE["cases"] if any("scored" in o for o in c["outcome"].values())]
    assert len(scored) >= 5


def test_a_batch_of_every_case_gives_each_its_own_outcome(model: Model) -> None:
    # The batch path (ItemScorer.score_split, the Bytewax predict operator) scores the good rows
    # together and refuses each bad one alone, with the one-row path's words.
    for mode in MODES:
        scorer = _streamml.ItemScorer(model._inner, missing_fields=mode)
        rows = [dict(c["row"]) for c in TABLE["cases"]]
        oks, errs = scorer.score_split(rows)
        refused = {json.dumps(item, sort_keys=True): reason for item, reason in errs}
        ok_iter = iter(oks)
        for c in TABLE["cases"]:
            kind, value = expected(c, mode)
            if kind == "refused":
                assert refused[json.dumps(c["row"], sort_keys=True)] == value, (c["name"], mode)
            else:
                out = next(ok_iter)
                assert {k: out[k] for k in OUTPUTS} == value, (c["name"], mode)
        assert len(oks) + len(errs) == len(rows)


def test_the_float_fast_path_scores_and_refuses_as_the_cell_path() -> None:
    # An all-float64 model takes Python floats and ints straight into its row (no cells); any
    # other value goes the checked way, so what a row gets must not depend on the path it took.
    import numpy as np

    s1 = Model.load(example_model("s1_logistic"))
    names = s1.input_schema.names
    rng = np.random.default_rng(7)
    x = rng.normal(size=(6, len(names)))
    x[1, :] = np.round(x[1, :] * 10)  # whole numbers, sent as Python ints below
    x[3, 0] = 2.0**64 - 1  # beyond i64: an unsigned cell on the checked path
    rows = [dict(zip(names, r.tolist(), strict=True)) for r in x]
    rows[1] = {k: int(v) for k, v in rows[1].items()}
    rows[2] = {k: np.float64(v) for k, v in rows[2].items()}  # a float subclass: fast path
    rows[3][names[0]] = 2**64 - 1
    rows[4][names[5]] = np.float32(x[4, 5])  # not a float: the checked path
    x[4, 5] = float(np.float32(x[4, 5]))
    expected_scores = s1.predict_numpy(x)["probability"]
    op = predict_op(s1)
    for i, row in enumerate(rows):
        assert op(dict(row))["probability"] == expected_scores[i], i
    for bad, reason in [(True, "is a bool, expected float64"), ("1.5", "is a string, expected float64"),
                        (None, "is null but the input is not nullable")]:
        row = dict(rows[0], **{names[7]: bad})
        with pytest.raises(InputError) as err:
            op(row)
        assert str(err.value) == f"field '{names[7]}' {reason}"
    missing = dict(rows[0])
    del missing[names[9]]
    with pytest.raises(InputError, match=f"field '{names[9]}' is absent"):
        op(missing)
