"""scikit-learn preprocessing to the IR's preprocessing steps (``docs/ir.md``, "Preprocessing").

The transformers of a ``Pipeline`` in front of an estimator (and the ``ColumnTransformer`` s and
nested pipelines among them) become IR steps that state scikit-learn's arithmetic (1.9):

- ``StandardScaler``: ``X -= mean_; X /= scale_`` (each if enabled); ``RobustScaler`` the same
  with ``center_``; ``MinMaxScaler``: ``X *= scale_; X += min_``; ``MaxAbsScaler``:
  ``X /= scale_`` — an ``affine`` step each, the same float64 operations in the same order.
- ``Normalizer``: ``normalize`` (``l1``, ``l2``, ``max``).
- ``SimpleImputer``: ``impute`` with ``statistics_`` (numbers, or strings for string columns),
  the ``MissingIndicator`` of ``add_indicator`` as the step's indicator columns, and a
  ``select`` that drops the columns scikit-learn drops (all missing at fit).
- ``OneHotEncoder`` / ``OrdinalEncoder``: each category's output, the unknown value's and the
  missing value's are read by calling the fitted encoder's own ``transform`` on probe rows, so
  ``drop``, infrequent categories and ``handle_unknown`` come out as scikit-learn computes them.
- ``ColumnTransformer``: a ``columns`` step, one part per fitted transformer in
  ``transformers_`` order (``passthrough`` a part with no steps, ``drop`` no part), the
  ``remainder`` last.

Which inputs are strings is learnt on the way: a column that reaches an encoder with string
categories, or an imputer with a string fill, is a utf8 input; every other input is float64.
A missing string (Arrow null) is what pandas calls NaN (or None) in an object column.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from streamml.errors import CompileError

TRANSFORMERS = (
    "StandardScaler",
    "MinMaxScaler",
    "MaxAbsScaler",
    "RobustScaler",
    "Normalizer",
    "SimpleImputer",
    "OneHotEncoder",
    "OrdinalEncoder",
    "ColumnTransformer",
    "Pipeline",
)
TRANSFORMERS_TEXT = ", ".join(TRANSFORMERS) + " ('passthrough' and 'drop' where scikit-learn takes them)"

#: A string no category of a fitted encoder is, to probe what the encoder does with unknowns.
_UNKNOWN = "\x00streamml-unknown-category\x00"


@dataclass
class Column:
    """A column while converting: ``kind`` is ``raw`` (an input no step has typed yet), ``num`` or ``str``."""

    kind: str
    input: int | None = None


class Converter:
    """Converts a list of fitted transformers over ``names`` inputs into IR steps."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.types: list[str | None] = [None] * len(names)
        #: The path of the enclosing ColumnTransformer plus "/": IR step names are relative to it.
        self.base = ""

    def _name(self, path: str) -> str:
        return path[len(self.base) :]

    # -- types ------------------------------------------------------------------------------

    def _as_num(self, col: Column, where: str) -> Column:
        if col.kind == "num":
            return col
        if col.kind == "raw" and self.types[col.input] in (None, "float64"):
            self.types[col.input] = "float64"
            return Column("num", col.input)
        msg = (
            f"{where} takes numeric columns but input {self.names[col.input]!r} is a string column; "
            "encode strings with a OneHotEncoder or OrdinalEncoder first"
        )
        raise CompileError(msg)

    def _as_str(self, col: Column, where: str) -> Column:
        if col.kind == "str":
            return col
        if col.kind == "raw" and self.types[col.input] in (None, "utf8"):
            self.types[col.input] = "utf8"
            return Column("str", col.input)
        source = f"input {self.names[col.input]!r}" if col.input is not None else "a column computed by an earlier step"
        msg = f"{where} has string categories (or a string fill) but {source} is numeric"
        raise CompileError(msg)

    def input_types(self) -> list[str]:
        """Each input's IR type (float64 where no step said utf8)."""
        return [t or "float64" for t in self.types]

    # -- steps ------------------------------------------------------------------------------

    def pipeline(
        self, steps: list[tuple[str, Any]], cols: list[Column], prefix: str
    ) -> tuple[list[dict], list[Column]]:
        """The IR steps of a pipeline's steps over ``cols``, and the columns they give."""
        out: list[dict] = []
        for name, step in steps:
            if step is None or (isinstance(step, str) and step == "passthrough"):
                continue
            ir_steps, cols = self.transformer(step, cols, f"{prefix}{name}")
            out.extend(ir_steps)
        return out, cols

    def transformer(self, step: Any, cols: list[Column], path: str) -> tuple[list[dict], list[Column]]:
        """The IR steps of one fitted transformer over ``cols``, and the columns they give."""
        kind = type(step).__name__
        where = f"step {path!r} ({kind})"
        if kind == "FunctionTransformer" and step.func is None and type(step).__module__.startswith("sklearn."):
            return [], cols  # the identity: what a ColumnTransformer keeps for remainder="passthrough"
        if kind not in TRANSFORMERS or not type(step).__module__.startswith("sklearn."):
            msg = f"{where} cannot be compiled; supported preprocessing: {TRANSFORMERS_TEXT}"
            raise CompileError(msg)
        if kind != "Pipeline":
            _check_fitted(step, where)
            n_in = getattr(step, "n_features_in_", None)
            if n_in is not None and int(n_in) != len(cols):
                msg = f"{where} was fitted on {n_in} columns but receives {len(cols)} here"
                raise CompileError(msg)
        if kind == "Pipeline":
            return self.pipeline(list(step.steps), cols, f"{path}/")
        if kind == "ColumnTransformer":
            return self.column_transformer(step, cols, path, where)
        if kind == "SimpleImputer":
            return self.imputer(step, cols, path, where)
        if kind in ("OneHotEncoder", "OrdinalEncoder"):
            return self.encoder(step, cols, path, where)
        nums = [self._as_num(c, where) for c in cols]
        n = len(nums)
        if kind == "Normalizer":
            return [{"name": self._name(path), "type": "normalize", "norm": str(step.norm)}], [
                Column("num") for _ in range(n)
            ]
        affine: dict[str, Any] = {"name": self._name(path), "type": "affine"}
        if kind == "StandardScaler":
            if step.with_mean:
                affine["sub"] = _finite(step.mean_, f"{where}: mean_")
            if step.with_std:
                affine["div"] = _finite(step.scale_, f"{where}: scale_")
        elif kind == "RobustScaler":
            if step.with_centering:
                affine["sub"] = _finite(step.center_, f"{where}: center_")
            if step.with_scaling:
                affine["div"] = _finite(step.scale_, f"{where}: scale_")
        elif kind == "MinMaxScaler":
            if step.clip:
                msg = f"{where} has clip=True, which cannot be compiled; fit it with clip=False"
                raise CompileError(msg)
            affine["mul"] = _finite(step.scale_, f"{where}: scale_")
            affine["add"] = _finite(step.min_, f"{where}: min_")
        else:  # MaxAbsScaler
            affine["div"] = _finite(step.scale_, f"{where}: scale_")
        for key in ("div",):
            if key in affine and any(v == 0.0 for v in affine[key]):
                msg = f"{where} divides by zero; refit it"
                raise CompileError(msg)
        return [affine], [Column("num") for _ in range(n)]

    def column_transformer(self, ct: Any, cols: list[Column], path: str, where: str) -> tuple[list[dict], list[Column]]:
        """A ``columns`` step: one part per fitted transformer, in ``transformers_`` order."""
        indices = ct._transformer_to_input_indices  # name -> input column indices (resolved at fit)
        parts = []
        out: list[Column] = []
        outer, self.base = self.base, f"{path}/"
        for name, trans, _ in ct.transformers_:
            selected = [int(i) for i in indices.get(name, [])]
            if (isinstance(trans, str) and trans == "drop") or not selected:
                continue
            part_cols = [cols[i] for i in selected]
            if isinstance(trans, str) and trans == "passthrough":
                steps: list[dict] = []
            else:
                steps, part_cols = self.transformer(trans, part_cols, f"{path}/{name}")
            parts.append({"name": name, "columns": selected, "steps": steps})
            out.extend(part_cols)
        self.base = outer
        width = sum(s.stop - s.start for s in ct.output_indices_.values())
        if width != len(out):
            msg = f"{where}: the converted parts give {len(out)} columns but scikit-learn's give {width}"
            raise CompileError(msg)
        return [{"name": self._name(path), "type": "columns", "parts": parts}], out

    def imputer(self, imp: Any, cols: list[Column], path: str, where: str) -> tuple[list[dict], list[Column]]:
        """An ``impute`` step (and a ``select`` dropping what scikit-learn drops)."""
        missing = imp.missing_values
        if not (missing is None or (isinstance(missing, float) and np.isnan(missing))):
            msg = f"{where} has missing_values={missing!r}; only NaN (or None for strings) can be compiled"
            raise CompileError(msg)
        stats = np.asarray(imp.statistics_)
        fill: list[Any] = []
        typed: list[Column] = []
        for j, (col, value) in enumerate(zip(cols, stats, strict=True)):
            if isinstance(value, str):
                typed.append(self._as_str(col, where))
                fill.append(value)
            else:
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    msg = f"{where}: the fill of column {j} is {value!r}; expected a number or a string"
                    raise CompileError(msg) from None
                typed.append(self._as_num(col, where))
                fill.append(value if np.isfinite(value) else 0.0)  # NaN: a column scikit-learn drops
        valid = _imputer_valid(imp, stats)
        indicator = []
        if imp.add_indicator:
            indicator = [int(i) for i in imp.indicator_.features_]
        step = {"name": self._name(path), "type": "impute", "fill": fill, "indicator": indicator}
        out = [c if c.kind == "str" else Column("num") for c, keep in zip(typed, valid, strict=True) if keep]
        out += [Column("num") for _ in indicator]
        steps = [step]
        if not all(valid):
            kept = [j for j, keep in enumerate(valid) if keep] + [len(cols) + k for k in range(len(indicator))]
            steps.append({"name": f"{self._name(path)}/drop_empty", "type": "select", "columns": kept})
        return steps, out

    def encoder(self, enc: Any, cols: list[Column], path: str, where: str) -> tuple[list[dict], list[Column]]:
        """A ``one_hot`` or ``ordinal`` step, read from the encoder's own ``transform`` on probe rows."""
        one_hot = type(enc).__name__ == "OneHotEncoder"
        specs = []
        out: list[Column] = []
        probes = _Probes(enc, where)
        for j, (col, cats) in enumerate(zip(cols, enc.categories_, strict=True)):
            cats = list(cats)
            markers = [c for c in cats if _is_missing(c)]
            if len(markers) > 1:
                msg = f"{where}: column {j} has both None and NaN as categories; fit it with one kind of missing value"
                raise CompileError(msg)
            has_missing = bool(markers)
            known = [c for c in cats if not _is_missing(c)]
            strings = any(isinstance(c, str) for c in known)
            if strings and not all(isinstance(c, str) for c in known):
                msg = f"{where}: column {j} mixes strings and other categories; expected all strings or all numbers"
                raise CompileError(msg)
            if strings or (not known and col.kind in ("str", "raw") and np.asarray(cats).dtype.kind in "OUS"):
                self._as_str(col, where)
                categories: list[Any] = [str(c) for c in known]
            else:
                self._as_num(col, where)
                try:
                    categories = [float(c) for c in known]
                except (TypeError, ValueError):
                    msg = f"{where}: column {j} has categories {known[:5]!r}; expected strings or numbers"
                    raise CompileError(msg) from None
                if not all(np.isfinite(categories)):
                    msg = f"{where}: column {j} has non-finite categories; expected finite numbers"
                    raise CompileError(msg)
            codes = probes.column(j, known, strings, cats[-1] if has_missing else np.nan)
            if one_hot:
                width = probes.width(j)
                specs.append(
                    {
                        "categories": categories,
                        "hot": [int(c) for c in codes["values"]],
                        "width": width,
                        "unknown": codes["unknown"],
                        "missing": codes["missing"],
                    }
                )
                out.extend(Column("num") for _ in range(width))
            else:
                specs.append(
                    {
                        "categories": categories,
                        "codes": [None if np.isnan(c) else float(c) for c in codes["values"]],
                        "unknown": codes["unknown"],
                        "missing": codes["missing"],
                    }
                )
                out.append(Column("num"))
        step = {"name": self._name(path), "type": "one_hot" if one_hot else "ordinal", "columns": specs}
        return [step], out


def _imputer_valid(imp: Any, stats: np.ndarray) -> list[bool]:
    """Which columns a fitted ``SimpleImputer`` keeps (it drops those all missing at fit)."""
    if getattr(imp, "keep_empty_features", False):
        return [True] * len(stats)
    return [not (isinstance(v, float) and np.isnan(v)) and v is not None for v in stats.tolist()]


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


class _Probes:
    """Ask a fitted encoder what it outputs for each category, an unknown value and a missing one."""

    def __init__(self, enc: Any, where: str) -> None:
        self.enc = enc
        self.where = where
        self.one_hot = type(enc).__name__ == "OneHotEncoder"
        n = len(enc.categories_)
        self.base = [c[0] if len(c) else 0.0 for c in enc.categories_]
        widths = list(getattr(enc, "_n_features_outs", [])) if self.one_hot else [1] * n
        if len(widths) != n:
            msg = f"{where}: cannot read the encoder's output widths (scikit-learn {_sklearn_version()})"
            raise CompileError(msg)
        self.widths = widths
        self.starts = np.concatenate([[0], np.cumsum(widths)]).astype(int).tolist()

    def width(self, j: int) -> int:
        return int(self.widths[j])

    def _transform(self, j: int, values: list[Any]) -> np.ndarray:
        rows = np.empty((len(values), len(self.base)), dtype=object)
        rows[:] = self.base
        rows[:, j] = values
        if all(not isinstance(v, str) for v in self.base) and all(not isinstance(v, str) for v in values):
            rows = rows.astype(np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = self.enc.transform(_framed(self.enc, rows))
        out = out.toarray() if hasattr(out, "toarray") else np.asarray(out)
        return np.asarray(out, dtype=np.float64)[:, self.starts[j] : self.starts[j + 1]]

    def _code(self, block: np.ndarray) -> list[Any]:
        if not self.one_hot:
            return [float(v) for v in block[:, 0]]
        codes = []
        for row in block:
            hot = np.flatnonzero(row)
            if len(hot) > 1 or (len(hot) == 1 and row[hot[0]] != 1.0):
                msg = f"{self.where}: a category sets {row.tolist()}; expected at most one 1"
                raise CompileError(msg)
            codes.append(int(hot[0]) if len(hot) else -1)
        return codes

    def _fallback(self, j: int, value: Any) -> Any:
        try:
            code = self._code(self._transform(j, [value]))[0]
        except ValueError:
            return "error"
        if not self.one_hot and np.isnan(code):
            return None
        return code

    def column(self, j: int, known: list[Any], strings: bool, missing: Any) -> dict[str, Any]:
        values = self._code(self._transform(j, list(known))) if known else []
        if strings:
            unknown: Any = _UNKNOWN
        else:
            numbers = [float(c) for c in known]
            unknown = (max(numbers) + 1.0) if numbers else 0.5
        return {"values": values, "unknown": self._fallback(j, unknown), "missing": self._fallback(j, missing)}


def _framed(enc: Any, rows: np.ndarray) -> Any:
    """Probe rows as the encoder was fitted on them: a DataFrame with its column names, or an array."""
    names = getattr(enc, "feature_names_in_", None)
    if names is None:
        return rows
    import pandas as pd

    return pd.DataFrame(rows, columns=list(names))


def _check_fitted(step: Any, where: str) -> None:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(step)
    except NotFittedError:
        msg = f"{where} is not fitted; call fit() before compiling it"
        raise CompileError(msg) from None


def _finite(values: Any, what: str) -> list[float]:
    array = np.asarray(values, dtype=np.float64)
    if not np.isfinite(array).all():
        msg = f"{what} holds non-finite values; the IR needs finite numbers"
        raise CompileError(msg)
    return array.tolist()


def _sklearn_version() -> str:
    import sklearn

    return sklearn.__version__


def convert(steps: list[tuple[str, Any]], names: list[str]) -> tuple[list[dict], list[str], int]:
    """``(IR steps, input types, number of features the estimator receives)`` for fitted ``steps``."""
    conv = Converter(names)
    ir_steps, cols = conv.pipeline(steps, [Column("raw", j) for j in range(len(names))], "")
    for col in cols:
        if col.kind == "str" or (col.kind == "raw" and conv.types[col.input] == "utf8"):
            msg = (
                f"input {names[col.input]!r} reaches the estimator as strings; "
                "encode it with a OneHotEncoder or OrdinalEncoder"
            )
            raise CompileError(msg)
        if col.kind == "raw":
            conv.types[col.input] = "float64"
    return ir_steps, conv.input_types(), len(cols)
