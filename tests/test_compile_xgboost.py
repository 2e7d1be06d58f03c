"""XGBoost -> IR: the IR's outputs (``ir_predict``) equal XGBoost's own predictions.

Margins are compared bit for bit (an identity-link copy of the IR, through the same fixture):
XGBoost sums the intercept and the trees in float32, and so does the IR. XGBoost applies the link
(sigmoid, softmax, exp) in float32 and the IR in float64, so probabilities agree within 1e-6
relative (about a float32 rounding), labels exactly. Every scoring set has at least 10,000 rows.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from rows_support import with_nans
from streamml.errors import CompileError
from streamml_dev.workloads import FEATURE_NAMES, r1_data

xgb = pytest.importorskip("xgboost")
from streamml.compile import from_xgboost  # noqa: E402

ROWS = 10_000


def _train(params: dict, x: np.ndarray, y: np.ndarray, rounds: int, **dmatrix) -> xgb.Booster:
    params = {"nthread": 1, "seed": 7, "max_depth": 4, **params}
    return xgb.train(params, xgb.DMatrix(x, y, **dmatrix), rounds)


def margins(ir_predict, ir: dict, x: np.ndarray) -> np.ndarray:
    """The IR's raw scores: the same document with the identity link."""
    raw = {**ir, "link": "identity"}
    if ir["model"]["n_outputs"] == 1:
        return ir_predict({**raw, "task": "regression", "classes": None}, x)["prediction"]
    return ir_predict({**raw, "task": "multiclass"}, x)["probabilities"]


def _predict(booster: xgb.Booster, x: np.ndarray, **dmatrix) -> np.ndarray:
    return booster.predict(xgb.DMatrix(x, feature_names=booster.feature_names, **dmatrix))


def assert_margins_equal(ir_predict, ir: dict, booster: xgb.Booster, x: np.ndarray, **dmatrix) -> None:
    expected = booster.predict(xgb.DMatrix(x, feature_names=booster.feature_names, **dmatrix), output_margin=True)
    actual = margins(ir_predict, ir, x)
    np.testing.assert_array_equal(actual, expected.astype(np.float64).reshape(actual.shape))


def assert_probabilities(actual: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=0)


@pytest.fixture(scope="module")
def r1_binary():
    """(booster, scoring rows): binary:logistic on R1 with 10% NaN cells, 50 rounds."""
    x, y = r1_data(20_000)
    booster = _train({"objective": "binary:logistic"}, with_nans(x, 1), y, 50, feature_names=list(FEATURE_NAMES))
    xs, _ = r1_data(ROWS, seed=43)
    return booster, with_nans(xs, 2)


# -- parity ---------------------------------------------------------------------------------------


def test_binary_logistic_with_nans(ir_predict, r1_binary) -> None:
    booster, xs = r1_binary
    ir = from_xgboost.to_ir(booster)
    assert (ir["framework"], ir["task"], ir["link"], ir["classes"]) == ("xgboost", "binary", "sigmoid", [0, 1])
    assert ir["features"] == list(FEATURE_NAMES)
    model = ir["model"]
    assert (model["feature_cast"], model["comparison"], model["accumulate"]) == ("float32", "lt", "float32")
    assert ir["metadata"]["num_trees"] == 50
    # missing values go both ways somewhere
    assert {d for t in model["trees"] for d in t["default_left"]} == {True, False}

    out = ir_predict(ir, xs)
    expected = _predict(booster, xs)
    assert_probabilities(out["probability"], expected)
    np.testing.assert_array_equal(out["label"], (expected > 0.5).astype(np.int64))
    assert_margins_equal(ir_predict, ir, booster, xs)
    # inplace_predict (what the scikit-learn wrapper uses) gives the same margins
    np.testing.assert_array_equal(
        margins(ir_predict, ir, xs), booster.inplace_predict(xs, predict_type="margin").astype(np.float64)
    )


def test_regression(ir_predict) -> None:
    x, _ = r1_data(20_000)
    y = x[:, 0] * 2.0 - x[:, 1] + np.sin(x[:, 2]) + 10.0
    booster = _train({"objective": "reg:squarederror"}, with_nans(x, 3), y, 40)
    xs = with_nans(r1_data(ROWS, seed=43)[0], 4)
    ir = from_xgboost.to_ir(booster)
    assert (ir["task"], ir["link"], ir["classes"]) == ("regression", "identity", None)
    expected = _predict(booster, xs)
    np.testing.assert_array_equal(ir_predict(ir, xs)["prediction"], expected.astype(np.float64))


def test_multiclass_softprob(ir_predict) -> None:
    x, _ = r1_data(20_000)
    y = np.digitize(x[:, 0] - x[:, 1], [-0.7, 0.7])
    booster = _train({"objective": "multi:softprob", "num_class": 3}, with_nans(x, 5), y, 20)
    xs = with_nans(r1_data(ROWS, seed=43)[0], 6)
    ir = from_xgboost.to_ir(booster)
    assert (ir["task"], ir["link"], ir["classes"]) == ("multiclass", "softmax", [0, 1, 2])
    trees = ir["model"]["trees"]
    assert [t["output"] for t in trees[:9]] == [0, 1, 2, 0, 1, 2, 0, 1, 2]  # intercepts, then rounds
    assert len(trees) == 3 + 3 * 20

    out = ir_predict(ir, xs)
    expected = _predict(booster, xs)
    assert_probabilities(out["probabilities"], expected)
    np.testing.assert_array_equal(out["label"], np.argmax(expected, axis=1))
    assert_margins_equal(ir_predict, ir, booster, xs)


def _threshold_rows(booster: xgb.Booster, n_features: int, seed: int) -> np.ndarray:
    """Rows whose values sit at float32 thresholds, next to them, or round to them in float32."""
    doc = json.loads(booster.save_raw("json"))
    per_feature: list[set[float]] = [set() for _ in range(n_features)]
    for tree in doc["learner"]["gradient_booster"]["model"]["trees"]:
        for left, f, t in zip(tree["left_children"], tree["split_indices"], tree["split_conditions"], strict=True):
            if left != -1:
                per_feature[f].add(float(np.float32(t)))
    rng = np.random.default_rng(seed)
    rows = rng.standard_normal((ROWS, n_features))
    for j, thresholds in enumerate(per_feature):
        if not thresholds:
            continue
        t32 = np.array(sorted(thresholds), dtype=np.float32)
        t = t32.astype(np.float64)
        up32 = np.nextafter(t32, np.float32(np.inf)).astype(np.float64)
        down32 = np.nextafter(t32, np.float32(-np.inf)).astype(np.float64)
        values = np.concatenate(
            [
                t,
                up32,  # the next float32 values
                down32,
                np.nextafter(t, np.inf),  # differ in float64, round to t in float32
                np.nextafter(t, -np.inf),
                t + (up32 - t) * 0.49,
                t - (t - down32) * 0.49,
                (t + up32) / 2,  # ties: round to even in float32
                (t + down32) / 2,
            ]
        )
        rows[:, j] = rng.choice(values, ROWS)
    return rows


def test_rows_at_thresholds(ir_predict, r1_binary) -> None:
    booster, _ = r1_binary
    xs = _threshold_rows(booster, 32, 10)
    # the rows really do round onto the thresholds in float32 but not in float64
    assert (xs.astype(np.float32).astype(np.float64) != xs).mean() > 0.3
    ir = from_xgboost.to_ir(booster)
    assert_margins_equal(ir_predict, ir, booster, xs)
    assert_margins_equal(ir_predict, ir, booster, with_nans(xs, 11))


@pytest.mark.parametrize(
    ("objective", "base_score"),
    [
        ("binary:logistic", None),  # estimated from the labels (XGBoost >= 2)
        ("binary:logistic", 0.1),
        ("binary:logistic", 0.77),
        ("reg:logistic", 0.3),
        ("reg:squarederror", None),
        ("reg:squarederror", -3.7),
        ("count:poisson", None),
        ("count:poisson", 2.5),
    ],
)
def test_base_score(ir_predict, objective: str, base_score: float | None) -> None:
    rng = np.random.default_rng(20)
    x = with_nans(rng.standard_normal((ROWS, 4)), 21)
    signal = np.nan_to_num(x[:, 0])
    if objective == "count:poisson":
        y = rng.poisson(np.exp(0.5 * signal + 0.7))
    elif objective == "reg:squarederror":
        y = 3.0 * signal + 5.0
    else:
        y = (signal + rng.normal(0, 0.5, ROWS) > 0.8).astype(np.float64)
    params = {"objective": objective} if base_score is None else {"objective": objective, "base_score": base_score}
    booster = _train(params, x, y, 10)
    ir = from_xgboost.to_ir(booster)
    saved = float(json.loads(booster.save_config())["learner"]["learner_model_param"]["base_score"].strip("[]"))
    if base_score is not None:
        assert saved == pytest.approx(base_score, rel=1e-7)
    assert ir["metadata"]["base_score"] == [pytest.approx(saved, rel=1e-7)]
    # the intercept is the first tree, a margin: logit for logistic, log for poisson
    margin = ir["model"]["trees"][0]["leaf_value"][0]
    if objective.endswith("logistic"):
        assert margin == pytest.approx(np.log(saved / (1 - saved)), rel=1e-6)
    elif objective == "count:poisson":
        assert margin == pytest.approx(np.log(saved), rel=1e-6)
    else:
        assert margin == pytest.approx(saved, rel=1e-7)
    xs = with_nans(rng.standard_normal((ROWS, 4)), 22)
    assert_margins_equal(ir_predict, ir, booster, xs)
    column = "probability" if ir["task"] == "binary" else "prediction"
    assert_probabilities(ir_predict(ir, xs)[column], _predict(booster, xs))


@pytest.mark.parametrize(
    ("params", "link", "task"),
    [
        pytest.param({"objective": "reg:pseudohubererror"}, "identity", "regression", id="reg:pseudohubererror"),
        pytest.param({"objective": "reg:absoluteerror"}, "identity", "regression", id="reg:absoluteerror"),
        pytest.param(
            {"objective": "reg:quantileerror", "quantile_alpha": 0.8}, "identity", "regression", id="reg:quantileerror"
        ),
        pytest.param({"objective": "reg:squaredlogerror"}, "identity", "regression", id="reg:squaredlogerror"),
        pytest.param({"objective": "reg:gamma"}, "exp", "regression", id="reg:gamma"),
        pytest.param(
            {"objective": "reg:tweedie", "tweedie_variance_power": 1.4}, "exp", "regression", id="reg:tweedie"
        ),
        pytest.param({"objective": "multi:softmax", "num_class": 3}, "softmax", "multiclass", id="multi:softmax"),
    ],
)
def test_other_objectives(ir_predict, params: dict, link: str, task: str) -> None:
    rng = np.random.default_rng(30)
    x = with_nans(rng.standard_normal((ROWS, 4)), 31)
    signal = np.nan_to_num(x[:, 0])
    if task == "multiclass":
        y = np.digitize(signal + rng.normal(0, 0.3, ROWS), [-0.5, 0.5])
    else:
        y = rng.gamma(2.0, np.exp(0.3 * signal))
    booster = _train(params, x, y, 10)
    ir = from_xgboost.to_ir(booster)
    assert (ir["link"], ir["task"]) == (link, task)
    xs = with_nans(rng.standard_normal((ROWS, 4)), 32)
    assert_margins_equal(ir_predict, ir, booster, xs)
    out = ir_predict(ir, xs)
    expected = _predict(booster, xs)
    if params["objective"] == "multi:softmax":  # XGBoost predicts the class index
        np.testing.assert_array_equal(out["label"], expected.astype(np.int64))
    else:
        assert_probabilities(out["prediction"], expected)


def _categorical_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 5))
    x[:, 3] = rng.integers(0, 12, n)  # partition splits
    x[:, 4] = rng.integers(0, 3, n)  # one-hot splits
    logit = x[:, 0] + np.isin(x[:, 3], [0, 2, 5, 9]) - 0.8 * (x[:, 4] == 1) + rng.normal(0, 0.3, n)
    return x, (logit > 0.5).astype(np.int64)


def test_categorical(ir_predict) -> None:
    x, y = _categorical_data(20_000, 40)
    types = ["q", "q", "q", "c", "c"]
    params = {"objective": "binary:logistic", "max_cat_to_onehot": 4, "tree_method": "hist"}
    booster = _train(params, with_nans(x, 41, 0.05), y, 30, feature_types=types, enable_categorical=True)
    ir = from_xgboost.to_ir(booster)
    assert any(c is not None for t in ir["model"]["trees"] for c in t["categories"])
    xs, _ = _categorical_data(ROWS, 42)
    rng = np.random.default_rng(43)
    odd = [0.0, -0.0, 0.7, -0.5, -1.0, -1.5, np.nan, 1e-40, -1e-40, 1e10, 2.0**31, 40.0]
    for j in (3, 4):
        xs[:, j] += rng.choice(odd, ROWS, p=[0.5] + [0.5 / (len(odd) - 1)] * (len(odd) - 1))
    xs = with_nans(xs, 44, 0.05)
    assert_margins_equal(ir_predict, ir, booster, xs, feature_types=types, enable_categorical=True)
    expected = _predict(booster, xs, feature_types=types, enable_categorical=True)
    assert_probabilities(ir_predict(ir, xs)["probability"], expected)


# -- model kinds and sources ----------------------------------------------------------------------


def test_sklearn_classifier(ir_predict) -> None:
    x, y = r1_data(20_000)
    model = xgb.XGBClassifier(n_estimators=30, max_depth=4, n_jobs=1).fit(with_nans(x, 50), y)
    xs = with_nans(r1_data(ROWS, seed=43)[0], 51)
    ir = from_xgboost.to_ir(model)
    assert ir["classes"] == [0, 1]
    out = ir_predict(ir, xs)
    assert_probabilities(out["probability"], model.predict_proba(xs)[:, 1])
    np.testing.assert_array_equal(out["label"], model.predict(xs))


class _LabelledClassifier(xgb.XGBClassifier):
    """XGBClassifier wants labels 0..K-1; a subclass that names them once fitted, as users write."""

    names = np.array(["low", "mid", "high"])

    def fit(self, *args, **kwargs) -> _LabelledClassifier:
        super().fit(*args, **kwargs)
        self.named = True
        return self

    @property
    def classes_(self) -> np.ndarray:
        return self.names if getattr(self, "named", False) else super().classes_


def test_sklearn_multiclass_with_string_classes(ir_predict) -> None:
    x, _ = r1_data(20_000)
    y = np.digitize(x[:, 0], [-0.5, 0.5])
    model = _LabelledClassifier(n_estimators=10, max_depth=3, n_jobs=1).fit(x, y)
    xs = r1_data(ROWS, seed=43)[0]
    ir = from_xgboost.to_ir(model, features=[f"c{i}" for i in range(32)])
    assert ir["classes"] == ["low", "mid", "high"]
    assert ir["features"][:2] == ["c0", "c1"]
    out = ir_predict(ir, xs)
    assert_probabilities(out["probabilities"], model.predict_proba(xs))
    np.testing.assert_array_equal(out["label"], model.names[model.predict(xs)])


def test_sklearn_early_stopping_uses_best_iteration(ir_predict) -> None:
    x, y = r1_data(20_000)
    valid_x, valid_y = r1_data(5_000, seed=44)
    model = xgb.XGBClassifier(n_estimators=400, max_depth=6, learning_rate=0.5, n_jobs=1, early_stopping_rounds=3)
    model.fit(x, y, eval_set=[(valid_x, valid_y)], verbose=False)
    assert model.best_iteration + 1 < 400
    ir = from_xgboost.to_ir(model)
    assert ir["metadata"]["num_trees"] == model.best_iteration + 1
    xs = r1_data(ROWS, seed=43)[0]
    out = ir_predict(ir, xs)
    assert_probabilities(out["probability"], model.predict_proba(xs)[:, 1])
    np.testing.assert_array_equal(out["label"], model.predict(xs))


def test_sklearn_regressor(ir_predict) -> None:
    x, _ = r1_data(20_000)
    model = xgb.XGBRegressor(n_estimators=20, max_depth=4, n_jobs=1).fit(x, x[:, 0] * 3 + x[:, 1])
    xs = r1_data(ROWS, seed=43)[0]
    ir = from_xgboost.to_ir(model)
    assert ir["classes"] is None
    np.testing.assert_array_equal(ir_predict(ir, xs)["prediction"], model.predict(xs).astype(np.float64))


@pytest.mark.parametrize("suffix", [".json", ".ubj"])
def test_model_files(ir_predict, tmp_path, r1_binary, suffix: str) -> None:
    booster, xs = r1_binary
    path = tmp_path / f"model{suffix}"
    booster.save_model(path)
    ir = from_xgboost.to_ir(path)
    assert ir == from_xgboost.to_ir(booster)
    assert from_xgboost.to_ir(str(path)) == ir
    loaded = xgb.Booster(model_file=str(path))
    assert_probabilities(ir_predict(ir, xs)["probability"], _predict(loaded, xs))


def test_ubj_file_with_categories_and_classes(tmp_path) -> None:
    x, y = _categorical_data(ROWS, 45)
    types = ["q", "q", "q", "c", "c"]
    booster = _train(
        {"objective": "multi:softprob", "num_class": 2, "tree_method": "hist"},
        x,
        y,
        5,
        feature_types=types,
        enable_categorical=True,
    )
    path = tmp_path / "model.ubj"
    booster.save_model(path)
    assert from_xgboost.to_ir(path) == from_xgboost.to_ir(booster)


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".json", ".ubj"])
def test_truncated_model_file(tmp_path, r1_binary, suffix: str) -> None:
    booster, _ = r1_binary
    data = bytes(booster.save_raw(suffix[1:]))
    path = tmp_path / f"truncated{suffix}"
    path.write_bytes(data[: len(data) // 2])
    kind = "JSON" if suffix == ".json" else "UBJSON"
    with pytest.raises(CompileError, match=rf"truncated\{suffix} is not valid {kind}"):
        from_xgboost.to_ir(path)


def test_invalid_json_file(tmp_path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"learner": {')
    with pytest.raises(CompileError, match=r"broken\.json is not valid JSON"):
        from_xgboost.to_ir(path)
    path.write_text('{"learner": {}}')
    with pytest.raises(CompileError, match=r"broken\.json: the field learner\.objective is missing"):
        from_xgboost.to_ir(path)
    learner = {
        "objective": {"name": "reg:squarederror"},
        "gradient_booster": {"name": "gbtree", "model": {"trees": [], "tree_info": []}},
        "learner_model_param": {"num_feature": "many", "base_score": "5E-1"},
    }
    path.write_text(json.dumps({"learner": learner}))
    with pytest.raises(CompileError, match=r"broken\.json: a field is missing or malformed \(ValueError: "):
        from_xgboost.to_ir(path)


def test_not_a_model_file(tmp_path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"binf\x00\x00\x00\x3f")
    with pytest.raises(CompileError, match=r"model\.bin is not an xgboost JSON or UBJSON model"):
        from_xgboost.to_ir(path)
    with pytest.raises(CompileError, match=r"cannot read the xgboost model file .*missing\.json"):
        from_xgboost.to_ir(tmp_path / "missing.json")


def test_features_of_the_wrong_length(r1_binary) -> None:
    booster, _ = r1_binary
    with pytest.raises(CompileError, match=r"^the model has 32 features; --features names 31$"):
        from_xgboost.to_ir(booster, features=[f"f{i}" for i in range(31)])


def test_unsupported_objective() -> None:
    rng = np.random.default_rng(60)
    x = rng.standard_normal((1000, 3))
    booster = _train({"objective": "binary:hinge"}, x, (x[:, 0] > 0).astype(np.float64), 2)
    with pytest.raises(
        CompileError, match=r"'binary:hinge' is not supported; supported objectives: reg:squarederror, reg:linear, "
    ):
        from_xgboost.to_ir(booster)


@pytest.mark.parametrize("kind", ["dart", "gblinear"])
def test_unsupported_booster(kind: str) -> None:
    rng = np.random.default_rng(61)
    x = rng.standard_normal((1000, 3))
    booster = xgb.train({"objective": "reg:squarederror", "booster": kind, "nthread": 1}, xgb.DMatrix(x, x[:, 0]), 2)
    with pytest.raises(CompileError, match=rf"the booster '{kind}' is not supported; supported boosters: gbtree"):
        from_xgboost.to_ir(booster)


def test_not_an_xgboost_model() -> None:
    with pytest.raises(CompileError, match=r"cannot convert a builtins.list with the xgboost converter"):
        from_xgboost.to_ir([1, 2, 3])
    with pytest.raises(CompileError, match=r"the XGBClassifier is not fitted"):
        from_xgboost.to_ir(xgb.XGBClassifier())
    x = np.random.default_rng(62).standard_normal((1000, 3))
    model = xgb.XGBRegressor(n_estimators=2, missing=0.0, n_jobs=1).fit(x, x[:, 0])
    with pytest.raises(CompileError, match=r"missing=0\.0; only NaN as the missing value is supported"):
        from_xgboost.to_ir(model)
