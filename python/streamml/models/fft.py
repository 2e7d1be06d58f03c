"""Fast-and-frugal trees (FFTs): ``FastFrugalTreeClassifier``.

An FFT is a binary classifier of a few ordered cues. Each level tests one cue
against a threshold (or a set of categories) and has one exit: it decides
"signal" (``classes_[1]``) or "noise" (``classes_[0]``) now, or passes the row
on; the last level decides both ways. The construction algorithms are those
of the R package FFTrees (``ifan``, ``dfan``) and Martignon's ``max`` and
``zigzag``, reimplemented in Rust (``operators/train``, whose module docs
state every rule and how ties are resolved):

- numeric cues: every distinct value is a candidate threshold, in the
  directions ``x > t`` and ``x <= t``; ties go to ``>``, then to the smaller
  threshold;
- categorical cues (string, dictionary or boolean columns, or the columns named
  in ``categorical_features``): a set of levels, grown in the order of each
  level's own score; ties go to the smaller set;
- cues tie when their goals are within 1.5e-8; the first column wins; grown
  trees tie on ``goal`` and the first exit structure wins (all-noise first);
- a missing value (NaN, null) never exits at a level that is not the last; at
  the last level it takes the decision of the training majority (noise on a
  tie), as FFTrees' default ``fin_NA_pred = "majority"``. Missing values are
  left out of each cue's threshold search.

``predict_proba`` gives the training frequency of ``classes_[1]`` among the
rows that took the same exit; ``predict`` gives the exit's decision, which is
not always the class with probability above one half.

Examples:
    >>> import numpy as np
    >>> from streamml.models import FastFrugalTreeClassifier
    >>> x = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [4.0, 0.0], [5.0, 0.0], [6.0, 0.0], [1.0, 1.0], [2.0, 1.0]])
    >>> y = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    >>> fft = FastFrugalTreeClassifier(max_levels=2).fit(x, y)
    >>> print(fft.describe())
    If x0 > 3, decide signal. If x1 > 0, decide signal, otherwise, decide noise.
    >>> fft.predict(np.array([[5.0, 0.0], [1.0, 0.0]])).tolist()
    [1, 0]
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import (
    _check_feature_names,
    _check_n_features,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

ALGORITHMS = ("ifan", "dfan", "max", "zigzag")
MAX_LEVELS = 20  # operators/train's limit
GOALS = ("acc", "bacc", "wacc", "cost")
OUTCOMES = ("hi", "fa", "mi", "cr")
DEFAULT_COSTS = {"hi": 0.0, "fa": 1.0, "mi": 1.0, "cr": 0.0}


@dataclass(frozen=True)
class FFTDescription:
    """A fitted tree in words (``text``, as FFTrees prints it) and as data (``levels``).

    Each level is a dict: ``level`` (1-based), ``cue``, ``kind`` (``numeric`` /
    ``categorical``), ``direction`` (the test pointing to signal: ``>``, ``<=``
    or ``=``), ``threshold`` (a number, or the list of levels), ``exit``
    (``signal``, ``noise`` or ``both``), the training counts of the rows that
    reached the level and left it (``reached``, ``signal_pos``, ``signal_neg``,
    ``noise_pos``, ``noise_neg``), and FFTrees' level statistics over every
    row decided at this level or before: ``hi``, ``fa``, ``mi``, ``cr``,
    ``sens``, ``spec``.
    """

    text: str
    levels: list[dict[str, Any]]

    def __str__(self) -> str:
        return self.text


class FastFrugalTreeClassifier(ClassifierMixin, BaseEstimator):
    """A fast-and-frugal tree, trained in Rust.

    Args:
        max_levels: the most levels (cues) the tree may use.
        algorithm: ``ifan`` (FFTrees' default), ``dfan``, ``max`` or ``zigzag``.
        goal: what chooses among the grown trees: ``acc``, ``bacc``, ``wacc``
            or ``cost``.
        goal_chase: what chooses each level's cue (default: ``goal``).
        goal_threshold: what chooses each cue's threshold (default: ``wacc``
            with ``sens_w``, which is ``bacc`` at 0.5, as FFTrees).
        sens_w: the weight of sensitivity in ``wacc``.
        cost_outcomes: costs of hits, false alarms, misses and correct
            rejections, ``{"hi": .., "fa": .., "mi": .., "cr": ..}`` (default
            0, 1, 1, 0); used by the ``cost`` goal.
        cost_cues: cost of looking up each cue, ``{cue name: cost}`` (missing
            cues cost 0); used by the ``cost`` goal.
        stopping_par: a tree stops growing when fewer than this share of the
            training rows is left undecided (FFTrees' "exemplars" rule).
        categorical_features: names (or column indices) of numeric columns to
            treat as categorical codes; string, dictionary and boolean columns
            are categorical anyway.
    """

    def __init__(
        self,
        max_levels: int = 4,
        algorithm: str = "ifan",
        goal: str = "bacc",
        goal_chase: str | None = None,
        goal_threshold: str | None = None,
        sens_w: float = 0.5,
        cost_outcomes: dict[str, float] | None = None,
        cost_cues: dict[str, float] | None = None,
        stopping_par: float = 0.1,
        categorical_features: list[Any] | None = None,
    ) -> None:
        self.max_levels = max_levels
        self.algorithm = algorithm
        self.goal = goal
        self.goal_chase = goal_chase
        self.goal_threshold = goal_threshold
        self.sens_w = sens_w
        self.cost_outcomes = cost_outcomes
        self.cost_cues = cost_cues
        self.stopping_par = stopping_par
        self.categorical_features = categorical_features

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.classifier_tags.multi_class = False
        return tags

    # -- fit / predict ---------------------------------------------------------------------------

    def fit(self, X: Any, y: Any) -> FastFrugalTreeClassifier:
        """Grow the tree on ``X`` (numpy, pandas, polars, pyarrow) and binary labels ``y``."""
        from streamml import _streamml

        goals = self._check_params()
        if y is None:
            msg = f"{type(self).__name__} requires y to be passed, but the target y is None"
            raise ValueError(msg)
        batch, cues = self._encode(X, reset=True)
        y = column_or_1d(y, warn=True)
        if y.shape[0] != batch.num_rows:
            msg = f"X has {batch.num_rows} rows but y has {y.shape[0]}; pass one label per row"
            raise ValueError(msg)
        kind = type_of_target(y, input_name="y")
        if kind not in ("binary", "multiclass"):
            msg = f"Unknown label type: {kind}; a fast-and-frugal tree needs binary class labels"
            raise ValueError(msg)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) == 1:
            msg = (
                f"y has one class only ({self.classes_.tolist()[0]!r} in all {len(y)} rows); "
                "a fast-and-frugal tree needs two classes"
            )
            raise ValueError(msg)
        if len(self.classes_) > 2:
            msg = (
                f"Only binary classification is supported. The type of the target is {kind}: y has "
                f"{len(self.classes_)} classes; a fast-and-frugal tree decides between two: pass two classes"
            )
            raise ValueError(msg)
        import pyarrow as pa

        costs = {**DEFAULT_COSTS, **(self.cost_outcomes or {})}
        unknown = sorted(set(self.cost_cues or {}) - {c["name"] for c in cues})
        if unknown:
            names = [c["name"] for c in cues]
            msg = f"cost_cues names {unknown}, which are not columns of X; expected names among {names}"
            raise ValueError(msg)
        cue_costs = [float((self.cost_cues or {}).get(c["name"], 0.0)) for c in cues]
        tree_json = _streamml.fft_fit(
            batch,
            [len(c["levels"]) if c["kind"] == "categorical" else 0 for c in cues],
            pa.array(codes.astype(bool)),
            int(self.max_levels),
            self.algorithm,
            *goals,
            float(self.sens_w),
            tuple(float(costs[k]) for k in OUTCOMES),
            cue_costs,
            float(self.stopping_par),
        )
        self.cues_ = cues
        self.tree_ = json.loads(tree_json)
        self._tree_json = tree_json
        return self

    def predict(self, X: Any) -> np.ndarray:
        """The exit's decision for each row (``classes_[1]`` for signal)."""
        label, _ = self._predict(X)
        return self.classes_[label.astype(np.intp)]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Per row, ``[1 - p, p]`` where ``p`` is the training frequency of ``classes_[1]`` at the row's exit."""
        _, p = self._predict(X)
        return np.column_stack([1.0 - p, p])

    def _predict(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        from streamml import _streamml

        check_is_fitted(self, "tree_")
        batch, _ = self._encode(X, reset=False)
        return _streamml.fft_predict(self._tree_json, batch)

    # -- description -----------------------------------------------------------------------------

    @property
    def n_levels_(self) -> int:
        """The number of levels (cues looked up at most) of the fitted tree."""
        check_is_fitted(self, "tree_")
        return len(self.tree_["levels"])

    def describe(self) -> FFTDescription:
        """The tree in words (as FFTrees prints it) and its levels with their training statistics."""
        check_is_fitted(self, "tree_")
        sentences, levels = [], []
        for i, level in enumerate(self.tree_["levels"]):
            cue = self.cues_[level["cue"]]
            test = level["test"]
            stats = level["stats"]
            if test["kind"] == "in":
                direction, threshold = "=", [cue["levels"][c] for c in test["codes"]]
                shown = "{" + ", ".join(str(v) for v in threshold) + "}"
            else:
                direction = ">" if test["kind"] == "greater" else "<="
                threshold = test["threshold"]
                shown = f"{threshold:g}"
            exit_ = level["exit"]
            if exit_ == "signal":
                sentences.append(f"If {cue['name']} {direction} {shown}, decide signal.")
            elif exit_ == "noise":
                sentences.append(f"If {cue['name']} {_NEGATION[direction]} {shown}, decide noise.")
            else:
                sentences.append(f"If {cue['name']} {direction} {shown}, decide signal, otherwise, decide noise.")
            cum = stats["cumulative"]
            levels.append(
                {
                    "level": i + 1,
                    "cue": cue["name"],
                    "kind": cue["kind"],
                    "direction": direction,
                    "threshold": threshold,
                    "exit": exit_,
                    **{k: stats[k] for k in ("reached", "signal_pos", "signal_neg", "noise_pos", "noise_neg")},
                    **{k: cum[k] for k in OUTCOMES},
                    "sens": _ratio(cum["hi"], cum["hi"] + cum["mi"]),
                    "spec": _ratio(cum["cr"], cum["cr"] + cum["fa"]),
                }
            )
        return FFTDescription(" ".join(sentences), levels)

    # -- inputs ----------------------------------------------------------------------------------

    def _check_params(self) -> tuple[str, str, str]:
        if not isinstance(self.max_levels, (int, np.integer)) or not 1 <= self.max_levels <= MAX_LEVELS:
            msg = (
                f"max_levels must be an integer between 1 and {MAX_LEVELS} (the fan algorithms grow "
                f"2^(max_levels - 1) trees); got {self.max_levels!r}"
            )
            raise ValueError(msg)
        if self.algorithm not in ALGORITHMS:
            msg = f"algorithm must be one of {', '.join(ALGORITHMS)}; got {self.algorithm!r}"
            raise ValueError(msg)
        goal_chase = self.goal if self.goal_chase is None else self.goal_chase
        goal_threshold = "wacc" if self.goal_threshold is None else self.goal_threshold
        for name, value in (("goal", self.goal), ("goal_chase", goal_chase), ("goal_threshold", goal_threshold)):
            if value not in GOALS:
                msg = f"{name} must be one of {', '.join(GOALS)}; got {value!r}"
                raise ValueError(msg)
        if not 0.0 <= float(self.sens_w) <= 1.0:
            msg = f"sens_w must be between 0 and 1; got {self.sens_w!r}"
            raise ValueError(msg)
        unknown = set(self.cost_outcomes or {}) - set(OUTCOMES)
        if unknown:
            msg = f"cost_outcomes has unknown keys {sorted(unknown)}; expected hi, fa, mi, cr"
            raise ValueError(msg)
        return self.goal, goal_chase, goal_threshold

    def _encode(self, X: Any, *, reset: bool) -> tuple[Any, list[dict[str, Any]]]:
        """A record batch of float64 columns (categorical cues as level codes) and the cues."""
        import pyarrow as pa

        table = _as_table(X)
        if table is None:
            matrix = validate_data(self, X, reset=reset, dtype=np.float64, ensure_all_finite="allow-nan")
            names = [f"x{j}" for j in range(matrix.shape[1])]
            if hasattr(self, "feature_names_in_"):
                names = [str(n) for n in self.feature_names_in_]
            columns = [pa.array(matrix[:, j]) for j in range(matrix.shape[1])]
        else:
            _check_n_features(self, table, reset=reset)
            _check_feature_names(self, X if _is_pandas(X) else table, reset=reset)
            names = table.column_names
            if reset and not _is_pandas(X) and not hasattr(self, "feature_names_in_"):
                self.feature_names_in_ = np.asarray(names, dtype=object)
            columns = [table.column(j).combine_chunks() for j in range(table.num_columns)]
            if table.num_rows == 0:
                msg = (
                    f"Found array with 0 sample(s) (shape=(0, {table.num_columns})) while a minimum of 1 is "
                    "required; pass at least one row"
                )
                raise ValueError(msg)
        cues = self._cues(names, columns) if reset else self.cues_
        encoded = [_encode_column(col, cue) for col, cue in zip(columns, cues, strict=True)]
        return pa.RecordBatch.from_arrays(encoded, names=[f"c{j}" for j in range(len(encoded))]), cues

    def _cues(self, names: list[str], columns: list[Any]) -> list[dict[str, Any]]:
        import pyarrow as pa
        import pyarrow.compute as pc

        marked = set(self.categorical_features or [])
        cues = []
        for j, (name, col) in enumerate(zip(names, columns, strict=True)):
            t = col.type
            if pa.types.is_dictionary(t):
                col = col.dictionary_decode()
                t = col.type
            categorical = not (pa.types.is_integer(t) or pa.types.is_floating(t)) or name in marked or j in marked
            if not categorical:
                cues.append({"name": name, "kind": "numeric", "levels": None})
                continue
            levels = pc.unique(col.drop_null()).to_pylist()
            levels = sorted(v for v in levels if not (isinstance(v, float) and math.isnan(v)))
            cues.append({"name": name, "kind": "categorical", "levels": levels})
        return cues


_NEGATION = {">": "<=", "<=": ">", "=": "!="}


def _is_pandas(X: Any) -> bool:
    return type(X).__module__.split(".")[0] == "pandas"


def _ratio(a: int, b: int) -> float:
    return a / b if b else float("nan")


def _as_table(X: Any) -> Any:
    """A pyarrow table for data frames and Arrow objects; ``None`` for arrays."""
    import pyarrow as pa

    if isinstance(X, pa.Table):
        return X
    if isinstance(X, pa.RecordBatch):
        return pa.Table.from_batches([X])
    module = type(X).__module__.split(".")[0]
    if module == "pandas" and hasattr(X, "columns"):
        return pa.Table.from_pandas(X, preserve_index=False)
    if module == "polars" and hasattr(X, "to_arrow"):
        return X.to_arrow()
    if hasattr(X, "__arrow_c_stream__"):
        return pa.table(X)
    return None


def _encode_column(col: Any, cue: dict[str, Any]) -> Any:
    """float64 values; a categorical cue's codes (missing: NaN; a level not seen in fit: a code no set holds)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    if cue["kind"] == "numeric":
        if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
            msg = f"column {cue['name']!r} is {col.type}; it was numeric in fit: pass numbers"
            raise ValueError(msg)
        return pc.cast(col, pa.float64())
    levels = cue["levels"]
    value_set = pa.array(levels) if levels else pa.array([], type=col.type)
    try:
        idx = pc.index_in(col, value_set=value_set.cast(col.type) if len(levels) else value_set)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        msg = f"column {cue['name']!r} is {col.type}; its levels in fit were {levels!r}: {e}"
        raise ValueError(msg) from e
    unseen = pc.and_(pc.is_valid(col), pc.is_null(idx))
    if pa.types.is_floating(col.type):
        unseen = pc.and_(unseen, pc.invert(pc.is_nan(col)))
    codes = pc.if_else(unseen, pa.scalar(len(levels), pa.int32()), idx)
    return pc.fill_null(pc.cast(codes, pa.float64()), float("nan"))
