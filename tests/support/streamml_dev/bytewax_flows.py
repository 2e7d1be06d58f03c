"""Bytewax flows and a small model for the repository's tests of :mod:`streamml.bytewax`.

:func:`jsonl_flow` is a whole dataflow over files, importable by
``python -m bytewax.run streamml_dev.bytewax_flows:jsonl_flow(...)`` for multi-process and
recovery runs: JSON lines from every file of a directory (one partition per file, resumable by
offset) → :func:`streamml.bytewax.predict` → JSON lines into per-worker files.
:func:`train_small_lightgbm` trains and compiles the seeded model those tests score with.
"""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
from bytewax.connectors.files import DirSource
from bytewax.dataflow import Dataflow
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from streamml.bytewax import PredictFailure, predict

#: The field that identifies an event in the flows here.
ID_FIELD = "id"


def train_small_lightgbm(out: str | os.PathLike[str], *, features: int = 6, rows: int = 2_000) -> Path:
    """Train a small LightGBM binary classifier on seeded data and compile it to ``out``."""
    import lightgbm
    import numpy as np

    from streamml.compile import compile as streamml_compile

    rng = np.random.default_rng(7)
    x = rng.normal(size=(rows, features))
    y = (x[:, 0] * 1.5 - x[:, 1] + x[:, 2] * x[:, 3] + rng.normal(scale=0.5, size=rows) > 0).astype(int)
    names = [f"f{i}" for i in range(features)]
    params = {"objective": "binary", "num_leaves": 15, "num_threads": 1, "verbose": -1, "seed": 0}
    booster = lightgbm.train(params, lightgbm.Dataset(x, y, feature_name=names), num_boost_round=20)
    return streamml_compile(booster, out, name="small-lgbm", version="1")


class _JsonLinesPartition(StatelessSinkPartition[Any]):
    def __init__(self, path: Path) -> None:
        self._file = path.open("a", encoding="utf-8")

    def write_batch(self, items: list[Any]) -> None:
        self._file.writelines(json.dumps(item, sort_keys=True) + "\n" for item in items)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class JsonLinesDirSink(DynamicSink[Any]):
    """Each worker appends JSON lines to ``<dir>/<prefix>-<pid>-<worker>.jsonl``."""

    def __init__(self, directory: str | os.PathLike[str], prefix: str) -> None:
        """Write under ``directory``; ``prefix`` names the stream (``oks``, ``errs``)."""
        self._dir = Path(directory)
        self._prefix = prefix

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _JsonLinesPartition:
        """One file per worker and process."""
        self._dir.mkdir(parents=True, exist_ok=True)
        return _JsonLinesPartition(self._dir / f"{self._prefix}-{os.getpid()}-{worker_index}.jsonl")


def read_jsonl_dir(directory: str | os.PathLike[str], prefix: str) -> list[Any]:
    """Every JSON line of the files :class:`JsonLinesDirSink` wrote for ``prefix``."""
    out = []
    for path in sorted(Path(directory).glob(f"{prefix}-*.jsonl")):
        out.extend(json.loads(line) for line in path.read_text().splitlines() if line)
    return out


def _failure_json(failure: PredictFailure) -> dict[str, Any]:
    return {"item": failure.item, "reason": failure.reason}


def jsonl_flow(
    in_dir: str,
    out_dir: str,
    model_path: str,
    max_batch_rows: int = 0,
    max_wait_ms: float = 0,
    delay_ms: float = 0,
) -> Dataflow:
    """JSON lines of ``in_dir`` scored into ``out_dir`` (``oks-*.jsonl``, ``errs-*.jsonl``).

    Args:
        in_dir: one partition per file; a line is a JSON object with an ``id``.
        out_dir: where the sinks write.
        model_path: the model binary.
        max_batch_rows: batch per key (the key is ``id`` modulo 4) when non-zero.
        max_wait_ms: the ``max_wait`` of the batching, when non-zero.
        delay_ms: sleep this long per item before scoring (to stop a run mid-stream).
    """
    flow = Dataflow("streamml_jsonl")
    lines = op.input("in", flow, DirSource(Path(in_dir), batch_size=8))
    events = op.map("parse", lines, json.loads)
    if delay_ms:

        def slow(event: Any) -> Any:
            time.sleep(delay_ms / 1000)
            return event

        events = op.map("slow", events, slow)
    if max_batch_rows or max_wait_ms:
        keyed = op.key_on("shard", events, lambda e: str(e[ID_FIELD] % 4))
        wait = timedelta(milliseconds=max_wait_ms) if max_wait_ms else None
        scored = predict("score", keyed, model_path, max_batch_rows=max_batch_rows or None, max_wait=wait)
        oks = op.map("unkey", scored.oks, lambda kv: kv[1])
    else:
        scored = predict("score", events, model_path)
        oks = scored.oks
    op.output("oks", oks, JsonLinesDirSink(out_dir, "oks"))
    errs = op.map("errs_json", scored.errs, _failure_json)
    op.output("errs", errs, JsonLinesDirSink(out_dir, "errs"))
    return flow
