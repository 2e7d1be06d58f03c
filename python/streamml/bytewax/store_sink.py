"""``StoreSink``: a Bytewax sink that writes ``(table, Arrow rows)`` items into a monitoring store.

Every worker opens its own connection; each batch of items is grouped by table and
written with :meth:`streamml.store.Store.write` (bulk ingest, idempotent by key), so
a resumed dataflow that replays its last epoch leaves the store unchanged.
"""

from __future__ import annotations

from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from streamml.store import Store


class _StorePartition(StatelessSinkPartition):
    def __init__(self, uri: str) -> None:
        self.store = Store(uri)

    def write_batch(self, items: list[tuple[str, Any]]) -> None:
        import pyarrow as pa

        by_table: dict[str, list[Any]] = {}
        for table, rows in items:
            by_table.setdefault(table, []).append(pa.table(rows))
        for table, parts in by_table.items():
            self.store.write(table, pa.concat_tables(parts, promote_options="permissive"))

    def close(self) -> None:
        self.store.close()


class StoreSink(DynamicSink):
    """Write ``(table_name, rows)`` items into the store at ``uri`` (see :mod:`streamml.store`).

    Args:
        uri: the store URI (a SQLite path, ``postgresql://...`` or ``duckdb:///...``).
    """

    def __init__(self, uri: str) -> None:
        """A sink for the store at ``uri``."""
        self.uri = uri

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _StorePartition:
        """One connection per worker."""
        return _StorePartition(self.uri)
