"""The same outputs with 1 worker, 2 workers and 2 processes; recovery after a SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from streamml import Model
from streamml_dev.bytewax_flows import read_jsonl_dir, train_small_lightgbm

pytestmark = pytest.mark.slow

N_EVENTS = 600
N_FILES = 4
BAD_IDS = {5, 77, 401}


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_small_lightgbm(tmp_path_factory.mktemp("cluster-model") / "small.so")


@pytest.fixture(scope="module")
def in_dir(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Path:
    import numpy as np

    names = Model.load(model_path).input_schema.names
    rng = np.random.default_rng(11)
    d = tmp_path_factory.mktemp("events")
    files = [(d / f"part-{i}.jsonl").open("w") for i in range(N_FILES)]
    for i in range(N_EVENTS):
        e = {n: float(v) for n, v in zip(names, rng.normal(size=len(names)), strict=True)}
        e["id"] = i
        if i in BAD_IDS:
            del e[names[2]]
        files[i % N_FILES].write(json.dumps(e) + "\n")
    for f in files:
        f.close()
    return d


def expected_oks(model_path: Path, in_dir: Path) -> Counter:
    model = Model.load(model_path)
    rows = [json.loads(line) for p in sorted(in_dir.glob("*.jsonl")) for line in p.read_text().splitlines()]
    good = [r for r in rows if r["id"] not in BAD_IDS]
    scored = model.predict([{k: v for k, v in r.items() if k != "id"} for r in good]).to_pylist()
    return Counter(json.dumps({**r, **s}, sort_keys=True) for r, s in zip(good, scored, strict=True))


def run_flow(args: list[str], in_dir: Path, out: Path, model_path: Path, **options: float) -> list[subprocess.Popen]:
    """Start ``python -m bytewax.run`` on the file flow; one Popen per process."""
    params = ", ".join(
        [repr(str(in_dir)), repr(str(out)), repr(str(model_path))] + [f"{k}={v!r}" for k, v in options.items()]
    )
    target = f"streamml_dev.bytewax_flows:jsonl_flow({params})"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if "-a" in args:
        addresses = args[args.index("-a") + 1]
        count = len(addresses.split(";"))
        return [
            subprocess.Popen([sys.executable, "-m", "bytewax.run", target, *args, "-i", str(i)], env=env)
            for i in range(count)
        ]
    return [subprocess.Popen([sys.executable, "-m", "bytewax.run", target, *args], env=env)]


def wait_all(procs: list[subprocess.Popen], timeout: float = 120) -> None:
    for p in procs:
        assert p.wait(timeout=timeout) == 0


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def outputs(out: Path) -> tuple[Counter, Counter]:
    oks = Counter(json.dumps(o, sort_keys=True) for o in read_jsonl_dir(out, "oks"))
    # With micro-batching an errs item is the (key, event) pair.
    items = [e["item"][1] if isinstance(e["item"], list) else e["item"] for e in read_jsonl_dir(out, "errs")]
    errs = Counter(item["id"] for item in items)
    return oks, errs


@pytest.mark.parametrize(
    "batching", [{}, {"max_batch_rows": 16, "max_wait_ms": 20}], ids=["bytewax-batches", "micro-batches"]
)
def test_one_worker_two_workers_two_processes_same_multiset(
    batching: dict, in_dir: Path, model_path: Path, tmp_path: Path
) -> None:
    want = expected_oks(model_path, in_dir)
    ports = free_ports(2)
    setups = {
        "1 worker": [],
        "2 workers": ["-w", "2"],
        "2 processes": ["-a", f"127.0.0.1:{ports[0]};127.0.0.1:{ports[1]}"],
    }
    for name, args in setups.items():
        out = tmp_path / name.replace(" ", "-")
        wait_all(run_flow(args, in_dir, out, model_path, **batching))
        oks, errs = outputs(out)
        assert oks == want, name
        assert errs == Counter(BAD_IDS), name
        workers = len(list(out.glob("oks-*.jsonl")))  # every worker opens its file
        assert workers == (1 if name == "1 worker" else 2), name


def test_recovery_after_sigkill_loses_nothing(in_dir: Path, model_path: Path, tmp_path: Path) -> None:
    """Kill -9 mid-stream, resume from the recovery store: every input scored at least once.

    Duplicates can appear for the items the killed run emitted after its last
    snapshot: the resumed run replays the input from that snapshot's offsets.
    """
    db = tmp_path / "recovery"
    db.mkdir()
    subprocess.run([sys.executable, "-m", "bytewax.recovery", str(db), "1"], check=True)
    out = tmp_path / "out"
    args = ["-r", str(db), "-s", "1", "-b", "0"]
    batching = {"max_batch_rows": 16, "max_wait_ms": 50}
    [proc] = run_flow(args, in_dir, out, model_path, delay_ms=8, **batching)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        written = len(read_jsonl_dir(out, "oks")) if out.exists() else 0
        if written >= N_EVENTS // 2:
            break
        assert proc.poll() is None, "the flow ended before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    first, _ = outputs(out)
    assert 0 < sum(first.values()) < N_EVENTS - len(BAD_IDS), "killed mid-stream"
    wait_all(run_flow(args, in_dir, out, model_path, **batching))
    oks, errs = outputs(out)
    want = expected_oks(model_path, in_dir)
    assert set(oks) == set(want), "every input is scored at least once, none is lost"
    assert all(oks[k] >= 1 for k in want)
    assert set(errs) == BAD_IDS
    resumed = sum(oks.values()) - sum(first.values())
    assert resumed < len(want), "the resumed run started from a snapshot, not from the beginning"
    duplicates = sum(oks.values()) - len(want)
    print(f"killed run: {sum(first.values())} outputs; resumed run: {resumed}; duplicates: {duplicates}")
