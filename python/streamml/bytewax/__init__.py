"""Bytewax operators: score a stream with a model binary in one step.

* :func:`predict_op` — a mapper for ``op.map("score", stream, predict_op(model))``:
  each dict (or ``(key, dict)`` pair, or Arrow record batch) comes back with the
  model's outputs added; one native call per item, no pyarrow on the way.
* :func:`predict` — an operator in Bytewax's style that scores each batch
  Bytewax hands over in one native call, or, with ``max_batch_rows`` /
  ``max_wait``, buffers rows per key by the rule of every streamml host
  (:mod:`streamml.batching`: the age of the oldest row). It returns named streams ``oks`` and ``errs``; an ``errs`` item
  is a :class:`PredictFailure` carrying the item and the reason.
* :func:`feedback_join` — joins predictions with the labels that arrive later
  (TTL in event time) into feedback rows and windowed quality
  (:class:`FeedbackStreams`); :class:`StoreSink` writes them to the store.
* :func:`drift_counts` — drift counters per event-time window over scored batches,
  emitted as ``drift`` table rows for the store.

Examples:
    >>> import bytewax.operators as op
    >>> from bytewax.dataflow import Dataflow
    >>> from bytewax.testing import TestingSink, TestingSource, run_main
    >>> import pyarrow as pa
    >>> import pyarrow.compute as pc
    >>> from streamml import Model
    >>> from streamml.bytewax import predict
    >>> double = Model.from_callable(
    ...     lambda b: pa.record_batch({"y": pc.multiply(b["x"], 2.0)}),
    ...     input_schema=pa.schema([("x", pa.float64(), False)]),
    ...     output_schema=pa.schema([("y", pa.float64(), False)]),
    ... )
    >>> flow = Dataflow("doc")
    >>> events = op.input("in", flow, TestingSource([{"x": 1.0}, {"x": "a"}, {"x": 2}]))
    >>> scored = predict("score", events, double)
    >>> oks, errs = [], []
    >>> op.output("oks", scored.oks, TestingSink(oks))
    >>> op.output("errs", scored.errs, TestingSink(errs))
    >>> run_main(flow)
    >>> oks
    [{'x': 1.0, 'y': 2.0}, {'x': 2, 'y': 4.0}]
    >>> errs
    [PredictFailure(item={'x': 'a'}, reason="field 'x' is a string, expected float64")]
"""

from streamml._extras import require

require("bytewax", "streamml.bytewax")  # without it: one line naming streamml[bytewax], not a traceback

from streamml.bytewax._predict import PredictFailure, PredictOut, predict, predict_op
from streamml.bytewax.drift import drift_counts
from streamml.bytewax.feedback import FeedbackStreams, feedback_join
from streamml.bytewax.store_sink import StoreSink

__all__ = [
    "FeedbackStreams",
    "PredictFailure",
    "PredictOut",
    "StoreSink",
    "drift_counts",
    "feedback_join",
    "predict",
    "predict_op",
]
