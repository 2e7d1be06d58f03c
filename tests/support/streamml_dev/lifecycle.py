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


def assert_quality_offline(
    windows: dict[int, dict[str, float]],
    window: int,
    times: dict[int, int],
    scores: dict[int, float],
    labels: dict[int, float],
) -> None:
    """Each window's sums (``FeedbackJoin.windows`` or the store's quality rows of one version) equal numpy's.

    ``times``/``scores``: each event's prediction time and score (by id); ``labels``: each labelled
    event's label. A window holds the labelled events whose prediction time is in it.
    """
    import numpy as np
    import pytest

    for start, w in windows.items():
        ids = [i for i in labels if i in scores and start <= times[i] < start + window]
        p = np.array([scores[i] for i in ids])
        y = np.array([labels[i] for i in ids])
        pc = np.clip(p, 1e-15, 1 - 1e-15)
        assert w["labeled"] == len(ids) > 0
        assert w["tp"] == int(((p >= 0.5) & (y > 0.5)).sum())
        assert w["fp"] == int(((p >= 0.5) & (y <= 0.5)).sum())
        assert w["pos"] == int((y > 0.5).sum())
        assert w["logloss_sum"] == pytest.approx(float(-(y * np.log(pc) + (1 - y) * np.log1p(-pc)).sum()), rel=1e-12)
        assert w["brier_sum"] == pytest.approx(float(((p - y) ** 2).sum()), rel=1e-12)
