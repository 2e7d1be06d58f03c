"""scikit-learn estimators to the model IR (``docs/ir.md``).

Each converter states scikit-learn's arithmetic as IR data, read from the
scikit-learn source (1.9):

- ``tree_.apply`` casts ``X`` to float32 and goes left if ``x <= threshold``
  (float64); a NaN goes where ``missing_go_to_left`` says (``feature_cast:
  float32``, ``comparison: le``, ``missing: nan``). Classifier leaves hold
  class fractions, which ``predict_proba`` returns as they are; forests add the
  trees' vectors from zero in estimator order and divide by the tree count
  (``aggregate: mean``).
- Gradient boosting (``GradientBoosting*`` and ``HistGradientBoosting*``)
  starts each row's raw score at the init / baseline prediction and adds the
  trees to it one by one. The IR adds ``base_score`` after the trees, which
  rounds differently, so the converters emit the base score as a first
  single-leaf tree per output and a ``base_score`` of zero: the IR's running
  sum then performs exactly scikit-learn's additions. ``GradientBoosting*``
  leaves are ``learning_rate * value`` (the same float64 product the Cython
  predictor forms); its predictor ignores ``missing_go_to_left`` (a NaN fails
  ``x <= threshold`` and goes right).
- ``HistGradientBoosting*`` compares float64 features with float64
  thresholds. Categorical features go through an internal ``OrdinalEncoder``;
  its categories must be non-negative integers, and a split's set is chosen so
  that unknown categories go where scikit-learn sends them (its missing-value
  side).
- A split "on NaN" (trees and HistGradientBoosting fitted with missing values)
  has the threshold +inf, which JSON cannot carry: it becomes a categorical
  node with no categories and swapped children (every number goes one way, NaN
  the other).
- Linear models are ``intercept + coef @ x``.
- The transformers of a ``Pipeline`` in front of the estimator become the IR's
  preprocessing steps (``streamml.compile.sklearn_preprocess``).

Examples:
    >>> import numpy as np
    >>> from sklearn.tree import DecisionTreeRegressor
    >>> x = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> ir = to_ir(DecisionTreeRegressor(max_depth=1).fit(x, [0.0, 0.0, 1.0, 1.0]), features=["a"])
    >>> ir["task"], ir["features"], ir["model"]["trees"][0]["threshold"], ir["model"]["trees"][0]["leaf_value"]
    ('regression', ['a'], [1.5], [0.0, 1.0])
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from streamml.compile.sklearn_preprocess import TRANSFORMERS_TEXT, convert
from streamml.errors import CompileError

TREES = ("DecisionTreeRegressor", "DecisionTreeClassifier")
FORESTS = ("RandomForestRegressor", "RandomForestClassifier", "ExtraTreesRegressor", "ExtraTreesClassifier")
BOOSTING = ("GradientBoostingRegressor", "GradientBoostingClassifier")
HIST_BOOSTING = ("HistGradientBoostingRegressor", "HistGradientBoostingClassifier")
LINEAR = ("LinearRegression", "Ridge", "LogisticRegression")
SUPPORTED = (*TREES, *FORESTS, *BOOSTING, *HIST_BOOSTING, *LINEAR)
SUPPORTED_TEXT = (
    ", ".join(SUPPORTED) + "; and a Pipeline (or make_pipeline) of preprocessing steps followed by one of them "
    "(preprocessing: " + TRANSFORMERS_TEXT + ")"
)

#: Links of scikit-learn's losses (``est._loss.link``) as IR links with their sigmoid scale.
_LINKS = {
    "IdentityLink": ("identity", 1.0),
    "LogLink": ("exp", 1.0),
    "LogitLink": ("sigmoid", 1.0),
    "HalfLogitLink": ("sigmoid", 2.0),  # the exponential loss: expit(2 * raw)
    "MultinomialLogit": ("softmax", 1.0),
}

#: Largest category value a categorical split may hold (the IR keeps categories as integers).
MAX_CATEGORY = 2**31 - 1


def to_ir(estimator: Any, *, features: list[str] | None = None) -> dict[str, Any]:
    """Convert a fitted scikit-learn estimator (or scaler pipeline) into an IR document.

    Args:
        estimator: one of the supported estimators (``SUPPORTED``), or a
            ``Pipeline`` of a ``StandardScaler`` and one of them.
        features: input names in the estimator's feature order. Default: its
            ``feature_names_in_`` when fitted on named columns, else ``x0..x{n-1}``.

    Raises:
        CompileError: the estimator (or a pipeline step) is not supported, is
            not fitted, or ``features`` does not match it.
    """
    pre, model, step_names = _unwrap(estimator)
    for _, step in pre:
        if not isinstance(step, str) and step is not None and type(step).__name__ != "Pipeline":
            _check_fitted(step)
    _check_fitted(model)
    if pre:
        n_inputs = int(getattr(estimator, "n_features_in_", 0)) or _first_width(pre)
        names = _feature_names(estimator, n_inputs, features)
        steps, input_types, width = convert(pre, names)
        if width != int(model.n_features_in_):
            msg = f"the preprocessing gives {width} columns but the {type(model).__name__} takes {model.n_features_in_}"
            raise CompileError(msg)
        n_features = width
    else:
        n_features = _n_features(estimator, model)
        names = _feature_names(estimator, n_features, features)
        steps, input_types = None, None
    kind = type(model).__name__
    if kind in TREES or kind in FORESTS:
        body = _forest(model)
    elif kind in BOOSTING:
        body = _boosting(model)
    elif kind in HIST_BOOSTING:
        body = _hist_boosting(model, n_features)
    else:
        body = _linear(model)
    metadata = {"estimator": kind, "sklearn_version": _sklearn_version(), **body.pop("metadata")}
    if step_names is not None:
        metadata["pipeline"] = step_names
    return {
        "format": "streamml-ir",
        "version": 1,
        "name": "sklearn_model",
        "model_version": "1",
        "framework": "scikit-learn",
        "task": body["task"],
        "features": names,
        **({"input_types": input_types} if input_types and "utf8" in input_types else {}),
        "classes": body.get("classes"),
        "preprocess": steps,
        "model": body["model"],
        "link": body["link"],
        # scikit-learn's own rule for the predicted label (docs/ir.md, outputs).
        "binary_label": body.get("binary_label", "probability_gt_half"),
        "metadata": metadata,
        "drift_reference": None,
    }


# ---------------------------------------------------------------------------------------------
# Estimator, pipeline, features, classes


def _unwrap(estimator: Any) -> tuple[list[tuple[str, Any]], Any, list[str] | None]:
    """``(preprocessing steps, model, pipeline step descriptions or None)``."""
    kind = type(estimator).__name__
    if kind != "Pipeline":
        _check_supported(estimator)
        return [], estimator, None
    steps = list(estimator.steps)
    if not steps:
        msg = f"the pipeline has no steps; expected preprocessing steps and one of: {SUPPORTED_TEXT}"
        raise CompileError(msg)
    name, last = steps[-1]
    if last is None or (isinstance(last, str) and last == "passthrough"):
        msg = f"pipeline step {name!r} is 'passthrough'; the last step must be one of: {SUPPORTED_TEXT}"
        raise CompileError(msg)
    _check_supported(last, where=f"pipeline step {name!r} ")
    described = [f"{n}: {'passthrough' if s is None or isinstance(s, str) else type(s).__name__}" for n, s in steps]
    return steps[:-1], last, described


def _first_width(pre: list[tuple[str, Any]]) -> int:
    for _, step in pre:
        n = getattr(step, "n_features_in_", None)
        if n is not None:
            return int(n)
    msg = "the pipeline's preprocessing steps are all 'passthrough'; cannot tell its number of inputs"
    raise CompileError(msg)


def _check_supported(estimator: Any, where: str = "") -> None:
    kind = type(estimator).__name__
    module = type(estimator).__module__
    if kind not in SUPPORTED or not module.startswith("sklearn."):
        msg = f"{where}cannot compile a {module}.{kind}; supported scikit-learn estimators: {SUPPORTED_TEXT}"
        raise CompileError(msg)


def _check_fitted(estimator: Any) -> None:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(estimator)
    except NotFittedError:
        msg = f"the {type(estimator).__name__} is not fitted; call fit() before compiling it"
        raise CompileError(msg) from None


def _n_features(estimator: Any, model: Any) -> int:
    n = int(model.n_features_in_)
    outer = getattr(estimator, "n_features_in_", n)
    if int(outer) != n:
        msg = f"the pipeline takes {outer} features but its {type(model).__name__} takes {n}"
        raise CompileError(msg)
    return n


def _feature_names(estimator: Any, n: int, features: list[str] | None) -> list[str]:
    fitted = getattr(estimator, "feature_names_in_", None)
    fitted = None if fitted is None else [str(f) for f in fitted]
    if features is not None:
        features = [str(f) for f in features]
        if len(features) != n:
            msg = f"features has {len(features)} names but the {type(estimator).__name__} was fitted on {n} features"
            raise CompileError(msg)
        if fitted is not None and features != fitted:
            i = next(i for i, (a, b) in enumerate(zip(features, fitted, strict=True)) if a != b)
            msg = (
                f"features differ from the names the {type(estimator).__name__} was fitted on: feature {i} is "
                f"{features[i]!r} but was {fitted[i]!r} in fit; pass the fitted names, in that order, or no features"
            )
            raise CompileError(msg)
        names = features
    else:
        names = fitted if fitted is not None else [f"x{i}" for i in range(n)]
    if len(set(names)) != len(names):
        msg = f"feature names must be unique; got {names}"
        raise CompileError(msg)
    return names


def _classes(estimator: Any) -> list[Any]:
    classes = np.asarray(estimator.classes_)
    name = type(estimator).__name__
    if classes.ndim != 1:
        msg = f"the {name} has several outputs (classes_ of shape {classes.shape}); expected one output"
        raise CompileError(msg)
    if len(classes) < 2:
        msg = f"the {name} was fitted on {len(classes)} class; expected at least 2"
        raise CompileError(msg)
    if classes.dtype.kind in "iu":
        return [int(c) for c in classes]
    if classes.dtype.kind in "UO" and all(isinstance(c, str) for c in classes):
        return [str(c) for c in classes]
    msg = (
        f"the {name}'s classes {classes.tolist()!r} ({classes.dtype}) are neither all integers nor all strings; "
        "fit it on integer or string labels"
    )
    raise CompileError(msg)


def _sklearn_version() -> str:
    import sklearn

    return sklearn.__version__


def _finite(values: Any, what: str) -> list[Any]:
    array = np.asarray(values, dtype=np.float64)
    if not np.isfinite(array).all():
        msg = f"{what} holds non-finite values; the IR needs finite numbers"
        raise CompileError(msg)
    return array.tolist()


# ---------------------------------------------------------------------------------------------
# Trees


def _tree(
    is_leaf: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    nodes: list[tuple[int, float, bool, list[int] | None]],
    leaf_values: np.ndarray,
    output: int | None,
) -> dict[str, Any]:
    """An IR tree from a node table indexed by the framework's node ids (root 0).

    ``nodes[i]`` is ``(feature, threshold, default_left, categories)`` for each
    internal node ``i`` (ignored for leaves); ``left``/``right`` are node ids.
    """
    internal = np.flatnonzero(~is_leaf)
    leaves = np.flatnonzero(is_leaf)
    index = np.empty(len(is_leaf), dtype=np.int64)
    index[internal] = np.arange(len(internal))
    index[leaves] = ~np.arange(len(leaves))  # leaf k is ~k
    values = _finite(leaf_values[leaves], "a leaf value")
    columns: dict[str, list[Any]] = {
        k: [] for k in ("split_feature", "threshold", "left", "right", "default_left", "missing", "categories")
    }
    if is_leaf[0]:
        return {"output": output, **columns, "leaf_value": values}
    for i in internal:
        feature, threshold, default_left, categories = nodes[i]
        to_left, to_right = int(index[left[i]]), int(index[right[i]])
        if categories is None and threshold == math.inf:
            # `x <= +inf` (a split "on NaN"): every number goes left, NaN where default_left says.
            # JSON has no infinity; no number is in an empty category set, so swap the children.
            threshold, categories, default_left = 0.0, [], not default_left
            to_left, to_right = to_right, to_left
        if not math.isfinite(threshold):
            msg = f"a tree has the threshold {threshold} on feature {feature}; the IR needs finite thresholds"
            raise CompileError(msg)
        columns["split_feature"].append(int(feature))
        columns["threshold"].append(float(threshold))
        columns["left"].append(to_left)
        columns["right"].append(to_right)
        columns["default_left"].append(bool(default_left))
        columns["missing"].append("nan")
        columns["categories"].append(categories)
    return {"output": output, **columns, "leaf_value": values}


def _sk_tree(tree: Any, leaf_values: np.ndarray, output: int | None, *, nan_left: bool | None = None) -> dict:
    """An IR tree from a ``sklearn.tree._tree.Tree``.

    ``nan_left=None`` follows each node's ``missing_go_to_left`` (``tree_.apply``);
    ``False`` sends NaN right everywhere (the gradient boosting predictor).
    """
    left = np.asarray(tree.children_left)
    right = np.asarray(tree.children_right)
    feature = np.asarray(tree.feature)
    threshold = np.asarray(tree.threshold, dtype=np.float64)
    missing_left = np.asarray(tree.missing_go_to_left, dtype=bool)
    is_leaf = left == -1
    nodes = [
        (int(feature[i]), float(threshold[i]), bool(missing_left[i]) if nan_left is None else nan_left, None)
        for i in range(len(is_leaf))
    ]
    return _tree(is_leaf, left, right, nodes, leaf_values, output)


def _check_single_output(model: Any) -> None:
    if getattr(model, "n_outputs_", 1) != 1:
        msg = (
            f"the {type(model).__name__} was fitted on {model.n_outputs_} outputs (a 2-D y); "
            "only single-output models can be compiled"
        )
        raise CompileError(msg)


def _forest(model: Any) -> dict[str, Any]:
    """A decision tree, random forest or extra-trees model."""
    _check_single_output(model)
    kind = type(model).__name__
    single = kind in TREES
    estimators = [model] if single else list(model.estimators_)
    classifier = kind.endswith("Classifier")
    trees = []
    if classifier:
        classes = _classes(model)
        k = len(classes)
        for est in estimators:
            value = np.asarray(est.tree_.value)
            if value.shape[2] < k:
                msg = f"a tree of the {kind} has {value.shape[2]} class columns for {k} classes"
                raise CompileError(msg)
            trees.append(_sk_tree(est.tree_, value[:, 0, :k], None))
        n_outputs = k
    else:
        classes = None
        for est in estimators:
            trees.append(_sk_tree(est.tree_, np.asarray(est.tree_.value)[:, 0, 0], 0))
        n_outputs = 1
    metadata = {
        "n_estimators": len(estimators),
        "max_depth": max(int(est.tree_.max_depth) for est in estimators),
        "n_leaves": sum(int(est.tree_.n_leaves) for est in estimators),
    }
    if classifier:
        metadata["criterion"] = str(model.criterion)
    return {
        "task": _task(classes),
        "classes": classes,
        "model": {
            "type": "trees",
            "n_outputs": n_outputs,
            "base_score": [0.0] * n_outputs,
            "aggregate": "sum" if single else "mean",
            "feature_cast": "float32",
            "comparison": "le",
            "accumulate": "float64",
            "sigmoid_scale": 1.0,
            "trees": trees,
        },
        "link": "identity",
        "binary_label": "argmax",
        "metadata": metadata,
    }


def _task(classes: list[Any] | None) -> str:
    if classes is None:
        return "regression"
    return "binary" if len(classes) == 2 else "multiclass"


def _link(model: Any) -> tuple[str, float]:
    link = type(model._loss.link).__name__
    if link not in _LINKS:
        msg = f"the {type(model).__name__}'s loss {model.loss!r} has the link {link}, which the IR has no equivalent of"
        raise CompileError(msg)
    return _LINKS[link]


def _constant_trees(base: np.ndarray) -> list[dict[str, Any]]:
    """One single-leaf tree per output holding the base score, so that the sum starts from it."""
    return [
        {
            "output": k,
            **{c: [] for c in ("split_feature", "threshold", "left", "right", "default_left", "missing", "categories")},
            "leaf_value": _finite([b], "the base score"),
        }
        for k, b in enumerate(base)
    ]


def _boosting_model(n_outputs: int, trees: list[dict[str, Any]], cast: str, sigmoid_scale: float) -> dict[str, Any]:
    return {
        "type": "trees",
        "n_outputs": n_outputs,
        "base_score": [0.0] * n_outputs,
        "aggregate": "sum",
        "feature_cast": cast,
        "comparison": "le",
        "accumulate": "float64",
        "sigmoid_scale": sigmoid_scale,
        "trees": trees,
    }


def _boosting(model: Any) -> dict[str, Any]:
    """A ``GradientBoostingRegressor`` / ``GradientBoostingClassifier``."""
    kind = type(model).__name__
    init = model.init_
    init_kind = type(init).__name__
    if isinstance(init, str):
        if init != "zero":
            msg = f"the {kind}'s init is {init!r}; expected 'zero', a DummyClassifier or a DummyRegressor"
            raise CompileError(msg)
    elif init_kind not in ("DummyClassifier", "DummyRegressor") or getattr(init, "strategy", "") == "stratified":
        strategy = f" (strategy={init.strategy!r})" if init_kind == "DummyClassifier" else ""
        msg = (
            f"the {kind}'s init estimator is a {init_kind}{strategy}; only constant init estimators can be compiled: "
            "'zero', DummyRegressor, or DummyClassifier with strategy 'prior', 'most_frequent', 'uniform' or 'constant'"
        )
        raise CompileError(msg)
    n = int(model.n_features_in_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = np.asarray(model._raw_predict_init(np.zeros((1, n), dtype=np.float32)), dtype=np.float64)[0]
    estimators = np.asarray(model.estimators_, dtype=object)
    n_outputs = estimators.shape[1]
    lr = float(model.learning_rate)
    trees = _constant_trees(base)
    for stage in estimators:
        for k, est in enumerate(stage):
            leaves = lr * np.asarray(est.tree_.value, dtype=np.float64)[:, 0, 0]
            trees.append(_sk_tree(est.tree_, leaves, k, nan_left=False))
    if kind == "GradientBoostingClassifier":
        classes = _classes(model)
        link, scale = _link(model)
    else:
        classes, link, scale = None, "identity", 1.0  # predict returns the raw score whatever the loss
    metadata = {
        "n_estimators": int(estimators.shape[0]),
        "trees_per_iteration": int(n_outputs),
        "max_depth": max(int(est.tree_.max_depth) for est in estimators.ravel()),
        "learning_rate": lr,
        "loss": str(model.loss),
        "init": init if isinstance(init, str) else init_kind,
        "base_score": base.tolist(),
    }
    return {
        "task": _task(classes),
        "classes": classes,
        "model": _boosting_model(n_outputs, trees, "float32", scale),
        "link": link,
        "binary_label": "raw_ge_zero",
        "metadata": metadata,
    }


# ---------------------------------------------------------------------------------------------
# HistGradientBoosting


def _hist_boosting(model: Any, n_features: int) -> dict[str, Any]:
    kind = type(model).__name__
    column, categories = _hist_columns(model, n_features)
    known_bitsets, f_idx_map = model._bin_mapper.make_known_categories_bitsets()
    base = np.asarray(model._baseline_prediction, dtype=np.float64).reshape(-1)
    trees = _constant_trees(base)
    max_depth = 0
    for iteration in model._predictors:
        for k, predictor in enumerate(iteration):
            nodes = predictor.nodes
            raw_bitsets = np.asarray(predictor.raw_left_cat_bitsets)
            table = []
            left = np.asarray(nodes["left"], dtype=np.int64)
            right = np.asarray(nodes["right"], dtype=np.int64)
            for i, node in enumerate(nodes):
                if node["is_leaf"]:
                    table.append((0, 0.0, False, None))
                    continue
                feature = int(node["feature_idx"])
                nan_left = bool(node["missing_go_to_left"])
                if node["is_categorical"]:
                    known = _bits(known_bitsets[f_idx_map[feature]])
                    b = int(node["bitset_idx"])
                    go_left = (_bits(raw_bitsets[b]) if b < len(raw_bitsets) else set()) & known
                    codes = known - go_left if nan_left else go_left
                    values = categories[feature]
                    cats = sorted(int(values[c]) for c in codes)
                    if nan_left:  # the set goes right in scikit-learn: swap so unknown values follow NaN
                        left[i], right[i] = right[i], left[i]
                    # NaN, negative and unknown values take the IR's right: scikit-learn's missing side.
                    table.append((column[feature], 0.0, False, cats))
                else:
                    table.append((column[feature], float(node["num_threshold"]), nan_left, None))
            is_leaf = np.asarray(nodes["is_leaf"], dtype=bool)
            trees.append(_tree(is_leaf, left, right, table, np.asarray(nodes["value"], dtype=np.float64), k))
            max_depth = max(max_depth, int(predictor.get_max_depth()))
    classes = _classes(model) if kind == "HistGradientBoostingClassifier" else None
    link, scale = _link(model)
    metadata = {
        "n_estimators": len(model._predictors),
        "trees_per_iteration": int(model.n_trees_per_iteration_),
        "max_depth": max_depth,
        "learning_rate": float(model.learning_rate),
        "loss": str(model.loss),
        "base_score": base.tolist(),
        "categorical_features": [column[f] for f in sorted(categories)],
    }
    return {
        "task": _task(classes),
        "classes": classes,
        "model": {**_boosting_model(len(base), trees, "float64", scale), "category_match": "exact"},
        "link": link,
        "binary_label": "raw_gt_zero",
        "metadata": metadata,
    }


def _bits(words: np.ndarray) -> set[int]:
    """The members of a scikit-learn bitset (uint32 words, bit ``c % 32`` of word ``c // 32``)."""
    return {32 * w + b for w, word in enumerate(np.asarray(words, dtype=np.uint64)) for b in range(32) if word >> b & 1}


def _hist_columns(model: Any, n_features: int) -> tuple[list[int], dict[int, np.ndarray]]:
    """``(input column of each predictor feature, {predictor feature: category values by code})``.

    With categorical features, scikit-learn reorders the columns (categorical
    first) and replaces each category by its code in an ``OrdinalEncoder``.
    """
    pre = model._preprocessor
    if pre is None:
        return list(range(n_features)), {}
    column = [0] * n_features
    categories: dict[int, np.ndarray] = {}
    for name, _, selection in pre.transformers_:
        if name == "remainder":
            continue
        inputs = np.arange(n_features)[np.asarray(selection)]
        out = pre.output_indices_[name]
        for position, source in zip(range(out.start, out.stop), inputs, strict=True):
            column[position] = int(source)
    encoder = pre.named_transformers_["encoder"]
    out = pre.output_indices_["encoder"]
    for position, values in zip(range(out.start, out.stop), encoder.categories_, strict=True):
        name = _column_name(model, column[position])
        values = np.asarray(values)
        if values.dtype.kind not in "fiu":
            msg = (
                f"categorical feature {name} has non-numeric categories ({values.dtype}); "
                "the IR's inputs are numbers: encode the categories as non-negative integers"
            )
            raise CompileError(msg)
        values = values.astype(np.float64)
        values = values[~np.isnan(values)]
        bad = values[(values < 0) | (values != np.trunc(values)) | (values > MAX_CATEGORY)]
        if len(bad):
            msg = (
                f"categorical feature {name} has categories {bad[:5].tolist()} that are not integers in "
                f"[0, {MAX_CATEGORY}]; the IR matches categories as non-negative integers"
            )
            raise CompileError(msg)
        categories[position] = values
    return column, categories


def _column_name(model: Any, column: int) -> str:
    names = getattr(model, "feature_names_in_", None)
    return repr(str(names[column])) if names is not None else f"at index {column}"


# ---------------------------------------------------------------------------------------------
# Linear models


def _linear(model: Any) -> dict[str, Any]:
    kind = type(model).__name__
    coef = np.asarray(model.coef_, dtype=np.float64)
    intercept = np.atleast_1d(np.asarray(model.intercept_, dtype=np.float64))
    if kind == "LogisticRegression":
        classes = _classes(model)
        link = "sigmoid" if len(classes) == 2 else "softmax"
        rows = 1 if len(classes) == 2 else len(classes)
    else:
        classes, link, rows = None, "identity", 1
        if coef.ndim == 2 and coef.shape[0] != 1:
            msg = (
                f"the {kind} was fitted on {coef.shape[0]} targets (a 2-D y); only single-output models can be compiled"
            )
            raise CompileError(msg)
    coef = coef.reshape(rows, -1)
    intercept = np.broadcast_to(intercept, (rows,))
    metadata: dict[str, Any] = {"n_coefficients": int(coef.size)}
    for param in ("alpha", "C", "penalty", "solver", "fit_intercept"):
        value = getattr(model, param, None)
        if isinstance(value, (int, float, str, bool)):
            metadata[param] = value
    return {
        "task": _task(classes),
        "classes": classes,
        "model": {
            "type": "linear",
            "n_outputs": rows,
            "coef": [_finite(row, f"the {kind}'s coef_") for row in coef],
            "intercept": _finite(intercept, f"the {kind}'s intercept_"),
        },
        "link": link,
        "binary_label": "raw_gt_zero",
        "metadata": metadata,
    }
