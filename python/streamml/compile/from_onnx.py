"""ONNX-ML graphs to the model IR (``docs/ir.md``): ``streamml compile model.onnx``.

The graph is read with the ``onnx`` package (``pip install 'streamml[onnx]'``) and walked in
order. It must hold one model operator — ``TreeEnsembleClassifier``, ``TreeEnsembleRegressor``,
``TreeEnsemble`` (ai.onnx.ml opset 5), ``LinearClassifier`` or ``LinearRegressor`` — fed by the
graph's inputs through the glue converters emit (``Identity``, ``Cast``, ``Concat`` on the feature
axis, ``ArrayFeatureExtractor``/``Gather`` of constant columns, trivial ``Reshape``/``Flatten``)
and the preprocessing operators ``Scaler``, ``Imputer`` (of NaN), ``Normalizer`` (L1, L2) and
``OneHotEncoder`` (on strings, which become utf8 inputs, or on numbers with integer categories,
which onnxruntime truncates to int64 first: the IR's ``cast`` to ``int64``), which become the IR's
preprocessing steps (``affine``, ``impute``, ``normalize``, ``one_hot``, ``cast``, ``select``,
and ``columns`` for a ``Concat`` of differently preprocessed parts, as skl2onnx writes a
``ColumnTransformer``). The model may be followed only by output glue (``ZipMap``,
``Cast``, ``Identity``, a ``Mul`` by one, the ``Normalizer`` skl2onnx puts after a softmax).
Any other operator is refused with its name and its node's name.

The arithmetic is onnxruntime's, stated as IR data:

- A tree ensemble whose input is float compares ``float(x)`` with float32 thresholds
  (``feature_cast: float32``) and sums leaf weights in float32 (``accumulate: float32``); a double
  input keeps float64 values and sums in float64. ``BRANCH_LT``/``GTE`` become ``<=`` against the
  largest value below the threshold (exact, since ``x`` is rounded to that type first),
  ``BRANCH_GT``/``GTE`` swap the children, and ``BRANCH_EQ``/``NEQ`` (and the chains of
  ``BRANCH_EQ`` onnxmltools writes for a LightGBM categorical split) become categorical nodes.
  A NaN goes to the true branch where ``nodes_missing_value_tracks_true`` says so, else where its
  comparison sends it (false, except for ``NEQ``).
- ``post_transform`` is the IR's link (``NONE`` identity, ``LOGISTIC`` sigmoid, ``SOFTMAX``
  softmax); ``base_values`` the base score; ``aggregate_function`` ``SUM``/``AVERAGE``.
- Two-class tree ensembles with one weighted class (what every converter writes) follow
  onnxruntime's binary rule: weights all non-negative give ``P(class 1) = score`` and the label
  ``score > 0.5``; mixed weights with ``LOGISTIC`` give ``sigmoid(score)`` and the label
  ``score > 0``. Linear classifiers label by the first maximum raw score.

- ``Scaler`` and ``Normalizer`` output float: their steps end with a ``cast`` to float32, and on a
  float input ``Scaler`` rounds after the subtraction and after the product, as onnxruntime does.

onnxruntime computes in float32 where the IR computes in float64 (base values, links, linear
models, normalizing), so results agree within about one float32 rounding, not bit for bit.

Examples:
    >>> import numpy as np
    >>> from skl2onnx import to_onnx
    >>> from sklearn.tree import DecisionTreeRegressor
    >>> x = np.array([[0.0], [1.0], [2.0], [3.0]], dtype=np.float32)
    >>> tree = DecisionTreeRegressor(max_depth=1).fit(x, [0.0, 0.0, 1.0, 1.0])
    >>> ir = to_ir(to_onnx(tree, x, target_opset=18), features=["a"])
    >>> ir["task"], ir["model"]["feature_cast"], ir["model"]["trees"][0]["threshold"]
    ('regression', 'float32', [1.5])
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from streamml.compile import _common
from streamml.compile._onnx_trees import TreeEnsemble, link
from streamml.errors import CompileError

ML = "ai.onnx.ml"
MODEL_OPS = ("TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble", "LinearClassifier", "LinearRegressor")
GLUE_OPS = (
    "Identity",
    "Cast",
    "Concat",
    "ArrayFeatureExtractor",
    "Gather",
    "Reshape",
    "Flatten",
    "Scaler",
    "Imputer",
    "Normalizer",
    "OneHotEncoder",
    "ZipMap",
    "Mul",
)
SUPPORTED_TEXT = ", ".join((*MODEL_OPS, *GLUE_OPS))

#: ONNX tensor element types (onnx.TensorProto.DataType) this converter reads.
FLOAT, DOUBLE, INT64, STRING = 1, 11, 7, 8
_NUMERIC = {1: "float", 11: "double", 6: "int32", 7: "int64"}
_CAST32 = {"type": "cast", "to": "float32"}


@dataclass(frozen=True)
class _Features:
    """A tensor of feature columns: ``columns[j]`` is the graph input column it carries."""

    columns: tuple[int, ...]
    dtype: int  # ONNX element type
    float32: bool  # onnxruntime sees float32 values here
    steps: tuple[dict[str, Any], ...] = ()  # IR preprocessing steps on these columns, in order
    rounded: bool = False  # the steps have rounded the values to float32 already
    out_width: int | None = None  # columns after the steps, where they change the count

    @property
    def width(self) -> int:
        """How many columns this tensor has."""
        return len(self.columns) if self.out_width is None else self.out_width

    def then(self, *steps: dict[str, Any], ort_reads_float: bool = True) -> _Features:
        """These columns through more steps, which read the values onnxruntime reads (float32 first)."""
        first = (_CAST32,) if ort_reads_float and self.float32 and not self.rounded else ()
        return replace(self, steps=(*self.steps, *first, *steps))


@dataclass(frozen=True)
class _IntCast:
    """Features cast to integers (truncated): only a ``OneHotEncoder`` of integer categories reads them."""

    node: Any
    feats: _Features | None = None  # the features cast to int64 (None: another integer type)


@dataclass
class _Prediction:
    """An output of the model operator (``label`` or ``scores``), and glue applied to it."""

    kind: str
    glue: list[str] = field(default_factory=list)


def to_ir(model: Any, *, features: list[str] | None = None) -> dict[str, Any]:
    """Convert an ONNX-ML graph (a ``.onnx`` file, its bytes, or an ``onnx.ModelProto``) into the IR.

    Args:
        model: the graph.
        features: names for the graph's input columns, in the graph's input order. Default: the
            input names when each input is one column, else ``f0..f{n-1}``. (Without
            preprocessing, the binary's inputs are listed in the model's column order.)

    Raises:
        CompileError: the graph holds an operator or attribute streamml does not support (the
            message names the operator and its node), or ``features`` does not fit.
    """
    proto = _load(model)
    return _Graph(proto, _source(model)).to_ir(features)


def _source(model: Any) -> str:
    return f"ONNX model {model}" if isinstance(model, (str, os.PathLike)) else "the ONNX model"


def _load(model: Any) -> Any:
    from streamml._extras import require

    onnx = require("onnx", "compiling an ONNX model")
    if isinstance(model, onnx.ModelProto):
        return model
    try:
        if isinstance(model, (bytes, bytearray)):
            return onnx.load_model_from_string(bytes(model))
        return onnx.load(str(Path(model)), load_external_data=False)
    except Exception as e:  # protobuf's DecodeError and friends
        msg = f"{_source(model)} is not a readable ONNX model ({type(e).__name__}: {e}); expected an ONNX protobuf file"
        raise CompileError(msg) from None


def _attrs(node: Any) -> dict[str, Any]:
    import onnx

    out: dict[str, Any] = {}
    for a in node.attribute:
        value = onnx.helper.get_attribute_value(a)
        if isinstance(value, onnx.TensorProto):
            value = onnx.numpy_helper.to_array(value)
        elif isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, list) and value and isinstance(value[0], bytes):
            value = [v.decode() for v in value]
        out[a.name] = value
    return out


def _describe(node: Any) -> str:
    domain = f"{node.domain}." if node.domain and node.domain != "ai.onnx" else ""
    return f"node {node.name or '(unnamed)'!r} ({domain}{node.op_type})"


class _Graph:
    def __init__(self, proto: Any, source: str) -> None:
        self.proto = proto
        self.source = source
        self.graph = proto.graph
        self.values: dict[str, Any] = {}
        self.constants: dict[str, np.ndarray] = {}
        self.model_node: Any = None
        self.inputs: list[tuple[str, int]] = []  # (name, width)
        self.n_inputs = 0
        self.input_types: list[str] = []
        self.normalized = False  # a Normalizer(L1) after a softmax

    def fail(self, node: Any, what: str) -> CompileError:
        return CompileError(f"{self.source}: {_describe(node)} {what}")

    # -- the walk -----------------------------------------------------------------------------

    def to_ir(self, features: list[str] | None) -> dict[str, Any]:
        import onnx

        for init in self.graph.initializer:
            self.constants[init.name] = onnx.numpy_helper.to_array(init)
        self._read_inputs()
        for node in self.graph.node:
            self._step(node)
        if self.model_node is None:
            msg = f"{self.source} holds no model operator; expected one of {', '.join(MODEL_OPS)}"
            raise CompileError(msg)
        for out in self.graph.output:
            if not isinstance(self.values.get(out.name), _Prediction):
                msg = (
                    f"{self.source}: the graph output {out.name!r} is not computed from the model's "
                    f"prediction; streamml's outputs are the model's scores and label"
                )
                raise CompileError(msg)
        return self._model_ir(features)

    def _read_inputs(self) -> None:
        initializers = set(self.constants)
        offset = 0
        for value in self.graph.input:
            if value.name in initializers:
                continue
            tensor = value.type.tensor_type
            if not value.type.HasField("tensor_type") or tensor.elem_type not in (*_NUMERIC, STRING):
                msg = (
                    f"{self.source}: the graph input {value.name!r} is not a numeric or string tensor; streamml "
                    "reads float, double, int32, int64 and string tensors"
                )
                raise CompileError(msg)
            dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
            if len(dims) == 1 or (len(dims) == 2 and dims[1] is not None):
                width = 1 if len(dims) == 1 else int(dims[1])
            else:
                msg = (
                    f"{self.source}: the graph input {value.name!r} has shape {dims}; expected [N, F] with a "
                    "fixed F (or [N])"
                )
                raise CompileError(msg)
            self.inputs.append((value.name, width))
            self.input_types += ["utf8" if tensor.elem_type == STRING else "float64"] * width
            self.values[value.name] = _Features(
                tuple(range(offset, offset + width)), tensor.elem_type, tensor.elem_type == FLOAT
            )
            offset += width
        self.n_inputs = offset

    def _step(self, node: Any) -> None:
        op, domain = node.op_type, node.domain or ""
        if domain not in ("", "ai.onnx", ML):
            raise self.fail(
                node, f"is in the domain {domain!r}; streamml reads ai.onnx and ai.onnx.ml: {SUPPORTED_TEXT}"
            )
        args = [self.values.get(name) if name else None for name in node.input]
        if op in MODEL_OPS and domain == ML:
            self._model_op(node, args)
        elif op == "Identity":
            self._set(node, args[0])
        elif op == "Cast":
            self._cast(node, args[0])
        elif op == "Concat":
            self._concat(node, args)
        elif (op == "ArrayFeatureExtractor" and domain == ML) or op == "Gather":
            self._extract(node, args)
        elif op in ("Reshape", "Flatten"):
            self._reshape(node, args)
        elif op == "Scaler" and domain == ML:
            self._scaler(node, args[0])
        elif op == "ZipMap" and domain == ML:
            self._glue(node, args[0], "scores", "ZipMap")
        elif op == "Mul":
            self._mul(node, args)
        elif op == "Normalizer" and domain == ML:
            self._normalizer(node, args[0])
        elif op == "Imputer" and domain == ML:
            self._imputer(node, args[0])
        elif op == "OneHotEncoder" and domain == ML:
            self._one_hot(node, args[0])
        elif op == "Constant":
            value = _attrs(node).get("value")
            if value is None:
                raise self.fail(node, "holds no tensor 'value'; streamml reads tensor constants")
            self.constants[node.output[0]] = np.asarray(value)
        else:
            raise self.fail(node, f"is not supported; streamml compiles graphs of: {SUPPORTED_TEXT}")

    def _set(self, node: Any, value: Any) -> None:
        if value is None:
            raise self.fail(node, "reads a tensor that is neither a graph input nor computed from one")
        self.values[node.output[0]] = value

    def _features(self, node: Any, value: Any) -> _Features:
        if isinstance(value, _IntCast):
            raise self.fail(
                node,
                f"reads the integers {_describe(value.node)} makes of the features; streamml reads float and double",
            )
        if not isinstance(value, _Features):
            raise self.fail(node, "must read the feature columns (the graph's inputs), not the model's outputs")
        return value

    def _cast(self, node: Any, value: Any) -> None:
        to = int(_attrs(node).get("to", 0))
        if isinstance(value, _Prediction):
            self._glue(node, value, value.kind, f"Cast(to={to})")
            return
        feats = self._features(node, value)
        if to in (6, INT64):  # skl2onnx, before a OneHotEncoder: read by one, refused anywhere else
            self._set(node, _IntCast(node, feats if to == INT64 else None))
            return
        if to not in (FLOAT, DOUBLE):
            raise self.fail(node, f"casts the features to ONNX type {to}; streamml reads float (1) and double (11)")
        self._set(node, replace(feats, dtype=to, float32=feats.float32 or to == FLOAT))

    def _concat(self, node: Any, args: list[Any]) -> None:
        axis = int(_attrs(node).get("axis", 0))
        parts = [self._features(node, a) for a in args]
        if axis not in (1, -1) or len({p.dtype for p in parts}) != 1:
            raise self.fail(
                node,
                f"concatenates on axis {axis} or mixes types; streamml reads a Concat of feature columns on axis 1",
            )
        float32 = any(p.float32 for p in parts)
        if not any(p.steps for p in parts):
            self._set(node, _Features(tuple(c for p in parts for c in p.columns), parts[0].dtype, float32))
            return
        # each part through its own steps, then side by side: one "columns" step on the inputs
        step = {"type": "columns", "parts": [{"columns": list(p.columns), "steps": list(p.steps)} for p in parts]}
        rounded = all(p.rounded or not p.float32 for p in parts)
        width = sum(p.width for p in parts)
        self._set(node, _Features(tuple(range(self.n_inputs)), parts[0].dtype, float32, (step,), rounded, width))

    def _extract(self, node: Any, args: list[Any]) -> None:
        feats = self._features(node, args[0])
        index = self.constants.get(node.input[1]) if len(node.input) > 1 else None
        axis = int(_attrs(node).get("axis", 0)) if node.op_type == "Gather" else 1
        picked = [int(i) for i in np.ravel(index)] if index is not None and np.ndim(index) == 1 else None
        if axis != 1 or picked is None or not all(-feats.width <= i < feats.width for i in picked):
            raise self.fail(
                node,
                f"does not pick feature columns by constant indices; expected 1-D indices on axis 1 of {feats.width}",
            )
        picked = [i % feats.width for i in picked]
        if not feats.steps:
            self._set(node, replace(feats, columns=tuple(feats.columns[i] for i in picked)))
        else:
            step = {"type": "select", "columns": picked}
            self._set(node, replace(feats, steps=(*feats.steps, step), out_width=len(picked)))

    def _reshape(self, node: Any, args: list[Any]) -> None:
        if isinstance(args[0], _Prediction):
            self._glue(node, args[0], args[0].kind, node.op_type)
            return
        feats = self._features(node, args[0])
        width = feats.width
        if node.op_type == "Flatten":
            ok = int(_attrs(node).get("axis", 1)) == 1
        else:
            shape = self.constants.get(node.input[1]) if len(node.input) > 1 else None
            ok = shape is not None and [int(s) for s in np.ravel(shape)] in ([-1, width], [0, width])
        if not ok:
            raise self.fail(node, f"changes the shape of the {width} feature columns; streamml reads [N, {width}] only")
        self._set(node, feats)

    def _scaler(self, node: Any, value: Any) -> None:
        feats = self._features(node, value)
        a = _attrs(node)
        width = feats.width
        offset = [float(v) for v in a.get("offset", [0.0])]
        scale = [float(v) for v in a.get("scale", [1.0])]
        offset = offset * width if len(offset) == 1 else offset
        scale = scale * width if len(scale) == 1 else scale
        if len(offset) != width or len(scale) != width:
            raise self.fail(node, f"has {len(offset)} offsets and {len(scale)} scales for {width} columns")
        if not all(math.isfinite(v) for v in (*offset, *scale)):
            raise self.fail(node, "holds non-finite offsets or scales")
        # onnxruntime subtracts and multiplies in the input's type and outputs float; on float input each
        # result is rounded to float32 (a float64 difference or product of float32 values, rounded once,
        # is exactly the float32 result)
        if feats.float32:
            steps = ({"type": "affine", "sub": offset}, _CAST32, {"type": "affine", "mul": scale}, _CAST32)
        else:  # a double input: float64 arithmetic, then the float output
            steps = ({"type": "affine", "sub": offset, "mul": scale}, _CAST32)
        self._set(node, replace(feats.then(*steps), dtype=FLOAT, float32=True, rounded=True))

    def _imputer(self, node: Any, value: Any) -> None:
        feats = self._features(node, value)
        a = _attrs(node)
        width = feats.width
        fill = [float(v) for v in a.get("imputed_value_floats", [])]
        fill = fill * width if len(fill) == 1 else fill
        replaced = float(a.get("replaced_value_float", 0.0))
        if a.get("imputed_value_int64s") or len(fill) != width or not math.isnan(replaced):
            raise self.fail(
                node,
                f"replaces {replaced} with {len(fill)} float values for {width} columns; streamml reads "
                "imputed_value_floats (one, or one per column) replacing NaN",
            )
        if not all(math.isfinite(v) for v in fill):
            raise self.fail(node, "holds non-finite imputed values")
        # only NaN changes, to float32 fills: no rounding needed before it
        self._set(node, feats.then({"type": "impute", "fill": fill}, ort_reads_float=False))

    def _one_hot(self, node: Any, value: Any) -> None:
        a = _attrs(node)
        strings, ints = a.get("cats_strings"), a.get("cats_int64s")
        if bool(strings) == bool(ints):
            raise self.fail(node, "has both or neither of cats_strings and cats_int64s; expected one of them")
        categories = list(strings or ints)
        if len(set(categories)) != len(categories):
            raise self.fail(node, "repeats a category; streamml reads distinct categories")
        # zeros=1: an unknown value (and a null, which onnxruntime cannot receive) is all zeros
        unknown = -1 if int(a.get("zeros", 1)) else "error"
        k = len(categories)
        enc = {"hot": list(range(k)), "width": k, "unknown": unknown, "missing": unknown}
        if strings:
            feats = self._features(node, value)
            if feats.dtype != STRING:
                raise self.fail(node, "reads numbers with string categories; streamml reads strings with cats_strings")
            out = feats.then(
                {"type": "one_hot", "columns": [{"categories": categories, **enc}] * feats.width}, ort_reads_float=False
            )
        else:
            # onnxruntime looks up static_cast<int64_t>(x): the truncated value (NaN: no category).
            if isinstance(value, _IntCast):
                if value.feats is None:
                    raise self.fail(
                        node,
                        f"reads the int32 values {_describe(value.node)} makes; "
                        "streamml reads a Cast to int64 or float/double features",
                    )
                feats = value.feats
            else:
                feats = self._features(node, value)
            if feats.dtype not in (FLOAT, DOUBLE):
                raise self.fail(
                    node,
                    "reads strings with integer categories; streamml reads float or double features with cats_int64s",
                )
            if any(abs(c) > 2**53 for c in categories):
                raise self.fail(node, "has an integer category beyond 2^53, which a double cannot hold exactly")
            step = {"type": "one_hot", "columns": [{"categories": [int(c) for c in categories], **enc}] * feats.width}
            out = feats.then({"type": "cast", "to": "int64"}, step)
        out = replace(out, dtype=FLOAT, float32=True, rounded=True)
        self._set(node, replace(out, out_width=feats.width * k))

    def _glue(self, node: Any, value: Any, kind: str, what: str) -> None:
        if not isinstance(value, _Prediction) or value.kind != kind:
            raise self.fail(node, f"is supported only on the model's {kind}")
        self._set(node, _Prediction(kind, [*value.glue, what]))

    def _mul(self, node: Any, args: list[Any]) -> None:
        pred = next((a for a in args if isinstance(a, _Prediction)), None)
        other = [self.constants.get(n) for n, a in zip(node.input, args, strict=True) if a is None]
        if pred is None or len(other) != 1 or other[0] is None or not np.all(np.asarray(other[0]) == 1):
            raise self.fail(node, "is supported only as a multiplication of the model's scores by the constant 1")
        self._glue(node, pred, pred.kind, "Mul(1)")

    def _normalizer(self, node: Any, value: Any) -> None:
        norm = _attrs(node).get("norm", "MAX")
        model = self.model_node
        if isinstance(value, _Prediction):
            post = _attrs(model).get("post_transform", "NONE") if model is not None else None
            if norm == "L1" and post == "SOFTMAX":  # skl2onnx: softmax probabilities already sum to one
                self.normalized = True
                self._glue(node, value, "scores", "Normalizer(L1)")
                return
            raise self.fail(
                node, f"normalizes the model's scores ({norm}) after {post}; streamml reads L1 after SOFTMAX"
            )
        feats = self._features(node, value)
        if norm not in ("L1", "L2"):
            raise self.fail(node, f"normalizes the features by {norm}; streamml reads L1 and L2")
        # onnxruntime divides in float32: the IR divides in float64 and rounds once
        step = {"type": "normalize", "norm": norm.lower()}
        self._set(node, replace(feats.then(step, _CAST32), dtype=FLOAT, float32=True, rounded=True))

    def _model_op(self, node: Any, args: list[Any]) -> None:
        if self.model_node is not None:
            raise self.fail(
                node, f"is a second model operator after {_describe(self.model_node)}; streamml compiles one"
            )
        feats = self._features(node, args[0])
        if feats.dtype not in (FLOAT, DOUBLE):
            raise self.fail(node, f"reads {_NUMERIC[feats.dtype]} features; cast them to float or double first")
        self.model_node = node
        self.model_input = args[0]
        kinds = ("label", "scores") if node.op_type.endswith("Classifier") else ("scores",)
        for name, kind in zip(node.output, kinds, strict=False):
            if name:
                self.values[name] = _Prediction(kind)

    # -- the model ----------------------------------------------------------------------------

    def _model_ir(self, features: list[str] | None) -> dict[str, Any]:
        node, feats = self.model_node, self.model_input
        n_inputs = self.n_inputs
        default = [name for name, _ in self.inputs] if all(w == 1 for _, w in self.inputs) else []
        names_in = _common.feature_names(default, n_inputs, features, self.source)
        preprocess: list[dict[str, Any]] | None = None
        if not feats.steps and sorted(feats.columns) == list(range(n_inputs)):
            names = [names_in[c] for c in feats.columns]  # the inputs, in the model's order
        else:
            names = names_in
            select = (
                [] if feats.columns == tuple(range(n_inputs)) else [{"type": "select", "columns": list(feats.columns)}]
            )
            preprocess = [*select, *feats.steps]
        op = node.op_type
        attrs = _attrs(node)
        if op.startswith("Linear"):
            body = _linear(self, node, attrs, feats.width)
        else:
            body = TreeEnsemble(self, node, attrs, feats.float32, feats.dtype == DOUBLE, feats.width).build()
        producer = f"{self.proto.producer_name} {self.proto.producer_version}".strip()
        metadata = {"onnx_operator": op, "onnx_producer": producer, **body.pop("metadata")}
        return {
            "format": "streamml-ir",
            "version": 1,
            "name": self.graph.name or "onnx_model",
            "model_version": str(self.proto.model_version or 1),
            "framework": "onnx",
            "task": body["task"],
            "features": names,
            **({"input_types": self.input_types} if "utf8" in self.input_types else {}),
            "classes": body.get("classes"),
            "preprocess": preprocess,
            "model": body["model"],
            "link": body["link"],
            "binary_label": body.get("binary_label", "probability_gt_half"),
            "metadata": metadata,
            "drift_reference": None,
        }

    def labels(self, node: Any, attrs: dict[str, Any], ints: str) -> list[Any]:
        strings = attrs.get("classlabels_strings")
        numbers = attrs.get(ints)
        if bool(strings) == bool(numbers):
            raise self.fail(node, f"must hold exactly one of classlabels_strings and {ints}")
        labels = list(strings or [int(v) for v in numbers])
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise self.fail(node, f"has the class labels {labels!r}; expected at least two distinct labels")
        return labels


def _linear(graph: _Graph, node: Any, attrs: dict[str, Any], n_features: int) -> dict[str, Any]:
    coef = np.asarray(attrs.get("coefficients", []), dtype=np.float64)
    intercepts = [float(v) for v in attrs.get("intercepts", [])]
    post = attrs.get("post_transform", "NONE")
    link_name = link(graph, node, post)
    if node.op_type == "LinearRegressor":
        targets = int(attrs.get("targets", 1))
        if targets != 1 or post != "NONE":
            raise graph.fail(node, f"has {targets} targets and post_transform {post!r}; streamml reads 1 target, NONE")
        n_outputs, task, classes, label = 1, "regression", None, None
        intercepts = intercepts or [0.0]
    else:
        labels = graph.labels(node, attrs, "classlabels_ints")
        n_outputs = len(intercepts)
        if len(labels) == 2 and n_outputs in (1, 2):
            task, label = "binary", "raw_gt_zero" if n_outputs == 1 else "argmax"
        elif n_outputs == len(labels):
            task, label = "multiclass", None
        else:
            raise graph.fail(node, f"has {n_outputs} intercepts for {len(labels)} classes; expected one per class")
        if link_name == "softmax" and n_outputs == 1:
            raise graph.fail(node, "applies SOFTMAX to one score; streamml reads LOGISTIC or NONE there")
        classes = _common.classes(task, n_outputs if task == "multiclass" else 2, labels, graph.source)
    if coef.size != n_outputs * n_features or len(intercepts) != n_outputs:
        raise graph.fail(
            node, f"has {coef.size} coefficients and {len(intercepts)} intercepts; expected {n_outputs} x {n_features}"
        )
    if not (np.isfinite(coef).all() and all(math.isfinite(b) for b in intercepts)):
        raise graph.fail(node, "holds non-finite coefficients or intercepts")
    body: dict[str, Any] = {
        "task": task,
        "classes": classes,
        "model": {
            "type": "linear",
            "n_outputs": n_outputs,
            "coef": coef.reshape(n_outputs, n_features).tolist(),
            "intercept": intercepts,
        },
        "link": link_name,
        "metadata": {"post_transform": post},
    }
    if label is not None:
        body["binary_label"] = label
    return body
