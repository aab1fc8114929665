"""The sklearn section: DenseClassifier/DenseRegressor against MLPClassifier/MLPRegressor.

    python benchmarks/sklearn_bench.py [--seeds 3] [--solvers adam,sgd,lbfgs]
                                       [--datasets iris,wine,...] [--threads 1] [--json out.json]

For each data set, solver and seed: a 75/25 split (stratified for classes) by the seed, a
StandardScaler pipeline around the estimator with default parameters besides ``solver`` and
``random_state=seed`` (regression targets standardised too, by TransformedTargetRegressor),
the fit timed, the held-out score (accuracy or R^2) taken. The table
shows means over the seeds, side by side. A second table times GridSearchCV with n_jobs=1
and n_jobs=2 on joblib's threading and loky backends and on a Dask LocalCluster. Each system runs in a fresh subprocess per
solver with the BLAS thread count fixed through the environment before import (as run.py
does); the two systems alternate.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
DATASETS = ("iris", "wine", "breast_cancer", "digits", "diabetes", "friedman1")
SOLVERS = ("adam", "sgd", "lbfgs")
SYSTEMS = ("denseprop", "sklearn")
OPENBLAS_TUNING_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


# ------------------------------------------------------------------ the worker


def load(name):
    """(X, y, is_classification) of a bundled data set."""
    from sklearn import datasets
    if name == "friedman1":
        X, y = datasets.make_friedman1(n_samples=2000, noise=1.0, random_state=0)
        return X, y, False
    X, y = getattr(datasets, "load_" + name)(return_X_y=True)
    return X, y, name != "diabetes"


def estimator(system, classify, **params):
    if system == "denseprop":
        from denseprop.sklearn import DenseClassifier, DenseRegressor
        return (DenseClassifier if classify else DenseRegressor)(**params)
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    return (MLPClassifier if classify else MLPRegressor)(**params)


def fit_scores(system, solver, names, seeds):
    """One row per (data set, seed): held-out score, fit seconds, epochs or iterations."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    rows = []
    warm_X, warm_y, _ = load("iris")  # first-call costs (imports, thread start) out of the timings
    make_pipeline(StandardScaler(), estimator(system, True, solver=solver, max_iter=5)).fit(warm_X, warm_y)
    for name in names:
        X, y, classify = load(name)
        for seed in seeds:
            split = train_test_split(X, y, test_size=0.25, random_state=seed, stratify=y if classify else None)
            X_train, X_test, y_train, y_test = split
            model = make_pipeline(StandardScaler(), estimator(system, classify, solver=solver, random_state=seed))
            if not classify:  # targets standardised too, as for any regression network
                model = TransformedTargetRegressor(model, transformer=StandardScaler())
            start = time.perf_counter()
            model.fit(X_train, y_train)
            seconds = time.perf_counter() - start
            fitted = model if classify else model.regressor_
            rows.append({"dataset": name, "seed": seed, "score": model.score(X_test, y_test),
                         "fit_s": seconds, "n_iter": int(fitted[-1].n_iter_)})
    return rows


def parallel_capacity():
    """How much faster two threads of GIL-free work (SHA-256 of 32 MB each) finish than one
    after the other: about 2 on two idle cores, less when other processes hold the cores."""
    import hashlib
    import threading
    data = bytes(32 << 20)

    def work():
        hashlib.sha256(data).digest()

    start = time.perf_counter()
    work()
    work()
    sequential = time.perf_counter() - start
    threads = [threading.Thread(target=work) for _ in range(2)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sequential / (time.perf_counter() - start)


def search_times(system, repeats):
    """GridSearchCV (4 settings x 3 folds on digits): n_jobs=1, and n_jobs=2 on joblib's
    threading and loky backends and on a 2-process Dask LocalCluster (started untimed)."""
    import joblib
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    X, y, _ = load("digits")
    extra = {"n_threads": 1} if system == "denseprop" else {}
    step = "denseclassifier" if system == "denseprop" else "mlpclassifier"
    grid = {f"{step}__alpha": [1e-4, 1e-2], f"{step}__hidden_layer_sizes": [(64,), (128,)]}

    def timed(n_jobs, backend):
        search = GridSearchCV(make_pipeline(StandardScaler(), estimator(system, True, random_state=0, **extra)),
                              grid, cv=3, n_jobs=n_jobs)
        with joblib.parallel_backend(backend):
            start = time.perf_counter()
            search.fit(X, y)
            return time.perf_counter() - start

    modes = {"n_jobs=1": (1, "threading"), "threading": (2, "threading"), "loky": (2, "loky")}
    times = {mode: [] for mode in modes}
    times["capacity"] = []
    for _ in range(repeats):
        times["capacity"].append(parallel_capacity())
        for mode, (n_jobs, backend) in modes.items():
            times[mode].append(timed(n_jobs, backend))
    try:
        import distributed
    except ImportError:
        return times
    start = time.perf_counter()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster):
        times["dask start"] = [time.perf_counter() - start]
        times["dask"] = [timed(2, "dask") for _ in range(repeats)]
    return times


def worker(job):
    warnings.simplefilter("ignore")
    from threadpoolctl import threadpool_info
    if job["kind"] == "fit":
        result = fit_scores(job["system"], job["solver"], job["datasets"], job["seeds"])
    else:
        result = search_times(job["system"], job["repeats"])
    blas = [(i["filepath"].rsplit("/", 1)[-1], i.get("architecture"), i["num_threads"]) for i in threadpool_info()
            if i["user_api"] == "blas"]
    return {"result": result, "blas": blas}


# ------------------------------------------------------------------ the driver


def run_job(job, threads):
    env = os.environ.copy()
    n = str(threads)
    env.update(OMP_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n, MKL_NUM_THREADS=n, PYTHONHASHSEED="0")
    if job["system"] != "denseprop":  # as in run.py: these slow NumPy's OpenBLAS; peers run without
        for var in OPENBLAS_TUNING_VARS:
            env.pop(var, None)
    out = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def mean(values):
    return sum(values) / len(values)


def fit_table(results, datasets, solvers):
    lines = ["| data set | solver | MLP score | denseprop score | difference | MLP fit s | denseprop fit s "
             "| speed-up | epochs MLP / denseprop |", "|---|---|---|---|---|---|---|---|---|"]
    for solver in solvers:
        for name in datasets:
            cell = {system: [r for r in results[(system, solver)] if r["dataset"] == name] for system in SYSTEMS}
            sk, ours = cell["sklearn"], cell["denseprop"]
            s_sk, s_dp = mean([r["score"] for r in sk]), mean([r["score"] for r in ours])
            t_sk, t_dp = mean([r["fit_s"] for r in sk]), mean([r["fit_s"] for r in ours])
            lines.append(f"| {name} | {solver} | {s_sk:.4f} | {s_dp:.4f} | {s_dp - s_sk:+.4f} | {t_sk:.3f} | {t_dp:.3f} "
                         f"| {t_sk / t_dp:.1f}x | {mean([r['n_iter'] for r in sk]):.0f} / "
                         f"{mean([r['n_iter'] for r in ours]):.0f} |")
    return "\n".join(lines)


def search_table(searches):
    modes = ["n_jobs=1", "threading", "loky", "dask"]
    lines = ["| system | n_jobs=1 s | threading n_jobs=2 s | loky n_jobs=2 s | Dask cluster n_jobs=2 s "
             "| speed-up threading / loky / Dask |", "|---|---|---|---|---|---|"]
    for system in SYSTEMS:
        t = {m: statistics.median(searches[system][m]) for m in modes if m in searches[system]}
        ups = " / ".join(f"{t['n_jobs=1'] / t[m]:.2f}x" if m in t else "-" for m in modes[1:])
        cells = " | ".join(f"{t[m]:.2f}" if m in t else "-" for m in modes)
        lines.append(f"| {system} | {cells} | {ups} |")
    capacity = [c for s in SYSTEMS for c in searches[s]["capacity"]]
    lines.append(f"\nGIL-free work (SHA-256) ran {min(capacity):.2f}-{max(capacity):.2f}x as fast on 2 threads as "
                 f"in sequence during these searches (2.0 on two idle cores).")
    start = [searches[s]["dask start"][0] for s in SYSTEMS if "dask start" in searches[s]]
    if start:
        lines.append(f"\nStarting the LocalCluster (2 worker processes) took {min(start):.1f}-{max(start):.1f} s, "
                     f"not included above.")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--solvers", default=",".join(SOLVERS))
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads of each fit (default 1)")
    parser.add_argument("--search-repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    solvers, datasets = args.solvers.split(","), args.datasets.split(",")
    for name in datasets:
        if name not in DATASETS:
            parser.error(f"unknown data set {name!r}; choose from {', '.join(DATASETS)}")
    for solver in solvers:
        if solver not in SOLVERS:
            parser.error(f"unknown solver {solver!r}; choose from {', '.join(SOLVERS)}")
    started = datetime.datetime.now(datetime.timezone.utc)
    results, blas = {}, {}
    for solver in solvers:
        for system in SYSTEMS:
            print(f"fit {system} {solver} ...", file=sys.stderr, flush=True)
            job = {"kind": "fit", "system": system, "solver": solver, "datasets": datasets,
                   "seeds": list(range(args.seeds))}
            out = run_job(job, args.threads)
            results[(system, solver)], blas[system] = out["result"], out["blas"]
    searches = {}
    for system in SYSTEMS:
        print(f"search {system} ...", file=sys.stderr, flush=True)
        searches[system] = run_job({"kind": "search", "system": system, "repeats": args.search_repeats}, 1)["result"]
    import denseprop
    import sklearn
    print(f"## sklearn section ({started:%Y-%m-%d %H:%M} UTC, denseprop {denseprop.__version__}, "
          f"scikit-learn {sklearn.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"{args.threads} BLAS thread(s) per fit)\n")
    print(f"Held-out score (accuracy or R^2) and fit time, means over {args.seeds} seeds:\n")
    print(fit_table(results, datasets, solvers))
    print(f"\nGridSearchCV on digits (4 settings x 3 folds, default adam), medians of {args.search_repeats}; "
          f"one BLAS thread per fit (denseprop with n_threads=1):\n")
    print(search_table(searches))
    print("\nBLAS: " + "; ".join(f"{s}: {b}" for s, b in blas.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"started": started.isoformat(), "args": vars(args),
                       "fits": {f"{k[0]}/{k[1]}": v for k, v in results.items()}, "searches": searches,
                       "blas": blas}, f, indent=1)


if __name__ == "__main__":
    main()
