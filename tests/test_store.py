"""The ADBC store on SQLite, DuckDB and a real PostgreSQL: tables, idempotent writes, errors."""

from __future__ import annotations

import pyarrow as pa
import pytest

from streamml.store import TABLES, Store, StoreError


def predictions(n: int, offset: int = 0) -> pa.Table:
    ids = [f"e{i}" for i in range(offset, offset + n)]
    return pa.table(
        {
            "event_id": ids,
            "model": ["fraud"] * n,
            "model_version": ["1"] * n,
            "event_time": pa.array(range(offset, offset + n), pa.int64()),
            "window_start": pa.array([0] * n, pa.int64()),
            "score": [i / (n + offset) for i in range(offset, offset + n)],
            "prediction": [float(i % 2) for i in range(n)],
        }
    )


def snapshot(store: Store) -> dict[str, list[dict]]:
    return {t: store.read(t).to_pylist() for t in TABLES}


def test_tables_are_created_on_first_use_and_writes_are_idempotent(store_uri: str) -> None:
    with Store(store_uri) as store:
        assert all(store.read(t).num_rows == 0 for t in TABLES)
        store.write("predictions", predictions(50))
        store.write("labels", pa.table({"event_id": ["e1", "e2"], "label_time": [9, 10], "label": [1, 0]}))
        drift = pa.table(
            {
                "model": ["fraud"] * 3,
                "model_version": ["1"] * 3,
                "window_start": [0, 0, 60000],
                "shard": ["0"] * 3,
                "feature": ["x0", "x0", "x0"],
                "bin": [0, 1, 0],
                "count": [5, 7, 1],
            }
        )
        store.write("drift", drift)
        before = snapshot(store)
        # A replay (and an overlapping batch) leaves every table unchanged.
        store.write("predictions", predictions(50))
        store.write("predictions", predictions(20, offset=30).set_column(5, "score", pa.array([9.0] * 20)))
        store.write("labels", pa.table({"event_id": ["e1"], "label_time": [99], "label": [0.0]}))
        store.write("drift", drift)
        assert snapshot(store) == before
        assert store.query("SELECT count(*) AS n FROM predictions").column("n").to_pylist() == [50]
    # Reopening finds the same rows.
    with Store(store_uri) as store:
        assert snapshot(store) == before


def test_cumulative_tables_take_the_newer_value(store_uri: str) -> None:
    with Store(store_uri) as store:
        row = {"model": "m", "model_version": "1", "window_start": 0, "shard": "0", "metric": "labeled"}
        store.write("quality", pa.Table.from_pylist([{**row, "value": 3.0}]))
        store.write("quality", pa.Table.from_pylist([{**row, "value": 5.0}, {**row, "value": 8.0}]))
        assert store.read("quality").column("value").to_pylist() == [8.0]


def test_bad_rows_name_the_table_and_column(store_uri: str) -> None:
    with Store(store_uri) as store:
        with pytest.raises(
            StoreError, match=r"rows for table 'labels': missing columns \['label'\], unknown columns \['y'\]"
        ):
            store.write("labels", pa.table({"event_id": ["a"], "label_time": [1], "y": [1.0]}))
        with pytest.raises(StoreError, match=r"column 'label_time' is string, expected int64"):
            store.write("labels", pa.table({"event_id": ["a"], "label_time": ["noon"], "label": [1.0]}))
        with pytest.raises(StoreError, match=r"store has no table 'scores'"):
            store.write("scores", pa.table({"a": [1]}))
        assert store.read("labels").num_rows == 0


def test_unknown_uri_is_refused() -> None:
    with pytest.raises(StoreError, match=r"store URI 'mysql://x': expected a SQLite path"):
        Store("mysql://x")
