"""The public names import, and the typed stub matches the compiled module."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import streamml
from streamml import _streamml


def test_every_public_name_imports() -> None:
    for name in streamml.__all__:
        assert getattr(streamml, name) is not None
    for module in (
        "streamml.errors",
        "streamml.model",
        "streamml.cli",
        "streamml.testing",
        "streamml.compile",
        "streamml.demo",
        "streamml.kafka",
        "streamml.bytewax",
        "streamml.drift",
        "streamml.store",
        "streamml.feedback",
        "streamml.report",
        "streamml.bytewax.feedback",
        "streamml.bytewax.store_sink",
        "streamml.feedback_service",
        "streamml.feedback_versions",
        "streamml.lifecycle",
        "streamml.mlflow",
    ):
        importlib.import_module(module)


def test_stub_matches_the_compiled_module() -> None:
    stub = Path(_streamml.__file__).with_name("_streamml.pyi")
    if not stub.exists():
        stub = Path(streamml.__file__).with_name("_streamml.pyi")
    tree = ast.parse(stub.read_text())
    declared: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            declared[node.name] = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            declared[node.target.id] = set()
    public = {n for n in dir(_streamml) if not n.startswith("_")} | {"__version__"}
    assert set(declared) == public
    for cls, methods in declared.items():
        if methods:
            actual = {m for m in dir(getattr(_streamml, cls)) if not m.startswith("_")}
            assert methods == actual, cls


def test_errors_form_one_hierarchy() -> None:
    for name in ("ModelLoadError", "InputError", "PredictError"):
        assert issubclass(getattr(streamml, name), streamml.StreammlError)
    assert issubclass(streamml.InputError, ValueError)
    assert issubclass(streamml.PredictError, RuntimeError)
