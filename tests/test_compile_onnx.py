"""ONNX-ML -> IR: the compiled graph's outputs (``ir_predict``) equal onnxruntime's on the same rows.

onnxruntime reads float32 rows; the binary reads float64 rows and rounds them to float32 where the
graph's input is float (``feature_cast``), so both see the same values. Tree sums are float32 in
both; onnxruntime then adds the base value and applies the link in float32, the IR in float64, so
scores agree within 1e-6 relative (a float32 rounding or two) and labels exactly. Linear models
are summed in float32 by onnxruntime (a GEMM) and in float64 by the IR: they agree within 1e-6
relative of the sum of the terms' magnitudes. Every scoring set has at least 10,000 rows, with NaN
cells where the model handles missing values.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from rows_support import with_nans
from streamml.errors import CompileError
from streamml_dev.workloads import FEATURE_NAMES, r1_data

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
lightgbm = pytest.importorskip("lightgbm")
xgboost = pytest.importorskip("xgboost")
from onnx import TensorProto, helper  # noqa: E402
from onnxmltools import convert_lightgbm, convert_xgboost  # noqa: E402
from onnxmltools.convert.common.data_types import FloatTensorType  # noqa: E402
from skl2onnx import to_onnx  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.ensemble import (  # noqa: E402
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import Normalizer, OneHotEncoder, StandardScaler  # noqa: E402

from streamml.compile import compile as compile_model  # noqa: E402
from streamml.compile import from_onnx, to_ir  # noqa: E402

ROWS = 10_000
FLOAT32_STEP = 2.0**-23  # float32's spacing at 1.0
N = len(FEATURE_NAMES)
INPUT = [("input", FloatTensorType([None, N]))]


def run_ort(model, x: np.ndarray, dtype=np.float32) -> dict[str, np.ndarray]:
    """onnxruntime's outputs on ``x`` (one thread): ``label`` and ``scores`` (ZipMaps as a matrix)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: x.astype(dtype)})
    got = {}
    for out, value in zip(session.get_outputs(), outputs, strict=True):
        if isinstance(value, list):  # ZipMap: a list of {label: probability}
            value = np.array([list(row.values()) for row in value])
        got["label" if "label" in out.name else "scores"] = np.asarray(value)
    return got


def assert_parity(
    ir_predict, model, x: np.ndarray, *, dtype=np.float32, linear: bool = False, model_x: np.ndarray | None = None
) -> dict:
    """The IR of ``model`` against onnxruntime on ``x``; returns the IR's outputs.

    ``model_x``: the rows a linear model sees after the preprocessing steps (for its tolerance),
    default ``x``.
    """
    ir = from_onnx.to_ir(model, features=[f"x{i}" for i in range(x.shape[1])])
    got = ir_predict(ir, x)
    want = run_ort(model, x, dtype)
    if ir["task"] == "regression":
        actual, expected = got["prediction"], want["scores"].ravel()
    elif ir["task"] == "binary":
        actual, expected = got["probability"], want["scores"][:, 1]
    else:
        actual, expected = got["probabilities"], want["scores"]
    expected = expected.astype(np.float64)
    # onnxruntime's probabilities are float32, and it forms 1 - sigmoid(|v|) for a negative score:
    # an absolute error up to one float32 step at 1.0 on small probabilities
    atol = 0.0 if ir["link"] == "identity" else FLOAT32_STEP
    if linear:
        # onnxruntime's float32 GEMM rounds each term: compare relative to the terms' magnitudes
        model_ir = ir["model"]
        seen = x if model_x is None else model_x
        terms = np.abs(seen.astype(np.float32).astype(np.float64)) @ np.abs(np.asarray(model_ir["coef"])).T
        size = np.max(terms + np.abs(model_ir["intercept"]), axis=1)
        error = np.abs(actual - expected).reshape(len(x), -1).max(axis=1)
        np.testing.assert_array_less(error, 1e-6 * size + atol + 1e-300)
    else:
        np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=atol)
    if "label" in got:
        np.testing.assert_array_equal(got["label"], want["label"].ravel())
    return got


@pytest.fixture(scope="module")
def r1():
    """(training rows, labels, scoring rows with 10% NaN): R1's features."""
    x, y = r1_data(20_000)
    xs, _ = r1_data(ROWS, seed=43)
    return x, y, with_nans(xs, 2)


def _lgb(params: dict, x, y) -> lightgbm.Booster:
    params = {"num_threads": 1, "verbose": -1, "seed": 7, "num_leaves": 31, "learning_rate": 0.1, **params}
    return lightgbm.train(params, lightgbm.Dataset(x, y), params.pop("rounds", 50))


# -- LightGBM (onnxmltools) ----------------------------------------------------------------------


def test_lightgbm_binary_r1_like(ir_predict, r1) -> None:
    x, y, xs = r1
    booster = _lgb({"objective": "binary", "rounds": 100, "num_leaves": 63, "learning_rate": 0.05}, with_nans(x, 1), y)
    model = convert_lightgbm(booster, initial_types=INPUT, zipmap=False)
    ir = from_onnx.to_ir(model, features=list(FEATURE_NAMES))
    assert (ir["framework"], ir["task"], ir["link"], ir["binary_label"]) == ("onnx", "binary", "sigmoid", "raw_gt_zero")
    m = ir["model"]
    assert (m["feature_cast"], m["comparison"], m["accumulate"], len(m["trees"])) == ("float32", "le", "float32", 100)
    assert {d for t in m["trees"] for d in t["default_left"]} == {True, False}  # NaN goes both ways
    got = assert_parity(ir_predict, model, xs)
    # LightGBM itself compares float64 rows with float64 thresholds: the float32 export moves only
    # the rows that fall between a threshold and its float32 rounding
    expected = booster.predict(xs, num_threads=1)
    close = np.isclose(got["probability"], expected, rtol=1e-5, atol=0)
    assert close.mean() > 0.999, close.mean()


def test_lightgbm_multiclass_and_regression(ir_predict, r1) -> None:
    x, _, xs = r1
    y3 = np.digitize(x[:, 0] + x[:, 1], [-0.7, 0.7])
    multi = convert_lightgbm(_lgb({"objective": "multiclass", "num_class": 3}, x, y3), initial_types=INPUT)
    ir = from_onnx.to_ir(multi)
    assert (ir["task"], ir["link"], ir["classes"], ir["model"]["n_outputs"]) == ("multiclass", "softmax", [0, 1, 2], 3)
    assert {t["output"] for t in ir["model"]["trees"]} == {0, 1, 2}  # one class per tree, scalar leaves
    assert_parity(ir_predict, multi, xs)
    reg = convert_lightgbm(_lgb({"objective": "regression"}, x, x[:, 0] * 2 + x[:, 1] * x[:, 2]), initial_types=INPUT)
    assert_parity(ir_predict, reg, xs)


def test_lightgbm_categorical_split_chains(ir_predict) -> None:
    """onnxmltools writes a categorical split as a chain of BRANCH_EQ nodes sharing one true branch."""
    rng = np.random.default_rng(5)
    x = np.column_stack([rng.integers(0, 12, 20_000).astype(np.float64), rng.normal(size=20_000)])
    y = (np.isin(x[:, 0], [1, 4, 7, 9]) ^ (x[:, 1] > 0.3)).astype(float)
    booster = lightgbm.train(
        {"objective": "binary", "verbose": -1, "num_threads": 1, "min_data_per_group": 5, "cat_smooth": 1},
        lightgbm.Dataset(x, y, categorical_feature=[0]),
        20,
    )
    model = convert_lightgbm(booster, initial_types=[("input", FloatTensorType([None, 2]))], zipmap=False)
    ir = from_onnx.to_ir(model)
    assert any(c for t in ir["model"]["trees"] for c in t["categories"] if c), "no categorical node"
    xs = np.column_stack([rng.integers(-2, 14, ROWS).astype(np.float64), rng.normal(size=ROWS)])
    xs[::7, 0] = np.nan
    assert_parity(ir_predict, model, xs)


# -- XGBoost (onnxmltools): BRANCH_LT, base values -----------------------------------------------


def test_xgboost_binary_multiclass_regression(ir_predict, r1) -> None:
    x, y, xs = r1
    params = {"n_estimators": 60, "max_depth": 5, "n_jobs": 1, "random_state": 3}
    binary = convert_xgboost(xgboost.XGBClassifier(**params).fit(with_nans(x, 1), y), initial_types=INPUT)
    ir = from_onnx.to_ir(binary)
    assert ir["metadata"]["post_transform"] == "LOGISTIC"
    assert ir["model"]["base_score"] != [0.0]
    assert_parity(ir_predict, binary, xs)
    y3 = np.digitize(x[:, 0] - x[:, 3], [-0.7, 0.7])
    assert_parity(ir_predict, convert_xgboost(xgboost.XGBClassifier(**params).fit(x, y3), initial_types=INPUT), xs)
    reg = xgboost.XGBRegressor(**params).fit(x, x[:, 0] * 2 + x[:, 1] * x[:, 2])
    assert_parity(ir_predict, convert_xgboost(reg, initial_types=INPUT), xs)


# -- scikit-learn (skl2onnx) ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def dense(r1):
    """R1's rows without NaN (scikit-learn's forests here were fitted without missing values)."""
    x, y, xs = r1
    return x[:5000], y[:5000], np.nan_to_num(xs)


def test_sklearn_forest_binary_and_multiclass_with_zipmap(ir_predict, dense) -> None:
    x, y, xs = dense
    binary = to_onnx(
        RandomForestClassifier(n_estimators=20, max_depth=8, random_state=0).fit(x, y), x[:1].astype(np.float32)
    )
    assert "ZipMap" in [n.op_type for n in binary.graph.node]
    ir = from_onnx.to_ir(binary)
    assert (ir["task"], ir["link"], ir["binary_label"]) == ("binary", "identity", "probability_gt_half")
    assert_parity(ir_predict, binary, xs)
    y3 = np.digitize(x[:, 0] + x[:, 1], [-0.7, 0.7])
    multi = to_onnx(
        RandomForestClassifier(n_estimators=20, max_depth=8, random_state=0).fit(x, y3), x[:1].astype(np.float32)
    )
    assert from_onnx.to_ir(multi)["model"]["trees"][0]["output"] is None  # vector leaves: class fractions
    assert_parity(ir_predict, multi, xs)


def test_sklearn_gradient_boosting_and_regressors(ir_predict, dense) -> None:
    x, y, xs = dense
    y3 = np.digitize(x[:, 0] + x[:, 1], [-0.7, 0.7])
    opts = {"zipmap": False}
    for est, target in (
        (GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0), y),
        (GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0), y3),
    ):
        assert_parity(ir_predict, to_onnx(est.fit(x, target), x[:1].astype(np.float32), options=opts), xs)
    reg_y = x[:, 0] * 2 + x[:, 1] * x[:, 2]
    gbr = GradientBoostingRegressor(n_estimators=30, max_depth=3, random_state=0).fit(x, reg_y)
    assert_parity(ir_predict, to_onnx(gbr, x[:1].astype(np.float32)), xs)
    forest = RandomForestRegressor(n_estimators=10, max_depth=8, random_state=0).fit(x, reg_y)
    got = assert_parity(ir_predict, to_onnx(forest, x[:1].astype(np.float32)), xs)
    # and the original framework, whose trees also read float32 rows: the export's leaf values are
    # float32, so near zero the difference is relative to the predictions' scale, not to each value
    expected = forest.predict(xs.astype(np.float32))
    np.testing.assert_allclose(got["prediction"], expected, rtol=1e-6, atol=1e-6 * np.max(np.abs(expected)))


def test_sklearn_linear_models_and_scaler_pipeline(ir_predict, dense) -> None:
    x, y, xs = dense
    y3 = np.digitize(x[:, 0] + x[:, 1], [-0.7, 0.7])
    x32 = x[:1].astype(np.float32)
    binary = to_onnx(LogisticRegression(max_iter=500).fit(x, y), x32)
    assert from_onnx.to_ir(binary)["binary_label"] == "argmax"
    assert_parity(ir_predict, binary, xs, linear=True)
    multi = to_onnx(LogisticRegression(max_iter=500).fit(x, y3), x32, options={"zipmap": False})
    assert "Normalizer" in [n.op_type for n in multi.graph.node]
    assert_parity(ir_predict, multi, xs, linear=True)
    assert_parity(ir_predict, to_onnx(LinearRegression().fit(x, x[:, 0] * 2 + 1), x32), xs, linear=True)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x * 3 + 1, y)
    scaled = to_onnx(pipe, x32, options={"zipmap": False})
    ir = from_onnx.to_ir(scaled)
    assert [step["type"] for step in ir["preprocess"]] == ["cast", "affine", "cast", "affine", "cast"]
    got = ir_predict(ir, xs * 3 + 1)
    want = run_ort(scaled, xs * 3 + 1)
    # onnxruntime scales and sums in float32; scikit-learn in float64 with float64 coefficients
    np.testing.assert_allclose(got["probability"], want["scores"][:, 1], rtol=1e-6, atol=4 * FLOAT32_STEP)
    np.testing.assert_allclose(
        got["probability"], pipe.predict_proba(xs * 3 + 1)[:, 1], rtol=1e-6, atol=4 * FLOAT32_STEP
    )


def _column_transformer() -> ColumnTransformer:
    """Median imputing and scaling on 8 columns, mean imputing on 4 others, the rest dropped."""
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    return ColumnTransformer([("num", numeric, list(range(8))), ("raw", SimpleImputer(), [10, 11, 12, 13])])


def test_sklearn_pipeline_imputer_scaler_columns(ir_predict, r1) -> None:
    """skl2onnx's ArrayFeatureExtractor / Imputer / Scaler / Concat become IR steps, NaN imputed."""
    x, y, xs = r1
    x, y = x[:5000], y[:5000]
    x = with_nans(x * 2 + 0.5, 4)
    xs = xs * 2 + 0.5
    for estimator, linear in (
        (LogisticRegression(max_iter=500), True),
        (RandomForestClassifier(n_estimators=20, max_depth=8, random_state=0), False),
    ):
        pipe = Pipeline([("ct", _column_transformer()), ("model", estimator)]).fit(x, y)
        model = to_onnx(pipe, x[:1].astype(np.float32), options={"zipmap": False})
        ops = {n.op_type for n in model.graph.node}
        assert {"ArrayFeatureExtractor", "Imputer", "Scaler", "Concat"} <= ops
        ir = from_onnx.to_ir(model)
        assert ir["preprocess"][0]["type"] == "columns"
        got = assert_parity(ir_predict, model, xs, linear=linear, model_x=pipe[:-1].transform(xs))
        # scikit-learn in float64: the export's float32 steps move a few tree rows, not the linear model
        expected = pipe.predict_proba(xs)[:, 1]
        close = np.isclose(got["probability"], expected, rtol=1e-5, atol=1e-6)
        assert close.mean() > (0.9999 if linear else 0.995), close.mean()


def test_normalizer_on_features(ir_predict, dense) -> None:
    x, y, xs = dense
    for norm in ("l1", "l2"):
        pipe = make_pipeline(Normalizer(norm=norm), LogisticRegression(max_iter=500)).fit(x, y)
        model = to_onnx(pipe, x[:1].astype(np.float32), options={"zipmap": False})
        ir = from_onnx.to_ir(model)
        assert [s["type"] for s in ir["preprocess"]] == ["cast", "normalize", "cast"]
        assert_parity(ir_predict, model, xs, linear=True, model_x=pipe[:-1].transform(xs))


def test_numeric_one_hot_encoder_truncates_as_onnxruntime(ir_predict, dense) -> None:
    """Integer categories: onnxruntime looks up the input truncated to int64 (2.7 is 2, -0.7 is 0), NaN is none."""
    x, y, xs = dense
    x = np.column_stack([np.floor(np.abs(x[:, 0]) * 2), x[:, 1:4]])
    rng = np.random.default_rng(3)
    column = np.floor(np.abs(xs[:, 0]) * 2) + rng.choice([0.0, 0.3, 0.7, -0.7], len(xs))
    column[rng.random(len(xs)) < 0.05] = np.nan
    column[rng.random(len(xs)) < 0.02] = -1.5  # -1: not a category
    rows = np.column_stack([column, xs[:, 1:4]])
    for estimator in (LogisticRegression(), RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0)):
        ct = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), [0])], remainder="passthrough")
        pipe = make_pipeline(ct, estimator).fit(x, y)
        model = to_onnx(pipe, x[:1].astype(np.float32), options={"zipmap": False})
        ir = from_onnx.to_ir(model)
        assert '"to": "int64"' in json.dumps(ir["preprocess"])
        linear = isinstance(estimator, LogisticRegression)
        seen = pipe[:-1].transform(np.nan_to_num(rows)) if linear else None
        assert_parity(ir_predict, model, rows, linear=linear, model_x=seen)


def _integer_codes(n: int, seed: int) -> np.ndarray:
    """A category column as numbers.

    Whole codes 0..5, fractions onnxruntime truncates (2.7 is 2, -0.5 is 0), NaN, infinities and
    magnitudes int64 does not hold (onnxruntime makes them the smallest int64, never a category).
    """
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 6, n).astype(np.float64)
    odd = rng.random(n)
    codes[odd < 0.15] += rng.choice([0.25, 0.7, -0.5, 0.999], int((odd < 0.15).sum()))
    specials = [np.nan, np.inf, -np.inf, 1e30, -2.0**63, 2.0**62, -1.0, -0.0]
    at = rng.choice(n, n // 20, replace=False)
    codes[at] = rng.choice(specials, len(at))
    return codes


def _one_hot_graph(categories: list[int], zeros: int, cast_to: int | None) -> onnx.ModelProto:
    nodes, read = [], "X"
    if cast_to is not None:
        nodes.append(helper.make_node("Cast", ["X"], ["Xi"], to=cast_to, name="to_int"))
        read = "Xi"
    nodes += [
        helper.make_node(
            "OneHotEncoder", [read], ["H"], domain="ai.onnx.ml", cats_int64s=categories, zeros=zeros, name="ohe"
        ),
        helper.make_node("Reshape", ["H", "shape"], ["F"]),
        helper.make_node(
            "LinearRegressor", ["F"], ["Y"], domain="ai.onnx.ml",
            coefficients=[float(10**k) for k in range(len(categories))], intercepts=[0.5],
        ),
    ]
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [-1, len(categories)])
    graph = helper.make_graph(
        nodes, "ohe", [helper.make_tensor_value_info("X", TensorProto.DOUBLE, [None, 1])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 1])], initializer=[shape],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("ai.onnx.ml", 3)])


def test_one_hot_encoder_on_doubles_without_a_cast(ir_predict) -> None:
    """onnxruntime truncates a double input to int64 itself: the same step without the Cast node."""
    model = _one_hot_graph([-1, 0, 2, 3, 5], zeros=1, cast_to=None)
    xs = _integer_codes(ROWS, 9).reshape(-1, 1)
    got = ir_predict(from_onnx.to_ir(model), xs)["prediction"]
    want = run_ort(model, xs, np.float64)["scores"].ravel()
    np.testing.assert_array_equal(got, want.astype(np.float64))


def test_refusals_of_a_numeric_one_hot_encoder_name_the_node() -> None:
    ohe = "(ai.onnx.ml.OneHotEncoder)"
    for categories, cast_to, node, what in [
        ([0, 1, 2], 6, "ohe", f"{ohe} reads the int32 values node 'to_int' (Cast) makes; "
         "streamml reads a Cast to int64 or float/double features"),
        ([0, 2**60], 7, "ohe", f"{ohe} has an integer category beyond 2^53, which a double cannot hold exactly"),
        ([1, 1], None, "ohe", f"{ohe} repeats a category; streamml reads distinct categories"),
    ]:
        with pytest.raises(CompileError) as e:
            from_onnx.to_ir(_one_hot_graph(categories, zeros=1, cast_to=cast_to))
        assert str(e.value) == f"the ONNX model: node {node!r} {what}"


def test_string_one_hot_encoder_pipeline(tmp_path) -> None:
    """A string column one-hot encoded beside scaled numbers: utf8 input, unseen and empty strings."""
    import pandas as pd
    from skl2onnx.common.data_types import FloatTensorType as SkFloat
    from skl2onnx.common.data_types import StringTensorType

    from streamml import Model
    from streamml.compile import write_binary

    rng = np.random.default_rng(11)

    def frame(n: int, colors: list[str]) -> pd.DataFrame:
        a, b = rng.normal(size=(2, n))
        return pd.DataFrame({"color": rng.choice(colors, n), "a": a, "b": b})

    train = frame(5000, ["red", "green", "blue", ""])
    y = ((train.color == "red") ^ (train.a > 0.2)).astype(int)
    score = frame(ROWS, ["red", "green", "blue", "", "purple", "Red"])
    types = [("color", StringTensorType([None, 1])), ("a", SkFloat([None, 1])), ("b", SkFloat([None, 1]))]
    feeds = {"color": score[["color"]].to_numpy()} | {c: score[[c]].to_numpy(np.float32) for c in ("a", "b")}
    batch = pa.record_batch([pa.array(score[c]) for c in ("color", "a", "b")], names=["color", "a", "b"])
    for estimator in (LogisticRegression(), RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0)):
        ct = ColumnTransformer(
            [("cat", OneHotEncoder(handle_unknown="ignore"), ["color"]), ("num", StandardScaler(), ["a", "b"])]
        )
        pipe = Pipeline([("ct", ct), ("model", estimator)]).fit(train, y)
        model = to_onnx(pipe, initial_types=types, options={"zipmap": False})
        ir = from_onnx.to_ir(model)
        assert (ir["features"], ir["input_types"]) == (["color", "a", "b"], ["utf8", "float64", "float64"])
        got = Model.load(write_binary(ir, tmp_path / f"{type(estimator).__name__}.so")).predict(batch)
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        label, proba = session.run(None, feeds)
        np.testing.assert_array_equal(got.column("label").to_numpy(), label.ravel())
        np.testing.assert_allclose(got.column("probability").to_numpy(), proba[:, 1], rtol=1e-6, atol=4 * FLOAT32_STEP)


# -- node modes, thresholds, the opset-5 TreeEnsemble --------------------------------------------


def _tree_graph(modes: list[str], tracks: list[int], elem=TensorProto.FLOAT) -> onnx.ModelProto:
    """One tree per mode: root splits feature 0 at 0.1 (float32), true leaf 1.0, false leaf 2.0."""
    n = len(modes)
    node = helper.make_node(
        "TreeEnsembleRegressor",
        ["X"],
        ["Y"],
        domain="ai.onnx.ml",
        n_targets=1,
        nodes_treeids=[t for t in range(n) for _ in range(3)],
        nodes_nodeids=[0, 1, 2] * n,
        nodes_featureids=[0] * 3 * n,
        nodes_values=[0.1, 0.0, 0.0] * n,
        nodes_modes=[m for mode in modes for m in (mode, "LEAF", "LEAF")],
        nodes_truenodeids=[1, 0, 0] * n,
        nodes_falsenodeids=[2, 0, 0] * n,
        nodes_missing_value_tracks_true=[v for t in tracks for v in (t, 0, 0)],
        target_treeids=[t for t in range(n) for _ in range(2)],
        target_nodeids=[1, 2] * n,
        target_ids=[0, 0] * n,
        target_weights=[w for t in range(n) for w in (1.0 * 10**t, 2.0 * 10**t)],
    )
    graph = helper.make_graph(
        [node],
        "modes",
        [helper.make_tensor_value_info("X", elem, [None, 1])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 1])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("ai.onnx.ml", 3)])


def _at_thresholds(t: float) -> np.ndarray:
    """Rows at a float32 threshold, one float32 step either side, between float64 neighbours, NaN."""
    t32 = np.float32(t)
    values = [
        t32,
        np.nextafter(t32, np.float32(-1)),
        np.nextafter(t32, np.float32(1)),
        float(t32) + 1e-12,
        float(t32) - 1e-12,
        0.1,
        np.nan,
        -np.inf,
        np.inf,
        0.0,
    ]
    return np.repeat(np.array(values, dtype=np.float64), ROWS // len(values) + 1)[:ROWS].reshape(-1, 1)


@pytest.mark.parametrize("mode", ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_node_modes_at_thresholds_and_nan(ir_predict, mode, dtype) -> None:
    """Each mode, with NaN tracking the true branch or not, on float and double inputs."""
    elem = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    for tracks in (0, 1):
        model = _tree_graph([mode], [tracks], elem)
        if mode in ("BRANCH_EQ", "BRANCH_NEQ"):  # equality on 0.1 is refused; on an integer it is a category
            with pytest.raises(CompileError, match=r"tests equality with 0\.10000000149011612; streamml reads"):
                from_onnx.to_ir(model)
            for a in model.graph.node[0].attribute:
                if a.name == "nodes_values":
                    a.floats[0] = 3.0
            x = _at_thresholds(3.0)
        else:
            x = _at_thresholds(0.1)
        ir = from_onnx.to_ir(model)
        assert ir["model"]["feature_cast"] == ("float32" if dtype == np.float32 else "float64")
        assert_parity(ir_predict, model, x, dtype=dtype)


def test_opset5_tree_ensemble(ir_predict) -> None:
    """TreeEnsemble (ai.onnx.ml 5): LEQ and BRANCH_MEMBER nodes, a one-leaf tree, AVERAGE."""
    node = helper.make_node(
        "TreeEnsemble",
        ["X"],
        ["Y"],
        domain="ai.onnx.ml",
        n_targets=1,
        aggregate_function=0,
        post_transform=0,
        tree_roots=[0, 3],
        nodes_modes=helper.make_tensor("m", TensorProto.UINT8, (4,), [0, 6, 0, 0]),
        nodes_featureids=[0, 1, 0, 0],
        nodes_splits=helper.make_tensor("s", TensorProto.FLOAT, (4,), [0.5, 0.0, 0.0, 0.0]),
        nodes_trueleafs=[0, 1, 1, 1],
        nodes_truenodeids=[1, 0, 1, 3],
        nodes_falseleafs=[1, 1, 1, 1],
        nodes_falsenodeids=[2, 1, 2, 3],
        nodes_missing_value_tracks_true=[1, 0, 0, 0],
        membership_values=helper.make_tensor("v", TensorProto.FLOAT, (4,), [1.0, 4.0, 7.0, np.nan]),
        leaf_targetids=[0, 0, 0, 0],
        leaf_weights=helper.make_tensor("w", TensorProto.FLOAT, (4,), [1.5, -2.0, 4.0, 0.25]),
    )
    graph = helper.make_graph(
        [node],
        "v5",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 5)])
    ir = from_onnx.to_ir(model)
    assert (ir["model"]["aggregate"], len(ir["model"]["trees"])) == ("mean", 2)
    rng = np.random.default_rng(9)
    x = np.column_stack(
        [rng.choice([0.5, 0.25, 0.75, np.nan], ROWS), rng.choice([1.0, 4.0, 7.0, 2.0, -1.0, np.nan], ROWS)]
    )
    assert_parity(ir_predict, model, x)


# -- compile() and refusals ----------------------------------------------------------------------


def test_compile_an_onnx_file(tmp_path, dense) -> None:
    from streamml import Model

    x, y, xs = dense
    path = tmp_path / "forest.onnx"
    forest = RandomForestClassifier(n_estimators=5, max_depth=5, random_state=0).fit(x, y)
    path.write_bytes(to_onnx(forest, x[:1].astype(np.float32)).SerializeToString())
    binary = compile_model(path, tmp_path / "forest.so", name="forest", features=list(FEATURE_NAMES))
    model = Model.load(binary)
    assert (model.info["name"], model.info["framework"]) == ("forest", "onnx")
    out = model.predict_numpy(xs[:100])
    np.testing.assert_allclose(out["probability"], run_ort(onnx.load(path), xs[:100])["scores"][:, 1], rtol=1e-6)
    assert to_ir(onnx.load(path))["features"] == [f"f{i}" for i in range(N)]


def _graph(nodes, inputs=("X",), width=2, out="Y") -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(i, TensorProto.FLOAT, [None, width]) for i in inputs],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [None, 1])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("ai.onnx.ml", 3)])


def test_refuses_an_unsupported_operator_naming_its_node(tmp_path) -> None:
    linear = helper.make_node("LinearRegressor", ["A"], ["Y"], name="lin", domain="ai.onnx.ml", coefficients=[1.0, 2.0])
    model = _graph([helper.make_node("Abs", ["X"], ["A"], name="absolute"), linear])
    path = tmp_path / "abs.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(CompileError) as e:
        to_ir(path)
    assert str(e.value) == (
        f"ONNX model {path}: node 'absolute' (Abs) is not supported; streamml compiles graphs of: "
        "TreeEnsembleClassifier, TreeEnsembleRegressor, TreeEnsemble, LinearClassifier, LinearRegressor, Identity, "
        "Cast, Concat, ArrayFeatureExtractor, Gather, Reshape, Flatten, Scaler, Imputer, Normalizer, OneHotEncoder, "
        "ZipMap, Mul"
    )
    svm = helper.make_node("SVMRegressor", ["X"], ["Y"], name="svm", domain="ai.onnx.ml")
    with pytest.raises(
        CompileError, match=r"^the ONNX model: node 'svm' \(ai\.onnx\.ml\.SVMRegressor\) is not supported"
    ):
        from_onnx.to_ir(_graph([svm]))


def test_refusals_with_exact_messages(tmp_path) -> None:
    with pytest.raises(CompileError) as e:
        from_onnx.to_ir(_graph([helper.make_node("Identity", ["X"], ["Y"])]))
    assert str(e.value) == (
        "the ONNX model holds no model operator; expected one of TreeEnsembleClassifier, TreeEnsembleRegressor, "
        "TreeEnsemble, LinearClassifier, LinearRegressor"
    )
    model = _tree_graph(["BRANCH_LEQ"], [0])
    model.graph.node[0].attribute.append(helper.make_attribute("aggregate_function", "MAX"))
    model.graph.node[0].name = "trees"
    with pytest.raises(CompileError) as e:
        from_onnx.to_ir(model)
    assert str(e.value) == (
        "the ONNX model: node 'trees' (ai.onnx.ml.TreeEnsembleRegressor) has aggregate_function MAX; "
        "streamml supports SUM and AVERAGE"
    )
    garbage = tmp_path / "bad.onnx"
    garbage.write_bytes(b"\x08\x07not a model")
    with pytest.raises(CompileError, match=rf"^ONNX model {garbage} is not a readable ONNX model \("):
        to_ir(garbage)


def test_compile_without_the_onnx_package_names_the_extra(tmp_path) -> None:
    import subprocess
    import sys

    path = tmp_path / "m.onnx"
    path.write_bytes(_tree_graph(["BRANCH_LEQ"], [0]).SerializeToString())
    code = (
        "import sys\nsys.modules['onnx'] = None\nfrom streamml.cli import main\n"
        f"sys.exit(main(['compile', {str(path)!r}, '-o', {str(tmp_path / 'm.so')!r}]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stderr) == (
        2,
        "streamml compile: error: compiling an ONNX model needs onnx: pip install 'streamml[onnx]'\n",
    ), done.stderr
