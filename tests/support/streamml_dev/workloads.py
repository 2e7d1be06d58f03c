"""The reference workloads of the design (R1, S1), generated the same way everywhere.

R1: 32 float64 features drawn i.i.d. N(0, 1); the binary label is
``x0*1.5 - x1 + x2*x3 + sin(2*x4) + 0.5*(x5 > 1) + N(0, 0.5) > 0``.
The training set uses seed 42; the scoring set uses seed 43.

S1: a logistic regression on the same features (scikit-learn defaults,
``max_iter=1000``), used to measure per-call overhead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

N_FEATURES = 32
TRAIN_SEED = 42
SCORE_SEED = 43
FEATURE_NAMES = tuple(f"x{i}" for i in range(N_FEATURES))


def r1_data(n_rows: int = 100_000, seed: int = TRAIN_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(X, y)``: R1 features (float64, shape ``(n_rows, 32)``) and labels (int64).

    Examples:
        >>> X, y = r1_data(1000)
        >>> X.shape, y.dtype.name, round(float(y.mean()), 2)
        ((1000, 32), 'int64', 0.51)
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_rows, N_FEATURES))
    noise = rng.normal(0.0, 0.5, n_rows)
    logit = x[:, 0] * 1.5 - x[:, 1] + x[:, 2] * x[:, 3] + np.sin(2 * x[:, 4]) + 0.5 * (x[:, 5] > 1)
    y = (logit + noise > 0).astype(np.int64)
    return x, y


def r1_record_batch(n_rows: int = 100_000, seed: int = SCORE_SEED):
    """Return R1 features as a ``pyarrow.RecordBatch`` with columns ``x0..x31``."""
    import pyarrow as pa

    x, _ = r1_data(n_rows, seed)
    return pa.record_batch([pa.array(x[:, i]) for i in range(N_FEATURES)], names=list(FEATURE_NAMES))


def train_s1():
    """Train S1 (scikit-learn ``LogisticRegression``) on the R1 training set."""
    from sklearn.linear_model import LogisticRegression

    x, y = r1_data()
    return LogisticRegression(max_iter=1000).fit(x, y)
