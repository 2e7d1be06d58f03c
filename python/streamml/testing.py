"""Build a model binary written in C, to test it: what a user writing one (README, "Write a model binary") needs.

The ABI header ships inside the installed module (``_streamml.ABI_HEADER``), not as a file, so a
user testing their own C model binary, or a host's behaviour with a binary that misbehaves on
purpose, needs :func:`compile_c_model` (the system C compiler is needed) and
:data:`LIBRARY_SUFFIX`. That is why this module ships, as ``bytewax.testing`` does for flows;
helpers that know streamml's own repository (its example binaries, services, workloads) live in
the repository's ``tests/support/streamml_dev`` and are never imported here.
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
