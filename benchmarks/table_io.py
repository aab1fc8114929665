"""Reading a large CSV against training on it: is `denseprop train` dominated by the reader?

Writes a CSV of N rows x K numeric feature columns plus a target column `y` (default
1,000,000 x 20, about 200 MB, in /tmp so it never lands in git), then measures

* the readers, each in this process (medians of --repeats, slow ones --slow-repeats times):
  denseprop's reader with pyarrow, its reader without pyarrow (NumPy's loadtxt splitting the
  cells as strings, then one cast per column), pandas.read_csv and numpy.loadtxt of floats;
* `denseprop train FILE --target y --epochs E` as a subprocess, --repeats times: the read,
  prepare and train phases from its summary line, and the wall time of the whole command.

    python benchmarks/table_io.py                       # 1,000,000 x 20, 3 epochs
    python benchmarks/table_io.py --rows 100000 --repeats 1
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

import numpy as np


def make_csv(path, rows, cols, seed=0):
    import pyarrow as pa
    import pyarrow.csv as pacsv
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, cols))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] * X[:, 2] + 0.1 * rng.standard_normal(rows)
    table = {f"x{j}": X[:, j].round(6) for j in range(cols)}
    table["y"] = y.round(6)
    pacsv.write_csv(pa.table(table), path)


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def readers(path):
    from denseprop import _table_io

    def with_pyarrow():
        _table_io.read_table(path)

    def python_fallback():
        _table_io._read_csv_python(path, path, set(), ",")

    def pandas():
        import pandas as pd
        pd.read_csv(path)

    def loadtxt():
        np.loadtxt(path, delimiter=",", skiprows=1)

    return {"denseprop reader, pyarrow": (with_pyarrow, False),
            "denseprop reader without pyarrow": (python_fallback, True),
            "pandas.read_csv": (pandas, False), "numpy.loadtxt": (loadtxt, True)}


SUMMARY = re.compile(r"in ([\d.]+) s, ([\d,]+) rows/s; read ([\d.]+) s, prepared ([\d.]+) s")


def train_run(path, epochs, model):
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "denseprop", "train", path, "--target", "y", "--epochs",
                           str(epochs), "--early-stopping", "0", "-o", model], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(proc.stderr)
    match = SUMMARY.search(proc.stderr)
    train, rate, read, prepare = (float(g.replace(",", "")) for g in match.groups())
    return {"read": read, "prepare": prepare, "train": train, "rows/s": rate, "wall": wall}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cols", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slow-repeats", type=int, default=1, help="repeats of the slow readers")
    parser.add_argument("--csv", default=None, help="default /tmp/denseprop-bench-ROWSxCOLS.csv")
    args = parser.parse_args()
    path = args.csv or f"/tmp/denseprop-bench-{args.rows}x{args.cols}.csv"
    if not os.path.exists(path):
        make_csv(path, args.rows, args.cols)
    print(f"{path}: {args.rows:,} rows x {args.cols} columns + target, {os.path.getsize(path) / 1e6:.0f} MB")

    print("\nreader                                     median s   runs")
    for name, (fn, slow) in readers(path).items():
        try:
            median, runs = timed(fn, args.slow_repeats if slow else args.repeats)
        except ImportError as err:
            print(f"{name:<42} skipped ({err})")
            continue
        print(f"{name:<42} {median:8.2f}   {', '.join(f'{t:.2f}' for t in runs)}")

    print(f"\ndenseprop train --epochs {args.epochs} (subprocess; seconds)")
    model = f"/tmp/denseprop-bench-model-{os.getpid()}.npz"
    results = [train_run(path, args.epochs, model) for _ in range(args.repeats)]
    os.unlink(model)
    for key in ("read", "prepare", "train", "wall"):
        values = [r[key] for r in results]
        print(f"  {key:<8} median {statistics.median(values):7.2f}   runs {', '.join(f'{v:.2f}' for v in values)}")
    per_epoch = statistics.median(r["train"] for r in results) / args.epochs
    print(f"  one epoch {per_epoch:.2f} s ({statistics.median(r['rows/s'] for r in results):,.0f} rows/s); "
          f"reading takes {statistics.median(r['read'] for r in results) / per_epoch:.1f} epochs' time")


if __name__ == "__main__":
    main()
