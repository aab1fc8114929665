"""scikit-learn estimators: DenseClassifier and DenseRegressor.

    from denseprop.sklearn import DenseClassifier, DenseRegressor

Drop-in replacements for scikit-learn's ``MLPClassifier``/``MLPRegressor``: the same parameters
with the same names, defaults and meanings (scikit-learn's loss scaling, L2 penalty,
sample-weight rule, Glorot initialisation, stopping rules and learning-rate schedules), trained
by denseprop's C++ epoch loop. Beyond them: ``class_weight`` (classifier), more losses
(regressor) and hidden activations, ``dtype``, ``n_threads`` and ``backend``, a validation-loss
curve, and ``warm_start``/``partial_fit`` that keep the optimizer's state.

Where a meaning differs from scikit-learn's, the class docstrings say so under "Differences".
Needs scikit-learn >= 1.6 (``pip install "denseprop[sklearn]"``); ``solver="lbfgs"`` uses SciPy,
which scikit-learn requires.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings

import numpy as np
import scipy_openblas32

try:
    import scipy.optimize
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import LabelBinarizer
    from sklearn.utils import check_random_state
    from sklearn.utils.class_weight import compute_class_weight
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import (_check_partial_fit_first_call, check_classification_targets,
                                          type_of_target, unique_labels)
    from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d, validate_data
    from threadpoolctl import ThreadpoolController
except ImportError as _err:  # pragma: no cover - exercised only without the extra
    raise ImportError("denseprop.sklearn needs scikit-learn >= 1.6 (and SciPy, which it brings): "
                      "pip install 'denseprop[sklearn]'") from _err

from . import _checks, _core
from ._history import DivergenceError
from ._network import Network
from .optimizers import SGD, Adam

__all__ = ["DenseClassifier", "DenseRegressor", "register_skl2onnx"]

# scikit-learn's name for a hidden activation -> denseprop's; every other denseprop hidden
# activation is accepted under its own name.
_ACTIVATION_ALIASES = {"logistic": "sigmoid"}
# denseprop's output activation -> scikit-learn's name for out_activation_.
_OUT_ACTIVATION_NAMES = {"identity": "identity", "sigmoid": "logistic", "softmax": "softmax"}
# DenseRegressor's loss -> denseprop's loss (None: named by scikit-learn, not available here).
_REGRESSION_LOSSES = {"squared_error": "mse", "absolute_error": "mae", "huber": "huber", "poisson": None}
_SOLVERS = ("adam", "sgd", "lbfgs")
_STOCHASTIC = ("adam", "sgd")
_LEARNING_RATES = ("constant", "invscaling", "adaptive")
_ADAPTIVE_MIN_RATE = 1e-6  # scikit-learn's "adaptive": stop once the rate would fall below this
_SEED_RANGE = 2**31 - 1


# --------------------------------------------------------------------------------------
# Hyper-parameters, checked in fit with denseprop's checker

class _Settings:
    """The estimator's hyper-parameters, checked once per fit."""

    def __init__(self, est):
        c = _checks
        self.hidden = _hidden_layer_sizes(est.hidden_layer_sizes)
        activation = c.choice(est.activation, "activation", tuple(_ACTIVATION_ALIASES) + c.HIDDEN_ACTIVATIONS)
        self.activation = _ACTIVATION_ALIASES.get(activation, activation)
        self.solver = c.choice(est.solver, "solver", _SOLVERS)
        self.alpha = c.real(est.alpha, "alpha", 0.0)
        self.batch_size = est.batch_size if est.batch_size == "auto" else c.batch_size(est.batch_size)
        self.learning_rate = c.choice(est.learning_rate, "learning_rate", _LEARNING_RATES)
        self.learning_rate_init = c.real(est.learning_rate_init, "learning_rate_init", 0.0, low_open=True)
        self.power_t = c.real(est.power_t, "power_t", 0.0)
        self.max_iter = c.integer(est.max_iter, "max_iter", 1)
        self.shuffle = c.boolean(est.shuffle, "shuffle")
        self.tol = c.real(est.tol, "tol", 0.0)
        self.verbose = int(est.verbose) if isinstance(est.verbose, (bool, np.bool_)) else \
            c.integer(est.verbose, "verbose", 0)
        self.warm_start = c.boolean(est.warm_start, "warm_start")
        self.momentum = c.real(est.momentum, "momentum", 0.0, 1.0, high_open=False)
        self.nesterovs_momentum = c.boolean(est.nesterovs_momentum, "nesterovs_momentum")
        self.early_stopping = c.boolean(est.early_stopping, "early_stopping")
        self.validation_fraction = c.real(est.validation_fraction, "validation_fraction", 0.0, 1.0)
        self.beta_1 = c.real(est.beta_1, "beta_1", 0.0, 1.0)
        self.beta_2 = c.real(est.beta_2, "beta_2", 0.0, 1.0)
        self.epsilon = c.real(est.epsilon, "epsilon", 0.0, low_open=True)
        self.n_iter_no_change = _patience(est.n_iter_no_change)
        self.max_fun = c.integer(est.max_fun, "max_fun", 1)
        self.dtype = c.dtype(est.dtype)
        self.n_threads = None if est.n_threads is None else c.integer(est.n_threads, "n_threads", 1)
        self.backend = c.choice(est.backend, "backend", c.BACKENDS)
        # L-BFGS's line search needs function values more precise than float32's, so that
        # solver trains in float64 whatever the network's dtype.
        self.train_dtype = np.dtype(np.float64) if self.solver == "lbfgs" else self.dtype
        if self.early_stopping and self.solver in _STOCHASTIC and self.validation_fraction == 0:
            raise ValueError("early_stopping=True needs validation_fraction > 0")


def _hidden_layer_sizes(value):
    """hidden_layer_sizes as a list of ints: one int or an array-like of them (may be empty)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        value = [value]
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"hidden_layer_sizes must be an int or a tuple of ints such as (100,), got {value!r}")
    return [_checks.integer(h, "hidden_layer_sizes", 1) for h in value]


def _patience(value):
    """n_iter_no_change: an int >= 1, or inf (never stop for lack of improvement)."""
    if isinstance(value, float) and value == math.inf:
        return math.inf
    return _checks.integer(value, "n_iter_no_change", 1)


def _batch_rows(batch_size, n):
    """scikit-learn's rule: "auto" is min(200, n); a larger size is clipped to n, with a warning."""
    if batch_size == "auto":
        return min(200, n)
    if batch_size > n:
        warnings.warn(f"batch_size={batch_size} is larger than the {n} training rows; using {n}", UserWarning)
    return min(batch_size, n)


# --------------------------------------------------------------------------------------
# Initialisation and optimizers

def _glorot(rng, layers, activation, dtype):
    """scikit-learn's initialisation: weights, then biases, of each layer uniform in
    +-sqrt(factor / (fan_in + fan_out)), factor 2 for logistic units and 6 otherwise."""
    factor = 2.0 if activation == "sigmoid" else 6.0
    weights, biases = [], []
    for fan_in, fan_out in zip(layers[:-1], layers[1:]):
        bound = math.sqrt(factor / (fan_in + fan_out))
        weights.append(rng.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype))
        biases.append(rng.uniform(-bound, bound, fan_out).astype(dtype))
    return weights, biases


def _adam(s):
    return Adam(lr=s.learning_rate_init, beta1=s.beta_1, beta2=s.beta_2, eps=s.epsilon, weight_decay=s.alpha)


def _sgd(s):
    return SGD(lr=s.learning_rate_init, momentum=s.momentum, nesterov=s.nesterovs_momentum and s.momentum > 0,
               weight_decay=s.alpha)


_OPTIMIZERS = {"adam": _adam, "sgd": _sgd}


def _other_blas_single_threaded():
    """Holds every BLAS but denseprop's at one thread: SciPy's L-BFGS-B makes only vector
    operations, and its OpenBLAS's spinning threads beside denseprop's cost 30x on 2 cores."""
    global _OTHER_BLAS
    if _OTHER_BLAS is None:  # finding the libraries reads files: once per process
        ours = os.path.realpath(scipy_openblas32.get_lib_dir())
        controller = ThreadpoolController()
        _OTHER_BLAS = controller.select(filepath=[
            lib.filepath for lib in controller.lib_controllers
            if lib.user_api == "blas" and os.path.dirname(os.path.realpath(lib.filepath)) != ours])
    return _OTHER_BLAS.limit(limits=1) if _OTHER_BLAS.lib_controllers else contextlib.nullcontext()


_OTHER_BLAS = None


def _rows_past_small_products(layers):
    """The fewest rows whose products all exceed the backend's plain-loop limit (SMALL_GEMM)."""
    smallest = min(a * b for a, b in zip(layers[:-1], layers[1:]))
    return _core.SMALL_GEMM // smallest + 1


def _twin(net, dtype):
    """A copy of net in another dtype, on the same backend and threads."""
    twin = Network(net.layers, activation=net.activations[:-1], output_activation=net.output_activation,
                   loss=net.loss, dtype=dtype, backend=net.backend,
                   init=([w.astype(dtype) for w in net.weights], [b.astype(dtype) for b in net.biases]))
    twin._threads = net._threads
    return twin


def _squared_norm(weights):
    """sum ||W||^2 over the weight matrices, in float64."""
    return sum(float(np.einsum("ij,ij->", w, w, dtype=np.float64)) for w in weights)


# --------------------------------------------------------------------------------------
# The shared estimator

class _DenseMLP(BaseEstimator):
    """What DenseClassifier and DenseRegressor share; subclasses say how targets become
    network outputs (_targets), and which output layer and loss they train (_head)."""

    # ------------------------------------------------------------ fitting

    def fit(self, X, y, sample_weight=None):
        """Trains the network on X (n_samples, n_features) and y; returns self.

        Starts from scikit-learn's initialisation unless ``warm_start=True`` and the
        estimator is fitted, in which case weights and optimizer state continue.
        ``sample_weight`` weights each row's loss; a batch's loss is divided by its weight sum.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def _fit(self, X, y, sample_weight, incremental):
        s = _Settings(self)
        first = not hasattr(self, "network_") or (not s.warm_start and not incremental)
        if incremental and s.solver not in _STOCHASTIC:
            raise AttributeError(f"partial_fit needs solver 'sgd' or 'adam', not {s.solver!r}")
        if incremental and s.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        X, y = validate_data(self, X, y, multi_output=True, dtype=s.train_dtype, order="C", reset=first,
                             y_numeric=not self._classifies)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        Y = self._targets(y, first, incremental, s)
        weights = self._sample_weight(sample_weight, X, y, incremental)
        if not first and Y.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {Y.shape[1]} outputs but the estimator was fitted with {self.n_outputs_}; "
                             f"set warm_start=False to start over")
        # One random stream, drawn in scikit-learn's order: initial weights, validation split,
        # then (here) the seed of the network's shuffles.
        rng = check_random_state(self.random_state)
        init = self._draw_initial_parameters(s, rng, X.shape[1], Y.shape[1]) if first else None
        stops_early = s.early_stopping and s.solver in _STOCHASTIC
        data = self._split(X, Y, weights, y, s, rng) if stops_early else ((X, Y, weights), None)
        if first:
            self._initialize(s, init, int(rng.randint(_SEED_RANGE)))
        self._configure_network(s)
        try:
            if s.solver == "lbfgs":
                self._fit_lbfgs(X, Y, weights, s)
            else:
                self._fit_stochastic(*data, s, incremental)
        except DivergenceError as err:
            raise ValueError(f"Solver produced non-finite parameter weights: {err}") from err
        return self

    def _sample_weight(self, sample_weight, X, y, incremental):
        """Row weights from sample_weight and class_weight (None when neither is given)."""
        class_weight = self._row_class_weights(y, incremental)
        if sample_weight is None and class_weight is None:
            return None
        w = np.ones(X.shape[0], dtype=X.dtype) if sample_weight is None else \
            _check_sample_weight(sample_weight, X, dtype=X.dtype, ensure_non_negative=True)
        if class_weight is not None:
            w = w * class_weight.astype(X.dtype)
        if not w.sum(dtype=np.float64) > 0:  # older scikit-learn versions let all-zero weights through
            raise ValueError("Sample weights must contain at least one non-zero number")
        return np.ascontiguousarray(w)

    def _row_class_weights(self, y, incremental):
        return None

    def _draw_initial_parameters(self, s, rng, n_in, n_out):
        """(layers, (weights, biases)) drawn as scikit-learn draws them."""
        layers = [n_in] + s.hidden + [n_out]
        return layers, _glorot(rng, layers, s.activation, s.dtype)

    def _initialize(self, s, init, seed):
        """A new network from the drawn parameters, and the fitted attributes reset."""
        layers, parameters = init
        out_act, loss, self._output_scale = self._head(layers[-1])
        self.network_ = Network(layers, activation=s.activation, output_activation=out_act, loss=loss,
                                dtype=s.dtype, seed=seed, backend=s.backend, init=parameters)
        self.coefs_, self.intercepts_ = self.network_.weights, self.network_.biases
        self.n_layers_, self.n_outputs_ = len(layers), layers[-1]
        self.out_activation_ = _OUT_ACTIVATION_NAMES[out_act]
        self.n_iter_, self.t_ = 0, 0
        self.loss_curve_ = []
        self._no_improvement_count = 0
        self._optimizer = None
        self._rate = None
        self.best_loss_ = np.inf
        self.validation_scores_ = self.best_validation_score_ = self.validation_loss_curve_ = None

    def _reset_stopping_state(self, s):
        """A warm start that switches early_stopping on or off starts that rule's records."""
        if s.early_stopping and self.validation_scores_ is None:
            self.best_loss_, self.validation_scores_, self.best_validation_score_ = None, [], -np.inf
            self.validation_loss_curve_ = []
        elif not s.early_stopping and self.best_loss_ is None:
            self.best_loss_, self.validation_scores_, self.best_validation_score_ = np.inf, None, None
            self.validation_loss_curve_ = None

    def _configure_network(self, s):
        net = self.network_
        net._threads = s.n_threads
        net.backend = s.backend

    def _objective(self):
        """scikit-learn's batch normalisation for the network's epochs (Objective in model.hpp):
        a batch's loss and weight decay divided by its weight sum, squared error averaged over
        outputs. Set only during the estimator's fits: network_ used on its own keeps the
        Network's meaning of a batch's loss."""
        objective = _core.Objective()
        objective.output_scale = self._output_scale
        objective.by_weight_sum = True
        objective.decay_by_batch = True
        return objective

    # ------------------------------------------------------------ stochastic solvers

    def _stochastic_optimizer(self, s):
        """The network's optimizer: kept (state and all) while the solver stays the same;
        its hyper-parameters follow the current parameters."""
        fresh = _OPTIMIZERS[s.solver](s)
        opt = self._optimizer
        if opt is None or type(opt) is not type(fresh):
            self._optimizer, self._rate, self._rate_init = fresh, s.learning_rate_init, s.learning_rate_init
            return fresh
        for key, value in fresh.get_config().items():
            setattr(opt, key, value)
        if self._rate_init != s.learning_rate_init:
            self._rate = self._rate_init = s.learning_rate_init
        return opt

    def _fit_stochastic(self, train, val, s, incremental):
        self._reset_stopping_state(s)
        if s.early_stopping:
            self._best_params = [p.copy() for p in self.coefs_ + self.intercepts_]
        opt = self._stochastic_optimizer(s)
        opt.lr = self._rate
        n = train[0].shape[0]
        batch = _batch_rows(s.batch_size, n)
        end = _EpochEnd(self, s, opt, train, val, batch, incremental)
        self.n_iter_ = 0
        net = self.network_
        net._objective = self._objective()
        try:
            net.fit(train[0], train[1], epochs=1 if incremental else s.max_iter, batch_size=batch, optimizer=opt,
                    shuffle=s.shuffle, sample_weight=train[2], validation_data=val, callbacks=[end])
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        finally:
            net._objective = None
        if s.early_stopping:
            for dst, src in zip(self.coefs_ + self.intercepts_, self._best_params):
                np.copyto(dst, src)

    def _split(self, X, Y, w, y, s, rng):
        """scikit-learn's validation split: random, stratified for single-output classes."""
        stratify = y if self._classifies and y.ndim == 1 else None
        arrays = (X, Y) if w is None else (X, Y, w)
        parts = train_test_split(*arrays, random_state=rng, test_size=s.validation_fraction, stratify=stratify)
        if w is None:
            parts += [None, None]
        train, val = tuple(parts[0::2]), tuple(parts[1::2])
        if val[0].shape[0] < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size "
                             "of your dataset.")
        # C-contiguous for the network (train_test_split's fancy indexing keeps them so).
        return tuple(None if a is None else np.ascontiguousarray(a) for a in train), \
            tuple(None if a is None else np.ascontiguousarray(a) for a in val)

    # ------------------------------------------------------------ lbfgs

    def _fit_lbfgs(self, X, Y, w, s):
        """Full-batch L-BFGS-B (SciPy) on the loss and gradient of all rows, computed by the
        network's backend; the objective is scikit-learn's: data loss / weight sum plus
        0.5 * alpha * ||W||^2 / weight sum. In float64, through a float64 twin of a float32
        network whose weights get the result."""
        net = self.network_ if self.network_.dtype == X.dtype else _twin(self.network_, X.dtype)
        params = net.weights + net.biases
        bounds = np.cumsum([0] + [p.size for p in params])
        n = X.shape[0]
        total = float(n if w is None else w.sum(dtype=np.float64))
        scale = n * self._output_scale / total

        def unpack(x):
            for p, a, b in zip(params, bounds[:-1], bounds[1:]):
                np.copyto(p, x[a:b].reshape(p.shape), casting="unsafe")

        def loss_and_gradient(x):
            unpack(x)
            data_loss, dW, db = net._loss_and_gradients(X, Y, w)  # one pass for both
            loss = data_loss * scale + 0.5 * s.alpha * _squared_norm(net.weights) / total
            grads = [d * scale + (s.alpha / total) * W for d, W in zip(dW, net.weights)] + [d * scale for d in db]
            return loss, np.concatenate([g.ravel() for g in grads]).astype(np.float64)

        curve = []

        def record(intermediate_result):
            curve.append(float(intermediate_result.fun))
            if s.verbose:
                print(f"Iteration {len(curve)}, loss = {curve[-1]:.8f}")

        x0 = np.concatenate([p.ravel() for p in params]).astype(np.float64)
        with _other_blas_single_threaded():
            result = scipy.optimize.minimize(loss_and_gradient, x0, method="L-BFGS-B", jac=True, callback=record,
                                             options={"maxiter": s.max_iter, "maxfun": s.max_fun, "gtol": s.tol})
        unpack(result.x)
        for dst, src in zip(self.coefs_ + self.intercepts_, params):
            np.copyto(dst, src, casting="unsafe")
        self.n_iter_ = min(int(result.nit), s.max_iter)
        self.loss_ = float(result.fun)
        self.loss_curve_ = curve or [self.loss_]
        self.best_loss_ = min(self.loss_curve_)
        self.validation_scores_ = self.best_validation_score_ = self.validation_loss_curve_ = None
        if result.status != 0:
            warnings.warn(f"lbfgs failed to converge after {self.n_iter_} iteration(s) (status={result.status}): "
                          f"{result.message}. Increase max_iter or max_fun, or scale the data "
                          f"(e.g. with StandardScaler).", ConvergenceWarning)
        if not all(np.isfinite(p).all() for p in self.coefs_ + self.intercepts_):
            raise ValueError("Solver produced non-finite parameter weights. The input data may contain large "
                             "values and need to be preprocessed (e.g. with StandardScaler).")

    # ------------------------------------------------------------ prediction

    def _forward(self, X):
        """The network's outputs for X. A call of very few rows is padded with zero rows so that
        every product goes through OpenBLAS, as in a larger call: a row's outputs then do not
        depend on how many rows share the call (denseprop's own loops for the smallest
        products round differently)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=self.network_.dtype, order="C")
        n, rows = X.shape[0], _rows_past_small_products(self.network_.layers)
        if n >= rows:
            return self.network_.predict(X)
        padded = np.zeros((rows, X.shape[1]), dtype=X.dtype)
        padded[:n] = X
        return self.network_.predict(padded)[:n]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags


class _EpochEnd:
    """scikit-learn's bookkeeping after each epoch, run as the network's fit callback:
    losses, validation scores, the no-improvement count, the learning-rate schedule and
    whether to stop (returns True)."""

    def __init__(self, est, s, opt, train, val, batch, incremental):
        self.est, self.s, self.opt, self.incremental = est, s, opt, incremental
        n = train[0].shape[0]
        self.n = n
        # The L2 term of loss_: 0.5 * alpha * ||W||^2 once per batch, divided by the batch's
        # weight sum and weighted by its rows, as scikit-learn adds it to each batch's loss.
        total = float(n if train[2] is None else train[2].sum(dtype=np.float64))
        self.penalty_scale = 0.5 * s.alpha * math.ceil(n / batch) / total
        if val is not None:
            v = val[0].shape[0]
            v_total = float(v if val[2] is None else val[2].sum(dtype=np.float64))
            self.val_scale = v * est._output_scale / v_total if v_total > 0 else math.nan
        self.score_key = "val_accuracy" if est._classifies else "val_r2"

    def __call__(self, record):
        est, s = self.est, self.s
        est.n_iter_ += 1
        est.t_ += self.n
        est.loss_ = record["loss"] + self.penalty_scale * _squared_norm(est.coefs_)
        est.loss_curve_.append(est.loss_)
        if s.verbose:
            print(f"Iteration {est.n_iter_}, loss = {est.loss_:.8f}")
        if s.early_stopping:
            self.validate(record)
        else:
            self.watch_loss()
        if s.solver == "sgd" and s.learning_rate == "invscaling":
            est._rate = s.learning_rate_init / (est.t_ + 1) ** s.power_t
        stop = False
        if est._no_improvement_count > s.n_iter_no_change:
            stop = self.trigger_stopping()
            if not stop:
                est._no_improvement_count = 0
        self.opt.lr = est._rate
        if not stop and not self.incremental and est.n_iter_ == s.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({s.max_iter}) reached and the "
                          f"optimization hasn't converged yet.", ConvergenceWarning)
        return stop

    def validate(self, record):
        est, s = self.est, self.s
        score = record[self.score_key]
        est.validation_scores_.append(score)
        est.validation_loss_curve_.append(record["val_loss"] * self.val_scale)
        if s.verbose:
            print(f"Validation score: {score:f}")
        if score < est.best_validation_score_ + s.tol:
            est._no_improvement_count += 1
        else:
            est._no_improvement_count = 0
        if score > est.best_validation_score_:
            est.best_validation_score_ = score
            est._best_params = [p.copy() for p in est.coefs_ + est.intercepts_]

    def watch_loss(self):
        est, s = self.est, self.s
        if est.loss_ > est.best_loss_ - s.tol:
            est._no_improvement_count += 1
        else:
            est._no_improvement_count = 0
        est.best_loss_ = min(est.best_loss_, est.loss_)

    def trigger_stopping(self):
        """True to stop; "adaptive" SGD divides the rate by 5 instead, down to 1e-6."""
        est, s = self.est, self.s
        what = "Validation score" if s.early_stopping else "Training loss"
        msg = f"{what} did not improve more than tol={s.tol:f} for {s.n_iter_no_change} consecutive epochs."
        if s.solver == "sgd" and s.learning_rate == "adaptive":
            if est._rate <= _ADAPTIVE_MIN_RATE:
                if s.verbose:
                    print(msg + " Learning rate too small. Stopping.")
                return True
            est._rate /= 5.0
            if s.verbose:
                print(msg + f" Setting learning rate to {est._rate:f}")
            return False
        if s.verbose:
            print(msg + " Stopping.")
        return True


def _stochastic_solver(est):
    return est.solver in _STOCHASTIC


_PARAMETERS_DOC = """
    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default=(100,)
        Widths of the hidden layers (an empty tuple: no hidden layer).
    activation : str, default="relu"
        Hidden activation: scikit-learn's "identity", "logistic" (sigmoid), "tanh", "relu",
        or any other denseprop hidden activation (leaky_relu, elu, gelu, softplus, silu, ...).
    solver : {"adam", "sgd", "lbfgs"}, default="adam"
        "lbfgs" is full-batch L-BFGS-B (SciPy) on the loss and gradient of all rows.
    alpha : float, default=0.0001
        L2 penalty ``0.5 * alpha * ||W||^2 / (batch weight sum)`` added to each batch's loss
        (weights only, not biases).
    batch_size : int or "auto", default="auto"
        Rows per mini-batch; "auto" is ``min(200, n_samples)``.
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        Schedule of the "sgd" solver: invscaling is ``learning_rate_init / (t_ + 1) ** power_t``
        with ``t_`` the samples seen; adaptive divides the rate by 5 whenever
        ``n_iter_no_change`` epochs fail to improve by ``tol``, and stops below 1e-6.
    learning_rate_init : float, default=0.001
    power_t : float, default=0.5
    max_iter : int, default=200
        Epochs (stochastic solvers) or iterations (lbfgs).
    shuffle : bool, default=True
    random_state : int, RandomState instance or None, default=None
        Draws the initial weights, the early-stopping split and the seed of the network's
        shuffles.
    tol : float, default=1e-4
    verbose : bool or int, default=False
    warm_start : bool, default=False
        Continue from the fitted weights *and* optimizer state (scikit-learn resets the
        optimizer).
    momentum : float, default=0.9
    nesterovs_momentum : bool, default=True
    early_stopping : bool, default=False
        Hold out a random (stratified for classes) ``validation_fraction`` and stop when its
        score (accuracy or R^2) fails to improve by ``tol`` for ``n_iter_no_change`` epochs;
        the best weights are restored.
    validation_fraction : float, default=0.1
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's parameters.
    n_iter_no_change : int, default=10
    max_fun : int, default=15000
        Function evaluations of lbfgs.
    dtype : "float32" or "float64", default="float32"
        Precision of the network (inputs are converted to it). solver="lbfgs" trains in
        float64 whatever this is (its line search needs more precise losses than float32
        gives) and stores the result in this dtype.
    n_threads : int or None, default=None
        Threads of this estimator's fits and predictions; None follows ``dp.get_num_threads()``
        (the process's BLAS limits: OPENBLAS_NUM_THREADS/OMP_NUM_THREADS, dp.set_num_threads,
        threadpoolctl, read at each call).
    backend : "cpp" or "numpy", default="cpp"
        denseprop's C++ kernels or its NumPy reference.
"""

_ATTRIBUTES_DOC = """
    Attributes
    ----------
    n_features_in_, feature_names_in_ : as in scikit-learn
    n_iter_ : int
        Epochs run by the last fit or partial_fit call (lbfgs: its iterations).
    t_ : int
        Training samples seen by the stochastic solvers (lbfgs leaves it unchanged).
    loss_ : float
        The last epoch's loss in scikit-learn's scale, L2 term included (see Notes).
    loss_curve_ : list of float
        loss_ per epoch (lbfgs: per iteration).
    best_loss_ : float or None
        The least loss_ seen (None with early_stopping).
    validation_scores_, best_validation_score_ : list, float or None
        Held-out scores per epoch with early_stopping, else None.
    validation_loss_curve_ : list of float or None
        Held-out loss per epoch with early_stopping (without the L2 term), else None.
    coefs_, intercepts_ : lists of arrays
        ``(fan_in, fan_out)`` weights and ``(fan_out,)`` biases: the same arrays as
        ``network_.weights`` and ``network_.biases``.
    n_layers_, n_outputs_ : int
    out_activation_ : str
        "identity", "logistic" or "softmax".
    network_ : denseprop.Network
        The fitted network.

    Notes
    -----
    Each batch's loss is scikit-learn's: the weighted sum of the rows' losses divided by the
    batch's weight sum (its row count without sample weights), plus
    ``0.5 * alpha * ||W||^2`` divided by the same sum. ``loss_`` is scikit-learn's epoch loss,
    the batches' losses weighted by their rows and divided by the rows: the data part is exact
    (each batch's loss before its step); the L2 part is evaluated once per epoch with the
    epoch's final weights, as ``0.5 * alpha * ||W||^2 * n_batches / (total weight)``, which
    equals scikit-learn's per-batch sum without sample weights up to the weights' change
    within the epoch.

    Differences from scikit-learn's MLP
    -----------------------------------
    * ``warm_start=True`` and ``partial_fit`` keep the optimizer's state (Adam's moments,
      SGD's velocity, the step count and the current learning rate); scikit-learn's
      ``warm_start`` starts a fresh optimizer.
    * SGD and Adam are PyTorch's forms: SGD's velocity is kept without the rate (the same
      steps at a constant rate), and Adam adds ``epsilon`` to the bias-corrected
      ``sqrt(v)``.
    * The default ``dtype`` is float32 (scikit-learn keeps float32 inputs in float32 and
      converts everything else to float64): set ``dtype="float64"`` for scikit-learn's
      precision.
    * Sparse input is refused (the network trains on dense rows); convert with
      ``X.toarray()`` when it fits in memory.
"""


class DenseClassifier(ClassifierMixin, _DenseMLP):
    __doc__ = """Multi-layer perceptron classifier trained by denseprop, with scikit-learn's
    ``MLPClassifier`` parameters and meanings.

    Binary and multi-class targets get a logistic or softmax output with log loss;
    multi-label indicator matrices get one logistic output per label.
""" + _PARAMETERS_DOC + """    class_weight : dict, "balanced" or None, default=None
        Weights of the classes, multiplying the rows' sample weights ("balanced":
        ``n_samples / (n_classes * bincount(y))``). Not for multi-label targets;
        partial_fit takes a dict only.
""" + _ATTRIBUTES_DOC + """    classes_ : ndarray
        The class labels (multi-label: the label indices).
"""

    _classifies = True

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 class_weight=None, dtype="float32", n_threads=None, backend="cpp"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.class_weight = class_weight
        self.dtype = dtype
        self.n_threads = n_threads
        self.backend = backend

    @available_if(_stochastic_solver)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over X, y (solvers "sgd" and "adam"); returns self.

        ``classes`` (all labels that will ever be seen) is required on the first call (for
        multi-label indicator targets the labels are y's columns, and classes only has to be
        given). Weights and optimizer state carry over between calls.
        """
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y if type_of_target(y).startswith("multilabel") else self.classes_)
            self.classes_ = self._label_binarizer.classes_
            self._check_classes()
        return self._fit(X, y, sample_weight, incremental=True)

    def _targets(self, y, first, incremental, s):
        """LabelBinarizer's encoding: (n, 1) for two classes, one-hot or indicator (n, k)."""
        check_classification_targets(y)
        if first and not incremental:
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
            self._check_classes()
        else:
            classes = unique_labels(y)
            if s.warm_start and not incremental and set(classes) != set(self.classes_):
                raise ValueError(f"warm_start can only be used where `y` has the same classes as in the previous "
                                 f"call to fit. Previously got {self.classes_}, `y` has {classes}")
            if len(np.setdiff1d(classes, self.classes_)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                                 f"'y' has {classes}.")
        return np.ascontiguousarray(self._label_binarizer.transform(y), dtype=s.train_dtype)

    def _check_classes(self):
        if len(self.classes_) < 2 and self._label_binarizer.y_type_ != "multilabel-indicator":
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes; got 1 class: "
                             f"{self.classes_.tolist()}")

    def _row_class_weights(self, y, incremental):
        if self.class_weight is None:
            return None
        if y.ndim != 1:
            raise ValueError("class_weight is not supported for multi-label targets; pass sample_weight instead")
        if incremental and isinstance(self.class_weight, str):
            raise ValueError("class_weight='balanced' needs all of y and is not supported by partial_fit; "
                             "compute the weights once with sklearn.utils.class_weight.compute_class_weight "
                             "and pass them as a dict")
        per_class = compute_class_weight(self.class_weight, classes=self.classes_, y=y)
        return per_class[np.searchsorted(self.classes_, y)]

    def _head(self, n_out):
        multiclass = self._label_binarizer.y_type_ == "multiclass"
        return ("softmax" if multiclass else "sigmoid"), "cross_entropy", 1.0

    def predict(self, X):
        """Predicted class labels (multi-label: an indicator matrix)."""
        p = self._forward(X)
        return self._label_binarizer.inverse_transform(p.ravel() if self.n_outputs_ == 1 else p)

    def predict_proba(self, X):
        """Class probabilities (n_samples, n_classes), columns in the order of classes_;
        multi-label: (n_samples, n_labels), each label's probability."""
        p = self._forward(X)
        if self.out_activation_ == "logistic":
            _strictly_inside(p)
        return np.column_stack([1 - p[:, 0], p[:, 0]]) if self.n_outputs_ == 1 else p

    def predict_log_proba(self, X):
        """log(predict_proba(X))."""
        p = self.predict_proba(X)
        return np.log(p, out=p)

    def to_onnx(self, path=None, *, opset=17):
        """The fitted classifier as an ``onnx.ModelProto`` (written to ``path`` when given), with
        skl2onnx's names: input "X" (n, n_features_in_) in the estimator's dtype; outputs "label"
        (n,) = predict(X) (int64, or strings for text classes; multi-label: an (n, n_labels) int64
        indicator matrix) and "probabilities" (n, n_classes) = predict_proba(X). Needs the onnx
        package; see also register_skl2onnx."""
        from ._onnx_sklearn import estimator_to_onnx
        return estimator_to_onnx(self, path, opset=opset)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class DenseRegressor(RegressorMixin, _DenseMLP):
    __doc__ = """Multi-layer perceptron regressor trained by denseprop, with scikit-learn's
    ``MLPRegressor`` parameters and meanings, single- or multi-output.

    Parameters
    ----------
    loss : {"squared_error", "absolute_error", "huber"}, default="squared_error"
        Per row, the mean over outputs of ``0.5 * r^2``, ``|r|`` or Huber (delta 1) of the
        residual r. scikit-learn's "poisson" is refused with a ValueError: denseprop has no
        Poisson loss with a log link.
""" + _PARAMETERS_DOC.split("Parameters\n    ----------\n", 1)[1] + _ATTRIBUTES_DOC + """    * For several outputs the gradient is that of the reported loss, a mean over outputs;
      scikit-learn's gradient sums the outputs' residuals while its loss averages them, so
      its steps are n_outputs times larger relative to alpha.
"""

    _classifies = False

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant", learning_rate_init=0.001,
                 power_t=0.5, max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False,
                 warm_start=False, momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 max_fun=15000, dtype="float32", n_threads=None, backend="cpp"):
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype
        self.n_threads = n_threads
        self.backend = backend

    @available_if(_stochastic_solver)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over X, y (solvers "sgd" and "adam"); returns self. Weights and optimizer
        state carry over between calls."""
        return self._fit(X, y, sample_weight, incremental=True)

    def _targets(self, y, first, incremental, s):
        _regression_loss(self.loss)
        return np.ascontiguousarray(y.reshape(y.shape[0], -1), dtype=s.train_dtype)

    def _head(self, n_out):
        return "identity", _regression_loss(self.loss), 1.0 / n_out

    def predict(self, X):
        """Predictions as float64 (scikit-learn's rule for regressors, whatever the network's
        dtype): (n_samples,) for one output, else (n_samples, n_outputs)."""
        p = self._forward(X).astype(np.float64, copy=False)
        return p.ravel() if p.shape[1] == 1 else p

    def to_onnx(self, path=None, *, opset=17):
        """The fitted regressor as an ``onnx.ModelProto`` (written to ``path`` when given), with
        skl2onnx's names: input "X" (n, n_features_in_) in the estimator's dtype; output
        "variable" (n, n_outputs) = predict(X), in float64 as predict gives it. Needs the onnx
        package; see also register_skl2onnx."""
        from ._onnx_sklearn import estimator_to_onnx
        return estimator_to_onnx(self, path, opset=opset)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


def register_skl2onnx():
    """Registers converters for DenseClassifier and DenseRegressor with skl2onnx, so that
    ``skl2onnx.to_onnx`` converts them inside pipelines, with the graphs of their ``to_onnx``.
    The classifier takes skl2onnx's options for MLPClassifier "zipmap" (True by default, which
    needs float32 probabilities, False or "columns") and "output_class_labels" ("nocl" is
    refused). Needs skl2onnx (``pip install skl2onnx``)."""
    from ._onnx_sklearn import register
    register(DenseClassifier, DenseRegressor)


def _strictly_inside(p):
    """A logistic probability is never 0 or 1: values the sigmoid rounded to them become the
    nearest floats inside (0, 1), so their log and 1 - p stay finite."""
    np.clip(p, *_probability_bounds(p.dtype), out=p)


def _probability_bounds(dtype):
    """The least and greatest floats of dtype strictly inside (0, 1) (the ONNX export clips too)."""
    info = np.finfo(dtype)
    return info.tiny, 1 - info.epsneg


def _regression_loss(name):
    """denseprop's loss for DenseRegressor's loss name."""
    _checks.choice(name, "loss", tuple(_REGRESSION_LOSSES))
    if _REGRESSION_LOSSES[name] is None:
        raise ValueError(f"loss={name!r} is not supported: denseprop has no Poisson loss with a log link; "
                         f"use 'squared_error' (on log1p(y) for counts), or scikit-learn's MLPRegressor")
    return _REGRESSION_LOSSES[name]
