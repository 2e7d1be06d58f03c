"""The monitoring store over ADBC: one URI chooses SQLite, PostgreSQL or DuckDB.

=====================================  =============================================
URI                                    backend (driver)
=====================================  =============================================
``monitoring.db``, ``sqlite:///a.db``  SQLite file (``adbc-driver-sqlite``, default)
``postgresql://user@host:port/db``     PostgreSQL (``adbc-driver-postgresql``)
``duckdb:///a.duckdb``, ``duckdb:``    DuckDB (DuckDB's own ADBC driver); ``duckdb:`` is in memory
=====================================  =============================================

Tables (created on first use; ``docs/store.md`` documents every column):
``predictions``, ``labels``, ``feedback``, ``drift``, ``drift_reference``, ``quality``, ``checkpoints``.
Every write is a bulk Arrow ingest (``adbc_ingest``) into a staging table, then one
``INSERT ... SELECT ... ON CONFLICT`` into the target in the same transaction:
rows already there by their key (event id and model version for events; window,
shard, feature and bin for drift; window, shard and metric for quality) are left
alone (events) or replaced by the newer cumulative value (drift, quality). A
replay of the same stream therefore leaves every table unchanged.

Examples:
    >>> import pyarrow as pa
    >>> store = Store("duckdb:")
    >>> rows = pa.table({"event_id": ["a", "b"], "label_time": [5, 6], "label": [1.0, 0.0]})
    >>> store.write("labels", rows)
    >>> store.write("labels", rows)  # a replay changes nothing
    >>> store.query("SELECT count(*) AS n FROM labels").column("n").to_pylist()
    [2]
    >>> store.close()
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from streamml.errors import StreammlError


class StoreError(StreammlError):
    """The store URI is unusable, or a write does not fit its table."""


@dataclass(frozen=True)
class TableSpec:
    """One store table: its columns (name, SQL type), key, and how a conflict resolves."""

    name: str
    columns: tuple[tuple[str, str], ...]
    key: tuple[str, ...]
    replace: bool  # True: a newer row replaces the stored one (cumulative state); False: first wins


_EVENT = (("model", "TEXT"), ("model_version", "TEXT"))
TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        TableSpec(
            "predictions",
            (
                ("event_id", "TEXT"),
                *_EVENT,
                ("event_time", "BIGINT"),
                ("window_start", "BIGINT"),
                ("score", "DOUBLE PRECISION"),
                ("prediction", "DOUBLE PRECISION"),
            ),
            ("event_id", "model", "model_version"),
            replace=False,
        ),
        TableSpec(
            "labels",
            (("event_id", "TEXT"), ("label_time", "BIGINT"), ("label", "DOUBLE PRECISION")),
            ("event_id",),
            replace=False,
        ),
        TableSpec(
            "feedback",
            (
                ("event_id", "TEXT"),
                *_EVENT,
                ("event_time", "BIGINT"),
                ("label_time", "BIGINT"),
                ("delay_ms", "BIGINT"),
                ("window_start", "BIGINT"),
                ("score", "DOUBLE PRECISION"),
                ("prediction", "DOUBLE PRECISION"),
                ("label", "DOUBLE PRECISION"),
            ),
            ("event_id", "model", "model_version"),
            replace=False,
        ),
        TableSpec(
            "drift",
            (
                *_EVENT,
                ("window_start", "BIGINT"),
                ("shard", "TEXT"),
                ("feature", "TEXT"),
                ("bin", "BIGINT"),
                ("count", "BIGINT"),
            ),
            ("model", "model_version", "window_start", "shard", "feature", "bin"),
            replace=True,
        ),
        TableSpec(
            "drift_reference",
            (*_EVENT, ("feature", "TEXT"), ("role", "TEXT"), ("bin", "BIGINT"), ("count", "BIGINT")),
            ("model", "model_version", "feature", "bin"),
            replace=True,
        ),
        TableSpec(
            "checkpoints",
            (("service", "TEXT"), *_EVENT, ("shard", "TEXT"), ("saved_at", "BIGINT"), ("state", "TEXT")),
            ("service", "model", "model_version", "shard"),
            replace=True,
        ),
        TableSpec(
            "quality",
            (*_EVENT, ("window_start", "BIGINT"), ("shard", "TEXT"), ("metric", "TEXT"), ("value", "DOUBLE PRECISION")),
            ("model", "model_version", "window_start", "shard", "metric"),
            replace=True,
        ),
    )
}


def _arrow_type(sql: str) -> Any:
    import pyarrow as pa

    return {"TEXT": pa.string(), "BIGINT": pa.int64(), "DOUBLE PRECISION": pa.float64()}[sql]


def driver_module(uri: str) -> str:
    """The ADBC driver module a store URI needs (``adbc_driver_sqlite.dbapi``...).

    Raises:
        StoreError: the URI names no backend streamml knows.
    """
    if uri.startswith(("postgresql://", "postgres://")):
        return "adbc_driver_postgresql.dbapi"
    if uri.startswith("duckdb:"):
        return "adbc_driver_duckdb.dbapi"
    if "://" in uri and not uri.startswith("sqlite://"):
        msg = f"store URI '{uri}': expected a SQLite path, sqlite:///path, postgresql://... or duckdb:///path"
        raise StoreError(msg)
    return "adbc_driver_sqlite.dbapi"


def check_driver(uri: str) -> None:
    """Import the store's ADBC driver now, so a missing one fails at start, not at the first write.

    Raises:
        StoreError: the URI names no backend streamml knows.
        MissingExtraError: its driver is not installed; the message names the extra to install.
    """
    from streamml._extras import require

    require(driver_module(uri), f"store URI '{uri}'")


def connect(uri: str) -> tuple[str, Any]:
    """``(backend, ADBC DB-API connection)`` for a store URI.

    Raises:
        StoreError: the URI names no backend streamml knows.
        MissingExtraError: its driver is not installed; the message names the extra to install.
    """
    from streamml._extras import require

    driver = require(driver_module(uri), f"store URI '{uri}'")
    if uri.startswith(("postgresql://", "postgres://")):
        return "postgresql", driver.connect(uri)
    if uri.startswith("duckdb:"):
        path = uri.removeprefix("duckdb:").removeprefix("//")
        return "duckdb", driver.connect(path or ":memory:")
    return "sqlite", driver.connect(uri.removeprefix("sqlite://") or ":memory:")


class Store:
    """A monitoring store: the tables of :data:`TABLES` behind one ADBC connection.

    Args:
        uri: the store URI (see the module docstring); a plain path is a SQLite file.
    """

    def __init__(self, uri: str) -> None:
        """Connect and create the tables that do not exist yet."""
        self.uri = uri
        self.backend, self._conn = connect(uri)
        with self._conn.cursor() as cur:
            for spec in TABLES.values():
                columns = ", ".join(f'"{c}" {t}' for c, t in spec.columns)
                key = ", ".join(f'"{c}"' for c in spec.key)
                cur.execute(f"CREATE TABLE IF NOT EXISTS {spec.name} ({columns}, PRIMARY KEY ({key}))")
        self._conn.commit()

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, table: str, data: Any) -> None:
        """Bulk-ingest Arrow rows into ``table``, idempotently by the table's key.

        Args:
            table: one of :data:`TABLES`.
            data: an Arrow table or batch (or anything ``pyarrow.table`` takes) with the
                table's columns; extra columns are refused, integer and float columns are
                cast to the table's types.

        Raises:
            StoreError: unknown table, or a column is missing / extra / of the wrong type.
        """
        import pyarrow as pa

        spec = TABLES.get(table)
        if spec is None:
            msg = f"store has no table '{table}'; it has {sorted(TABLES)}"
            raise StoreError(msg)
        rows = _conform(spec, pa.table(data))
        if rows.num_rows == 0:
            return
        if spec.replace:
            rows = _last_per_key(rows, spec.key)
        stage = f"stage_{table}_{uuid.uuid4().hex[:12]}"
        names = ", ".join(f'"{c}"' for c, _ in spec.columns)
        key = ", ".join(f'"{c}"' for c in spec.key)
        if spec.replace:
            updates = ", ".join(f'"{c}" = excluded."{c}"' for c, _ in spec.columns if c not in spec.key)
            action = f"DO UPDATE SET {updates}"
        else:
            action = "DO NOTHING"
        with self._conn.cursor() as cur:
            try:
                cur.adbc_ingest(stage, rows, mode="create")
                # `WHERE true` keeps SQLite from reading ON CONFLICT as part of the SELECT's join.
                cur.execute(
                    f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} WHERE true ON CONFLICT ({key}) {action}"
                )
                cur.execute(f"DROP TABLE {stage}")
            except Exception:
                self._conn.rollback()
                raise
        self._conn.commit()

    def query(self, sql: str) -> Any:
        """Run a query and return a ``pyarrow.Table``."""
        with self._conn.cursor() as cur:
            cur.execute(sql)
            result = cur.fetch_arrow_table()
        self._conn.commit()
        return result

    def read(self, table: str) -> Any:
        """Every row of ``table``, ordered by its key (a ``pyarrow.Table``)."""
        spec = TABLES[table]
        key = ", ".join(f'"{c}"' for c in spec.key)
        return self.query(f"SELECT * FROM {table} ORDER BY {key}")


def drift_reference_table(info: dict[str, Any]) -> Any:
    """The ``drift_reference`` table's rows for a model's info (its frozen reference counts)."""
    import pyarrow as pa

    rows = []
    ref = info["drift_reference"]
    for role, entries in (("feature", ref["features"]), ("score", ref["scores"])):
        for e in entries:
            rows.extend((e["name"], role, i, n) for i, n in enumerate(e["counts"]))
    return pa.table(
        {
            "model": [info["name"]] * len(rows),
            "model_version": [info["version"]] * len(rows),
            "feature": [r[0] for r in rows],
            "role": [r[1] for r in rows],
            "bin": pa.array([r[2] for r in rows], pa.int64()),
            "count": pa.array([r[3] for r in rows], pa.int64()),
        }
    )


def _conform(spec: TableSpec, rows: Any) -> Any:
    import pyarrow as pa

    wanted = [c for c, _ in spec.columns]
    missing = [c for c in wanted if c not in rows.column_names]
    extra = [c for c in rows.column_names if c not in wanted]
    if missing or extra:
        msg = f"rows for table '{spec.name}': missing columns {missing}, unknown columns {extra}; it has {wanted}"
        raise StoreError(msg)
    columns = []
    for name, sql in spec.columns:
        column, want = rows.column(name), _arrow_type(sql)
        if column.type != want:
            try:
                column = column.cast(want)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                msg = f"rows for table '{spec.name}': column '{name}' is {column.type}, expected {want}: {e}"
                raise StoreError(msg) from e
        columns.append(column)
    return pa.table(columns, names=wanted)


def _last_per_key(rows: Any, key: tuple[str, ...]) -> Any:
    """Keep the last row of each key (one staged batch must not hit a key twice)."""
    import pyarrow as pa

    keys = list(zip(*(rows.column(k).to_pylist() for k in key), strict=True))
    last = {k: i for i, k in enumerate(keys)}
    if len(last) == rows.num_rows:
        return rows
    return rows.take(pa.array(sorted(last.values()), type=pa.int64()))
