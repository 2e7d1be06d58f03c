"""CatBoost to IR: the compiled model's outputs equal CatBoost's own ``predict`` / ``predict_proba``.

Models are fitted on scikit-learn's bundled datasets (breast_cancer: binary, wine: multiclass,
diabetes: regression) and scored on 10,000 rows drawn from them with jitter, where one cell in
ten is set exactly to a border of the model and one in twenty to NaN (the ``ir_predict`` fixture
passes half of those as nulls). Each case is checked three ways: the reference evaluator and the
compiled binary against CatBoost (within 1e-12 relative; labels equal), and the binary against the
reference.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from catboost import CatBoostClassifier, CatBoostRegressor
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

from streamml import Model
from streamml.compile import compile, from_catboost, to_ir
from streamml.compile.from_catboost import expand
from streamml.errors import CompileError
from streamml_dev import reference

N_ROWS = 10_000
KW = {"iterations": 60, "depth": 6, "verbose": 0, "thread_count": 1, "random_seed": 0, "allow_writing_files": False}


def dataset(task: str) -> tuple[np.ndarray, np.ndarray]:
    if task == "binary":
        data = load_breast_cancer()
        return data.data, data.target
    if task == "multiclass":
        data = load_wine()
        return data.data, np.asarray(data.target_names)[data.target]  # string labels
    data = load_diabetes()
    return data.data, data.target


def with_nan(x: np.ndarray, seed: int, rate: float) -> np.ndarray:
    x = x.copy()
    x[np.random.default_rng(seed).random(x.shape) < rate] = np.nan
    return x


def scoring_rows(x: np.ndarray, ir: dict[str, Any], seed: int = 1) -> np.ndarray:
    """10,000 rows like ``x``: jittered, a tenth of the cells at a border, a twentieth NaN."""
    rng = np.random.default_rng(seed)
    rows = x[rng.integers(0, len(x), N_ROWS)] * rng.normal(1.0, 0.05, (N_ROWS, x.shape[1]))
    borders: dict[int, list[float]] = {}
    for tree in ir["model"]["trees"]:
        for f, b in zip(tree["split_feature"], tree["threshold"], strict=True):
            borders.setdefault(f, []).append(b)
    at = rng.random(rows.shape) < 0.1
    for j, values in borders.items():
        cells = np.flatnonzero(at[:, j])
        rows[cells, j] = rng.choice(values, len(cells))
    assert at.sum() > 0.05 * rows.size
    return with_nan(rows, seed + 1, 0.05)


def expected(model: Any, x: np.ndarray, task: str) -> dict[str, np.ndarray]:
    if task == "regression":
        return {"prediction": model.predict(x)}
    proba = model.predict_proba(x)
    label = np.asarray(model.predict(x)).ravel()
    if task == "binary":
        return {"probability": proba[:, 1], "label": label}
    return {"probabilities": proba, "label": label}


def compare(got: dict[str, np.ndarray], want: dict[str, np.ndarray], who: str) -> None:
    assert set(got) == set(want), who
    for name, w in want.items():
        g = np.asarray(got[name])
        if name == "label":
            np.testing.assert_array_equal(g.astype(w.dtype), w, err_msg=f"{who}: {name}")
        else:
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-15, err_msg=f"{who}: {name}")


@pytest.fixture
def check(ir_predict: Callable) -> Callable:
    def run(model: Any, x: np.ndarray, task: str, ir: dict[str, Any]) -> None:
        assert ir["task"] == task
        want = expected(model, x, task)
        compare(reference.predict(ir, x), want, "reference")
        compare(ir_predict(ir, x), want, "binary")

    return run


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("nan_mode", ["Min", "Max", "Forbidden"])
def test_parity_on_real_data(check: Callable, task: str, nan_mode: str) -> None:
    x, y = dataset(task)
    est = CatBoostRegressor if task == "regression" else CatBoostClassifier
    # Forbidden refuses NaN in fit; the others learn from it.
    x_fit = x if nan_mode == "Forbidden" else with_nan(x, 0, 0.1)
    model = est(nan_mode=nan_mode, **KW).fit(x_fit, y)
    ir = to_ir(model)
    assert ir["model"]["type"] == "oblivious"
    assert ir["model"]["feature_cast"] == "float32"
    assert len(ir["model"]["trees"]) == 60
    check(model, scoring_rows(x, ir), task, ir)


def test_the_expanded_trees_give_the_oblivious_bits(ir_predict: Callable) -> None:
    x, y = dataset("multiclass")
    model = CatBoostClassifier(nan_mode="Max", **KW).fit(with_nan(x, 0, 0.1), y)
    ir = to_ir(model)
    plain = {**ir, "model": expand(ir["model"])}
    assert plain["model"]["type"] == "trees"
    rows = scoring_rows(x, ir)
    a, b = ir_predict(ir, rows), ir_predict(plain, rows)
    np.testing.assert_array_equal(a["probabilities"], b["probabilities"])
    np.testing.assert_array_equal(a["label"], b["label"])
    assert from_catboost.to_ir(model, oblivious=False)["model"] == plain["model"]


def test_poisson_takes_the_exp_link(check: Callable) -> None:
    x, y = dataset("regression")
    model = CatBoostRegressor(loss_function="Poisson", **KW).fit(x, np.round(y / 10))
    ir = to_ir(model)
    assert ir["link"] == "exp"
    check(model, scoring_rows(x, ir), "regression", ir)


def test_model_files_compile_and_inspect_from_the_cli(tmp_path: Path) -> None:
    x, y = dataset("binary")
    model = CatBoostClassifier(**KW).fit(x, y)
    names = [f"f{i}" for i in range(x.shape[1])]
    rows = scoring_rows(x, to_ir(model))
    want = model.predict_proba(rows)[:, 1]
    reference_data = tmp_path / "reference.csv"
    np.savetxt(reference_data, x[:200], delimiter=",", header=",".join(names), comments="")
    for fmt, suffix in (("cbm", ".cbm"), ("json", ".json")):
        source = tmp_path / f"model{suffix}"
        model.save_model(str(source), format=fmt)
        out = tmp_path / f"model_{fmt}.so"
        cli = [sys.executable, "-m", "streamml.cli"]
        done = subprocess.run(
            [*cli, "compile", str(source), "-o", str(out), "--reference", str(reference_data)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        loaded = Model.load(out)
        assert loaded.info["framework"] == "catboost"
        assert loaded.info["drift_reference"] is not None
        got = loaded.predict_numpy(rows)["probability"]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
        shown = subprocess.run([*cli, "inspect", str(out)], capture_output=True, text=True, check=True).stdout
        assert "framework  catboost" in shown
        assert "meta model_type: oblivious trees" in shown
        assert "meta trees: 60" in shown
        assert "meta loss_function: Logloss" in shown


def test_unsupported_losses_and_unfitted_models_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CompileError, match=r"^the CatBoostClassifier is not fitted; call fit\(\)"):
        to_ir(CatBoostClassifier())
    x, y = dataset("binary")
    model = CatBoostClassifier(**{**KW, "iterations": 3}).fit(x, y)
    path = tmp_path / "m.json"
    model.save_model(str(path), format="json")
    doc = json.loads(path.read_text())
    doc["model_info"]["params"]["loss_function"]["type"] = "YetiRank"
    path.write_text(json.dumps(doc))
    with pytest.raises(CompileError, match=r"^the CatBoost loss 'YetiRank' has no IR link; streamml compiles"):
        compile(path, tmp_path / "m.so")
