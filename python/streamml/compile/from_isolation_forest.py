"""scikit-learn's ``IsolationForest`` to the model IR (``docs/ir.md``, the outlier task).

The binary's outputs are the estimator's three methods: ``score_samples``, ``decision_function``
(``score_samples - offset_``) and ``predict`` (-1 where the decision is negative, else 1). The
arithmetic, read from scikit-learn 1.9's ``_iforest.py``, as IR data:

- Each tree is an ``ExtraTreeRegressor`` over its own feature subset (``estimators_features_``,
  a permutation of the columns even when every feature is used): the converter maps its split
  features back to the input columns. ``X`` is cast to float32 and a row goes left if
  ``x <= threshold``; a NaN goes where ``missing_go_to_left`` says (as ``tree_.apply``).
- A leaf's value is its depth plus the average path length of the training samples it holds,
  ``decision_path_length + average_path_length - 1.0`` in float64 as scikit-learn forms it; the
  trees are added from zero in estimator order (``aggregate: sum``).
- The ``isolation`` link: ``score_samples = -2 ** (-depths / (n_trees * c(max_samples_)))``.

Examples:
    >>> import numpy as np
    >>> from sklearn.ensemble import IsolationForest
    >>> x = np.random.default_rng(0).normal(size=(200, 2))
    >>> ir = to_ir(IsolationForest(n_estimators=3, random_state=0).fit(x))
    >>> ir["task"], ir["link"], len(ir["model"]["trees"])
    ('outlier', 'isolation', 3)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from streamml.compile import from_sklearn
from streamml.errors import CompileError


def to_ir(model: Any, *, features: list[str] | None = None) -> dict[str, Any]:
    """Convert a fitted ``IsolationForest`` into an IR document.

    Raises:
        CompileError: the model is not fitted, or ``features`` does not match it.
    """
    from sklearn.ensemble._iforest import _average_path_length

    from_sklearn._check_fitted(model)
    n_features = int(model.n_features_in_)
    names = from_sklearn._feature_names(model, n_features, features)
    trees = []
    n_leaves = 0
    for t, (est, columns) in enumerate(zip(model.estimators_, model.estimators_features_, strict=True)):
        tree = est.tree_
        # scikit-learn's per-node depth (root 1) and average path length of the node's samples.
        lengths = np.asarray(model._decision_path_lengths[t], dtype=np.float64)
        average = np.asarray(model._average_path_length_per_tree[t], dtype=np.float64)
        if lengths.shape != (tree.node_count,) or average.shape != (tree.node_count,):
            msg = f"IsolationForest tree {t}: path lengths for {lengths.shape} nodes, the tree has {tree.node_count}"
            raise CompileError(msg)
        ir_tree = from_sklearn._sk_tree(tree, lengths + average - 1.0, 0)
        columns = np.asarray(columns)
        ir_tree["split_feature"] = [int(columns[f]) for f in ir_tree["split_feature"]]
        trees.append(ir_tree)
        n_leaves += int(tree.n_leaves)
    denominator = float(len(model.estimators_) * _average_path_length([model._max_samples])[0])
    return {
        "format": "streamml-ir",
        "version": 1,
        "name": "sklearn_model",
        "model_version": "1",
        "framework": "scikit-learn",
        "task": "outlier",
        "features": names,
        "classes": None,
        "preprocess": None,
        "model": {
            "type": "trees",
            "n_outputs": 1,
            "base_score": [0.0],
            "aggregate": "sum",
            "feature_cast": "float32",
            "comparison": "le",
            "accumulate": "float64",
            "sigmoid_scale": 1.0,
            "trees": trees,
        },
        "link": "isolation",
        "isolation": {"denominator": denominator, "offset": float(model.offset_)},
        "metadata": {
            "estimator": "IsolationForest",
            "sklearn_version": from_sklearn._sklearn_version(),
            "n_estimators": len(trees),
            "max_samples": int(model._max_samples),
            "n_leaves": n_leaves,
            "contamination": str(model.contamination),
        },
        "drift_reference": None,
    }
