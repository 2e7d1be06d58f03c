"""The exceptions streamml raises.

Every message names the file, column, row or field at fault, says what was
expected and what was found.
"""

from __future__ import annotations


class StreammlError(Exception):
    """Base class of every streamml error."""


class ModelLoadError(StreammlError):
    """A model binary could not be loaded: missing file, not a library, no
    entry point, an ABI version this host does not speak, a failed init, an
    invalid info document, or a SHA-256 that is not the expected one."""


class InputError(StreammlError, ValueError):
    """The data does not fit the model's inputs: a missing column or field, a
    wrong type, nulls in a non-nullable input, a value out of range."""


class PredictError(StreammlError, RuntimeError):
    """The model failed on a batch (it returned an error, panicked, or returned
    outputs that do not match its declared outputs)."""


__all__ = ["InputError", "ModelLoadError", "PredictError", "StreammlError"]
