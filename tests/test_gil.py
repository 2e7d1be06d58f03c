"""The GIL is released while a binary scores: Python threads run meanwhile."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pyarrow as pa

from streamml import Model


def test_python_runs_while_a_binary_scores(c_models: dict[str, Path]) -> None:
    sleepy = Model.load(c_models["sleepy"])  # predict sleeps x[0] milliseconds
    batch = pa.record_batch({"x": [400.0, 1.0]})
    ticks = 0
    done = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            time.sleep(0.001)

    counter = threading.Thread(target=count)
    counter.start()
    started = time.perf_counter()
    out = sleepy.predict(batch)
    elapsed = time.perf_counter() - started
    done.set()
    counter.join()
    assert out.column("y").to_pylist() == [400.0, 1.0]
    assert elapsed >= 0.4
    # Held GIL: the counter thread would not run at all during the 400 ms.
    assert ticks >= 50, f"only {ticks} ticks in {elapsed:.3f}s: the GIL was held"


def test_two_threads_score_at_once(c_models: dict[str, Path]) -> None:
    sleepy = Model.load(c_models["sleepy"])
    batch = pa.record_batch({"x": [300.0]})
    threads = [threading.Thread(target=sleepy.predict, args=(batch,)) for _ in range(3)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    assert elapsed < 0.85, f"3 x 300 ms calls took {elapsed:.3f}s: they ran one at a time"
