"""``feedback_join``: the Bytewax operator that joins late labels onto predictions.

Items on both input streams are Arrow batches (``pyarrow.RecordBatch`` / ``Table``, or
anything ``pyarrow.table`` takes): the join works a batch at a time
(:class:`streamml.feedback.FeedbackJoin`). Rows are spread over ``shards`` keys by
event id; Bytewax places the keys on its workers, so the results do not depend on
the number of workers. The join state is the operator's Bytewax state: it is
snapshotted at each epoch and restored on resume (``bytewax.recovery``), so a restart
neither loses pending predictions nor counts a label twice. Rows stamped too far in the future
(``max_future_skew``, ``max_watermark_jump``; see :mod:`streamml.feedback`) come out on
``errs``, with the reason, instead of moving the join's watermark.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Stream, operator

from streamml.feedback import MAX_FUTURE_SKEW_MS, FeedbackJoin, Fields, Refused


@dataclass(frozen=True)
class FeedbackStreams:
    """The outputs of :func:`feedback_join`.

    Attributes:
        feedback: ``pyarrow.Table`` of joined rows per input batch (the store's ``feedback``
            columns, with ``model`` and ``model_version``).
        quality: ``pyarrow.Table`` of the revised windows per input batch: ``model``,
            ``model_version``, ``window_start``, ``shard``, ``metric``, ``value`` (cumulative per
            window and shard; the store's ``quality`` table upserts it).
        errs: a :class:`streamml.feedback.Refused` per input batch with rows refused as
            future (``kind``, the ``rows`` as a ``pyarrow.Table``, one reason per row).
    """

    feedback: Stream[Any]
    quality: Stream[Any]
    errs: Stream[Refused]


def _ms(value: timedelta | int) -> int:
    return int(value.total_seconds() * 1000) if isinstance(value, timedelta) else int(value)


def _ms_or_none(value: timedelta | int | None) -> int | None:
    return None if value is None else _ms(value)


def _shard_of(ids: list[Any], shards: int) -> list[int]:
    return [(i if isinstance(i, int) else zlib.crc32(str(i).encode())) % shards for i in ids]


def _split(tag: str, batch: Any, id_field: str, shards: int) -> list[tuple[str, tuple[str, str, Any]]]:
    import numpy as np
    import pyarrow as pa

    table = pa.table(batch)
    if shards == 1:
        return [("0", ("0", tag, table))]
    keys = np.asarray(_shard_of(table.column(id_field).to_pylist(), shards))
    return [(str(k), (str(k), tag, table.take(np.flatnonzero(keys == k)))) for k in np.unique(keys).tolist()]


def _repeat(value: str | None, n: int) -> Any:
    import pyarrow as pa

    return pa.repeat(pa.scalar(value, pa.string()), n)


def _labelled(join: FeedbackJoin, table: Any, model: str, version: str, out: list[tuple[str, Any]]) -> None:
    """Join a label table; the feedback rows it gives, named by model and version, go to ``out``."""
    fb = join.add_labels(table)
    if fb.num_rows:
        n = fb.num_rows
        fb = fb.add_column(1, "model", _repeat(model, n))
        fb = fb.add_column(2, "model_version", _repeat(version, n))
        out.append(("feedback", fb))


def _revised(join: FeedbackJoin, shard: str | None, model: str, version: str, out: list[tuple[str, Any]]) -> None:
    """The refused rows and the quality of the windows the last batch touched go to ``out``."""
    out.extend(("errs", r) for r in join.take_refused())
    touched = join.take_touched()
    if touched:
        q = join.quality_table(touched)  # window_start, metric, value
        n = q.num_rows
        q = q.add_column(0, "model", _repeat(model, n))
        q = q.add_column(1, "model_version", _repeat(version, n))
        out.append(("quality", q.add_column(3, "shard", _repeat(shard, n))))


class _JoinLogic(op.StatefulBatchLogic):
    def __init__(self, shard: str | None, join: FeedbackJoin, model: str, version: str) -> None:
        self.shard, self.join, self.model, self.version = shard, join, model, version

    def on_batch(self, values: list[tuple[str, str, Any]]) -> tuple[list[tuple[str, Any]], bool]:
        out: list[tuple[str, Any]] = []
        for shard, tag, table in values:
            self.shard = shard
            if tag == "p":
                self.join.add_predictions(table)
            else:
                _labelled(self.join, table, self.model, self.version, out)
        _revised(self.join, self.shard, self.model, self.version, out)
        return out, op.StatefulBatchLogic.RETAIN

    def snapshot(self) -> tuple[str | None, dict[str, Any]]:
        return self.shard, self.join.snapshot()


class _VersionsJoinLogic(op.StatefulBatchLogic):
    """One join per model version of a shard: predictions go to their version's, labels to every one."""

    def __init__(
        self, shard: str | None, joins: dict[str, FeedbackJoin], new_join: Any, model: str, version_field: str
    ) -> None:
        self.shard, self.joins, self.new_join = shard, joins, new_join
        self.model, self.version_field = model, version_field

    def on_batch(self, values: list[tuple[str, str, Any]]) -> tuple[list[tuple[str, Any]], bool]:
        import pyarrow.compute as pc

        out: list[tuple[str, Any]] = []
        for shard, tag, table in values:
            self.shard = shard
            if tag == "l":
                for version, join in self.joins.items():
                    _labelled(join, table, self.model, version, out)
                continue
            if self.version_field not in table.column_names:
                msg = (
                    f"feedback_join: a prediction batch lacks the version field '{self.version_field}'; it has "
                    f"{table.column_names}; score with a model reference (outputs name their version) or set "
                    "version_field=None"
                )
                raise ValueError(msg)
            column = table.column(self.version_field)
            for version in pc.unique(column).to_pylist():
                join = self.joins.get(str(version))
                if join is None:
                    join = self.joins[str(version)] = self.new_join()
                join.add_predictions(table.filter(pc.equal(column, version)))
        for version, join in self.joins.items():
            _revised(join, self.shard, self.model, version, out)
        return out, op.StatefulBatchLogic.RETAIN

    def snapshot(self) -> tuple[str | None, dict[str, Any]]:
        return self.shard, {"versions": {v: j.snapshot() for v, j in self.joins.items()}}


@operator
def feedback_join(
    step_id: str,
    predictions: Stream[Any],
    labels: Stream[Any],
    *,
    id_field: str = "event_id",
    ttl: timedelta | int,
    window: timedelta | int = timedelta(minutes=5),
    time_field: str = "event_time",
    score_field: str = "probability",
    label_time_field: str = "label_time",
    label_field: str = "label",
    task: str = "binary",
    shards: int = 1,
    model: str = "model",
    model_version: str = "0",
    hist_bins: int = 200,
    max_future_skew: timedelta | int | None = MAX_FUTURE_SKEW_MS,
    max_watermark_jump: timedelta | int | None = None,
    version_field: str | None = None,
) -> FeedbackStreams:
    """Join a stream of label batches onto a stream of prediction batches by event id.

    Args:
        step_id: unique id of this step.
        predictions: Arrow batches with ``id_field``, ``time_field`` (int ms or a timestamp)
            and ``score_field``.
        labels: Arrow batches with ``id_field``, ``label_time_field`` and ``label_field``.
        id_field: the event id on both streams.
        ttl: how long a prediction waits for its label, in event time (a timedelta, or ms).
        window: the quality window (a timedelta, or ms).
        time_field: the prediction's event time.
        score_field: binary: the probability of class 1; regression: the prediction.
        label_time_field: the label's event time.
        label_field: the label.
        task: ``"binary"`` or ``"regression"``.
        shards: how many keys the join state is spread over (the parallelism across workers).
        model: the model name written with every row.
        model_version: the model version written with every row.
        hist_bins: bins of the per-class score histograms (binary; AUC resolution).
        max_future_skew: how far ahead of the wall clock an event time may be (a timedelta, or
            ms; default 1 h; ``None``: no cap, for times that are not ms since the epoch).
        max_watermark_jump: how far ahead of the join's watermark one label may be (default: no cap).
        version_field: quality per model version: the field of the predictions naming the version
            that made each (``model_version`` in the outputs of :func:`predict` with a reference;
            feed it the ``shadow`` stream to compare a champion and its challengers). Each version
            has its own join; every label is joined with every version's prediction of its event,
            so the versions are compared on the same events and labels, and rows carry their
            version (``model_version`` is then ignored). A label no version predicted is an orphan
            of each version.

    Returns:
        The ``feedback``, ``quality`` and ``errs`` streams (:class:`FeedbackStreams`).
    """
    fields = Fields(
        id=id_field, event_time=time_field, score=score_field, label_time=label_time_field, label=label_field
    )
    ttl_ms, window_ms = _ms(ttl), _ms(window)
    tagged = op.merge(
        "merge",
        op.flat_map("shard_predictions", predictions, lambda b: _split("p", b, id_field, shards)),
        op.flat_map("shard_labels", labels, lambda b: _split("l", b, id_field, shards)),
    )

    def new_join() -> FeedbackJoin:
        return FeedbackJoin(
            ttl=ttl_ms,
            window=window_ms,
            task=task,
            fields=fields,
            hist_bins=hist_bins,
            max_future_skew=_ms_or_none(max_future_skew),
            max_watermark_jump=_ms_or_none(max_watermark_jump),
        )

    def build(resume: tuple[str | None, dict[str, Any]] | None) -> op.StatefulBatchLogic:
        if version_field is not None:
            joins = {} if resume is None else {v: FeedbackJoin.restore(j) for v, j in resume[1]["versions"].items()}
            return _VersionsJoinLogic(None if resume is None else resume[0], joins, new_join, model, version_field)
        if resume is not None:
            return _JoinLogic(resume[0], FeedbackJoin.restore(resume[1]), model, model_version)
        return _JoinLogic(None, new_join(), model, model_version)

    out = op.key_rm("unkey", op.stateful_batch("join", tagged, build))
    branch = op.branch("split", out, lambda kv: kv[0] == "feedback")
    rest = op.branch("split_errs", branch.falses, lambda kv: kv[0] == "errs")
    feedback = op.map("feedback_tables", branch.trues, lambda kv: kv[1])
    quality = op.map("quality_tables", rest.falses, lambda kv: kv[1])
    errs = op.map("refused", rest.trues, lambda kv: kv[1])
    return FeedbackStreams(feedback=feedback, quality=quality, errs=errs)
