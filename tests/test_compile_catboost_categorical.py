"""CatBoost's categorical features compiled: the binary's outputs equal CatBoost's own predictions.

Models are fitted on a mixed frame (two float columns, three string columns: one small enough to be
one-hot encoded, two ctr-encoded, one of them given to CatBoost as integers) and scored on 10,000
other rows with categories never seen in training, empty strings and NaN in the float columns.
The binary hashes the strings (``catboost_hash``), looks the projections up in the model's ctr
tables (``catboost_ctr``) and walks the oblivious trees; its outputs must equal CatBoost's
``predict_proba`` / ``predict`` (within 1e-12 relative, labels equal).
"""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from catboost import CatBoostClassifier, CatBoostRegressor

from streamml import Model
from streamml.compile import compile, to_ir
from streamml.errors import CompileError, PredictError

N_ROWS = 10_000
CATS = ["colour", "shape", "size"]


def frame(n: int, seed: int, scoring: bool = False) -> pd.DataFrame:
    """Rows of x0, colour, x1, shape, size; scoring rows add unseen categories, "" and NaN."""
    rng = np.random.default_rng(seed)
    colours = list("abcdefgh") + (["unseen", ""] if scoring else [])
    shapes = ["round", "square", "flat"] + (["hexagonal", ""] if scoring else [])
    x0 = rng.normal(size=n)
    x1 = rng.normal(size=n)
    if scoring:
        x0[rng.random(n) < 0.05] = np.nan
        x1[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "x0": x0,
            "colour": rng.choice(colours, n),
            "x1": x1,
            "shape": rng.choice(shapes, n),
            "size": rng.integers(0, 30 + (10 if scoring else 0), n),  # integers: CatBoost hashes their text
        }
    )


def signal(df: pd.DataFrame, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (
        df.x0.fillna(0).to_numpy()
        + df.colour.isin(list("abc")).to_numpy() * 1.0
        + (df["size"] % 3 == 0).to_numpy()
        + ((df["shape"] == "round") & (df.colour == "d")).to_numpy() * 2.0
        + 0.5 * df.x1.fillna(0).to_numpy() * (df["shape"] == "flat").to_numpy()
        + rng.normal(size=len(df)) * 0.3
    )


def fit(task: str, iterations: int = 60, train_nan: bool = False, **params: Any) -> Any:
    df = frame(4_000, 0)
    s = signal(df, 1)
    if train_nan:  # NaN in training too, so nan_mode decides the float tests of the projections
        df.loc[np.random.default_rng(2).random(len(df)) < 0.05, ["x0", "x1"]] = np.nan
    y = {"binary": s > 0.8, "multiclass": np.digitize(s, [0.0, 1.0]), "regression": s}[task]
    est = CatBoostRegressor if task == "regression" else CatBoostClassifier
    model = est(
        iterations=iterations,
        depth=6,
        one_hot_max_size=4,
        cat_features=CATS,
        verbose=0,
        thread_count=1,
        random_seed=0,
        allow_writing_files=False,
        **params,
    )
    return model.fit(df, y.astype(int) if task != "regression" else y)


def as_batch(df: pd.DataFrame) -> pa.RecordBatch:
    """The stream's view: categorical values as utf8 (integers as their text, as CatBoost hashes them)."""
    return pa.RecordBatch.from_pandas(df.assign(size=df["size"].astype(str)), preserve_index=False)


def check_parity(model: Any, task: str, tmp_path: Path) -> dict[str, Any]:
    ir = to_ir(model)
    steps = [s["type"] for s in ir["preprocess"]]
    assert steps == ["catboost_hash", "columns", "catboost_ctr"]
    assert ir["input_types"] == ["float64", "utf8", "float64", "utf8", "utf8"]
    binary = Model.load(compile(model, tmp_path / f"{task}.so"))
    rows = frame(N_ROWS, 5, scoring=True)
    assert (rows.colour == "").any()
    assert (rows.colour == "unseen").any()
    assert rows.x0.isna().any()
    got = binary.predict(as_batch(rows))
    if task == "regression":
        np.testing.assert_allclose(got.column("prediction").to_numpy(), model.predict(rows), rtol=1e-12, atol=0)
        return ir
    proba = model.predict_proba(rows)
    label = np.asarray(model.predict(rows)).ravel()
    if task == "binary":
        np.testing.assert_allclose(got.column("probability").to_numpy(), proba[:, 1], rtol=1e-12, atol=0)
    else:
        probs = np.stack(got.column("probabilities").to_numpy(zero_copy_only=False))
        np.testing.assert_allclose(probs, proba, rtol=1e-12, atol=1e-300)
    np.testing.assert_array_equal(got.column("label").to_numpy(), label.astype(np.int64))
    return ir


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_one_hot_and_ctr_features_give_catboosts_predictions(task: str, tmp_path: Path) -> None:
    ir = check_parity(fit(task), task, tmp_path)
    ctr = ir["preprocess"][2]
    kinds = collections.Counter(t["kind"] for t in ctr["tables"])
    # CatBoost's defaults: Borders (a count per target class) and Counter.
    assert kinds["Borders"] >= 1
    assert set(kinds) <= {"Borders", "Counter"}
    assert {t["stride"] for t in ctr["tables"] if t["kind"] == "Borders"} == {3 if task == "multiclass" else 2}


@pytest.mark.parametrize("nan_mode", ["Min", "Max"])
def test_combinations_of_categories_float_borders_and_one_hot_values(tmp_path: Path, nan_mode: str) -> None:
    ir = check_parity(fit("binary", iterations=200, train_nan=True, nan_mode=nan_mode), "binary", tmp_path)
    ctrs = ir["preprocess"][2]["ctrs"]
    # Projections of several categorical columns, with float borders and one-hot values among them.
    assert any(len(c["cat"]) >= 2 for c in ctrs)
    assert any(c["float"] for c in ctrs)
    assert any(c["exact"] for c in ctrs)
    assert {f["nan_true"] for c in ctrs for f in c["float"]} == {nan_mode == "Max"}


def test_other_ctr_types_and_priors(tmp_path: Path) -> None:
    model = fit(
        "binary",
        simple_ctr=["Buckets:Prior=0.3", "Counter:Prior=0.5", "BinarizedTargetMeanValue"],
        combinations_ctr=["Borders:Prior=0.2"],
    )
    ir = check_parity(model, "binary", tmp_path)
    kinds = {t["kind"] for t in ir["preprocess"][2]["tables"]}
    assert {"Buckets", "Counter", "BinarizedTargetMeanValue"} <= kinds


def test_mean_value_ctrs_of_a_regression(tmp_path: Path) -> None:
    model = fit("regression", simple_ctr=["BinarizedTargetMeanValue"], combinations_ctr=["BinarizedTargetMeanValue"])
    ir = check_parity(model, "regression", tmp_path)
    assert {t["kind"] for t in ir["preprocess"][2]["tables"]} == {"BinarizedTargetMeanValue"}


def test_a_null_category_is_refused_naming_the_input_and_row(tmp_path: Path) -> None:
    binary = Model.load(compile(fit("binary", iterations=10), tmp_path / "m.so"))
    rows = as_batch(frame(5, 5))
    shape = pa.array(["round", None, "flat", "round", "square"])
    rows = rows.set_column(rows.schema.get_field_index("shape"), "shape", shape)
    with pytest.raises(
        PredictError,
        match=r"preprocess step .hash. \(catboost_hash\): input 'shape' is null in row 1; "
        r"CatBoost's categorical features have no missing value",
    ):
        binary.predict(rows)


def test_unknown_ctr_types_and_text_features_are_refused_naming_them(tmp_path: Path) -> None:
    model = fit("binary", iterations=10)
    path = tmp_path / "m.json"
    model.save_model(str(path), format="json")
    doc = json.loads(path.read_text())
    doc["features_info"]["ctrs"][0]["ctr_type"] = "Mystery"
    path.write_text(json.dumps(doc))
    with pytest.raises(
        CompileError, match=r"^CatBoost ctr 0 over colour has the type 'Mystery'; streamml computes Borders, "
    ):
        to_ir(path)
    doc["features_info"]["text_features"] = [{"feature_id": "review", "flat_feature_index": 5}]
    path.write_text(json.dumps(doc))
    with pytest.raises(CompileError, match=r"^the CatBoost model has text features \(review\); streamml compiles"):
        to_ir(path)
