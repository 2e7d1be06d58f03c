"""The GIL is released while a binary scores: Python threads run meanwhile."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from streamml import Model


def ticks_while(call: Callable[[], Any]) -> tuple[Any, int, float]:
    """``call()``'s result, how often a Python thread ticked (every ms) meanwhile, and the seconds it took."""
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
    out = call()
    elapsed = time.perf_counter() - started
    done.set()
    counter.join()
    return out, ticks, elapsed


def test_python_runs_while_a_binary_scores(c_models: dict[str, Path]) -> None:
    sleepy = Model.load(c_models["sleepy"])  # predict sleeps x[0] milliseconds
    batch = pa.record_batch({"x": [400.0, 1.0]})
    out, ticks, elapsed = ticks_while(lambda: sleepy.predict(batch))
    assert out.column("y").to_pylist() == [400.0, 1.0]
    assert elapsed >= 0.4
    # Held GIL: the counter thread would not run at all during the 400 ms.
    assert ticks >= 50, f"only {ticks} ticks in {elapsed:.3f}s: the GIL was held"


def test_predict_numpy_releases_it_for_many_rows(c_models: dict[str, Path]) -> None:
    sleepy = Model.load(c_models["sleepy"])
    x = np.full((64, 1), 1.0)  # 64 rows: the GIL is released from 64 on
    x[0, 0] = 300.0
    out, ticks, elapsed = ticks_while(lambda: sleepy.predict_numpy(x))
    np.testing.assert_array_equal(out["y"], x[:, 0])
    assert elapsed >= 0.3
    assert ticks >= 30, f"only {ticks} ticks in {elapsed:.3f}s: the GIL was held"


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
