"""streamml: trained models as model binaries, scored in micro-batches of Arrow data.

Examples:
    >>> import streamml
    >>> streamml.ABI_VERSION
    1
"""

from streamml._streamml import ABI_VERSION, __version__
from streamml.errors import CompileError, InputError, ModelLoadError, PredictError, StreammlError
from streamml.model import Model

__all__ = [
    "ABI_VERSION",
    "CompileError",
    "InputError",
    "Model",
    "ModelLoadError",
    "PredictError",
    "StreammlError",
    "__version__",
]
