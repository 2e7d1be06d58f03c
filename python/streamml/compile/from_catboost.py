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
    "Expectile, Huber, MAPE, Lq; Poisson and Tweedie by exp) with numeric and categorical features "
    "(one-hot and ctr: Borders, Buckets, Counter, FeatureFreq, BinarizedTargetMeanValue, FloatTargetMeanValue)"
)
#: The ctr types CatBoost computes at prediction, all of which the IR's catboost_ctr step runs.
CTR_TYPES = ("Borders", "Buckets", "BinarizedTargetMeanValue", "FloatTargetMeanValue", "Counter", "FeatureFreq")
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
    for kind in ("text_features", "embedding_features"):
        if info.get(kind):
            names = [f.get("feature_id") or f"#{f.get('flat_feature_index')}" for f in info[kind]]
            msg = (
                f"the CatBoost model has {kind.replace('_', ' ')} ({', '.join(map(str, names))}); "
                f"streamml compiles {SUPPORTED_TEXT}"
            )
            raise CompileError(msg)
    floats = sorted(info.get("float_features", []), key=lambda f: f["flat_feature_index"])
    cats = sorted(info.get("categorical_features", []), key=lambda f: f["flat_feature_index"])
    flat = [f["flat_feature_index"] for f in floats + cats]
    n_features = max(flat) + 1 if flat else 0
    if n_features == 0:
        msg = "the CatBoost model has no features; nothing to compile"
        raise CompileError(msg)
    own = [""] * n_features
    for f in floats + cats:
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
    cat = _Categorical(doc, floats, cats, names, column, nan_right) if cats else None

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
        for s in tree.get("splits") or []:  # a depth-0 tree has null splits
            kind = s.get("split_type")
            if kind == "FloatFeature":
                f = s["float_feature_index"]
                border = float(s["border"])
                if not math.isfinite(border):
                    msg = f"CatBoost tree {t} has the border {border}; expected finite borders"
                    raise CompileError(msg)
                levels.append((column[f], border, not nan_right[f]))
            elif kind in ("OneHotFeature", "OnlineCtr") and cat is not None:
                levels.append(cat.level(s, t))
            else:
                msg = f"CatBoost tree {t} splits on a {kind}; streamml compiles {SUPPORTED_TEXT}"
                raise CompileError(msg)
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
        **({"input_types": cat.input_types} if cat else {}),
        "preprocess": cat.steps() if cat else None,
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


class _Categorical:
    """The preprocessing of a model with categorical features and the tree levels that read it.

    Columns, in order: the inputs (float features as they are, categorical features hashed by
    ``catboost_hash``), then one 0/1 column per one-hot value, then one column per ctr.
    """

    def __init__(
        self,
        doc: dict[str, Any],
        floats: list[dict[str, Any]],
        cats: list[dict[str, Any]],
        names: list[str],
        column: dict[int, int],
        nan_right: dict[int, bool],
    ) -> None:
        info = doc["features_info"]
        n = len(names)
        self.names = names
        self.input_types = ["float64"] * n
        self.cat_column = {c["feature_index"]: c["flat_feature_index"] for c in cats}
        for c in cats:
            self.input_types[c["flat_feature_index"]] = "utf8"
        # One-hot values: a 0/1 column each, after the inputs.
        self.one_hot: list[tuple[int, list[int]]] = [
            (c["feature_index"], [int(v) for v in c["values"]]) for c in cats if c.get("values")
        ]
        self.one_hot_column: dict[tuple[int, int], int] = {}
        at = n
        for f, values in self.one_hot:
            for v in values:
                self.one_hot_column[(f, v)] = at
                at += 1
        self.ctrs = info.get("ctrs", [])
        self.ctr_column0 = at
        # Binary features in CatBoost's order, which split_index counts: every float border, every
        # one-hot value, every ctr border.
        self.n_float_borders = sum(len(f.get("borders", [])) for f in floats)
        self.n_one_hot = at - n
        self.ctr_of_split: list[tuple[int, float]] = [
            (k, float(b)) for k, c in enumerate(self.ctrs) for b in c["borders"]
        ]
        self.column = column
        self.nan_right = nan_right
        self.ctr_data = doc.get("ctr_data", {})

    def feature(self, c: dict[str, Any]) -> str:
        return self.names[self.cat_column[c["cat_feature_index"]]] if "cat_feature_index" in c else "?"

    def level(self, split: dict[str, Any], t: int) -> tuple[int, float, bool]:
        """The tree level ``(column, threshold, default_left)`` of a one-hot or ctr split."""
        if split["split_type"] == "OneHotFeature":
            key = (split["cat_feature_index"], int(split["value"]))
            if key not in self.one_hot_column:
                msg = (
                    f"CatBoost tree {t} tests the one-hot value {key[1]} of {self.feature(split)!r}, "
                    "which its features_info does not list"
                )
                raise CompileError(msg)
            return self.one_hot_column[key], 0.5, True
        i = split["split_index"] - self.n_float_borders - self.n_one_hot
        if not 0 <= i < len(self.ctr_of_split) or self.ctr_of_split[i][1] != float(split["border"]):
            msg = (
                f"CatBoost tree {t}: the ctr split {split['split_index']} (border {split['border']}) "
                "matches no ctr border of features_info"
            )
            raise CompileError(msg)
        k, border = self.ctr_of_split[i]
        return self.ctr_column0 + k, border, True

    def steps(self) -> list[dict[str, Any]]:
        n = len(self.names)
        steps: list[dict[str, Any]] = [{"name": "hash", "type": "catboost_hash"}]
        if self.one_hot:
            parts: list[dict[str, Any]] = [{"name": "inputs", "columns": list(range(n))}]
            for f, values in self.one_hot:
                enc = {
                    "categories": values,
                    "hot": list(range(len(values))),
                    "width": len(values),
                    "unknown": -1,
                    "missing": -1,
                }
                name = self.names[self.cat_column[f]]
                parts.append(
                    {"name": name, "columns": [self.cat_column[f]], "steps": [{"type": "one_hot", "columns": [enc]}]}
                )
            steps.append({"name": "one_hot", "type": "columns", "parts": parts})
        if self.ctrs:
            steps.append({"name": "ctr", "type": "catboost_ctr", **self._ctrs()})
        return steps

    def _ctrs(self) -> dict[str, Any]:
        tables: list[dict[str, Any]] = []
        table_of: dict[str, int] = {}
        ctrs = []
        for k, c in enumerate(self.ctrs):
            kind = c["ctr_type"]
            elements = c["elements"]
            described = " x ".join(self._element_name(e) for e in elements)
            if kind not in CTR_TYPES:
                msg = (
                    f"CatBoost ctr {k} over {described} has the type {kind!r}; streamml computes {', '.join(CTR_TYPES)}"
                )
                raise CompileError(msg)
            key = c["identifier"]
            if key not in table_of:
                data = self.ctr_data.get(key)
                if data is None:
                    msg = (
                        f"CatBoost ctr {k} ({kind} over {described}) has no table in ctr_data; the model is incomplete"
                    )
                    raise CompileError(msg)
                table_of[key] = len(tables)
                tables.append(self._table(kind, data, described))
            spec: dict[str, Any] = {"table": table_of[key], "cat": [], "float": [], "exact": []}
            for e in elements:
                what = e["combination_element"]
                if what == "cat_feature_value":
                    spec["cat"].append(self.cat_column[e["cat_feature_index"]])
                elif what == "float_feature":
                    f = e["float_feature_index"]
                    spec["float"].append(
                        {"column": self.column[f], "border": float(e["border"]), "nan_true": self.nan_right[f]}
                    )
                elif what == "cat_feature_exact_value":
                    spec["exact"].append({"column": self.cat_column[e["cat_feature_index"]], "value": int(e["value"])})
                else:
                    msg = (
                        f"CatBoost ctr {k} ({kind}) combines a {what!r}; "
                        "streamml combines categorical values, float borders and one-hot values"
                    )
                    raise CompileError(msg)
            spec.update(
                target_border_idx=int(c.get("target_border_idx", 0)),
                prior_num=float(c["prior_numerator"]),
                prior_denom=float(c["prior_denomerator"]),
                shift=float(c["shift"]),
                scale=float(c["scale"]),
            )
            ctrs.append(spec)
        return {"tables": tables, "ctrs": ctrs}

    def _element_name(self, e: dict[str, Any]) -> str:
        if e["combination_element"] == "float_feature":
            f = e["float_feature_index"]
            return f"{self.names[self.column[f]]} > {e['border']}" if f in self.column else f"float feature {f}"
        name = (
            self.names[self.cat_column[e["cat_feature_index"]]]
            if e.get("cat_feature_index") in self.cat_column
            else "?"
        )
        return f"{name} == {e['value']}" if e["combination_element"] == "cat_feature_exact_value" else name

    @staticmethod
    def _table(kind: str, data: dict[str, Any], described: str) -> dict[str, Any]:
        stride = int(data["hash_stride"]) - 1
        flat = data["hash_map"]
        if stride < 1 or len(flat) % (stride + 1):
            msg = (
                f"CatBoost ctr table for {kind} over {described}: hash_map of {len(flat)} entries "
                f"does not fit hash_stride {stride + 1}"
            )
            raise CompileError(msg)
        hashes = [int(h) for h in flat[:: stride + 1]]
        values = [float(v) for i, v in enumerate(flat) if i % (stride + 1)]
        return {
            "kind": kind,
            "stride": stride,
            "hashes": hashes,
            "values": values,
            "counter_denominator": int(data.get("counter_denominator", 0)),
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
