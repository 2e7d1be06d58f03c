"""The exceptions streamml raises.

Every message names the file, column, row or field at fault, says what was
expected and what was found.
"""

from __future__ import annotations


class StreammlError(Exception):
    """Base class of every streamml error."""


class ModelLoadError(StreammlError):
    """A model binary could not be loaded.

    The file is missing, is not a library, has no entry point, speaks an ABI
    version this host does not, fails its init, has an invalid info document,
    or does not have the expected SHA-256.
    """


class InputError(StreammlError, ValueError):
    """The data does not fit the model's inputs.

    A column or field is missing, has a type that cannot be cast, holds nulls
    the model does not accept, or a value out of range.
    """


class PredictError(StreammlError, RuntimeError):
    """The model failed on a batch.

    It returned an error, panicked, or returned outputs that do not match its
    declared outputs.
    """


class CompileError(StreammlError, ValueError):
    """A trained model could not be compiled into a model binary.

    The estimator is not supported (the message lists what is), the model
    file is corrupt, or the features given do not match the model's.
    """


__all__ = ["CompileError", "InputError", "ModelLoadError", "PredictError", "StreammlError"]
