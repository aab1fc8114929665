"""Per-step time of the C++ training loop alone, for comparing two builds of denseprop.

    python benchmarks/step_times.py [--workloads tiny,tabular,digits,mnist] [--threads 1]
                                    [--epochs 7] [--json out.json]

Times one ``_core.train_epoch`` call per epoch on the benchmark workloads' data, network and
SGD (no Python work between epochs is timed), and prints the median nanoseconds per step.
Run it from two environments in turn (see README.md, "Comparing two builds"): the whole-fit
benchmark is noisier than a change to the step can be on the small workloads.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def epoch_runner(net, batch, lr):
    """A callable running one epoch of plain SGD over (X, Y) in the order perm."""
    import numpy as np

    core = net._backend
    params = net._params()
    step = np.zeros(1, np.int64)
    metrics = np.zeros(2 + net.n_out)
    if hasattr(core, "OptimizerConfig"):
        config = net.optimizer._config(lr) if hasattr(net.optimizer, "_config") else None

        def run(X, Y, perm):
            core.train_epoch(X, Y, params, net.activations, net.loss, batch, perm, None, config, [], step,
                             metrics)
    else:  # builds before the typed optimizer configuration
        def run(X, Y, perm):
            core.train_epoch(X, Y, params, net.activations, net.loss, batch, perm, None, "sgd", {"lr": lr}, [],
                             step, metrics)
    return run


def measure(name, threads, epochs):
    import numpy as np

    import denseprop as dp
    import workloads

    w = workloads.WORKLOADS[name]
    X, Y, _ = workloads.make_data(w)
    dp.set_num_threads(threads)
    net = dp.Network(w.layers, output_activation=w.output_activation, seed=0)
    net.optimizer = dp.SGD(lr=w.lr)
    run = epoch_runner(net, w.batch, w.lr)
    perm = np.empty(X.shape[0], np.int64)
    rng = np.random.default_rng(0)
    steps = -(-X.shape[0] // w.batch)
    times = []
    for _ in range(epochs + 1):  # the first epoch warms caches and thread pools
        net._backend.shuffled_order(int(rng.integers(0, 2**63)), perm)
        start = time.perf_counter()
        run(X, Y, perm)
        times.append((time.perf_counter() - start) / steps * 1e9)
    return statistics.median(times[1:])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", default="tiny,tabular,digits,mnist")
    p.add_argument("--threads", default="1")
    p.add_argument("--epochs", type=int, default=7)
    p.add_argument("--json")
    args = p.parse_args(argv)
    out = {}
    for t in [int(t) for t in args.threads.split(",")]:
        for name in args.workloads.split(","):
            out[f"{name}/{t}"] = measure(name, t, args.epochs)
            print(f"{name:8s} threads={t}  {out[f'{name}/{t}']:12.1f} ns/step", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f)


if __name__ == "__main__":
    main()
