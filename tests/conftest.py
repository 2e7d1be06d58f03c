"""Shared fixtures: the example model binaries, and C models compiled for the session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamml import Model
from streamml.testing import REPO_ROOT, compile_c_model, example_model

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
def ir_predict():  # noqa: ANN201
    """``ir_predict(ir, X) -> {column: np.ndarray}``: the outputs a compiled IR gives on float64 ``X``.

    Converter tests compare this with the framework's own predictions. It runs
    the reference evaluator (``streamml.compile.reference``).
    """
    from streamml.compile import reference

    return reference.predict
