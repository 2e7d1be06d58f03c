"""streamml.mlflow against a real MLflow registry on a local SQLite backend store (no server)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pyarrow as pa
import pytest

import streamml.mlflow as smlflow
from streamml import Model, ModelLoadError
from streamml.lifecycle import ModelSlot, resolve
from streamml.mlflow import log_model, parse_uri
from streamml_dev.lifecycle import FEATURES, compile_versions, events


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Versions 1 and 2 of model 'fraud' logged and registered; alias champion -> 1."""
    root = tmp_path_factory.mktemp("mlflow")
    binaries = compile_versions(root / "binaries", ["1", "2"])
    old = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    try:
        experiment = mlflow.create_experiment("lifecycle", artifact_location=(root / "artifacts").as_uri())
        client = mlflow.MlflowClient()
        client.create_registered_model("fraud")
        for version in ("1", "2"):
            with mlflow.start_run(experiment_id=experiment):
                info = log_model(binaries[version], name="model")
            registered = mlflow.register_model(info.model_uri, "fraud")
            assert registered.version == version or str(registered.version) == version
        client.set_registered_model_alias("fraud", "champion", "1")
        yield binaries
    finally:
        mlflow.set_tracking_uri(old)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_registry_references_resolve_to_the_logged_binaries(registry: dict[str, Path]) -> None:
    champion = resolve("models:/fraud@champion")
    assert (champion.version, champion.sha256) == ("1", sha(registry["1"]))
    pinned = resolve("models:/fraud/2")
    assert (pinned.version, pinned.sha256) == ("2", sha(registry["2"]))
    assert pinned.path.read_bytes() == registry["2"].read_bytes()
    with pytest.raises(ModelLoadError, match=r"^cannot resolve 'models:/fraud@nope' in the MLflow registry"):
        resolve("models:/fraud@nope")
    with pytest.raises(ModelLoadError) as e:
        parse_uri("models:/fraud")
    assert str(e.value) == (
        "'models:/fraud' is not an MLflow model reference; expected models:/NAME@ALIAS or models:/NAME/VERSION"
    )


def test_pyfunc_predict_equals_model_predict(registry: dict[str, Path]) -> None:
    rows = events(200)
    frame = pd.DataFrame({f: [r[f] for r in rows] for f in FEATURES})
    for uri, version in (("models:/fraud@champion", "1"), ("models:/fraud/2", "2")):
        got = mlflow.pyfunc.load_model(uri).predict(frame)
        want = Model.load(registry[version]).predict(pa.Table.from_pandas(frame)).to_pandas()
        pd.testing.assert_frame_equal(got, want, check_exact=True)


def test_a_slot_follows_the_registry_alias(registry: dict[str, Path]) -> None:
    client = mlflow.MlflowClient()
    slot = ModelSlot("models:/fraud@champion")
    assert slot.acquire().version == "1"
    client.set_registered_model_alias("fraud", "champion", "2")
    try:
        assert slot.refresh() is True
        assert (slot.acquire().version, slot.acquire().sha256) == ("2", sha(registry["2"]))
    finally:
        client.set_registered_model_alias("fraud", "champion", "1")
    assert slot.refresh() is True  # rolled back by moving the alias back
    assert slot.acquire().version == "1"



def test_the_trust_list_applies_to_registry_binaries(registry: dict[str, Path]) -> None:
    with pytest.raises(ModelLoadError, match=r"its sha256 [0-9a-f]{64} is not in the trusted_sha256 list \(1 digest"):
        ModelSlot("models:/fraud/1", trusted_sha256=[sha(registry["2"])])
    assert ModelSlot("models:/fraud/2", trusted_sha256=[sha(registry["2"])]).acquire().version == "2"


def test_a_refused_download_leaves_nothing_and_the_rest_go_at_exit(registry: dict[str, Path], tmp_path: Path) -> None:
    root = Path(mlflow.get_tracking_uri().removeprefix("sqlite:///")).parent
    mlflow.MlflowClient().create_registered_model("tampered")
    before = set((root / "artifacts").rglob(registry["1"].name))
    with mlflow.start_run(experiment_id=mlflow.get_experiment_by_name("lifecycle").experiment_id):
        info = log_model(registry["1"], name="model")
    mlflow.register_model(info.model_uri, "tampered")
    stored = sorted(set((root / "artifacts").rglob(registry["1"].name)) - before)
    assert len(stored) == 1
    stored[0].write_bytes(stored[0].read_bytes() + b"\0")  # changed after it was logged
    refused = r"^version 1 of MLflow model 'tampered': the downloaded binary '.*' has sha256"
    with pytest.raises(ModelLoadError, match=refused):
        resolve("models:/tampered/1")
    assert smlflow._download_root is not None
    assert [p.name for p in smlflow._download_root.iterdir() if p.name.startswith("tampered-")] == []

    # A process's downloads are removed when it exits.
    script = (
        "import sys, streamml.mlflow as m; r = m.resolve('models:/fraud@champion'); "
        "print(m._download_root); sys.exit(0 if r.path.is_file() else 1)"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow.get_tracking_uri(), "TMPDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert Path(done.stdout.strip()).parent == tmp_path
    assert list(tmp_path.iterdir()) == []
