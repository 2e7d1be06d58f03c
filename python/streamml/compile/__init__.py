"""Compile trained models into model binaries: ``streamml.compile.compile(model, "out.so")``.

A converter turns the model (LightGBM, XGBoost, scikit-learn) into the IR
(``docs/ir.md``); the IR is appended to a copy of the prebuilt evaluator
library that ships with streamml. The result is one file, a model binary of
ABI v1, that loads with no Python and no training framework present.
Compiling needs no compiler: only this package.

Examples:
    >>> import numpy as np, tempfile, os
    >>> from sklearn.linear_model import LinearRegression
    >>> from streamml import Model
    >>> from streamml.compile import compile
    >>> x = np.random.default_rng(0).normal(size=(100, 2))
    >>> lr = LinearRegression().fit(x, x @ [1.0, 2.0] + 3.0)
    >>> path = compile(lr, os.path.join(tempfile.mkdtemp(), "lr.so"), name="lr", features=["a", "b"])
    >>> [round(v, 9) for v in Model.load(path).predict([{"a": 1.0, "b": 1.0}]).column("prediction").to_pylist()]
    [6.0]
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any

from streamml.errors import CompileError

#: The last 8 bytes of a model binary: footer version 2 (``docs/ir.md``, "The binary").
FOOTER_MAGIC = b"SMLIR\0v2"
#: The footer after the IR: its SHA-256 (32 bytes), its length (u64, little-endian), the magic.
FOOTER_LEN = 32 + 8 + 8
SUPPORTED_FRAMEWORKS = (
    "LightGBM (Booster, LGBMModel, text or JSON model files), "
    "XGBoost (Booster, XGBModel, .json or .ubj files), scikit-learn estimators (and IsolationForest), "
    "CatBoost (CatBoostClassifier, CatBoostRegressor, .cbm or JSON files), "
    "streamml.models.FastFrugalTreeClassifier, ONNX-ML graphs (.onnx files, onnx.ModelProto)"
)


#: The targets ``compile(..., target=...)`` writes binaries for (a wheel carries evaluators for
#: linux-x86_64 and linux-aarch64; a build from source carries this machine's).
TARGETS = ("linux-x86_64", "linux-aarch64", "darwin-x86_64", "darwin-arm64")


def host_target() -> str:
    """This machine's target, e.g. ``linux-x86_64``: the default of ``compile(..., target=...)``."""
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64" if sys.platform == "linux" else "arm64"}.get(machine, machine)
    return f"{sys.platform}-{machine}"


def evaluator_path(target: str | None = None) -> Path:
    """The prebuilt evaluator library for ``target`` (default: this machine).

    ``$STREAMML_EVALUATOR`` overrides the path for this machine's target.

    Raises:
        CompileError: no evaluator for that target ships with this installation; the message
            lists those that do.
    """
    target = target or host_target()
    if target not in TARGETS:
        msg = f"unknown target {target!r}; expected one of {', '.join(TARGETS)}"
        raise CompileError(msg)
    env = os.environ.get("STREAMML_EVALUATOR")
    if env and target == host_target():
        path = Path(env)
    else:
        suffix = ".dylib" if target.startswith("darwin") else ".so"
        path = _EVALUATORS / target / f"libstreamml_evaluator{suffix}"
    if not path.is_file():
        shipped = sorted(p.name for p in _EVALUATORS.glob("*") if p.is_dir() and any(p.iterdir()))
        msg = (
            f"the streamml evaluator for {target} ({path}) is missing; this installation carries "
            f"{', '.join(shipped) or 'none'}: install a streamml wheel (they carry linux-x86_64 and "
            "linux-aarch64), or in a checkout run `make models`"
        )
        raise CompileError(msg)
    return path


_EVALUATORS = Path(__file__).resolve().parent.parent / "_evaluator"


def to_ir(model: Any, *, features: list[str] | None = None) -> dict[str, Any]:
    """Convert a trained model (object or model file) into the IR."""
    if isinstance(model, (str, os.PathLike)):
        return _file_to_ir(Path(model), features)
    if any(cls.__module__ == "streamml.models.fft" for cls in type(model).__mro__):
        from streamml.compile import from_fft

        return from_fft.to_ir(model, features=features)
    # By the class or any base class, so users' subclasses of the frameworks' classes work.
    modules = {cls.__module__.split(".")[0] for cls in type(model).__mro__}
    module = next((m for m in ("lightgbm", "xgboost", "catboost", "sklearn", "onnx") if m in modules), None)
    if module == "onnx":
        from streamml.compile import from_onnx

        return from_onnx.to_ir(model, features=features)
    if module == "lightgbm":
        from streamml.compile import from_lightgbm

        return from_lightgbm.to_ir(model, features=features)
    if module == "xgboost":
        from streamml.compile import from_xgboost

        return from_xgboost.to_ir(model, features=features)
    if module == "catboost":
        from streamml.compile import from_catboost

        return from_catboost.to_ir(model, features=features)
    if module == "sklearn" and any(cls.__name__ == "IsolationForest" for cls in type(model).__mro__):
        from streamml.compile import from_isolation_forest

        return from_isolation_forest.to_ir(model, features=features)
    if module == "sklearn":
        from streamml.compile import from_sklearn

        return from_sklearn.to_ir(model, features=features)
    msg = f"cannot compile a {type(model).__module__}.{type(model).__name__}; supported: {SUPPORTED_FRAMEWORKS}"
    raise CompileError(msg)


def _file_to_ir(path: Path, features: list[str] | None) -> dict[str, Any]:
    if not path.is_file():
        msg = f"model file {path} does not exist"
        raise CompileError(msg)
    with path.open("rb") as f:
        head = f.read(1 << 20)  # enough to see XGBoost's "learner" key or LightGBM's header
    catboost_json = head[:1] == b"{" and (b'"oblivious_trees"' in head or b'"features_info"' in head[:256])
    if path.suffix == ".cbm" or head.startswith(b"CBM1") or catboost_json:
        from streamml.compile import from_catboost

        return from_catboost.to_ir(path, features=features)
    if path.suffix == ".onnx":
        from streamml.compile import from_onnx

        return from_onnx.to_ir(path, features=features)
    if path.suffix == ".ubj" or (head[:1] == b"{" and b'"learner"' in head):
        from streamml.compile import from_xgboost

        return from_xgboost.to_ir(path, features=features)
    if head.startswith(b"tree") or head[:1] == b"{":  # LightGBM text, or its JSON dump
        from streamml.compile import from_lightgbm

        return from_lightgbm.to_ir(path, features=features)
    msg = (
        f"model file {path} is neither a LightGBM (text/JSON), an XGBoost (JSON/UBJSON), "
        "a CatBoost (.cbm/JSON) nor an ONNX (.onnx) model"
    )
    raise CompileError(msg)


def write_binary(ir: dict[str, Any], output: str | os.PathLike[str], *, target: str | None = None) -> Path:
    """Write a model binary for ``target`` (default: this machine): the evaluator, then the IR and its footer.

    The footer is the IR's SHA-256, its length and the magic.
    """
    output = Path(output)
    payload = json.dumps(ir, separators=(",", ":"), allow_nan=False).encode()
    tmp = output.with_name(f".{output.name}.tmp")
    shutil.copyfile(evaluator_path(target), tmp)
    with tmp.open("ab") as f:
        f.write(payload)
        f.write(hashlib.sha256(payload).digest())
        f.write(struct.pack("<Q", len(payload)))
        f.write(FOOTER_MAGIC)
    tmp.chmod(0o755)
    tmp.replace(output)
    return output


def compile(
    model: Any,
    output: str | os.PathLike[str],
    *,
    name: str | None = None,
    version: str | None = None,
    features: list[str] | None = None,
    reference: Any = None,
    verify: bool = True,
    target: str | None = None,
) -> Path:
    """Compile a trained model into a model binary and return its path.

    Args:
        model: a LightGBM / XGBoost / scikit-learn model object, or a model file.
        output: where to write the binary.
        name: the model's name (default: the converter's).
        version: the model's version string.
        features: input names, in the model's feature order (default: the model's own).
        reference: data (a path to Parquet/CSV/Arrow IPC, or anything with
            ``__arrow_c_stream__``/``__arrow_c_array__``) whose distribution is frozen into the
            binary as the drift reference.
        verify: load the written binary and check it describes the model (for another
            target than this machine's, the binary is not loaded: its IR is checked).
        target: the platform the binary runs on (:data:`TARGETS`; default: this machine).

    Raises:
        CompileError: the model is not supported, the file is corrupt, or
            ``features`` does not match the model.
    """
    ir = to_ir(model, features=features)
    if name is not None:
        ir["name"] = name
    if version is not None:
        ir["model_version"] = version
    foreign = target is not None and target != host_target()
    if reference is not None:
        # Score the reference with a binary of this machine, then freeze both
        # distributions into the final binary.
        from streamml.compile import drift
        from streamml.model import Model

        table = drift.read_table(reference)
        x = drift.feature_matrix(table, list(ir["features"]), ir.get("input_types"))
        with tempfile.TemporaryDirectory(prefix="streamml-compile-") as scratch:
            local = write_binary(ir, Path(scratch) / Path(output).name)
            scores = drift.score_columns(Model.load(local).predict(table.select(list(ir["features"]))))
        ir["drift_reference"] = drift.reference_distribution(ir, x, scores)
    path = write_binary(ir, output, target=target)
    if verify and foreign:
        data = path.read_bytes()
        size = struct.unpack("<Q", data[-16:-8])[0]
        written = data[-FOOTER_LEN - size : -FOOTER_LEN]
        if hashlib.sha256(written).digest() != data[-FOOTER_LEN:-16] or json.loads(written) != json.loads(
            json.dumps(ir, allow_nan=False)
        ):
            msg = f"the binary {path} does not hold the model's IR"
            raise CompileError(msg)
    elif verify:
        from streamml.model import Model

        loaded = Model.load(path)
        if loaded.input_schema.names != list(ir["features"]):
            msg = f"the binary {path} does not declare the model's features"
            raise CompileError(msg)
    return path


def sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file, as hosts check it (hex)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


__all__ = ["TARGETS", "compile", "evaluator_path", "host_target", "sha256", "to_ir", "write_binary"]
