"""scikit-learn to IR: the compiled model's outputs equal scikit-learn's own predictions.

Every case scores at least 10,000 rows and compares ``predict`` /
``predict_proba`` with the IR's outputs twice: from the reference evaluator
and from the compiled binary (the ``ir_predict`` fixture). Both must be
bit-equal where the arithmetic is the same (trees, forests, boosting and their
links); linear models are within 1e-12, as scikit-learn's BLAS sums in its own
order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from threadpoolctl import threadpool_limits

from streamml.compile.from_sklearn import SUPPORTED, to_ir
from streamml.errors import CompileError
from streamml_dev import reference
from streamml_dev.workloads import r1_data

N_ROWS = 10_000
CLASS_NAMES = np.array(["low", "mid", "high"])


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # HistGradientBoosting's OpenMP threads make fitting slow and erratic on a busy machine.
    with threadpool_limits(limits=1):
        yield


def regression_target(x: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(7)
    return x[:, 0] * 1.5 - x[:, 1] + x[:, 2] * x[:, 3] + np.sin(2 * x[:, 4]) + rng.normal(0, 0.3, len(x))


def three_classes(x: np.ndarray) -> np.ndarray:
    return CLASS_NAMES[np.digitize(regression_target(x), [-1.0, 1.0])]


@pytest.fixture(scope="module")
def train() -> dict[str, Any]:
    x, y = r1_data(N_ROWS)
    return {"x": x, "binary": y, "multiclass": three_classes(x), "regression": regression_target(x)}


@pytest.fixture(scope="module")
def score() -> np.ndarray:
    return r1_data(N_ROWS, seed=43)[0]


def expected(est: Any, x: Any, task: str) -> dict[str, np.ndarray]:
    with np.errstate(invalid="ignore", over="ignore"):  # scikit-learn's input checks on inf
        if task == "regression":
            return {"prediction": est.predict(x)}
        proba = est.predict_proba(x)
        label = est.predict(x)
    if task == "binary":
        return {"probability": proba[:, 1], "label": label}
    return {"probabilities": proba, "label": label}


def compare(got: dict[str, np.ndarray], want: dict[str, np.ndarray], *, exact: bool, who: str, ulps: int = 0) -> None:
    """Assert ``got`` matches ``want``: labels equal; the rest bit-equal if ``exact`` (within
    ``ulps`` units in the last place when ``ulps`` > 0), else within 1e-12."""
    assert set(got) == set(want), who
    for name, w in want.items():
        g = np.asarray(got[name])
        if name == "label":
            np.testing.assert_array_equal(g.astype(w.dtype), w, err_msg=f"{who}: {name}")
        elif exact and ulps:
            assert g.shape == w.shape, f"{who}: {name}"
            np.testing.assert_array_max_ulp(g, w, maxulp=ulps)
        elif exact:
            np.testing.assert_array_equal(g, w, err_msg=f"{who}: {name} is not bit-equal")
        else:
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12, err_msg=f"{who}: {name}")


@pytest.fixture
def check(ir_predict: Callable) -> Callable:
    """``check(est, x, exact=True, ir=None, sk_x=None)``: the compiled IR of ``est`` gives scikit-learn's outputs.

    Both the reference evaluator and the compiled binary (``ir_predict``) are
    compared with scikit-learn's ``predict`` / ``predict_proba`` on ``x`` (or on
    ``sk_x``, the same rows as scikit-learn was fitted on them, e.g. a DataFrame),
    and the binary with the reference, bit for bit.

    Where scikit-learn's link is numpy's ``exp`` (softmax, and the ``exp`` link of a
    Poisson loss), its outputs are allowed a few units in the last place: numpy's SIMD
    ``exp`` (its AVX-512 loop, say) rounds differently from the C library's, which the
    binary uses, on some CPUs, by one unit; ``exp`` itself is then within 2, a softmax
    (one ``exp`` over the sum of all of them) within 4. Its sigmoid is scipy's ``expit``
    (the C library's ``exp``): bit-equal.
    """

    def run(est: Any, x: np.ndarray, *, exact: bool = True, ir: dict | None = None, sk_x: Any = None) -> None:
        ir = to_ir(est) if ir is None else ir
        want = expected(est, x if sk_x is None else sk_x, ir["task"])
        ulps = {"softmax": 4, "exp": 2}.get(ir.get("link"), 0)
        ref = reference.predict(ir, x)
        binary = ir_predict(ir, x)
        compare(ref, want, exact=exact, who="reference", ulps=ulps)
        compare(binary, want, exact=exact, who="binary", ulps=ulps)
        compare(binary, ref, exact=exact, who="binary against the reference")

    return run


# ---------------------------------------------------------------------------------------------
# Parity, every estimator and task

TREE_KW = {"max_depth": 8, "random_state": 0}
FOREST_KW = {"n_estimators": 8, "max_depth": 8, "max_features": 0.3, "random_state": 0}
GB_KW = {"n_estimators": 12, "max_depth": 3, "max_features": 0.3, "random_state": 0}
HGB_KW = {"max_iter": 12, "max_leaf_nodes": 15, "random_state": 0}

CASES = [
    ("binary", DecisionTreeClassifier(**TREE_KW)),
    ("multiclass", DecisionTreeClassifier(**TREE_KW)),
    ("regression", DecisionTreeRegressor(**TREE_KW)),
    ("binary", RandomForestClassifier(**FOREST_KW)),
    ("multiclass", RandomForestClassifier(**FOREST_KW)),
    ("regression", RandomForestRegressor(**FOREST_KW)),
    ("binary", ExtraTreesClassifier(**FOREST_KW)),
    ("multiclass", ExtraTreesClassifier(**FOREST_KW)),
    ("regression", ExtraTreesRegressor(**FOREST_KW)),
    ("binary", GradientBoostingClassifier(**GB_KW)),
    ("binary", GradientBoostingClassifier(loss="exponential", **GB_KW)),
    ("binary", GradientBoostingClassifier(init="zero", **GB_KW)),
    ("multiclass", GradientBoostingClassifier(**GB_KW)),
    ("regression", GradientBoostingRegressor(**GB_KW)),
    ("regression", GradientBoostingRegressor(loss="huber", **GB_KW)),
    ("regression", GradientBoostingRegressor(loss="quantile", alpha=0.8, **GB_KW)),
    ("regression", GradientBoostingRegressor(loss="absolute_error", init="zero", **GB_KW)),
    ("binary", HistGradientBoostingClassifier(**HGB_KW)),
    ("multiclass", HistGradientBoostingClassifier(**HGB_KW)),
    ("regression", HistGradientBoostingRegressor(**HGB_KW)),
    ("regression", HistGradientBoostingRegressor(loss="absolute_error", **HGB_KW)),
    ("binary", LogisticRegression(max_iter=1000)),
    ("multiclass", LogisticRegression(max_iter=1000)),
    ("regression", LinearRegression()),
    ("regression", Ridge(alpha=10.0)),
]


def case_id(case: tuple[str, Any]) -> str:
    task, est = case
    defaults = type(est)().get_params()
    extra = [f"{k}={v}" for k, v in est.get_params().items() if k in ("loss", "init") and v != defaults[k]]
    return "-".join([type(est).__name__, task, *extra])


def is_linear(est: Any) -> bool:
    return type(est).__name__ in ("LinearRegression", "Ridge", "LogisticRegression")


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_parity(check: Callable, train: dict, score: np.ndarray, case: tuple[str, Any]) -> None:
    task, est = case[0], clone(case[1])
    est.fit(train["x"], train[task])
    ir = to_ir(est)
    assert ir["task"] == task
    check(est, score, exact=not is_linear(est), ir=ir)


def test_poisson_hist_gradient_boosting(check: Callable, train: dict, score: np.ndarray) -> None:
    est = HistGradientBoostingRegressor(loss="poisson", **HGB_KW).fit(train["x"], np.exp(train["regression"] / 3))
    ir = to_ir(est)
    assert ir["link"] == "exp"
    check(est, score, ir=ir)


def test_document(train: dict) -> None:
    est = GradientBoostingClassifier(**GB_KW).fit(train["x"][:2000], train["multiclass"][:2000])
    ir = to_ir(est)
    assert {k: ir[k] for k in ("format", "version", "name", "model_version", "framework")} == {
        "format": "streamml-ir",
        "version": 1,
        "name": "sklearn_model",
        "model_version": "1",
        "framework": "scikit-learn",
    }
    assert ir["features"] == [f"x{i}" for i in range(32)]
    assert ir["classes"] == ["high", "low", "mid"]  # scikit-learn's (sorted) class order
    assert ir["preprocess"] is None
    assert ir["drift_reference"] is None
    assert ir["link"] == "softmax"
    assert ir["metadata"]["estimator"] == "GradientBoostingClassifier"
    assert ir["metadata"]["n_estimators"] == 12
    assert ir["metadata"]["max_depth"] == 3
    model = ir["model"]
    # The init scores come first, one single-leaf tree per class, then the stages (class-major within).
    assert len(model["trees"]) == 3 + 12 * 3
    assert [t["output"] for t in model["trees"][:6]] == [0, 1, 2, 0, 1, 2]
    assert model["base_score"] == [0.0, 0.0, 0.0]
    assert [t["leaf_value"][0] for t in model["trees"][:3]] == pytest.approx(ir["metadata"]["base_score"])


# ---------------------------------------------------------------------------------------------
# Missing values


def with_nan(x: np.ndarray, columns: Any, fraction: float, seed: int) -> np.ndarray:
    x = x.copy()
    rng = np.random.default_rng(seed)
    for j in columns:
        x[rng.random(len(x)) < fraction, j] = np.nan
    return x


NAN_CASES = [
    ("binary", DecisionTreeClassifier(**TREE_KW)),
    ("multiclass", RandomForestClassifier(**FOREST_KW)),
    ("regression", RandomForestRegressor(**FOREST_KW)),
    ("binary", ExtraTreesClassifier(**FOREST_KW)),
    ("regression", DecisionTreeRegressor(**TREE_KW)),
    ("binary", HistGradientBoostingClassifier(**HGB_KW)),
    ("multiclass", HistGradientBoostingClassifier(**HGB_KW)),
    ("regression", HistGradientBoostingRegressor(**HGB_KW)),
]


@pytest.mark.parametrize("trained_with_nan", [True, False], ids=["trained-with-nan", "trained-without-nan"])
@pytest.mark.parametrize("case", NAN_CASES, ids=case_id)
def test_missing_values(
    check: Callable, train: dict, score: np.ndarray, case: tuple[str, Any], trained_with_nan: bool
) -> None:
    """NaN goes where scikit-learn sends it, in features that had NaN in training and in those that had none."""
    task, est = case[0], clone(case[1])
    x = with_nan(train["x"], [0, 1, 4], 0.15, seed=1) if trained_with_nan else train["x"]
    est.fit(x, train[task])
    check(est, with_nan(score, range(32), 0.1, seed=2))


@pytest.mark.parametrize(
    "est",
    [HistGradientBoostingRegressor(**HGB_KW), DecisionTreeRegressor(**TREE_KW), RandomForestRegressor(**FOREST_KW)],
    ids=lambda e: type(e).__name__,
)
def test_split_on_nan(check: Callable, train: dict, score: np.ndarray, est: Any) -> None:
    """A split of NaN from every number (threshold +inf, not JSON) keeps +inf with the numbers."""
    x = with_nan(train["x"], [7], 0.3, seed=9)
    est = clone(est).fit(x, train["regression"] + 5.0 * np.isnan(x[:, 7]))
    ir = to_ir(est)
    assert any(c == [] for tree in ir["model"]["trees"] for c in tree["categories"])
    x_score = with_nan(score, [7], 0.3, seed=10)
    if isinstance(est, HistGradientBoostingRegressor):  # the others reject infinite inputs
        x_score[::7, 7] = np.inf
        x_score[3::7, 7] = -np.inf
    check(est, x_score, ir=ir)


# ---------------------------------------------------------------------------------------------
# Values at the thresholds


def split_points(ir: dict, limit: int = 3000) -> list[tuple[int, float]]:
    points = []
    for tree in ir["model"]["trees"]:
        cats = tree["categories"] or [None] * len(tree["split_feature"])
        points += [(f, t) for f, t, c in zip(tree["split_feature"], tree["threshold"], cats, strict=True) if c is None]
    return sorted(set(points))[:limit]


def threshold_rows(points: list[tuple[int, float]], base: np.ndarray) -> np.ndarray:
    """Rows of ``base`` with one feature set at, next to, or float32-equal to a split threshold."""
    rows = []
    for i, (f, t) in enumerate(points):
        t32 = np.float32(t)
        ulp32 = float(np.spacing(t32))
        values = [
            t,
            np.nextafter(t, np.inf),
            np.nextafter(t, -np.inf),
            float(t32),  # t rounded to float32
            float(np.nextafter(t32, np.float32(np.inf))),
            float(np.nextafter(t32, np.float32(-np.inf))),
            float(t32) + ulp32 / 4,  # differ from float(t32) in float64, equal to it in float32
            float(t32) - ulp32 / 4,
        ]
        for v in values:
            row = base[i % len(base)].copy()
            row[f] = v
            rows.append(row)
    return np.asarray(rows)


THRESHOLD_CASES = [
    ("binary", DecisionTreeClassifier(**TREE_KW)),
    ("regression", RandomForestRegressor(**FOREST_KW)),
    ("multiclass", ExtraTreesClassifier(**FOREST_KW)),
    ("regression", GradientBoostingRegressor(**GB_KW)),
    ("binary", GradientBoostingClassifier(**GB_KW)),
    ("binary", HistGradientBoostingClassifier(**HGB_KW)),
    ("regression", HistGradientBoostingRegressor(**HGB_KW)),
]


@pytest.mark.parametrize("case", THRESHOLD_CASES, ids=case_id)
def test_values_at_thresholds(check: Callable, train: dict, score: np.ndarray, case: tuple[str, Any]) -> None:
    task, est = case[0], clone(case[1])
    est.fit(train["x"], train[task])
    ir = to_ir(est)
    rows = threshold_rows(split_points(ir), score)
    assert len(rows) >= 500
    # The rows sit exactly where float32 rounding and `<=` decide the branch.
    check(est, np.vstack([rows, score[: max(0, N_ROWS - len(rows))]]), ir=ir)


# ---------------------------------------------------------------------------------------------
# Categorical HistGradientBoosting


def categorical_data(x: np.ndarray, seed: int) -> np.ndarray:
    """Column 5: categories 0..7; column 6: categories {0, 3, 10, 200} with 5% NaN."""
    rng = np.random.default_rng(seed)
    x = x.copy()
    x[:, 5] = np.digitize(x[:, 5], [-1.5, -1, -0.5, 0, 0.5, 1, 1.5]).astype(np.float64)
    x[:, 6] = np.array([0.0, 3.0, 10.0, 200.0])[rng.integers(0, 4, len(x))]
    x[rng.random(len(x)) < 0.05, 6] = np.nan
    return x


def categorical_target(x: np.ndarray) -> np.ndarray:
    bonus = np.isin(x[:, 5], [1, 4, 6]) * 1.5 - (x[:, 6] == 10) * 2.0 + np.isnan(x[:, 6]) * 1.0
    return (x[:, 0] + bonus + np.random.default_rng(3).normal(0, 0.5, len(x)) > 0.5).astype(np.int64)


@pytest.fixture(scope="module")
def categorical_model(train: dict) -> HistGradientBoostingClassifier:
    x = categorical_data(train["x"], seed=4)
    return HistGradientBoostingClassifier(categorical_features=[5, 6], **HGB_KW).fit(x, categorical_target(x))


def test_categorical_hist_gradient_boosting(
    check: Callable, categorical_model: HistGradientBoostingClassifier, score: np.ndarray
) -> None:
    """Known, unknown, negative and NaN categories all go where scikit-learn sends them."""
    ir = to_ir(categorical_model)
    assert any(c is not None for t in ir["model"]["trees"] for c in t["categories"])
    x = categorical_data(score, seed=5)
    rng = np.random.default_rng(6)
    odd = [8.0, 9.0, 1000.0, 1e12, -1.0, -5.0, -0.0, np.nan, 1.0, 2.0, 4.0, 11.0, 199.0, 201.0]  # no inf: rejected
    for j in (5, 6):
        rows = rng.random(len(x)) < 0.3
        x[rows, j] = rng.choice(odd, rows.sum())
    check(categorical_model, x, ir=ir)


def test_categorical_non_integer_values(
    check: Callable, categorical_model: HistGradientBoostingClassifier, score: np.ndarray
) -> None:
    x = categorical_data(score, seed=5)
    x[:, 5] += 0.5
    x[:, 6] += 0.25
    check(categorical_model, x)


@pytest.mark.parametrize(
    ("values", "bad"),
    [([-1.0, 0.0, 2.0], "-1.0"), ([0.0, 1.5, 3.0], "1.5")],
    ids=["negative", "non-integer"],
)
def test_categorical_categories_must_be_non_negative_integers(train: dict, values: list[float], bad: str) -> None:
    x = train["x"][:2000].copy()
    x[:, 2] = np.asarray(values)[np.arange(len(x)) % len(values)]
    est = HistGradientBoostingClassifier(max_iter=2, categorical_features=[2]).fit(x, train["binary"][:2000])
    with pytest.raises(CompileError, match=rf"categorical feature at index 2 has categories \[{bad}\]"):
        to_ir(est)


# ---------------------------------------------------------------------------------------------
# Pipelines


PIPELINE_CASES = [
    ("binary", make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))),
    ("multiclass", Pipeline([("scaler", StandardScaler()), ("model", LogisticRegression(max_iter=1000))])),
    ("regression", make_pipeline(StandardScaler(with_mean=False), Ridge())),
    ("regression", make_pipeline(StandardScaler(with_std=False), LinearRegression())),
    ("binary", Pipeline([("scaler", StandardScaler()), ("model", RandomForestClassifier(**FOREST_KW))])),
    ("multiclass", make_pipeline(StandardScaler(), GradientBoostingClassifier(**GB_KW))),
    ("regression", make_pipeline(StandardScaler(), HistGradientBoostingRegressor(**HGB_KW))),
    ("regression", make_pipeline(StandardScaler(), DecisionTreeRegressor(**TREE_KW))),
]


def pipeline_id(case: tuple[str, Pipeline]) -> str:
    task, pipe = case
    scaler = pipe.steps[0][1]
    options = "" if scaler.with_mean and scaler.with_std else ("-no-mean" if not scaler.with_mean else "-no-std")
    return f"{type(pipe.steps[-1][1]).__name__}-{task}{options}"


@pytest.mark.parametrize("case", PIPELINE_CASES, ids=pipeline_id)
def test_pipeline(check: Callable, train: dict, score: np.ndarray, case: tuple[str, Pipeline]) -> None:
    task, pipe = case[0], clone(case[1])
    x = train["x"] * 3.0 + np.arange(32)  # not standard already
    pipe.fit(x, train[task])
    ir = to_ir(pipe)
    scaler = pipe.steps[0][1]
    [pre] = ir["preprocess"]
    assert pre["type"] == "affine"
    assert pre.get("sub") == (scaler.mean_.tolist() if scaler.with_mean else None)
    assert pre.get("div") == (scaler.scale_.tolist() if scaler.with_std else None)
    assert ir["metadata"]["estimator"] == type(pipe.steps[-1][1]).__name__
    x_score = score * 3.0 + np.arange(32)
    if isinstance(pipe.steps[-1][1], HistGradientBoostingRegressor):
        x_score = with_nan(x_score, [0, 3], 0.05, seed=8)  # NaN goes through the scaler to the trees
    check(pipe, x_score, exact=not is_linear(pipe.steps[-1][1]), ir=ir)


# ---------------------------------------------------------------------------------------------
# Features


def test_feature_names_from_fitted_columns(check: Callable, train: dict, score: np.ndarray) -> None:
    pl = pytest.importorskip("polars")
    names = [f"f_{i}" for i in range(32)]
    est = RandomForestRegressor(**FOREST_KW).fit(pl.DataFrame(train["x"], schema=names), train["regression"])
    ir = to_ir(est)
    assert ir["features"] == names
    assert to_ir(est, features=names)["features"] == names
    check(est, score, ir=ir, sk_x=pl.DataFrame(score, schema=names))
    with pytest.raises(CompileError, match="differ from the names the RandomForestRegressor was fitted on"):
        to_ir(est, features=[f"g_{i}" for i in range(32)])


def test_feature_names_given(train: dict) -> None:
    est = Ridge().fit(train["x"], train["regression"])
    names = [f"col{i}" for i in range(32)]
    assert to_ir(est, features=names)["features"] == names
    assert to_ir(est)["features"] == [f"x{i}" for i in range(32)]


# ---------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("est", [SVC(), KNeighborsClassifier()], ids=lambda e: type(e).__name__)
def test_unsupported_estimator(train: dict, est: Any) -> None:
    est.fit(train["x"][:500], train["binary"][:500])
    with pytest.raises(CompileError) as info:
        to_ir(est)
    message = str(info.value)
    assert type(est).__name__ in message
    for name in (*SUPPORTED, "Pipeline", "StandardScaler"):
        assert name in message


def test_unfitted_estimator() -> None:
    with pytest.raises(CompileError, match="the RandomForestClassifier is not fitted; call fit"):
        to_ir(RandomForestClassifier())
    with pytest.raises(CompileError, match="the StandardScaler is not fitted"):
        to_ir(make_pipeline(StandardScaler(), Ridge()))


def test_features_of_the_wrong_length(train: dict) -> None:
    est = DecisionTreeClassifier(max_depth=2).fit(train["x"], train["binary"])
    with pytest.raises(CompileError, match="features has 3 names but the DecisionTreeClassifier was fitted on 32"):
        to_ir(est, features=["a", "b", "c"])


def test_pipeline_with_another_step(train: dict) -> None:
    pipe = Pipeline([("scale", StandardScaler()), ("reduce", PCA(4)), ("model", LogisticRegression())])
    pipe.fit(train["x"][:1000], train["binary"][:1000])
    with pytest.raises(CompileError, match=r"step 'reduce' \(PCA\) cannot be compiled; supported preprocessing: "):
        to_ir(pipe)
    pipe = make_pipeline(StandardScaler(), SVC()).fit(train["x"][:500], train["binary"][:500])
    with pytest.raises(CompileError, match=r"pipeline step 'svc' cannot compile a sklearn\.svm\._classes\.SVC"):
        to_ir(pipe)


@pytest.mark.parametrize(
    "est", [DecisionTreeRegressor(max_depth=2), RandomForestRegressor(n_estimators=2), LinearRegression()]
)
def test_multi_output_regression(train: dict, est: Any) -> None:
    y = np.column_stack([train["regression"], -train["regression"]])[:1000]
    est.fit(train["x"][:1000], y)
    with pytest.raises(CompileError, match="only single-output models can be compiled"):
        to_ir(est)


def test_non_constant_init_estimator(train: dict) -> None:
    est = GradientBoostingRegressor(n_estimators=2, init=DecisionTreeRegressor(max_depth=2))
    est.fit(train["x"][:1000], train["regression"][:1000])
    with pytest.raises(CompileError, match="init estimator is a DecisionTreeRegressor"):
        to_ir(est)


# ---------------------------------------------------------------------------------------------
# Known gap


def test_binary_label_near_zero_raw_score(check: Callable, train: dict, score: np.ndarray) -> None:
    est = LogisticRegression().fit(train["x"][:1000], train["binary"][:1000])
    est.coef_ = np.zeros_like(est.coef_)
    est.intercept_ = np.array([1e-17])
    check(est, score)
