"""LightGBM models to the model IR (``docs/ir.md``).

Accepts a ``lightgbm.Booster``, a fitted scikit-learn wrapper (``LGBMClassifier``,
``LGBMRegressor``, ...), a ``Booster.dump_model()`` dict, or the path of a model file: the text
format of ``Booster.save_model`` or the JSON of ``Booster.dump_model()``. Files are parsed here,
so converting a file needs no LightGBM installed. A Booster is converted through its text format
(``model_to_string``), which holds every threshold and leaf value at full precision.

LightGBM's prediction rules (``include/LightGBM/tree.h``, ``src/c_api.cpp``) and how they map
onto the IR:

- features are float64 and compared with ``<=``; LightGBM first turns any value with
  ``|v| <= kZeroThreshold`` (``1e-35f`` widened to double) into ``0.0``, which the converter folds
  into the thresholds that lie within ``kZeroThreshold`` of zero;
- a numeric node's missing type ``None``/``Zero``/``NaN`` is the IR's ``"none"``/``"zero"``/
  ``"nan"`` (``None``: a NaN is read as 0.0);
- a categorical node sends NaN and ``int(v) < 0`` right, else left when ``int(v)`` is in its
  category set (``int(v)`` truncates, so ``-1 < v < 0`` is category 0): the IR's
  ``category_match: "int_cast"``;
- trees add up in float64 in file order (multiclass trees interleave: tree ``i`` is class
  ``i % num_class``); the init score (``boost_from_average``) is already in the first trees'
  leaves; ``boosting=rf`` averages (``aggregate: "mean"``);
- a threshold of +inf (LightGBM's split of the missing values from all the others) has no JSON
  form: such a node becomes a categorical node with no categories and swapped children.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from streamml.compile._common import classes as _classes
from streamml.compile._common import depth as _depth
from streamml.compile._common import feature_names as _feature_names
from streamml.errors import CompileError

#: LightGBM's ``kZeroThreshold`` (``const double kZeroThreshold = 1e-35f``), as a double.
K_ZERO = 1.0000000180025095e-35
_BELOW_NEG_K_ZERO = math.nextafter(-K_ZERO, -math.inf)
_DBL_MAX = sys.float_info.max

#: objective -> (task, link); "binary"/"multiclass"/"multiclassova" are handled apart.
_REGRESSION_OBJECTIVES = {
    "regression": "identity",
    "regression_l1": "identity",
    "huber": "identity",
    "fair": "identity",
    "quantile": "identity",
    "mape": "identity",
    "poisson": "exp",
    "gamma": "exp",
    "tweedie": "exp",
    "cross_entropy": "sigmoid",
    "lambdarank": "identity",
    "rank_xendcg": "identity",
}
SUPPORTED_OBJECTIVES = (*_REGRESSION_OBJECTIVES, "binary", "multiclass", "multiclassova")

_MISSING = {0: "none", 1: "zero", 2: "nan"}
_JSON_MISSING = {"None": 0, "Zero": 1, "NaN": 2}


def to_ir(model: Any, *, features: list[str] | None = None) -> dict[str, Any]:
    """Convert a LightGBM model to an IR document.

    Args:
        model: a ``lightgbm.Booster``, a fitted ``LGBMModel`` (``LGBMClassifier``,
            ``LGBMRegressor``, ...), a ``Booster.dump_model()`` dict, or the path of a model
            saved by ``Booster.save_model`` (text) or a ``dump_model()`` written as JSON.
        features: input names, in model order; the model's own feature names if not given.

    Returns:
        The IR document (``docs/ir.md``).

    Raises:
        CompileError: the file is missing or corrupt, the objective or tree kind is not
            supported, or ``features`` does not have one name per model feature.

    Examples:
        >>> ir = to_ir({"version": "v4", "num_class": 1, "num_tree_per_iteration": 1,
        ...             "max_feature_idx": 0, "objective": "regression", "feature_names": ["a"],
        ...             "tree_info": [{"num_leaves": 1, "tree_structure": {"leaf_value": 2.5}}]})
        >>> ir["task"], ir["model"]["trees"][0]["leaf_value"]
        ('regression', [2.5])
    """
    classes = None
    source = "the lightgbm model"
    try:
        if isinstance(model, str | os.PathLike):
            source = str(model)
            parsed = _load_file(Path(model))
        elif isinstance(model, dict):
            source = "the dump_model() dict"
            parsed = _parse_json(model, source)
        else:
            booster, classes, source = _booster_of(model)
            parsed = _parse_text(booster.model_to_string(), source)
        return _build(parsed, source, features, classes)
    except CompileError:
        raise
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        msg = f"{source}: a field is missing or malformed ({type(exc).__name__}: {exc}); the model file is corrupt"
        raise CompileError(msg) from exc


def _booster_of(model: Any) -> tuple[Any, list[Any] | None, str]:
    kind = type(model).__name__
    lightgbm = sys.modules.get("lightgbm")  # a lightgbm object means lightgbm is imported
    if lightgbm is not None and isinstance(model, lightgbm.Booster):
        return model, None, "the lightgbm.Booster"
    if lightgbm is not None and isinstance(model, lightgbm.LGBMModel):
        try:
            booster = model.booster_
        except (ValueError, AttributeError) as exc:  # LightGBM's LGBMNotFittedError
            msg = f"the {kind} is not fitted; fit it before compiling it"
            raise CompileError(msg) from exc
        classes = getattr(model, "classes_", None)
        return booster, None if classes is None else list(classes), f"the {kind}"
    msg = (
        f"cannot convert a {type(model).__module__}.{kind} with the lightgbm converter; expected a "
        "lightgbm.Booster, a fitted LGBMClassifier/LGBMRegressor, or the path of a LightGBM model file "
        "(text from save_model, or JSON from dump_model)"
    )
    raise CompileError(msg)


# -- reading ------------------------------------------------------------------------------------


def _load_file(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        msg = f"cannot read the lightgbm model file {path}: {exc.strerror or exc}"
        raise CompileError(msg) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        msg = f"{path} is not a lightgbm model file; expected the text of save_model or the JSON of dump_model"
        raise CompileError(msg) from exc
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            doc = json.loads(stripped)
        except json.JSONDecodeError as exc:
            msg = (
                f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
                "expected the JSON of Booster.dump_model()"
            )
            raise CompileError(msg) from exc
        except RecursionError as exc:
            msg = f"{path} nests too deeply for Python's JSON parser; save the model as text (save_model) instead"
            raise CompileError(msg) from exc
        return _parse_json(doc, str(path))
    if not stripped.startswith("tree"):
        msg = (
            f"{path} is not a lightgbm model file; expected the text of save_model (starting with 'tree') "
            "or the JSON of dump_model"
        )
        raise CompileError(msg)
    return _parse_text(text, str(path))


def _parse_text(text: str, source: str) -> dict[str, Any]:
    """Parse the text format of ``Booster.save_model`` / ``model_to_string``."""
    lines = text.splitlines()
    header: dict[str, str] = {}
    i = 0
    while i < len(lines) and not lines[i].startswith("Tree="):
        line = lines[i].strip()
        if line == "end of trees":
            break
        key, sep, value = line.partition("=")
        header[key] = value if sep else ""
        i += 1
    blocks: list[dict[str, str]] = []
    ended = False
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if line == "end of trees":
            ended = True
            break
        if line.startswith("Tree="):
            blocks.append({})
        elif line and blocks:
            key, _, value = line.partition("=")
            blocks[-1][key] = value
    n_sizes = len(header.get("tree_sizes", "").split())
    if not ended or (n_sizes and n_sizes != len(blocks)):
        msg = (
            f"{source} is truncated or corrupt: expected {n_sizes} trees and the line 'end of trees', "
            f"found {len(blocks)} trees{'' if ended else ' and no end line'}"
        )
        raise CompileError(msg)
    pandas_categorical = None
    for line in lines[i:]:
        if line.startswith("pandas_categorical:"):
            try:
                pandas_categorical = json.loads(line.partition(":")[2])
            except json.JSONDecodeError:
                pandas_categorical = None
    model = {
        "pandas_categorical": pandas_categorical,
        "num_class": _int(header, "num_class", source),
        "num_tree_per_iteration": _int(header, "num_tree_per_iteration", source),
        "max_feature_idx": _int(header, "max_feature_idx", source),
        "objective": header.get("objective"),
        "average_output": "average_output" in header,
        "feature_names": header.get("feature_names", "").split(),
        "trees": [_text_tree(block, k, source) for k, block in enumerate(blocks)],
    }
    return model


def _int(fields: dict[str, str], key: str, source: str, where: str = "") -> int:
    try:
        return int(fields[key])
    except (KeyError, ValueError) as exc:
        msg = f"{source}: {where}'{key}' is missing or not an integer; the model file is corrupt"
        raise CompileError(msg) from exc


def _numbers(block: dict[str, str], key: str, n: int, source: str, where: str, kind: type = float) -> list[Any]:
    try:
        values = [kind(v) for v in block[key].split()] if n else []
    except (KeyError, ValueError) as exc:
        msg = f"{source}: {where}'{key}' is missing or not a list of numbers; the model file is corrupt"
        raise CompileError(msg) from exc
    if len(values) != n:
        msg = f"{source}: {where}'{key}' has {len(values)} values, expected {n}; the model file is corrupt"
        raise CompileError(msg)
    return values


def _text_tree(block: dict[str, str], k: int, source: str) -> dict[str, Any]:
    where = f"tree {k}: "
    if block.get("is_linear", "0") not in ("0", ""):
        msg = f"{source}: {where}linear trees (linear_tree=true) are not supported; train without linear_tree"
        raise CompileError(msg)
    leaves = _int(block, "num_leaves", source, where)
    if leaves < 1:
        msg = f"{source}: {where}num_leaves is {leaves}, expected at least 1"
        raise CompileError(msg)
    n = leaves - 1
    tree = {
        "split_feature": _numbers(block, "split_feature", n, source, where, int),
        "threshold": _numbers(block, "threshold", n, source, where),
        "decision_type": _numbers(block, "decision_type", n, source, where, int),
        "left": _numbers(block, "left_child", n, source, where, int),
        "right": _numbers(block, "right_child", n, source, where, int),
        "leaf_value": _numbers(block, "leaf_value", leaves, source, where),
        "categories": [None] * n,
    }
    num_cat = _int(block, "num_cat", source, where) if "num_cat" in block else 0
    if num_cat > 0:
        bounds = _numbers(block, "cat_boundaries", num_cat + 1, source, where, int)
        words = block.get("cat_threshold", "").split()
        try:
            bits = [int(w) for w in words]
        except ValueError as exc:
            msg = f"{source}: {where}'cat_threshold' is not a list of integers; the model file is corrupt"
            raise CompileError(msg) from exc
        for node in range(n):
            if tree["decision_type"][node] & 1:
                idx = int(tree["threshold"][node])
                if not 0 <= idx < num_cat or bounds[idx + 1] > len(bits):
                    msg = f"{source}: {where}node {node} points at categorical split {idx}, which does not exist"
                    raise CompileError(msg)
                chunk = bits[bounds[idx] : bounds[idx + 1]]
                tree["categories"][node] = [
                    32 * w + b for w, word in enumerate(chunk) for b in range(32) if word >> b & 1
                ]
    return tree


def _parse_json(doc: Any, source: str) -> dict[str, Any]:
    """Parse the output of ``Booster.dump_model()``."""
    if not isinstance(doc, dict) or not isinstance(doc.get("tree_info"), list):
        msg = f"{source} is not a lightgbm dump_model() document; expected an object with a 'tree_info' list"
        raise CompileError(msg)
    try:
        header = {
            "pandas_categorical": doc.get("pandas_categorical"),
            "num_class": int(doc.get("num_class", 1)),
            "num_tree_per_iteration": int(doc.get("num_tree_per_iteration", doc.get("num_class", 1))),
            "max_feature_idx": int(doc["max_feature_idx"]),
            "objective": doc.get("objective"),
            "average_output": bool(doc.get("average_output", False)),
            "feature_names": [str(f) for f in doc.get("feature_names") or []],
        }
    except (KeyError, TypeError, ValueError) as exc:
        msg = f"{source}: the field {exc} is missing or malformed; expected the JSON of Booster.dump_model()"
        raise CompileError(msg) from exc
    return {**header, "trees": [_json_tree(t, f"{source}: tree {k}") for k, t in enumerate(doc["tree_info"])]}


def _json_tree(info: Any, where: str) -> dict[str, Any]:
    """One ``tree_info`` entry as node columns, keeping LightGBM's node and leaf numbers."""
    try:
        leaves = int(info["num_leaves"])
        root = info["tree_structure"]
    except (KeyError, TypeError, ValueError) as exc:
        msg = f"{where}: num_leaves or tree_structure is missing or malformed; expected the JSON of dump_model()"
        raise CompileError(msg) from exc
    n = leaves - 1
    tree: dict[str, Any] = {
        "split_feature": [0] * n,
        "threshold": [0.0] * n,
        "decision_type": [0] * n,
        "left": [0] * n,
        "right": [0] * n,
        "leaf_value": [0.0] * leaves,
        "categories": [None] * n,
    }
    seen_nodes: set[int] = set()
    seen_leaves: set[int] = set()
    stack: list[tuple[Any, int, str]] = [(root, -1, "")]  # (JSON node, parent, side): no recursion limit
    while stack:
        node, parent, side = stack.pop()
        try:
            index = _json_node(node, tree, leaves, seen_nodes, seen_leaves, where)
            if index >= 0:
                stack.append((node["right_child"], index, "right"))
                stack.append((node["left_child"], index, "left"))
        except CompileError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            msg = f"{where}: the field {exc} of a node is missing or malformed; expected the JSON of dump_model()"
            raise CompileError(msg) from exc
        if parent >= 0:
            tree[side][parent] = index
    if len(seen_nodes) != n or len(seen_leaves) != leaves:
        msg = f"{where}: num_leaves is {leaves} but the tree structure has {len(seen_leaves)} leaves"
        raise CompileError(msg)
    return tree


def _json_node(
    node: dict[str, Any], tree: dict[str, Any], leaves: int, seen_nodes: set[int], seen_leaves: set[int], where: str
) -> int:
    """Fill the columns of one JSON node; return its index (``~leaf`` for a leaf)."""
    if "split_index" not in node:
        if "leaf_coeff" in node or "leaf_const" in node:
            msg = f"{where}: linear trees (linear_tree=true) are not supported; train without linear_tree"
            raise CompileError(msg)
        leaf = int(node.get("leaf_index", 0))
        if not 0 <= leaf < leaves or leaf in seen_leaves:
            msg = f"{where}: leaf_index {leaf} is out of range or repeated (num_leaves {leaves})"
            raise CompileError(msg)
        seen_leaves.add(leaf)
        tree["leaf_value"][leaf] = float(node["leaf_value"])
        return ~leaf
    idx = int(node["split_index"])
    if not 0 <= idx < leaves - 1 or idx in seen_nodes:
        msg = f"{where}: split_index {idx} is out of range or repeated (num_leaves {leaves})"
        raise CompileError(msg)
    seen_nodes.add(idx)
    tree["split_feature"][idx] = int(node["split_feature"])
    missing = _JSON_MISSING.get(node.get("missing_type", "None"))
    if missing is None:
        msg = f"{where}: unknown missing_type {node.get('missing_type')!r}; expected None, Zero or NaN"
        raise CompileError(msg)
    dt = (missing << 2) | (2 if node.get("default_left") else 0)
    if node["decision_type"] == "==":
        dt |= 1
        tree["categories"][idx] = sorted(int(c) for c in str(node["threshold"]).split("||") if c != "")
    elif node["decision_type"] == "<=":
        # dump_model() writes thresholds beyond +-1e300 (in practice +-inf) as +-1e300
        t = float(node["threshold"])
        tree["threshold"][idx] = math.copysign(math.inf, t) if abs(t) >= 1e300 else t
    else:
        msg = f"{where}: unknown decision_type {node['decision_type']!r}; expected '<=' or '=='"
        raise CompileError(msg)
    tree["decision_type"][idx] = dt
    return idx


# -- building the IR ----------------------------------------------------------------------------


def _objective(objective: str | None, num_class: int, source: str) -> tuple[str, str, float, str]:
    """(task, link, sigmoid_scale, objective name) of a LightGBM objective string."""
    tokens = (objective or "").split()
    name = tokens[0] if tokens else ""
    params = dict(t.partition(":")[::2] for t in tokens[1:])
    supported = ", ".join(SUPPORTED_OBJECTIVES)
    if name not in SUPPORTED_OBJECTIVES:
        msg = f"{source}: the objective {name or 'custom'!r} is not supported; supported objectives: {supported}"
        raise CompileError(msg)
    if "sqrt" in tokens[1:]:
        msg = f"{source}: the objective '{objective}' (reg_sqrt=true) is not supported; train without reg_sqrt"
        raise CompileError(msg)
    scale = float(params.get("sigmoid", 1.0))
    if name in ("multiclass", "multiclassova"):
        return "multiclass", "softmax" if name == "multiclass" else "sigmoid", scale, name
    if num_class != 1:
        msg = f"{source}: the objective {name!r} with num_class {num_class} is not supported; expected num_class 1"
        raise CompileError(msg)
    if name == "binary":
        return "binary", "sigmoid", scale, name
    return "regression", _REGRESSION_OBJECTIVES[name], 1.0, name


def _build(
    parsed: dict[str, Any], source: str, features: list[str] | None, classes: list[Any] | None
) -> dict[str, Any]:
    num_class = parsed["num_class"]
    task, link, scale, objective = _objective(parsed["objective"], num_class, source)
    per_iter = parsed["num_tree_per_iteration"]
    n_features = parsed["max_feature_idx"] + 1
    n_outputs = num_class if task == "multiclass" else 1
    if per_iter != n_outputs:
        msg = f"{source}: num_tree_per_iteration is {per_iter}, expected {n_outputs} for the objective {objective!r}"
        raise CompileError(msg)
    trees = parsed["trees"]
    if len(trees) % per_iter:
        msg = f"{source}: {len(trees)} trees is not a whole number of iterations of {per_iter} trees"
        raise CompileError(msg)
    names = _feature_names(parsed["feature_names"], n_features, features, source)
    ir_trees = [_TreeBuilder(t, n_features, f"{source}: tree {k}").build(k % per_iter) for k, t in enumerate(trees)]
    metadata = {
        "objective": parsed["objective"],
        "num_trees": len(trees),
        "num_iterations": len(trees) // per_iter,
        "max_depth": max((_depth(t) for t in trees), default=0),
        "num_leaves": max((len(t["leaf_value"]) for t in trees), default=0),
    }
    if parsed["pandas_categorical"]:
        # trained on pandas categorical columns: the model reads their codes, in this order
        metadata["pandas_categorical"] = parsed["pandas_categorical"]
    return {
        "format": "streamml-ir",
        "version": 1,
        "name": "lightgbm_model",
        "model_version": "1",
        "framework": "lightgbm",
        "task": task,
        "features": names,
        "classes": _classes(task, n_outputs, classes, source),
        "preprocess": None,
        "model": {
            "type": "trees",
            "n_outputs": n_outputs,
            "base_score": [0.0] * n_outputs,
            "aggregate": "mean" if parsed["average_output"] else "sum",
            "feature_cast": "float64",
            "comparison": "le",
            "accumulate": "float64",
            "sigmoid_scale": scale,
            "category_match": "int_cast",
            "trees": ir_trees,
        },
        "link": link,
        "metadata": metadata,
        "drift_reference": None,
    }


def _threshold(t: float) -> float:
    """The threshold that gives LightGBM's result once its ``|v| <= kZeroThreshold -> 0`` rule is folded in."""
    if -K_ZERO <= t < 0.0:
        return _BELOW_NEG_K_ZERO  # tiny values are 0 > t: left only below -kZeroThreshold
    if 0.0 <= t < K_ZERO:
        return K_ZERO  # tiny values are 0 <= t: left up to +kZeroThreshold
    return t


class _TreeBuilder:
    """Emits one LightGBM tree as IR node columns, walking it with an explicit stack.

    LightGBM trees can be deeper than Python's recursion limit.
    """

    def __init__(self, tree: dict[str, Any], n_features: int, where: str) -> None:
        self.tree = tree
        self.n_features = n_features
        self.where = where
        self.cols: dict[str, list[Any]] = {
            key: [] for key in ("split_feature", "threshold", "left", "right", "default_left", "missing", "categories")
        }
        self.leaf_value: list[float] = []
        # (LightGBM node, IR parent, "left" | "right"): emit the node, link it to its parent
        self.stack: list[tuple[int, int, str]] = []

    def build(self, output: int) -> dict[str, Any]:
        tree = self.tree
        n_nodes = len(tree["split_feature"])
        if n_nodes == 0:
            return {"output": output, **self.cols, "leaf_value": [tree["leaf_value"][0]]}
        self._check_links()
        self.stack.append((0, -1, ""))
        while self.stack:
            n, parent, side = self.stack.pop()
            index = self._emit(n)
            if parent >= 0:
                self.cols[side][parent] = index
        return {"output": output, **self.cols, "leaf_value": self.leaf_value}

    def _check_links(self) -> None:
        """Every child exists and has one parent, the root none: the walk from the root ends."""
        tree = self.tree
        n_nodes, n_leaves = len(tree["split_feature"]), len(tree["leaf_value"])
        seen: set[int] = set()
        for child in (*tree["left"], *tree["right"]):
            if child == 0 or child in seen or not (child < n_nodes if child >= 0 else ~child < n_leaves):
                what = f"node {child}" if child >= 0 else f"leaf {~child}"
                msg = f"{self.where}: {what} is out of range, the root, or the child of two nodes; the model is corrupt"
                raise CompileError(msg)
            seen.add(child)

    def _node(self, feature: int, threshold: float, default_left: bool, missing: str, cats: list[int] | None) -> int:
        cols = self.cols
        cols["split_feature"].append(feature)
        cols["threshold"].append(threshold)
        cols["left"].append(0)
        cols["right"].append(0)
        cols["default_left"].append(default_left)
        cols["missing"].append(missing)
        cols["categories"].append(cats)
        return len(cols["split_feature"]) - 1

    def _children(self, index: int, left: int, right: int) -> None:
        self.stack.append((right, index, "right"))
        self.stack.append((left, index, "left"))

    def _emit(self, n: int) -> int:
        """Emit LightGBM node ``n`` (leaf ``~n`` if negative), queue its children, return its IR index."""
        tree = self.tree
        while True:
            if n < 0:
                if not math.isfinite(tree["leaf_value"][~n]):
                    msg = f"{self.where}: leaf {~n} has the value {tree['leaf_value'][~n]}; expected a finite number"
                    raise CompileError(msg)
                self.leaf_value.append(tree["leaf_value"][~n])
                return ~(len(self.leaf_value) - 1)
            feature = tree["split_feature"][n]
            if not 0 <= feature < self.n_features:
                msg = (
                    f"{self.where}: split feature {feature} is out of range (the model has {self.n_features} features)"
                )
                raise CompileError(msg)
            dt = tree["decision_type"][n]
            left, right = tree["left"][n], tree["right"][n]
            if not dt & 1:  # numeric
                threshold, default_left, missing = tree["threshold"][n], bool(dt & 2), _MISSING[(dt >> 2) & 3]
                if threshold == math.inf:  # every number goes left; JSON has no infinity
                    if missing == "none" or default_left:  # and so does every missing value
                        n = left
                        continue
                    # docs/ir.md: a categorical node with no categories (every number goes right)
                    # and swapped children
                    index = self._node(feature, 0.0, not default_left, missing, [])
                    self._children(index, right, left)
                    return index
                # -inf: v <= -DBL_MAX also sends -DBL_MAX left, where LightGBM sends it right
                threshold = -_DBL_MAX if threshold == -math.inf else _threshold(threshold)
                index = self._node(feature, threshold, default_left, missing, None)
                self._children(index, left, right)
                return index
            # IR category_match "int_cast" is LightGBM's rule: NaN goes right (missing "nan",
            # default right), else c = int(v) (toward zero, so -1 < v < 0 is category 0),
            # right if c < 0, left if c is in the set.
            cats = tree["categories"][n]
            index = self._node(feature, 0.0, False, "nan", list(cats))
            self._children(index, left, right)
            return index
