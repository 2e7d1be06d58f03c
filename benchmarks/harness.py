"""Timing helpers shared by the benchmark scripts (one thread, per-call timing, table values)."""

from __future__ import annotations

import contextlib
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def limit_threads() -> contextlib.AbstractContextManager[Any]:
    """Hold every BLAS/OpenMP pool loaded so far to one thread (if threadpoolctl is installed)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1)


def cpu_model() -> str:
    """The CPU's name (Linux), else what ``platform`` knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def format_value(value: float) -> str:
    """Three significant digits or so, never in exponent form."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def timer_floor_ns(n: int = 20_000) -> int:
    """The median cost of two back-to-back ``perf_counter_ns`` calls (subtracted from every sample)."""
    clock = time.perf_counter_ns
    samples = [0] * n
    for i in range(n):
        t0 = clock()
        samples[i] = clock() - t0
    return int(np.median(samples))


def time_calls(fn: Callable[..., Any], args: tuple[Any, ...], n: int) -> list[int]:
    """Time ``n`` calls of ``fn(*args)`` one by one, in ns (the result is dropped inside the timing)."""
    clock = time.perf_counter_ns
    samples = [0] * n
    for i in range(n):
        t0 = clock()
        fn(*args)
        samples[i] = clock() - t0
    return samples
