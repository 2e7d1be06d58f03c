"""What an installed streamml needs and says: extras, the evaluators per target, joblib, the sdist.

A missing extra is simulated by blocking its module (``sys.modules[name] = None`` in a child
process: the import then fails exactly as if the package were absent); scripts/check_wheel.sh
checks the same messages in a virtualenv that really lacks the extras.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import joblib
import numpy as np
import pyarrow as pa
import pytest
from sklearn.ensemble import RandomForestClassifier

import streamml.compile as sml_compile
from streamml import Model
from streamml.cli import main
from streamml.compile import FOOTER_LEN
from streamml.errors import CompileError
from streamml_dev.repo import REPO_ROOT

PACKAGE = REPO_ROOT / "python" / "streamml"


def run_blocked(blocked: list[str], code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a child Python in which ``blocked`` modules cannot be imported."""
    prelude = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in blocked)
    return subprocess.run(
        [sys.executable, "-c", prelude + code], capture_output=True, text=True, check=False, cwd=REPO_ROOT
    )


def cli_blocked(blocked: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_blocked(blocked, f"from streamml.cli import main\nsys.exit(main({list(args)!r}))")


def repository_helper_modules() -> set[str]:
    """Top-level module names of the test and benchmark scaffolding (and pytest itself)."""
    names = {"tests", "benchmarks", "pytest", "_pytest"}
    for root in (REPO_ROOT / "tests", REPO_ROOT / "tests" / "support", REPO_ROOT / "benchmarks"):
        names |= {p.stem for p in root.glob("*.py")}
        names |= {p.name for p in root.iterdir() if (p / "__init__.py").is_file()}
    return names


def product_modules() -> list[str]:
    """Every module of the package, as dotted names (``streamml.bytewax.drift``...)."""
    modules = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def test_no_product_module_imports_test_or_benchmark_scaffolding() -> None:
    helpers = repository_helper_modules()
    assert {"streamml_dev", "conftest", "kafka_support", "harness", "r1_models", "pytest"} <= helpers
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            # bytewax.testing too: it runs flows "only for unit testing" (its docs); the demo uses bytewax.run.
            offenders += [
                f"{path.relative_to(PACKAGE)}: {n}"
                for n in names
                if n.split(".")[0] in helpers or n.startswith("bytewax.testing")
            ]
    assert offenders == []
    # Imported for real with the scaffolding unimportable: no import hidden behind a string.
    modules = product_modules()
    assert {"streamml.testing", "streamml.demo", "streamml.bytewax.drift", "streamml.compile.drift"} <= set(modules)
    imports = "".join(f"importlib.import_module({m!r})\n" for m in modules)
    done = run_blocked(sorted(helpers), "import importlib\n" + imports)
    assert done.returncode == 0, done.stderr


def test_shipped_binaries_hold_no_benchmark_switches() -> None:
    """The walk / kernel / JSON-reader switches exist only in builds with the `bench-switches` feature."""
    from streamml import _streamml

    switches = [b"STREAMML_EVALUATOR_SIMD", b"STREAMML_EVALUATOR_COMPACT", b"STREAMML_EVALUATOR_WALK"]
    extension = Path(_streamml.__file__).read_bytes()
    evaluator = sml_compile.evaluator_path().read_bytes()
    # The scan finds variables the binaries do read, so an absence below means something.
    assert b"STREAMML_TRUSTED_MODELS" in extension
    assert sml_compile.FOOTER_MAGIC[:5] in evaluator
    assert [s for s in [*switches, b"STREAMML_JSON_FLAT"] if s in extension] == []
    assert [s for s in switches if s in evaluator] == []


def test_score_without_confluent_kafka_names_the_extra(s1_path: Path) -> None:
    done = cli_blocked(
        ["confluent_kafka"],
        *("score", "--model", str(s1_path), "--bootstrap-servers", "127.0.0.1:1", "--input-topic", "i"),
        *("--output-topic", "o"),
    )
    assert (done.returncode, done.stderr) == (
        2,
        "streamml score needs confluent-kafka: pip install 'streamml[kafka]'\n",
    )


def test_metrics_port_without_prometheus_client_names_the_extra(s1_path: Path) -> None:
    done = cli_blocked(
        ["prometheus_client"],
        *("score", "--model", str(s1_path), "--bootstrap-servers", "127.0.0.1:1", "--input-topic", "i"),
        *("--output-topic", "o", "--metrics-port", "0"),
    )
    assert (done.returncode, done.stderr) == (
        2,
        "streamml score --metrics-port needs prometheus-client: pip install 'streamml[kafka]'\n",
    )


def test_metrics_off_need_no_prometheus_client() -> None:
    done = run_blocked(
        ["prometheus_client"],
        "from streamml.kafka.metrics import Metrics\n"
        "m = Metrics(None)\nm.batch(10, 2, 0.5)\nm.lag.labels('t', '0').set(3)\nm.close()\n"
        "try:\n    Metrics(0)\nexcept ModuleNotFoundError as e:\n    print('port:', e.name)\n",
    )
    assert (done.returncode, done.stdout) == (0, "port: prometheus_client\n"), done.stderr


def test_store_without_its_driver_fails_at_start(s1_path: Path, tmp_path: Path) -> None:
    store = tmp_path / "m.db"
    done = cli_blocked(
        ["adbc_driver_sqlite"],
        *("score", "--model", str(s1_path), "--bootstrap-servers", "127.0.0.1:1", "--input-topic", "i"),
        *("--output-topic", "o", "--store", str(store), "--store-predictions", "--id-field", "id"),
    )
    assert (done.returncode, done.stderr) == (
        2,
        f"streamml score: error: store URI '{store}' needs adbc-driver-sqlite: pip install 'streamml[store]'\n",
    )
    assert not store.exists()


def test_duckdb_store_names_the_duckdb_package() -> None:
    done = run_blocked(
        ["adbc_driver_duckdb"],
        "from streamml.store import Store\ntry:\n    Store('duckdb:')\nexcept ImportError as e:\n    print(e)\n",
    )
    assert done.stdout == "store URI 'duckdb:' needs duckdb: pip install 'streamml[duckdb]'\n", done.stderr


def test_import_streamml_bytewax_without_bytewax_names_the_extra() -> None:
    done = run_blocked(["bytewax"], "import streamml.bytewax")
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "streamml._extras.MissingExtraError: streamml.bytewax needs bytewax: pip install 'streamml[bytewax]'"
    )


def test_demo_without_bytewax_names_the_extra(tmp_path: Path) -> None:
    done = cli_blocked(["bytewax", "bytewax.testing"], "demo", "--out", str(tmp_path / "d"))
    assert (done.returncode, done.stderr) == (2, "streamml demo needs bytewax: pip install 'streamml[bytewax]'\n")


@pytest.fixture(scope="module")
def forest() -> tuple[RandomForestClassifier, np.ndarray]:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3000, 4))
    y = (x[:, 0] - x[:, 1] * x[:, 2] > 0).astype(int)
    return RandomForestClassifier(n_estimators=15, max_depth=6, random_state=0).fit(x, y), x


def test_compile_reads_joblib_files(
    forest: tuple[RandomForestClassifier, np.ndarray], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    est, x = forest
    joblib.dump(est, tmp_path / "rf.joblib", compress=3)  # compressed: not a plain pickle stream
    assert main(["compile", str(tmp_path / "rf.joblib"), "-o", str(tmp_path / "rf.so")]) == 0
    assert "15 trees" in capsys.readouterr().out
    got = Model.load(tmp_path / "rf.so").predict_numpy(x)["probability"]
    np.testing.assert_array_equal(got, est.predict_proba(x)[:, 1])


def test_compile_help_says_pickles_run_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["compile", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Pickle (.pkl, .pickle) and joblib (.joblib) files run code when they are loaded" in text
    assert "--target {linux-x86_64,linux-aarch64,darwin-x86_64,darwin-arm64}" in text


@pytest.fixture
def evaluators(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An evaluator directory holding this machine's evaluator only."""
    root = tmp_path / "_evaluator"
    host = root / sml_compile.host_target()
    host.mkdir(parents=True)
    (host / "libstreamml_evaluator.so").write_bytes(sml_compile.evaluator_path().read_bytes())
    monkeypatch.setattr(sml_compile, "_EVALUATORS", root)
    monkeypatch.delenv("STREAMML_EVALUATOR", raising=False)
    return root


def test_a_target_without_its_evaluator_says_which_ship(evaluators: Path, tmp_path: Path) -> None:
    other = "linux-aarch64" if sml_compile.host_target() != "linux-aarch64" else "linux-x86_64"
    with pytest.raises(CompileError) as caught:
        sml_compile.evaluator_path(other)
    assert str(caught.value).startswith(
        f"the streamml evaluator for {other} ({evaluators / other / 'libstreamml_evaluator.so'}) is missing; "
        f"this installation carries {sml_compile.host_target()}: install a streamml wheel"
    )
    with pytest.raises(CompileError, match=r"^unknown target 'linux-riscv64'; expected one of linux-x86_64, "):
        sml_compile.evaluator_path("linux-riscv64")


def test_compile_for_another_target_writes_its_evaluator_and_the_ir(
    evaluators: Path, forest: tuple[RandomForestClassifier, np.ndarray], tmp_path: Path
) -> None:
    # The other target's evaluator here is a stand-in file: the binary must start with exactly
    # it and carry the IR (check_wheel.sh runs a real aarch64 binary under qemu).
    other = "linux-aarch64" if sml_compile.host_target() != "linux-aarch64" else "linux-x86_64"
    (evaluators / other).mkdir()
    stand_in = b"\x7fELF stand-in evaluator for " + other.encode()
    (evaluators / other / "libstreamml_evaluator.so").write_bytes(stand_in)
    est, x = forest
    names = ["a", "b", "c", "d"]
    ref = pa.table({n: x[:500, i] for i, n in enumerate(names)})
    path = sml_compile.compile(est, tmp_path / "rf-other.so", name="rf", features=names, target=other, reference=ref)
    data = path.read_bytes()
    assert data.startswith(stand_in)
    size = int.from_bytes(data[-16:-8], "little")
    assert len(data) == len(stand_in) + size + FOOTER_LEN
    ir = json.loads(data[len(stand_in) : len(stand_in) + size])
    assert ir["name"] == "rf"
    assert ir["drift_reference"]["features"], "the reference was scored on this machine and frozen in"
    host = sml_compile.compile(est, tmp_path / "rf.so", name="rf", features=names, reference=ref)
    assert host.read_bytes()[-FOOTER_LEN - size :] == data[-FOOTER_LEN - size :], "same IR and footer as here"


def test_sdist_builds_the_evaluator_from_its_own_sources(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO_ROOT / "build_backend"))
    try:
        import streamml_build
    finally:
        sys.path.remove(str(REPO_ROOT / "build_backend"))
    name = subprocess.run(
        [sys.executable, "-c", f"import streamml_build; print(streamml_build.build_sdist({str(tmp_path)!r}))"],
        capture_output=True, text=True, check=True, cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "build_backend"),
             "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    ).stdout.split()[-1]  # fmt: skip
    with tarfile.open(tmp_path / name) as tar:
        names = set(tar.getnames())
        root = name.removesuffix(".tar.gz")
        workspace = tar.extractfile(f"{root}/operators/Cargo.toml").read().decode()  # type: ignore[union-attr]
    for needed in ("operators/evaluator/src/lib.rs", "operators/sdk/src/lib.rs", "build_backend/streamml_build.py"):
        assert f"{root}/{needed}" in names
    assert 'members = ["abi", "core", "evaluator", "ir", "python", "sdk", "train"]' in workspace
    assert streamml_build.host_target() == sml_compile.host_target()
