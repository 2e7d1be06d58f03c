"""Helpers for testing streamml and code built on it (used by streamml's own tests).

They find the example model binaries that ``make models`` builds and compile
model binaries written in C with the system C compiler.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from streamml import _streamml

#: The repository root, when streamml runs from a source checkout.
REPO_ROOT = Path(__file__).resolve().parents[2]

#: File suffix of shared libraries on this platform.
LIBRARY_SUFFIX = {"darwin": ".dylib", "win32": ".dll"}.get(sys.platform, ".so")


def models_dir() -> Path:
    """Where ``make models`` puts the example binaries (``$STREAMML_MODELS_DIR`` overrides)."""
    return Path(os.environ.get("STREAMML_MODELS_DIR", REPO_ROOT / "build" / "models"))


def example_model(name: str) -> Path:
    """Path of an example model binary built by ``make models`` (e.g. ``s1_logistic``).

    Raises:
        FileNotFoundError: it has not been built; the message says how to build it.
    """
    path = models_dir() / f"{name}{LIBRARY_SUFFIX}"
    if not path.is_file():
        msg = f"model binary {path} does not exist; build the examples with `make models`"
        raise FileNotFoundError(msg)
    return path


def abi_include_dir() -> Path:
    """A directory holding ``streamml_model.h`` (written from the installed module)."""
    source = REPO_ROOT / "operators" / "abi" / "include"
    if (source / "streamml_model.h").is_file():
        return source
    target = Path(tempfile.gettempdir()) / f"streamml-abi-v{_streamml.ABI_VERSION}"
    target.mkdir(parents=True, exist_ok=True)
    (target / "streamml_model.h").write_text(_streamml.ABI_HEADER)
    return target


def compile_c_model(source: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, cc: str | None = None) -> Path:
    """Compile a model binary written in C against ``streamml_model.h``.

    Args:
        source: the C file.
        out_dir: where to put the shared library (named after the source file).
        cc: the C compiler (default ``$CC`` or ``cc``).

    Returns:
        The path of the shared library.

    Raises:
        RuntimeError: the compiler failed; the message holds its output.
    """
    source = Path(source)
    compiler = cc or os.environ.get("CC") or shutil.which("cc") or "gcc"
    out = Path(out_dir) / f"{source.stem}{LIBRARY_SUFFIX}"
    cmd = [
        compiler,
        "-std=c99",
        "-O2",
        "-Wall",
        "-Werror",
        "-shared",
        "-fPIC",
        "-I",
        str(abi_include_dir()),
        "-I",
        str(source.parent),
        str(source),
        "-o",
        str(out),
        "-lm",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        msg = f"compiling {source} failed ({' '.join(cmd)}):\n{done.stdout}{done.stderr}"
        raise RuntimeError(msg)
    return out
