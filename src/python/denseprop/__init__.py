"""denseprop: fast dense neural network (MLP) training on the CPU.

    import denseprop as dp
    net = dp.Network([8, 64, 64, 1], seed=0)
    history = net.fit(X, y, epochs=10, batch_size=32, lr=0.01)
    net.predict(X)

The hot loop (dense layers, activations, losses, optimizer steps and the whole epoch) runs
in C++ (``backend="cpp"``); ``backend="numpy"`` runs the NumPy reference it is tested against.
"""

__version__ = "0.1.0"

import os
import warnings

# The extension links against the scipy-openblas32 wheel's library; importing the package
# first loads it, which also makes editable installs work.
import scipy_openblas32 as _scipy_openblas32  # noqa: F401

from . import _checks, _core, reference  # noqa: E402
from ._history import DivergenceError, History  # noqa: E402
from ._inspect import check_gradients  # noqa: E402
from ._network import Network  # noqa: E402
from .optimizers import (  # noqa: E402
    SGD,
    Adam,
    AdamW,
    Constant,
    EarlyStopping,
    InverseScaling,
    ReduceOnPlateau,
    StepDecay,
)


def set_num_threads(n: int) -> None:
    """Sets how many threads denseprop uses: OpenBLAS's, for large matrix products, and
    denseprop's own, which share a training step's products or predict's rows.

    A count above the cores this process may use (``os.sched_getaffinity``) is capped at them,
    with a warning. NumPy's own OpenBLAS is separate: ``threadpoolctl.threadpool_limits(n,
    user_api="blas")`` limits both.
    """
    n = _checks.integer(n, "n", 1)
    usable = _usable_cores()
    if n > usable:
        warnings.warn(f"set_num_threads({n}): this process may use {usable} cores; using {usable} threads",
                      RuntimeWarning, stacklevel=2)
        n = usable
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """How many threads denseprop uses (see ``set_num_threads``); it starts from the process's
    limits (``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``, else the usable cores) and follows
    ``threadpoolctl`` limits."""
    return _core.get_num_threads()


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


__all__ = [
    "Network", "History", "DivergenceError", "SGD", "Adam", "AdamW", "Constant", "InverseScaling",
    "StepDecay", "ReduceOnPlateau", "EarlyStopping", "set_num_threads", "get_num_threads",
    "reference", "check_gradients", "__version__",
]
