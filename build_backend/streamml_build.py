"""The PEP 517 build backend of streamml: maturin, after building the evaluators the wheel carries.

``pip install .`` (from a checkout or an sdist) and ``make wheels`` build through here. Before
maturin builds the extension and packs the wheel, the prebuilt evaluator (``operators/evaluator``,
the library ``streamml compile`` appends a model's IR to) is built with cargo for each target and
put in ``python/streamml/_evaluator/<target>/``, which pyproject's ``[tool.maturin] include`` packs.

Environment:
    STREAMML_EVALUATOR_TARGETS: comma-separated targets (``linux-x86_64``, ``linux-aarch64``);
        default: this machine's.
    STREAMML_GLIBC: build the evaluators for this glibc (e.g. ``2.28``) with ``cargo zigbuild``
        (``cargo-zigbuild`` and ``ziglang`` from PyPI); targets other than this machine's always
        need it.
    CARGO_TARGET_DIR: cargo's target directory (default ``operators/target``).

Run as a script to build only the evaluators: ``python build_backend/streamml_build.py linux-aarch64``.
"""

from __future__ import annotations

import io
import os
import platform
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import maturin
from maturin import (
    get_requires_for_build_sdist,
    get_requires_for_build_wheel,
    prepare_metadata_for_build_wheel,
)

ROOT = Path(__file__).resolve().parent.parent
EVALUATOR_DIR = ROOT / "python" / "streamml" / "_evaluator"
#: The targets ``streamml compile --target`` names, and their Rust triples.
RUST_TRIPLES = {
    "linux-x86_64": "x86_64-unknown-linux-gnu",
    "linux-aarch64": "aarch64-unknown-linux-gnu",
    "darwin-x86_64": "x86_64-apple-darwin",
    "darwin-arm64": "aarch64-apple-darwin",
}


def host_target() -> str:
    """This machine's target name (``linux-x86_64``...), as ``streamml.compile.host_target`` gives it."""
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64" if sys.platform == "linux" else "arm64"}.get(machine, machine)
    return f"{sys.platform.removesuffix('2')}-{machine}"


def library_name(target: str) -> str:
    """The evaluator's file name on a target."""
    return "libstreamml_evaluator.dylib" if target.startswith("darwin") else "libstreamml_evaluator.so"


def build_evaluators(targets: list[str] | None = None, glibc: str | None = None) -> list[Path]:
    """Build the evaluator for each target into ``python/streamml/_evaluator/<target>/``.

    Evaluators of other targets left there by an earlier build are removed, so a wheel carries
    exactly the targets asked for.
    """
    if targets is None:
        named = os.environ.get("STREAMML_EVALUATOR_TARGETS", "")
        targets = [t.strip() for t in named.split(",") if t.strip()] or [host_target()]
    glibc = glibc if glibc is not None else os.environ.get("STREAMML_GLIBC") or None
    unknown = [t for t in targets if t not in RUST_TRIPLES]
    if unknown:
        msg = f"unknown evaluator target {', '.join(unknown)}; expected one of {', '.join(RUST_TRIPLES)}"
        raise SystemExit(msg)
    target_dir = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "operators" / "target")
    EVALUATOR_DIR.mkdir(parents=True, exist_ok=True)
    for stale in EVALUATOR_DIR.iterdir():
        if stale.is_dir() and stale.name not in targets:
            shutil.rmtree(stale)
    built = []
    for target in targets:
        triple = RUST_TRIPLES[target]
        manifest = str(ROOT / "operators" / "Cargo.toml")
        cmd = ["cargo", "build", "--release", "-p", "streamml-evaluator", "--manifest-path", manifest]
        out = target_dir / "release"
        if glibc or target != host_target():
            if not target.startswith("linux"):
                msg = f"cannot build the evaluator for {target} on {host_target()}; build on a {target} machine"
                raise SystemExit(msg)
            if not glibc:
                glibc = "2.28"
            cmd[1:2] = ["zigbuild", "--target", f"{triple}.{glibc}"]
            out = target_dir / triple / "release"
        print(f"streamml: building the evaluator for {target}: {' '.join(cmd)}", file=sys.stderr, flush=True)
        subprocess.run(cmd, check=True, env={**os.environ, "CARGO_TARGET_DIR": str(target_dir)})
        dest = EVALUATOR_DIR / target / library_name(target)
        dest.parent.mkdir(exist_ok=True)
        shutil.copyfile(out / library_name(target), dest)
        built.append(dest)
    return built


def build_wheel(
    wheel_directory: str,
    config_settings: Mapping[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    """PEP 517: build the evaluators, then the wheel with maturin."""
    build_evaluators()
    return maturin.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_editable(
    wheel_directory: str,
    config_settings: Mapping[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    """PEP 660: build the evaluators, then the editable wheel with maturin."""
    build_evaluators()
    return maturin.build_editable(wheel_directory, config_settings, metadata_directory)


def build_sdist(sdist_directory: str, config_settings: Mapping[str, Any] | None = None) -> str:
    """PEP 517: maturin's sdist, with the evaluator and the SDK back among the workspace's members.

    maturin packs the crates the extension needs and rewrites the workspace's member list to
    them; pyproject's ``include`` adds the evaluator's and the SDK's sources, and this puts them
    back in the list so the sdist's build can build the evaluator.
    """
    name = maturin.build_sdist(sdist_directory, config_settings)
    path = Path(sdist_directory) / name
    with tarfile.open(path, "r:gz") as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for member, data in members:
            if member.name.endswith("/operators/Cargo.toml") and member.name.count("/") == 2:
                text = data.decode()
                start = text.index("members = [")
                end = text.index("]", start)
                listed = [m.strip().strip('"') for m in text[start + len("members = [") : end].split(",") if m.strip()]
                wanted = sorted({*listed, "sdk", "evaluator"})
                text = text[:start] + "members = [" + ", ".join(f'"{m}"' for m in wanted) + text[end:]
                data = text.encode()
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return name


get_requires_for_build_editable = get_requires_for_build_wheel
prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel

__all__ = [
    "build_editable",
    "build_evaluators",
    "build_sdist",
    "build_wheel",
    "get_requires_for_build_editable",
    "get_requires_for_build_sdist",
    "get_requires_for_build_wheel",
    "prepare_metadata_for_build_editable",
    "prepare_metadata_for_build_wheel",
]

if __name__ == "__main__":
    for path in build_evaluators(sys.argv[1:] or None):
        print(path)
