"""Helpers shared by the converters."""

from __future__ import annotations

import numbers
from typing import Any

from streamml.errors import CompileError


def feature_names(model_names: list[str], n: int, features: list[str] | None, source: str) -> list[str]:
    if features is not None:
        names = [str(f) for f in features]
        if len(names) != n:
            msg = f"the model has {n} features; --features names {len(names)}"
            raise CompileError(msg)
        return names
    if not model_names:
        return [f"f{i}" for i in range(n)]
    if len(model_names) != n:
        msg = f"{source}: the model has {n} features but names {len(model_names)}; pass features= to name them"
        raise CompileError(msg)
    return [str(f) for f in model_names]


def classes(task: str, n_outputs: int, classes: list[Any] | None, source: str) -> list[Any] | None:
    if task == "regression":
        return None
    expected = 2 if task == "binary" else n_outputs
    if classes is None:
        return list(range(expected))
    out: list[Any] = []
    for c in classes:
        if isinstance(c, str):
            out.append(str(c))
        elif (
            isinstance(c, numbers.Integral)
            or type(c).__name__ in ("bool", "bool_")
            or (isinstance(c, numbers.Real) and float(c).is_integer())  # 0.0/1.0: the labels of a float y
        ):
            out.append(int(c))
        else:
            msg = f"{source}: class label {c!r} is not an integer or a string; the IR's labels are int64 or utf8"
            raise CompileError(msg)
    if len(out) != expected or len({type(c) for c in out}) > 1:
        msg = (
            f"{source}: classes_ {classes!r} do not fit the model; expected {expected} labels, all ints or all strings"
        )
        raise CompileError(msg)
    return out


def depth(tree: dict[str, Any]) -> int:
    if not tree["split_feature"]:
        return 0
    stack, deepest = [(0, 1)], 0
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((c, depth + 1) for c in (tree["left"][node], tree["right"][node]) if c >= 0)
    return deepest
