"""Loading model binaries: info, schemas, SHA-256, and every way a binary is refused."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from streamml import Model, ModelLoadError
from streamml.testing import LIBRARY_SUFFIX


def test_rust_sdk_binary_describes_itself(s1: Model, s1_path: Path) -> None:
    info = s1.info
    assert (info["name"], info["version"], info["task"], info["framework"]) == (
        "s1_logistic",
        "1.0.0",
        "binary",
        "rust-sdk",
    )
    assert info["abi_version"] == 1
    assert s1.input_schema == pa.schema([pa.field(f"x{i}", pa.float64(), nullable=False) for i in range(32)])
    assert s1.output_schema == pa.schema(
        [pa.field("probability", pa.float64(), nullable=False), pa.field("label", pa.int64(), nullable=False)]
    )
    assert s1.path == str(s1_path)
    assert "s1_logistic" in repr(s1)


def test_c_binary_describes_itself(linear: Model) -> None:
    assert (linear.name, linear.version, linear.info["framework"], linear.info["task"]) == (
        "c_linear",
        "1.0.0",
        "c",
        "regression",
    )
    assert [(f.name, f.nullable) for f in linear.input_schema] == [("x0", False), ("x1", False), ("x2", True)]
    assert linear.output_schema.names == ["score"]


def test_sha256_is_the_file_hash(s1: Model, s1_path: Path) -> None:
    assert s1.sha256 == hashlib.sha256(s1_path.read_bytes()).hexdigest()


def test_expected_sha256_is_enforced(s1_path: Path) -> None:
    digest = hashlib.sha256(s1_path.read_bytes()).hexdigest()
    assert Model.load(s1_path, sha256=digest.upper()).sha256 == digest
    wrong = "0" * 64
    with pytest.raises(ModelLoadError, match=re.escape(f"'{s1_path}'")) as e:
        Model.load(s1_path, sha256=wrong)
    assert f"sha256 is {digest}, expected {wrong}" in str(e.value)


def test_a_replaced_file_runs_the_new_code(tmp_path: Path, c_models: dict[str, Path]) -> None:
    # The loader dlopens a content-addressed copy of the hashed bytes, so a
    # file replaced at the same path is not served from the old mapping.
    path = tmp_path / f"model{LIBRARY_SUFFIX}"
    shutil.copy(c_models["linear_model"], path)
    assert Model.load(path).name == "c_linear"
    path.unlink()
    shutil.copy(c_models["sleepy"], path)
    again = Model.load(path)
    assert again.name == "sleepy"
    assert again.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.so"
    with pytest.raises(ModelLoadError, match=re.escape(f"cannot load model binary '{path}': cannot read the file")):
        Model.load(path)


def test_not_a_shared_library(tmp_path: Path) -> None:
    path = tmp_path / "model.so"
    path.write_text("this is a text file, not a shared library\n")
    expected = f"'{path}': not a well-formed shared library for this machine: it does not start with an ELF header"
    with pytest.raises(ModelLoadError, match=re.escape(expected)):
        Model.load(path)


def test_library_without_entry_point(c_models: dict[str, Path]) -> None:
    path = c_models["no_entry_point"]
    with pytest.raises(ModelLoadError, match=re.escape(f"'{path}': the library does not export `streamml_model_init`")):
        Model.load(path)


def test_abi_version_the_host_does_not_speak(c_models: dict[str, Path]) -> None:
    path = c_models["abi_v2_only"]
    with pytest.raises(ModelLoadError) as e:
        Model.load(path)
    assert str(e.value) == (
        f"cannot load model binary '{path}': the binary does not speak streamml ABI v1: "
        "this binary speaks streamml ABI v2 only"
    )


def test_init_failure_carries_the_binary_message(c_models: dict[str, Path]) -> None:
    with pytest.raises(ModelLoadError, match=r"init failed with status 3: license file /etc/model.lic not found"):
        Model.load(c_models["init_fails"])


def test_invalid_info_document(c_models: dict[str, Path]) -> None:
    path = c_models["bad_info"]
    with pytest.raises(
        ModelLoadError, match=re.escape(f"'{path}': the binary's info is invalid: info is not valid JSON")
    ):
        Model.load(path)


def test_load_errors_are_streamml_errors(tmp_path: Path) -> None:
    from streamml import StreammlError

    with pytest.raises(StreammlError):
        Model.load(tmp_path / "nope.so")
