"""Cost of fit(verbose=1)'s dead-unit check against the epoch it follows.

For each shape: the median time of a one-epoch fit (verbose=0, so no printing), and the
median time of one check that verbose=1 adds after an epoch, on the same network and rows
(alternating); then, in a fit(verbose=1) of at least 0.1 s (2 to 200 epochs), the checks'
time over the epochs' time as the watch itself counts it (it checks only while that share
stays within 2%), and that fit's median time with the checks over without (alternating;
noisy when the machine is shared).

    python benchmarks/dead_watch.py [--repeats 15] [--dtype float32]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import statistics
import time

import numpy as np

import denseprop as dp
from denseprop import _inspect

# name, layers, batch, rows: the benchmark workloads' shapes (fewer rows for the large ones),
# and two small data sets where the check's minimum sample is the largest share of an epoch.
CASES = [
    ("tiny", [1, 2, 2], 1, 20_000),
    ("tabular", [8, 64, 64, 1], 32, 20_000),
    ("digits", [64, 128, 10], 64, 1_797),
    ("mnist-shaped", [784, 256, 128, 10], 128, 20_000),
    ("wide", [1024, 4096, 4096, 1024], 256, 2_048),
    ("tiny-100", [1, 2, 2], 1, 100),
    ("tabular-256", [8, 64, 64, 1], 32, 256),
]


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--cases", default=None, help="comma-separated names (default: all)")
    args = parser.parse_args()
    chosen = None if args.cases is None else set(args.cases.split(","))
    print("| shape | rows | sampled rows | epoch (ms) | one check (ms) | one check / epoch | fit epochs | "
          "checks / epochs in that fit(verbose=1) | that fit's time with / without checks |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, layers, batch, rows in CASES:
        if chosen is not None and name not in chosen:
            continue
        rng = np.random.default_rng(0)
        X = rng.standard_normal((rows, layers[0])).astype(args.dtype)
        y = rng.standard_normal((rows, layers[-1])).astype(args.dtype)
        net = dp.Network(layers, seed=0, dtype=args.dtype)
        lr = 1e-4 if layers[0] >= 1024 else 0.01
        repeats = max(3, args.repeats // 5) if name == "wide" else args.repeats
        watch = _inspect.DeadUnitWatch(net, X)
        layers_watched = list(watch.todo)

        def check():
            watch.todo = list(layers_watched)  # always the full check, even after a warning
            watch.trained = watch.spent = watch.last = 0.0  # and always within the time budget
            watch.epoch_end({"epoch": 0, "time": 1.0})

        epochs, checks = [], []
        for _ in range(repeats):  # alternating, so both see the same load on a shared machine
            epochs.append(median_time(lambda: net.fit(X, y, epochs=1, batch_size=batch, lr=lr), 1))
            checks.append(median_time(check, 5))
        epoch, cost = statistics.median(epochs), statistics.median(checks)
        fit_epochs = min(200, max(2, math.ceil(0.1 / epoch)))  # fits of at least 0.1 s
        share = share_in_fit(net, X, y, batch, lr, fit_epochs)
        whole = fit_with_and_without(net, X, y, batch, lr, repeats if epoch * fit_epochs < 1 else 3, fit_epochs)
        print(f"| {name} {layers}, batch {batch} | {rows:,} | {watch.X.shape[0]:,} | {epoch * 1e3:.3f} | "
              f"{cost * 1e3:.4f} | {cost / epoch:.2%} | {fit_epochs} | {share:.2%} | {whole:+.1%} |", flush=True)


def share_in_fit(net, X, y, batch, lr, epochs):
    """The checks' time over the epochs' time in one fit(verbose=1), by the watch's own clock."""
    watches = []
    real_init = _inspect.DeadUnitWatch.__init__

    def remember(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        watches.append(self)

    _inspect.DeadUnitWatch.__init__ = remember
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            net.fit(X, y, epochs=epochs, batch_size=batch, lr=lr, verbose=1)
    finally:
        _inspect.DeadUnitWatch.__init__ = real_init
    return watches[0].spent / watches[0].trained


def fit_with_and_without(net, X, y, batch, lr, repeats, epochs):
    """Median time of fit(verbose=1) with the check over the median without it, minus 1;
    runs alternate, and the progress lines go to a buffer in both."""
    real = _inspect.DeadUnitWatch.epoch_end
    times = {True: [], False: []}
    for _ in range(repeats):
        for on in (True, False):
            if not on:
                _inspect.DeadUnitWatch.epoch_end = lambda self, record: None
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    start = time.perf_counter()
                    net.fit(X, y, epochs=epochs, batch_size=batch, lr=lr, verbose=1)
                    times[on].append(time.perf_counter() - start)
            finally:
                _inspect.DeadUnitWatch.epoch_end = real
    return statistics.median(times[True]) / statistics.median(times[False]) - 1


if __name__ == "__main__":
    main()
