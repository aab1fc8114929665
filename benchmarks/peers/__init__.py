"""One module per benchmarked system.

Every module exposes ``make(system, workload, X, y, threads) -> Runner`` where the runner
has ``fit() -> list[float]`` (per-epoch mean training loss, run once and timed by
the worker), ``predict(X) -> np.ndarray`` and a ``notes`` dict.  Per-epoch loss
is the sample-weighted mean of the batch losses seen during the epoch, i.e.
``1/(2N) * sum over rows and outputs of (yhat - y)**2`` with each batch's
``yhat`` taken before that batch's update.

Thread counts are fixed by the worker through the environment before any
import (OMP/OPENBLAS/MKL_NUM_THREADS, XLA_FLAGS) and again by each module with
the system's own API.
"""

# system name -> (module, human-readable label)
SYSTEMS = {
    "denseprop-cpp": ("denseprop_sys", "denseprop (cpp)"),
    "denseprop-numpy": ("denseprop_sys", "denseprop (numpy)"),
    "torch": ("torch_sys", "PyTorch eager"),
    "jax-step": ("jax_sys", "JAX jit step"),
    "jax-scan": ("jax_sys", "JAX jit epoch scan"),
    "sklearn": ("sklearn_sys", "sklearn MLPRegressor"),
    "numpy": ("numpy_sys", "NumPy loop"),
}

DENSEPROP = ("denseprop-cpp", "denseprop-numpy")
REFERENCE = "denseprop-numpy"
