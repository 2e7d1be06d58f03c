"""R1's models and their peers for ``compile_r1.py``: training (cached), compiling, checking.

Everything here writes under ``build/bench/``. Trained models are kept there,
keyed by the parameters, the data and the framework's version, so only the
first run trains. Peers' compiled libraries (lleaves, TL2cgen) are rebuilt on
every full run, since their compile time is part of what is measured; a quick
run reuses them when they exist.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import importlib.metadata
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pyarrow as pa
import xgboost

from streamml import Model
from streamml.compile import compile as streamml_compile
from streamml_dev.workloads import FEATURE_NAMES, TRAIN_SEED, r1_data

BENCH_DIR = Path(__file__).resolve().parent.parent / "build" / "bench"
TL2CGEN_LOG = BENCH_DIR / "tl2cgen.log"
R1_TREES = 300
R1_ROWS = 100_000
LIGHTGBM_PARAMS = {
    "objective": "binary",
    "num_leaves": 63,
    "learning_rate": 0.05,
    "num_threads": 1,
    "deterministic": True,
    "seed": 0,
    "verbose": -1,
}
XGBOOST_PARAMS = {
    "objective": "binary:logistic",
    "max_depth": 6,
    "eta": 0.05,
    "tree_method": "hist",
    "nthread": 1,
    "seed": 0,
}
LIGHTGBM_TOLERANCE = 1e-9  # absolute, probability
XGBOOST_TOLERANCE = 1e-6  # relative, probability (XGBoost predicts in float32)

#: lleaves' variants: case name -> options of ``lleaves.Model.compile``. Its defaults inline every
#: tree into one function, which LLVM needs many minutes and GBs to optimise at 2,000 trees.
LLEAVES = "lleaves predict"
LLEAVES_NOINLINE = "lleaves predict (finline=False)"
LLEAVES_OPTIONS = {LLEAVES: {}, LLEAVES_NOINLINE: {"finline": False}}


@dataclass(frozen=True)
class Trained:
    """A trained model file and how it came to be."""

    path: Path
    seconds: float  # training wall time
    cached: bool  # loaded from build/bench, not trained in this run
    when: str  # when it was trained (UTC, ISO 8601)
    train_rows: int
    trees: int


@dataclass(frozen=True)
class Built:
    """A compiled peer and its compile time."""

    predictor: Any
    seconds: float
    cached: bool  # reused from build/bench; the time is the one measured then
    when: str


@dataclass
class Peers:
    """Why the peers that could not be set up or run failed."""

    failures: dict[str, str] = field(default_factory=dict)

    def attempt(self, peer: str, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``, or ``None`` with the error noted under ``peer``."""
        try:
            return fn(*args)
        except Exception as e:
            self.failures.setdefault(peer, describe_failure(peer, e))
            return None


def describe_failure(peer: str, e: BaseException) -> str:
    """The exception as ``Type: message``, with a hint where the cause is known."""
    text = f"{type(e).__name__}: {e}"
    if peer.startswith("lleaves") and ("PassManagerBuilder" in str(e) or "llvmlite" in str(e)):
        text += (
            f" (lleaves {version_of('lleaves')} needs llvmlite < 0.45, this environment has "
            f"llvmlite {version_of('llvmlite')}: siboehm/lleaves#95; pin llvmlite==0.44.0)"
        )
    if peer == "TL2cgen":
        text += f" (treelite's and the compiler's output: {TL2CGEN_LOG})"
    return text


def version_of(dist: str) -> str:
    """The installed version of a distribution, or "not installed"."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def now() -> str:
    """The time now, UTC, to the second."""
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()


@contextlib.contextmanager
def output_to(log: Path) -> Iterator[None]:
    """Send file descriptors 1 and 2 (C libraries' prints included) to ``log`` for a while."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with log.open("ab") as f:
            os.dup2(f.fileno(), 1)
            os.dup2(f.fileno(), 2)
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, target in zip(saved, (1, 2), strict=True):
            os.dup2(fd, target)
            os.close(fd)


def digest(obj: Any) -> str:
    """A short hash of a JSON-able object."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


# --- training (cached) -------------------------------------------------------------------------


def cached_training(
    stem: str, suffix: str, spec: dict[str, Any], train: Callable[[Path], None], retrain: bool
) -> tuple[Path, float, bool, str]:
    """Train into ``build/bench/<stem>_<key><suffix>`` unless that file exists (and not ``retrain``).

    Returns:
        The model file, the training time, whether it came from the cache, when it was trained.
    """
    path = BENCH_DIR / f"{stem}_{digest(spec)}{suffix}"
    meta = path.with_name(path.name + ".meta.json")
    if not retrain and path.is_file() and meta.is_file():
        info = json.loads(meta.read_text())
        return path, float(info["train_seconds"]), True, str(info["trained_at"])
    path.parent.mkdir(parents=True, exist_ok=True)  # a fresh checkout has no build/bench yet
    tmp = path.with_name(f".tmp{suffix}")  # an interrupted run leaves no half-written model behind
    t0 = time.perf_counter()
    train(tmp)
    seconds = time.perf_counter() - t0
    tmp.replace(path)
    when = now()
    meta.write_text(json.dumps({"spec": spec, "train_seconds": seconds, "trained_at": when}, indent=2) + "\n")
    return path, seconds, False, when


def train_lightgbm(trees: int, train_rows: int, retrain: bool) -> Trained:
    """The R1 LightGBM model with ``trees`` trees, trained on ``r1_data(train_rows, 42)``."""
    spec = {
        "framework": "lightgbm",
        "version": lightgbm.__version__,
        "params": LIGHTGBM_PARAMS,
        "rounds": trees,
        "data": {"workload": "r1", "rows": train_rows, "seed": TRAIN_SEED},
    }

    def train(out: Path) -> None:
        x, y = r1_data(train_rows, TRAIN_SEED)
        booster = lightgbm.train(LIGHTGBM_PARAMS, lightgbm.Dataset(x, y), num_boost_round=trees)
        booster.save_model(str(out))

    stem = f"lightgbm_r1_{trees}trees_{train_rows}rows"
    path, seconds, cached, when = cached_training(stem, ".txt", spec, train, retrain)
    return Trained(path, seconds, cached, when, train_rows, trees)


def train_xgboost(retrain: bool) -> Trained:
    """The XGBoost twin of R1: 300 rounds of depth 6 on the R1 training set."""
    spec = {
        "framework": "xgboost",
        "version": xgboost.__version__,
        "params": XGBOOST_PARAMS,
        "rounds": R1_TREES,
        "data": {"workload": "r1", "rows": R1_ROWS, "seed": TRAIN_SEED},
    }

    def train(out: Path) -> None:
        x, y = r1_data(R1_ROWS, TRAIN_SEED)
        booster = xgboost.train(XGBOOST_PARAMS, xgboost.DMatrix(x, label=y), num_boost_round=R1_TREES)
        booster.save_model(str(out))  # the ".json" suffix picks XGBoost's JSON format

    stem = f"xgboost_r1_{R1_TREES}rounds_depth6_{R1_ROWS}rows"
    path, seconds, cached, when = cached_training(stem, ".json", spec, train, retrain)
    return Trained(path, seconds, cached, when, R1_ROWS, R1_TREES)


def load_xgboost(trained: Trained) -> Any:
    """The XGBoost booster, predicting on one thread."""
    booster = xgboost.Booster(model_file=str(trained.path))
    booster.set_param({"nthread": 1})
    return booster


# --- compiling ---------------------------------------------------------------------------------


def compile_streamml(model: Any, name: str, what: str) -> tuple[Model, float]:
    """``streamml.compile.compile`` the model into ``build/bench/streamml_<name>.so``, timed.

    Stops the run if streamml cannot compile it: streamml is what this benchmark is about.
    """
    try:
        t0 = time.perf_counter()
        path = streamml_compile(model, BENCH_DIR / f"streamml_{name}.so", name=name, features=list(FEATURE_NAMES))
        seconds = time.perf_counter() - t0
        return Model.load(path), seconds
    except Exception as e:
        msg = (
            f"streamml could not compile {what}: {type(e).__name__}: {e}; check the converter in "
            "python/streamml/compile/ (from_lightgbm.py / from_xgboost.py) and the evaluator "
            "(`make models`); nothing was timed"
        )
        raise SystemExit(msg) from e


def cached_build(
    tool: str, options: dict[str, Any], model_file: Path, build: Callable[[Path], None], fresh: bool
) -> tuple[Path, float, bool, str]:
    """Build a peer's library for ``model_file`` under build/bench, timed; reuse it unless ``fresh``."""
    model_hash = hashlib.sha256(model_file.read_bytes()).hexdigest()
    versions = {d: version_of(d) for d in (tool, "llvmlite" if tool == "lleaves" else "treelite")}
    key = digest({"tool": tool, "versions": versions, "options": options, "model": model_hash})
    path = BENCH_DIR / f"{tool}_{model_file.stem}_{key}.so"
    meta = path.with_name(path.name + ".meta.json")
    if not fresh and path.is_file() and meta.is_file():
        info = json.loads(meta.read_text())
        return path, float(info["compile_seconds"]), True, str(info["compiled_at"])
    path.unlink(missing_ok=True)
    meta.unlink(missing_ok=True)
    t0 = time.perf_counter()
    build(path)
    seconds = time.perf_counter() - t0
    when = now()
    meta.write_text(json.dumps({"compile_seconds": seconds, "compiled_at": when}, indent=2) + "\n")
    return path, seconds, False, when


def build_lleaves(model_file: Path, options: dict[str, Any], fresh: bool) -> Built:
    """An lleaves model for ``model_file`` (parsing and compiling timed together)."""
    import lleaves

    def build(lib: Path) -> None:
        lleaves.Model(model_file=str(model_file)).compile(cache=str(lib), **options)

    path, seconds, cached, when = cached_build("lleaves", options, model_file, build, fresh)
    model = lleaves.Model(model_file=str(model_file))
    model.compile(cache=str(path), **options)  # an existing cache file is loaded, not compiled
    return Built(model, seconds, cached, when)


def build_tl2cgen(model_file: Path, fresh: bool) -> Built:
    """A TL2cgen predictor for ``model_file``: treelite's loader, then ``export_lib`` with gcc, one thread.

    Treelite and TL2cgen's C++ code log to stdout and stderr (e.g. that tl2cgen's own treelite is
    older than the one that loaded the model); that goes to ``build/bench/tl2cgen.log``.
    """
    import tl2cgen
    import treelite

    def build(lib: Path) -> None:
        model = treelite.frontend.load_lightgbm_model(str(model_file))
        with warnings.catch_warnings():  # "some of the source files are long" (default parameters)
            warnings.simplefilter("ignore", UserWarning)
            tl2cgen.export_lib(model, toolchain="gcc", libpath=str(lib), nthread=1)

    with output_to(TL2CGEN_LOG):
        path, seconds, cached, when = cached_build("tl2cgen", {"toolchain": "gcc"}, model_file, build, fresh)
        predictor = tl2cgen.Predictor(str(path), nthread=1)
    return Built(predictor, seconds, cached, when)


def build_onnx(booster: Any) -> Built:
    """An ONNX Runtime session (one thread) for the booster converted by onnxmltools, timed."""
    import onnxmltools
    import onnxruntime
    from onnxmltools.convert.common.data_types import FloatTensorType

    t0 = time.perf_counter()
    onx = onnxmltools.convert_lightgbm(
        booster, initial_types=[("input", FloatTensorType([None, len(FEATURE_NAMES)]))], zipmap=False
    )
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # no per-call warning about the shape of the unused label output
    session = onnxruntime.InferenceSession(onx.SerializeToString(), options, providers=["CPUExecutionProvider"])
    seconds = time.perf_counter() - t0
    outputs = [o.name for o in session.get_outputs()]
    if "probabilities" not in outputs:
        msg = f"expected an output named 'probabilities' in the converted model; got {outputs}"
        raise RuntimeError(msg)
    return Built(session, seconds, False, now())


# --- scoring -----------------------------------------------------------------------------------


def record_batch(x: np.ndarray) -> pa.RecordBatch:
    """The rows of ``x`` (shape ``(n, 32)``) as a batch with columns ``x0..x31``."""
    return pa.record_batch([pa.array(x[:, i]) for i in range(x.shape[1])], names=list(FEATURE_NAMES))


def streamml_run(model: Model, data: Any) -> Any:
    """One streamml call."""
    return model.predict(data)


def lightgbm_run(booster: Any, x: np.ndarray) -> np.ndarray:
    """One LightGBM call on one thread."""
    return booster.predict(x, num_threads=1)


def lleaves_run(model: Any, x: np.ndarray) -> np.ndarray:
    """One lleaves call on one thread."""
    return model.predict(x, n_jobs=1)


def tl2cgen_run(predictor: Any, dmat: Any) -> np.ndarray:
    """One TL2cgen call (its predictor holds one thread)."""
    return predictor.predict(dmat)


def onnx_run(session: Any, x32: np.ndarray) -> Any:
    """One ONNX Runtime call, asking for the probabilities only."""
    return session.run(["probabilities"], {"input": x32})


def xgboost_run(booster: Any, x: np.ndarray) -> np.ndarray:
    """One XGBoost call (the booster holds ``nthread=1``)."""
    return booster.inplace_predict(x)


# --- one model with its peers ------------------------------------------------------------------


@dataclass
class Suite:
    """A LightGBM model, its streamml binary and whichever peers could be set up for it."""

    trained: Trained
    booster: Any
    streamml: Model
    compile_seconds: float
    lleaves: dict[str, Built] = field(default_factory=dict)  # by case name, LLEAVES_OPTIONS
    tl2cgen: Built | None = None
    onnx: Built | None = None


def set_up(trained: Trained, name: str, peers: Peers, *, fresh: bool, lleaves: tuple[str, ...], others: bool) -> Suite:
    """Compile the model with streamml and the peers (a peer's failure is noted, not fatal).

    Args:
        trained: the LightGBM model file.
        name: the streamml binary's name.
        peers: where failures go.
        fresh: compile the peers' libraries even if build/bench has them.
        lleaves: which lleaves variants (keys of ``LLEAVES_OPTIONS``) to build.
        others: also build TL2cgen and ONNX Runtime.
    """
    booster = lightgbm.Booster(model_file=str(trained.path))
    model, seconds = compile_streamml(booster, name, f"the LightGBM model {trained.path.name}")
    suite = Suite(trained, booster, model, seconds)
    for case in lleaves:
        built = peers.attempt(case, build_lleaves, trained.path, LLEAVES_OPTIONS[case], fresh)
        if built is not None:
            suite.lleaves[case] = built
    if others:
        suite.tl2cgen = peers.attempt("TL2cgen", build_tl2cgen, trained.path, fresh)
        suite.onnx = peers.attempt("ONNX Runtime", build_onnx, booster)
    return suite


# --- checks ------------------------------------------------------------------------------------


def check_lightgbm(suite: Suite, x: np.ndarray, peers: Peers) -> dict[str, float]:
    """Stop unless streamml agrees with LightGBM on ``x``; the peers' differences, for the record."""
    ref = lightgbm_run(suite.booster, x)
    ours = suite.streamml.predict(record_batch(x)).column("probability").to_numpy()
    diff = float(np.max(np.abs(ours - ref)))
    if not diff < LIGHTGBM_TOLERANCE:  # also catches NaN
        msg = (
            f"streamml and LightGBM disagree on {suite.trained.path.name} over {len(x):,} rows: largest "
            f"probability difference {diff:.3g} (tolerance {LIGHTGBM_TOLERANCE:g}); not timing wrong answers"
        )
        raise SystemExit(msg)
    got: dict[str, Any] = {"streamml": ours}
    for case, built in suite.lleaves.items():
        got[case.replace(" predict", "")] = peers.attempt(case, lleaves_run, built.predictor, x)
    if suite.tl2cgen is not None:
        import tl2cgen

        got["TL2cgen"] = peers.attempt("TL2cgen", tl2cgen_run, suite.tl2cgen.predictor, tl2cgen.DMatrix(x))
    if suite.onnx is not None:
        out = peers.attempt("ONNX Runtime", onnx_run, suite.onnx.predictor, x.astype(np.float32))
        got["ONNX Runtime"] = None if out is None else out[0][:, 1]
    return {
        peer: float(np.max(np.abs(np.asarray(p, dtype=np.float64).ravel() - ref)))
        for peer, p in got.items()
        if p is not None
    }


def check_xgboost(model: Model, booster: Any, x: np.ndarray) -> float:
    """Stop unless streamml agrees with XGBoost on ``x``; return the largest relative difference."""
    ref = xgboost_run(booster, x).astype(np.float64)
    ours = model.predict(record_batch(x)).column("probability").to_numpy()
    rel = float(np.max(np.abs(ours - ref) / np.maximum(np.abs(ref), np.finfo(np.float64).tiny)))
    if not rel < XGBOOST_TOLERANCE:
        msg = (
            f"streamml and XGBoost disagree over {len(x):,} rows: largest relative probability "
            f"difference {rel:.3g} (tolerance {XGBOOST_TOLERANCE:g}); not timing wrong answers"
        )
        raise SystemExit(msg)
    return rel
