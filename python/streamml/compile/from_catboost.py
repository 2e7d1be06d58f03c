"""CatBoost models to the model IR (``docs/ir.md``).

The converter reads CatBoost's JSON model (``save_model(format="json")``; a model object or a
``.cbm`` file is exported to it first, which needs the ``catboost`` package: ``pip install
'streamml[catboost]'``). CatBoost's arithmetic, as IR data:

- Trees are oblivious: level ``d`` of a tree compares one float feature with one border and going
  right (``x > border``) sets bit ``d`` of the leaf index (``splits[0]`` is bit 0). Features are
  compared as float32 (``feature_cast: float32``; the borders are float32 values), so the IR keeps
  ``comparison: le`` (left if ``x <= border``).
- A NaN goes by the feature's ``nan_value_treatment``: ``AsFalse`` (``nan_mode="Min"``: NaN is
  below every border, bit 0), ``AsTrue`` (``"Max"``: above every border, bit 1), ``AsIs``
  (``"Forbidden"``: the comparison with NaN is false, bit 0).
- Leaf values are leaf-major (leaf ``i``, class ``k`` at ``i * K + k``); the raw score is
  ``scale * sum + bias[k]`` (``scale_and_bias``).
- Links: ``Logloss``/``CrossEntropy`` the sigmoid (the label is the class of ``raw > 0``),
  ``MultiClass`` the softmax, ``RMSE`` and other regressions the identity, ``Poisson``/``Tweedie``
  ``exp``.

``oblivious=False`` expands each tree into an ordinary IR tree (the same leaves in the same order):
kept to measure the two walks against each other (``docs/performance.md``).

Examples:
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> doc = {"features_info": {"float_features": [{"borders": [0.5], "feature_id": "a",
    ...     "flat_feature_index": 0, "feature_index": 0, "nan_value_treatment": "AsFalse"}]},
    ...     "oblivious_trees": [{"leaf_values": [1.0, 2.0], "splits": [{"border": 0.5,
    ...     "float_feature_index": 0, "split_type": "FloatFeature"}]}],
    ...     "scale_and_bias": [1.0, [0.25]], "model_info": {"params": {"loss_function": {"type": "RMSE"}}}}
    >>> path = Path(tempfile.mkdtemp()) / "m.json"
    >>> _ = path.write_text(json.dumps(doc))
    >>> ir = to_ir(path)
    >>> ir["task"], ir["features"], ir["model"]["trees"][0]["threshold"], ir["model"]["base_score"]
    ('regression', ['a'], [0.5], [0.25])
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from streamml.compile import _common
from streamml.errors import CompileError

#: Loss functions by their link and task.
BINARY_LOSSES = ("Logloss", "CrossEntropy")
MULTICLASS_LOSSES = ("MultiClass",)
EXP_LOSSES = ("Poisson", "Tweedie")
REGRESSION_LOSSES = ("RMSE", "MAE", "Quantile", "Expectile", "Huber", "MAPE", "Lq")
SUPPORTED_TEXT = (
    "CatBoostClassifier (Logloss, CrossEntropy, MultiClass), CatBoostRegressor (RMSE, MAE, Quantile, "
    "Expectile, Huber, MAPE, Lq; Poisson and Tweedie by exp) with numeric features"
)
#: Where a NaN goes (go right = bit set) by the feature's nan_value_treatment.
_NAN_RIGHT = {"AsFalse": False, "AsTrue": True, "AsIs": False}


def to_ir(model: Any, *, features: list[str] | None = None, oblivious: bool = True) -> dict[str, Any]:
    """Convert a CatBoost model (object, ``.cbm`` or JSON file) into an IR document.

    Args:
        model: a fitted ``CatBoostClassifier``/``CatBoostRegressor``/``CatBoost``, or a model file.
        features: input names in the model's feature order (default: the model's own, else
            ``f0..f{n-1}``).
        oblivious: emit oblivious trees (the branch-free walk); ``False`` expands them into
            ordinary trees.

    Raises:
        CompileError: the model has categorical, text or embedding features, an unsupported loss,
            or is not a CatBoost model; or ``features`` does not match it.
    """
    doc = _json(model)
    info = doc.get("features_info", {})
    for kind in ("categorical_features", "text_features", "embedding_features"):
        if info.get(kind):
            names = [f.get("feature_id") or f"#{f.get('flat_feature_index')}" for f in info[kind]]
            msg = (
                f"the CatBoost model has {kind.replace('_', ' ')} ({', '.join(map(str, names))}); "
                f"streamml compiles {SUPPORTED_TEXT}"
            )
            raise CompileError(msg)
    floats = sorted(info.get("float_features", []), key=lambda f: f["flat_feature_index"])
    n_features = (floats[-1]["flat_feature_index"] + 1) if floats else 0
    if n_features == 0:
        msg = "the CatBoost model has no float features; nothing to compile"
        raise CompileError(msg)
    own = [""] * n_features
    for f in floats:
        own[f["flat_feature_index"]] = str(f.get("feature_id") or "")
    names = _common.feature_names(own if all(own) else [], n_features, features, "CatBoost")
    column = {f["feature_index"]: f["flat_feature_index"] for f in floats}
    nan_right = {}
    for f in floats:
        treatment = f.get("nan_value_treatment", "AsIs")
        if treatment not in _NAN_RIGHT:
            msg = f"CatBoost feature {f['flat_feature_index']}: nan_value_treatment {treatment!r} is unknown"
            raise CompileError(msg)
        nan_right[f["feature_index"]] = _NAN_RIGHT[treatment]

    loss = _loss(doc)
    class_names = doc.get("model_info", {}).get("class_params", {}).get("class_names")
    scale, bias = doc.get("scale_and_bias", [1.0, [0.0]])
    bias = [float(b) for b in bias]
    if loss in BINARY_LOSSES:
        task, link, n_outputs = "binary", "sigmoid", 1
    elif loss in MULTICLASS_LOSSES:
        task, link, n_outputs = "multiclass", "softmax", len(bias)
    elif loss in EXP_LOSSES:
        task, link, n_outputs = "regression", "exp", 1
    elif loss in REGRESSION_LOSSES:
        task, link, n_outputs = "regression", "identity", 1
    else:
        msg = f"the CatBoost loss {loss!r} has no IR link; streamml compiles {SUPPORTED_TEXT}"
        raise CompileError(msg)
    if len(bias) != n_outputs:
        msg = f"CatBoost scale_and_bias has {len(bias)} biases for {n_outputs} outputs ({loss})"
        raise CompileError(msg)
    classes = _common.classes(task, n_outputs, class_names if task != "regression" else None, "CatBoost")

    trees = []
    for t, tree in enumerate(doc.get("oblivious_trees", [])):
        levels = []
        for s in tree["splits"]:
            if s.get("split_type") != "FloatFeature":
                msg = f"CatBoost tree {t} splits on a {s.get('split_type')}; streamml compiles {SUPPORTED_TEXT}"
                raise CompileError(msg)
            f = s["float_feature_index"]
            border = float(s["border"])
            if not math.isfinite(border):
                msg = f"CatBoost tree {t} has the border {border}; expected finite borders"
                raise CompileError(msg)
            levels.append((column[f], border, not nan_right[f]))
        values = [float(v) for v in tree["leaf_values"]]
        if len(values) != (1 << len(levels)) * n_outputs:
            msg = f"CatBoost tree {t} has {len(values)} leaf values for depth {len(levels)} and {n_outputs} outputs"
            raise CompileError(msg)
        trees.append(levels_and_leaves(levels, values))
    if not trees:
        msg = "the CatBoost model has no trees"
        raise CompileError(msg)
    model_ir: dict[str, Any] = {
        "type": "oblivious",
        "n_outputs": n_outputs,
        "base_score": bias,
        "scale": float(scale),
        "feature_cast": "float32",
        "comparison": "le",
        "sigmoid_scale": 1.0,
        "trees": trees,
    }
    if not oblivious:
        model_ir = expand(model_ir)
    return {
        "format": "streamml-ir",
        "version": 1,
        "name": "catboost_model",
        "model_version": "1",
        "framework": "catboost",
        "task": task,
        "features": names,
        "classes": classes,
        "preprocess": None,
        "model": model_ir,
        "link": link,
        "binary_label": "raw_gt_zero",
        "metadata": {
            "loss_function": loss,
            "n_trees": len(trees),
            "depth": max(len(t["split_feature"]) for t in trees),
            "catboost_version": _version(doc),
        },
        "drift_reference": None,
    }


def levels_and_leaves(levels: list[tuple[int, float, bool]], values: list[float]) -> dict[str, Any]:
    """An IR oblivious tree from its levels ``(feature, threshold, default_left)`` and leaf values."""
    return {
        "split_feature": [f for f, _, _ in levels],
        "threshold": [b for _, b, _ in levels],
        "default_left": [d for _, _, d in levels],
        "leaf_value": values,
    }


def expand(model: dict[str, Any]) -> dict[str, Any]:
    """The oblivious trees of ``model`` as ordinary IR trees with the same leaves in the same order.

    Only for models with ``scale`` 1 (the ordinary trees have no scale).
    """
    if model["scale"] != 1.0:
        msg = f"oblivious trees with scale {model['scale']} cannot be expanded into ordinary trees"
        raise CompileError(msg)
    n_outputs = model["n_outputs"]
    trees = []
    for tree in model["trees"]:
        depth = len(tree["split_feature"])
        cols: dict[str, list[Any]] = {k: [] for k in ("split_feature", "threshold", "left", "right", "default_left")}
        # Nodes breadth-first; a node at level d on the path `bits` (bit e set: right at level e).
        level = [0]
        for d in range(depth):
            nxt = []
            for bits in level:
                cols["split_feature"].append(tree["split_feature"][d])
                cols["threshold"].append(tree["threshold"][d])
                cols["default_left"].append(tree["default_left"][d])
                for side, child_bits in (("left", bits), ("right", bits | (1 << d))):
                    if d + 1 < depth:
                        cols[side].append((1 << (d + 1)) - 1 + len(nxt))
                        nxt.append(child_bits)
                    else:
                        cols[side].append(~child_bits)
            level = nxt
        values = tree["leaf_value"]
        leaves = values if n_outputs == 1 else [values[i * n_outputs : (i + 1) * n_outputs] for i in range(1 << depth)]
        trees.append(
            {
                "output": 0 if n_outputs == 1 else None,
                **cols,
                "missing": ["nan"] * len(cols["split_feature"]),
                "leaf_value": leaves,
            }
        )
    return {
        "type": "trees",
        "n_outputs": n_outputs,
        "base_score": model["base_score"],
        "aggregate": "sum",
        "feature_cast": model["feature_cast"],
        "comparison": model["comparison"],
        "accumulate": "float64",
        "sigmoid_scale": model["sigmoid_scale"],
        "trees": trees,
    }


def _loss(doc: dict[str, Any]) -> str:
    params = doc.get("model_info", {}).get("params", {})
    if isinstance(params, str):
        params = json.loads(params)
    loss = params.get("loss_function", {}).get("type")
    if not loss:
        msg = "the CatBoost model names no loss function (model_info.params.loss_function); cannot choose a link"
        raise CompileError(msg)
    return str(loss)


def _version(doc: dict[str, Any]) -> str:
    text = str(doc.get("model_info", {}).get("catboost_version_info", ""))
    for line in text.splitlines():
        if "Branch: tags/v" in line:
            return line.split("tags/v", 1)[1].strip()
    return "unknown"


def _json(model: Any) -> dict[str, Any]:
    """CatBoost's JSON model document for a model object or file."""
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        with path.open("rb") as f:
            head = f.read(1)
        if head == b"{":
            try:
                return json.loads(path.read_text())
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                msg = f"CatBoost JSON model {path} does not parse: {e}"
                raise CompileError(msg) from e
        model = _load_cbm(path)
    if not hasattr(model, "save_model") or not any(c.__module__.startswith("catboost") for c in type(model).__mro__):
        msg = f"cannot compile a {type(model).__name__} as a CatBoost model; streamml compiles {SUPPORTED_TEXT}"
        raise CompileError(msg)
    if not model.is_fitted():
        msg = f"the {type(model).__name__} is not fitted; call fit() before compiling it"
        raise CompileError(msg)
    with tempfile.TemporaryDirectory(prefix="streamml-catboost-") as scratch:
        out = Path(scratch) / "model.json"
        model.save_model(str(out), format="json")
        return json.loads(out.read_text())


def _load_cbm(path: Path) -> Any:
    from streamml._extras import require

    catboost = require("catboost", f"compiling the CatBoost binary model {path}")
    try:
        return catboost.CatBoost().load_model(str(path))
    except catboost.CatBoostError as e:
        msg = f"{path} is not a CatBoost model: {e}"
        raise CompileError(msg) from e
