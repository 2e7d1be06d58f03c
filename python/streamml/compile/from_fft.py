"""Convert a fitted ``streamml.models.FastFrugalTreeClassifier`` into the IR.

An FFT is one chain-shaped tree: internal node ``k`` is level ``k``; a level's
exit is a leaf, its other side the next level; the last level has two leaves.
A missing value goes on to the next level, and at the last level to the leaf
of the training majority (the model's own rule).

The label of an FFT is its exit's decision, which need not be the class whose
training frequency at that exit is above one half, so the leaves carry two
outputs and the IR's ``argmax`` rule reads the decision from the first:
``[-1.0, p]`` at a signal exit (``p > -1``: ``classes[1]``) and ``[2.0, p]`` at
a noise exit (``p > 2`` never: ``classes[0]``), with ``p`` the exit's training
frequency of ``classes[1]``; the binary's ``probability`` is the second
output, ``p``, unchanged (identity link). See ``docs/fft.md``.

The binary's inputs are the cues the tree reads, in column order. Inputs of
the IR are float64, so a categorical cue compiles when its levels are
non-negative integers (codes), matched exactly; a cue with string levels is
refused, naming the cue.
"""

from __future__ import annotations

from typing import Any

from streamml.compile._common import classes as ir_classes
from streamml.compile._common import feature_names
from streamml.errors import CompileError

SIGNAL_MARK = -1.0
NOISE_MARK = 2.0


def to_ir(model: Any, *, features: list[str] | None = None) -> dict[str, Any]:
    """The IR of a fitted FFT.

    Raises:
        CompileError: the model is not fitted, ``features`` does not match it,
            or a cue the tree reads has levels that are not non-negative integers.
    """
    if not hasattr(model, "tree_"):
        msg = "the FastFrugalTreeClassifier is not fitted; call fit before compiling it"
        raise CompileError(msg)
    cues = model.cues_
    names = feature_names([c["name"] for c in cues], len(cues), features, "FastFrugalTreeClassifier")
    tree = model.tree_
    levels = tree["levels"]
    used = sorted({level["cue"] for level in levels})
    index = {cue: i for i, cue in enumerate(used)}
    columns: dict[str, list[Any]] = {
        k: [] for k in ("split_feature", "threshold", "left", "right", "default_left", "missing", "categories")
    }
    leaves: list[list[float]] = []

    def leaf(signal: bool, k: int) -> int:
        leaves.append([SIGNAL_MARK, tree["p_signal"][k]] if signal else [NOISE_MARK, tree["p_noise"][k]])
        return ~(len(leaves) - 1)

    last = len(levels) - 1
    for k, level in enumerate(levels):
        cue, test, exit_ = cues[level["cue"]], level["test"], level["exit"]
        nxt = k + 1
        true_child = leaf(True, k) if exit_ in ("signal", "both") else nxt
        false_child = leaf(False, k) if exit_ in ("noise", "both") else nxt
        missing_child = (true_child if tree["missing_decision"] else false_child) if k == last else nxt
        if test["kind"] == "in":
            left, right = true_child, false_child
            columns["categories"].append(_codes(cue, test["codes"]))
            columns["threshold"].append(0.0)
        else:
            # The IR goes left when x <= threshold.
            left, right = (false_child, true_child) if test["kind"] == "greater" else (true_child, false_child)
            columns["categories"].append(None)
            columns["threshold"].append(float(test["threshold"]))
        columns["split_feature"].append(index[level["cue"]])
        columns["left"].append(left)
        columns["right"].append(right)
        columns["default_left"].append(missing_child == left)
        columns["missing"].append("nan")
    ir_tree = {"output": None, **columns, "leaf_value": leaves}
    return {
        "format": "streamml-ir",
        "version": 1,
        "name": "fft",
        "model_version": "1",
        "framework": "streamml",
        "task": "binary",
        "features": [names[c] for c in used],
        "classes": ir_classes("binary", 2, list(model.classes_), "FastFrugalTreeClassifier"),
        "preprocess": None,
        "model": {
            "type": "trees",
            "n_outputs": 2,
            "base_score": [0.0, 0.0],
            "aggregate": "sum",
            "feature_cast": "float64",
            "comparison": "le",
            "accumulate": "float64",
            "sigmoid_scale": 1.0,
            "category_match": "exact",
            "trees": [ir_tree],
        },
        "link": "identity",
        "binary_label": "argmax",
        "metadata": {
            "estimator": "FastFrugalTreeClassifier",
            "algorithm": model.algorithm,
            "levels": len(levels),
            "in_words": model.describe().text,
        },
        "drift_reference": None,
    }


def _codes(cue: dict[str, Any], codes: list[int]) -> list[int]:
    values = [cue["levels"][c] for c in codes]
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or v != int(v)]
    if bad:
        msg = (
            f"cue {cue['name']!r} is categorical with levels {bad!r}; the IR's inputs are float64, so a categorical "
            "cue compiles only when its levels are non-negative integer codes: encode it as such before fit"
        )
        raise CompileError(msg)
    return sorted(int(v) for v in values)
