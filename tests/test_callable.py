"""Model.from_callable: a Python function through the same checks as a binary."""

from __future__ import annotations

import pickle
import re

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from streamml import InputError, Model, ModelLoadError, PredictError

INPUTS = pa.schema([pa.field("a", pa.float64(), nullable=False), pa.field("b", pa.int64(), nullable=True)])
OUTPUTS = pa.schema([pa.field("total", pa.float64(), nullable=False)])


def add(batch: pa.RecordBatch) -> pa.RecordBatch:
    b = pc.fill_null(batch["b"], 0).cast(pa.float64())
    return pa.record_batch({"total": pc.add(batch["a"], b)})


def test_callable_gets_exactly_the_declared_inputs() -> None:
    seen: list[pa.Schema] = []

    def spy(batch: pa.RecordBatch) -> pa.RecordBatch:
        seen.append(batch.schema)
        return add(batch)

    model = Model.from_callable(spy, INPUTS, OUTPUTS, name="adder", version="2", task="regression")
    out = model.predict(pa.record_batch({"z": ["x", "y"], "b": pa.array([1, None], pa.int32()), "a": [0.5, 1.5]}))
    assert out.column("total").to_pylist() == [1.5, 1.5]
    assert seen == [INPUTS]
    assert (model.name, model.version, model.info["framework"], model.info["task"]) == (
        "adder",
        "2",
        "python",
        "regression",
    )
    assert model.sha256 is None
    assert model.path is None


def test_callable_name_defaults_to_the_function_name() -> None:
    assert Model.from_callable(add, INPUTS, OUTPUTS).name == "add"


def test_outputs_are_found_by_name_and_cast() -> None:
    def many(batch: pa.RecordBatch) -> pl.DataFrame:  # a polars frame, extra column, float32
        return pl.DataFrame(
            {"extra": [1] * batch.num_rows, "total": pl.Series(batch["a"].to_numpy(), dtype=pl.Float32)}
        )

    out = Model.from_callable(many, INPUTS, OUTPUTS).predict([{"a": 2.0, "b": None}])
    assert out.schema == OUTPUTS
    assert out.column("total").to_pylist() == [2.0]


def test_callable_equals_binary_on_the_same_rows(linear: Model) -> None:
    def formula(batch: pa.RecordBatch) -> pa.RecordBatch:
        x0, x1 = batch["x0"].to_numpy(), batch["x1"].to_numpy()
        x2 = pc.fill_null(batch["x2"], 0.0).to_numpy()
        return pa.record_batch({"score": 0.5 + 2.0 * x0 - 1.0 * x1 + 0.25 * x2})

    twin = Model.from_callable(formula, linear.input_schema, linear.output_schema)
    rng = np.random.default_rng(1)
    batch = pa.record_batch(
        {
            "x0": rng.normal(size=1000),
            "x1": rng.normal(size=1000),
            "x2": pa.array(rng.normal(size=1000), mask=rng.random(1000) < 0.3),
        }
    )
    np.testing.assert_allclose(
        twin.predict(batch).column("score").to_numpy(), linear.predict(batch).column("score").to_numpy(), rtol=1e-15
    )


def test_exceptions_in_the_callable_become_predict_errors() -> None:
    def broken(batch: pa.RecordBatch) -> pa.RecordBatch:
        msg = "feature store unavailable"
        raise RuntimeError(msg)

    with pytest.raises(PredictError) as e:
        Model.from_callable(broken, INPUTS, OUTPUTS).predict([{"a": 1.0, "b": 1}])
    assert str(e.value) == (
        "python callable 'broken' failed on a batch of 1 row(s): raised RuntimeError: feature store unavailable"
    )


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda b: 42, "returned a int; return an Arrow batch"),
        (lambda b: pa.record_batch({"other": [1.0]}), "returned bad outputs: missing required column 'total'"),
        (lambda b: pa.record_batch({"total": [1.0, 2.0]}), "returned 2 row(s) for 1"),
        (lambda b: pa.record_batch({"total": pa.array([None], pa.float64())}), "column 'total' is not nullable"),
    ],
)
def test_bad_outputs_are_refused(fn, message: str) -> None:
    with pytest.raises(PredictError, match=re.escape(message)):
        Model.from_callable(fn, INPUTS, OUTPUTS, name="bad").predict([{"a": 1.0, "b": 1}])


def test_inputs_are_checked_before_the_callable_runs() -> None:
    calls = []
    model = Model.from_callable(lambda b: calls.append(b) or add(b), INPUTS, OUTPUTS)
    with pytest.raises(InputError, match="missing required column 'a'"):
        model.predict(pa.record_batch({"b": [1]}))
    assert calls == []


def test_bad_declarations_are_refused() -> None:
    with pytest.raises(ModelLoadError, match="task 'ranking' is not one of"):
        Model.from_callable(add, INPUTS, OUTPUTS, task="ranking")  # type: ignore[arg-type]
    with pytest.raises(ModelLoadError, match="input field 't' has type Timestamp"):
        Model.from_callable(add, pa.schema([("t", pa.timestamp("s"))]), OUTPUTS)
    with pytest.raises(ModelLoadError, match="declares no output fields"):
        Model.from_callable(add, INPUTS, pa.schema([]))


def test_binary_models_pickle_by_path_and_hash(s1: Model) -> None:
    again = pickle.loads(pickle.dumps(s1))
    assert (again.path, again.sha256) == (s1.path, s1.sha256)


def test_callable_models_pickle_with_their_function() -> None:
    again = pickle.loads(pickle.dumps(Model.from_callable(add, INPUTS, OUTPUTS, name="adder")))
    assert again.predict([{"a": 1.0, "b": 2}]).column("total").to_pylist() == [3.0]
