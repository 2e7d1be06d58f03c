"""IsolationForest to IR: the compiled model's three outputs equal scikit-learn's methods.

``score_samples``, ``decision_function`` and ``predict`` on 10,000 rows (NaN in one cell of
twenty, a tenth of the cells exactly at a threshold of the forest), from the reference evaluator
and the compiled binary. The scores are within 1e-12 (scikit-learn's ``2 ** x`` is numpy's power,
which may round the last bit differently from the C library's ``pow`` the binary uses); the
predicted labels are equal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import IsolationForest

from streamml import Model
from streamml.compile import compile, to_ir
from streamml.errors import CompileError
from streamml_dev import reference

N_ROWS = 10_000
METHODS = ("score_samples", "decision_function", "predict")


def scoring_rows(x: np.ndarray, ir: dict[str, Any], seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = x[rng.integers(0, len(x), N_ROWS)] * rng.normal(1.0, 0.2, (N_ROWS, x.shape[1]))
    thresholds: dict[int, list[float]] = {}
    for tree in ir["model"]["trees"]:
        for f, t, cats in zip(tree["split_feature"], tree["threshold"], tree["categories"], strict=True):
            if cats is None:
                thresholds.setdefault(f, []).append(t)
    at = rng.random(rows.shape) < 0.1
    for j, values in thresholds.items():
        cells = np.flatnonzero(at[:, j])
        # Both sides cast these to float32 before comparing, as scikit-learn does.
        rows[cells, j] = rng.choice(values, len(cells))
    rows[rng.random(rows.shape) < 0.05] = np.nan
    return rows


def compare(got: dict[str, np.ndarray], model: IsolationForest, x: np.ndarray, who: str) -> None:
    assert set(got) == set(METHODS), who
    for name in METHODS:
        want = getattr(model, name)(x)
        if name == "predict":
            np.testing.assert_array_equal(got[name], want, err_msg=f"{who}: {name}")
        else:
            np.testing.assert_allclose(got[name], want, rtol=1e-12, atol=1e-15, err_msg=f"{who}: {name}")


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"max_features": 0.5, "bootstrap": True},
        {"contamination": 0.1, "max_samples": 64},
        {"max_samples": 1},  # a zero denominator: every score is -0.5
    ],
    ids=["defaults", "feature-subsets", "contamination", "one-sample"],
)
def test_parity_on_breast_cancer(ir_predict: Callable, kw: dict[str, Any]) -> None:
    x = load_breast_cancer().data
    x_fit = x.copy()
    x_fit[np.random.default_rng(0).random(x.shape) < 0.05] = np.nan  # NaN in fit: learnt NaN sides
    model = IsolationForest(n_estimators=50, random_state=0, **kw).fit(x_fit)
    ir = to_ir(model)
    assert (ir["task"], ir["link"], ir["isolation"]["offset"]) == ("outlier", "isolation", model.offset_)
    rows = scoring_rows(x, ir)
    compare(reference.predict(ir, rows), model, rows, "reference")
    compare(ir_predict(ir, rows), model, rows, "binary")
    if kw.get("max_samples") == 1:
        assert set(model.score_samples(rows)) == {-0.5}
    else:
        assert (model.predict(rows) == -1).any()
        assert (model.predict(rows) == 1).any()


def test_the_binary_declares_the_three_outputs(tmp_path: Any) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    model = IsolationForest(n_estimators=5, random_state=0).fit(x)
    frame = pa.table({name: x[:, j] for j, name in enumerate("abc")})
    loaded = Model.load(compile(model, tmp_path / "iforest.so", features=["a", "b", "c"], reference=frame))
    assert loaded.info["task"] == "other"
    assert [(f["name"], f["type"]) for f in loaded.info["outputs"]] == [
        ("score_samples", "float64"),
        ("decision_function", "float64"),
        ("predict", "int64"),
    ]
    assert loaded.info["metadata"]["estimator"] == "IsolationForest"
    # The drift reference holds the inputs and both scores (predict is a label, not a score).
    scores = loaded.info["drift_reference"]["scores"]
    assert [s["name"] for s in scores] == ["score_samples", "decision_function"]
    assert sum(scores[0]["counts"]) == 300
    out = loaded.predict([{"a": 0.0, "b": 0.0, "c": 0.0}, {"a": 50.0, "b": -50.0, "c": 50.0}])
    assert out.column("predict").to_pylist() == [1, -1]


def test_an_unfitted_forest_is_refused() -> None:
    with pytest.raises(CompileError, match=r"^the IsolationForest is not fitted; call fit\(\) before compiling it$"):
        to_ir(IsolationForest())
