"""LightGBM -> IR: the IR's outputs (``ir_predict``) equal LightGBM's own predictions.

Raw scores are compared bit for bit (an identity-link copy of the IR, so the check runs through
the same fixture); probabilities within 1e-6 relative (they are bit-equal with the numpy
reference on x86-64/glibc, but another evaluator's ``exp`` may differ in the last ulp); labels
exactly. Every scoring set has at least 10,000 rows.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rows_support import with_nans
from streamml.errors import CompileError
from streamml_dev.workloads import FEATURE_NAMES, r1_data

lgb = pytest.importorskip("lightgbm")
from streamml.compile import from_lightgbm  # noqa: E402

K_ZERO = from_lightgbm.K_ZERO
ROWS = 10_000


def _train(params: dict, x: np.ndarray, y: np.ndarray, rounds: int, **dataset) -> lgb.Booster:
    params = {"verbose": -1, "num_threads": 1, "seed": 7, "deterministic": True, **params}
    return lgb.train(params, lgb.Dataset(x, y, params={"verbose": -1}, **dataset), rounds)


def raw_scores(ir_predict, ir: dict, x: np.ndarray) -> np.ndarray:
    """The IR's raw scores: the same document with the identity link."""
    raw = {**ir, "link": "identity"}
    if ir["model"]["n_outputs"] == 1:
        return ir_predict({**raw, "task": "regression", "classes": None}, x)["prediction"]
    return ir_predict({**raw, "task": "multiclass"}, x)["probabilities"]


def assert_raw_equal(ir_predict, ir: dict, booster: lgb.Booster, x: np.ndarray) -> None:
    expected = booster.predict(x, raw_score=True)
    actual = raw_scores(ir_predict, ir, x)
    np.testing.assert_array_equal(actual, expected.reshape(actual.shape))


def assert_probabilities(actual: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=0)


# -- models shared by several tests ---------------------------------------------------------------


@pytest.fixture(scope="module")
def r1_binary():
    """(booster, scoring rows): 50 trees of 31 leaves on R1 with 10% NaN cells."""
    x, y = r1_data(20_000)
    params = {"objective": "binary", "num_leaves": 31}
    booster = _train(params, with_nans(x, 1), y, 50, feature_name=list(FEATURE_NAMES))
    xs, _ = r1_data(ROWS, seed=43)
    return booster, with_nans(xs, 2)


def _categorical_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 5))
    x[:, 3] = rng.integers(0, 12, n)  # many categories: many-vs-many splits
    x[:, 4] = rng.integers(0, 3, n)  # few categories: one-vs-rest splits
    logit = x[:, 0] + np.isin(x[:, 3], [0, 2, 5, 9]) - 0.8 * (x[:, 4] == 0) + rng.normal(0, 0.3, n)
    return x, (logit > 0.5).astype(np.int64)


@pytest.fixture(scope="module")
def categorical():
    """(booster, scoring rows) with integer-coded categorical features 3 and 4."""
    x, y = _categorical_data(20_000, 0)
    params = {"objective": "binary", "num_leaves": 31, "min_data_per_group": 5, "cat_smooth": 1, "max_cat_to_onehot": 4}
    booster = _train(params, with_nans(x, 3, 0.05), y, 40, categorical_feature=[3, 4])
    xs, _ = _categorical_data(ROWS, 5)
    rng = np.random.default_rng(6)
    odd = [0.0, -0.0, 0.7, -0.5, -0.999, -1.0, -1.5, np.nan, 1e-40, -1e-40, 1e10, 2.0**31, 2.0**32 + 2, 40.0, np.inf]
    xs[:, 3] += rng.choice(odd, ROWS, p=[0.5] + [0.5 / (len(odd) - 1)] * (len(odd) - 1))
    xs[:, 4] += rng.choice(odd, ROWS, p=[0.5] + [0.5 / (len(odd) - 1)] * (len(odd) - 1))
    return booster, with_nans(xs, 7, 0.05)


# -- parity ---------------------------------------------------------------------------------------


def test_binary_r1_with_nans(ir_predict, r1_binary) -> None:
    booster, xs = r1_binary
    ir = from_lightgbm.to_ir(booster)
    assert (ir["framework"], ir["task"], ir["link"], ir["classes"]) == ("lightgbm", "binary", "sigmoid", [0, 1])
    assert ir["features"] == list(FEATURE_NAMES)
    assert ir["model"]["comparison"] == "le"
    assert ir["model"]["feature_cast"] == ir["model"]["accumulate"] == "float64"
    assert ir["metadata"]["num_trees"] == 50
    assert ir["metadata"]["num_leaves"] == 31
    assert ir["metadata"]["objective"] == "binary sigmoid:1"
    assert {m for t in ir["model"]["trees"] for m in t["missing"]} == {"nan"}
    assert {d for t in ir["model"]["trees"] for d in t["default_left"]} == {True, False}

    out = ir_predict(ir, xs)
    expected = booster.predict(xs)
    assert_probabilities(out["probability"], expected)
    np.testing.assert_array_equal(out["label"], (expected > 0.5).astype(np.int64))
    assert_raw_equal(ir_predict, ir, booster, xs)


def test_regression(ir_predict) -> None:
    x, _ = r1_data(20_000)
    y = x[:, 0] * 2.0 - x[:, 1] + np.sin(x[:, 2])
    booster = _train({"objective": "regression", "num_leaves": 31}, with_nans(x, 11), y, 40)
    xs = with_nans(r1_data(ROWS, seed=43)[0], 12)
    ir = from_lightgbm.to_ir(booster)
    assert (ir["task"], ir["link"], ir["classes"]) == ("regression", "identity", None)
    # boost_from_average: the init score is in the first tree's leaves, the IR's base is 0
    assert ir["model"]["base_score"] == [0.0]
    np.testing.assert_array_equal(ir_predict(ir, xs)["prediction"], booster.predict(xs))


def test_multiclass(ir_predict) -> None:
    x, _ = r1_data(20_000)
    y = np.digitize(x[:, 0] - x[:, 1], [-0.7, 0.7])
    booster = _train({"objective": "multiclass", "num_class": 3, "num_leaves": 15}, with_nans(x, 13), y, 20)
    xs = with_nans(r1_data(ROWS, seed=43)[0], 14)
    ir = from_lightgbm.to_ir(booster)
    assert (ir["task"], ir["link"], ir["classes"]) == ("multiclass", "softmax", [0, 1, 2])
    assert ir["model"]["n_outputs"] == 3
    assert [t["output"] for t in ir["model"]["trees"][:6]] == [0, 1, 2, 0, 1, 2]  # interleaved by class

    out = ir_predict(ir, xs)
    expected = booster.predict(xs)
    assert_probabilities(out["probabilities"], expected)
    np.testing.assert_array_equal(out["label"], np.argmax(expected, axis=1))
    assert_raw_equal(ir_predict, ir, booster, xs)


def test_categorical(ir_predict, categorical) -> None:
    booster, xs = categorical
    ir = from_lightgbm.to_ir(booster)
    cat_nodes = [c for t in ir["model"]["trees"] for c in t["categories"] if c is not None]
    assert cat_nodes
    assert any(0 in c for c in cat_nodes)  # the case where -1 < v < 0 needs the extra nodes
    out = ir_predict(ir, xs)
    assert_probabilities(out["probability"], booster.predict(xs))
    assert_raw_equal(ir_predict, ir, booster, xs)


def test_categorical_values_between_minus_one_and_zero(ir_predict, categorical) -> None:
    """LightGBM reads the category as ``int(v)``: -0.5 is category 0, -1 is negative (right)."""
    booster, xs = categorical
    ir = from_lightgbm.to_ir(booster)
    values = np.array([-0.5, -0.999, -1e-300, -0.0, 0.0, 0.5, -1.0, -1.5, np.nan, 2.0])
    i = np.arange(ROWS)
    x = xs.copy()
    x[:, 3] = values[i % len(values)]
    x[:, 4] = values[(i // len(values)) % len(values)]
    assert_raw_equal(ir_predict, ir, booster, x)


def test_zero_as_missing(ir_predict) -> None:
    rng = np.random.default_rng(20)
    x = rng.standard_normal((20_000, 6))
    x[rng.random(x.shape) < 0.3] = 0.0
    y = ((x[:, 0] == 0) + x[:, 1] + rng.normal(0, 0.3, 20_000) > 0.5).astype(np.int64)
    booster = _train({"objective": "binary", "zero_as_missing": True, "num_leaves": 15}, with_nans(x, 21, 0.05), y, 30)
    xs = rng.standard_normal((ROWS, 6))
    xs[rng.random(xs.shape) < 0.3] = 0.0
    tiny = [-0.0, 1e-36, -1e-36, 1e-35, -1e-35, 5e-324, -K_ZERO * 1.0000001, K_ZERO * 1.0000001]
    xs = np.where(rng.random(xs.shape) < 0.1, rng.choice(tiny, xs.shape), xs)
    xs = with_nans(xs, 22, 0.05)
    ir = from_lightgbm.to_ir(booster)
    assert {m for t in ir["model"]["trees"] for m in t["missing"]} == {"zero"}
    out = ir_predict(ir, xs)
    assert_probabilities(out["probability"], booster.predict(xs))
    assert_raw_equal(ir_predict, ir, booster, xs)


def test_zero_as_missing_at_k_zero_threshold(ir_predict) -> None:
    rng = np.random.default_rng(23)
    x = rng.standard_normal((20_000, 4))
    x[rng.random(x.shape) < 0.3] = 0.0
    y = ((x[:, 0] == 0) + x[:, 1] + rng.normal(0, 0.3, 20_000) > 0.5).astype(np.int64)
    booster = _train({"objective": "binary", "zero_as_missing": True, "num_leaves": 15}, x, y, 10)
    xs = rng.standard_normal((ROWS, 4))
    xs[rng.random(xs.shape) < 0.3] = np.random.default_rng(24).choice([K_ZERO, -K_ZERO, 1.000000001e-35])
    assert_raw_equal(ir_predict, from_lightgbm.to_ir(booster), booster, xs)


def _threshold_rows(booster: lgb.Booster, n_features: int, seed: int) -> np.ndarray:
    """Rows whose every value is a split threshold of its feature, or the double next to one."""
    ir = from_lightgbm.to_ir(booster)
    dump = booster.dump_model()
    per_feature: list[set[float]] = [set() for _ in range(n_features)]

    def walk(node: dict) -> None:
        if "split_index" in node:
            if node["decision_type"] == "<=":
                per_feature[node["split_feature"]].add(float(node["threshold"]))
            walk(node["left_child"])
            walk(node["right_child"])

    for tree in dump["tree_info"]:
        walk(tree["tree_structure"])
    # the IR's thresholds too (the ones LightGBM's zero rule moved to -+kZeroThreshold)
    for tree in ir["model"]["trees"]:
        for f, t in zip(tree["split_feature"], tree["threshold"], strict=True):
            per_feature[f].add(t)
    rng = np.random.default_rng(seed)
    rows = rng.standard_normal((ROWS, n_features))
    for j, thresholds in enumerate(per_feature):
        if not thresholds:
            continue
        values = np.array(sorted(thresholds))
        values = np.concatenate([values, np.nextafter(values, np.inf), np.nextafter(values, -np.inf)])
        rows[:, j] = rng.choice(values, ROWS)
    return rows


def test_rows_at_thresholds(ir_predict, r1_binary) -> None:
    booster, _ = r1_binary
    xs = _threshold_rows(booster, 32, 30)
    assert_raw_equal(ir_predict, from_lightgbm.to_ir(booster), booster, xs)
    assert_raw_equal(ir_predict, from_lightgbm.to_ir(booster), booster, with_nans(xs, 31))


def test_rows_at_thresholds_near_zero(ir_predict) -> None:
    """Exact zeros in training put thresholds at -+kZeroThreshold; LightGBM reads |v| <= it as 0."""
    rng = np.random.default_rng(32)
    x = rng.standard_normal((20_000, 5))
    x[rng.random(x.shape) < 0.4] = 0.0
    y = ((x[:, 0] == 0) * 1.0 + x[:, 1] + rng.normal(0, 0.3, 20_000) > 0.5).astype(np.int64)
    booster = _train({"objective": "binary", "num_leaves": 15}, x, y, 20)
    ir = from_lightgbm.to_ir(booster)
    near_zero = {t for tree in ir["model"]["trees"] for t in tree["threshold"] if abs(t) < 1e-30}
    assert near_zero == {K_ZERO, math.nextafter(-K_ZERO, -math.inf)}
    xs = _threshold_rows(booster, 5, 33)
    tiny = [0.0, -0.0, 1e-36, -1e-36, 1e-35, -1e-35, K_ZERO, -K_ZERO, 5e-324, -5e-324, 1e-34, -1e-34]
    xs = np.where(rng.random(xs.shape) < 0.3, rng.choice(tiny, xs.shape), xs)
    assert_raw_equal(ir_predict, ir, booster, xs)
    assert_raw_equal(ir_predict, ir, booster, with_nans(xs, 34))  # NaN is 0.0 for missing type None


@pytest.mark.parametrize(
    ("params", "link", "task"),
    [
        pytest.param({"objective": "poisson"}, "exp", "regression", id="poisson"),
        pytest.param({"objective": "gamma"}, "exp", "regression", id="gamma"),
        pytest.param({"objective": "tweedie", "tweedie_variance_power": 1.3}, "exp", "regression", id="tweedie"),
        pytest.param({"objective": "huber"}, "identity", "regression", id="huber"),
        pytest.param({"objective": "quantile", "alpha": 0.8}, "identity", "regression", id="quantile"),
        pytest.param({"objective": "l1"}, "identity", "regression", id="l1"),
        pytest.param({"objective": "cross_entropy"}, "sigmoid", "regression", id="cross_entropy"),
        pytest.param({"objective": "binary", "sigmoid": 2.5}, "sigmoid", "binary", id="binary-sigmoid-2.5"),
        pytest.param({"objective": "multiclassova", "num_class": 3}, "sigmoid", "multiclass", id="multiclassova"),
        pytest.param(
            {"objective": "binary", "boosting": "rf", "bagging_freq": 1, "bagging_fraction": 0.7},
            "sigmoid",
            "binary",
            id="random-forest",
        ),
    ],
)
def test_other_objectives(ir_predict, params: dict, link: str, task: str) -> None:
    rng = np.random.default_rng(40)
    x = with_nans(rng.standard_normal((ROWS, 4)), 41)
    signal = np.nan_to_num(x[:, 0]) - 0.5 * np.nan_to_num(x[:, 1])
    if task == "multiclass":
        y = np.digitize(signal + rng.normal(0, 0.3, ROWS), [-0.5, 0.5])
    elif params["objective"] in ("binary", "cross_entropy"):
        y = (signal + rng.normal(0, 0.5, ROWS) > 0).astype(np.int64)
    else:
        y = rng.poisson(np.exp(0.4 * signal)) + (params["objective"] == "gamma")
    booster = _train({"num_leaves": 15, **params}, x, y, 15)
    xs = with_nans(rng.standard_normal((ROWS, 4)), 42)
    ir = from_lightgbm.to_ir(booster)
    assert (ir["link"], ir["task"]) == (link, task)
    scale = params.get("sigmoid", 1.0)
    assert ir["model"]["sigmoid_scale"] == scale
    if params.get("boosting") == "rf":
        assert ir["model"]["aggregate"] == "mean"
    out = ir_predict(ir, xs)
    expected = booster.predict(xs)
    column = {"regression": "prediction", "binary": "probability", "multiclass": "probabilities"}[task]
    assert_probabilities(out[column], expected)
    if params.get("boosting") != "rf":  # LightGBM's raw_score of a forest is not averaged
        assert_raw_equal(ir_predict, ir, booster, xs)


# -- model kinds and sources ----------------------------------------------------------------------


def test_sklearn_classifier_with_string_labels(ir_predict) -> None:
    x, y = r1_data(20_000)
    labels = np.array(["no", "yes"])[y]
    model = lgb.LGBMClassifier(n_estimators=30, num_leaves=15, verbose=-1, n_jobs=1).fit(with_nans(x, 50), labels)
    xs = with_nans(r1_data(ROWS, seed=43)[0], 51)
    ir = from_lightgbm.to_ir(model)
    assert ir["classes"] == ["no", "yes"]
    out = ir_predict(ir, xs)
    assert_probabilities(out["probability"], model.predict_proba(xs)[:, 1])
    np.testing.assert_array_equal(out["label"], model.predict(xs))


def test_sklearn_multiclass_with_int_labels(ir_predict) -> None:
    x, _ = r1_data(20_000)
    labels = np.array([3, 5, 7])[np.digitize(x[:, 0], [-0.5, 0.5])]
    model = lgb.LGBMClassifier(n_estimators=10, num_leaves=7, verbose=-1, n_jobs=1).fit(x, labels)
    xs = r1_data(ROWS, seed=43)[0]
    ir = from_lightgbm.to_ir(model, features=[f"c{i}" for i in range(32)])
    assert ir["classes"] == [3, 5, 7]
    assert ir["features"][:2] == ["c0", "c1"]
    out = ir_predict(ir, xs)
    assert_probabilities(out["probabilities"], model.predict_proba(xs))
    np.testing.assert_array_equal(out["label"], model.predict(xs))


def test_sklearn_regressor(ir_predict) -> None:
    x, _ = r1_data(20_000)
    model = lgb.LGBMRegressor(n_estimators=20, num_leaves=15, verbose=-1, n_jobs=1).fit(x, x[:, 0] * 3 + x[:, 1])
    xs = r1_data(ROWS, seed=43)[0]
    ir = from_lightgbm.to_ir(model)
    assert ir["classes"] is None
    np.testing.assert_array_equal(ir_predict(ir, xs)["prediction"], model.predict(xs))


def test_text_file(ir_predict, tmp_path, categorical) -> None:
    booster, xs = categorical
    path = tmp_path / "model.txt"
    booster.save_model(path)
    ir = from_lightgbm.to_ir(path)
    assert ir == from_lightgbm.to_ir(booster)
    assert from_lightgbm.to_ir(str(path)) == ir
    loaded = lgb.Booster(model_file=path)
    assert_probabilities(ir_predict(ir, xs)["probability"], loaded.predict(xs))
    assert_raw_equal(ir_predict, ir, loaded, xs)


def test_text_file_keeps_full_precision(tmp_path, r1_binary) -> None:
    booster, _ = r1_binary
    path = tmp_path / "model.txt"
    booster.save_model(path)
    lines = [line for line in path.read_text().splitlines() if line.startswith("threshold=")]
    in_file = [float(v) for line in lines for v in line.partition("=")[2].split()]
    ir = from_lightgbm.to_ir(path)
    in_ir = [t for tree in ir["model"]["trees"] for t in tree["threshold"]]
    # no categorical splits in this model; thresholds at -kZeroThreshold move (LightGBM's zero rule)
    assert sorted(t for t in in_file if abs(t) > 1e-30) == sorted(t for t in in_ir if abs(t) > 1e-30)


def test_json_dump_file(ir_predict, tmp_path, categorical) -> None:
    booster, xs = categorical
    path = tmp_path / "model.json"
    with path.open("w") as f:
        json.dump(booster.dump_model(), f)
    ir = from_lightgbm.to_ir(path)
    # dump_model() writes categorical sets as "1||4||7" and infinite thresholds as 1e300
    assert ir == from_lightgbm.to_ir(booster)
    out = ir_predict(ir, xs)
    assert_probabilities(out["probability"], booster.predict(xs))
    assert_raw_equal(ir_predict, ir, booster, xs)
    assert from_lightgbm.to_ir(booster.dump_model()) == ir


def test_infinite_values(ir_predict, r1_binary) -> None:
    booster, xs = r1_binary
    xs = xs.copy()
    rng = np.random.default_rng(60)
    xs[rng.random(xs.shape) < 0.05] = np.inf
    xs[rng.random(xs.shape) < 0.05] = -np.inf
    xs[rng.random(xs.shape) < 0.05] = 1e301
    ir = from_lightgbm.to_ir(booster)
    assert_raw_equal(ir_predict, ir, booster, xs)
    assert_raw_equal(ir_predict, from_lightgbm.to_ir(booster.dump_model()), booster, xs)


def test_split_of_missing_against_the_rest(ir_predict) -> None:
    """A split 'NaN right, every value left' has the threshold +inf, which JSON cannot hold."""
    rng = np.random.default_rng(65)
    x = rng.standard_normal((20_000, 3))
    missing = rng.random(20_000) < 0.3
    x[missing, 0] = np.nan
    y = (missing + 0.3 * x[:, 1] + rng.normal(0, 0.3, 20_000) > 0.5).astype(np.int64)
    booster = _train({"objective": "binary", "num_leaves": 7}, x, y, 5)
    lines = [
        line.split("=")[1].split() for line in booster.model_to_string().splitlines() if line.startswith("threshold=")
    ]
    assert any("inf" in thresholds for thresholds in lines)
    ir = from_lightgbm.to_ir(booster)
    assert [] in [c for tree in ir["model"]["trees"] for c in tree["categories"]]  # docs/ir.md's +inf form
    xs = rng.standard_normal((ROWS, 3))
    for value, share in ((np.nan, 0.3), (np.inf, 0.2), (-np.inf, 0.1)):
        xs[rng.random(ROWS) < share, 0] = value
    assert_raw_equal(ir_predict, ir, booster, xs)
    assert from_lightgbm.to_ir(booster.dump_model()) == ir  # dump_model() writes +inf as 1e300


def test_single_leaf_trees(ir_predict) -> None:
    rng = np.random.default_rng(70)
    x = rng.standard_normal((ROWS, 3))
    booster = _train({"objective": "regression", "min_data_in_leaf": ROWS}, x, rng.normal(3.0, 1.0, ROWS), 3)
    ir = from_lightgbm.to_ir(booster)
    assert all(not t["split_feature"] and len(t["leaf_value"]) == 1 for t in ir["model"]["trees"])
    np.testing.assert_array_equal(ir_predict(ir, x)["prediction"], booster.predict(x))


# -- bad input ------------------------------------------------------------------------------------


def test_truncated_text_file(tmp_path, r1_binary) -> None:
    booster, _ = r1_binary
    text = booster.model_to_string()
    path = tmp_path / "truncated.txt"
    path.write_text(text[: len(text) // 2])
    with pytest.raises(CompileError, match=r"truncated\.txt.*truncated or corrupt"):
        from_lightgbm.to_ir(path)


def test_corrupt_text_file(tmp_path, r1_binary) -> None:
    booster, _ = r1_binary
    text = booster.model_to_string().replace("left_child=", "left_child=1 2 3 ", 1)
    path = tmp_path / "corrupt.txt"
    path.write_text(text)
    with pytest.raises(CompileError, match=r"corrupt\.txt: tree 0: 'left_child' has \d+ values, expected 30"):
        from_lightgbm.to_ir(path)


def test_corrupt_tree_links(tmp_path, r1_binary) -> None:
    booster, _ = r1_binary
    lines = booster.model_to_string().splitlines()
    k = next(i for i, line in enumerate(lines) if line.startswith("right_child="))
    values = lines[k].partition("=")[2].split()
    lines[k] = "right_child=" + " ".join(["0", *values[1:]])  # the root becomes its own child: a cycle
    path = tmp_path / "cycle.txt"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        CompileError, match=r"cycle\.txt: tree 0: node 0 is out of range, the root, or the child of two"
    ):
        from_lightgbm.to_ir(path)


def test_invalid_json_file(tmp_path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"tree_info": [')
    with pytest.raises(CompileError, match=r"broken\.json is not valid JSON"):
        from_lightgbm.to_ir(path)


def test_not_a_model_file(tmp_path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(CompileError, match=r"notes\.txt is not a lightgbm model file"):
        from_lightgbm.to_ir(path)
    with pytest.raises(CompileError, match=r"cannot read the lightgbm model file .*missing\.txt"):
        from_lightgbm.to_ir(tmp_path / "missing.txt")


def test_features_of_the_wrong_length(r1_binary) -> None:
    booster, _ = r1_binary
    with pytest.raises(CompileError, match=r"^the model has 32 features; --features names 31$"):
        from_lightgbm.to_ir(booster, features=[f"f{i}" for i in range(31)])


def test_unsupported_objective() -> None:
    rng = np.random.default_rng(80)
    x = rng.standard_normal((1000, 3))
    booster = _train({"objective": "cross_entropy_lambda"}, x, rng.random(1000), 2)
    supported = r"'cross_entropy_lambda' is not supported; supported objectives: regression, regression_l1, "
    with pytest.raises(CompileError, match=supported):
        from_lightgbm.to_ir(booster)


def test_linear_trees_are_refused() -> None:
    rng = np.random.default_rng(81)
    x = rng.standard_normal((1000, 3))
    booster = _train({"objective": "regression", "linear_tree": True}, x, x[:, 0] * 2, 2)
    with pytest.raises(CompileError, match=r"linear trees \(linear_tree=true\) are not supported"):
        from_lightgbm.to_ir(booster)
    with pytest.raises(CompileError, match=r"linear trees"):
        from_lightgbm.to_ir(booster.dump_model())


def test_not_a_lightgbm_model() -> None:
    with pytest.raises(CompileError, match=r"cannot convert a builtins.list with the lightgbm converter"):
        from_lightgbm.to_ir([1, 2, 3])
    with pytest.raises(CompileError, match=r"the LGBMClassifier is not fitted"):
        from_lightgbm.to_ir(lgb.LGBMClassifier())
