"""Helpers for tests that score feature rows: missing values sprinkled into them."""

from __future__ import annotations

import numpy as np


def with_nans(x: np.ndarray, seed: int, share: float = 0.1) -> np.ndarray:
    """A copy of ``x`` with about ``share`` of its cells NaN (which cells: by ``seed``)."""
    x = x.copy()
    x[np.random.default_rng(seed).random(x.shape) < share] = np.nan
    return x
