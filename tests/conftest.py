"""Shared fixtures: the example model binaries, and C models compiled for the session."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamml import Model
from streamml.testing import compile_c_model
from streamml_dev.repo import REPO_ROOT, example_model

C_FIXTURES = REPO_ROOT / "tests" / "fixtures" / "c"
C_EXAMPLE = REPO_ROOT / "operators" / "sdk" / "examples" / "c" / "linear_model.c"
S1_COEFFICIENTS = REPO_ROOT / "operators" / "sdk" / "examples" / "s1_logistic.json"


@pytest.fixture(scope="session")
def c_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every C model of the repo, compiled with the system C compiler."""
    out = tmp_path_factory.mktemp("c-models")
    sources = [C_EXAMPLE, *sorted(C_FIXTURES.glob("*.c"))]
    return {src.stem: compile_c_model(src, out) for src in sources}


@pytest.fixture(scope="session")
def s1_path() -> Path:
    return example_model("s1_logistic")


@pytest.fixture(scope="session")
def s1(s1_path: Path) -> Model:
    return Model.load(s1_path)


@pytest.fixture(scope="session")
def s1_params() -> tuple[float, list[float]]:
    """(intercept, coefficients) compiled into the S1 binary."""
    values = json.loads(S1_COEFFICIENTS.read_text())
    return values[0], values[1:]


@pytest.fixture(scope="session")
def linear(c_models: dict[str, Path]) -> Model:
    return Model.load(c_models["linear_model"])


@pytest.fixture(scope="session")
def ir_predict(tmp_path_factory: pytest.TempPathFactory):
    """``ir_predict(ir, X) -> {column: np.ndarray}``: the outputs a compiled IR gives on float64 ``X``.

    Converter tests compare this with the framework's own predictions. It
    compiles the IR into a model binary, scores ``X`` (NaN cells as nulls in
    every other row, to exercise both ways of being missing) and checks the
    binary against the reference evaluator (``streamml_dev.reference``)
    before returning the binary's outputs.
    """
    import numpy as np
    import pyarrow as pa

    from streamml.compile import write_binary
    from streamml_dev import reference

    out_dir = tmp_path_factory.mktemp("compiled")
    counter = iter(range(1_000_000))

    def run(ir: dict, x: np.ndarray) -> dict[str, np.ndarray]:
        x = np.asarray(x, dtype=np.float64)
        model = Model.load(write_binary(ir, out_dir / f"model{next(counter)}.so"))
        columns = []
        for j in range(x.shape[1]):
            mask = np.isnan(x[:, j]) & (np.arange(x.shape[0]) % 2 == 0)
            columns.append(pa.array(x[:, j], mask=mask))
        batch = pa.record_batch(columns, names=list(ir["features"]))
        got = model.predict(batch)
        outputs = {}
        for name in got.schema.names:
            column = got.column(name)
            if pa.types.is_fixed_size_list(column.type):
                outputs[name] = np.asarray(column.flatten().to_numpy()).reshape(len(column), column.type.list_size)
            else:
                outputs[name] = column.to_numpy(zero_copy_only=False)
        expected = reference.predict(ir, x)
        assert set(outputs) == set(expected)
        for name, want in expected.items():
            if want.dtype.kind == "f":
                np.testing.assert_allclose(
                    outputs[name], want, rtol=1e-12, atol=1e-15, err_msg=f"binary vs reference: {name}"
                )
            else:
                np.testing.assert_array_equal(outputs[name], want, err_msg=f"binary vs reference: {name}")
        return outputs

    return run


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """A real Kafka broker: ``$STREAMML_KAFKA_BOOTSTRAP``, testcontainers, or ``scripts/kafka.sh``."""
    from streamml_dev.repo import kafka_bootstrap as start_broker

    return start_broker()


@pytest.fixture(scope="session")
def postgres_uri() -> str:
    """A real PostgreSQL database: ``$STREAMML_POSTGRES_URI``, testcontainers, or ``scripts/postgres.sh``."""
    from streamml_dev.repo import postgres_uri as start_server

    return start_server()


@pytest.fixture(params=["sqlite", "duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store URI on each backend (PostgreSQL: a new database per test, dropped after)."""
    if request.param == "sqlite":
        yield str(tmp_path / "store.db")
        return
    if request.param == "duckdb":
        yield f"duckdb:///{tmp_path / 'store.duckdb'}"
        return
    import uuid

    import adbc_driver_postgresql.dbapi as pg

    base = request.getfixturevalue("postgres_uri")
    name = f"t_{uuid.uuid4().hex[:12]}"
    with pg.connect(base, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    yield base.rsplit("/", 1)[0] + "/" + name
    _drop_database(base, name)


def _drop_database(base: str, name: str) -> None:
    import adbc_driver_postgresql.dbapi as pg

    with pg.connect(base, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
