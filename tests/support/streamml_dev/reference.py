"""The reference evaluator of the model IR (``docs/ir.md``), in numpy.

It follows the IR's rules literally and is used by tests: converters are
checked against the frameworks through it, and the compiled binaries are
checked against it (a differential test of the native evaluator). It is
vectorised over rows, tree by tree, and is not meant to be fast.

The links take ``exp`` from the C library (Python's ``math.exp``), as the native evaluator does:
numpy's own ``exp`` has SIMD loops (AVX-512 among them) that round differently in the last bit on
some CPUs, and the reference must give the binary's bits on every machine.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: LightGBM's kZeroThreshold: the float 1e-35f widened to double.
ZERO_THRESHOLD = 1.0000000180025095e-35


def features(ir: dict[str, Any], x: Any) -> np.ndarray:
    """The model's features (``docs/ir.md``, "Preprocessing") of inputs ``x``.

    ``x`` is a 2-D float64 array (NaN = missing) or a list of columns, one per input: float64
    arrays, or object arrays of strings (None = missing) for utf8 inputs.
    """
    if isinstance(x, np.ndarray) and x.ndim == 2:
        cols = [np.asarray(x[:, j], dtype=np.float64) for j in range(x.shape[1])]
    else:
        cols = [np.asarray(c, dtype=object if c.dtype == object else np.float64) for c in map(np.asarray, x)]
    pre = ir.get("preprocess")
    if isinstance(pre, dict):
        if pre["type"] != "standard_scaler":
            msg = f"unknown preprocess type {pre['type']!r}"
            raise ValueError(msg)
        pre = [{"type": "affine", "sub": pre["mean"], "div": pre["scale"]}]
    cols = _steps(pre or [], cols)
    rows = len(cols[0]) if cols else 0
    return np.column_stack(cols).astype(np.float64) if cols else np.empty((rows, 0))


def _missing(col: np.ndarray) -> np.ndarray:
    if col.dtype == object:
        return np.array([v is None for v in col], dtype=bool)
    return np.isnan(col)


def _steps(steps: list[dict[str, Any]], cols: list[np.ndarray]) -> list[np.ndarray]:
    for step in steps:
        kind = step["type"]
        if kind == "affine":
            out = []
            for j, c in enumerate(cols):
                c = c.astype(np.float64)
                for part, op in (("sub", np.subtract), ("mul", np.multiply), ("div", np.divide), ("add", np.add)):
                    if step.get(part) is not None:
                        c = op(c, step[part][j])
                out.append(c)
            cols = out
        elif kind == "cast" and step["to"] == "int64":
            with np.errstate(invalid="ignore"):
                cols = [np.where(np.abs(c) < 2.0**63, np.trunc(c), np.nan) for c in cols]
        elif kind == "cast":
            cols = [c.astype(np.float32).astype(np.float64) for c in cols]
        elif kind == "impute":
            out = []
            for c, fill in zip(cols, step["fill"], strict=True):
                c = c.copy()
                c[_missing(c)] = fill
                out.append(c)
            out += [_missing(cols[j]).astype(np.float64) for j in step.get("indicator", [])]
            cols = out
        elif kind == "select":
            cols = [cols[j] for j in step["columns"]]
        elif kind in ("one_hot", "ordinal"):
            out = []
            for c, enc in zip(cols, step["columns"], strict=True):
                out += _encode(c, enc, kind == "one_hot")
            cols = out
        elif kind == "normalize":
            norm = np.zeros(len(cols[0]))
            for c in cols:  # the IR's summation order
                if step["norm"] == "l1":
                    norm = norm + np.abs(c)
                elif step["norm"] == "l2":
                    norm = norm + c * c
                else:
                    norm = np.maximum(norm, np.abs(c))
            if step["norm"] == "l2":
                norm = np.sqrt(norm)
            norm = np.where(norm == 0.0, 1.0, norm)
            cols = [c / norm for c in cols]
        elif kind == "columns":
            out = []
            for part in step["parts"]:
                out += _steps(part.get("steps", []), [cols[j] for j in part["columns"]])
            cols = out
        else:
            msg = f"unknown preprocess step {kind!r}"
            raise ValueError(msg)
    return cols


def _encode(col: np.ndarray, enc: dict[str, Any], one_hot: bool) -> list[np.ndarray]:
    """One encoded column; ``"error"`` for an unknown or missing value raises ValueError."""
    values = enc["hot"] if one_hot else [np.nan if v is None else v for v in enc["codes"]]
    lookup = {(c if isinstance(c, str) else float(c) + 0.0): v for c, v in zip(enc["categories"], values, strict=True)}
    codes = []
    for v in col.tolist():
        if v is None or (isinstance(v, float) and np.isnan(v)):
            code = enc["missing"]
        else:
            key = v if isinstance(v, str) else float(v) + 0.0
            code = lookup.get(key, enc["unknown"])
        if code == "error":
            msg = f"the value {v!r} is refused by the encoder"
            raise ValueError(msg)
        codes.append(np.nan if code is None else code)
    codes = np.asarray(codes, dtype=np.float64)
    if not one_hot:
        return [codes]
    return [(codes == k).astype(np.float64) for k in range(enc["width"])]


def raw_scores(ir: dict[str, Any], x: Any) -> np.ndarray:
    """Raw scores, shape ``(rows, n_outputs)``, of inputs ``x`` (see :func:`features`)."""
    x = features(ir, x)
    model = ir["model"]
    if model["type"] == "linear":
        coef = np.asarray(model["coef"], dtype=np.float64)
        out = np.tile(np.asarray(model["intercept"], dtype=np.float64), (x.shape[0], 1))
        for j in range(coef.shape[1]):  # the IR's summation order
            out += x[:, j : j + 1] * coef[:, j]
        return out
    if model["type"] == "trees":
        return _trees(model, x)
    if model["type"] == "oblivious":
        return _oblivious(model, x)
    msg = f"unknown model type {model['type']!r}"
    raise ValueError(msg)


def _trees(model: dict[str, Any], x: np.ndarray) -> np.ndarray:
    n_out = model["n_outputs"]
    f32 = model.get("accumulate", "float64") == "float32"
    acc_type = np.float32 if f32 else np.float64
    sums = np.zeros((x.shape[0], n_out), dtype=acc_type)
    counts = np.zeros(n_out)
    if model.get("feature_cast", "float64") == "float32":
        x = x.astype(np.float32).astype(np.float64)
    lt = model.get("comparison", "le") == "lt"
    match = model.get("category_match", "trunc")
    for tree in model["trees"]:
        leaf = _leaves(tree, x, lt, match)
        values = tree["leaf_value"]
        if tree["output"] is None:
            contrib = np.asarray(values, dtype=np.float64)[leaf]
            sums = (sums + contrib).astype(acc_type)
            counts += 1
        else:
            k = tree["output"]
            contrib = np.asarray(values, dtype=np.float64)[leaf]
            sums[:, k] = (sums[:, k] + contrib).astype(acc_type)
            counts[k] += 1
    sums = sums.astype(np.float64)
    if model.get("aggregate", "sum") == "mean":
        sums = sums / np.maximum(counts, 1)
    return sums + np.asarray(model["base_score"], dtype=np.float64)


def _oblivious(model: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Oblivious trees: going right at level ``d`` sets bit ``d`` of the leaf index."""
    n_out = model["n_outputs"]
    if model.get("feature_cast", "float64") == "float32":
        x = x.astype(np.float32).astype(np.float64)
    lt = model.get("comparison", "le") == "lt"
    sums = np.zeros((x.shape[0], n_out))
    for tree in model["trees"]:
        leaf = np.zeros(x.shape[0], dtype=np.int64)
        for d, (f, t, default_left) in enumerate(
            zip(tree["split_feature"], tree["threshold"], tree["default_left"], strict=True)
        ):
            v = x[:, f]
            with np.errstate(invalid="ignore"):
                right = np.where(np.isnan(v), not default_left, v >= t if lt else v > t)
            leaf |= right.astype(np.int64) << d
        sums += np.asarray(tree["leaf_value"], dtype=np.float64).reshape(-1, n_out)[leaf]
    return np.asarray(model["base_score"], dtype=np.float64) + model.get("scale", 1.0) * sums


def _leaves(tree: dict[str, Any], x: np.ndarray, lt: bool, match: str = "trunc") -> np.ndarray:
    """The leaf index each row reaches."""
    rows = x.shape[0]
    if not tree["split_feature"]:
        return np.zeros(rows, dtype=np.int64)
    feature = np.asarray(tree["split_feature"])
    threshold = np.asarray(tree["threshold"], dtype=np.float64)
    left = np.asarray(tree["left"])
    right = np.asarray(tree["right"])
    default_left = np.asarray(tree["default_left"], dtype=bool)
    missing = tree["missing"]
    categories = tree.get("categories") or [None] * len(feature)
    node = np.zeros(rows, dtype=np.int64)
    active = np.ones(rows, dtype=bool)
    while active.any():
        idx = np.nonzero(active)[0]
        current = node[idx]
        nxt = np.empty_like(current)
        for n in np.unique(current):
            sel = current == n
            v = x[idx[sel], feature[n]]
            mode = missing[n]
            if mode == "nan":
                is_missing = np.isnan(v)
            elif mode == "zero":
                is_missing = np.isnan(v) | (np.abs(v) <= ZERO_THRESHOLD)
            elif mode == "none":
                is_missing = np.zeros(v.shape, dtype=bool)
                v = np.where(np.isnan(v), 0.0, v)
            else:
                msg = f"unknown missing mode {mode!r}"
                raise ValueError(msg)
            cats = categories[n]
            with np.errstate(invalid="ignore"):
                if cats is None:
                    go_left = v < threshold[n] if lt else v <= threshold[n]
                else:
                    c = np.where(np.isfinite(v), v, -1.0)
                    c = c if match == "exact" else np.trunc(c)
                    nonneg = c >= 0 if match == "int_cast" else v >= 0
                    go_left = nonneg & np.isin(c, np.asarray(cats, dtype=np.float64))
            go_left = np.where(is_missing, default_left[n], go_left)
            nxt[sel] = np.where(go_left, left[n], right[n])
        node[idx] = nxt
        active[idx] = nxt >= 0
    return -node - 1


def scores(ir: dict[str, Any], x: Any) -> np.ndarray:
    """Scores after the link, shape ``(rows, n_outputs)``."""
    return _link(ir, raw_scores(ir, x))


def _link(ir: dict[str, Any], raw: np.ndarray) -> np.ndarray:
    link = ir.get("link", "identity")
    if link == "identity":
        return raw
    with np.errstate(over="ignore"):  # exp overflow is inf, as in the evaluator
        if link == "sigmoid":
            scale = ir["model"].get("sigmoid_scale", 1.0)
            return 1.0 / (1.0 + libm_exp(-scale * raw))
        if link == "softmax":
            e = libm_exp(raw - raw.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
        if link == "exp":
            return libm_exp(raw)
        if link == "isolation":
            d = ir["isolation"]["denominator"]
            q = raw / d if d != 0 else np.ones_like(raw)
            return -np.fromiter(map(lambda v: 2.0**v, (-q).ravel().tolist()), dtype=np.float64, count=q.size).reshape(
                q.shape
            )
    msg = f"unknown link {link!r}"
    raise ValueError(msg)


def _exp(v: float) -> float:
    try:
        return math.exp(v)
    except OverflowError:
        return math.inf


def libm_exp(a: np.ndarray) -> np.ndarray:
    """``exp`` of every element by the C library (overflow is inf), the same bits on every CPU."""
    a = np.asarray(a, dtype=np.float64)
    return np.fromiter(map(_exp, a.ravel().tolist()), dtype=np.float64, count=a.size).reshape(a.shape)


def predict(ir: dict[str, Any], x: Any) -> dict[str, np.ndarray]:
    """The binary's output columns, by the IR's rules (``prediction`` / ``probability`` / ...)."""
    raw = raw_scores(ir, x)
    s = _link(ir, raw)
    task = ir["task"]
    if task == "regression":
        return {"prediction": s[:, 0]}
    if task == "outlier":
        decision = s[:, 0] - ir["isolation"]["offset"]
        return {"score_samples": s[:, 0], "decision_function": decision, "predict": np.where(decision < 0, -1, 1)}
    classes = np.asarray(ir["classes"])
    if task == "binary":
        prob = s[:, 0] if s.shape[1] == 1 else s[:, 1]
        rule = ir.get("binary_label", "probability_gt_half")
        positive = {
            "probability_gt_half": lambda: prob > 0.5,
            "raw_gt_zero": lambda: raw[:, -1] > 0,
            "raw_ge_zero": lambda: raw[:, -1] >= 0,
            "argmax": lambda: s[:, -1] > s[:, 0],
        }[rule]()
        return {"probability": prob, "label": np.where(positive, classes[1], classes[0])}
    if task == "multiclass":
        return {"probabilities": s, "label": classes[np.argmax(s, axis=1)]}
    msg = f"unknown task {task!r}"
    raise ValueError(msg)
