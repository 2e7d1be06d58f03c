"""The whylogs peer of benchmarks/monitoring.py, run by the whylogs virtualenv's Python.

Usage: ``whylogs_peer.py ROWS.npy RUNS`` profiles the rows (a float64 matrix, one column per
R1 feature) with ``whylogs.log`` over a pandas DataFrame, ``RUNS`` times, in batches of 10,000
rows (the batches the streamml counters see), and prints the seconds of each run.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd
import whylogs


def main() -> None:
    """Print the seconds of each run, one per line."""
    x = np.load(sys.argv[1])
    runs = int(sys.argv[2])
    frames = [pd.DataFrame(x[i : i + 10_000], columns=[f"x{j}" for j in range(x.shape[1])])
              for i in range(0, len(x), 10_000)]  # fmt: skip
    whylogs.log(frames[0])  # the first call loads whylogs' machinery: not a measurement
    for _ in range(runs):
        t0 = time.perf_counter()
        for frame in frames:
            whylogs.log(frame)
        print(time.perf_counter() - t0, flush=True)


if __name__ == "__main__":
    main()
