"""``predict_op`` and ``predict``: the model's outputs added to each item of a Bytewax stream."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from operator import itemgetter
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Stream, operator

from streamml import _streamml
from streamml.batching import DEFAULT_MAX_BATCH_ROWS, DEFAULT_MAX_WAIT, BatchPolicy
from streamml.bytewax._batching import batch_builder
from streamml.bytewax._versions import VersionedScorer, is_fixed
from streamml.lifecycle import ModelSlot, Reference
from streamml.model import Model, TrustedSha256


@dataclass(frozen=True)
class PredictFailure:
    """An item that could not be scored, and why.

    Attributes:
        item: the item as it came (a dict, a ``(key, dict)`` pair, a record batch...).
        reason: what was wrong, naming the field (``field 'x3' is absent; ...``,
            ``field 'x3' is a string, expected float64``...).
    """

    item: Any
    reason: str


@dataclass(frozen=True)
class PredictOut:
    """The streams :func:`predict` returns.

    Attributes:
        oks: the scored items, each with the model's outputs added.
        errs: a :class:`PredictFailure` for each item that could not be scored.
        shadow: with ``challengers``, every version's scored items (the champion's too),
            each naming its version in ``version_field``: for the store's ``predictions``
            table; ``None`` without challengers.
    """

    oks: Stream[Any]
    errs: Stream[PredictFailure]
    shadow: Stream[Any] | None = None


def _model(model: Model | str | os.PathLike[str], trusted_sha256: TrustedSha256 = None) -> Model:
    if isinstance(model, Model):
        return model
    if isinstance(model, (str, os.PathLike)):
        return Model.load(model, trusted_sha256=trusted_sha256)
    msg = f"model must be a streamml.Model or the path of a model binary, got a {type(model).__name__}"
    raise TypeError(msg)


def _scorer(
    model: Model | str | os.PathLike[str],
    nest: str | None,
    missing_fields: str,
    trusted_sha256: TrustedSha256 = None,
) -> _streamml.ItemScorer:
    if nest is not None and not isinstance(nest, str):
        msg = f"nest must be a field name (str) or None, got a {type(nest).__name__}"
        raise TypeError(msg)
    return _streamml.ItemScorer(_model(model, trusted_sha256)._inner, nest, PredictFailure, missing_fields)


def predict_op(
    model: Model | Reference | ModelSlot,
    *,
    nest: str | None = None,
    missing_fields: str = "error",
    trusted_sha256: TrustedSha256 = None,
    reload_interval: timedelta | float | None = None,
    version_field: str | None = "model_version",
) -> Any:
    """Make a mapper that scores one item with a model, for ``op.map``.

    The mapper is native code: a dict's values go straight into the model
    binary's input and its outputs come back as Python numbers.

    A model reference (a model directory, ``DIR@ALIAS``, ``models:/NAME@ALIAS``,
    or a path with ``reload_interval``) or a :class:`streamml.lifecycle.ModelSlot`
    is re-resolved every ``reload_interval`` off the scoring path; a new version
    takes over from the next item, and every output names the version that
    scored it in ``version_field`` (``docs/lifecycle.md``). A fixed model (a
    :class:`streamml.Model`, or a path without ``reload_interval``) is scored
    as before, with no version field.

    Args:
        model: a :class:`streamml.Model`, a path of a model binary, a model
            reference, or a :class:`streamml.lifecycle.ModelSlot`.
        nest: put the outputs in a dict under this field instead of merging
            them into the item.
        missing_fields: an input field absent from a dict: ``"error"`` (default;
            an explicit ``None`` is a missing value where the input is nullable)
            or ``"null"`` (read as ``None``).
        trusted_sha256: for a path or reference, the trust list every binary it
            resolves to must be in (see :meth:`streamml.Model.load`).
        reload_interval: re-resolve a reference this often (``timedelta`` or seconds;
            default for a reference: 30 s).
        version_field: the field naming the version, for references (``None``: no such field).

    Returns:
        ``mapper(item)``: for a dict, a copy with the outputs added; for a
        ``(key, dict)`` pair, ``(key, scored dict)``; for an Arrow record
        batch, a ``pyarrow.RecordBatch`` with the output columns added.
        An item that cannot be scored raises :class:`streamml.InputError`
        with the reason (use :func:`predict` to route such items to ``errs``).

    Examples:
        >>> import pyarrow as pa
        >>> import pyarrow.compute as pc
        >>> from streamml import Model
        >>> double = Model.from_callable(
        ...     lambda b: pa.record_batch({"y": pc.multiply(b["x"], 2.0)}),
        ...     input_schema=pa.schema([("x", pa.float64(), False)]),
        ...     output_schema=pa.schema([("y", pa.float64(), False)]),
        ... )
        >>> score = predict_op(double, nest="prediction")
        >>> score(("user-1", {"x": 1.5}))
        ('user-1', {'x': 1.5, 'prediction': {'y': 3.0}})
    """
    if is_fixed(model, reload_interval):
        return _scorer(model, nest, missing_fields, trusted_sha256)
    make = _version_scorer(nest, missing_fields, version_field)
    return VersionedScorer.of(model, reload_interval, trusted_sha256, make).mapper()


def _version_scorer(nest: str | None, missing_fields: str, version_field: str | None) -> Any:
    """``make(model, version)``: the native scorer of one version, naming it in ``version_field``."""

    def make(m: Model, v: str) -> Any:
        tag = None if version_field is None else (version_field, v)
        return _streamml.ItemScorer(m._inner, nest, PredictFailure, missing_fields, tag)

    return make


#: The key plain (unkeyed) items are batched under when batching: one key, so one worker
#: batches them, in order; they come out plain again.
_PLAIN = "\x00streamml-plain-items"


def _key_plain(items: list[Any]) -> list[Any]:
    # A tuple is a (key, item) pair (Bytewax checks its shape); anything else is a plain item.
    return [it if type(it) is tuple else (_PLAIN, it) for it in items]


def _keyed_oks(key_split: tuple[str, tuple[Any, ...]]) -> list[Any]:
    key, split = key_split
    return split[0] if key == _PLAIN else [(key, v) for v in split[0]]


def _keyed_errs(key_split: tuple[str, tuple[Any, ...]]) -> list[PredictFailure]:
    key, split = key_split
    return split[1] if key == _PLAIN else [PredictFailure((key, f.item), f.reason) for f in split[1]]


def _keyed_shadow(key_split: tuple[str, tuple[Any, ...]]) -> list[Any]:
    key, split = key_split
    return split[2] if key == _PLAIN else [(key, v) for v in split[2]]


@operator
def predict(
    step_id: str,
    up: Stream[Any],
    model: Model | Reference | ModelSlot,
    *,
    max_batch_rows: int | None = None,
    max_wait: timedelta | None = None,
    nest: str | None = None,
    missing_fields: str = "error",
    trusted_sha256: TrustedSha256 = None,
    reload_interval: timedelta | float | None = None,
    version_field: str | None = "model_version",
    challengers: Sequence[Reference | ModelSlot] = (),
    canary: float = 0.0,
    event_id: str | None = None,
    canary_field: str = "served_by",
) -> PredictOut:
    """Score a stream with a model, one native call per batch.

    Without ``max_batch_rows`` / ``max_wait``, each batch Bytewax hands over
    (see the ``batch_size`` of the input) is scored in one call; items may be
    dicts, ``(key, dict)`` pairs or Arrow record batches, and keep their order.

    With ``max_batch_rows`` or ``max_wait``, rows are buffered per key and a
    key's batch is scored when it holds ``max_batch_rows`` rows or its
    **oldest** row has waited ``max_wait`` (unlike ``op.collect``, whose
    timeout restarts on every item), and at the end of the input: the rule of
    every streamml host (:mod:`streamml.batching`; the knob not given takes its
    default, 1024 rows or 10 ms; a zero ``max_wait`` scores each key's rows of
    each Bytewax batch at once). Order is kept per key. ``(key, item)`` pairs
    (``op.key_on``; key by partition or by a few shards to batch well on
    several workers) are buffered under their key and come out as
    ``(key, scored)``; plain items (dicts, record batches) are buffered
    together under one key, so one worker batches them, and come out plain.
    Buffered rows are part of the recovery snapshot, so a resumed flow scores
    them.

    With Bytewax recovery, nothing is lost and outputs are at-least-once:
    a resumed flow replays its input from the last snapshot, so items (and
    buffered rows) that the stopped flow scored and emitted after that
    snapshot are scored and emitted again. Those are the only duplicates;
    key them by an event id downstream if they matter.

    **Model lifecycle** (``docs/lifecycle.md``). ``model`` may be a model reference (a
    model directory, ``DIR@ALIAS``, ``models:/NAME@ALIAS``, or a path with
    ``reload_interval``) or a :class:`streamml.lifecycle.ModelSlot`: it is re-resolved
    every ``reload_interval`` off the scoring path, a changed binary is loaded and
    verified there, and it takes over between batches, so a batch is scored wholly
    by one version; each output names it in ``version_field``. A version that fails
    to load or verify is refused and the old one keeps serving. ``challengers``
    (references or slots, swapped the same way) score every batch too (shadow): only
    the champion's outputs go to ``oks``, every version's go to ``shadow``. With
    ``canary`` (a fraction) and ``event_id`` (the dict field holding the event id),
    the events whose id falls below the fraction
    (:func:`streamml.lifecycle.canary_share`: deterministic and sticky) get the first
    challenger's output instead, and ``canary_field`` says which side served each
    output (``"champion"`` or ``"canary"``). A fixed model (a :class:`streamml.Model`,
    or a path without ``reload_interval``) is scored exactly as before, with no
    version field.

    Args:
        step_id: unique ID.
        up: the items: dicts, ``(key, dict)`` pairs or Arrow record batches.
        model: a :class:`streamml.Model`, the path of a model binary, a model
            reference, or a :class:`streamml.lifecycle.ModelSlot`.
        max_batch_rows: score a key's rows once this many are buffered (default 1024
            when ``max_wait`` is given).
        max_wait: score a key's rows once the oldest has waited this long (default
            10 ms when ``max_batch_rows`` is given).
        nest: put the outputs in a dict under this field instead of merging them.
        missing_fields: an input field absent from a dict: ``"error"`` (default: the
            item goes to ``errs``, naming the field; an explicit ``None`` is a missing
            value where the input is nullable) or ``"null"`` (read as ``None``).
        trusted_sha256: for a path or reference, the trust list every binary it resolves
            to must be in (see :meth:`streamml.Model.load`).
        reload_interval: re-resolve references this often (``timedelta`` or seconds;
            default for a reference: 30 s).
        version_field: the field naming the version that scored an item (references; ``None``:
            no such field).
        challengers: references (or slots) scored beside the champion on every batch.
        canary: the fraction of events (by ``event_id``) the first challenger serves.
        event_id: the field of each dict holding its event id (needed for ``canary``).
        canary_field: the field saying which side served an item (with ``canary``).

    Returns:
        ``oks``: the items with the outputs added (a pair stays a pair);
        ``errs``: a :class:`PredictFailure` per item that could not
        be scored (not a dict, a missing field, a wrong type, a model error for
        that row); the rest of its batch is scored.

    Raises:
        ValueError: ``max_batch_rows`` is less than 1 or ``max_wait`` is negative;
            ``canary`` is outside [0, 1], or given without ``event_id`` or a challenger.
        TypeError: ``max_wait`` is not a ``timedelta``.
    """
    if challengers or canary or not is_fixed(model, reload_interval):
        return _predict_versions(
            up, model, max_batch_rows, max_wait, nest, missing_fields, trusted_sha256, reload_interval,
            version_field, challengers, canary, event_id, canary_field,
        )
    scorer = _scorer(model, nest, missing_fields, trusted_sha256)
    # Each batch is scored into one (oks, errs) pair, split into the two
    # streams once per batch rather than by a Python call per item (op.branch).
    if max_batch_rows is None and max_wait is None:
        scored = op.flat_map_batch("score", up, lambda items: [scorer.score_split(items)])
        oks = op.flat_map("oks", scored, itemgetter(0))
        return PredictOut(oks=oks, errs=op.flat_map("errs", scored, itemgetter(1)))
    policy = BatchPolicy(
        DEFAULT_MAX_BATCH_ROWS if max_batch_rows is None else max_batch_rows,
        DEFAULT_MAX_WAIT if max_wait is None else max_wait,
    )
    keyed = op.flat_map_batch("key_plain", up, _key_plain)
    scored = op.stateful_batch("batch", keyed, batch_builder(scorer.score_split, policy))
    return PredictOut(oks=op.flat_map("oks", scored, _keyed_oks), errs=op.flat_map("errs", scored, _keyed_errs))


def _predict_versions(
    up: Stream[Any],
    model: Any,
    max_batch_rows: int | None,
    max_wait: timedelta | None,
    nest: str | None,
    missing_fields: str,
    trusted_sha256: TrustedSha256,
    reload_interval: timedelta | float | None,
    version_field: str | None,
    challengers: Sequence[Any],
    canary: float,
    event_id: str | None,
    canary_field: str,
) -> PredictOut:
    """``predict`` for references: a swap between batches, challengers, a canary."""
    if not 0.0 <= canary <= 1.0:
        msg = f"canary must be a fraction in [0, 1], got {canary!r}"
        raise ValueError(msg)
    if canary and (event_id is None or not challengers):
        msg = "canary needs event_id (the field holding each event's id) and at least one challenger"
        raise ValueError(msg)

    make = _version_scorer(nest, missing_fields, version_field)
    champion = VersionedScorer.of(model, reload_interval, trusted_sha256, make)
    others = [VersionedScorer.of(c, reload_interval, trusted_sha256, make) for c in challengers]
    score = champion.shadow_scorer(others, canary, event_id, canary_field) if others else champion.batch_scorer()
    if max_batch_rows is None and max_wait is None:
        scored = op.flat_map_batch("score", up, lambda items: [score(items)])
        oks = op.flat_map("oks", scored, itemgetter(0))
        errs = op.flat_map("errs", scored, itemgetter(1))
        shadow = op.flat_map("shadow", scored, itemgetter(2)) if others else None
        return PredictOut(oks=oks, errs=errs, shadow=shadow)
    policy = BatchPolicy(
        DEFAULT_MAX_BATCH_ROWS if max_batch_rows is None else max_batch_rows,
        DEFAULT_MAX_WAIT if max_wait is None else max_wait,
    )
    keyed = op.flat_map_batch("key_plain", up, _key_plain)
    scored = op.stateful_batch("batch", keyed, batch_builder(score, policy))
    shadow = op.flat_map("shadow", scored, _keyed_shadow) if others else None
    return PredictOut(
        oks=op.flat_map("oks", scored, _keyed_oks), errs=op.flat_map("errs", scored, _keyed_errs), shadow=shadow
    )
