"""What the Kafka commands write to the store: predictions, drift counts, and the retry of a write.

:class:`PredictionWriter` collects, for each scored message, its event id (the scorer's id
field, as written in the output), its event time (the message's Kafka timestamp, ms) and the
model's score, and writes them in one bulk ingest per batch, **before** the batch's offsets
are committed: a crash re-scores the batch and rewrites the same rows, which the table's key
(event id, model, model version) leaves alone, so the store holds each prediction once.

A write that fails keeps its rows for the next attempt; the scorer retries for a while
(:func:`with_retry`, which ``streamml feedback`` uses too) and, if the store stays down, stops
without committing the batch (the stored predictions are part of what a batch produces, so an
offset is never committed past a prediction the store did not take).

:class:`DriftExport` exports the scorer's drift windows to Prometheus and to the store's ``drift``
table, every few seconds and at exit; a store outage never stops scoring (the windows are kept
and written later).

Examples:
    >>> writer = PredictionWriter("duckdb:", model="m", model_version="1", id_field="id",
    ...                           score_field="probability", label_field="label", window_ms=60_000)
    >>> writer.add(b'{"id":7,"probability":0.9,"label":1.0}', 1_700_000_123_456)
    >>> writer.add(b'{"probability":0.2,"label":0.0}', 1_700_000_123_457)  # no id: not stored
    >>> writer.flush()
    1
    >>> writer.store.query("SELECT event_id, window_start, score FROM predictions").to_pylist()
    [{'event_id': '7', 'window_start': 1700000100000, 'score': 0.9}]
    >>> writer.close()
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from streamml.drift import DriftWindows
from streamml.store import Store

log = logging.getLogger("streamml.kafka")

#: At most this long (seconds) between two exports of the drift windows.
DRIFT_FLUSH_S = 5.0

T = TypeVar("T")


def with_retry(
    action: Callable[[], T],
    seconds: float,
    *,
    pause: float = 0.1,
    max_pause: float = 2.0,
    between: Callable[[], object] | None = None,
    on_retry: Callable[[Exception], object] | None = None,
) -> T:
    """``action()``, tried again (pauses doubling from ``pause`` to ``max_pause``) while it fails, for ``seconds``.

    ``between`` runs before each pause (e.g. serving the producer's callbacks), ``on_retry``
    is told each failure that is tried again. The action must be idempotent (store writes are).

    Examples:
        >>> tries = []
        >>> def flaky() -> int:
        ...     tries.append(1)
        ...     if len(tries) < 3:
        ...         raise OSError("store down")
        ...     return len(tries)
        >>> with_retry(flaky, 5.0, pause=0.01)
        3

    Raises:
        Exception: the action's last error, once ``seconds`` have passed.
    """
    deadline = time.monotonic() + seconds
    while True:
        try:
            return action()
        except Exception as e:
            if time.monotonic() >= deadline:
                raise
            if on_retry is not None:
                on_retry(e)
            if between is not None:
                between()
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, max_pause)


class PredictionWriter:
    """Collect scored messages and write them to ``predictions`` (see the module docs).

    Args:
        uri: the store URI.
        model: the model's name (a key column).
        model_version: the model's version (a key column).
        id_field: the output field holding the event id.
        score_field: the output field stored as ``score``.
        label_field: the output field stored as ``prediction`` (``None``: the score).
        window_ms: ``window_start`` is the event time floored to this window.
    """

    def __init__(
        self,
        uri: str,
        *,
        model: str,
        model_version: str,
        id_field: str,
        score_field: str,
        label_field: str | None,
        window_ms: int,
    ) -> None:
        """A writer for the store at ``uri`` (connected on first use)."""
        self.uri = uri
        self.model, self.model_version = model, model_version
        self.id_field, self.score_field, self.label_field = id_field, score_field, label_field
        self.window_ms = window_ms
        self._rows: list[tuple[str, int, float, float, str, str]] = []
        self._store: Store | None = None
        #: Why the last write failed (``None`` after a write that succeeded).
        self.error: str | None = None

    @property
    def store(self) -> Store:
        """The store connection (opened on first use)."""
        if self._store is None:
            self._store = Store(self.uri)
        return self._store

    def add(self, output: bytes, timestamp_ms: int, version: tuple[str, str] | None = None) -> None:
        """One JSON output and its message's timestamp; an output without the id is skipped.

        ``version``: the ``(model, model_version)`` that scored it (default: the writer's).
        """
        value = json.loads(output)
        label = value.get(self.label_field) if self.label_field else None
        self._add(value.get(self.id_field), timestamp_ms, value.get(self.score_field), label, version)

    def add_arrow(self, output: bytes, timestamp_ms: int, version: tuple[str, str] | None = None) -> None:
        """One Arrow IPC output (a stream of one or more rows) and its message's timestamp (and ``version``)."""
        import pyarrow as pa

        table = pa.ipc.open_stream(output).read_all()
        names = table.column_names
        if self.id_field not in names or self.score_field not in names:
            return
        ids = table.column(self.id_field).to_pylist()
        scores = table.column(self.score_field).to_pylist()
        labels = table.column(self.label_field).to_pylist() if self.label_field in names else scores
        for event_id, score, label in zip(ids, scores, labels, strict=True):
            self._add(event_id, timestamp_ms, score, label, version)

    def _add(
        self, event_id: Any, timestamp_ms: int, score: Any, label: Any, version: tuple[str, str] | None = None
    ) -> None:
        """One row; skipped without an id or a numeric score; ``prediction`` falls back to the score."""
        if event_id is None or not isinstance(score, (int, float)):
            return
        prediction = float(label) if isinstance(label, (int, float)) else float(score)
        model, model_version = version if version is not None else (self.model, self.model_version)
        self._rows.append((str(event_id), int(timestamp_ms), float(score), prediction, model, model_version))

    def flush(self) -> int:
        """Write the collected rows; the number written (0 when the store failed: rows kept)."""
        if not self._rows:
            return 0
        import pyarrow as pa

        rows = self._rows
        times = [r[1] for r in rows]
        table = pa.table(
            {
                "event_id": pa.array([r[0] for r in rows], pa.string()),
                "model": pa.array([r[4] for r in rows], pa.string()),
                "model_version": pa.array([r[5] for r in rows], pa.string()),
                "event_time": pa.array(times, pa.int64()),
                "window_start": pa.array([t - t % self.window_ms for t in times], pa.int64()),
                "score": pa.array([r[2] for r in rows], pa.float64()),
                "prediction": pa.array([r[3] for r in rows], pa.float64()),
            }
        )
        try:
            self.store.write("predictions", table)
        except Exception as e:  # a store outage: keep the rows; the caller retries or stops
            self.error = str(e)
            log.warning("predictions: could not write %d row(s) to %s: %s", len(rows), self.uri, e)
            self.close()
            return 0
        self._rows = []
        self.error = None
        return table.num_rows

    def close(self) -> None:
        """Close the store connection (rows not written yet stay collected)."""
        if self._store is not None:
            try:
                self._store.close()
            except Exception as e:  # closing a broken connection
                log.debug("predictions: closing the store: %s", e)
            self._store = None

    def __len__(self) -> int:
        """Rows collected and not written yet."""
        return len(self._rows)


def score_and_label_fields(output_names: list[str], score_field: str | None) -> tuple[str, str | None]:
    """The output stored as ``score`` (given, else the first output) and as ``prediction`` (``label``).

    Raises:
        ValueError: ``score_field`` is not an output of the model.
    """
    if score_field is None:
        score_field = output_names[0]
    if score_field not in output_names:
        msg = f"score field '{score_field}' is not an output of the model; the outputs are {output_names}"
        raise ValueError(msg)
    label = "label" if "label" in output_names and score_field != "label" else None
    return score_field, label


def timestamp_ms(message: Any) -> int:
    """The message's Kafka timestamp in ms (now, when it has none)."""
    kind, stamp = message.timestamp()
    return stamp if kind != 0 and stamp > 0 else int(time.time() * 1000)


class DriftExport:
    """Exports drift windows to Prometheus and the store (see the module docs).

    The store keeps cumulative counts per (window, shard, feature, bin); rewriting a window
    replaces them, so a flush repeated after a crash double-counts nothing it already wrote
    (messages rescored after a crash are counted again, as they are scored again: at-least-once).

    Args:
        windows: the scorer's drift windows.
        info: the model's info (name, version, drift reference).
        shard: names this process's counts in the store.
        store_uri: the store (``None``: Prometheus only).
    """

    def __init__(self, windows: DriftWindows, info: dict[str, Any], shard: str, store_uri: str | None) -> None:
        """Nothing exported yet; the store is opened at the first export."""
        self.windows, self.info, self.shard, self.store_uri = windows, info, shard, store_uri
        self._store: Store | None = None
        self._flushed = 0.0

    def flush(self, metrics: Any, *, final: bool = False) -> None:
        """Export the closed windows and the open one: every few seconds, and at exit (``final``).

        Runs between batches, when no chunk is being scored (so no thread counts meanwhile).
        """
        now = time.monotonic()
        if not final and now - self._flushed < min(DRIFT_FLUSH_S, self.windows.window_ms / 1000):
            return
        self._flushed = now
        windows = self.windows.take()
        if not windows:
            return
        if metrics is not None:
            metrics.drift(windows[-1][1])
        if self.store_uri is None:
            return
        from streamml.store import drift_reference_table

        try:
            if self._store is None:
                self._store = Store(self.store_uri)
                self._store.write("drift_reference", drift_reference_table(self.info))
            name, version = self.info["name"], self.info["version"]
            for start, monitor in windows:
                table = monitor.table(model=name, model_version=version, window_start=start, shard=self.shard)
                self._store.write("drift", table)
        except Exception as e:  # a store outage must not stop scoring: keep the windows, retry
            log.warning("drift: could not write to the store %s (will retry): %s", self.store_uri, e)
            self.windows.closed[:0] = [w for w in windows if w[1] is not self.windows.open]
            self.close()

    def close(self) -> None:
        """Close the store connection."""
        if self._store is not None:
            with contextlib.suppress(Exception):
                self._store.close()
        self._store = None
