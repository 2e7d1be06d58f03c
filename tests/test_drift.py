"""Drift counters (Rust core through streamml.drift): counts, statistics, merging, errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from scipy.spatial.distance import jensenshannon
from sklearn.linear_model import LogisticRegression

from streamml import InputError, Model
from streamml.compile import compile
from streamml.compile.drift import numeric_counts
from streamml.drift import EPSILON, DriftMonitor, Thresholds

NAMES = [f"x{i}" for i in range(4)]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Model, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(5000, 4))
    y = (x[:, 0] - x[:, 1] > 0).astype(int)
    out = tmp_path_factory.mktemp("drift")
    ref = pa.table({n: x[:, j] for j, n in enumerate(NAMES)})
    path = compile(LogisticRegression().fit(x, y), out / "m.so", features=NAMES, reference=ref)
    return Model.load(path), x


def batch(x: np.ndarray) -> pa.RecordBatch:
    return pa.record_batch([pa.array(x[:, j]) for j in range(x.shape[1])], names=NAMES)


def test_counts_equal_the_compile_time_binning(compiled: tuple[Model, np.ndarray]) -> None:
    model, _ = compiled
    monitor = DriftMonitor.from_model(model)
    rng = np.random.default_rng(1)
    x = rng.normal(loc=0.3, scale=1.5, size=(3000, 4))
    x[::17, 2] = np.nan
    inputs = batch(x)
    outputs = model.predict(inputs)
    monitor.observe(inputs, outputs)
    ref = {f["name"]: f for f in model.info["drift_reference"]["features"]}
    counts = monitor.counts()
    for j, name in enumerate(NAMES):
        assert counts[name] == numeric_counts(x[:, j], ref[name]["edges"]), name
    probability = outputs.column("probability").to_numpy()
    scores = {s["name"]: s for s in model.info["drift_reference"]["scores"]}
    assert counts["probability"] == numeric_counts(probability, scores["probability"]["edges"])
    assert sum(counts["x0"]) == 3000


def test_statistics_equal_hand_computed_values(compiled: tuple[Model, np.ndarray]) -> None:
    model, _ = compiled
    monitor = DriftMonitor.from_model(model)
    rng = np.random.default_rng(2)
    monitor.observe(batch(rng.normal(loc=0.5, size=(4000, 4))))
    by_name = {s["feature"]: s for s in monitor.stats()}
    ref = {f["name"]: f["counts"] for f in model.info["drift_reference"]["features"]}
    for name in NAMES:
        q = np.array(ref[name], dtype=float) / sum(ref[name])
        p = np.array(monitor.counts()[name], dtype=float) / 4000
        qf, pf = np.maximum(q, EPSILON), np.maximum(p, EPSILON)
        s = by_name[name]
        assert s["psi"] == pytest.approx(((pf - qf) * np.log(pf / qf)).sum(), rel=1e-12)
        assert s["kl"] == pytest.approx((pf * np.log(pf / qf)).sum(), rel=1e-12)
        assert s["js"] == pytest.approx(jensenshannon(p, q, base=2) ** 2, rel=1e-9)
        assert s["hellinger"] == pytest.approx(np.sqrt(1 - np.sqrt(p * q).sum()), rel=1e-9)
        assert s["status"] == Thresholds().status(s["psi"])
    assert by_name["x0"]["status"] == "significant"  # a shift of half a standard deviation


def test_no_drift_is_stable_and_rates_are_counted(compiled: tuple[Model, np.ndarray]) -> None:
    model, x = compiled
    monitor = DriftMonitor.from_model(model)
    monitor.observe(batch(x))
    stats = {s["feature"]: s for s in monitor.stats() if s["role"] == "feature"}
    assert all(s["psi"] == pytest.approx(0.0, abs=1e-12) and s["status"] == "stable" for s in stats.values())
    monitor.reset()
    odd = np.array([[np.nan, 100.0, -100.0, 0.0]] * 4)
    odd[0, 0] = 0.0
    monitor.observe(batch(odd))
    s = {r["feature"]: r for r in monitor.stats()}
    assert (s["x0"]["missing_rate"], s["x1"]["out_of_range_rate"], s["x2"]["out_of_range_rate"]) == (0.75, 1.0, 1.0)
    assert s["x3"]["out_of_range_rate"] == 0.0
    assert np.isnan(s["x0"]["new_category_rate"])


def test_two_workers_merged_equal_one(compiled: tuple[Model, np.ndarray]) -> None:
    model, _ = compiled
    x = np.random.default_rng(3).normal(size=(2000, 4))
    one, a = DriftMonitor.from_model(model), DriftMonitor.from_model(model)
    b = a.copy()
    one.observe(batch(x))
    a.observe(batch(x[:700]))
    b.observe(pa.table(batch(x[700:])))  # a table works too
    a.merge(b)
    assert a.counts() == one.counts()
    assert repr(a.stats()) == repr(one.stats())  # NaN rates compare equal as text


def test_pickles_with_its_counts(compiled: tuple[Model, np.ndarray]) -> None:
    model, x = compiled
    monitor = DriftMonitor.from_model(model)
    monitor.observe(batch(x[:100]))
    twin = pickle.loads(pickle.dumps(monitor))
    assert twin.counts() == monitor.counts()


def test_categorical_counts_other_and_new_category_rate() -> None:
    reference = {
        "version": 1,
        "rows": 4,
        "bins": 10,
        "scores": [],
        "features": [{"name": "c", "kind": "categorical", "categories": [1.0, 2.0], "counts": [2, 1, 1, 0]}],
    }
    monitor = DriftMonitor(reference)
    monitor.observe(pa.record_batch({"c": pa.array([1, 2, 2, 5, None], pa.int32())}))
    assert monitor.counts()["c"] == [1, 2, 1, 1]
    assert monitor.stats()[0]["new_category_rate"] == 0.2


def test_fit_sets_edges_from_data_at_run_time() -> None:
    monitor = DriftMonitor.fit(pa.table({"a": np.arange(100.0), "b": np.arange(100.0) * 2}), features=["a"], bins=4)
    assert [f["name"] for f in monitor.reference["features"]] == ["a"]
    monitor.observe(pa.table({"a": np.arange(100.0)}))
    assert monitor.counts()["a"] == [0, 25, 25, 25, 25, 0, 0]


def test_a_batch_without_a_feature_names_it_and_counts_nothing(compiled: tuple[Model, np.ndarray]) -> None:
    model, x = compiled
    monitor = DriftMonitor.from_model(model)
    bad = pa.record_batch({"x0": x[:5, 0], "x1": x[:5, 1], "x2": x[:5, 2]})
    with pytest.raises(InputError, match=r"drift: batch lacks column 'x3' of counter 'x3'"):
        monitor.observe(bad)
    assert all(sum(c) == 0 for c in monitor.counts().values())
    text = pa.record_batch({n: pa.array(["a"] * 2) for n in NAMES})
    with pytest.raises(InputError, match=r"column 'x0' is Utf8, not a numeric column"):
        monitor.observe(text)


def test_a_model_without_reference_is_refused(s1: Model) -> None:
    with pytest.raises(InputError, match=r"has no drift reference; compile it with `streamml compile --reference"):
        DriftMonitor.from_model(s1)


def test_a_bad_reference_names_the_entry(tmp_path: Path) -> None:
    bad = {
        "version": 1,
        "features": [{"name": "z", "kind": "numeric", "edges": [0.0, 1.0], "counts": [1]}],
        "scores": [],
    }
    with pytest.raises(InputError, match=r"reference of 'z' has 1 counts; its bins need 4"):
        DriftMonitor(bad)
