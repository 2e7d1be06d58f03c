"""streamml.bytewax: predict_op and predict in real Bytewax dataflows (one worker)."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bytewax.operators as op
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from streamml import InputError, Model
from streamml.batching import BatchPolicy
from streamml.bytewax import PredictFailure, predict, predict_op
from streamml.bytewax._batching import BatchLogic
from streamml_dev.bytewax_flows import train_small_lightgbm

#: How every host words an input field absent from an event (the core's rule).
ABSENT = 'is absent; send null for a missing value, or set missing_fields="null" to read absent fields as null'


@pytest.fixture(scope="session")
def lgbm_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_small_lightgbm(tmp_path_factory.mktemp("bytewax-model") / "small.so")


@pytest.fixture(scope="session")
def lgbm(lgbm_path: Path) -> Model:
    return Model.load(lgbm_path)


def events(model: Model, n: int, seed: int = 3) -> list[dict]:
    """``n`` events with the model's inputs (a mix of floats and ints) and an id."""
    import numpy as np

    rng = np.random.default_rng(seed)
    names = model.input_schema.names
    out = []
    for i in range(n):
        e = {name: float(v) for name, v in zip(names, rng.normal(size=len(names)), strict=True)}
        if i % 5 == 0:
            e[names[0]] = int(i % 3)
        e["id"] = i
        out.append(e)
    return out


def expected(model: Model, rows: list[dict]) -> list[dict]:
    """Model.predict on the same rows, as dicts merged into the rows."""
    got = model.predict([{k: v for k, v in r.items() if k != "id"} for r in rows]).to_pylist()
    return [{**r, **g} for r, g in zip(rows, got, strict=True)]


def run(flow_items: list, build) -> tuple[list, list]:
    flow = Dataflow("t")
    up = op.input("in", flow, TestingSource(flow_items, batch_size=7))
    out = build(up)
    oks: list = []
    errs: list = []
    op.output("oks", out.oks, TestingSink(oks))
    op.output("errs", out.errs, TestingSink(errs))
    run_main(flow)
    return oks, errs


@pytest.mark.parametrize("which", ["s1", "lgbm"])
def test_predict_op_equals_model_predict(which: str, request: pytest.FixtureRequest) -> None:
    model = request.getfixturevalue(which)
    rows = events(model, 50)
    flow = Dataflow("t")
    up = op.input("in", flow, TestingSource(rows))
    scored = op.map("score", up, predict_op(model))
    out: list = []
    op.output("out", scored, TestingSink(out))
    run_main(flow)
    assert out == expected(model, rows)
    assert rows[1].keys() == {*model.input_schema.names, "id"}, "the input items are not changed"


def test_predict_op_keyed_nested_and_arrow(lgbm: Model) -> None:
    rows = events(lgbm, 3)
    want = expected(lgbm, rows)
    outputs = lgbm.output_schema.names
    score = predict_op(lgbm, nest="prediction")
    key, got = score(("user-7", rows[0]))
    assert key == "user-7"
    assert got == {**rows[0], "prediction": {k: want[0][k] for k in outputs}}
    batch = pa.RecordBatch.from_pylist(rows)
    scored = predict_op(lgbm)(batch)
    assert isinstance(scored, pa.RecordBatch)
    assert scored.to_pylist() == want
    nested = score(batch)
    assert nested.column("prediction").to_pylist() == [{k: w[k] for k in outputs} for w in want]


def test_predict_op_raises_with_the_reason(lgbm: Model) -> None:
    score = predict_op(lgbm)
    row = events(lgbm, 1)[0]
    with pytest.raises(InputError, match=f"^field 'f2' {re.escape(ABSENT)}$"):
        score({k: v for k, v in row.items() if k != "f2"})
    with pytest.raises(InputError, match=r"^field 'f1' is a string, expected float64$"):
        score({**row, "f1": "1.0"})
    with pytest.raises(InputError, match=r"got a list$"):
        score([1, 2])


def test_predict_routes_bad_items_to_errs_and_scores_the_rest(lgbm: Model) -> None:
    rows = events(lgbm, 40)
    bad = {
        3: ({k: v for k, v in rows[3].items() if k != "f4"}, f"field 'f4' {ABSENT}"),
        8: ({**rows[8], "f0": "x"}, "field 'f0' is a string, expected float64"),
        9: ([1.0, 2.0], "expected a dict, a (key, dict) pair or an Arrow record batch, got a list"),
        20: (("k", 5), "expected a dict, a (key, dict) pair or an Arrow record batch, got a (key, int) pair"),
        21: ({**rows[21], "f5": True}, "field 'f5' is a bool, expected float64"),
    }
    items = [bad[i][0] if i in bad else r for i, r in enumerate(rows)]
    oks, errs = run(items, lambda up: predict("score", up, lgbm))
    good = [r for i, r in enumerate(rows) if i not in bad]
    assert oks == expected(lgbm, good)
    assert errs == [PredictFailure(item, reason) for item, reason in bad.values()]


def test_predict_with_batching_keeps_order_per_key_and_flushes_at_eof(lgbm: Model) -> None:
    rows = events(lgbm, 101)
    keyed = [(str(r["id"] % 3), r) for r in rows]
    keyed.insert(50, ("1", {"f0": 1.0}))
    oks, errs = run(keyed, lambda up: predict("score", up, lgbm, max_batch_rows=8, max_wait=timedelta(seconds=30)))
    assert len(oks) == 101, "rows still buffered at EOF are scored"
    want = {r["id"]: w for r, w in zip(rows, expected(lgbm, rows), strict=True)}
    for key in ("0", "1", "2"):
        got = [v for k, v in oks if k == key]
        assert got == [want[r["id"]] for r in rows if str(r["id"] % 3) == key]
    assert errs == [PredictFailure(("1", {"f0": 1.0}), f"field 'f1' {ABSENT}")]


def test_predict_with_batching_takes_plain_items_and_pairs_in_one_stream(lgbm: Model) -> None:
    """The README's call on a stream of plain dicts: they are batched together and come out plain."""
    rows = events(lgbm, 60)
    items: list = [(str(r["id"] % 2), r) if r["id"] % 3 == 0 else r for r in rows]
    broken = {"f0": 1.0}
    items.insert(30, broken)
    oks, errs = run(
        items, lambda up: predict("score", up, lgbm, max_batch_rows=512, max_wait=timedelta(milliseconds=5))
    )
    want = dict(zip((r["id"] for r in rows), expected(lgbm, rows), strict=True))
    plain = [o for o in oks if isinstance(o, dict)]
    assert plain == [want[r["id"]] for r in rows if r["id"] % 3 != 0], "plain items come out plain, in order"
    for key in ("0", "1"):
        got = [v for o in oks if isinstance(o, tuple) and o[0] == key for v in [o[1]]]
        assert got == [want[r["id"]] for r in rows if r["id"] % 3 == 0 and str(r["id"] % 2) == key]
    assert len(oks) == 60
    assert errs == [PredictFailure(broken, f"field 'f1' {ABSENT}")]


def test_predict_with_zero_max_wait_scores_each_key_s_rows_of_each_bytewax_batch(lgbm: Model) -> None:
    """A zero ``max_wait`` is allowed (every host's rule): nothing waits past the Bytewax batch it came in."""
    rows = events(lgbm, 40)
    keyed = [(str(r["id"] % 2), r) for r in rows]
    batches: list[int] = []

    def score(items: list) -> list:
        batches.append(len(items))
        return items

    logic = BatchLogic(score, BatchPolicy(16, timedelta(0)), resume=None, clock=Clock())
    assert logic.on_batch(list(range(40))) == (
        [list(range(16)), list(range(16, 32)), list(range(32, 40))],
        BatchLogic.DISCARD,
    )
    assert logic.notify_at() is None
    assert batches == [16, 16, 8]
    oks, errs = run(keyed, lambda up: predict("score", up, lgbm, max_batch_rows=16, max_wait=timedelta(0)))
    assert sorted(v["id"] for _, v in oks) == [r["id"] for r in rows]
    assert errs == []


def test_predict_arrow_batches_in_the_stream(lgbm: Model) -> None:
    rows = events(lgbm, 30)
    batches = [pa.RecordBatch.from_pylist(rows[i : i + 10]) for i in range(0, 30, 10)]
    bad = pa.RecordBatch.from_pylist([{"f0": 1.0}])
    oks, errs = run([*batches, bad], lambda up: predict("score", up, lgbm))
    assert [r for b in oks for r in b.to_pylist()] == expected(lgbm, rows)
    assert len(errs) == 1
    assert errs[0].item is bad
    assert "'f1'" in errs[0].reason


def test_a_model_failure_refuses_only_its_rows(c_models: dict[str, Path]) -> None:
    """A model error on a batch: its rows are scored one by one, only the failing row goes to errs."""
    flaky = Model.from_callable(
        _fail_on_negative,
        pa.schema([("x", pa.float64(), False)]),
        pa.schema([("y", pa.float64(), False)]),
        name="flaky",
    )
    items = [{"x": 1.0}, {"x": -1.0}, {"x": 2.0}]
    oks, errs = run(items, lambda up: predict("score", up, flaky))
    assert oks == [{"x": 1.0, "y": 1.0}, {"x": 2.0, "y": 2.0}]
    assert [e.item for e in errs] == [{"x": -1.0}]
    assert "negative input" in errs[0].reason


def _fail_on_negative(batch: pa.RecordBatch) -> pa.RecordBatch:
    if pc.any(pc.less(batch["x"], 0)).as_py():
        raise ValueError("negative input")
    return pa.record_batch({"y": batch["x"]})


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_max_wait_is_the_age_of_the_oldest_row_not_inactivity() -> None:
    clock = Clock()
    scored: list[list] = []

    def score(rows: list) -> list:
        scored.append(list(rows))
        return list(rows)

    policy = BatchPolicy(100, timedelta(seconds=10))
    logic = BatchLogic(score, policy, resume=None, clock=clock)
    t0 = clock.now
    assert logic.on_batch([1]) == ([], BatchLogic.RETAIN)
    assert logic.notify_at() == t0 + timedelta(seconds=10)
    clock.now = t0 + timedelta(seconds=6)
    assert logic.on_batch([2]) == ([], BatchLogic.RETAIN)
    assert logic.notify_at() == t0 + timedelta(seconds=10), "a new row does not restart the wait"
    clock.now = t0 + timedelta(seconds=10)
    assert logic.on_batch([3]) == ([[1, 2, 3]], BatchLogic.DISCARD), "one output per scored batch"
    assert logic.notify_at() is None
    clock.now = t0 + timedelta(seconds=11)
    logic.on_batch([4])
    snap = logic.snapshot()
    assert snap == ([4], clock.now)
    resumed = BatchLogic(score, policy, resume=snap, clock=clock)
    assert resumed.on_notify() == ([[4]], BatchLogic.DISCARD)
    full = BatchLogic(score, BatchPolicy(2, timedelta(hours=1)), resume=None, clock=clock)
    assert full.on_batch([5, 6, 7, 8, 9]) == ([[5, 6], [7, 8]], BatchLogic.RETAIN)
    assert full.on_eof() == ([[9]], BatchLogic.DISCARD)
    assert scored == [[1, 2, 3], [4], [5, 6], [7, 8], [9]]


def test_bad_options_are_refused(lgbm: Model) -> None:
    flow = Dataflow("t")
    up = op.input("in", flow, TestingSource([]))
    with pytest.raises(ValueError, match=r"^max_batch_rows must be an integer of at least 1, got 0$"):
        predict("a", up, lgbm, max_batch_rows=0)
    with pytest.raises(TypeError, match=r"^max_wait must be a datetime\.timedelta, got a float$"):
        predict("b", up, lgbm, max_wait=0.5)
    with pytest.raises(
        TypeError,
        match=r"^model must be a streamml\.Model, a model reference \(a binary's path, a model directory, "
        r"DIR@ALIAS, models:/NAME@ALIAS\) or a ModelSlot, got a int$",
    ):
        predict("c", up, 3)


def test_outputs_are_plain_python_numbers(lgbm: Model) -> None:
    out = predict_op(lgbm)(events(lgbm, 1)[0])
    for name in lgbm.output_schema.names:
        assert type(out[name]) in (float, int)
        assert math.isfinite(out[name])
