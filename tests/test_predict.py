"""Scoring: parity with the framework and with plain-Python references, every input kind."""

from __future__ import annotations

import math
import threading

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression

from streamml import Model
from streamml_dev.workloads import FEATURE_NAMES, r1_data, r1_record_batch


def s1_reference(x: np.ndarray, intercept: float, coef: list[float]) -> np.ndarray:
    z = np.full(x.shape[0], intercept)
    for j, w in enumerate(coef):  # the binary's summation order
        z = z + w * x[:, j]
    return 1.0 / (1.0 + np.exp(-z))


def features(batch: pa.RecordBatch) -> np.ndarray:
    return np.column_stack([batch.column(name).to_numpy() for name in FEATURE_NAMES])


def test_s1_matches_scikit_learn_on_10k_rows(s1: Model, s1_params: tuple[float, list[float]]) -> None:
    intercept, coef = s1_params
    lr = LogisticRegression()
    lr.classes_ = np.array([0, 1])
    lr.coef_ = np.array([coef])
    lr.intercept_ = np.array([intercept])
    batch = r1_record_batch(10_000)
    x = features(batch)
    out = s1.predict(batch)
    assert isinstance(out, pa.RecordBatch)
    assert out.num_rows == 10_000
    np.testing.assert_allclose(out.column("probability").to_numpy(), lr.predict_proba(x)[:, 1], rtol=1e-12, atol=0)
    np.testing.assert_array_equal(out.column("label").to_numpy(), lr.predict(x))


def test_s1_coefficients_are_the_trained_s1(s1_params: tuple[float, list[float]]) -> None:
    # The binary's coefficients are S1 of the design: retraining reproduces them.
    from streamml_dev.workloads import train_s1

    model = train_s1()
    intercept, coef = s1_params
    np.testing.assert_allclose(coef, model.coef_[0], rtol=1e-6)
    assert intercept == pytest.approx(model.intercept_[0], rel=1e-6)


def test_c_model_matches_its_formula(linear: Model) -> None:
    rng = np.random.default_rng(3)
    n = 10_000
    x0, x1, x2 = rng.normal(size=(3, n))
    x2_mask = rng.random(n) < 0.2
    batch = pa.record_batch({"x0": x0, "x1": x1, "x2": pa.array(x2, mask=x2_mask)})
    out = linear.predict(batch).column("score").to_numpy()
    expected = 0.5 + 2.0 * x0 - 1.0 * x1 + 0.25 * np.where(x2_mask, 0.0, x2)
    np.testing.assert_allclose(out, expected, rtol=1e-15, atol=1e-15)


def test_columns_are_found_by_name_and_extras_ignored(linear: Model) -> None:
    batch = pa.record_batch({"note": ["a", "b"], "x2": [1.0, 2.0], "x1": [0.0, 1.0], "x0": [1.0, 1.0], "x9": [5, 6]})
    assert linear.predict(batch).column("score").to_pylist() == [2.75, 2.0]


def test_integer_and_float32_columns_are_cast(linear: Model) -> None:
    batch = pa.record_batch(
        {
            "x0": pa.array([1, 2], pa.int64()),
            "x1": pa.array([1, 0], pa.uint8()),
            "x2": pa.array([0.5, None], pa.float32()),
        }
    )
    assert linear.predict(batch).column("score").to_pylist() == [1.625, 4.5]


def test_table_gives_table_and_keeps_chunks(linear: Model) -> None:
    table = pa.Table.from_batches(
        [
            pa.record_batch({"x0": [1.0], "x1": [0.0], "x2": [0.0]}),
            pa.record_batch({"x0": [2.0, 3.0], "x1": [0.0, 0.0], "x2": [0.0, 4.0]}),
        ]
    )
    out = linear.predict(table)
    assert isinstance(out, pa.Table)
    assert out.column("score").to_pylist() == [2.5, 4.5, 7.5]
    assert out.column("score").num_chunks == 2


def test_polars_dataframe(s1: Model) -> None:
    batch = r1_record_batch(500)
    frame = pl.from_arrow(batch)
    assert isinstance(frame, pl.DataFrame)
    out = s1.predict(frame)
    assert isinstance(out, pa.Table)
    np.testing.assert_array_equal(
        out.column("probability").to_numpy(), s1.predict(batch).column("probability").to_numpy()
    )


def test_struct_array_and_record_batch_reader(linear: Model) -> None:
    struct = pa.StructArray.from_arrays([pa.array([1.0]), pa.array([2.0]), pa.array([3.0])], names=["x0", "x1", "x2"])
    assert linear.predict(struct).column("score").to_pylist() == [1.25]
    reader = pa.RecordBatchReader.from_batches(
        pa.schema([("x0", pa.float64()), ("x1", pa.float64()), ("x2", pa.float64())]),
        [pa.record_batch({"x0": [1.0], "x1": [2.0], "x2": [3.0]})] * 3,
    )
    assert linear.predict(reader).column("score").to_pylist() == [1.25] * 3


def test_list_of_dicts_equals_the_arrow_path(s1: Model) -> None:
    batch = r1_record_batch(200)
    rows = batch.to_pylist()
    rows[0]["x3"] = 1  # an int where a float is declared
    batch = pa.RecordBatch.from_pylist(rows, schema=batch.schema)
    from_dicts = s1.predict(rows)
    assert isinstance(from_dicts, pa.RecordBatch)
    assert from_dicts.equals(s1.predict(batch))


def test_dicts_accept_numpy_scalars_and_nulls_where_nullable(linear: Model) -> None:
    rows = [{"x0": np.float64(1.0), "x1": np.int32(2), "x2": None}, {"x0": 1, "x1": 0.5, "x2": 2.0, "other": "x"}]
    assert linear.predict(rows).column("score").to_pylist() == [0.5, 2.5]


def test_sliced_batch_uses_its_offset(s1: Model) -> None:
    batch = r1_record_batch(1000)
    whole = s1.predict(batch)
    part = s1.predict(batch.slice(137, 50))
    assert part.equals(whole.slice(137, 50))


def test_one_row_and_one_million_rows(s1: Model, s1_params: tuple[float, list[float]]) -> None:
    intercept, coef = s1_params
    one = r1_record_batch(1)
    np.testing.assert_allclose(
        s1.predict(one).column("probability").to_numpy(), s1_reference(features(one), intercept, coef), rtol=1e-14
    )
    big = r1_record_batch(1_000_000)
    out = s1.predict(big)
    assert out.num_rows == 1_000_000
    idx = np.random.default_rng(0).integers(0, 1_000_000, 1000)
    x = features(big)[idx]
    np.testing.assert_allclose(out.column("probability").to_numpy()[idx], s1_reference(x, intercept, coef), rtol=1e-14)


def test_empty_batch_gives_empty_output_with_the_output_schema(s1: Model, linear: Model) -> None:
    empty = r1_record_batch(10).slice(0, 0)
    out = s1.predict(empty)
    assert out.num_rows == 0
    assert out.schema == s1.output_schema
    assert linear.predict([]).num_rows == 0
    assert (
        linear.predict(
            pa.table(
                {"x0": pa.array([], pa.float64()), "x1": pa.array([], pa.float64()), "x2": pa.array([], pa.float64())}
            )
        ).num_rows
        == 0
    )


def test_concurrent_predicts_agree(s1: Model) -> None:
    batch = r1_record_batch(20_000)
    expected = s1.predict(batch)
    results: list[bool] = []

    def work() -> None:
        results.extend(s1.predict(batch).equals(expected) for _ in range(10))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 40


def test_nan_features_propagate_in_s1(s1: Model) -> None:
    x, _ = r1_data(3, seed=5)
    x[1, 4] = math.nan
    batch = pa.record_batch([pa.array(x[:, i]) for i in range(32)], names=list(FEATURE_NAMES))
    prob = s1.predict(batch).column("probability").to_pylist()
    assert math.isnan(prob[1])
    assert not math.isnan(prob[0])
    assert not math.isnan(prob[2])
