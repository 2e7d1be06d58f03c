"""The tree ensembles of ONNX-ML (``TreeEnsembleClassifier``/``Regressor``, opset-5 ``TreeEnsemble``) as IR trees.

Used by :mod:`streamml.compile.from_onnx`, whose module docs state the arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from streamml.compile import _common
from streamml.errors import CompileError

LINKS = {"NONE": "identity", "LOGISTIC": "sigmoid", "SOFTMAX": "softmax"}
MODES = ("BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ", "BRANCH_MEMBER")
#: Largest category a categorical node may hold (``operators/ir`` caps).
MAX_CATEGORY = 2**24 - 1
#: Internal nodes and leaves a converted forest may hold (the IR's cap), checked while copying
#: the shared subtrees a graph may hold.
MAX_NODES = 2**26


def link(graph: Any, node: Any, post: str) -> str:
    if post not in LINKS:
        raise graph.fail(node, f"has post_transform {post!r}; streamml supports {', '.join(LINKS)}")
    return LINKS[post]


@dataclass
class _Node:
    feature: int
    mode: str
    value: float
    true: tuple[str, int]  # ("node", index) or ("leaf", index)
    false: tuple[str, int]
    nan_true: bool  # where a NaN goes: the true branch
    members: tuple[float, ...] = ()


class TreeEnsemble:
    """Reads the three layouts (Classifier, Regressor, opset-5 TreeEnsemble) into one form, then writes IR trees."""

    def __init__(
        self, graph: Any, node: Any, attrs: dict[str, Any], float32: bool, double: bool, n_features: int
    ) -> None:
        self.graph, self.node, self.attrs, self.n_features = graph, node, attrs, n_features
        # onnxruntime keeps thresholds, weights and sums in the input's type (float or double)
        self.float32_input = float32
        self.double = double
        self.nodes: list[_Node] = []
        self.roots: list[tuple[str, int]] = []
        self.leaves: list[dict[int, float]] = []  # per leaf: output -> weight
        self.emitted = 0

    def fail(self, what: str) -> CompileError:
        return self.graph.fail(self.node, what)

    # -- reading --------------------------------------------------------------------------------

    def build(self) -> dict[str, Any]:
        a, op = self.attrs, self.node.op_type
        if op == "TreeEnsemble":
            self._read_v5()
            n_outputs = int(a.get("n_targets", 1))
            post = ("NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT")[int(a.get("post_transform", 0))]
            aggregate = ("AVERAGE", "SUM", "MIN", "MAX")[int(a.get("aggregate_function", 1))]
            base = []
        else:
            prefix = "class" if op == "TreeEnsembleClassifier" else "target"
            self._read_v1(prefix)
            post = a.get("post_transform", "NONE")
            aggregate = a.get("aggregate_function", "SUM") if op == "TreeEnsembleRegressor" else "SUM"
            base = [float(v) for v in (a.get("base_values_as_tensor", a.get("base_values")) or [])]
            n_outputs = int(a.get("n_targets", 1)) if prefix == "target" else 0
        link_name = link(self.graph, self.node, post)
        if aggregate not in ("SUM", "AVERAGE"):
            raise self.fail(f"has aggregate_function {aggregate}; streamml supports SUM and AVERAGE")
        used = sorted({k for leaf in self.leaves for k in leaf})
        body: dict[str, Any] = {}
        if op == "TreeEnsembleClassifier":
            labels = self.graph.labels(self.node, a, "classlabels_int64s")
            if len(labels) > 2:
                task, n_outputs = "multiclass", len(labels)
                if base and len(base) != n_outputs:
                    raise self.fail(f"has {len(base)} base_values for {n_outputs} classes; expected 0 or one per class")
            else:
                task, n_outputs = "binary", 1
                if used != [0] or len(base) > 1:
                    raise self.fail(
                        f"has weights for classes {used} and {len(base)} base_values; streamml reads the two-class "
                        "layout converters write (weights for class 0 only, at most one base value)"
                    )
                positive = all(w >= 0 for leaf in self.leaves for w in leaf.values())
                if positive and post == "NONE":
                    body["binary_label"] = "probability_gt_half"
                elif not positive and post == "LOGISTIC":
                    body["binary_label"] = "raw_gt_zero"
                else:
                    kind = "non-negative" if positive else "mixed-sign"
                    raise self.fail(
                        f"has {kind} weights with post_transform {post}; streamml reads non-negative weights "
                        "with NONE or mixed weights with LOGISTIC for two classes"
                    )
            body["classes"] = _common.classes(task, n_outputs, labels, self.graph.source)
        else:
            task = "regression"
            if n_outputs != 1 or post != "NONE":
                raise self.fail(f"has {n_outputs} targets and post_transform {post}; streamml reads 1 target, NONE")
            if len(base) > 1:
                raise self.fail(f"has {len(base)} base_values for one target")
        if any(k < 0 or k >= n_outputs for k in used):
            raise self.fail(f"has leaf weights for outputs {used}; expected outputs 0..{n_outputs - 1}")
        base = base or [0.0] * n_outputs
        if not all(math.isfinite(b) for b in base):
            raise self.fail("holds non-finite base_values")
        trees = [self._tree(root, n_outputs) for root in self.roots]
        body.update(
            task=task,
            link=link_name,
            model={
                "type": "trees",
                "n_outputs": n_outputs,
                "base_score": base,
                "aggregate": "mean" if aggregate == "AVERAGE" else "sum",
                "feature_cast": "float32" if self.float32_input else "float64",
                "comparison": "le",
                "accumulate": "float64" if self.double else "float32",
                "sigmoid_scale": 1.0,
                "category_match": "exact",
                "trees": trees,
            },
            metadata={
                "post_transform": post,
                "num_trees": len(trees),
                "max_depth": max((_common.depth(t) for t in trees), default=0),
            },
        )
        return body

    def _threshold_type(self, values: Any) -> np.ndarray:
        return np.asarray(values, dtype=np.float64 if self.double else np.float32)

    def _read_v1(self, prefix: str) -> None:
        a = self.attrs
        tree_ids = [int(v) for v in a.get("nodes_treeids", [])]
        node_ids = [int(v) for v in a.get("nodes_nodeids", [])]
        n = len(tree_ids)
        columns = ("nodes_featureids", "nodes_modes", "nodes_truenodeids", "nodes_falsenodeids")
        values = a.get("nodes_values_as_tensor", a.get("nodes_values"))
        if values is None or len(values) != n or len(node_ids) != n or any(len(a.get(c, [])) != n for c in columns):
            raise self.fail("has node attributes of different lengths; expected one entry per node in each")
        values = self._threshold_type(values)
        tracks = list(a.get("nodes_missing_value_tracks_true", [])) + [0] * n
        index = {}
        for i, key in enumerate(zip(tree_ids, node_ids, strict=True)):
            if key in index:
                raise self.fail(f"holds node {key[1]} of tree {key[0]} twice")
            index[key] = i
        kinds: list[tuple[str, int]] = []
        leaf_of: dict[int, int] = {}
        for i, mode in enumerate(a["nodes_modes"]):
            if mode == "LEAF":
                leaf_of[i] = len(self.leaves)
                kinds.append(("leaf", len(self.leaves)))
                self.leaves.append({})
            else:
                kinds.append(("node", i))

        def child(i: int, column: str) -> tuple[str, int]:
            target = index.get((tree_ids[i], int(a[column][i])))
            if target is None:
                raise self.fail(f"node {node_ids[i]} of tree {tree_ids[i]} points to a node that does not exist")
            return kinds[target]

        nodes: dict[int, _Node] = {}
        for i, mode in enumerate(a["nodes_modes"]):
            if mode == "LEAF":
                continue
            if mode not in MODES[:6]:
                raise self.fail(f"has the node mode {mode!r}; expected LEAF or one of {', '.join(MODES[:6])}")
            nodes[i] = _Node(
                int(a["nodes_featureids"][i]),
                mode,
                float(values[i]),
                child(i, "nodes_truenodeids"),
                child(i, "nodes_falsenodeids"),
                bool(tracks[i]),
            )
        # nodes are addressed by their position in the attributes
        self.nodes = [nodes.get(i) for i in range(n)]  # type: ignore[misc]
        seen: list[int] = []
        for i, t in enumerate(tree_ids):
            if not seen or seen[-1] != t:
                if t in seen:
                    raise self.fail(f"lists the nodes of tree {t} in more than one run")
                seen.append(t)
                self.roots.append(kinds[i])  # onnxruntime: a tree's first listed node is its root
        weights = a.get(f"{prefix}_weights_as_tensor", a.get(f"{prefix}_weights"))
        w_trees, w_nodes, w_ids = (a.get(f"{prefix}_{c}", []) for c in ("treeids", "nodeids", "ids"))
        if weights is None or not (len(weights) == len(w_trees) == len(w_nodes) == len(w_ids)):
            raise self.fail(f"has {prefix}_* attributes of different lengths")
        weights = self._threshold_type(weights)
        for t, nd, k, w in zip(w_trees, w_nodes, w_ids, weights, strict=True):
            i = index.get((int(t), int(nd)))
            if i is None:
                raise self.fail(f"has a weight for node {nd} of tree {t}, which does not exist")
            if i not in leaf_of:
                continue  # onnxruntime ignores weights on internal nodes
            leaf = self.leaves[leaf_of[i]]
            leaf[int(k)] = float(np.asarray(leaf.get(int(k), 0.0) + w, dtype=weights.dtype))

    def _read_v5(self) -> None:
        a = self.attrs
        modes = [int(m) for m in np.ravel(a["nodes_modes"])]
        splits = self._threshold_type(np.ravel(a["nodes_splits"]))
        n = len(modes)
        tracks = list(a.get("nodes_missing_value_tracks_true", [])) + [0] * n
        members = [float(v) for v in np.ravel(a.get("membership_values", []))]
        sets: list[tuple[float, ...]] = []
        current: list[float] = []
        for v in members:
            if math.isnan(v):
                sets.append(tuple(current))
                current = []
            else:
                current.append(v)
        set_iter = iter(sets)
        for i in range(n):
            if modes[i] > 6:
                raise self.fail(f"has the node mode {modes[i]}; expected 0..6")
            true = ("leaf" if a["nodes_trueleafs"][i] else "node", int(a["nodes_truenodeids"][i]))
            false = ("leaf" if a["nodes_falseleafs"][i] else "node", int(a["nodes_falsenodeids"][i]))
            member = next(set_iter, None) if modes[i] == 6 else ()
            if member is None:
                raise self.fail("has fewer membership_values sets than BRANCH_MEMBER nodes")
            self.nodes.append(
                _Node(
                    int(a["nodes_featureids"][i]),
                    MODES[modes[i]],
                    float(splits[i]),
                    true,
                    false,
                    bool(tracks[i]),
                    member,
                )
            )
        weights = self._threshold_type(np.ravel(a["leaf_weights"]))
        self.leaves = [{int(k): float(w)} for k, w in zip(a["leaf_targetids"], weights, strict=True)]
        self.roots = [("node", int(r)) for r in a["tree_roots"]]
        for i, nd in enumerate(self.nodes):
            if nd.true == nd.false and nd.true[0] == "leaf":
                self.nodes[i] = replace(nd, mode="ALWAYS")  # a tree that is one leaf

    # -- writing --------------------------------------------------------------------------------

    def _tree(self, root: tuple[str, int], n_outputs: int) -> dict[str, Any]:
        tree: dict[str, Any] = {
            k: [] for k in ("split_feature", "threshold", "left", "right", "default_left", "missing", "categories")
        }
        leaves: list[dict[int, float]] = []

        def ref(target: tuple[str, int], depth: int) -> int:
            kind, i = target
            if not 0 <= i < len(self.nodes if kind == "node" else self.leaves):
                raise self.fail(f"has a branch to {kind} {i}, which does not exist")
            if kind == "node" and self.nodes[i] is not None and self.nodes[i].mode == "ALWAYS":
                kind, i = self.nodes[i].true
            if kind == "leaf" or self.nodes[i] is None:
                leaves.append(self.leaves[i] if kind == "leaf" else {})
                return ~(len(leaves) - 1)
            if depth > 4096:
                raise self.fail("holds a tree deeper than 4096 nodes (or a cycle)")
            return emit(self.nodes[i], depth)

        def emit(nd: _Node, depth: int) -> int:
            self.emitted += 1
            if self.emitted > MAX_NODES:
                raise self.fail(f"expands to more than {MAX_NODES} nodes")
            if nd.feature < 0 or nd.feature >= self.n_features:
                raise self.fail(f"splits on feature {nd.feature}; the model has {self.n_features}")
            categorical, categories, threshold, swap, nd = self._split(nd)
            me = len(tree["split_feature"])
            for k, v in (
                ("split_feature", nd.feature),
                ("threshold", threshold),
                ("left", 0),
                ("right", 0),
                ("default_left", nd.nan_true != swap),
                ("missing", "nan"),
                ("categories", categories if categorical else None),
            ):
                tree[k].append(v)
            first, second = (nd.false, nd.true) if swap else (nd.true, nd.false)
            tree["left"][me] = ref(first, depth + 1)
            tree["right"][me] = ref(second, depth + 1)
            return me

        top = ref(root, 0)
        if top < 0:
            for k in tree:
                tree[k] = []
        scalar = {k for leaf in leaves for k in leaf}
        if len(scalar) <= 1 and all(len(leaf) == 1 for leaf in leaves) and n_outputs >= 1:
            tree["output"] = next(iter(scalar), 0)
            tree["leaf_value"] = [next(iter(leaf.values())) for leaf in leaves]
        else:
            tree["output"] = None
            tree["leaf_value"] = [[leaf.get(k, 0.0) for k in range(n_outputs)] for leaf in leaves]
        for leaf in tree["leaf_value"]:
            if not all(math.isfinite(v) for v in np.ravel(leaf)):
                raise self.fail("holds a non-finite leaf weight")
        return tree

    def _below(self, t: float) -> float:
        """Return the largest value of the compared type below ``t``, so that ``x < t`` iff ``x <= it``."""
        if self.float32_input:
            f = np.float32(t)
            return float(f if float(f) < t else np.nextafter(f, np.float32(-np.inf)))
        return float(np.nextafter(t, -np.inf))

    def _split(self, nd: _Node) -> tuple[bool, list[int], float, bool, _Node]:
        """One ONNX node as an IR node that goes left on ``<=``: (categorical, categories, threshold, swap, node)."""
        mode = nd.mode
        if mode in ("BRANCH_EQ", "BRANCH_MEMBER"):
            values = list(nd.members) if mode == "BRANCH_MEMBER" else [nd.value]
            # onnxmltools writes a LightGBM categorical split as a chain of EQ nodes with one true branch
            while mode == "BRANCH_EQ" and nd.false[0] == "node":
                nxt = self.nodes[nd.false[1]]
                if nxt is None or (nxt.mode, nxt.feature, nxt.true, nxt.nan_true) != (
                    mode,
                    nd.feature,
                    nd.true,
                    nd.nan_true,
                ):
                    break
                values.append(nxt.value)
                nd = replace(nd, false=nxt.false)
            return True, self._categories(values), 0.0, False, nd
        if mode == "BRANCH_NEQ":
            # x != t is true for NaN: a NaN goes to the true branch, which is the right one here
            return True, self._categories([nd.value]), 0.0, True, replace(nd, nan_true=True)
        t = nd.value
        threshold = t if mode in ("BRANCH_LEQ", "BRANCH_GT") else self._below(t)
        swap = mode in ("BRANCH_GT", "BRANCH_GTE")
        if math.isnan(threshold) or threshold == -math.inf:
            raise self.fail(
                f"has a {mode} node on the threshold {t}; streamml needs a threshold above the lowest value"
            )
        if threshold == math.inf:  # every number goes to the "<=" side: a categorical node with no categories
            return True, [], 0.0, not swap, nd
        return False, [], threshold, swap, nd

    def _categories(self, values: list[float]) -> list[int]:
        out = []
        for v in values:
            if not (v >= 0 and float(v).is_integer() and v <= MAX_CATEGORY):
                raise self.fail(
                    f"tests equality with {v}; streamml reads BRANCH_EQ/NEQ/MEMBER on integers 0..{MAX_CATEGORY}"
                )
            out.append(int(v))
        return sorted(set(out))
