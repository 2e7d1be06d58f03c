"""The drift reference frozen into a binary by ``streamml compile --reference DATA``.

Layout (``info["drift_reference"]``, version 1)::

    {"version": 1, "rows": N, "bins": 10,
     "features": [FEATURE, ...],      # one per input, in input order
     "scores": [FEATURE, ...]}        # one per score output (probability, prediction, probabilities[k])

A numeric FEATURE is ``{"name", "kind": "numeric", "edges": [e0, ..., eB], "counts": [...]}``
with ``B + 3`` counts: ``underflow`` (x < e0), the ``B`` bins ``[e(i), e(i+1))`` (the last one
closed, ``[e(B-1), eB]``), ``overflow`` (x > eB) and ``missing`` (null or NaN). Edges are the
reference's quantiles at ``0, 1/B, ..., 1`` with repeats removed, so a bin never has zero width.

A categorical FEATURE (an input the model splits on by category) is
``{"name", "kind": "categorical", "categories": [c0, ...], "counts": [...]}`` with one count per
category (the reference's ``top_k`` most frequent), then ``other`` and ``missing``. A string input
(utf8) is a categorical FEATURE with ``"values": "utf8"`` and string categories (sorted by code
point, which is their UTF-8 byte order); null is missing and the empty string a category.

The features are the raw inputs, what the stream carries: a model with preprocessing steps
(``docs/ir.md``) bins its inputs before the steps, strings by category.

Counts are u64 and add up across workers and windows; statistics (PSI, Jensen-Shannon...) are
computed when read, against these reference counts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from streamml.errors import CompileError

DEFAULT_BINS = 10
DEFAULT_TOP_K = 20


def numeric_bins(values: np.ndarray, bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """Edges from the quantiles of ``values`` and the reference counts in them.

    Examples:
        >>> b = numeric_bins(np.array([0.0, 1.0, 2.0, 3.0, np.nan]), bins=2)
        >>> b["edges"], b["counts"]
        ([0.0, 1.5, 3.0], [0, 2, 2, 0, 1])
    """
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {"kind": "numeric", "edges": [], "counts": [0, 0, int(values.size)]}
    quantiles = np.quantile(finite, np.linspace(0.0, 1.0, bins + 1))
    # Interpolation can round the ends past the data: pin them to min and max.
    quantiles[0], quantiles[-1] = finite.min(), finite.max()
    edges = np.unique(quantiles)
    return {"kind": "numeric", "edges": [float(e) for e in edges], "counts": numeric_counts(values, edges)}


def numeric_counts(values: np.ndarray, edges: np.ndarray | list[float]) -> list[int]:
    """Counts of ``values`` in ``[underflow, bins..., overflow, missing]`` for ``edges``."""
    edges = np.asarray(edges, dtype=np.float64)
    missing = np.isnan(values)
    v = values[~missing]
    if edges.size == 0:
        return [0, int(v.size), int(missing.sum())]
    under = int((v < edges[0]).sum())
    over = int((v > edges[-1]).sum())
    inside = v[(v >= edges[0]) & (v <= edges[-1])]
    # bin i holds [e_i, e_{i+1}); the last bin also holds e_B.
    idx = np.clip(np.searchsorted(edges, inside, side="right") - 1, 0, max(edges.size - 2, 0))
    body = np.bincount(idx, minlength=max(edges.size - 1, 1)).tolist()
    return [under, *body, over, int(missing.sum())]


def categorical_bins(values: np.ndarray, top_k: int = DEFAULT_TOP_K) -> dict[str, Any]:
    """The ``top_k`` most frequent categories of ``values`` and the reference counts."""
    missing = np.isnan(values)
    v = values[~missing]
    cats, freq = np.unique(v, return_counts=True)
    order = np.argsort(-freq, kind="stable")[:top_k]
    chosen = sorted(float(c) for c in cats[order])
    counts = [int((v == c).sum()) for c in chosen]
    other = int(v.size - sum(counts))
    return {"kind": "categorical", "categories": chosen, "counts": [*counts, other, int(missing.sum())]}


def string_bins(values: np.ndarray, top_k: int = DEFAULT_TOP_K) -> dict[str, Any]:
    """The ``top_k`` most frequent strings of ``values`` (None = missing) and the reference counts.

    Examples:
        >>> b = string_bins(np.array(["a", "b", "b", "", None], dtype=object), top_k=2)
        >>> b["categories"], b["counts"]
        (['', 'b'], [1, 2, 1, 1])
    """
    present = [v for v in values.tolist() if v is not None]
    missing = len(values) - len(present)
    cats, freq = np.unique(np.array(present, dtype=object), return_counts=True) if present else ([], [])
    order = sorted(range(len(cats)), key=lambda i: (-freq[i], cats[i]))[:top_k]
    chosen = sorted(str(cats[i]) for i in order)
    counted = {str(cats[i]): int(freq[i]) for i in order}
    counts = [counted[c] for c in chosen]
    other = len(present) - sum(counts)
    return {"kind": "categorical", "values": "utf8", "categories": chosen, "counts": [*counts, other, missing]}


def _categorical_features(ir: dict[str, Any]) -> set[int]:
    model = ir["model"]
    if ir.get("preprocess") or model["type"] != "trees":  # split features are not inputs
        return set()
    found = set()
    for tree in model["trees"]:
        for feature, cats in zip(tree["split_feature"], tree.get("categories") or [], strict=False):
            if cats is not None:
                found.add(feature)
    return found


def read_table(data: Any) -> Any:
    """A ``pyarrow.Table`` from a path (Parquet, CSV, Arrow IPC) or an Arrow object."""
    import pyarrow as pa

    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if not path.is_file():
            msg = f"reference data {path} does not exist"
            raise CompileError(msg)
        suffix = path.suffix.lower()
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        if suffix == ".csv":
            import pyarrow.csv as csv

            return csv.read_csv(path)
        if suffix in (".arrow", ".feather", ".ipc", ".arrows"):
            import pyarrow.feather as feather

            return feather.read_table(path)
        msg = f"reference data {path}: expected a .parquet, .csv or .arrow/.feather file"
        raise CompileError(msg)
    if hasattr(data, "__arrow_c_stream__") or hasattr(data, "__arrow_c_array__"):
        return pa.table(data)
    msg = f"reference data must be a file path or an Arrow table, got a {type(data).__name__}"
    raise CompileError(msg)


def feature_matrix(table: Any, features: list[str], types: list[str] | None = None) -> Any:
    """The features of ``table`` as float64 columns (nulls as NaN), naming any that is missing.

    With ``types`` holding ``"utf8"`` entries, a list of columns: those as object arrays of
    strings (None = missing), the others float64.
    """
    import pyarrow as pa

    missing = [f for f in features if f not in table.column_names]
    if missing:
        msg = f"reference data lacks the model's feature(s) {missing}; it has {table.column_names}"
        raise CompileError(msg)
    cols = []
    for j, f in enumerate(features):
        col = table.column(f)
        if types is not None and types[j] == "utf8":
            try:
                col = col.cast(pa.string())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                msg = f"reference column '{f}' is {col.type}; the model reads it as strings: {e}"
                raise CompileError(msg) from e
            cols.append(np.array(col.to_pylist(), dtype=object))
            continue
        try:
            col = col.cast(pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            msg = f"reference column '{f}' is {col.type}, which is not numeric: {e}"
            raise CompileError(msg) from e
        cols.append(col.to_numpy(zero_copy_only=False).astype(np.float64))
    if types is not None and "utf8" in types:
        return cols
    return np.column_stack(cols) if cols else np.empty((table.num_rows, 0))


def reference_distribution(
    ir: dict[str, Any], features: Any, scores: dict[str, np.ndarray], bins: int = DEFAULT_BINS
) -> dict[str, Any]:
    """The drift reference for a model: its input columns and its scores on the reference data.

    ``features`` is a matrix, or a list of columns with strings as object arrays (None = missing).
    """
    categorical = _categorical_features(ir)
    columns = [features[:, j] for j in range(features.shape[1])] if isinstance(features, np.ndarray) else features
    types = ir.get("input_types") or ["float64"] * len(ir["features"])
    feats = []
    for j, name in enumerate(ir["features"]):
        column = columns[j]
        if types[j] == "utf8":
            binned = string_bins(column)
        else:
            binned = categorical_bins(column) if j in categorical else numeric_bins(column, bins)
        feats.append({"name": name, **binned})
    score_bins = [{"name": name, **numeric_bins(values, bins)} for name, values in scores.items()]
    rows = len(columns[0]) if columns else 0
    return {"version": 1, "rows": int(rows), "bins": bins, "features": feats, "scores": score_bins}


def score_columns(batch: Any) -> dict[str, np.ndarray]:
    """The numeric score columns of a model's output (``probabilities`` split per class)."""
    import pyarrow as pa

    out: dict[str, np.ndarray] = {}
    for name in batch.column_names:
        col = batch.column(name)
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        if name == "label":
            continue
        if pa.types.is_fixed_size_list(col.type):
            flat = np.asarray(col.flatten().to_numpy()).reshape(len(col), col.type.list_size)
            for k in range(col.type.list_size):
                out[f"{name}[{k}]"] = flat[:, k]
        elif pa.types.is_floating(col.type):
            out[name] = col.to_numpy(zero_copy_only=False)
    return out
