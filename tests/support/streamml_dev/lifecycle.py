"""Model versions for the lifecycle tests: small logistic models, one per seed, compiled."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

#: The inputs of every version.
FEATURES = ["x0", "x1", "x2", "x3"]


def compile_versions(out: str | os.PathLike[str], versions: list[str], *, name: str = "fraud") -> dict[str, Path]:
    """Compile one logistic model per version (each trained on its own seed) into ``out/<version>.so``."""
    import numpy as np
    import pyarrow as pa
    from sklearn.linear_model import LogisticRegression

    from streamml.compile import compile as streamml_compile

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for i, version in enumerate(versions):
        rng = np.random.default_rng(100 + i)
        x = rng.normal(size=(500, len(FEATURES)))
        w = rng.normal(size=len(FEATURES))
        y = (x @ w + rng.normal(scale=0.3, size=500) > 0).astype(int)
        est = LogisticRegression().fit(x, y)
        reference = pa.table({f: x[:, j] for j, f in enumerate(FEATURES)})  # drift bins of this version's data
        paths[version] = streamml_compile(
            est, out / f"{version}.so", name=name, version=version, features=FEATURES, reference=reference
        )
    return paths


def model_directory(target: str | os.PathLike[str], binaries: dict[str, Path], **aliases: str) -> Path:
    """A model directory at ``target`` holding copies of ``binaries`` and the given aliases."""
    from streamml.lifecycle import set_alias

    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    for version, path in binaries.items():
        shutil.copyfile(path, target / f"{version}.so")
    for alias, version in aliases.items():
        set_alias(target, alias, version)
    return target


def events(n: int, *, seed: int = 1) -> list[dict[str, Any]]:
    """``n`` events with an ``id`` and the inputs."""
    import numpy as np

    x = np.random.default_rng(seed).normal(size=(n, len(FEATURES)))
    return [{"id": i, **{f: float(v) for f, v in zip(FEATURES, row, strict=True)}} for i, row in enumerate(x)]
