"""The one argument checker: every rule about what an argument may be is written here once.

``Network``, the optimizers and schedules (and the scikit-learn estimators) call these
functions; the backends (``_core`` and ``reference``) take arguments that passed them. ``_core``
checks only what keeps memory safe (dtypes, layouts, shapes, overlaps, index ranges), so a call
that bypasses this module can get a wrong answer but never a crash.

The name lists come from the backends' tables of activations, losses and optimizers (the rows
of ``src/cpp/activations.hpp``, ``losses.hpp`` and ``optimizers.hpp``); the tests keep them
equal to ``reference``'s.
"""

from __future__ import annotations

import math

import numpy as np

from . import _core
from ._tuning import FINITE_CHUNK

ACTIVATIONS: tuple[str, ...] = tuple(_core.ACTIVATIONS)
# Softmax couples the outputs of a row: it is for the output layer only.
HIDDEN_ACTIVATIONS: tuple[str, ...] = tuple(a for a in ACTIVATIONS if a != "softmax")
LOSSES: tuple[str, ...] = tuple(_core.LOSSES)
BACKENDS = ("cpp", "numpy")
DTYPES = ("float32", "float64")
INITS = ("he", "glorot")
INT_MAX = 2**31 - 1  # the 32-bit BLAS's limit on any dimension, batch_size included


# --------------------------------------------------------------------------------------
# Scalars and names

def choice(value, name, choices):
    """value, a str among choices."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, one of {', '.join(choices)}; got {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
    return value


def real(value, name, low=None, high=None, low_open=False, high_open=True):
    """value as a finite float in the range given (bools are not numbers here)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    try:
        value = float(value)
    except OverflowError:
        raise ValueError(f"{name} must be a finite number, got {value}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value}")
    return value


def integer(value, name, low, high=None):
    """value as an int in [low, high] (bools are not numbers here)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be at most {high}, got {value}")
    return int(value)


def boolean(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


def batch_size(value):
    return integer(value, "batch_size", 1, INT_MAX)


def dtype(value):
    """A NumPy float dtype from 'float32', 'float64' or any spelling NumPy accepts of those."""
    if isinstance(value, str):
        choice(value, "dtype", DTYPES)
    try:
        dt = np.dtype(value)
    except TypeError:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {value!r}") from None
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dt}")
    return dt


# --------------------------------------------------------------------------------------
# A network's shape

def layers(value):
    """Widths [n_in, h1, ..., n_out] as a list of ints."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise TypeError(f"layers must be a list of ints such as [4, 16, 1], got {type(value).__name__}")
    value = list(value)
    if len(value) < 2:
        raise ValueError(f"layers needs at least an input and an output width, got {value}")
    for w in value:
        if isinstance(w, (bool, np.bool_)) or not isinstance(w, (int, np.integer)):
            raise TypeError(f"layers must hold ints, got {w!r} in {value}")
        if not 1 <= w <= INT_MAX:
            raise ValueError(f"every layer width must be in [1, {INT_MAX}], got {w} in {value}")
    return [int(w) for w in value]


def hidden_activations(value, n_hidden):
    """One hidden activation name per hidden layer, from one name or a list of them."""
    if isinstance(value, (list, tuple)):
        if len(value) != n_hidden:
            raise ValueError(f"activation lists one name per hidden layer: expected {n_hidden}, got {len(value)}")
        return [choice(a, "activation", HIDDEN_ACTIVATIONS) for a in value]
    return [choice(value, "activation", HIDDEN_ACTIVATIONS)] * n_hidden


def output(loss, out_act, n_out):
    """The loss suits the output layer: cross-entropy is computed from softmax or sigmoid logits."""
    if loss == "cross_entropy" and out_act not in ("softmax", "sigmoid"):
        raise ValueError("loss='cross_entropy' needs output_activation='softmax' (classes) or "
                         f"'sigmoid' (binary/multi-label), got {out_act!r}")
    if out_act == "softmax" and loss != "cross_entropy":
        raise ValueError("output_activation='softmax' needs loss='cross_entropy'")
    if out_act == "softmax" and n_out < 2:
        raise ValueError("a softmax output needs at least 2 outputs; use 'sigmoid' for one")


# --------------------------------------------------------------------------------------
# Data

def as_numeric(x, name):
    """x as an ndarray of a bool, integer or float dtype (no copy when it already is one)."""
    if isinstance(x, np.ndarray):
        arr = x
    elif _is_sparse(x):
        raise TypeError(f"{name} is a scipy.sparse matrix; denseprop takes dense arrays: pass {name}.toarray()")
    else:
        arr = _from_pandas(x, name)
        if arr is None:
            try:
                arr = np.asarray(x)
            except (ValueError, TypeError) as err:
                raise TypeError(f"{name} must be an array-like of numbers: {err}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(_not_numbers(arr, name))
    return arr


def _is_sparse(x):
    return type(x).__module__.startswith("scipy.sparse") and hasattr(x, "toarray")


def _from_pandas(x, name):
    """A pandas Series or DataFrame as a NumPy array (nullable numbers with NaN where values are
    missing); None for anything else. pandas is never imported here."""
    if not type(x).__module__.startswith("pandas"):
        return None
    dtypes = [x.dtype] if hasattr(x, "dtype") else list(getattr(x, "dtypes", []))
    if any(str(dt) in ("category", "string", "object", "str") for dt in dtypes):
        return np.asarray(x, dtype=object)  # refused by the caller, with the message for labels
    if any(getattr(dt, "kind", "O") in "biuf" and type(dt).__module__.startswith("pandas") for dt in dtypes):
        return x.to_numpy(dtype=np.float64, na_value=np.nan)  # nullable Float64, Int64, boolean
    return x.to_numpy()


def _not_numbers(arr, name):
    if arr.dtype.kind in "OUS":
        return (f"{name} holds text or objects (dtype {arr.dtype}), not numbers: string or categorical labels "
                f"need an encoder; denseprop.sklearn's DenseClassifier takes any labels, or encode them with "
                f"sklearn.preprocessing.LabelEncoder (inputs: OneHotEncoder)")
    return f"{name} has dtype {arr.dtype}; expected numbers (bool, integer or float)"


def contiguous(arr, dt):
    """arr as a C-contiguous, aligned, native array of dtype dt; the array itself when it is one."""
    with np.errstate(over="ignore"):  # values beyond the dtype become inf, reported by finite()
        return np.require(arr, dtype=dt, requirements=["C_CONTIGUOUS", "ALIGNED"])


def non_finite(name, dt):
    """The error for NaN or inf in an input."""
    return ValueError(f"{name} contains NaN or inf (after conversion to {np.dtype(dt).name}; missing values "
                      f"become NaN); remove or impute those values")


def finite(arr, name):
    """Raises non_finite() if arr holds NaN or inf; works in chunks, so no n-sized temporary."""
    flat = arr.reshape(-1)
    for s in range(0, flat.size, FINITE_CHUNK):
        if not np.isfinite(flat[s:s + FINITE_CHUNK]).all():
            raise non_finite(name, arr.dtype)


def features(X, n_in, dt, name="X", check_finite=True):
    """X as a C-contiguous (n, n_in) array of dtype dt with n >= 1, finite unless the caller
    leaves that to the backend. No copy when X already is one."""
    arr = as_numeric(X, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, {n_in}), got shape {arr.shape}")
    if arr.shape[1] != n_in:
        raise ValueError(f"{name} has {arr.shape[1]} features but the network expects {n_in}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 rows); pass at least one sample")
    arr = contiguous(arr, dt)
    if check_finite:
        finite(arr, name)
    return arr


def targets(y, n, n_out, loss, out_act, dt, name="y"):
    """Targets as (n, n_out) of dtype dt; integer class labels become one-hot rows."""
    arr = as_numeric(y, name)
    classify = loss == "cross_entropy"
    labels = classify and out_act == "softmax"
    if arr.ndim == 1 and labels:
        return _one_hot(arr, n, n_out, dt, name)
    if labels and arr.ndim == 2 and arr.shape[1] == 1 and n_out > 1:
        raise ValueError(f"{name} has shape {arr.shape}: pass class labels 1-D, as {name}.ravel() (2-D targets of "
                         f"a softmax output are one-hot or soft rows of {n_out} columns)")
    if arr.ndim == 1:
        if n_out != 1:
            raise ValueError(f"{name} is 1-D but the network has {n_out} outputs; pass shape ({n}, {n_out})" +
                             (": one 0/1 column per sigmoid output" if classify else ""))
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, {n_out}) or 1-D, got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} rows but X has {n}")
    if arr.shape[1] != n_out:
        raise ValueError(f"{name} has {arr.shape[1]} outputs but the network has {n_out}")
    arr = contiguous(arr, dt)
    finite(arr, name)
    if classify and (arr.min() < 0 or arr.max() > 1):
        raise ValueError(f"{name}: cross-entropy targets must lie in [0, 1] (one-hot, soft or 0/1 "
                         f"labels), got values from {arr.min()} to {arr.max()}")
    return arr


def _one_hot(labels, n, n_out, dt, name):
    if labels.dtype.kind not in "iu":
        raise ValueError(f"{name}: 1-D class labels must be integers in [0, {n_out}), got dtype "
                         f"{labels.dtype}; pass one-hot rows as a 2-D array instead")
    if labels.shape[0] != n:
        raise ValueError(f"{name} has {labels.shape[0]} rows but X has {n}")
    if labels.size and (labels.min() < 0 or labels.max() >= n_out):
        raise ValueError(f"{name}: class labels must be in [0, {n_out}), got values from "
                         f"{labels.min()} to {labels.max()}")
    onehot = np.zeros((n, n_out), dtype=dt)
    onehot[np.arange(n), labels] = 1
    return onehot


def sample_weights(w, n, dt):
    """Sample weights as (n,) of dtype dt, finite and non-negative; None stays None."""
    if w is None:
        return None
    arr = as_numeric(w, "sample_weight")
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"sample_weight must be 1-D with one weight per row ({n}), got shape {arr.shape}")
    arr = contiguous(arr, dt)
    finite(arr, "sample_weight")
    if (arr < 0).any():
        raise ValueError("sample_weight must be non-negative")
    return arr


# --------------------------------------------------------------------------------------
# Memory

def ensure_memory(nbytes, what, fix):
    """MemoryError up front when nbytes cannot fit (the backend's guard, shared)."""
    _core.ensure_memory(float(nbytes), what, fix)
