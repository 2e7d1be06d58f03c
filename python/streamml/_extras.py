"""Optional dependencies: which extra of ``pip install 'streamml[...]'`` brings a module.

A feature whose extra is not installed says so in one line, naming the package and the extra,
instead of a ``ModuleNotFoundError`` from deep inside: the CLI maps any such import error with
:func:`missing_extra`; modules that need an extra to import at all call :func:`require`.

Examples:
    >>> print(missing_extra(ModuleNotFoundError("no", name="confluent_kafka.admin"), "streamml score"))
    streamml score needs confluent-kafka: pip install 'streamml[kafka]'
"""

from __future__ import annotations

import importlib
from types import ModuleType

from streamml.errors import StreammlError

#: Top-level module -> (the package on PyPI that provides it, the streamml extra that installs it).
EXTRAS: dict[str, tuple[str, str | None]] = {
    "confluent_kafka": ("confluent-kafka", "kafka"),
    "prometheus_client": ("prometheus-client", "kafka"),
    "bytewax": ("bytewax", "bytewax"),
    "adbc_driver_manager": ("adbc-driver-manager", "store"),
    "adbc_driver_sqlite": ("adbc-driver-sqlite", "store"),
    "adbc_driver_postgresql": ("adbc-driver-postgresql", "postgres"),
    # DuckDB's ADBC driver ships inside the duckdb package.
    "adbc_driver_duckdb": ("duckdb", "duckdb"),
    "duckdb": ("duckdb", "duckdb"),
    # `streamml compile model.onnx` reads the graph with it.
    "onnx": ("onnx", "onnx"),
    # models:/ references and streamml.mlflow.log_model.
    "mlflow": ("mlflow-skinny", "mlflow"),
    # What the models being compiled (or the demo's) need, not streamml: no extra.
    "joblib": ("joblib", None),
    "sklearn": ("scikit-learn", None),
    "lightgbm": ("lightgbm", None),
    "xgboost": ("xgboost", None),
    # Only for CatBoost's binary model files (.cbm); its JSON files compile without it.
    "catboost": ("catboost", "catboost"),
}


class MissingExtraError(StreammlError, ImportError):
    """A feature needs a package that is not installed; the message says which extra brings it."""

    def __init__(self, feature: str, module: str) -> None:
        self.feature = feature
        self.package, self.extra = EXTRAS[module]
        how = f"pip install 'streamml[{self.extra}]'" if self.extra else f"pip install {self.package}"
        super().__init__(f"{feature} needs {self.package}: {how}", name=module)


def missing_extra(error: ImportError, feature: str) -> MissingExtraError | None:
    """The :class:`MissingExtraError` an import error means for ``feature``, or None if it is not one."""
    if isinstance(error, MissingExtraError):
        return error
    module = (getattr(error, "name", None) or "").split(".")[0]
    if not isinstance(error, ModuleNotFoundError) or module not in EXTRAS:
        return None
    return MissingExtraError(feature, module)


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` for ``feature``.

    Raises:
        MissingExtraError: it is not installed; the message names the extra that installs it.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        found = missing_extra(e, feature)
        if found is None:
            raise
        raise found from None
