"""`Model`: load a model binary (or wrap a Python function) and score Arrow data."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from streamml import _streamml

if TYPE_CHECKING:
    import pyarrow as pa

Task = Literal["regression", "binary", "multiclass", "other"]


#: A trust list as :meth:`Model.load` takes it: a digest, digests, or a trust file's path.
TrustedSha256 = str | Iterable[str] | os.PathLike[str] | None


def _trust_args(trusted: TrustedSha256) -> tuple[list[str] | None, str | None]:
    """(digests, trust file) for the binding from a ``trusted_sha256`` argument."""
    if trusted is None:
        return None, None
    if isinstance(trusted, os.PathLike):
        return None, os.fspath(trusted)
    if isinstance(trusted, str):
        return [trusted], None
    return [str(d) for d in trusted], None


class Model:
    """A model ready to score: a model binary or a wrapped Python callable.

    Both run through the same Rust core: inputs are found by name (extra
    columns are ignored, numeric columns are cast where the ABI allows, see
    ``docs/abi.md``), outputs are checked against the declared schema, and
    the GIL is released while a binary scores.

    Examples:
        >>> import pyarrow as pa
        >>> from streamml import Model
        >>> double = Model.from_callable(
        ...     lambda b: pa.record_batch({"y": pa.compute.multiply(b["x"], 2.0)}),
        ...     input_schema=pa.schema([("x", pa.float64(), False)]),
        ...     output_schema=pa.schema([("y", pa.float64(), False)]),
        ...     name="double",
        ... )
        >>> double.predict([{"x": 1.5}, {"x": 2}]).column("y").to_pylist()
        [3.0, 4.0]
    """

    __slots__ = ("_callable", "_info", "_inner", "_path")

    def __init__(self, inner: _streamml.Model, *, path: str | None = None, fn: Any = None) -> None:
        """Wrap a native handle; use :meth:`load` or :meth:`from_callable` instead."""
        self._inner = inner
        self._info: dict[str, Any] = json.loads(inner.info_json())
        self._path = path
        self._callable = fn

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        sha256: str | None = None,
        trusted_sha256: TrustedSha256 = None,
        max_bytes: int | None = None,
    ) -> Model:
        """Load and verify a model binary. Loading a binary runs its native code.

        Before anything in the file runs, it must be a regular file under the size cap
        whose ELF headers fit the file; if ``sha256`` or a trust list is given, its SHA-256
        must match. A compiled binary then checks its IR (footer checksum, a valid forest).

        Args:
            path: the model binary (a shared library exporting ``streamml_model_init``).
            sha256: if given, refuse the file unless its SHA-256 (hex) is this.
            trusted_sha256: refuse the file unless its SHA-256 is listed: one hex digest,
                an iterable of digests, or a :class:`pathlib.Path` of a trust file (one digest
                per line, ``#`` comments). Without it, the trust file named by
                ``$STREAMML_TRUSTED_MODELS`` applies, if set. An unlisted file is refused
                before it is opened as a library, so its code never runs.
            max_bytes: refuse larger files (default ``$STREAMML_MAX_MODEL_BYTES``, else 256 MiB).

        Raises:
            ModelLoadError: the file is missing, not a regular file, too large, not a
                well-formed library for this machine, not listed in the trust list, not a
                streamml model binary, speaks another ABI version, fails its init (an
                invalid or edited IR), has an invalid info document or drift reference, or
                does not have the expected SHA-256. The message names the file.
        """
        path = os.fspath(path)
        digests, trust_file = _trust_args(trusted_sha256)
        return cls(_streamml.Model.load(path, sha256, digests, trust_file, max_bytes), path=path)

    @classmethod
    def from_callable(
        cls,
        fn: Callable[[pa.RecordBatch], Any],
        input_schema: Any,
        output_schema: Any,
        *,
        name: str | None = None,
        version: str = "0",
        task: Task = "other",
    ) -> Model:
        """Run a Python function through the same interface as a model binary.

        Args:
            fn: called with a ``pyarrow.RecordBatch`` of exactly the declared inputs;
                returns an Arrow batch (pyarrow, polars, anything with
                ``__arrow_c_array__`` / ``__arrow_c_stream__``) holding the declared
                outputs (found by name) with one row per input row.
            input_schema: the inputs (``pyarrow.Schema`` or anything with ``__arrow_c_schema__``).
            output_schema: the outputs, likewise.
            name: the model's name (defaults to ``fn.__name__``).
            version: the model's version.
            task: ``regression``, ``binary``, ``multiclass`` or ``other``.
        """
        name = name or getattr(fn, "__name__", None) or "callable"
        inner = _streamml.Model.from_callable(fn, input_schema, output_schema, name, version, task)
        return cls(inner, fn=fn)

    @property
    def info(self) -> dict[str, Any]:
        """The info document: name, version, task, framework, inputs, outputs, drift reference."""
        return self._info

    @property
    def name(self) -> str:
        """The model's name."""
        return self._info["name"]

    @property
    def version(self) -> str:
        """The model's version."""
        return self._info["version"]

    @property
    def input_schema(self) -> pa.Schema:
        """The declared inputs as a ``pyarrow.Schema``."""
        return self._inner.input_schema()

    @property
    def output_schema(self) -> pa.Schema:
        """The declared outputs as a ``pyarrow.Schema``."""
        return self._inner.output_schema()

    @property
    def sha256(self) -> str | None:
        """SHA-256 (hex) of the model binary; ``None`` for a callable."""
        return self._inner.sha256

    @property
    def path(self) -> str | None:
        """The file the model was loaded from; ``None`` for a callable."""
        return self._path

    def predict(self, data: Any, *, missing_fields: str = "error") -> pa.RecordBatch | pa.Table:
        """Score data and return the declared outputs, one row per input row.

        Args:
            data: an object with ``__arrow_c_array__`` (``pyarrow.RecordBatch``, a struct
                array) -> a ``pyarrow.RecordBatch``; an object with
                ``__arrow_c_stream__`` (``pyarrow.Table``, ``polars.DataFrame``, a
                ``RecordBatchReader``) -> a ``pyarrow.Table``; or an iterable of dicts
                -> a ``pyarrow.RecordBatch``.
            missing_fields: for dicts, an input field absent from one: ``"error"``
                (default; an explicit ``None`` is a missing value where the input is
                nullable) or ``"null"`` (read as ``None``).

        Raises:
            InputError: a required column or field is missing, has a type that cannot
                be cast, or holds nulls the model does not accept.
            PredictError: the model failed on the batch.
        """
        if hasattr(data, "__arrow_c_array__") or hasattr(data, "__arrow_c_stream__"):
            return self._inner.predict_arrow(data)
        if isinstance(data, (str, bytes, Mapping)) or not isinstance(data, Iterable):
            msg = (
                f"cannot score a {type(data).__name__}; pass an Arrow batch, table or stream "
                "(pyarrow, polars...) or a list of dicts"
            )
            raise TypeError(msg)
        return self._inner.predict_rows(data, missing_fields)

    def predict_numpy(self, x: Any) -> dict[str, Any]:
        """Score the rows of a NumPy array and return one NumPy array per output.

        The fastest way to score one row from Python: no pyarrow on the way in or
        out. The array's columns are the model's inputs in :attr:`input_schema`
        order, so every input must be float64. NaN cells are missing values, as
        NaN in a ``RecordBatch`` is. The results equal :meth:`predict`'s bit for bit.

        Args:
            x: a ``numpy.ndarray`` of float64 (float32 is widened exactly) of shape
                ``(rows, inputs)``, or ``(inputs,)`` for one row; any memory order
                (C, Fortran, strided views).

        Returns:
            ``{output name: numpy.ndarray}`` in :attr:`output_schema` order, each with
            one entry per row: numbers and bools as 1-D arrays of their type,
            per-class probabilities (a fixed-size list) as a 2-D ``(rows, classes)``
            array, string labels as a 1-D array of Python ``str`` objects.

        Raises:
            TypeError: ``x`` is not a NumPy array, or not of float64 / float32.
            InputError: ``x`` is not 1-D or 2-D, its column count is not the model's
                input count, or the model has an input that is not float64.
            PredictError: the model failed on the rows.

        Examples:
            >>> import numpy as np
            >>> import pyarrow as pa
            >>> import pyarrow.compute as pc
            >>> from streamml import Model
            >>> double = Model.from_callable(
            ...     lambda b: pa.record_batch({"y": pc.multiply(b["x"], 2.0)}),
            ...     input_schema=pa.schema([("x", pa.float64(), False)]),
            ...     output_schema=pa.schema([("y", pa.float64(), False)]),
            ...     name="double",
            ... )
            >>> double.predict_numpy(np.array([[1.5], [2.0]]))
            {'y': array([3., 4.])}
        """
        return self._inner.predict_numpy(x)

    def __repr__(self) -> str:
        """Name, version and where the model comes from."""
        where = self._path if self._path is not None else "python callable"
        return f"Model({self.name!r} {self.version}, {where})"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by path and SHA-256 (binaries) or by function and schemas (callables)."""
        if self._path is not None:
            return (_load_verified, (self._path, self.sha256))
        return (
            _rebuild_callable,
            (self._callable, self.input_schema, self.output_schema, self.name, self.version, self._info["task"]),
        )


def _load_verified(path: str, sha256: str) -> Model:
    return Model.load(path, sha256=sha256)


def _rebuild_callable(fn: Any, inputs: Any, outputs: Any, name: str, version: str, task: Task) -> Model:
    return Model.from_callable(fn, inputs, outputs, name=name, version=version, task=task)
