"""`streamml compile`: the API, the CLI, the binary format, the drift reference, bad input."""

from __future__ import annotations

import hashlib
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from streamml import CompileError, Model
from streamml.cli import main
from streamml.compile import FOOTER_LEN, FOOTER_MAGIC, compile, evaluator_path, host_target, to_ir
from streamml.compile.drift import numeric_counts
from streamml_dev.workloads import FEATURE_NAMES, r1_data


@pytest.fixture(scope="module")
def r1_small() -> tuple[np.ndarray, np.ndarray]:
    return r1_data(5_000, seed=11)


@pytest.fixture(scope="module")
def logistic(r1_small: tuple[np.ndarray, np.ndarray]) -> LogisticRegression:
    x, y = r1_small
    return LogisticRegression(max_iter=500).fit(x, y)


def test_binary_is_the_evaluator_plus_the_ir(tmp_path: Path, logistic: LogisticRegression) -> None:
    path = compile(logistic, tmp_path / "lr.so", name="lr", version="7", features=list(FEATURE_NAMES))
    data = path.read_bytes()
    evaluator = evaluator_path().read_bytes()
    assert data.startswith(evaluator)
    assert data.endswith(FOOTER_MAGIC)
    size = int.from_bytes(data[-16:-8], "little")
    payload = data[-FOOTER_LEN - size : -FOOTER_LEN]
    assert data[-FOOTER_LEN:-16] == hashlib.sha256(payload).digest()
    assert len(data) == len(evaluator) + size + FOOTER_LEN
    ir = json.loads(payload)
    assert (ir["name"], ir["model_version"], ir["framework"]) == ("lr", "7", "scikit-learn")
    model = Model.load(path)
    assert model.sha256 == hashlib.sha256(data).hexdigest()
    assert (model.name, model.version, model.info["task"]) == ("lr", "7", "binary")
    assert model.input_schema.names == list(FEATURE_NAMES)


def test_compiled_model_runs_without_the_training_framework(tmp_path: Path, logistic: LogisticRegression) -> None:
    path = compile(logistic, tmp_path / "lr.so", features=list(FEATURE_NAMES))
    x, _ = r1_data(100, seed=3)
    expected = logistic.predict_proba(x)[:, 1]
    script = f"""
import sys
for blocked in ("sklearn", "lightgbm", "xgboost", "scipy"):
    sys.modules[blocked] = None  # any import of them now fails
import numpy as np, pyarrow as pa
from streamml import Model
x = np.load({str(tmp_path / "x.npy")!r})
batch = pa.record_batch([pa.array(x[:, i]) for i in range(32)], names=[f"x{{i}}" for i in range(32)])
np.save({str(tmp_path / "p.npy")!r}, Model.load({str(path)!r}).predict(batch).column("probability").to_numpy())
assert "sklearn" not in [m.split(".")[0] for m in sys.modules if sys.modules[m] is not None]
"""
    np.save(tmp_path / "x.npy", x)
    subprocess.run([sys.executable, "-c", script], check=True)
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), expected, rtol=1e-9)


def test_unsupported_objects_list_what_is_supported(tmp_path: Path, r1_small: tuple[np.ndarray, np.ndarray]) -> None:
    with pytest.raises(CompileError, match=r"cannot compile a builtins.dict; supported: LightGBM"):
        compile({"not": "a model"}, tmp_path / "m.so")
    x, y = r1_small
    with pytest.raises(CompileError, match=r"SVC.*DecisionTreeClassifier"):
        to_ir(SVC().fit(x[:200], y[:200]))


def test_corrupted_and_unknown_model_files(tmp_path: Path) -> None:
    garbage = tmp_path / "model.bin"
    garbage.write_bytes(b"\x00\x01 not a model")
    with pytest.raises(CompileError, match=f"model file {garbage} is neither a LightGBM"):
        compile(garbage, tmp_path / "m.so")
    with pytest.raises(CompileError, match="does not exist"):
        compile(tmp_path / "missing.txt", tmp_path / "m.so")


def test_feature_count_mismatch(logistic: LogisticRegression, tmp_path: Path) -> None:
    with pytest.raises(CompileError, match=r"32.*31|31.*32"):
        compile(logistic, tmp_path / "m.so", features=[f"f{i}" for i in range(31)])


def test_missing_evaluator_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STREAMML_EVALUATOR", str(tmp_path / "nope.so"))
    target = host_target()
    with pytest.raises(CompileError, match=rf"evaluator for {target} \(.*nope.so\) is missing; .*run `make models`"):
        evaluator_path()


def test_reference_distribution_is_frozen_into_the_info(
    tmp_path: Path, r1_small: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = r1_small
    tree = DecisionTreeClassifier(max_depth=4, random_state=0).fit(x, y)
    ref = x.copy()
    ref[:50, 3] = np.nan
    table = pa.table({name: ref[:, i] for i, name in enumerate(FEATURE_NAMES)})
    pq.write_table(table, tmp_path / "ref.parquet")
    path = compile(tree, tmp_path / "tree.so", features=list(FEATURE_NAMES), reference=tmp_path / "ref.parquet")
    drift = Model.load(path).info["drift_reference"]
    assert drift["rows"] == 5_000
    assert [f["name"] for f in drift["features"]] == list(FEATURE_NAMES)
    x3 = drift["features"][3]
    assert x3["kind"] == "numeric"
    assert sum(x3["counts"]) == 5_000
    assert x3["counts"][-1] == 50, "50 missing values"
    assert x3["counts"][0] == 0, "no underflow in the reference itself"
    assert x3["counts"][-2] == 0, "no overflow in the reference itself"
    assert x3["counts"] == numeric_counts(ref[:, 3], x3["edges"])
    # Exact: the edges travel through the binary's JSON parser bit for bit.
    assert x3["edges"][0] == np.nanmin(ref[:, 3])
    assert x3["edges"][-1] == np.nanmax(ref[:, 3])
    (score,) = drift["scores"]
    assert score["name"] == "probability"
    assert sum(score["counts"]) == 5_000
    expected = tree.predict_proba(ref)[:, 1]
    assert score["counts"] == numeric_counts(expected, score["edges"])


def test_reference_must_hold_the_features(tmp_path: Path, logistic: LogisticRegression) -> None:
    pq.write_table(pa.table({"x0": [1.0]}), tmp_path / "ref.parquet")
    with pytest.raises(CompileError, match=r"reference data lacks the model's feature\(s\) \['x1'"):
        compile(logistic, tmp_path / "m.so", features=list(FEATURE_NAMES), reference=tmp_path / "ref.parquet")


def test_cli_compiles_a_pickle_and_inspect_shows_it(
    tmp_path: Path, r1_small: tuple[np.ndarray, np.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    x, y = r1_small
    tree = DecisionTreeClassifier(max_depth=5, random_state=0).fit(x, y)
    (tmp_path / "tree.pkl").write_bytes(pickle.dumps(tree))
    out = tmp_path / "tree.so"
    assert main(["compile", str(tmp_path / "tree.pkl"), "-o", str(out), "--name", "t", "--version", "3"]) == 0
    printed = capsys.readouterr().out
    assert f"-> {out}" in printed
    assert "(scikit-learn, binary), 32 features, 1 trees, max depth 5" in printed
    assert main(["inspect", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "framework  scikit-learn" in shown
    assert "meta trees: 1" in shown
    assert "meta max_depth: 5" in shown
    np.testing.assert_allclose(
        Model.load(out)
        .predict(pa.record_batch([pa.array(x[:, i]) for i in range(32)], names=list(FEATURE_NAMES)))
        .column("probability")
        .to_numpy(),
        tree.predict_proba(x)[:, 1],
        rtol=1e-12,
    )


def test_cli_compile_error_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("tree\nnot really a lightgbm model\n")
    done = subprocess.run(
        [sys.executable, "-m", "streamml.cli", "compile", str(bad), "-o", str(tmp_path / "m.so")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("streamml compile: error:")
    assert str(bad) in done.stderr
