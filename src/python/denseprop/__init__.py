"""denseprop: fast dense neural network (MLP) training on the CPU.

    import denseprop as dp
    net = dp.Network([8, 64, 64, 1], seed=0)
    history = net.fit(X, y, epochs=10, batch_size=32, lr=0.01)
    net.predict(X)

The hot loop (dense layers, activations, losses, optimizer steps and the whole epoch) runs
in C++ (``backend="cpp"``); ``backend="numpy"`` runs the NumPy reference it is tested against.
"""

__version__ = "0.1.0"

# The extension links against the scipy-openblas32 wheel's library; importing the package
# first loads it, which also makes editable installs work.
import scipy_openblas32 as _scipy_openblas32  # noqa: F401

from . import _core, reference  # noqa: E402
from ._history import DivergenceError, History  # noqa: E402
from ._inspect import check_gradients  # noqa: E402
from ._network import Network  # noqa: E402
from .optimizers import (  # noqa: E402
    SGD,
    Adam,
    Constant,
    EarlyStopping,
    InverseScaling,
    ReduceOnPlateau,
    StepDecay,
)


def set_num_threads(n: int) -> None:
    """Sets the number of threads of denseprop's BLAS (OpenBLAS) for large matrix products.

    denseprop's elementwise kernels are single-threaded; NumPy's own OpenBLAS is separate
    (limit it with ``threadpoolctl.threadpool_limits(n, user_api="blas")``, which sets both).
    """
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """The number of threads of denseprop's BLAS."""
    return _core.get_num_threads()


__all__ = [
    "Network", "History", "DivergenceError", "SGD", "Adam", "Constant", "InverseScaling",
    "StepDecay", "ReduceOnPlateau", "EarlyStopping", "set_num_threads", "get_num_threads",
    "reference", "check_gradients", "__version__",
]
