"""`Model.predict_numpy`: NumPy rows in, NumPy outputs out, bit for bit what `Model.predict` gives.

The compiled models are small LightGBM (binary, multiclass, regression) and scikit-learn
(binary with string classes) models on R1's 32 features. Every result is compared with
``Model.predict`` on a ``pyarrow.RecordBatch`` of the same rows: same dtypes, same shapes,
same bits (NaN included).
"""

from __future__ import annotations

import re
import threading
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from rows_support import with_nans
from streamml import InputError, Model
from streamml.compile import compile
from streamml_dev.workloads import FEATURE_NAMES, r1_data

lgb = pytest.importorskip("lightgbm")
ROWS = 3_000


def record_batch(x: np.ndarray, *, nan_as_null: bool = False) -> pa.RecordBatch:
    columns = [pa.array(x[:, j], from_pandas=nan_as_null) for j in range(x.shape[1])]
    return pa.record_batch(columns, names=list(FEATURE_NAMES))


def arrow_outputs(batch: pa.RecordBatch) -> dict[str, np.ndarray]:
    """``Model.predict``'s outputs as NumPy arrays, per-class lists as ``(rows, classes)``."""
    out = {}
    for name in batch.schema.names:
        column = batch.column(name)
        if pa.types.is_fixed_size_list(column.type):
            flat = column.flatten().to_numpy()
            out[name] = flat.reshape(len(column), column.type.list_size)
        else:
            out[name] = column.to_numpy(zero_copy_only=False)
    return out


def assert_same(got: dict[str, Any], want: dict[str, np.ndarray]) -> None:
    """Same keys in the same order, same dtypes and shapes, same bits."""
    assert list(got) == list(want)
    for name, expected in want.items():
        actual = got[name]
        assert isinstance(actual, np.ndarray), name
        assert (actual.dtype, actual.shape) == (expected.dtype, expected.shape), name
        if expected.dtype.kind == "f":
            np.testing.assert_array_equal(actual.view(np.uint64), expected.view(np.uint64), err_msg=name)
        else:
            np.testing.assert_array_equal(actual, expected, err_msg=name)


def _train(params: dict[str, Any], y: np.ndarray, x: np.ndarray) -> Any:
    params = {"verbose": -1, "num_threads": 1, "seed": 7, "deterministic": True, "num_leaves": 15, **params}
    return lgb.train(params, lgb.Dataset(with_nans(x, 1), y), 30)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Model]:
    """Compiled binaries of every task, and one with string labels."""
    from sklearn.linear_model import LogisticRegression

    out = tmp_path_factory.mktemp("numpy-models")
    x, y = r1_data(4_000, seed=5)
    three = np.digitize(x[:, 0] + x[:, 1], [-0.5, 0.5])
    trained = {
        "binary": _train({"objective": "binary"}, y, x),
        "multiclass": _train({"objective": "multiclass", "num_class": 3}, three, x),
        "regression": _train({"objective": "regression"}, x[:, 0] * 2 + x[:, 2], x),
        "strings": LogisticRegression(max_iter=300).fit(x, np.where(y == 1, "yes", "no")),
    }
    return {
        kind: Model.load(compile(est, out / f"{kind}.so", name=kind, features=list(FEATURE_NAMES)))
        for kind, est in trained.items()
    }


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    x, _ = r1_data(ROWS, seed=43)
    return with_nans(x, 2)


def test_the_outputs_of_each_task(models: dict[str, Model], rows: np.ndarray) -> None:
    shapes = {
        kind: {k: (v.dtype.str, v.shape) for k, v in m.predict_numpy(rows[:4]).items()} for kind, m in models.items()
    }
    assert shapes == {
        "binary": {"probability": ("<f8", (4,)), "label": ("<i8", (4,))},
        "multiclass": {"probabilities": ("<f8", (4, 3)), "label": ("<i8", (4,))},
        "regression": {"prediction": ("<f8", (4,))},
        "strings": {"probability": ("<f8", (4,)), "label": ("|O", (4,))},
    }
    assert set(models["strings"].predict_numpy(rows[:50])["label"]) == {"no", "yes"}


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression", "strings"])
@pytest.mark.parametrize("n", [ROWS, 1, 0], ids=["many", "one", "none"])
def test_parity_with_record_batch(models: dict[str, Model], rows: np.ndarray, kind: str, n: int) -> None:
    model = models[kind]
    x = np.ascontiguousarray(rows[:n])
    assert np.isnan(rows).any()
    assert_same(model.predict_numpy(x), arrow_outputs(model.predict(record_batch(x))))


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_every_row_one_at_a_time(models: dict[str, Model], rows: np.ndarray, kind: str) -> None:
    """The one-row path (a reused input array) gives each row what the whole batch does."""
    model = models[kind]
    whole = model.predict_numpy(rows[:300])
    for i in range(300):
        one = model.predict_numpy(rows[i])  # 1-D: one row
        assert_same(one, {name: column[i : i + 1] for name, column in whole.items()})


def test_nan_is_missing_like_null(models: dict[str, Model], rows: np.ndarray) -> None:
    """NaN cells score as missing values: what the same cells give as Arrow nulls."""
    for model in (models["binary"], models["regression"]):
        assert_same(model.predict_numpy(rows), arrow_outputs(model.predict(record_batch(rows, nan_as_null=True))))


def test_float32_is_widened(models: dict[str, Model], rows: np.ndarray) -> None:
    model = models["binary"]
    x32 = rows[:500].astype(np.float32)
    want = arrow_outputs(model.predict(record_batch(x32.astype(np.float64))))
    assert_same(model.predict_numpy(x32), want)
    assert_same(model.predict_numpy(x32[:1]), {k: v[:1] for k, v in want.items()})


def test_memory_orders(models: dict[str, Model], rows: np.ndarray) -> None:
    model = models["multiclass"]
    want = model.predict_numpy(np.ascontiguousarray(rows))
    wide = np.repeat(rows, 2, axis=1)  # column j at 2j: a view with a column stride of 2
    views = {
        "fortran": np.asfortranarray(rows),
        "column stride": wide[:, ::2],
    }
    for name, view in views.items():
        assert not view.flags.c_contiguous, name
        assert_same(model.predict_numpy(view), want)
    for step in (2, -1):  # every other row; the rows backwards (a negative stride)
        assert_same(model.predict_numpy(rows[::step]), {k: v[::step] for k, v in want.items()})
    one_fortran_row = np.asfortranarray(rows)[7]
    assert not one_fortran_row.flags.c_contiguous
    assert_same(model.predict_numpy(one_fortran_row), {k: v[7:8] for k, v in want.items()})


def test_threads_share_the_one_row_path(models: dict[str, Model], rows: np.ndarray) -> None:
    """Threads scoring one row at a time each get their own row's outputs."""
    model = models["binary"]
    want = model.predict_numpy(rows[:200])["probability"]
    got: dict[int, list[float]] = {}

    def score(t: int) -> None:
        got[t] = [float(model.predict_numpy(rows[i])["probability"][0]) for i in range(200)]

    threads = [threading.Thread(target=score, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(np.array(v), want) for v in got.values())


def test_python_callable(rows: np.ndarray) -> None:
    """A callable model runs through the general path, one row or many."""
    inputs = pa.schema([(name, pa.float64()) for name in ("a", "b")])
    outputs = pa.schema([("total", pa.float64(), False), ("big", pa.bool_(), False)])

    def fn(batch: pa.RecordBatch) -> pa.RecordBatch:
        total = pc.add(batch["a"], batch["b"])
        return pa.record_batch({"total": total, "big": pc.greater(total, 1.0)})

    model = Model.from_callable(fn, inputs, outputs, name="adder")
    x = rows[:100, :2]
    want = arrow_outputs(model.predict(pa.record_batch({"a": x[:, 0], "b": x[:, 1]})))
    assert want["big"].dtype == np.bool_
    assert_same(model.predict_numpy(x), want)
    assert_same(model.predict_numpy(x[3]), {k: v[3:4] for k, v in want.items()})


# -- bad input ------------------------------------------------------------------------------------


def test_wrong_column_count(models: dict[str, Model], rows: np.ndarray) -> None:
    model = models["binary"]
    message = f"model binary '{model.path}' has 32 input(s) ('x0' .. 'x31'); the array has 31 column(s)"
    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        model.predict_numpy(rows[:, :31])
    with pytest.raises(InputError, match=re.escape("the array has 33 column(s)")):
        model.predict_numpy(np.zeros(33))


def test_a_model_with_an_input_that_is_not_float64(rows: np.ndarray) -> None:
    inputs = pa.schema([("x", pa.float64()), ("count", pa.int64())])
    model = Model.from_callable(lambda b: b.select(["x"]), inputs, pa.schema([("x", pa.float64())]), name="mixed")
    message = (
        "python callable 'mixed' cannot score a NumPy array: its input 'count' is Int64, and predict_numpy "
        "needs every input to be float64; use predict with an Arrow batch or dicts"
    )
    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        model.predict_numpy(rows[:3, :2])


def test_three_dimensions(models: dict[str, Model]) -> None:
    message = (
        "predict_numpy expects a 2-D array (rows, inputs) or a 1-D array (one row); got a 3-D array of shape (2, 3, 32)"
    )
    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        models["binary"].predict_numpy(np.zeros((2, 3, 32)))


def test_not_an_array_of_floats(models: dict[str, Model]) -> None:
    model = models["binary"]
    with pytest.raises(TypeError, match=r"^predict_numpy expects a numpy\.ndarray, got list$"):
        model.predict_numpy([[0.0] * 32])
    message = "predict_numpy expects a float64 or float32 array, got int64; convert it with x.astype(numpy.float64)"
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        model.predict_numpy(np.zeros((2, 32), dtype=np.int64))
