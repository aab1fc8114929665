"""The Network class: layers, parameters and the epoch loop around a backend."""

from __future__ import annotations

import math
import threading
import time

import numpy as np

from . import _core, _inspect, reference
from ._history import DivergenceError, History
from .optimizers import SGD, Adam, EarlyStopping, Optimizer, _float, _int

BACKENDS = {"cpp": _core, "numpy": reference}
ACTIVATIONS = tuple(reference.ACTIVATIONS)
HIDDEN_ACTIVATIONS = tuple(a for a in ACTIVATIONS if a != "softmax")
LOSSES = reference.LOSSES
DTYPES = {"float32": np.float32, "float64": np.float64}
INITS = ("he", "glorot")
_INT_MAX = 2**31 - 1
_FINITE_CHUNK = 1 << 20


def _choice(value, name, choices):
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, one of {', '.join(choices)}; got {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
    return value


def _check_finite(a, name):
    """Raises ValueError if a holds NaN or inf; works in chunks, so no n-sized temporary."""
    flat = a.reshape(-1)
    for s in range(0, flat.size, _FINITE_CHUNK):
        if not np.isfinite(flat[s:s + _FINITE_CHUNK]).all():
            raise ValueError(f"{name} contains NaN or inf (after conversion to {a.dtype}); "
                             f"remove or impute those values")


def _ensure_memory(nbytes, what, fix):
    """MemoryError up front when nbytes cannot fit: under Linux overcommit a large allocation
    can succeed and the process still be killed when the memory is first touched."""
    if nbytes < 256 * 2**20:
        return
    available = _core.available_memory()
    if 0 <= available < nbytes:
        raise MemoryError(f"{what} needs about {nbytes / 2**20:,.0f} MiB but only "
                          f"{available / 2**20:,.0f} MiB of memory is available; {fix}")


def _contiguous(arr, dtype):
    """arr as a C-contiguous, aligned, native array of dtype; the array itself when it is one."""
    with np.errstate(over="ignore"):  # values beyond the dtype become inf, reported next
        return np.require(arr, dtype=dtype, requirements=["C_CONTIGUOUS", "ALIGNED"])


def _as_numeric(x, name):
    """x as an ndarray of a bool, integer or float dtype (no copy when it already is one)."""
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError) as err:
            raise TypeError(f"{name} must be an array-like of numbers: {err}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} has dtype {arr.dtype}; expected numbers (bool, integer or float)")
    return arr


class Network:
    """A dense feed-forward network (multi-layer perceptron).

    Parameters
    ----------
    layers : list of int
        Widths ``[n_in, h1, ..., n_out]``, at least two positive integers.
    activation : str or list of str
        Hidden activation, one for all hidden layers or one per hidden layer:
        relu, leaky_relu, elu, gelu, sigmoid, tanh, softplus, identity.
    output_activation : str
        Activation of the output layer (the above, or softmax with cross_entropy).
    loss : str
        ``mse`` (``1/(2B) sum (yhat - y)^2``), ``cross_entropy`` (softmax or sigmoid
        output), ``mae`` or ``huber``: a mean over the batch, a sum over outputs.
    dtype : "float32" or "float64"
    seed : int or None
        Seeds the network's own ``numpy.random.default_rng``, which draws the initial
        weights and one 64-bit seed per epoch for the shuffle (``shuffled_order``), so a
        seed gives the same training on both backends.
    backend : "cpp" or "numpy"
        The C++ kernels or the NumPy reference; they agree to rounding.
    init : "he", "glorot" or (weights, biases)
        He: ``randn(fan_in, fan_out) * sqrt(2 / fan_in)``; Glorot: uniform with bound
        ``sqrt(6 / (fan_in + fan_out))``; or user-supplied lists of arrays.
    bias_init : float
        The initial value of every bias (0.1) unless init supplies biases.

    Attributes ``weights`` (list of ``(fan_in, fan_out)`` arrays) and ``biases`` (list of
    ``(fan_out,)`` arrays) are the live parameters: writing into them changes the network
    and training updates them in place.
    """

    def __init__(self, layers, activation="relu", output_activation="identity", loss="mse",
                 dtype="float32", seed=None, backend="cpp", init="he", bias_init=0.1):
        self.layers = self._check_layers(layers)
        n_hidden = len(self.layers) - 2
        if isinstance(activation, (list, tuple)):
            if len(activation) != n_hidden:
                raise ValueError(f"activation lists one name per hidden layer: expected {n_hidden}, "
                                 f"got {len(activation)}")
            hidden = [_choice(a, "activation", HIDDEN_ACTIVATIONS) for a in activation]
        else:
            hidden = [_choice(activation, "activation", HIDDEN_ACTIVATIONS)] * n_hidden
        self.activation = list(activation) if isinstance(activation, (list, tuple)) else activation
        self.output_activation = _choice(output_activation, "output_activation", ACTIVATIONS)
        self.loss = _choice(loss, "loss", LOSSES)
        self._check_output(self.loss, self.output_activation, self.layers[-1])
        self.activations = hidden + [self.output_activation]
        if isinstance(dtype, str):
            _choice(dtype, "dtype", tuple(DTYPES))
        try:
            self.dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from None
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype}")
        if seed is not None:
            seed = _int(seed, "seed", 0)
        self.seed = seed
        self.backend = backend
        bias_init = _float(bias_init, "bias_init")
        with np.errstate(over="ignore"):
            fits = np.isfinite(self.dtype.type(bias_init))
        if not fits:
            raise ValueError(f"bias_init={bias_init} does not fit in {self.dtype.name}")
        self._rng = np.random.default_rng(seed)
        self.init = init if isinstance(init, str) else "user"
        self.weights, self.biases = self._initial_parameters(init, bias_init)
        self.optimizer: Optimizer = SGD(lr=0.01)
        self._lock = threading.Lock()
        self._busy = None  # what the network is doing, while fit runs

    # ---------------------------------------------------------------- construction

    @staticmethod
    def _check_layers(layers):
        if isinstance(layers, (str, bytes)) or not hasattr(layers, "__len__"):
            raise TypeError(f"layers must be a list of ints such as [4, 16, 1], got {type(layers).__name__}")
        layers = list(layers)
        if len(layers) < 2:
            raise ValueError(f"layers needs at least an input and an output width, got {layers}")
        for w in layers:
            if isinstance(w, (bool, np.bool_)) or not isinstance(w, (int, np.integer)):
                raise TypeError(f"layers must hold ints, got {w!r} in {layers}")
            if not 1 <= w <= _INT_MAX:
                raise ValueError(f"every layer width must be in [1, {_INT_MAX}], got {w} in {layers}")
        return [int(w) for w in layers]

    @staticmethod
    def _check_output(loss, out_act, n_out):
        if loss == "cross_entropy" and out_act not in ("softmax", "sigmoid"):
            raise ValueError("loss='cross_entropy' needs output_activation='softmax' (classes) or "
                             f"'sigmoid' (binary/multi-label), got {out_act!r}")
        if out_act == "softmax" and loss != "cross_entropy":
            raise ValueError("output_activation='softmax' needs loss='cross_entropy'")
        if out_act == "softmax" and n_out < 2:
            raise ValueError("a softmax output needs at least 2 outputs; use 'sigmoid' for one")

    def _initial_parameters(self, init, bias_init):
        pairs = list(zip(self.layers[:-1], self.layers[1:]))
        n_params = sum(fi * fo + fo for fi, fo in pairs)
        largest = max(fi * fo for fi, fo in pairs)
        # The parameters, plus the float64 draw of the largest layer before it is cast.
        _ensure_memory(n_params * self.dtype.itemsize + 8 * largest, f"a network with layers {self.layers}",
                       "use narrower layers")
        if isinstance(init, str):
            _choice(init, "init", INITS)
            weights = []
            for fan_in, fan_out in pairs:
                if init == "he":
                    w = self._rng.standard_normal((fan_in, fan_out)) * math.sqrt(2.0 / fan_in)
                else:
                    bound = math.sqrt(6.0 / (fan_in + fan_out))
                    w = self._rng.uniform(-bound, bound, (fan_in, fan_out))
                weights.append(np.ascontiguousarray(w, dtype=self.dtype))
            biases = [np.full(fan_out, bias_init, dtype=self.dtype) for _, fan_out in pairs]
            return weights, biases
        if isinstance(init, dict):
            w_in, b_in = init.get("weights"), init.get("biases")
        elif isinstance(init, (list, tuple)) and len(init) == 2:
            w_in, b_in = init
        else:
            raise TypeError("init must be 'he', 'glorot', (weights, biases) or "
                            "{'weights': [...], 'biases': [...]}")
        if not isinstance(w_in, (list, tuple)) or len(w_in) != len(pairs):
            raise ValueError(f"init needs {len(pairs)} weight arrays")
        if b_in is not None and (not isinstance(b_in, (list, tuple)) or len(b_in) != len(pairs)):
            raise ValueError(f"init needs {len(pairs)} bias arrays (or None for bias_init)")
        weights, biases = [], []
        for l, (fan_in, fan_out) in enumerate(pairs):
            w = np.array(_as_numeric(w_in[l], f"init weights[{l}]"), dtype=self.dtype, order="C")
            if w.shape != (fan_in, fan_out):
                raise ValueError(f"init weights[{l}] must have shape ({fan_in}, {fan_out}), got {w.shape}")
            _check_finite(w, f"init weights[{l}]")
            if b_in is None:
                b = np.full(fan_out, bias_init, dtype=self.dtype)
            else:
                b = np.array(_as_numeric(b_in[l], f"init biases[{l}]"), dtype=self.dtype, order="C")
                if b.shape != (fan_out,):
                    raise ValueError(f"init biases[{l}] must have shape ({fan_out},), got {b.shape}")
                _check_finite(b, f"init biases[{l}]")
            weights.append(w)
            biases.append(b)
        return weights, biases

    # ---------------------------------------------------------------- properties

    @property
    def backend(self):
        """'cpp' or 'numpy'; may be switched at any time."""
        return self._backend_name

    @backend.setter
    def backend(self, name):
        self._backend_name = _choice(name, "backend", tuple(BACKENDS))
        self._backend = BACKENDS[name]

    @property
    def n_in(self):
        return self.layers[0]

    @property
    def n_out(self):
        return self.layers[-1]

    def _params(self):
        """The flat [W0, b0, W1, b1, ...] list the backends take, checked against the layout."""
        params = []
        for l, (w, b) in enumerate(zip(self.weights, self.biases)):
            for arr, name, shape in ((w, f"weights[{l}]", (self.layers[l], self.layers[l + 1])),
                                     (b, f"biases[{l}]", (self.layers[l + 1],))):
                if not isinstance(arr, np.ndarray) or arr.dtype != self.dtype or arr.shape != shape \
                        or not arr.flags.c_contiguous or not arr.flags.writeable:
                    raise ValueError(f"net.{name} was replaced by something other than a writable "
                                     f"C-contiguous {self.dtype} array of shape {shape}; "
                                     f"write into it instead (net.{name}[...] = values)")
                params.append(arr)
        if len(params) != 2 * (len(self.layers) - 1):
            raise ValueError("net.weights and net.biases must each hold one array per layer")
        return params

    def __repr__(self):
        return (f"Network({self.layers}, activation={self.activation!r}, "
                f"output_activation={self.output_activation!r}, loss={self.loss!r}, "
                f"dtype={self.dtype.name!r}, backend={self.backend!r})")

    # ---------------------------------------------------------------- data conversion

    def _X(self, X, name="X", check_finite=True):
        """X as a C-contiguous array of the network's dtype, (n, n_in), finite (unless the
        caller leaves that to the backend), n >= 1. No copy when X already is one."""
        arr = _as_numeric(X, name)
        if arr.ndim != 2:
            raise ValueError(f"{name} must be 2-D (n_samples, {self.n_in}), got shape {arr.shape}")
        if arr.shape[1] != self.n_in:
            raise ValueError(f"{name} has {arr.shape[1]} features but the network expects {self.n_in}")
        if arr.shape[0] == 0:
            raise ValueError(f"{name} is empty (0 rows); pass at least one sample")
        arr = _contiguous(arr, self.dtype)
        if check_finite:
            _check_finite(arr, name)
        return arr

    def _Y(self, y, n, name="y"):
        """Targets as (n, n_out) in the network's dtype; class labels become one-hot rows."""
        arr = _as_numeric(y, name)
        n_out = self.n_out
        classify = self.loss == "cross_entropy"
        if arr.ndim == 1 and classify and self.output_activation == "softmax":
            if arr.dtype.kind not in "iu":
                raise ValueError(f"{name}: 1-D class labels must be integers in [0, {n_out}), got dtype "
                                 f"{arr.dtype}; pass one-hot rows as a 2-D array instead")
            if arr.shape[0] != n:
                raise ValueError(f"{name} has {arr.shape[0]} rows but X has {n}")
            if arr.size and (arr.min() < 0 or arr.max() >= n_out):
                raise ValueError(f"{name}: class labels must be in [0, {n_out}), got values from "
                                 f"{arr.min()} to {arr.max()}")
            onehot = np.zeros((n, n_out), dtype=self.dtype)
            onehot[np.arange(n), arr] = 1
            return onehot
        if arr.ndim == 1:
            if n_out != 1:
                raise ValueError(f"{name} is 1-D but the network has {n_out} outputs; pass shape "
                                 f"({n}, {n_out})" + (" or integer class labels" if classify else ""))
            arr = arr.reshape(-1, 1)
        if arr.ndim != 2:
            raise ValueError(f"{name} must be 2-D (n_samples, {n_out}) or 1-D, got shape {arr.shape}")
        if arr.shape[0] != n:
            raise ValueError(f"{name} has {arr.shape[0]} rows but X has {n}")
        if arr.shape[1] != n_out:
            raise ValueError(f"{name} has {arr.shape[1]} outputs but the network has {n_out}")
        arr = _contiguous(arr, self.dtype)
        _check_finite(arr, name)
        if classify and (arr.min() < 0 or arr.max() > 1):
            raise ValueError(f"{name}: cross-entropy targets must lie in [0, 1] (one-hot, soft or 0/1 "
                             f"labels), got values from {arr.min()} to {arr.max()}")
        return arr

    def _weights(self, w, n):
        if w is None:
            return None
        arr = _as_numeric(w, "sample_weight")
        if arr.ndim != 1 or arr.shape[0] != n:
            raise ValueError(f"sample_weight must be 1-D with one weight per row ({n}), got shape {arr.shape}")
        arr = _contiguous(arr, self.dtype)
        _check_finite(arr, "sample_weight")
        if (arr < 0).any():
            raise ValueError("sample_weight must be non-negative")
        return arr

    # ---------------------------------------------------------------- concurrency

    def _claim(self, what):
        with self._lock:
            if self._busy is not None:
                raise RuntimeError(f"cannot {what}: this network is running {self._busy} in another "
                                   f"thread; wait for it to finish or use a copy")
            self._busy = what

    def _release(self):
        with self._lock:
            self._busy = None

    def _check_idle(self, what):
        if self._busy is not None:
            raise RuntimeError(f"cannot {what}: this network is running {self._busy} in another thread")

    # ---------------------------------------------------------------- inference

    def predict(self, X):
        """The output layer for X (n, n_in): an (n, n_out) array of the network's dtype.

        Probabilities for softmax and sigmoid outputs. Works through X in chunks, so the
        memory used beyond the result is bounded.
        """
        self._check_idle("predict")
        X = self._X(X, check_finite=False)  # the backend checks it chunk by chunk inside its pass
        out = np.empty((X.shape[0], self.n_out), dtype=self.dtype)
        self._backend.forward(X, self._params(), self.activations, out, True)
        return out

    forward = predict

    def predict_proba(self, X):
        """Class probabilities (n, n_out); for cross-entropy networks only."""
        if self.loss != "cross_entropy":
            raise ValueError(f"predict_proba needs loss='cross_entropy', this network uses {self.loss!r}")
        return self.predict(X)

    def predict_classes(self, X):
        """Predicted classes as int64: (n,) argmax for softmax; 0/1 per output for sigmoid,
        (n, n_out), or (n,) when n_out == 1."""
        if self.loss != "cross_entropy":
            raise ValueError(f"predict_classes needs loss='cross_entropy', this network uses {self.loss!r}")
        p = self.predict(X)
        if self.output_activation == "softmax":
            return p.argmax(axis=1).astype(np.int64)
        classes = (p > 0.5).astype(np.int64)
        return classes[:, 0] if self.n_out == 1 else classes

    def _metrics(self, X, Y, w):
        metrics = np.zeros(2 + self.n_out)
        self._backend.evaluate(X, Y, self._params(), self.activations, self.loss, w, metrics)
        return metrics

    def evaluate(self, X, y, sample_weight=None):
        """The loss over all of X as a float: ``(1/n) sum_i w_i loss_i``."""
        self._check_idle("evaluate")
        X = self._X(X)
        Y = self._Y(y, X.shape[0])
        w = self._weights(sample_weight, X.shape[0])
        return float(self._metrics(X, Y, w)[0] / X.shape[0])

    def score(self, X, y, sample_weight=None):
        """Accuracy for cross-entropy networks, R^2 (averaged over outputs) otherwise."""
        self._check_idle("score")
        X = self._X(X)
        Y = self._Y(y, X.shape[0])
        w = self._weights(sample_weight, X.shape[0])
        return self._score(self._metrics(X, Y, w), Y, w)

    def _score(self, metrics, Y, w, sst=None, total_w=None):
        """Accuracy or mean R^2 from evaluate's metrics; sst and total_w (the sum of the
        weights) are worked out from Y and w unless given."""
        if self.loss == "cross_entropy":
            if total_w is None:
                total_w = float(Y.shape[0] if w is None else w.sum(dtype=np.float64))
            return float(metrics[1] / total_w) if total_w > 0 else 0.0
        if sst is None:
            sst = _total_sum_of_squares(Y, w)
        if len(sst) <= 16:  # Python floats beat NumPy's per-call overhead for a few outputs
            r2 = [1.0 - e / t if t > 0 else float(e == 0) for e, t in zip(metrics[2:].tolist(), sst.tolist())]
            return sum(r2) / len(r2)
        sse = metrics[2:]
        r2 = np.where(sst > 0, 1.0 - sse / np.where(sst > 0, sst, 1.0), np.where(sse == 0, 1.0, 0.0))
        return float(r2.mean())

    def gradients(self, X, y, sample_weight=None):
        """(list of dW, list of db): gradients of ``evaluate(X, y)`` for every layer."""
        self._check_idle("compute gradients")
        X = self._X(X)
        Y = self._Y(y, X.shape[0])
        w = self._weights(sample_weight, X.shape[0])
        grads = self._backend.gradients(X, Y, self._params(), self.activations, self.loss, w)
        return grads[0::2], grads[1::2]

    def trace(self, X, y, sample_weight=None):
        """One forward and one backward pass over the rows of X, nothing updated: a Trace with
        ``loss`` (float), ``output`` (yhat, (n, n_out)), ``dloss`` (dL/dyhat, None under
        cross-entropy) and ``layers``, one per layer with ``X``, ``Z = X W + b``,
        ``H = A(Z)``, ``dH`` (dL/dH = dZ_next W_next^T), ``dZ`` (E = dL/dZ = dH * A'(Z)),
        ``dW = X^T dZ``, ``db = sum(dZ)`` (exactly what ``gradients`` returns) and
        ``activation``. Refuses (ValueError) more than 100,000 rows or 50 million numbers;
        see ``denseprop._inspect.LayerTrace`` for every shape and formula."""
        return _inspect.trace(self, X, y, sample_weight)

    def health(self, X, y=None):
        """One dict per layer (output layer included) over the rows of X: ``activation``,
        ``units``, ``dead`` (fraction of units with Z <= 0 on every row; relu-like activations),
        ``saturated`` (|Z| > 5 on every row; sigmoid, tanh), ``mean_abs_z``, ``max_abs_z``,
        and with y ``grad_norm`` (Frobenius norm of the layer's dW)."""
        return _inspect.health(self, X, y)

    # ---------------------------------------------------------------- training

    def _resolve_optimizer(self, lr, optimizer):
        if lr is not None and optimizer is not None:
            raise TypeError("pass either lr (a fresh SGD at that rate) or optimizer, not both")
        if lr is not None:
            return SGD(lr=_float(lr, "lr", 0.0, None, low_open=True))
        if optimizer is not None:
            if not isinstance(optimizer, Optimizer):
                raise TypeError(f"optimizer must be dp.SGD(...) or dp.Adam(...), got {type(optimizer).__name__}")
            return optimizer
        return self.optimizer

    def fit(self, X, y, epochs=1, batch_size=32, lr=None, optimizer=None, shuffle=True,
            sample_weight=None, validation_data=None, validation_split=0.0, early_stopping=None,
            callbacks=(), verbose=0):
        """Trains the network by mini-batch gradient descent; returns a History.

        X is (n, n_in); y is (n, n_out), 1-D when n_out == 1, or 1-D integer class labels
        for a softmax output. Inputs of any numeric dtype and layout are converted once per
        call (no copy when already C-contiguous in the network's dtype).

        Optimizer: with neither ``lr`` nor ``optimizer`` the network's current one continues,
        state and all (a new network starts with ``SGD(lr=0.01)``); ``lr`` alone starts a
        fresh ``SGD(lr)``; ``optimizer`` alone uses that one. ``validation_split=f`` holds
        out the last rows before any shuffling. ``early_stopping`` is a dp.EarlyStopping;
        each callback is called as ``f(record)`` after every epoch and stops training by
        returning True. ``verbose=1`` shows progress (tqdm when installed) and warns
        (RuntimeWarning) once per layer when more than half of its units are dead.

        On KeyboardInterrupt the network keeps the weights of the last completed step. On a
        NaN or infinite loss or weight, fit raises dp.DivergenceError and the network keeps
        the weights of the last finite epoch.
        """
        epochs = _int(epochs, "epochs", 0)
        batch_size = _int(batch_size, "batch_size", 1)
        if batch_size > _INT_MAX:
            raise ValueError(f"batch_size must be at most {_INT_MAX}, got {batch_size}")
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be a bool, got {type(shuffle).__name__}")
        opt = self._resolve_optimizer(lr, optimizer)
        if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
            raise TypeError("early_stopping must be dp.EarlyStopping(...) or None")
        callbacks = [callbacks] if callable(callbacks) else list(callbacks)
        for cb in callbacks:
            if not callable(cb):
                raise TypeError(f"callbacks must be callables f(record), got {type(cb).__name__}")
        if isinstance(verbose, bool) or not isinstance(verbose, (int, np.integer)) or verbose < 0:
            raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
        validation_split = _float(validation_split, "validation_split", 0.0, 1.0)
        if validation_data is not None and validation_split:
            raise ValueError("pass validation_data or validation_split, not both")

        X = self._X(X)
        Y = self._Y(y, X.shape[0])
        w = self._weights(sample_weight, X.shape[0])
        Xv = Yv = wv = None
        if validation_split:
            cut = int(X.shape[0] * (1.0 - validation_split))
            if cut < 1 or cut >= X.shape[0]:
                raise ValueError(f"validation_split={validation_split} leaves no rows for training or "
                                 f"validation out of {X.shape[0]}")
            X, Xv, Y, Yv = X[:cut], X[cut:], Y[:cut], Y[cut:]
            if w is not None:
                w, wv = w[:cut], w[cut:]
        elif validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise TypeError("validation_data must be (X_val, y_val) or (X_val, y_val, sample_weight)")
            Xv = self._X(validation_data[0], "validation X")
            Yv = self._Y(validation_data[1], Xv.shape[0], "validation y")
            if len(validation_data) == 3:
                wv = self._weights(validation_data[2], Xv.shape[0])
        params = self._params()
        n_params = sum(p.size for p in params)
        widths = sum(self.layers[1:])
        rows = min(batch_size, X.shape[0])
        state = opt.states_per_param() if opt._owner is not self else 0
        # Optimizer state, the per-epoch snapshot, best weights and the batch workspace.
        _ensure_memory(self.dtype.itemsize * (n_params * (state + 3) + rows * (4 * widths + self.n_in)),
                       "training", "use a smaller batch_size or narrower layers")

        self._claim("fit")
        try:
            opt._attach(self, params)
            self.optimizer = opt
            return self._train(X, Y, w, Xv, Yv, wv, epochs, batch_size, shuffle, opt,
                               early_stopping, callbacks, int(verbose))
        finally:
            self._release()

    def _train(self, X, Y, w, Xv, Yv, wv, epochs, batch_size, shuffle, opt, early_stopping,
               callbacks, verbose):
        history = History()
        n = X.shape[0]
        params = self._params()
        classify = self.loss == "cross_entropy"
        sst = None if classify else _total_sum_of_squares(Y, w)
        sst_val = None if classify or Xv is None else _total_sum_of_squares(Yv, wv)
        total_w = float(n if w is None else w.sum(dtype=np.float64))
        # The last finite epoch's parameters and optimizer state, to restore on divergence.
        saved = [np.empty_like(a) for a in params + opt.state]
        best = None
        best_loss, waited = math.inf, 0
        progress = _Progress(epochs, verbose)
        first_epoch = opt.epochs
        perm = np.empty(n, dtype=np.int64) if shuffle else None
        watch = _inspect.DeadUnitWatch(self, X, enabled=verbose > 0)
        try:
            for epoch in range(epochs):
                start = time.perf_counter()
                lr = opt.current_lr()
                for dst, src in zip(saved, params + opt.state):
                    np.copyto(dst, src)
                saved_step = opt.step
                if shuffle:  # one draw per epoch seeds the backend's own, faster shuffle
                    self._backend.shuffled_order(self._rng.integers(0, 2**64, dtype=np.uint64), perm)
                metrics = np.zeros(2 + self.n_out)
                step = np.array([opt.step], dtype=np.int64)
                try:
                    self._backend.train_epoch(X, Y, params, self.activations, self.loss, batch_size, perm, w,
                                              opt.name, opt.options(lr), opt.state, step, metrics)
                finally:  # also after Ctrl-C: the steps that completed count
                    opt.step = int(step[0])
                loss = float(metrics[0] / n)
                record = {"epoch": first_epoch + epoch, "loss": loss}
                if not math.isfinite(loss) or not all(_all_finite(p) for p in params):
                    for dst, src in zip(params + opt.state, saved):
                        np.copyto(dst, src)
                    opt.step = saved_step
                    raise DivergenceError(
                        f"training diverged in epoch {epoch} (loss {loss}): the loss or a weight became "
                        f"NaN or infinite. Lower the learning rate (it was {lr:g}), scale the inputs "
                        f"(e.g. to zero mean and unit variance) or clip extreme targets; the network "
                        f"keeps the weights of the last finite epoch.", epoch, history)
                if classify:
                    record["accuracy"] = self._score(metrics, Y, w, total_w=total_w)
                else:
                    record["r2"] = self._score(metrics, Y, w, sst)
                if Xv is not None:
                    vm = self._metrics(Xv, Yv, wv)
                    record["val_loss"] = float(vm[0] / Xv.shape[0])
                    key = "val_accuracy" if classify else "val_r2"
                    record[key] = self._score(vm, Yv, wv, sst_val)
                record["time"] = time.perf_counter() - start
                record["lr"] = lr
                history.append(record)
                progress.update(record)
                watch.epoch_end(record)  # verbose: warns of layers of mostly dead units

                monitored = record.get("val_loss", loss)
                opt.epochs += 1
                opt.schedule.step(monitored)
                stop = False
                for cb in callbacks:
                    answer = cb(dict(record))
                    if answer is True or (isinstance(answer, np.bool_) and answer):
                        stop = True
                if early_stopping is not None:
                    if monitored < best_loss - early_stopping.min_delta:
                        best_loss, waited = monitored, 0
                        history.best_epoch = record["epoch"]
                        if early_stopping.restore_best:
                            best = [p.copy() for p in params]
                    else:
                        waited += 1
                        if waited > early_stopping.patience:
                            history.stopped_early = stop = True
                if stop:
                    break
            if early_stopping is not None and early_stopping.restore_best and best is not None \
                    and history.best_epoch != history.epoch[-1]:
                for dst, src in zip(params, best):
                    np.copyto(dst, src)
        finally:
            progress.close()
        return history

    # ---------------------------------------------------------------- persistence

    def save(self, path):
        """Writes the network (parameters, optimizer and random state) to exactly ``path``
        as an .npz file, atomically: a crash mid-save leaves an earlier file intact."""
        self._check_idle("save")
        from ._io import save_network
        save_network(self, path)

    @classmethod
    def load(cls, path, backend=None):
        """Reads a network written by save; ``backend`` overrides the saved one."""
        from ._io import load_network
        return load_network(cls, path, backend)


def _all_finite(a):
    return bool(np.logical_and.reduce(np.isfinite(a), axis=None))


def _column_sums(A):
    """Float64 sums of the columns of A (n, k), without BLAS: a matrix product here would wake
    NumPy's OpenBLAS threads, which then spin beside denseprop's training for a while."""
    if A.shape[1] <= 16:  # strided 1-D sums beat numpy's axis-0 reduction of narrow arrays
        return np.array([A[:, j].sum(dtype=np.float64) for j in range(A.shape[1])])
    return A.sum(axis=0, dtype=np.float64)


def _total_sum_of_squares(Y, w):
    """Per-output weighted sum of squares about the weighted mean, in float64."""
    if w is None:
        mean = _column_sums(Y) / Y.shape[0]
        dev = Y - mean
        dev *= dev
        return _column_sums(dev)
    wd = w.astype(np.float64)[:, None]
    total = float(wd.sum())
    if total <= 0:
        return np.zeros(Y.shape[1])
    mean = _column_sums(wd * Y) / total
    dev = Y - mean
    dev *= dev
    dev *= wd
    return _column_sums(dev)


class _Progress:
    """verbose=1: a tqdm bar over epochs when tqdm is installed, else one line per epoch."""

    def __init__(self, epochs, verbose):
        self.verbose, self.bar = verbose, None
        if verbose:
            try:
                from tqdm.auto import tqdm
                self.bar = tqdm(total=epochs, unit="epoch")
            except ImportError:
                self.bar = None

    @staticmethod
    def _text(record):
        return " ".join(f"{k}={v:.5g}" for k, v in record.items() if k not in ("epoch", "time"))

    def update(self, record):
        if not self.verbose:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(self._text(record), refresh=False)
            self.bar.update(1)
        else:
            print(f"epoch {record['epoch'] + 1}: {self._text(record)} ({record['time']:.3f} s)", flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


__all__ = ["Network", "Adam", "SGD"]
