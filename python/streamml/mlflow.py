"""MLflow: a model binary as an MLflow model, and ``models:/`` references resolved by MLflow.

``pip install 'streamml[mlflow]'``. :func:`log_model` logs a compiled binary as an MLflow
model with a ``python_function`` flavour, so ``mlflow.pyfunc.load_model(uri).predict(df)``
scores a pandas frame with it (equal to :meth:`streamml.Model.predict`). Registering and
aliasing it is MLflow's own API (``MlflowClient().create_registered_model``,
``mlflow.register_model``, ``MlflowClient().set_registered_model_alias``). Hosts then take
``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` wherever they take a model
(:mod:`streamml.lifecycle`); :func:`resolve` asks the registry MLflow is configured for
(``MLFLOW_TRACKING_URI`` / ``MLFLOW_REGISTRY_URI``, or ``mlflow.set_registry_uri``; a local
SQLite backend store such as ``sqlite:///mlflow.db`` needs no server) which version the alias
names, downloads that version's binary once, and checks it against the SHA-256 recorded when
it was logged.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

from streamml._extras import require

require("mlflow", "streamml.mlflow")  # without it: one line naming streamml[mlflow]

import mlflow  # noqa: E402
import mlflow.pyfunc  # noqa: E402

from streamml import _streamml  # noqa: E402
from streamml.errors import ModelLoadError  # noqa: E402
from streamml.lifecycle import MLFLOW_PREFIX, Resolved  # noqa: E402
from streamml.model import Model  # noqa: E402

#: The key of the MLflow model's metadata where streamml records the binary.
METADATA_KEY = "streamml"

#: Arrow types as MLflow column types, for the model signature.
_MLFLOW_TYPES = {
    "double": "double",
    "float": "float",
    "int64": "long",
    "int32": "integer",
    "bool": "boolean",
    "string": "string",
    "large_string": "string",
}


class BinaryPyfunc(mlflow.pyfunc.PythonModel):
    """The ``python_function`` flavour of a logged binary: ``predict(df)`` is ``Model.predict``.

    Logged as code (``_mlflow_pyfunc.py``, MLflow's models-from-code), not as a pickle: loading
    the MLflow model runs no pickled bytes, and the binary is loaded pinned to the SHA-256
    recorded in the model's config when it was logged.
    """

    # No type hints on purpose: MLflow reads `predict`'s hints as the input schema; the schema is the
    # binary's declared one, written as the signature by log_model. (MLflow then says once, at class
    # creation, to add hints; that advice does not apply here.)

    def load_context(self, context):
        """Load the binary pinned to the SHA-256 recorded when it was logged."""
        self._model = Model.load(context.artifacts["binary"], sha256=context.model_config["sha256"])

    def predict(self, context, model_input, params=None):
        """Score a pandas frame (or anything :meth:`streamml.Model.predict` takes); a pandas frame out."""
        import pyarrow as pa

        data = model_input
        if hasattr(model_input, "to_dict") and not hasattr(model_input, "__arrow_c_stream__"):
            data = pa.Table.from_pandas(model_input, preserve_index=False)
        return self._model.predict(data).to_pandas()


#: The models-from-code file that builds :class:`BinaryPyfunc` when MLflow loads a logged binary.
PYFUNC_CODE = Path(__file__).with_name("_mlflow_pyfunc.py")


def _signature(model: Model) -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    def schema(arrow: Any) -> Any:
        cols = [(f.name, _MLFLOW_TYPES.get(str(f.type))) for f in arrow]
        if any(t is None for _, t in cols):
            return None
        return Schema([ColSpec(t, n) for n, t in cols])

    inputs, outputs = schema(model.input_schema), schema(model.output_schema)
    return None if inputs is None else ModelSignature(inputs=inputs, outputs=outputs)


def log_model(
    binary: str | os.PathLike[str],
    name: str = "model",
    *,
    registered_model_name: str | None = None,
    pip_requirements: list[str] | None = None,
    **kwargs: Any,
) -> Any:
    """Log a model binary as an MLflow model in the active run (one is started if none is).

    The binary is loaded first (so a file that would not load is not logged), copied into
    the model's artifacts, and its SHA-256, name and version are recorded in the MLflow
    model's metadata under ``streamml``.

    Args:
        binary: the model binary.
        name: the logged model's name (MLflow's ``name`` of ``log_model``).
        registered_model_name: also register it under this name (MLflow's own argument).
        pip_requirements: the loading environment's requirements (default: this streamml).
        **kwargs: passed to ``mlflow.pyfunc.log_model``.

    Returns:
        MLflow's ``ModelInfo`` (``model_uri``, ``registered_model_version``...).
    """
    path = os.fspath(binary)
    model = Model.load(path)
    if pip_requirements is None:
        pip_requirements = [f"streamml=={_streamml.__version__}"]
    kwargs.setdefault("signature", _signature(model))
    meta = {"binary": os.path.basename(path), "sha256": model.sha256, "name": model.name, "version": model.version}
    with warnings.catch_warnings():
        # The signature comes from the binary's declared schema; MLflow's advice to add an input
        # example (from which it would infer one) does not apply.
        warnings.filterwarnings("ignore", message=".*An input example was not provided", category=UserWarning)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(PYFUNC_CODE),
            model_config={"sha256": model.sha256},
            artifacts={"binary": path},
            pip_requirements=pip_requirements,
            registered_model_name=registered_model_name,
            metadata={METADATA_KEY: meta},
            **kwargs,
        )


def parse_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``models:/NAME@ALIAS`` -> ``(NAME, ALIAS, None)``; ``models:/NAME/VERSION`` -> ``(NAME, None, VERSION)``.

    Raises:
        ModelLoadError: the URI has neither form.

    Examples:
        >>> parse_uri("models:/fraud@champion"), parse_uri("models:/fraud/3")
        (('fraud', 'champion', None), ('fraud', None, '3'))
    """
    rest = uri[len(MLFLOW_PREFIX) :] if uri.startswith(MLFLOW_PREFIX) else ""
    if "@" in rest and "/" not in rest:
        name, alias = rest.split("@", 1)
        if name and alias:
            return name, alias, None
    elif rest.count("/") == 1:
        name, version = rest.split("/")
        if name and version.isdigit():
            return name, None, version
    msg = f"'{uri}' is not an MLflow model reference; expected models:/NAME@ALIAS or models:/NAME/VERSION"
    raise ModelLoadError(msg)


#: Versions already downloaded: (registry URI, name, version) -> the resolution (versions never change).
_downloaded: dict[tuple[str, str, str], Resolved] = {}
_download_lock = threading.Lock()
#: The process's one directory of downloaded versions (made on the first download, removed at exit).
_download_root: Path | None = None


def _download_dir(name: str, version: str) -> Path:
    """A fresh directory for one version's download, under the process's download root."""
    global _download_root
    if _download_root is None:
        _download_root = Path(tempfile.mkdtemp(prefix="streamml-mlflow-"))
        atexit.register(shutil.rmtree, _download_root, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{name}-{version}-", dir=_download_root))


def resolve(uri: str, *, max_bytes: int | None = None) -> Resolved:
    """Resolve ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` with MLflow's client.

    The alias is asked of the registry on every call; a version's binary is downloaded once
    per process and checked against the SHA-256 recorded by :func:`log_model`.

    Raises:
        ModelLoadError: the registry has no such model, alias or version, the version is not
            a streamml binary logged by :func:`log_model`, or its bytes do not match.
    """
    from mlflow.exceptions import MlflowException

    name, alias, version = parse_uri(uri)
    client = mlflow.MlflowClient()
    try:
        mv = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version)
    except MlflowException as e:
        msg = f"cannot resolve '{uri}' in the MLflow registry {mlflow.get_registry_uri()!r}: {e.message}"
        raise ModelLoadError(msg) from None
    key = (mlflow.get_registry_uri(), name, str(mv.version))
    with _download_lock:
        found = _downloaded.get(key)
        if found is None or not found.path.is_file():
            found = _download(uri, name, str(mv.version), max_bytes)
            _downloaded[key] = found
    return Resolved(uri, found.path, found.sha256, found.version)


def _download(uri: str, name: str, version: str, max_bytes: int | None) -> Resolved:
    """Download one version into its own directory; a version that is refused leaves nothing behind."""
    into = _download_dir(name, version)
    try:
        return _check_download(uri, name, version, max_bytes, into)
    except BaseException:
        shutil.rmtree(into, ignore_errors=True)
        raise


def _check_download(uri: str, name: str, version: str, max_bytes: int | None, into: Path) -> Resolved:
    from mlflow.models import Model as MlflowModel

    artifact = f"{MLFLOW_PREFIX}{name}/{version}"
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=artifact, dst_path=str(into)))
    meta = (MlflowModel.load(str(local)).metadata or {}).get(METADATA_KEY)
    if not isinstance(meta, dict) or "binary" not in meta or "sha256" not in meta:
        msg = (
            f"version {version} of MLflow model '{name}' ({uri}) is not a streamml model binary: its MLmodel "
            f"has no '{METADATA_KEY}' metadata; log binaries with streamml.mlflow.log_model"
        )
        raise ModelLoadError(msg)
    binary = local / "artifacts" / os.path.basename(str(meta["binary"]))
    path, sha256, _ = _streamml.resolve_reference(str(binary), max_bytes)
    if sha256 != meta["sha256"]:
        msg = (
            f"version {version} of MLflow model '{name}': the downloaded binary '{path}' has sha256 {sha256}, "
            f"but {meta['sha256']} was logged; the artifact was changed after logging, do not load it"
        )
        raise ModelLoadError(msg)
    return Resolved(uri, Path(path), sha256, version)
