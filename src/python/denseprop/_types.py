"""The names the public API takes, as Literal types for type checkers and IDEs. The tests keep
each equal to the name list of the backends' tables (denseprop._checks)."""

from __future__ import annotations

from typing import Any, Literal, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

HiddenActivation = Literal["identity", "relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh", "softplus", "silu"]
OutputActivation = Literal["identity", "relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh", "softplus", "silu",
                           "softmax"]
LossName = Literal["mse", "cross_entropy", "mae", "huber"]
InitName = Literal["he", "glorot"]
BackendName = Literal["cpp", "numpy"]
DTypeName = Literal["float32", "float64"]
# A network's dtype: a name, or the NumPy dtype itself (np.float32, np.dtype("float64"), ...).
DTypeLike = Union[DTypeName, type[np.float32], type[np.float64], "np.dtype[Any]"]
# The arrays a network returns: float32 or float64, as the network's dtype.
FloatArray = NDArray[np.floating[Any]]

__all__ = ["HiddenActivation", "OutputActivation", "LossName", "InitName", "BackendName", "DTypeName",
           "DTypeLike", "FloatArray", "ArrayLike"]
