"""scikit-learn preprocessing compiled into the binary (``docs/ir.md``, "Preprocessing").

Each transformer and pipeline is checked three ways on at least 10,000 rows: the reference
evaluator's features equal scikit-learn's ``transform`` bit for bit (within 1e-12 where the
arithmetic differs: the l2 norm's square root of a sum), the compiled binary's outputs equal the
reference evaluator's bit for bit, and both match scikit-learn's ``predict`` / ``predict_proba``
(1e-6 relative; labels equal). Inputs carry NaN, nulls, empty strings, unseen categories and
values at the encoders' and imputers' edges. String inputs go through every Python path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer, make_column_transformer
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MaxAbsScaler,
    MinMaxScaler,
    Normalizer,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)
from sklearn.tree import DecisionTreeRegressor
from threadpoolctl import threadpool_limits

from streamml import Model
from streamml.bytewax import predict_op
from streamml.compile import write_binary
from streamml.compile.from_sklearn import to_ir
from streamml.errors import CompileError, PredictError
from streamml_dev import reference

N_ROWS = 10_000
CITIES = ["london", "paris", "", "oslo", "rome", "lima", "kyiv"]
PLANS = ["basic", "pro", "team"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with threadpool_limits(1):
        yield


# The data holds unseen categories and all-missing columns on purpose: scikit-learn warns about both.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Found unknown categories in columns:UserWarning"),
    pytest.mark.filterwarnings("ignore:Skipping features without any observed values:UserWarning"),
]


def mixed_frame(rows: int, seed: int, *, unseen: bool = False) -> pd.DataFrame:
    """Two numeric and two string columns with NaN / missing strings; ``unseen`` adds categories never fitted."""
    rng = np.random.default_rng(seed)
    age = np.round(rng.normal(40, 12, rows), 1)
    income = rng.lognormal(10, 1, rows)
    age[rng.random(rows) < 0.08] = np.nan
    income[rng.random(rows) < 0.05] = np.nan
    cities = CITIES + (["atlantis", "CITY"] if unseen else [])
    # Rare categories (lima, kyiv) for the infrequent-category options.
    weights = np.array([30, 25, 10, 20, 11, 2, 2] + ([3, 3] if unseen else []), dtype=float)
    city = rng.choice(np.array(cities, dtype=object), rows, p=weights / weights.sum())
    city[rng.random(rows) < 0.06] = np.nan
    plans = PLANS + (["gold"] if unseen else [])
    plan = rng.choice(np.array(plans, dtype=object), rows)
    plan[rng.random(rows) < 0.04] = np.nan
    return pd.DataFrame({"age": age, "city": city, "income": income, "plan": plan})


def mixed_target(df: pd.DataFrame) -> np.ndarray:
    score = (
        np.nan_to_num(df["age"].to_numpy(), nan=35.0) / 10
        + (df["city"] == "paris") * 1.5
        - (df["plan"] == "basic") * 1.0
        + np.log(np.nan_to_num(df["income"].to_numpy(), nan=1e4)) / 5
    )
    return (score + np.random.default_rng(7).normal(0, 0.7, len(df)) > 6.3).astype(int)


@pytest.fixture(scope="module")
def mixed() -> dict[str, Any]:
    train = mixed_frame(N_ROWS, 1)
    return {"train": train, "y": mixed_target(train), "score": mixed_frame(N_ROWS, 2, unseen=True)}


def columns(ir: dict, df: pd.DataFrame) -> list[np.ndarray]:
    """The inputs of ``ir`` from ``df`` as the reference evaluator takes them (strings: None = missing)."""
    types = ir.get("input_types") or ["float64"] * len(ir["features"])
    out = []
    for name, t in zip(ir["features"], types, strict=True):
        col = df[name] if isinstance(df, pd.DataFrame) else df[:, ir["features"].index(name)]
        if t == "utf8":
            out.append(np.array([None if not isinstance(v, str) else v for v in col], dtype=object))
        else:
            out.append(np.asarray(col, dtype=np.float64))
    return out


def arrow(ir: dict, df: Any) -> pa.Table:
    if isinstance(df, pd.DataFrame):
        return pa.Table.from_pandas(df[ir["features"]], preserve_index=False)
    return pa.table({name: df[:, j] for j, name in enumerate(ir["features"])})


def expected(est: Any, x: Any, task: str) -> dict[str, np.ndarray]:
    if task == "regression":
        return {"prediction": est.predict(x)}
    proba = est.predict_proba(x)
    label = est.predict(x)
    if task == "binary":
        return {"probability": proba[:, 1], "label": label}
    return {"probabilities": proba, "label": label}


def outputs(table: Any) -> dict[str, np.ndarray]:
    out = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_fixed_size_list(col.type):
            out[name] = np.asarray(col.combine_chunks().flatten()).reshape(len(col), -1)
        else:
            out[name] = np.asarray(col.to_pylist())
    return out


def check(tmp_path: Path, pipe: Any, x: Any, *, exact_features: bool = True) -> dict:
    """Compile ``pipe``: the reference's features are scikit-learn's, the binary gives the reference's outputs
    bit for bit, and both give scikit-learn's."""
    ir = to_ir(pipe)
    cols = columns(ir, x)
    got_features = reference.features(ir, cols)
    want_features = pipe[:-1].transform(x)
    want_features = want_features.toarray() if hasattr(want_features, "toarray") else np.asarray(want_features)
    if exact_features:
        np.testing.assert_array_equal(got_features, want_features.astype(np.float64))
    else:
        np.testing.assert_allclose(got_features, want_features, rtol=1e-12, atol=1e-15)
    model = Model.load(write_binary(ir, tmp_path / "model.so"))
    binary = outputs(model.predict(arrow(ir, x)))
    ref = reference.predict(ir, cols)
    want = expected(pipe, x, ir["task"])
    assert set(binary) == set(want)
    for name, w in want.items():
        if name == "label":
            np.testing.assert_array_equal(binary[name].astype(w.dtype), w)
            np.testing.assert_array_equal(ref[name].astype(w.dtype), w)
        else:
            np.testing.assert_array_equal(binary[name], ref[name], err_msg=f"{name}: binary against the reference")
            np.testing.assert_allclose(binary[name], w, rtol=1e-6, atol=1e-12, err_msg=f"{name}: binary")
    return ir


# ---------------------------------------------------------------------------------------------
# Numeric steps, one by one


def numeric_data(rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 6)) * [1.0, 10.0, 0.1, 3.0, 100.0, 1.0] + [0.0, 5.0, -1.0, 0.0, 50.0, 2.0]
    x[:, 5] = np.round(x[:, 5])  # ties for median / most_frequent
    return x


def with_nan(x: np.ndarray, seed: int, fraction: float = 0.07) -> np.ndarray:
    x = x.copy()
    x[np.random.default_rng(seed).random(x.shape) < fraction] = np.nan
    return x


STEPS = [
    StandardScaler(),
    StandardScaler(with_mean=False),
    MinMaxScaler(),
    MinMaxScaler(feature_range=(-2, 3)),
    MaxAbsScaler(),
    RobustScaler(),
    RobustScaler(with_centering=False, quantile_range=(10.0, 90.0)),
]


@pytest.mark.parametrize("step", STEPS, ids=lambda s: repr(s))
def test_scalers(tmp_path: Path, step: Any) -> None:
    x = numeric_data(N_ROWS, 1)
    y = x @ [1.0, -0.5, 2.0, 0.3, 0.01, 1.0]
    pipe = make_pipeline(clone(step), LinearRegression()).fit(x, y)
    x_score = with_nan(numeric_data(N_ROWS, 2), 3)  # NaN goes through the scaler
    x_score[:, 0] = np.nan_to_num(x_score[:, 0])
    ir = to_ir(pipe)
    assert ir["preprocess"][0]["type"] == "affine"
    assert ir["preprocess"][0]["name"] == pipe.steps[0][0]
    check(tmp_path, pipe, np.nan_to_num(x_score))
    # NaN passes through the scaler to a tree's missing-value routing.
    trees = make_pipeline(clone(step), HistGradientBoostingClassifier(max_iter=20, random_state=0))
    trees.fit(with_nan(x, 4), (y > np.median(y)).astype(int))
    check(tmp_path, trees, x_score)


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_normalizer(tmp_path: Path, norm: str) -> None:
    x = numeric_data(N_ROWS, 1)
    x[:50] = 0.0  # zero rows are left as they are
    pipe = make_pipeline(Normalizer(norm=norm), Ridge()).fit(x, x[:, 0] * 2 - x[:, 3])
    check(tmp_path, pipe, numeric_data(N_ROWS, 2), exact_features=norm != "l2")


IMPUTERS = [
    SimpleImputer(strategy="mean"),
    SimpleImputer(strategy="median"),
    SimpleImputer(strategy="most_frequent"),
    SimpleImputer(strategy="constant", fill_value=-7.5),
    SimpleImputer(strategy="mean", add_indicator=True),
    SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
]


@pytest.mark.parametrize("imputer", IMPUTERS, ids=lambda s: repr(s))
def test_imputers(tmp_path: Path, imputer: Any) -> None:
    x = with_nan(numeric_data(N_ROWS, 1), 5)
    x[:, 2] = np.nan  # all missing at fit: dropped unless constant or keep_empty_features
    x[:, 4] = np.nan_to_num(x[:, 4])  # never missing: no indicator
    y = (np.nan_to_num(x) @ [1.0, -0.5, 2.0, 0.3, 0.01, 1.0] > 2.0).astype(int)
    pipe = make_pipeline(clone(imputer), StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y)
    check(tmp_path, pipe, with_nan(numeric_data(N_ROWS, 2), 6))


# ---------------------------------------------------------------------------------------------
# Encoders: strings, numbers, unknown and missing values, drop, infrequent categories

ENCODERS = [
    OneHotEncoder(handle_unknown="ignore"),
    OneHotEncoder(handle_unknown="ignore", drop="first"),
    OneHotEncoder(handle_unknown="ignore", drop="if_binary"),
    OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=300),
    OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=4, drop="first"),
    OneHotEncoder(handle_unknown="ignore", sparse_output=False, min_frequency=0.05),
    OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
    OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=-2),
    OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=99, max_categories=3),
]


@pytest.mark.parametrize("encoder", ENCODERS, ids=lambda s: repr(s))
def test_string_encoders(tmp_path: Path, mixed: dict, encoder: Any) -> None:
    ct = make_column_transformer(
        (clone(encoder), ["city", "plan"]),
        (SimpleImputer(), ["age", "income"]),
        sparse_threshold=0,
    )
    pipe = make_pipeline(ct, HistGradientBoostingClassifier(max_iter=30, random_state=0))
    pipe.fit(mixed["train"], mixed["y"])
    ir = check(tmp_path, pipe, mixed["score"])
    assert ir["input_types"] == ["float64", "utf8", "float64", "utf8"]


def test_integer_categories_on_a_numeric_column(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = np.column_stack([rng.integers(0, 6, N_ROWS).astype(float), rng.normal(size=N_ROWS)])
    y = (x[:, 0] == 2) * 2.0 + x[:, 1]
    x[::31, 0] = np.nan  # missing at fit: NaN is a category of its own
    ct = ColumnTransformer([("code", OneHotEncoder(handle_unknown="ignore", drop=[3]), [0])], remainder="passthrough")
    pipe = make_pipeline(ct, LinearRegression()).fit(x, y)
    x_score = np.column_stack([rng.integers(-1, 8, N_ROWS).astype(float), rng.normal(size=N_ROWS)])
    x_score[::17, 0] = np.nan  # the NaN category
    x_score[::23, 0] = -0.0  # -0.0 is category 0
    ir = check(tmp_path, pipe, x_score)
    assert "input_types" not in ir


def test_column_transformer_options(tmp_path: Path, mixed: dict) -> None:
    ct = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()), ["age"]),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing"), OneHotEncoder(handle_unknown="ignore")
                ),
                ["city"],
            ),
            (
                "plan",
                OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-2),
                ["plan"],
            ),
            ("skip", "drop", ["city"]),
        ],
        remainder=make_pipeline(SimpleImputer(strategy="most_frequent"), MinMaxScaler()),
    )
    pipe = Pipeline([("prep", ct), ("scale", MaxAbsScaler()), ("model", LogisticRegression(max_iter=3000))])
    pipe.fit(mixed["train"], mixed["y"])
    ir = check(tmp_path, pipe, mixed["score"])
    info = Model.load(write_binary(ir, tmp_path / "m.so")).info
    assert info["metadata"]["preprocess"] == [
        "prep/num/simpleimputer: impute (1 -> 2 columns)",
        "prep/num/standardscaler: affine (2 -> 2 columns)",
        "prep/cat/simpleimputer: impute (1 -> 1 columns)",
        "prep/cat/onehotencoder: one_hot (1 -> 8 columns)",
        "prep/plan: ordinal (1 -> 1 columns)",
        "prep/remainder/simpleimputer: impute (1 -> 1 columns)",
        "prep/remainder/minmaxscaler: affine (1 -> 1 columns)",
        "prep: columns (4 -> 12 columns)",
        "scale: affine (12 -> 12 columns)",
    ]
    assert [f["type"] for f in info["inputs"]] == ["float64", "utf8", "float64", "utf8"]


def test_remainder_passthrough_and_positional_columns(tmp_path: Path) -> None:
    x = with_nan(numeric_data(N_ROWS, 8), 9)
    y = np.nan_to_num(x) @ [1.0, -0.5, 2.0, 0.3, 0.01, 1.0]
    ct = ColumnTransformer([("imp", SimpleImputer(), [4, 1]), ("drop", "drop", [0])], remainder="passthrough")
    pipe = make_pipeline(ct, DecisionTreeRegressor(max_depth=10, random_state=0)).fit(x, y)
    check(tmp_path, pipe, with_nan(numeric_data(N_ROWS, 10), 11))


# ---------------------------------------------------------------------------------------------
# Real datasets


def test_breast_cancer(tmp_path: Path) -> None:
    data = load_breast_cancer(as_frame=True)
    x = data.frame.drop(columns="target")
    x_fit = x.mask(np.random.default_rng(0).random(x.shape) < 0.05)
    pipe = make_pipeline(SimpleImputer(add_indicator=True), StandardScaler(), LogisticRegression(max_iter=5000))
    pipe.fit(x_fit, data.target)
    big = x.sample(N_ROWS, replace=True, random_state=1).reset_index(drop=True)
    big = big.mask(np.random.default_rng(2).random(big.shape) < 0.05)
    ir = check(tmp_path, pipe, big)
    assert ir["features"] == list(x.columns)
    trees = make_pipeline(RobustScaler(), HistGradientBoostingClassifier(max_iter=50, random_state=0))
    check(tmp_path, trees.fit(x_fit, data.target), big)


def test_diabetes(tmp_path: Path) -> None:
    data = load_diabetes(as_frame=True, scaled=False)
    x = data.data.copy()
    x["sex"] = x["sex"].map({1.0: "f", 2.0: "m"}).astype(object)  # a string column
    ct = make_column_transformer(
        (OneHotEncoder(drop="if_binary", handle_unknown="error"), ["sex"]), remainder=MinMaxScaler()
    )
    big = x.sample(N_ROWS, replace=True, random_state=3).reset_index(drop=True)
    for est in (Ridge(alpha=0.1), GradientBoostingRegressor(n_estimators=40, random_state=0)):
        pipe = make_pipeline(clone(ct), est).fit(x, data.target)
        check(tmp_path, pipe, big)


def test_mixed_frame_random_forest(tmp_path: Path, mixed: dict) -> None:
    ct = make_column_transformer(
        (OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=0.03), ["city", "plan"]),
        (make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), ["age", "income"]),
    )
    pipe = make_pipeline(ct, RandomForestClassifier(n_estimators=10, max_depth=10, random_state=0))
    check(tmp_path, pipe.fit(mixed["train"], mixed["y"]), mixed["score"])


# ---------------------------------------------------------------------------------------------
# Strings in every Python path, and handle_unknown="error"


@pytest.fixture(scope="module")
def string_model(tmp_path_factory: pytest.TempPathFactory, mixed: dict) -> tuple[Any, dict, Model]:
    ct = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), ["city", "plan"]),
        (SimpleImputer(), ["age", "income"]),
        sparse_threshold=0,
    )
    pipe = make_pipeline(ct, HistGradientBoostingClassifier(max_iter=20, random_state=0))
    pipe.fit(mixed["train"], mixed["y"])
    ir = to_ir(pipe)
    path = write_binary(ir, tmp_path_factory.mktemp("strings") / "strings.so")
    return pipe, ir, Model.load(path)


def test_strings_through_dicts_and_one_row(string_model: tuple, mixed: dict) -> None:
    pipe, _, model = string_model
    frame = mixed["score"].iloc[:200]
    rows = [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
        for row in frame.to_dict("records")
    ]
    want = pipe.predict_proba(frame)[:, 1]
    batch = model.predict(rows)
    np.testing.assert_allclose(batch.column("probability").to_numpy(), want, rtol=1e-6)
    import polars as pl

    from_polars = model.predict(pl.from_pandas(frame))  # strings as utf8_view, cast by the host
    np.testing.assert_array_equal(from_polars.column("probability").to_numpy(), batch.column("probability").to_numpy())
    one = [model.predict([row]).column("probability")[0].as_py() for row in rows[:50]]
    np.testing.assert_array_equal(one, batch.column("probability").to_numpy()[:50])
    score = predict_op(model)  # the one-row dict path of the Bytewax mapper
    scored = [score(row) for row in rows[:50]]
    assert [s["city"] for s in scored] == [r["city"] for r in rows[:50]]
    np.testing.assert_array_equal([s["probability"] for s in scored], one)


def test_unknown_category_with_handle_unknown_error(tmp_path: Path, mixed: dict) -> None:
    ct = make_column_transformer((OneHotEncoder(handle_unknown="error"), ["plan"]), (SimpleImputer(), ["age"]))
    frame = mixed["train"][["age", "plan"]].assign(plan=mixed["train"]["plan"].fillna("basic"))
    pipe = make_pipeline(ct, LogisticRegression()).fit(frame, mixed["y"])
    model = Model.load(write_binary(to_ir(pipe), tmp_path / "strict.so"))
    ok = model.predict(pa.table({"age": [30.0, None], "plan": ["pro", "team"]}))
    np.testing.assert_allclose(
        ok.column("probability").to_numpy(),
        pipe.predict_proba(pd.DataFrame({"age": [30.0, np.nan], "plan": ["pro", "team"]}))[:, 1],
        rtol=1e-6,
    )
    with pytest.raises(PredictError) as info:
        model.predict(pa.table({"age": [30.0, 31.0], "plan": ["pro", "gold"]}))
    assert (
        "preprocess step 'columntransformer/onehotencoder' (one_hot): the unknown category \"gold\" of input "
        "'plan' in row 1; this encoder was fitted to refuse it (handle_unknown='error'): send a known category"
    ) in str(info.value)
    with pytest.raises(PredictError) as info:
        model.predict(pa.table({"age": [30.0], "plan": pa.array([None], pa.string())}))
    assert "a missing value of input 'plan' in row 0" in str(info.value)
    codes = np.random.default_rng(4).integers(0, 3, 1000).astype(float)
    numeric = make_pipeline(OneHotEncoder(handle_unknown="error"), LinearRegression()).fit(codes[:, None], codes)
    model = Model.load(write_binary(to_ir(numeric), tmp_path / "numeric.so"))
    with pytest.raises(PredictError) as info:
        model.predict(pa.table({"x0": [1.0, 2.0, 7.0]}))
    assert (
        "preprocess step 'onehotencoder' (one_hot): the unknown category 7 of input 'x0' in row 2; "
        "this encoder was fitted to refuse it (handle_unknown='error'): send a known category"
    ) in str(info.value)


# ---------------------------------------------------------------------------------------------
# Refusals


def test_refusals() -> None:
    x = numeric_data(200, 1)
    y = (x[:, 0] > 0).astype(int)

    def refused(pipe: Any, message: str, data: Any = x, target: Any = y) -> None:
        pipe.fit(data, target)
        with pytest.raises(CompileError) as info:
            to_ir(pipe)
        assert str(info.value) == message

    refused(
        make_pipeline(FunctionTransformer(np.tanh), LogisticRegression()),
        "step 'functiontransformer' (FunctionTransformer) cannot be compiled; supported preprocessing: "
        "StandardScaler, MinMaxScaler, MaxAbsScaler, RobustScaler, Normalizer, SimpleImputer, OneHotEncoder, "
        "OrdinalEncoder, ColumnTransformer, Pipeline ('passthrough' and 'drop' where scikit-learn takes them)",
    )
    refused(
        make_pipeline(MinMaxScaler(clip=True), LogisticRegression()),
        "step 'minmaxscaler' (MinMaxScaler) has clip=True, which cannot be compiled; fit it with clip=False",
    )
    refused(
        make_pipeline(SimpleImputer(missing_values=-1.0), LogisticRegression()),
        "step 'simpleimputer' (SimpleImputer) has missing_values=-1.0; only NaN (or None for strings) can be compiled",
    )


# ---------------------------------------------------------------------------------------------
# Kafka, drift reference, inspect


@pytest.mark.kafka
def test_strings_through_a_json_kafka_round_trip(kafka_bootstrap: str, string_model: tuple, mixed: dict) -> None:
    import json

    from kafka_support import consume, kafka_topics, produce, run_scorer
    from streamml.kafka import ScoringLoop

    pipe, ir, model = string_model
    frame = mixed["score"].iloc[:2000]
    n = len(frame)
    values = []
    for i, row in enumerate(frame.to_dict("records")):
        row = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
        values.append(json.dumps({"id": i, **row}).encode())
    want = pipe.predict_proba(frame)[:, 1]
    direct = model.predict(arrow(ir, frame)).column("probability").to_numpy()
    with kafka_topics(kafka_bootstrap, ["in", "out", "dlq"]) as (inp, out, dlq):
        produce(kafka_bootstrap, inp, values, [None] * n)
        scorer = ScoringLoop(
            model,
            kafka_bootstrap,
            inp,
            out,
            group_id=f"g-{inp}",
            dlq_topic=dlq,
            id_field="id",
            max_batch_rows=256,
            max_wait_ms=20,
        )
        assert run_scorer(scorer, n) is None
        records = consume(kafka_bootstrap, out, at_least=n)
        assert consume(kafka_bootstrap, dlq, at_least=0, idle=0.5) == []
    got = {json.loads(r.value)["id"]: json.loads(r.value)["probability"] for r in records}
    assert sorted(got) == list(range(n))
    probability = np.array([got[i] for i in range(n)])
    np.testing.assert_array_equal(probability, direct)  # the same float64 through JSON and back
    np.testing.assert_allclose(probability, want, rtol=1e-6)


def test_reference_bins_the_raw_inputs_strings_by_category(tmp_path: Path, mixed: dict) -> None:
    from streamml.compile import compile as compile_model

    ct = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), ["city", "plan"]), (SimpleImputer(), ["age", "income"])
    )
    pipe = make_pipeline(ct, LogisticRegression(max_iter=2000)).fit(mixed["train"], mixed["y"])
    data = pa.Table.from_pandas(mixed["train"], preserve_index=False)
    model = Model.load(compile_model(pipe, tmp_path / "ref.so", reference=data))
    ref = model.info["drift_reference"]
    kinds = {f["name"]: (f["kind"], f.get("values")) for f in ref["features"]}
    assert kinds == {
        "age": ("numeric", None),
        "city": ("categorical", "utf8"),
        "income": ("numeric", None),
        "plan": ("categorical", "utf8"),
    }
    city = next(f for f in ref["features"] if f["name"] == "city")
    assert city["categories"] == sorted(CITIES)  # the empty string is a category
    counts = mixed["train"]["city"].value_counts()
    missing = int(mixed["train"]["city"].isna().sum())
    assert city["counts"] == [int(counts[c]) for c in city["categories"]] + [0, missing]


def test_inspect_lists_the_steps(tmp_path: Path, string_model: tuple) -> None:
    import subprocess
    import sys

    _, ir, _ = string_model
    path = write_binary(ir, tmp_path / "inspect.so")
    streamml = str(Path(sys.executable).parent / "streamml")
    out = subprocess.run([streamml, "inspect", str(path)], capture_output=True, text=True, check=True).stdout
    assert "  city                     utf8         nullable" in out
    assert (
        "preprocess (3 steps)\n"
        "  columntransformer/onehotencoder: one_hot (2 -> 12 columns)\n"
        "  columntransformer/simpleimputer: impute (2 -> 2 columns)\n"
        "  columntransformer: columns (4 -> 14 columns)\n"
    ) in out
