"""XGBoost models to the model IR (``docs/ir.md``).

Accepts an ``xgboost.Booster``, a fitted scikit-learn wrapper (``XGBClassifier``,
``XGBRegressor``), or the path of a model saved by ``Booster.save_model`` as JSON (``.json``) or
UBJSON (``.ubj``). Files are parsed here (UBJSON with the small decoder below), so converting a
file needs no XGBoost installed; a Booster is converted through ``save_raw("json")``.

XGBoost's prediction rules (``src/predictor/cpu_predictor.cc``, ``predict_fn.h``) and how they
map onto the IR:

- features are rounded to float32 and go left when ``x < split_condition`` (float32):
  ``feature_cast: "float32"``, ``comparison: "lt"``; NaN goes the node's default direction;
- a categorical node sends the categories in its set (and nothing else) right, and negative
  values left: the IR's categorical rule with the children swapped;
- the prediction starts from the intercept (``base_score``, turned into a margin with the
  objective's float32 ``ProbToMargin``) and adds each tree to it in float32. The IR adds trees
  from 0, so the intercept is emitted as a first single-leaf tree of each output and the IR's
  ``base_score`` is 0 (``accumulate: "float32"``); the margins are then bit-exact;
- XGBoost applies the link (sigmoid, softmax, exp) in float32; the IR does it in float64, so
  probabilities differ from XGBoost's by about a float32 rounding (a relative 1e-7).
"""

from __future__ import annotations

import array
import ctypes
import ctypes.util
import json
import math
import os
import struct
import sys
from pathlib import Path
from typing import Any

from streamml.compile._common import classes as _classes
from streamml.compile._common import depth as _depth
from streamml.compile._common import feature_names as _feature_names
from streamml.errors import CompileError

_DBL_MAX = sys.float_info.max

# objective -> (task, link, how base_score becomes a margin)
_OBJECTIVES = {
    "reg:squarederror": ("regression", "identity", "identity"),
    "reg:linear": ("regression", "identity", "identity"),
    "reg:squaredlogerror": ("regression", "identity", "identity"),
    "reg:pseudohubererror": ("regression", "identity", "identity"),
    "reg:absoluteerror": ("regression", "identity", "identity"),
    "reg:quantileerror": ("regression", "identity", "identity"),
    "reg:logistic": ("regression", "sigmoid", "logit"),
    "binary:logistic": ("binary", "sigmoid", "logit"),
    "count:poisson": ("regression", "exp", "log"),
    "reg:gamma": ("regression", "exp", "log"),
    "reg:tweedie": ("regression", "exp", "log"),
    "multi:softprob": ("multiclass", "softmax", "identity"),
    "multi:softmax": ("multiclass", "softmax", "identity"),
}
SUPPORTED_OBJECTIVES = tuple(_OBJECTIVES)


def to_ir(model: Any, *, features: list[str] | None = None) -> dict[str, Any]:
    """Convert an XGBoost model to an IR document.

    Args:
        model: an ``xgboost.Booster``, a fitted ``XGBClassifier``/``XGBRegressor``, the path of a
            ``.json`` or ``.ubj`` model saved by ``save_model``, or the parsed JSON model (dict).
        features: input names, in model order; the model's feature names (or ``f0``, ``f1``...)
            if not given.

    Returns:
        The IR document (``docs/ir.md``).

    Raises:
        CompileError: the file is missing or corrupt, the objective, booster or tree kind is not
            supported, or ``features`` does not have one name per model feature.

    Examples:
        >>> tree = {"left_children": [-1], "right_children": [-1], "split_indices": [0],
        ...         "split_conditions": [0.25], "default_left": [0]}
        >>> doc = {"learner": {"objective": {"name": "reg:squarederror"}, "feature_names": [],
        ...        "learner_model_param": {"base_score": "[5E-1]", "num_class": "0", "num_feature": "2"},
        ...        "gradient_booster": {"name": "gbtree", "model": {"trees": [tree], "tree_info": [0]}}}}
        >>> ir = to_ir(doc)
        >>> ir["features"], [t["leaf_value"] for t in ir["model"]["trees"]]
        (['f0', 'f1'], [[0.5], [0.25]])
    """
    classes = None
    rounds = None
    if isinstance(model, str | os.PathLike):
        source = str(model)
        doc = _load_file(Path(model))
    elif isinstance(model, dict):
        source = "the xgboost JSON model"
        doc = model
    else:
        booster, classes, rounds, source = _booster_of(model)
        doc = json.loads(bytes(booster.save_raw("json")))
    try:
        return _build(doc, source, features, classes, rounds)
    except CompileError:
        raise
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        msg = f"{source}: a field is missing or malformed ({type(exc).__name__}: {exc}); the model is corrupt"
        raise CompileError(msg) from exc


def _booster_of(model: Any) -> tuple[Any, list[Any] | None, int | None, str]:
    kind = type(model).__name__
    xgboost = sys.modules.get("xgboost")  # an xgboost object means xgboost is imported
    if xgboost is not None and isinstance(model, xgboost.Booster):
        return model, None, None, "the xgboost.Booster"
    if xgboost is not None and isinstance(model, xgboost.XGBModel):
        try:
            booster = model.get_booster()
        except (ValueError, AttributeError) as exc:  # sklearn's NotFittedError
            msg = f"the {kind} is not fitted; fit it before compiling it"
            raise CompileError(msg) from exc
        missing = model.missing
        if missing is not None and not math.isnan(float(missing)):
            msg = f"the {kind} has missing={missing!r}; only NaN as the missing value is supported"
            raise CompileError(msg)
        # the wrapper predicts with the trees up to best_iteration when early stopping set it
        rounds = None
        best = booster.attr("best_iteration")
        if best is not None:
            rounds = int(best) + 1
        classes = getattr(model, "classes_", None)
        return booster, None if classes is None else list(classes), rounds, f"the {kind}"
    msg = (
        f"cannot convert a {type(model).__module__}.{kind} with the xgboost converter; expected an xgboost.Booster, a "
        "fitted XGBClassifier/XGBRegressor, or the path of an XGBoost model saved as .json or .ubj"
    )
    raise CompileError(msg)


# -- reading ------------------------------------------------------------------------------------


def _load_file(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        msg = f"cannot read the xgboost model file {path}: {exc.strerror or exc}"
        raise CompileError(msg) from exc
    suffix = path.suffix.lower()
    head = data.lstrip()[:2]
    is_json = suffix == ".json" or (suffix != ".ubj" and head[:1] == b"{" and head[1:2] in b' \t\r\n"}')
    if head[:1] != b"{":
        msg = (
            f"{path} is not an xgboost JSON or UBJSON model; save the model with "
            "Booster.save_model('model.json') or ('model.ubj') (the old binary format is not supported)"
        )
        raise CompileError(msg)
    try:
        doc = json.loads(data) if is_json else _ubjson_loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        msg = f"{path} is not valid JSON ({exc}); expected an xgboost model saved by save_model('....json')"
        raise CompileError(msg) from exc
    except UBJSONError as exc:
        msg = f"{path} is not valid UBJSON ({exc}); expected an xgboost model saved by save_model('....ubj')"
        raise CompileError(msg) from exc
    return doc


# -- building the IR ----------------------------------------------------------------------------


def _get(doc: Any, source: str, *keys: str) -> Any:
    node = doc
    for i, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            path = ".".join(keys[: i + 1])
            msg = f"{source}: the field {path} is missing; expected an xgboost model saved by save_model"
            raise CompileError(msg)
        node = node[key]
    return node


def _number_list(text: Any, source: str, field: str) -> list[float]:
    try:
        value = text
        if isinstance(text, str):
            value = json.loads(text) if text.strip().startswith("[") else float(text)
        values = [float(v) for v in value] if isinstance(value, list) else [float(value)]
    except (TypeError, ValueError) as exc:
        msg = f"{source}: {field} is {text!r}; expected a number or a list of numbers"
        raise CompileError(msg) from exc
    return values


def _f32(x: float) -> float:
    """``x`` rounded to float32 (to nearest, as a C cast does)."""
    try:
        return struct.unpack("<f", struct.pack("<f", x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


def _build(
    doc: dict[str, Any], source: str, features: list[str] | None, classes: list[Any] | None, rounds: int | None
) -> dict[str, Any]:
    learner = _get(doc, source, "learner")
    objective = _get(doc, source, "learner", "objective", "name")
    if objective not in _OBJECTIVES:
        msg = f"{source}: the objective {objective!r} is not supported; supported objectives: {', '.join(_OBJECTIVES)}"
        raise CompileError(msg)
    task, link, to_margin = _OBJECTIVES[objective]
    booster = _get(doc, source, "learner", "gradient_booster")
    name = booster.get("name")
    if name != "gbtree":
        msg = f"{source}: the booster {name!r} is not supported; supported boosters: gbtree"
        raise CompileError(msg)
    model = _get(doc, source, "learner", "gradient_booster", "model")
    params = _get(doc, source, "learner", "learner_model_param")
    n_features = int(_get(doc, source, "learner", "learner_model_param", "num_feature"))
    num_class = int(params.get("num_class", 0))
    num_target = int(params.get("num_target", 1))
    if num_target != 1:
        msg = f"{source}: the model has {num_target} targets; only single-target models are supported"
        raise CompileError(msg)
    n_outputs = num_class if task == "multiclass" else 1
    if (task == "multiclass" and num_class < 2) or (task != "multiclass" and num_class > 1):
        msg = f"{source}: num_class is {num_class}, which does not fit the objective {objective!r}"
        raise CompileError(msg)
    cats = model.get("cats") or {}
    if cats.get("enc"):
        msg = (
            f"{source}: the model stores a category encoding (it was trained on pandas or arrow categorical "
            "columns); only models trained on integer-coded categorical features are supported"
        )
        raise CompileError(msg)

    trees = _get(doc, source, "learner", "gradient_booster", "model", "trees")
    tree_info = list(_get(doc, source, "learner", "gradient_booster", "model", "tree_info"))
    if len(tree_info) != len(trees):
        msg = f"{source}: tree_info has {len(tree_info)} entries for {len(trees)} trees; the model is corrupt"
        raise CompileError(msg)
    if rounds is not None:
        indptr = model.get("iteration_indptr")
        if indptr is not None and rounds < len(indptr):
            keep = int(indptr[rounds])
        else:
            per_round = int(model.get("gbtree_model_param", {}).get("num_parallel_tree", 1)) * n_outputs
            keep = min(len(trees), rounds * per_round)
        trees, tree_info = trees[:keep], tree_info[:keep]

    base_score = _number_list(_get(doc, source, "learner", "learner_model_param", "base_score"), source, "base_score")
    base = _base_margin(base_score, to_margin, n_outputs)
    ir_trees: list[dict[str, Any]] = [_leaf_tree(k, base[k]) for k in range(n_outputs)]
    for k, (tree, output) in enumerate(zip(trees, tree_info, strict=True)):
        if not 0 <= int(output) < n_outputs:
            msg = f"{source}: tree {k} is for output {output}, but the model has {n_outputs} outputs"
            raise CompileError(msg)
        ir_trees.append(_ir_tree(tree, int(output), n_features, f"{source}: tree {k}"))

    names = _feature_names(learner.get("feature_names") or [], n_features, features, source)
    metadata = {
        "objective": objective,
        "num_trees": len(trees),
        "max_depth": max((_depth(t) for t in ir_trees), default=0),
        "num_leaves": max((len(t["leaf_value"]) for t in ir_trees), default=0),
        "base_score": base_score,
        "base_margin": base,
        "note": "the first tree of each output is the intercept (base_score as a margin), added in float32",
    }
    best = (learner.get("attributes") or {}).get("best_iteration")
    if best is not None:
        metadata["best_iteration"] = int(best)
    return {
        "format": "streamml-ir",
        "version": 1,
        "name": "xgboost_model",
        "model_version": "1",
        "framework": "xgboost",
        "task": task,
        "features": names,
        "classes": _classes(task, n_outputs, classes, source),
        "preprocess": None,
        "model": {
            "type": "trees",
            "n_outputs": n_outputs,
            "base_score": [0.0] * n_outputs,
            "aggregate": "sum",
            "feature_cast": "float32",
            "comparison": "lt",
            "accumulate": "float32",
            "sigmoid_scale": 1.0,
            "category_match": "trunc",
            "trees": ir_trees,
        },
        "link": link,
        "metadata": metadata,
        "drift_reference": None,
    }


def _logf(x: float) -> float:
    """``logf`` of the C library, which XGBoost calls (``std::log(float)``), of a float32 value."""
    if _LIBM is not None:
        return _f32(_LIBM.logf(x))
    if x > 0:  # correctly rounded; the C library's logf may differ by an ulp
        return _f32(math.log(x))
    return -math.inf if x == 0 else math.nan


def _load_libm() -> Any:
    try:
        name = ctypes.util.find_library("m")
        lib = ctypes.CDLL(name) if name else None
        if lib is not None:
            lib.logf.restype = ctypes.c_float
            lib.logf.argtypes = [ctypes.c_float]
    except (OSError, AttributeError):
        return None
    return lib


_LIBM = _load_libm()


def _base_margin(values: list[float], to_margin: str, n_outputs: int) -> list[float]:
    """The intercept of each output as XGBoost computes it: ``ProbToMargin`` in float32."""
    if len(values) == 1:
        values = values * n_outputs
    if len(values) != n_outputs:
        msg = f"base_score has {len(values)} values for {n_outputs} outputs"
        raise CompileError(msg)
    # float32 arithmetic: a float32 division or subtraction done in float64 and rounded to
    # float32 is exactly the float32 operation (float64 has more than 2 * 24 + 2 bits)
    out = []
    for v in values:
        b = _f32(v)
        if to_margin == "logit":  # -logf(1.0f / base_score - 1.0f)
            m = -_logf(_f32(_f32(1.0 / b) - 1.0)) if 0.0 < b < 1.0 else math.nan
        elif to_margin == "log":  # logf(base_score)
            m = _logf(b) if b > 0.0 else math.nan
        else:
            m = b
        if not math.isfinite(m):
            msg = f"base_score {b} gives the margin {m} for this objective; expected a finite intercept"
            raise CompileError(msg)
        out.append(m)
    return out


def _leaf_tree(output: int, value: float) -> dict[str, Any]:
    empty: dict[str, list[Any]] = {
        key: [] for key in ("split_feature", "threshold", "left", "right", "default_left", "missing", "categories")
    }
    return {"output": output, **empty, "leaf_value": [value]}


def _ir_tree(tree: dict[str, Any], output: int, n_features: int, where: str) -> dict[str, Any]:
    try:
        left = list(tree["left_children"])
        right = list(tree["right_children"])
        feature = list(tree["split_indices"])
        cond = list(tree["split_conditions"])
        default_left = list(tree["default_left"])
    except (KeyError, TypeError) as exc:
        msg = f"{where}: the field {exc} is missing; the model is corrupt"
        raise CompileError(msg) from exc
    n = len(left)
    if not n or any(len(c) != n for c in (right, feature, cond, default_left)):
        msg = f"{where}: the node arrays have different lengths; the model is corrupt"
        raise CompileError(msg)
    size_leaf = int(tree.get("tree_param", {}).get("size_leaf_vector", 1) or 1)
    if size_leaf > 1:
        msg = f"{where}: vector leaves (multi_strategy='multi_output_tree') are not supported"
        raise CompileError(msg)
    split_type = list(tree.get("split_type") or [0] * n)
    categories = _categories(tree, where)

    cols: dict[str, list[Any]] = {
        key: [] for key in ("split_feature", "threshold", "left", "right", "default_left", "missing", "categories")
    }
    leaf_value: list[float] = []
    stack: list[tuple[int, int, str]] = [(0, -1, "")]  # (xgboost node, IR parent, side)
    visited = 0
    while stack:
        node, parent, side = stack.pop()
        visited += 1
        if not 0 <= node < n or visited > n:
            msg = f"{where}: node {node} is out of range or visited twice; the model is corrupt"
            raise CompileError(msg)
        if left[node] == -1:
            value = _f32(cond[node])
            if not math.isfinite(value):
                msg = f"{where}: leaf {node} has the value {value}; expected a finite number"
                raise CompileError(msg)
            leaf_value.append(value)
            index = ~(len(leaf_value) - 1)
        else:
            f = int(feature[node])
            if not 0 <= f < n_features:
                msg = f"{where}: node {node} splits on feature {f}, but the model has {n_features} features"
                raise CompileError(msg)
            index = len(cols["split_feature"])
            cols["split_feature"].append(f)
            cols["missing"].append("nan")
            cols["left"].append(0)
            cols["right"].append(0)
            go_left, go_right, dl = int(left[node]), int(right[node]), bool(default_left[node])
            if int(split_type[node]) == 1:
                if node not in categories:
                    msg = f"{where}: categorical node {node} has no categories; the model is corrupt"
                    raise CompileError(msg)
                # XGBoost: categories in the set go right, the rest (and negatives) left
                go_left, go_right, dl = go_right, go_left, not dl
                cols["threshold"].append(0.0)
                cols["categories"].append(categories[node])
            else:
                # x < +inf is x < DBL_MAX for float32 values (JSON has no infinity); -inf would send
                # only x = -inf differently, and XGBoost does not make such splits
                threshold = max(min(_f32(cond[node]), _DBL_MAX), -_DBL_MAX)
                cols["threshold"].append(threshold)
                cols["categories"].append(None)
            cols["default_left"].append(dl)
            stack.append((go_right, index, "right"))
            stack.append((go_left, index, "left"))
        if parent >= 0:
            cols[side][parent] = index
    return {"output": output, **cols, "leaf_value": leaf_value}


def _categories(tree: dict[str, Any], where: str) -> dict[int, list[int]]:
    nodes = list(tree.get("categories_nodes") or [])
    if not nodes:
        return {}
    values = list(tree.get("categories") or [])
    segments = list(tree.get("categories_segments") or [])
    sizes = list(tree.get("categories_sizes") or [])
    if len(segments) != len(nodes) or len(sizes) != len(nodes):
        msg = f"{where}: categories_nodes, categories_segments and categories_sizes differ in length"
        raise CompileError(msg)
    out = {}
    for node, start, size in zip(nodes, segments, sizes, strict=True):
        chunk = values[int(start) : int(start) + int(size)]
        if len(chunk) != int(size):
            msg = f"{where}: the categories of node {node} run past the categories array; the model is corrupt"
            raise CompileError(msg)
        out[int(node)] = sorted(int(c) for c in chunk)
    return out


# -- UBJSON -------------------------------------------------------------------------------------
# A small decoder of UBJSON (https://ubjson.org), the format of XGBoost's .ubj models: objects
# with length-prefixed keys, float32 ('d') and int64 ('L') numbers, and typed, counted arrays
# ('[$d#L<n>...'), decoded in one step with the array module. Every UBJSON value is accepted.

# marker -> (struct format, array typecode, size)
_UBJ_NUMBERS = {
    b"i": ("b", "b", 1),
    b"U": ("B", "B", 1),
    b"I": ("h", "h", 2),
    b"l": ("i", "i", 4),
    b"L": ("q", "q", 8),
    b"d": ("f", "f", 4),
    b"D": ("d", "d", 8),
}


class UBJSONError(ValueError):
    """The bytes are not valid UBJSON."""


def _ubjson_loads(data: bytes) -> Any:
    reader = _UBJReader(memoryview(data))
    value = reader.value()
    if reader.pos != len(data):
        msg = f"{len(data) - reader.pos} unexpected bytes after the value, at byte {reader.pos}"
        raise UBJSONError(msg)
    return value


class _UBJReader:
    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            msg = f"the data ends at byte {len(self.data)}; expected {n} more bytes at byte {self.pos}"
            raise UBJSONError(msg)
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def peek(self) -> bytes:
        return bytes(self.data[self.pos : self.pos + 1])

    def marker(self) -> bytes:
        while True:
            m = bytes(self.take(1))
            if m != b"N":  # no-op
                return m

    def value(self, marker: bytes | None = None) -> Any:
        m = marker if marker is not None else self.marker()
        if m in _UBJ_NUMBERS:
            fmt, _, size = _UBJ_NUMBERS[m]
            return struct.unpack(">" + fmt, self.take(size))[0]
        if m in (b"Z", b"T", b"F"):
            return {b"Z": None, b"T": True, b"F": False}[m]
        if m == b"C":
            return bytes(self.take(1)).decode("latin-1")
        if m == b"S":
            return self.string()
        if m == b"H":
            return float(self.string())
        if m == b"[":
            return self.array()
        if m == b"{":
            return self.object()
        msg = f"unknown marker {m!r} at byte {self.pos - 1}"
        raise UBJSONError(msg)

    def length(self) -> int:
        m = self.marker()
        if m not in _UBJ_NUMBERS or m in (b"d", b"D"):
            msg = f"expected an integer length at byte {self.pos - 1}, found the marker {m!r}"
            raise UBJSONError(msg)
        n = self.value(m)
        if n < 0:
            msg = f"negative length {n} before byte {self.pos}"
            raise UBJSONError(msg)
        return n

    def string(self) -> str:
        n = self.length()
        try:
            return bytes(self.take(n)).decode("utf-8")
        except UnicodeDecodeError as exc:
            msg = f"the string before byte {self.pos} is not UTF-8"
            raise UBJSONError(msg) from exc

    def header(self) -> tuple[bytes | None, int | None]:
        vtype = count = None
        if self.peek() == b"$":
            self.pos += 1
            vtype = bytes(self.take(1))
            if self.peek() != b"#":
                msg = f"a typed container needs a count ('#') at byte {self.pos}"
                raise UBJSONError(msg)
        if self.peek() == b"#":
            self.pos += 1
            count = self.length()
        return vtype, count

    def array(self) -> list[Any]:
        vtype, count = self.header()
        if count is not None:
            if vtype in _UBJ_NUMBERS:
                _, code, size = _UBJ_NUMBERS[vtype]
                values = array.array(code)
                if values.itemsize != size:  # a platform whose C types differ: slower, same result
                    fmt = _UBJ_NUMBERS[vtype][0]
                    return list(struct.unpack(f">{count}{fmt}", self.take(size * count)))
                values.frombytes(self.take(size * count))
                if sys.byteorder == "little":
                    values.byteswap()
                return values.tolist()
            return [self.value(vtype) for _ in range(count)]
        out = []
        while (m := self.marker()) != b"]":
            out.append(self.value(m))
        return out

    def object(self) -> dict[str, Any]:
        vtype, count = self.header()
        out: dict[str, Any] = {}
        if count is not None:
            for _ in range(count):
                key = self.string()
                out[key] = self.value(vtype)
            return out
        while True:
            while self.peek() == b"N":
                self.pos += 1
            if self.peek() == b"}":
                self.pos += 1
                return out
            key = self.string()
            out[key] = self.value()
