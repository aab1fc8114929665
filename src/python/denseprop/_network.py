"""The Network class: layers, parameters and the epoch loop around a backend."""

from __future__ import annotations

import math
import os
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from . import _checks, _core, _inspect, reference
from ._history import DivergenceError, History
from ._tuning import LARGE_TARGETS, NARROW_COLUMNS
from ._types import ArrayLike, BackendName, DTypeLike, FloatArray, HiddenActivation, InitName, LossName, OutputActivation
from .optimizers import SGD, EarlyStopping, Optimizer

BACKENDS = {"cpp": _core, "numpy": reference}


class Network:
    """A dense feed-forward network (multi-layer perceptron).

    Parameters
    ----------
    layers : list of int
        Widths ``[n_in, h1, ..., n_out]``, at least two positive integers.
    activation : str or list of str
        Hidden activation, one for all hidden layers or one per hidden layer:
        relu, leaky_relu, elu, gelu, sigmoid, tanh, softplus, silu, identity.
    output_activation : str
        Activation of the output layer (the above, or softmax with cross_entropy).
    loss : str
        ``mse`` (``1/(2B) sum (yhat - y)^2``), ``cross_entropy`` (softmax or sigmoid
        output), ``mae`` or ``huber``: a mean over the batch, a sum over outputs.
    dtype : "float32", "float64", or the NumPy dtype
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

    Attributes
    ----------
    weights : list of ndarray
        ``(fan_in, fan_out)`` per layer: the live parameters. Writing into them changes the
        network, and training updates them in place.
    biases : list of ndarray
        ``(fan_out,)`` per layer, live as ``weights``.
    layers, activations, loss, dtype, backend, optimizer
        The network's description; ``activations`` has one name per layer, the output's last;
        ``optimizer`` is the one the next ``fit`` continues with.
    """

    def __init__(self, layers: Sequence[int], activation: HiddenActivation | Sequence[HiddenActivation] = "relu",
                 output_activation: OutputActivation = "identity", loss: LossName = "mse",
                 dtype: DTypeLike = "float32", seed: int | None = None, backend: BackendName = "cpp",
                 init: InitName | tuple[Sequence[ArrayLike], Sequence[ArrayLike] | None] = "he",
                 bias_init: float = 0.1) -> None:
        self.layers: list[int] = _checks.layers(layers)
        hidden = _checks.hidden_activations(activation, len(self.layers) - 2)
        self.activation: str | list[str] = activation if isinstance(activation, str) else list(activation)
        self.output_activation = _checks.choice(output_activation, "output_activation", _checks.ACTIVATIONS)
        self.loss = _checks.choice(loss, "loss", _checks.LOSSES)
        _checks.output(self.loss, self.output_activation, self.layers[-1])
        self.activations: list[str] = hidden + [self.output_activation]
        self.dtype: np.dtype[Any] = _checks.dtype(dtype)
        self.seed = None if seed is None else _checks.integer(seed, "seed", 0)
        self.backend = backend
        bias_init = _checks.real(bias_init, "bias_init")
        with np.errstate(over="ignore"):
            if not np.isfinite(self.dtype.type(bias_init)):
                raise ValueError(f"bias_init={bias_init} does not fit in {self.dtype.name}")
        self._rng = np.random.default_rng(self.seed)
        self.init = init if isinstance(init, str) else "user"
        self.weights: list[FloatArray]
        self.biases: list[FloatArray]
        self.weights, self.biases = self._initial_parameters(init, bias_init)
        self.optimizer: Optimizer = SGD(lr=0.01)
        self._lock = threading.Lock()
        self._busy = None  # what the network is doing, while fit runs
        # For wrappers such as denseprop.sklearn: threads of this network's passes (None: the
        # user's setting, dp.get_num_threads()) and how training normalises a batch's loss
        # (None: the mean over its rows; else a _core.Objective).
        self._threads: int | None = None
        self._objective: Any = None

    # ---------------------------------------------------------------- construction

    def _initial_parameters(self, init, bias_init):
        pairs = list(zip(self.layers[:-1], self.layers[1:]))
        n_params = sum(fi * fo + fo for fi, fo in pairs)
        largest = max(fi * fo for fi, fo in pairs)
        # The parameters, plus the float64 draw of the largest layer before it is cast.
        _checks.ensure_memory(n_params * self.dtype.itemsize + 8 * largest,
                              f"a network with layers {self.layers}", "use narrower layers")
        if isinstance(init, str):
            _checks.choice(init, "init", _checks.INITS)
            weights = [np.ascontiguousarray(self._draw(init, fi, fo), dtype=self.dtype) for fi, fo in pairs]
            biases = [np.full(fo, bias_init, dtype=self.dtype) for _, fo in pairs]
            return weights, biases
        return self._given_parameters(init, bias_init, pairs)

    def _draw(self, init, fan_in, fan_out):
        if init == "he":
            return self._rng.standard_normal((fan_in, fan_out)) * math.sqrt(2.0 / fan_in)
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        return self._rng.uniform(-bound, bound, (fan_in, fan_out))

    def _given_parameters(self, init, bias_init, pairs):
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
            weights.append(self._given(w_in[l], f"init weights[{l}]", (fan_in, fan_out)))
            biases.append(np.full(fan_out, bias_init, dtype=self.dtype) if b_in is None
                          else self._given(b_in[l], f"init biases[{l}]", (fan_out,)))
        return weights, biases

    def _given(self, value, name, shape):
        arr = np.array(_checks.as_numeric(value, name), dtype=self.dtype, order="C")
        if arr.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
        _checks.finite(arr, name)
        return arr

    # ---------------------------------------------------------------- properties

    @property
    def backend(self) -> str:
        """'cpp' or 'numpy'; may be switched at any time."""
        return self._backend_name

    @backend.setter
    def backend(self, name: BackendName) -> None:
        self._backend_name = _checks.choice(name, "backend", _checks.BACKENDS)
        self._backend = BACKENDS[name]

    @property
    def n_in(self) -> int:
        """The number of inputs (features)."""
        return self.layers[0]

    @property
    def n_out(self) -> int:
        """The number of outputs."""
        return self.layers[-1]

    def _params(self):
        """The flat [W0, b0, W1, b1, ...] list the backends take, checked against the layout."""
        if len(self.weights) != len(self.layers) - 1 or len(self.biases) != len(self.layers) - 1:
            raise ValueError("net.weights and net.biases must each hold one array per layer")
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
        return params

    def __getstate__(self) -> dict[str, Any]:
        """For pickle (and joblib): everything but the lock and the backend module."""
        state = self.__dict__.copy()
        del state["_lock"], state["_backend"]
        state["_busy"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self.backend = self._backend_name
        # joblib.load(..., mmap_mode="r") gives read-only arrays; training writes the live ones.
        for arrays in (self.weights, self.biases, self.optimizer.state):
            for i, a in enumerate(arrays):
                if not a.flags.writeable:
                    arrays[i] = np.array(a, order="C")

    def __repr__(self) -> str:
        return (f"Network({self.layers}, activation={self.activation!r}, "
                f"output_activation={self.output_activation!r}, loss={self.loss!r}, "
                f"dtype={self.dtype.name!r}, backend={self.backend!r})")

    # ---------------------------------------------------------------- data

    def _X(self, X, name="X", check_finite=True):
        return _checks.features(X, self.n_in, self.dtype, name, check_finite)

    def _Y(self, y, n, name="y"):
        return _checks.targets(y, n, self.n_out, self.loss, self.output_activation, self.dtype, name)

    def _data(self, X, y, sample_weight):
        """(X, Y, w) checked and converted for a pass over labelled rows."""
        X = self._X(X)
        return X, self._Y(y, X.shape[0]), _checks.sample_weights(sample_weight, X.shape[0], self.dtype)

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

    def predict(self, X: ArrayLike) -> FloatArray:
        """The network's output for X.

        Parameters
        ----------
        X : array-like of shape (n, n_in)
            Any numeric dtype and layout; converted once to the network's dtype.

        Returns
        -------
        ndarray of shape (n, n_out), the network's dtype
            Probabilities for softmax and sigmoid outputs. Always 2-D: with one output, compare
            against ``y.reshape(-1, 1)`` (or take ``predict(X)[:, 0]``), not a 1-D ``y``.

        Works through X in chunks, so the memory used beyond the result is bounded.
        """
        self._check_idle("predict")
        rows = self._X(X, check_finite=False)  # the backend checks it chunk by chunk inside its pass
        out = np.empty((rows.shape[0], self.n_out), dtype=self.dtype)
        if not self._backend.forward(rows, self._params(), self.activations, out, True, self._threads):
            raise _checks.non_finite("X", self.dtype)
        return out

    forward = predict

    def predict_proba(self, X: ArrayLike) -> FloatArray:
        """Class probabilities, ``(n, n_out)``; for cross-entropy networks only."""
        if self.loss != "cross_entropy":
            raise ValueError(f"predict_proba needs loss='cross_entropy', this network uses {self.loss!r}")
        return self.predict(X)

    def predict_classes(self, X: ArrayLike) -> NDArray[np.int64]:
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
        metrics = np.zeros(self._backend.metrics_size(self.n_out))
        self._backend.evaluate(X, Y, self._params(), self.activations, self.loss, w, metrics, self._threads)
        return metrics

    def evaluate(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        """The loss over all of X: ``(1/n) sum_i w_i loss_i``.

        Parameters
        ----------
        X : array-like of shape (n, n_in)
        y : array-like of shape (n, n_out)
            Or 1-D when ``n_out == 1``, or 1-D integer class labels for a softmax output.
        sample_weight : array-like of shape (n,), optional
            Non-negative weights of the rows' losses.
        """
        self._check_idle("evaluate")
        rows, Y, w = self._data(X, y, sample_weight)
        return float(self._metrics(rows, Y, w)[0] / rows.shape[0])

    def score(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        """Accuracy for cross-entropy networks, R^2 (averaged over outputs) otherwise; the
        arguments are those of ``evaluate``."""
        self._check_idle("score")
        X, Y, w = self._data(X, y, sample_weight)
        return _Scorer(self, Y, w).score(self._metrics(X, Y, w))

    def gradients(self, X: ArrayLike, y: ArrayLike,
                  sample_weight: ArrayLike | None = None) -> tuple[list[FloatArray], list[FloatArray]]:
        """``(dW, db)``: the gradients of ``evaluate(X, y, sample_weight)``, one array per layer,
        shaped as ``weights`` and ``biases``."""
        self._check_idle("compute gradients")
        _, dW, db = self._loss_and_gradients(X, y, sample_weight)
        return dW, db

    def _loss_and_gradients(self, X: Any, Y: Any, w: Any) -> tuple[float, list[FloatArray], list[FloatArray]]:
        """evaluate() and gradients() from the same forward passes (for full-batch optimizers
        such as L-BFGS); X, Y, w are checked as gradients() checks them (no copy when they are
        already the network's)."""
        X, Y, w = self._data(X, Y, w)
        params = self._params()
        grads = [np.empty_like(p) for p in params]
        loss = self._backend.gradients(X, Y, params, self.activations, self.loss, w, grads, self._threads)
        return float(loss), grads[0::2], grads[1::2]

    def trace(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> _inspect.Trace:
        """One forward and one backward pass over the rows of X, nothing updated: a Trace with
        ``loss`` (float), ``output`` (yhat, (n, n_out)), ``dloss`` (dL/dyhat, None under
        cross-entropy) and ``layers``, one per layer with ``X``, ``Z = X W + b``,
        ``H = A(Z)``, ``dH`` (dL/dH = dZ_next W_next^T), ``dZ`` (E = dL/dZ = dH * A'(Z)),
        ``dW = X^T dZ``, ``db = sum(dZ)`` (exactly what ``gradients`` returns) and
        ``activation``. Refuses (ValueError) more than 100,000 rows or 50 million numbers;
        see ``denseprop._inspect.LayerTrace`` for every shape and formula."""
        return _inspect.trace(self, X, y, sample_weight)

    def health(self, X: ArrayLike, y: ArrayLike | None = None) -> list[dict[str, Any]]:
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
            return SGD(lr=_checks.real(lr, "lr", 0.0, None, low_open=True))
        if optimizer is not None:
            if not isinstance(optimizer, Optimizer):
                raise TypeError(f"optimizer must be a denseprop optimizer such as dp.SGD(...) or dp.Adam(...), "
                                f"got {type(optimizer).__name__}")
            return optimizer
        return self.optimizer

    def fit(self, X: ArrayLike, y: ArrayLike, epochs: int = 1, batch_size: int = 32, lr: float | None = None,
            optimizer: Optimizer | None = None, shuffle: bool = True, sample_weight: ArrayLike | None = None,
            validation_data: tuple[ArrayLike, ...] | None = None, validation_split: float = 0.0,
            early_stopping: EarlyStopping | None = None,
            callbacks: Callable[[dict[str, Any]], Any] | Sequence[Callable[[dict[str, Any]], Any]] = (),
            verbose: int | bool = 0) -> History:
        """Trains the network by mini-batch gradient descent, continuing from where it is.

        Parameters
        ----------
        X : array-like of shape (n, n_in)
            Any numeric dtype and layout, converted once per call (no copy when already a
            C-contiguous array of the network's dtype). Scale the features first (zero mean,
            unit variance); for regression, scale large targets too.
        y : array-like of shape (n, n_out)
            Or 1-D when ``n_out == 1``, or 1-D integer class labels for a softmax output.
        epochs : int, default 1
            Epochs of this call. Each call continues training: ``fit(X, y, epochs=5)`` twice is
            ``fit(X, y, epochs=10)`` once.
        batch_size : int, default 32
            Rows per optimizer step; the last batch of an epoch may be smaller.
        lr : float, optional
            A fresh ``dp.SGD(lr)``. With neither ``lr`` nor ``optimizer`` the network's current
            optimizer continues, state and all (a new network starts with ``SGD(lr=0.01)``).
        optimizer : dp.SGD, dp.Adam, dp.AdamW, optional
            The optimizer to train with (and continue with later); not together with ``lr``.
        shuffle : bool, default True
            Visit the rows in a new random order each epoch (drawn from the network's seed).
        sample_weight : array-like of shape (n,), optional
            Non-negative weights of the rows' losses: ``L = (1/B) sum_i w_i loss_i``.
        validation_data : (X_val, y_val) or (X_val, y_val, sample_weight), optional
            Rows to measure ``val_loss`` and ``val_accuracy`` or ``val_r2`` on after each epoch.
        validation_split : float, default 0.0
            Holds out this fraction of the rows for validation: the last rows, before any
            shuffling (as Keras does), so shuffle a table sorted by its target first.
        early_stopping : dp.EarlyStopping, optional
            Stops when the watched loss stops improving (see ``dp.EarlyStopping``).
        callbacks : callable or list of callables
            Each is called as ``f(record)`` after every epoch; returning True stops training.
        verbose : int or bool, default 0
            1 (or True): a progress bar (tqdm when installed) and a line per epoch, and a
            RuntimeWarning, once per layer, when more than half of a layer's units are dead.

        Returns
        -------
        History
            The per-epoch records of this call: ``loss``, ``val_loss``, ``accuracy``/``r2``, ...

        Raises
        ------
        DivergenceError
            The loss or a weight became NaN or infinite; the network keeps the weights of the
            last finite epoch.
        KeyboardInterrupt
            On Ctrl-C; the network keeps the weights of the last completed step, and a later
            ``fit`` continues.
        """
        epochs = _checks.integer(epochs, "epochs", 0)
        run = _Run(batch_size=_checks.batch_size(batch_size), shuffle=_checks.boolean(shuffle, "shuffle"),
                   optimizer=self._resolve_optimizer(lr, optimizer),
                   early_stopping=_early_stopping(early_stopping), callbacks=_callbacks(callbacks),
                   verbose=_verbose(verbose))
        data = self._fit_data(X, y, sample_weight, validation_data, validation_split)
        state = run.optimizer.states_per_param() if run.optimizer._owner is not self else 0
        # The optimizer's state, the per-epoch snapshot and the best weights.
        _checks.ensure_memory(self.dtype.itemsize * sum(p.size for p in self._params()) * (state + 2),
                              "training", "use a smaller batch_size or narrower layers")
        self._claim("fit")
        try:
            run.optimizer._attach(self, self._params())
            self.optimizer = run.optimizer
            return _Trainer(self, run, data).train(epochs)
        finally:
            self._release()

    def _fit_data(self, X, y, sample_weight, validation_data, validation_split):
        """The training rows and the validation rows (or None) of a fit, checked."""
        validation_split = _checks.real(validation_split, "validation_split", 0.0, 1.0)
        if validation_data is not None and validation_split:
            raise ValueError("pass validation_data or validation_split, not both")
        X, Y, w = self._data(X, y, sample_weight)
        if validation_split:
            cut = int(X.shape[0] * (1.0 - validation_split))
            if cut < 1 or cut >= X.shape[0]:
                raise ValueError(f"validation_split={validation_split} leaves no rows for training or "
                                 f"validation out of {X.shape[0]}")
            wv = None if w is None else w[cut:]
            self._warn_if_one_class(Y[cut:], X.shape[0] - cut)
            return (X[:cut], Y[:cut], None if w is None else w[:cut]), (X[cut:], Y[cut:], wv)
        if validation_data is None:
            return (X, Y, w), None
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise TypeError("validation_data must be (X_val, y_val) or (X_val, y_val, sample_weight)")
        Xv = self._X(validation_data[0], "validation X")
        Yv = self._Y(validation_data[1], Xv.shape[0], "validation y")
        wv = _checks.sample_weights(validation_data[2], Xv.shape[0], self.dtype) if len(validation_data) == 3 else None
        return (X, Y, w), (Xv, Yv, wv)

    def _warn_if_one_class(self, Y_val, rows):
        if self.loss != "cross_entropy" or self.n_out < 2 or rows < 2:
            return
        labels = np.unique(Y_val.argmax(axis=1))
        if len(labels) == 1:
            warnings.warn(f"validation_split held out the last {rows} rows, and they are all of class {labels[0]}: "
                          f"validation_split takes the last rows before shuffling, so a table sorted by class "
                          f"validates on one class. Shuffle the rows first, or pass validation_data.",
                          UserWarning, stacklevel=3)

    # ---------------------------------------------------------------- persistence

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the network (parameters, optimizer and random state) to exactly ``path`` as an
        .npz file, atomically: a crash mid-save leaves an earlier file intact. The file is read
        back without pickle; its mode follows the umask.

        Raises
        ------
        FileNotFoundError, IsADirectoryError, PermissionError
            Naming ``path``: its directory is missing, it is a directory, or it cannot be written.
        """
        self._check_idle("save")
        from ._io import save_network
        save_network(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], backend: BackendName | None = None) -> Network:
        """Reads a network written by ``save``; ``backend`` overrides the saved one.

        Raises
        ------
        OSError
            The file is missing or unreadable (Python's own error, naming it).
        ValueError
            The file is truncated, damaged, hand-edited, of a newer format, or a table model
            (load those with ``denseprop.tabular.TableModel``).
        """
        from ._io import load_network
        return load_network(cls, path, backend)

    def to_onnx(self, path: str | os.PathLike[str] | None = None, *, opset: int = 17) -> Any:
        """The network as an ``onnx.ModelProto`` (written to ``path`` when given): input "X"
        (n, n_in) and output "Y" = predict(X), in the network's dtype. Needs the onnx package."""
        from ._onnx import network_to_onnx
        return network_to_onnx(self, path, opset=opset)


# -------------------------------------------------------------------- fit's arguments

@dataclass
class _Run:
    """The settings of one fit, checked."""

    batch_size: int
    shuffle: bool
    optimizer: Optimizer
    early_stopping: EarlyStopping | None
    callbacks: list[Callable[[dict[str, Any]], Any]]
    verbose: int


def _early_stopping(value):
    if value is not None and not isinstance(value, EarlyStopping):
        raise TypeError("early_stopping must be dp.EarlyStopping(...) or None")
    return value


def _callbacks(value):
    callbacks = [value] if callable(value) else list(value)
    for cb in callbacks:
        if not callable(cb):
            raise TypeError(f"callbacks must be callables f(record), got {type(cb).__name__}")
    return callbacks


def _verbose(value):
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"verbose must be a bool or 0, 1 or 2, got {value!r}")
    return int(value)


# -------------------------------------------------------------------- the epoch loop

class _Trainer:
    """The epochs of one fit: each runs the backend's train_epoch, then records, validates,
    steps the schedule and asks whether to stop."""

    def __init__(self, net, run, data):
        self.net, self.run, self.opt = net, run, run.optimizer
        (self.X, self.Y, self.w), self.validation = data
        self.params = net._params()
        self.history = History()
        self.scorer = _Scorer(net, self.Y, self.w)
        self.val_scorer = None if self.validation is None else _Scorer(net, *self.validation[1:])
        self.perm = np.empty(self.X.shape[0], dtype=np.int64) if run.shuffle else None
        # The last finite epoch's parameters and optimizer state, to restore on divergence.
        self.saved = [np.empty_like(a) for a in self.params + self.opt.state]
        self.stopper = _Stopper(run.early_stopping, self.params)
        self.watch = _inspect.DeadUnitWatch(net, self.X, enabled=run.verbose > 0)

    def train(self, epochs):
        progress = _Progress(epochs, self.run.verbose)
        first = self.opt.epochs
        try:
            for epoch in range(epochs):
                record = self.epoch(epoch, first + epoch)
                progress.update(record)
                self.watch.epoch_end(record)  # verbose: warns of layers of mostly dead units
                if self.should_stop(record):
                    break
            self.stopper.restore(self.params, self.history)
        finally:
            progress.close()
        return self.history

    def epoch(self, epoch, number):
        """One epoch: train, check for divergence, measure; returns its record."""
        start = time.perf_counter()
        lr = self.opt.current_lr()
        for dst, src in zip(self.saved, self.params + self.opt.state):
            np.copyto(dst, src)
        saved_step = self.opt.step
        metrics = self.train_epoch(lr)
        loss = float(metrics[0] / self.X.shape[0])
        if not math.isfinite(loss) or not all(_all_finite(p) for p in self.params):
            self.restore_last_finite(saved_step)
            raise DivergenceError(f"training diverged in epoch {epoch} (loss {loss}): the loss or a weight became "
                                  f"NaN or infinite. {self.remedy(lr)}; the network keeps the weights of the last "
                                  f"finite epoch.", epoch, self.history)
        record = {"epoch": number, "loss": loss, self.scorer.name: self.scorer.score(metrics)}
        if self.validation is not None:
            vm = self.net._metrics(*self.validation)
            record["val_loss"] = float(vm[0] / self.validation[0].shape[0])
            record["val_" + self.val_scorer.name] = self.val_scorer.score(vm)
        record["time"] = time.perf_counter() - start
        record["lr"] = lr
        self.history.append(record)
        return record

    def remedy(self, lr):
        """What to do about a divergence: large regression targets are the usual cause."""
        largest = float(np.abs(self.Y).max()) if self.Y.size else 0.0
        if self.net.loss != "cross_entropy" and largest > LARGE_TARGETS:
            return (f"The targets are large (up to {largest:.3g}): scale them too, e.g. y_scaled = (y - y.mean()) / "
                    f"y.std(), and undo that on the predictions; or lower the learning rate (it was {lr:g})")
        return (f"Lower the learning rate (it was {lr:g}), scale the inputs (e.g. to zero mean and unit variance) "
                f"or clip extreme targets")

    def train_epoch(self, lr):
        """The backend's epoch at rate lr; returns its metrics."""
        net, opt = self.net, self.opt
        if self.perm is not None:  # one draw per epoch seeds the backend's own, faster shuffle
            net._backend.shuffled_order(net._rng.integers(0, 2**64, dtype=np.uint64), self.perm)
        metrics = np.zeros(net._backend.metrics_size(net.n_out))
        step = np.array([opt.step], dtype=np.int64)
        try:
            net._backend.train_epoch(self.X, self.Y, self.params, net.activations, net.loss, self.run.batch_size,
                                     self.perm, self.w, opt._config(lr), opt.state, step, metrics, net._objective,
                                     net._threads)
        finally:  # also after Ctrl-C: the steps that completed count
            opt.step = int(step[0])
        return metrics

    def restore_last_finite(self, saved_step):
        for dst, src in zip(self.params + self.opt.state, self.saved):
            np.copyto(dst, src)
        self.opt.step = saved_step

    def should_stop(self, record):
        """Steps the schedule, runs the callbacks and early stopping; True ends training."""
        monitored = record.get("val_loss", record["loss"])
        self.opt.epochs += 1
        self.opt.schedule.step(monitored)
        stop = False
        for cb in self.run.callbacks:
            answer = cb(dict(record))
            if answer is True or (isinstance(answer, np.bool_) and answer):
                stop = True
        return self.stopper.update(monitored, record, self.history) or stop


class _Stopper:
    """Early stopping: the best watched loss, the epochs waited since, the best weights."""

    def __init__(self, rule, params):
        self.rule, self.params = rule, params
        self.best_loss, self.waited, self.best = math.inf, 0, None

    def update(self, monitored, record, history):
        """True when the rule says stop; the rule is scikit-learn's n_iter_no_change count."""
        if self.rule is None:
            return False
        if monitored < self.best_loss - self.rule.min_delta:
            self.best_loss, self.waited = monitored, 0
            history.best_epoch = record["epoch"]
            if self.rule.restore_best:
                self.best = [p.copy() for p in self.params]
            return False
        self.waited += 1
        if self.waited > self.rule.patience:
            history.stopped_early = True
            return True
        return False

    def restore(self, params, history):
        if self.rule is not None and self.rule.restore_best and self.best is not None \
                and history.best_epoch != history.epoch[-1]:
            for dst, src in zip(params, self.best):
                np.copyto(dst, src)


class _Scorer:
    """Accuracy (cross-entropy) or R^2 averaged over outputs from the metrics of a pass over
    fixed rows Y with weights w, whose totals it works out once."""

    def __init__(self, net, Y, w):
        self.classify = net.loss == "cross_entropy"
        self.name = "accuracy" if self.classify else "r2"
        if self.classify:
            self.total_w = float(Y.shape[0] if w is None else w.sum(dtype=np.float64))
        else:
            self.sst = _total_sum_of_squares(Y, w)

    def score(self, metrics):
        if self.classify:
            return float(metrics[1] / self.total_w) if self.total_w > 0 else 0.0
        sse, sst = metrics[2:], self.sst
        if len(sst) <= NARROW_COLUMNS:
            r2 = [1.0 - e / t if t > 0 else float(e == 0) for e, t in zip(sse.tolist(), sst.tolist())]
            return sum(r2) / len(r2)
        r2 = np.where(sst > 0, 1.0 - sse / np.where(sst > 0, sst, 1.0), np.where(sse == 0, 1.0, 0.0))
        return float(r2.mean())


def _all_finite(a):
    return bool(np.logical_and.reduce(np.isfinite(a), axis=None))


def _column_sums(A):
    """Float64 sums of the columns of A (n, k), without BLAS: a matrix product here would wake
    NumPy's OpenBLAS threads, which then spin beside denseprop's training for a while."""
    if A.shape[1] <= NARROW_COLUMNS:
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
    """verbose=1: a line of metrics per epoch, whole at any terminal width, under a tqdm bar of the
    epochs (count, elapsed, remaining) when tqdm is installed."""

    def __init__(self, epochs, verbose):
        self.verbose, self.bar = verbose, None
        if verbose:
            try:
                from tqdm.auto import tqdm
                self.bar = tqdm(total=epochs, unit="epoch", dynamic_ncols=True, leave=False)
            except ImportError:
                self.bar = None

    @staticmethod
    def line(record):
        metrics = " ".join(f"{k}={v:.5g}" for k, v in record.items() if k not in ("epoch", "time"))
        return f"epoch {record['epoch'] + 1}: {metrics} ({record['time']:.3f} s)"

    def update(self, record):
        if not self.verbose:
            return
        if self.bar is None:
            print(self.line(record), flush=True)
            return
        self.bar.write(self.line(record))
        self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()


__all__ = ["Network"]
