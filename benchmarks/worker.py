"""Run ONE measurement in a fresh process and print its result as JSON.

Usage (by run.py): ``python worker.py '<json job>'``.  The job is either

* ``{"kind": "probe", "system": ...}`` - can the system be imported?
* ``{"kind": "train", "system", "workload", "rows", "epochs", "threads", "X", "y"}``
  - one full training run plus predict timing, or
* ``{"kind": "gemm", "threads", "workloads": [...], "peak_n", "quick"}``
  - the GEMM limit of each workload's SGD step and the large-sgemm peak.

Thread counts are set by the parent through the environment (read at import
time by OpenBLAS, OpenMP and XLA).  For JAX the process is also pinned to
``threads`` CPUs before import, because XLA sizes its thread pool from the
visible CPUs.

Memory: after setup (imports, data loaded, model built, JAX compiled) the
peak-RSS counter of the process is reset (``echo 5 > /proc/self/clear_refs``),
so ``VmHWM`` read right after ``fit`` is the peak resident set *during* the fit.
``fit_delta_mb`` is that peak minus the resident set just before the fit, i.e.
the extra memory the fit itself needed.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _cpu_seconds() -> float:
    """CPU time of the whole process (all threads), high resolution."""
    return time.process_time()


def _blas_info() -> list[dict]:
    from threadpoolctl import threadpool_info

    keep = ("internal_api", "prefix", "version", "num_threads", "architecture", "filepath")
    return [{k: d.get(k) for k in keep} for d in threadpool_info()]


def _time_repeated(fn, min_total: float = 0.3, min_reps: int = 3, max_reps: int = 50,
                   reduce=statistics.median) -> float:
    """Median (or ``reduce``) wall time of ``fn()`` over enough calls to cover ``min_total`` s."""
    times = []
    start = time.perf_counter()
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - start < min_total):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return reduce(times)


# Fits shorter than REFIT_BELOW_S are repeated in-process: at least REFIT_MIN timings in
# all, more until REFIT_TOTAL_S of re-fitting, at most REFIT_MAX.
REFIT_BELOW_S, REFIT_MIN, REFIT_MAX, REFIT_TOTAL_S = 0.5, 5, 25, 1.0


def _pin_cpus(threads: int) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    if threads < len(cpus):
        os.sched_setaffinity(0, cpus[:threads])


# ---------------------------------------------------------------------- jobs


def probe(job):
    import importlib

    from peers import SYSTEMS

    if job["system"].startswith("jax"):
        _pin_cpus(1)
    mod = importlib.import_module("peers." + SYSTEMS[job["system"]][0])
    return {"ok": True, "module": mod.__name__}


def train(job):
    import dataclasses
    import importlib

    import numpy as np

    from peers import SYSTEMS
    from workloads import WORKLOADS

    system, threads = job["system"], job["threads"]
    if system.startswith("jax"):
        _pin_cpus(threads)
    w = dataclasses.replace(WORKLOADS[job["workload"]], rows=job["rows"], epochs=job["epochs"])
    X = np.load(job["X"])
    y = np.load(job["y"])
    mod = importlib.import_module("peers." + SYSTEMS[system][0])

    t0 = time.perf_counter()
    runner = mod.make(system, w, X, y, threads)
    setup_s = time.perf_counter() - t0

    gc.collect()
    # Let BLAS pools woken during setup (data loading, model building) go idle first:
    # OpenBLAS threads spin for about 0.1 s after their last product by default.
    time.sleep(0.3)
    load_before = os.getloadavg()[0]
    rss_before = _status_kb("VmRSS")
    reset_ok = _reset_peak_rss()
    cpu0 = _cpu_seconds()
    t0 = time.perf_counter()
    history = runner.fit()
    first_fit_s = time.perf_counter() - t0
    cpu_s = _cpu_seconds() - cpu0
    peak = _status_kb("VmHWM")
    if not reset_ok:  # fall back to the whole-process peak
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    # The loss reached by exactly `epochs` epochs from the shared start, before any re-fit.
    pred = np.asarray(runner.predict(X), dtype=np.float64).reshape(y.shape)
    predict_loss = 0.5 * float(((pred - y) ** 2).sum()) / X.shape[0]

    # A training that takes milliseconds is at the mercy of one scheduler hiccup on a shared
    # machine, so short ones are timed again in the same process (each a whole `fit` of the
    # same epochs, continuing from the trained weights) and the median is reported; every
    # system gets the same treatment. Long ones are timed once.
    fit_times = [first_fit_s]
    if first_fit_s < REFIT_BELOW_S:
        cpu0 = _cpu_seconds()
        t_start = time.perf_counter()
        while len(fit_times) < REFIT_MAX and (len(fit_times) < REFIT_MIN or
                                               time.perf_counter() - t_start < REFIT_TOTAL_S):
            t0 = time.perf_counter()
            runner.fit()
            fit_times.append(time.perf_counter() - t0)
        cpu_util = (_cpu_seconds() - cpu0) / sum(fit_times[1:])
        fit_s = statistics.median(fit_times[1:])
    else:
        cpu_util = cpu_s / first_fit_s
        fit_s = first_fit_s

    # Predict: one warm-up call (JAX compiles here), then the median of >= 3
    # calls covering >= 0.3 s, or of a single call when one takes > 0.5 s.
    t0 = time.perf_counter()
    runner.predict(X)
    slow = time.perf_counter() - t0 > 0.5
    last = {}

    def predict_once():
        last["pred"] = runner.predict(X)

    pred_s = _time_repeated(predict_once, min_total=0.0 if slow else 0.3, min_reps=1 if slow else 3)

    out = {
        "ok": True,
        "setup_s": setup_s,
        "fit_s": fit_s,
        "first_fit_s": first_fit_s,
        "fit_timings": len(fit_times),
        "samples_per_s": w.samples / fit_s,
        "loss_history": history,
        "final_loss": history[-1] if history else None,
        "loss_after_fit": predict_loss,
        "predict_s": pred_s,
        "predict_samples_per_s": X.shape[0] / pred_s,
        "rss_before_fit_mb": rss_before / 1024,
        "peak_fit_mb": peak / 1024,
        "fit_delta_mb": max(0, peak - rss_before) / 1024,
        "peak_method": "VmHWM after clear_refs" if reset_ok else "ru_maxrss (whole process)",
        "cpu_util": cpu_util,
        "loadavg_1min_before_fit": load_before,
        "notes": dict(runner.notes),
        "blas": _blas_info(),
    }
    if hasattr(runner, "check"):
        try:
            out["notes"]["check"] = runner.check()
        except Exception as exc:  # report, don't hide
            out["notes"]["check_error"] = f"{type(exc).__name__}: {exc}"
    return out


def _gemm_fn():
    """denseprop._core.gemm, or numpy as a clearly labelled fallback."""
    try:
        from denseprop import _core

        return _core.gemm, "denseprop._core.gemm"
    except Exception as exc:
        import numpy as np

        def gemm(A, B, C, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
            a = A.T if trans_a else A
            b = B.T if trans_b else B
            np.matmul(a, b, out=C)

        return gemm, f"numpy.matmul FALLBACK (denseprop not importable: {type(exc).__name__})"


def gemm(job):
    import numpy as np

    from workloads import DTYPE, WORKLOADS

    threads = job["threads"]
    gemm_fn, source = _gemm_fn()
    try:
        import denseprop as dp

        dp.set_num_threads(threads)
    except Exception:
        pass
    from threadpoolctl import threadpool_limits

    limits = threadpool_limits(limits=threads)  # noqa: F841 (kept alive)
    rng = np.random.default_rng(0)

    def rand(*shape):
        return rng.standard_normal(shape).astype(DTYPE)

    results = {}
    for name in job["workloads"]:
        w = WORKLOADS[name]
        B = w.batch
        layers = list(zip(w.layers[:-1], w.layers[1:]))
        X = [rand(B, a) for a, _ in layers]  # layer inputs
        W = [rand(a, b) for a, b in layers]
        Z = [np.empty((B, b), DTYPE) for _, b in layers]
        dZ = [rand(B, b) for _, b in layers]
        dW = [np.empty((a, b), DTYPE) for a, b in layers]
        dX = [np.empty((B, a), DTYPE) for a, _ in layers]

        def step():
            for i in range(len(layers)):
                gemm_fn(X[i], W[i], Z[i])
            for i in range(len(layers) - 1, -1, -1):
                gemm_fn(X[i], dZ[i], dW[i], trans_a=True)
                if i > 0:
                    gemm_fn(dZ[i], W[i], dX[i], trans_b=True)

        step()  # warm-up
        # Time blocks of k steps, k chosen so one block takes about 0.1 s.
        t0 = time.perf_counter()
        step()
        one = max(time.perf_counter() - t0, 1e-7)
        k = max(1, int(0.1 / one))

        def block():
            for _ in range(k):
                step()

        # Best (not median) block: the limit is a ceiling, and on a shared
        # machine interference only ever makes a block slower.
        t_step = _time_repeated(block, min_total=0.5 if not job["quick"] else 0.2, min_reps=5,
                                reduce=min) / k
        flops = w.flops_per_step()
        results[name] = {
            "step_gemm_s": t_step,
            "limit_samples_per_s": B / t_step,
            "flops_per_step": flops,
            "step_gflops": flops / t_step / 1e9,
        }

    n = job["peak_n"]
    A, Bm, C = rand(n, n), rand(n, n), np.empty((n, n), DTYPE)
    gemm_fn(A, Bm, C)  # warm-up
    reps = 2 if job["quick"] else 3
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        gemm_fn(A, Bm, C)
        times.append(time.perf_counter() - t0)
    peak = 2 * n**3 / min(times) / 1e9
    for r in results.values():
        r["fraction_of_peak"] = r["step_gflops"] / peak
    return {"ok": True, "gemm": source, "peak_n": n, "peak_gflops": peak,
            "workloads": results, "blas": _blas_info()}


def main():
    job = json.loads(sys.argv[1])
    try:
        out = {"probe": probe, "train": train, "gemm": gemm}[job["kind"]](job)
    except Exception as exc:
        out = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
               "traceback": traceback.format_exc()}
    sys.stdout.flush()
    print("RESULT:" + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
