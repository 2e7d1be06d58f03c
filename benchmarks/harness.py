"""Timing helpers shared by the benchmark scripts (one thread, per-call timing, table values)."""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Callable, Sequence
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


def thread_pools() -> str:
    """The thread pools loaded in this process, as threadpoolctl sees them."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed; env limits only"
    pools = set()
    for pool in threadpool_info():
        name = " ".join(filter(None, [pool["internal_api"], pool.get("version")]))
        threads = pool["num_threads"]
        pools.add(f"{name}: {threads} thread{'s' if threads != 1 else ''}")
    return ", ".join(sorted(pools)) or "none loaded"


def base_machine_info() -> dict[str, Any]:
    """What every benchmark reports about the machine and the common versions."""
    import pyarrow as pa

    import streamml

    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "platform": f"{platform.system()} {platform.machine()}",
        "cpu": cpu_model(),
        "nproc": nproc,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pyarrow": pa.__version__,
        "streamml": streamml.__version__,
        "thread_pools": thread_pools(),
    }


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


def format_table(rows: Sequence[Any], ratio_text: Callable[[Any], str]) -> str:
    """Rows (``section, case, value, unit`` attributes) as an aligned plain-text table, one block per section."""
    header = ("case", "value", "unit", "streamml \u00d7faster")
    cells = [(r.case, format_value(r.value), r.unit, ratio_text(r)) for r in rows]
    w = [max(len(c[i]) for c in [header, *cells]) for i in range(4)]

    def line(c: Sequence[str]) -> str:
        return f"{c[0]:<{w[0]}}  {c[1]:>{w[1]}}  {c[2]:<{w[2]}}  {c[3]:>{w[3]}}".rstrip()

    out = [line(header), "-" * len(line(header))]
    section = None
    for row, c in zip(rows, cells, strict=True):
        if row.section != section:
            section = row.section
            out.append(f"[{section}]")
        out.append(line(c))
    return "\n".join(out)
