"""denseprop benchmark driver.

    python benchmarks/run.py [--workloads tiny,tabular,digits,mnist,wide]
                             [--systems denseprop-cpp,torch,...]
                             [--repeats 3] [--threads 1,2] [--json out.json] [--quick]

Every measurement runs in a fresh subprocess (see worker.py) with the thread
count fixed through the environment before import and again through each
system's own API.  Each (system, workload, threads) cell is measured
``--repeats`` times, repeats interleaved over systems; the table shows medians.
See README.md for the meaning of each column.
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
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from peers import DENSEPROP, REFERENCE, SYSTEMS  # noqa: E402
from workloads import WORKLOADS, get_workload, save_data  # noqa: E402

LOSS_TOLERANCE = 0.05  # flag final losses more than 5% away from the reference
OPENBLAS_TUNING_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
# Slow cells (10-40 s per run each on 2 cores): only run with --heavy.
HEAVY_CELLS = {("wide", "sklearn"), ("wide", "numpy")}


# ------------------------------------------------------------------ subprocess


def worker_env(system: str | None, threads: int) -> dict:
    """Environment of one worker: thread counts fixed before any import."""
    env = os.environ.copy()
    n = str(threads)
    env.update(OMP_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n, MKL_NUM_THREADS=n, PYTHONHASHSEED="0")
    # OpenBLAS keeps its idle-thread timeout at the default, as users run it: a short one
    # puts the pool to sleep between the products of every step.
    env.pop("OPENBLAS_THREAD_TIMEOUT", None)
    if threads == 1:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
    if system is not None and system not in DENSEPROP:
        # These tuning variables (when set on the machine) slow numpy's OpenBLAS;
        # peers run without them.  denseprop keeps the machine's environment.
        for var in OPENBLAS_TUNING_VARS:
            env.pop(var, None)
    return env


def run_worker(job: dict, env: dict, timeout: float) -> dict:
    cmd = [sys.executable, os.path.join(HERE, "worker.py"), json.dumps(job)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timeout after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT:"):
            out = json.loads(line[len("RESULT:"):])
            break
    else:
        out = {"ok": False, "error": f"worker exited {proc.returncode} without result",
               "stderr": proc.stderr[-3000:]}
    out["wall_s"] = time.perf_counter() - t0
    return out


# ------------------------------------------------------------------ aggregation


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def aggregate(runs: list[dict]) -> dict:
    """Median (and min/max) of the per-repeat numbers of one cell."""
    good = [r for r in runs if r.get("ok")]
    if not good:
        return {"ok": False, "error": runs[0].get("error") if runs else "not run"}
    keys = ["samples_per_s", "final_loss", "predict_samples_per_s", "peak_fit_mb",
            "fit_delta_mb", "fit_s", "cpu_util", "setup_s", "loadavg_1min_before_fit"]
    agg = {"ok": True, "n": len(good)}
    for k in keys:
        vals = [r.get(k) for r in good]
        agg[k] = _median(vals)
        if k == "samples_per_s":
            agg[k + "_min"] = min(vals)
            agg[k + "_max"] = max(vals)
    agg["notes"] = good[0].get("notes", {})
    agg["blas"] = good[0].get("blas", [])
    agg["loss_history"] = good[0].get("loss_history")
    if len(good) < len(runs):
        agg["failed_repeats"] = len(runs) - len(good)
    return agg


def summarise(results: dict, gemm: dict, workloads, threads_list, systems) -> dict:
    """Loss flags and the ratios of denseprop cpp against peers and the GEMM limit."""
    summary = {}
    for wname in workloads:
        for t in threads_list:
            key = f"{wname}/{t}"
            cells = {s: results.get(f"{wname}/{t}/{s}") for s in systems}
            ref_name = REFERENCE if cells.get(REFERENCE, {}) and cells[REFERENCE].get("ok") else "numpy"
            ref = cells.get(ref_name) or {}
            ref_loss = ref.get("final_loss") if ref.get("ok") else None
            for s, c in cells.items():
                if c and c.get("ok") and ref_loss:
                    c["loss_rel_diff"] = (c["final_loss"] - ref_loss) / ref_loss
                    c["loss_flag"] = abs(c["loss_rel_diff"]) > LOSS_TOLERANCE
            dp_cell = cells.get("denseprop-cpp") or {}
            dp_sps = dp_cell.get("samples_per_s") if dp_cell.get("ok") else None
            peers = {s: c["samples_per_s"] for s, c in cells.items()
                     if s not in DENSEPROP and c and c.get("ok")}
            best = max(peers, key=peers.get) if peers else None
            g = (gemm.get(str(t)) or {}).get("workloads", {}).get(wname, {})
            limit = g.get("limit_samples_per_s")
            torch_sps = peers.get("torch")
            summary[key] = {
                "workload": wname,
                "threads": t,
                "loss_reference": ref_name,
                "reference_loss": ref_loss,
                "denseprop_cpp_samples_per_s": dp_sps,
                "best_peer": best,
                "best_peer_samples_per_s": peers.get(best) if best else None,
                "cpp_vs_best_peer": dp_sps / peers[best] if dp_sps and best else None,
                "cpp_vs_torch": dp_sps / torch_sps if dp_sps and torch_sps else None,
                "gemm_limit_samples_per_s": limit,
                "cpp_fraction_of_gemm_limit": dp_sps / limit if dp_sps and limit else None,
                "step_gemm_gflops": g.get("step_gflops"),
                "peak_sgemm_gflops": (gemm.get(str(t)) or {}).get("peak_gflops"),
                "step_gemm_fraction_of_peak": g.get("fraction_of_peak"),
            }
    return summary


# ------------------------------------------------------------------ printing


def _fmt_num(v, digits=3):
    if v is None:
        return "-"
    if abs(v) >= 1e6:
        return f"{v / 1e6:.2f}M"
    if abs(v) >= 1e4:
        return f"{v / 1e3:.1f}k"
    return f"{v:.{digits}g}"


def _fmt_ratio(v):
    return "-" if v is None else f"{v:.2f}x"


def _fmt_frac(v):
    return "-" if v is None else f"{100 * v:.0f}%"


def markdown(report: dict) -> str:
    lines = []
    cfg = report["config"]
    lines.append(f"## denseprop benchmark ({'quick' if cfg['quick'] else 'full'}, "
                 f"{cfg.get('dtype', 'float32')}, {cfg['repeats']} repeat(s), medians)\n")
    lines.append("| workload | thr | system | train samples/s | (min-max) | final loss | "
                 "predict samples/s | fit peak RSS MB | fit +MB | CPU util |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for wname in cfg["workloads"]:
        for t in cfg["threads"]:
            for s in cfg["systems"]:
                c = report["results"].get(f"{wname}/{t}/{s}")
                if c is None:
                    continue
                label = SYSTEMS[s][1]
                if not c.get("ok"):
                    err = (c.get("error") or "").replace("|", "/")[:60]
                    lines.append(f"| {wname} | {t} | {label} | skipped: {err} | | | | | | |")
                    continue
                loss = _fmt_num(c["final_loss"], 4)
                if c.get("loss_flag"):
                    loss += f" ⚠ ({100 * c['loss_rel_diff']:+.0f}%)"
                lines.append(
                    f"| {wname} | {t} | {label} | {_fmt_num(c['samples_per_s'])} | "
                    f"{_fmt_num(c['samples_per_s_min'])}-{_fmt_num(c['samples_per_s_max'])} | "
                    f"{loss} | {_fmt_num(c['predict_samples_per_s'])} | "
                    f"{c['peak_fit_mb']:.0f} | {c['fit_delta_mb']:.1f} | {c['cpu_util']:.2f} |")
    lines.append("")
    lines.append("| workload | thr | dp cpp samples/s | best peer | cpp / best peer | cpp / torch | "
                 "GEMM-limit samples/s | cpp / limit | step GEMM GFLOP/s | sgemm peak GFLOP/s | "
                 "step GEMM / peak |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for key, s in report["summary"].items():
        best = SYSTEMS[s["best_peer"]][1] if s["best_peer"] else "-"
        lines.append(
            f"| {s['workload']} | {s['threads']} | {_fmt_num(s['denseprop_cpp_samples_per_s'])} | "
            f"{best} ({_fmt_num(s['best_peer_samples_per_s'])}) | {_fmt_ratio(s['cpp_vs_best_peer'])} | "
            f"{_fmt_ratio(s['cpp_vs_torch'])} | {_fmt_num(s['gemm_limit_samples_per_s'])} | "
            f"{_fmt_frac(s['cpp_fraction_of_gemm_limit'])} | {_fmt_num(s['step_gemm_gflops'])} | "
            f"{_fmt_num(s['peak_sgemm_gflops'])} | {_fmt_frac(s['step_gemm_fraction_of_peak'])} |")
    notes = report.get("notes", [])
    if notes:
        lines.append("")
        lines.extend(f"- {n}" for n in notes)
    return "\n".join(lines)


# ------------------------------------------------------------------ main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workloads", default=",".join(WORKLOADS),
                   help="comma-separated subset of: " + ",".join(WORKLOADS))
    p.add_argument("--systems", default=",".join(SYSTEMS),
                   help="comma-separated subset of: " + ",".join(SYSTEMS))
    p.add_argument("--repeats", type=int, default=None, help="repeats per cell (default 3, 1 with --quick)")
    p.add_argument("--threads", default=None,
                   help="comma-separated thread counts (default 1,2; 1 with --quick)")
    p.add_argument("--json", default=None, help="write the full report here "
                   "(default benchmarks/results/bench-<timestamp>.json)")
    p.add_argument("--quick", action="store_true", help="small data, 1 repeat: a smoke test")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="element type of the data and weights of every system (default float32)")
    p.add_argument("--peak-n", type=int, default=4096, help="size of the square sgemm peak test")
    p.add_argument("--timeout", type=float, default=900, help="seconds per worker process")
    p.add_argument("--no-gemm", action="store_true", help="skip the GEMM-limit measurement")
    p.add_argument("--heavy", action="store_true",
                   help="also run the slow cells: " + ", ".join(f"{s} on {w}" for w, s in sorted(HEAVY_CELLS)))
    p.add_argument("--report", metavar="JSON", default=None,
                   help="only re-print the tables of a saved JSON report, run nothing")
    return p.parse_args(argv)


def load_note(raw_runs: dict) -> list[str]:
    """How busy the machine was: 1-min load average seen before each fit."""
    loads = [r["loadavg_1min_before_fit"] for rs in raw_runs.values() for r in rs
             if r.get("loadavg_1min_before_fit") is not None]
    if not loads:
        return []
    return [f"Machine load (1-min load average before each fit, {len(loads)} fits): "
            f"median {statistics.median(loads):.2f}, max {max(loads):.2f} on {os.cpu_count()} CPUs."]


def blas_notes(results: dict) -> list[str]:
    """Which OpenBLAS kernels threadpoolctl reports, per library, from the first runs."""
    seen = {}
    for key, cell in results.items():
        for lib in cell.get("blas") or []:
            name = os.path.basename(lib.get("filepath") or "?")
            system = key.rsplit("/", 1)[-1]
            if name not in seen:
                seen[name] = (lib.get("internal_api"), lib.get("version"), lib.get("architecture"), system)
    return [f"BLAS {name}: {api} {ver}, kernel {arch} (threadpoolctl, first seen in {system})"
            for name, (api, ver, arch, system) in sorted(seen.items())]


def main(argv=None):
    args = parse_args(argv)
    # Workers inherit the element type through the environment; this process writes the data.
    os.environ["DENSEPROP_BENCH_DTYPE"] = args.dtype
    import workloads
    workloads.DTYPE = workloads.np.dtype(args.dtype)
    if args.report:
        with open(args.report) as f:
            report = json.load(f)
        report["summary"] = summarise(report["results"], report["gemm"], report["config"]["workloads"],
                                      report["config"]["threads"], report["config"]["systems"])
        if not any(n.startswith("BLAS ") for n in report.get("notes", [])):
            report.setdefault("notes", []).extend(blas_notes(report["results"]))
        if not any(n.startswith("Machine load") for n in report.get("notes", [])):
            report["notes"].extend(load_note(report.get("raw_runs", {})))
        print(markdown(report))
        return
    workloads = [w for w in args.workloads.split(",") if w]
    systems = [s for s in args.systems.split(",") if s]
    for w in workloads:
        if w not in WORKLOADS:
            sys.exit(f"unknown workload {w!r}; choose from {','.join(WORKLOADS)}")
    for s in systems:
        if s not in SYSTEMS:
            sys.exit(f"unknown system {s!r}; choose from {','.join(SYSTEMS)}")
    threads_arg = args.threads if args.threads is not None else ("1" if args.quick else "1,2")
    threads_list = [int(t) for t in threads_arg.split(",") if t]
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    started = time.time()
    notes = []
    # Settle where the report goes before measuring anything: a path whose folder is missing or
    # not writable must fail now, not after half an hour of runs.
    json_path = args.json
    if json_path is None:
        stamp = datetime.datetime.fromtimestamp(started).strftime("%Y%m%d-%H%M%S")
        json_path = os.path.join(HERE, "results", f"bench-{stamp}{'-quick' if args.quick else ''}.json")
    json_dir = os.path.dirname(os.path.abspath(json_path))
    try:
        os.makedirs(json_dir, exist_ok=True)
    except OSError as exc:
        sys.exit(f"cannot create the folder of --json {json_path!r}: {exc}")
    if not os.access(json_dir, os.W_OK):
        sys.exit(f"cannot write --json {json_path!r}: folder {json_dir!r} is not writable")

    def log(msg):
        print(f"[{time.time() - started:7.1f}s] {msg}", file=sys.stderr, flush=True)

    for var in OPENBLAS_TUNING_VARS:
        if var in os.environ:
            notes.append(f"{var}={os.environ[var]} is set on this machine: kept for denseprop, "
                         "unset for peer processes.")

    # Which systems can be imported at all?
    available = []
    skipped = {}
    for s in systems:
        r = run_worker({"kind": "probe", "system": s}, worker_env(s, 1), 300)
        if r.get("ok"):
            available.append(s)
        else:
            skipped[s] = r.get("error", "?")
            notes.append(f"{SYSTEMS[s][1]} skipped: {skipped[s]}")
            log(f"skip {s}: {skipped[s]}")

    with tempfile.TemporaryDirectory(prefix="denseprop-bench-") as tmp:
        data = {}
        specs = {}
        for wname in workloads:
            w = get_workload(wname, quick=args.quick)
            specs[wname] = w
            data[wname] = save_data(w, tmp)
            if "stand-in" in data[wname]["source"]:
                notes.append(f"{wname}: {data[wname]['source']}")
        log("data ready: " + ", ".join(f"{k} {v['X_shape']}" for k, v in data.items()))

        runs: dict[str, list] = {}
        gemm_runs: dict[str, list] = {}
        for rep in range(repeats):
            for t in threads_list:
                if not args.no_gemm:
                    job = {"kind": "gemm", "threads": t, "workloads": workloads,
                           "peak_n": args.peak_n, "quick": args.quick}
                    r = run_worker(job, worker_env("denseprop-cpp", t), args.timeout)
                    gemm_runs.setdefault(str(t), []).append(r)
                    log(f"rep {rep + 1} thr {t} gemm: "
                        + (f"peak {r['peak_gflops']:.1f} GFLOP/s via {r['gemm']}" if r.get("ok")
                           else r.get("error", "?")))
                for wname in workloads:
                    w = specs[wname]
                    # rotate the system order between repeats
                    order = available[rep % max(1, len(available)):] + available[:rep % max(1, len(available))]
                    for s in order:
                        if (wname, s) in HEAVY_CELLS and not args.heavy:
                            continue
                        job = {"kind": "train", "system": s, "workload": wname, "rows": w.rows,
                               "epochs": w.epochs, "threads": t,
                               "X": data[wname]["X"], "y": data[wname]["y"]}
                        r = run_worker(job, worker_env(s, t), args.timeout)
                        r["repeat"] = rep
                        runs.setdefault(f"{wname}/{t}/{s}", []).append(r)
                        if r.get("ok"):
                            log(f"rep {rep + 1} thr {t} {wname:8s} {s:16s} "
                                f"{r['samples_per_s']:12.0f} samples/s  loss {r['final_loss']:.5g}  "
                                f"fit {r['fit_s']:.2f}s  cpu {r['cpu_util']:.2f}")
                        else:
                            log(f"rep {rep + 1} thr {t} {wname} {s} FAILED: {r.get('error')}")

    results = {k: aggregate(v) for k, v in runs.items()}
    for s, err in skipped.items():
        for wname in workloads:
            for t in threads_list:
                results[f"{wname}/{t}/{s}"] = {"ok": False, "error": err}
    gemm = {}
    for t, rs in gemm_runs.items():
        good = [r for r in rs if r.get("ok")]
        if not good:
            gemm[t] = {"ok": False, "error": rs[0].get("error")}
            continue
        gemm[t] = {
            "ok": True,
            "gemm": good[0]["gemm"],
            # The limit and the peak are ceilings: take the best repeat.
            "peak_gflops": max(r["peak_gflops"] for r in good),
            "workloads": {
                wname: min((r["workloads"][wname] for r in good), key=lambda g: g["step_gemm_s"])
                for wname in workloads
            },
        }
        for g in gemm[t]["workloads"].values():
            g["fraction_of_peak"] = g["step_gflops"] / gemm[t]["peak_gflops"]
        if "FALLBACK" in good[0]["gemm"]:
            notes.append(f"GEMM limit at {t} thread(s) measured with {good[0]['gemm']}")
    left_out = sorted(f"{s} on {w}" for w, s in HEAVY_CELLS
                      if w in workloads and s in available and not args.heavy)
    if left_out:
        notes.append("Not run (slow; add --heavy): " + ", ".join(left_out) + ".")
    for s in systems:
        if s.startswith("sklearn"):
            notes.append("sklearn uses its own init and identity output; its loss is loss_curve_ x n_outputs.")
            break
    notes.append("Final loss flagged ⚠ when more than 5% away from "
                 f"{SYSTEMS[REFERENCE][1]} at the same thread count.")

    summary = summarise(results, gemm, workloads, threads_list, systems)
    notes.extend(blas_notes(results))
    notes.extend(load_note(runs))
    report = {
        "config": {"workloads": workloads, "systems": systems, "threads": threads_list,
                   "repeats": repeats, "quick": args.quick, "peak_n": args.peak_n, "dtype": args.dtype},
        "machine": {"platform": platform.platform(), "python": sys.version.split()[0],
                    "cpus": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)),
                    "openblas_env": {v: os.environ.get(v) for v in OPENBLAS_TUNING_VARS}},
        "started": datetime.datetime.fromtimestamp(started).isoformat(timespec="seconds"),
        "elapsed_s": time.time() - started,
        "workloads": {k: {**specs[k].to_dict(), "data_source": data[k]["source"],
                          "flops_per_step": specs[k].flops_per_step()} for k in workloads},
        "results": results,
        "gemm": gemm,
        "summary": summary,
        "notes": notes,
        "raw_runs": runs,
        "raw_gemm_runs": gemm_runs,
    }
    text = markdown(report)
    print(text)
    path = json_path
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    log(f"wrote {path} (total {time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
