"""Helpers for testing code built on streamml: compile a model binary written in C.

:func:`compile_c_model` builds a model binary from a C file against the ABI header that ships
with the installed module (the system C compiler is needed), so a test can load a model that
misbehaves on purpose. Helpers that know streamml's own repository (its example binaries,
its service scripts) live in the repository's ``tests/support``, not here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from streamml import _streamml

#: File suffix of shared libraries on this platform.
LIBRARY_SUFFIX = {"darwin": ".dylib", "win32": ".dll"}.get(sys.platform, ".so")


def abi_include_dir() -> Path:
    """A directory holding ``streamml_model.h``, written from the installed module."""
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
