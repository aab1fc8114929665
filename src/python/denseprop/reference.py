"""NumPy reference backend: the executable specification of ``denseprop._core``.

Every function here has the name, arguments and semantics of its C++ counterpart and is written
in plain vectorised NumPy for clarity; the tests hold the C++ backend to it. Arguments are taken
as valid: ``denseprop._checks`` checks them before ``Network`` calls a backend.

Conventions shared with ``_core``:

* arrays are C-contiguous float32 or float64; all float arrays of one call share one dtype;
* a network is a flat list ``params = [W0, b0, W1, b1, ...]`` with ``W_l`` of shape
  ``(fan_in, fan_out)`` and ``b_l`` of shape ``(fan_out,)``, plus one activation name per layer
  (the last one is the output activation);
* a loss is a mean over the B rows of a batch and a sum over outputs, each row weighted by its
  optional sample weight: ``L = (1/B) * sum_i w_i * loss_i``;
* ``metrics`` is a float64 array ``[sum_i w_i loss_i, weighted correct rows, weighted squared
  error of output 0, output 1, ...]`` that evaluate and train_epoch add to;
* optimizer hyper-parameters come as an OptimizerConfig (``kind``, ``lr``, ``momentum``,
  ``nesterov``, ``weight_decay``, ``beta1``, ``beta2``, ``eps``; ``states()`` arrays per parameter).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from . import _core  # the one thread planner, so both backends chunk their passes alike

# --------------------------------------------------------------------------------------
# Activations: one row per activation, H = f(Z) and f'(Z) written with H wherever exact.


class Activation(NamedTuple):
    f: Callable[[np.ndarray], np.ndarray]
    df: Callable[[np.ndarray, np.ndarray], np.ndarray] | None  # None: row-wise (softmax)


LEAKY_SLOPE = 0.01
ELU_ALPHA = 1.0
_GELU_C = np.sqrt(2.0 / np.pi)
_GELU_A = 0.044715


def _sigmoid(z):
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    e = np.exp(z[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def _softplus(z):
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


def _gelu(z):
    """The tanh form 0.5 z (1 + tanh(u)), u = c (z + a z^3), as z sigmoid(2u): no cancellation."""
    c2, a = z.dtype.type(2 * _GELU_C), z.dtype.type(_GELU_A)
    return z * _sigmoid(c2 * (z + a * z * z * z))


def _gelu_grad(z, h):
    c, a = z.dtype.type(_GELU_C), z.dtype.type(_GELU_A)
    s = _sigmoid(z.dtype.type(2) * c * (z + a * z * z * z))
    return s + 2 * z * s * (1 - s) * c * (1 + z.dtype.type(3 * _GELU_A) * z * z)


def _silu_grad(z, h):
    s = _sigmoid(z)
    return s * (1 + z * (1 - s))


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e * (1 / e.sum(axis=1, keepdims=True))


ACTIVATIONS = {
    "identity": Activation(lambda z: z.copy(), lambda z, h: np.ones_like(h)),
    "relu": Activation(lambda z: np.maximum(z, 0), lambda z, h: (h > 0).astype(h.dtype)),
    "leaky_relu": Activation(lambda z: np.where(z > 0, z, z.dtype.type(LEAKY_SLOPE) * z),
                             lambda z, h: np.where(h > 0, h.dtype.type(1), h.dtype.type(LEAKY_SLOPE))),
    "elu": Activation(lambda z: np.where(z > 0, z, z.dtype.type(ELU_ALPHA) * np.expm1(np.minimum(z, 0))),
                      lambda z, h: np.where(h > 0, h.dtype.type(1), h + h.dtype.type(ELU_ALPHA))),
    "gelu": Activation(_gelu, _gelu_grad),
    "sigmoid": Activation(_sigmoid, lambda z, h: h * (1 - h)),
    "tanh": Activation(np.tanh, lambda z, h: 1 - h * h),
    "softplus": Activation(_softplus, lambda z, h: _sigmoid(z)),
    "silu": Activation(lambda z: z * _sigmoid(z), _silu_grad),
    "softmax": Activation(_softmax, None),
}


def _act_backward(name, Z, H, dH):
    if ACTIVATIONS[name].df is None:  # softmax: the row-wise Jacobian product
        return H * (dH - (dH * H).sum(axis=1, keepdims=True))
    return dH * ACTIVATIONS[name].df(Z, H)


# --------------------------------------------------------------------------------------
# Losses: one row per loss. A residual loss gives, for R = H - Y, each element's loss (float64)
# and dloss/dH; cross-entropy (None) is computed from the logits of a softmax or sigmoid output.


class ResidualLoss(NamedTuple):
    value: Callable[[np.ndarray], np.ndarray]
    grad: Callable[[np.ndarray], np.ndarray]


HUBER_DELTA = 1.0

LOSSES = {
    "mse": ResidualLoss(lambda r: 0.5 * r * r, lambda R: R),
    "cross_entropy": None,
    "mae": ResidualLoss(np.abs, np.sign),
    "huber": ResidualLoss(
        lambda r: np.where(np.abs(r) <= HUBER_DELTA, 0.5 * r * r, HUBER_DELTA * (np.abs(r) - 0.5 * HUBER_DELTA)),
        lambda R: np.clip(R, -HUBER_DELTA, HUBER_DELTA).astype(R.dtype)),
}


def _row_losses(loss, out_act, Z, H, Y):
    """Per-row losses (float64) and dLoss_row/dZ, before the output activation's derivative
    for residual losses (in the arrays' dtype)."""
    if LOSSES[loss] is None and out_act == "softmax":
        mx = Z.max(axis=1, keepdims=True)
        lse = mx.astype(np.float64) + np.log(np.exp((Z - mx).astype(np.float64)).sum(axis=1, keepdims=True))
        rows = (Y.astype(np.float64) * (lse - Z.astype(np.float64))).sum(axis=1)
        return rows, H * Y.sum(axis=1, keepdims=True) - Y
    if LOSSES[loss] is None:  # sigmoid outputs: binary cross-entropy per output
        z = Z.astype(np.float64)
        rows = (np.maximum(z, 0) - Y.astype(np.float64) * z + np.log1p(np.exp(-np.abs(z)))).sum(axis=1)
        return rows, H - Y
    R = H - Y
    return LOSSES[loss].value(R.astype(np.float64)).sum(axis=1), LOSSES[loss].grad(R)


def _loss_grad(loss, out_act, Z, H, Y, w, scale):
    """(sum_i w_i loss_i, dZ = scale * d/dZ of that sum)."""
    rows, dH = _row_losses(loss, out_act, Z, H, Y)
    g = np.full((Z.shape[0], 1), scale, dtype=Z.dtype) if w is None else (Z.dtype.type(scale) * w)[:, None]
    dZ = g * dH
    if LOSSES[loss] is not None and out_act != "identity":
        dZ = _act_backward(out_act, Z, H, dZ)
    total = rows.sum() if w is None else (w.astype(np.float64) * rows).sum()
    return float(total), dZ


def metrics_size(n_out):
    """Entries of the metrics that evaluate and train_epoch add to: [sum of w_i loss_i, weighted
    correct rows, weighted squared error of each output]."""
    return 2 + n_out


def _add_metrics(loss, out_act, H, Y, w, metrics):
    wf = np.ones(H.shape[0]) if w is None else w.astype(np.float64)
    if LOSSES[loss] is None:
        if out_act == "softmax":
            correct = H.argmax(axis=1) == Y.argmax(axis=1)
        else:
            correct = ((H > 0.5) == (Y > 0.5)).all(axis=1)
        metrics[1] += wf[correct].sum()
    else:
        r = H.astype(np.float64) - Y.astype(np.float64)
        metrics[2:] += (wf[:, None] * r * r).sum(axis=0)


# --------------------------------------------------------------------------------------
# Optimizers: one row per optimizer, an update of one parameter array in place (PyTorch's
# definitions). states holds config.states() arrays shaped like p; step is 1-based.

def _sgd(c, p, g, states, step, decay):
    t = p.dtype.type
    lr, wd = t(c.lr), t(decay)
    if not states:  # p = keep p - lr g, keep = 1 - lr decay
        p[...] = (1 - lr * wd) * p - lr * g
        return
    (vel,) = states
    mu = t(c.momentum)
    g = g + wd * p
    vel *= mu
    vel += g
    p -= lr * (g + mu * vel if c.nesterov else vel)


def _adam(c, p, g, states, step, decay, decoupled=False):
    t = p.dtype.type
    m, v = states
    lr, b1, b2 = t(c.lr), t(c.beta1), t(c.beta2)
    if decoupled:  # AdamW: p shrinks first, and the gradient carries no decay
        p *= 1 - lr * t(decay)
    else:
        g = g + t(decay) * p
    m *= b1
    m += (1 - b1) * g
    v *= b2
    v += (1 - b2) * g * g
    bc1 = t(1.0 - c.beta1 ** step)
    bc2_sqrt = t(np.sqrt(1.0 - c.beta2 ** step))
    p -= (lr / bc1) * m / (np.sqrt(v) / bc2_sqrt + t(c.eps))


OPTIMIZERS = {
    "sgd": _sgd,
    "adam": _adam,
    "adamw": lambda c, p, g, states, step, decay: _adam(c, p, g, states, step, decay, decoupled=True),
}


# --------------------------------------------------------------------------------------
# Single operations

def gemm(A, B, C, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    """C (M, N) = alpha * op(A) @ op(B) + beta * C, in place; op(A) is A.T when trans_a."""
    prod = (A.T if trans_a else A) @ (B.T if trans_b else B)
    a, b = C.dtype.type(alpha), C.dtype.type(beta)
    C[...] = a * prod if b == 0 else a * prod + b * C


def dense_forward(X, W, b):
    """Z (n, n_out) = X (n, n_in) @ W (n_in, n_out) + b (n_out,)."""
    return X @ W + b


def dense_backward(X, W, dZ):
    """(dW, db, dX) = (X.T @ dZ, dZ.sum(0), dZ @ W.T)."""
    return X.T @ dZ, dZ.sum(axis=0), dZ @ W.T


def activation_forward(name, Z):
    """H = act(Z) for Z (n, k); softmax is row-wise."""
    return ACTIVATIONS[name].f(Z)


def activation_backward(name, Z, H, dH):
    """dZ = dH * act'(Z); for softmax the row-wise Jacobian product H * (dH - sum(dH * H))."""
    return _act_backward(name, Z, H, dH)


def loss_forward(loss, output_activation, Z, H, Y, sample_weight=None):
    """Mean loss (1/B) sum_i w_i loss_i of output pre-activations Z (B, k), H = act(Z), targets Y."""
    rows, _ = _row_losses(loss, output_activation, Z, H, Y)
    total = rows.sum() if sample_weight is None else (sample_weight.astype(np.float64) * rows).sum()
    return float(total) / Z.shape[0]


def loss_backward(loss, output_activation, Z, H, Y, sample_weight=None):
    """dZ (B, k): the gradient of loss_forward with respect to Z."""
    return _loss_grad(loss, output_activation, Z, H, Y, sample_weight, 1.0 / Z.shape[0])[1]


def optimizer_update(config, param, grad, state, step, decay):
    """One optimizer step on param, in place (state: config.states() arrays like param)."""
    OPTIMIZERS[config.kind](config, param, grad, list(state), step, decay)


# --------------------------------------------------------------------------------------
# Whole-network passes

def _layers(params):
    return params[0::2], params[1::2]


def _chunk_rows(params, n, threads, pass_):
    """Rows per chunk, as the C++ backend splits the same pass (same boundaries, same sums)."""
    Ws, _ = _layers(params)
    sizes = [Ws[0].shape[0]] + [W.shape[1] for W in Ws]
    threads = _core.get_num_threads() if threads is None else threads
    return _core.plan_threads(sizes, n, 0, threads, pass_)["chunk_rows"]


def _forward_layers(Ws, bs, acts, X):
    """Per-layer (Z, H) of one batch; Z is the pre-activation."""
    cache, h = [], X
    for W, b, act in zip(Ws, bs, acts):
        z = h @ W + b
        h = ACTIVATIONS[act].f(z)
        cache.append((z, h))
    return cache


def _backward_layers(Ws, acts, X, cache, dZ):
    """Yields (l, layer input, dZ_l) from the output layer down, taking dZ_l @ W_l.T from W_l
    before the caller may update it."""
    for l in range(len(Ws) - 1, -1, -1):
        inp = X if l == 0 else cache[l - 1][1]
        dH = dZ @ Ws[l].T if l else None
        yield l, inp, dZ
        if l:
            z, h = cache[l - 1]
            dZ = _act_backward(acts[l - 1], z, h, dH)


def forward(X, params, activations, out, check_finite=False, threads=None):
    """Writes the network's output for X (n, n_in) into out (n, n_out). With check_finite,
    returns False (and stops) at the first chunk of X holding NaN or inf; True otherwise."""
    Ws, bs = _layers(params)
    chunk = _chunk_rows(params, X.shape[0], threads, "predict")
    for s in range(0, X.shape[0], chunk):
        if check_finite and not np.isfinite(X[s:s + chunk]).all():
            return False
        out[s:s + chunk] = _forward_layers(Ws, bs, activations, X[s:s + chunk])[-1][1]
    return True


def evaluate(X, Y, params, activations, loss, sample_weight=None, metrics=None, threads=None):
    """Mean loss (1/n) sum_i w_i loss_i over X (n, n_in), Y (n, n_out). If given, the float64
    metrics (2 + n_out) gets [sum_i w_i loss_i, weighted correct rows, weighted squared error
    per output] added."""
    Ws, bs = _layers(params)
    metrics = np.zeros(metrics_size(Y.shape[1])) if metrics is None else metrics
    before = metrics[0]
    chunk = _chunk_rows(params, X.shape[0], threads, "evaluate")
    for s in range(0, X.shape[0], chunk):
        sl = slice(s, s + chunk)
        w = None if sample_weight is None else sample_weight[sl]
        z, h = _forward_layers(Ws, bs, activations, X[sl])[-1]
        rows, _ = _row_losses(loss, activations[-1], z, h, Y[sl])
        metrics[0] += rows.sum() if w is None else (w.astype(np.float64) * rows).sum()
        _add_metrics(loss, activations[-1], h, Y[sl], w, metrics)
    return float((metrics[0] - before) / X.shape[0])


def gradients(X, Y, params, activations, loss, sample_weight, grads, threads=None):
    """Writes into grads = [dW0, db0, dW1, db1, ...] the gradients of evaluate() over all rows;
    returns evaluate()'s loss, from the same forward passes."""
    Ws, bs = _layers(params)
    for g in grads:
        g[...] = 0
    n = X.shape[0]
    chunk = _chunk_rows(params, n, threads, "gradients")
    scale, total = 1.0 / n, 0.0
    for s in range(0, n, chunk):
        sl = slice(s, s + chunk)
        Xc = X[sl]
        cache = _forward_layers(Ws, bs, activations, Xc)
        z, h = cache[-1]
        w = None if sample_weight is None else sample_weight[sl]
        part, dZ = _loss_grad(loss, activations[-1], z, h, Y[sl], w, scale)
        total += part
        for l, inp, d in _backward_layers(Ws, activations, Xc, cache, dZ):
            grads[2 * l] += inp.T @ d
            grads[2 * l + 1] += d.sum(axis=0)
    return total / n


def train_epoch(X, Y, params, activations, loss, batch_size, perm, sample_weight, optimizer, state, step,
                metrics, objective=None, threads=None):
    """One epoch of mini-batch training, updating params and the optimizer state in place.

    Returns the epoch's mean training loss, from each batch's forward pass before its update.
    Rows are visited in the order ``perm`` (int64, length n; None: in order) in batches of
    ``batch_size`` rows, the last one possibly smaller. ``optimizer`` is an OptimizerConfig;
    ``state`` holds ``optimizer.states()`` arrays per parameter, ordered W0, b0, W1, ... with each
    parameter's arrays adjacent; ``step`` an int64 array of shape (1,) counting the optimizer's
    steps, kept current (so an interrupt leaves it right); ``metrics`` as in evaluate, added to.
    ``objective`` (output_scale, by_weight_sum, decay_by_batch) changes how a batch's loss is
    normalised; None is the mean over the batch's rows.
    """
    Ws, bs = _layers(params)
    n = X.shape[0]
    metrics = np.zeros(metrics_size(Y.shape[1])) if metrics is None else metrics
    step = np.zeros(1, np.int64) if step is None else step
    k = optimizer.states()
    before = metrics[0]
    for s in range(0, n, batch_size):
        idx = slice(s, s + batch_size) if perm is None else perm[s:s + batch_size]
        Xb, Yb = X[idx], Y[idx]
        wb = None if sample_weight is None else sample_weight[idx]
        scale, decay, loss_weight = _batch_scale(optimizer, objective, Xb.shape[0], wb)
        if scale is None:  # sample weights summing to zero: no step
            continue
        cache = _forward_layers(Ws, bs, activations, Xb)
        z, h = cache[-1]
        total, dZ = _loss_grad(loss, activations[-1], z, h, Yb, wb, scale)
        metrics[0] += loss_weight * total
        _add_metrics(loss, activations[-1], h, Yb, wb, metrics)
        t = int(step[0]) + 1
        grads = [(l, inp.T @ d, d.sum(axis=0)) for l, inp, d in _backward_layers(Ws, activations, Xb, cache, dZ)]
        with _StepIsAtomic():  # Ctrl-C leaves the weights of the last completed step
            for l, dW, db in grads:
                update = OPTIMIZERS[optimizer.kind]
                update(optimizer, Ws[l], dW, state[2 * l * k:(2 * l + 1) * k], t, decay)
                update(optimizer, bs[l], db, state[(2 * l + 1) * k:(2 * l + 2) * k], t, 0.0)
            step[0] = t
    return float((metrics[0] - before) / n)


def _batch_scale(optimizer, objective, rows, w):
    """(loss gradient scale, weight decay, weight of the batch's loss in the metrics), or
    (None, None, None) for a batch that takes no step; see Objective in src/cpp/model.hpp."""
    if objective is None:
        return 1.0 / rows, optimizer.weight_decay, 1.0
    denominator = float(rows)
    if objective.by_weight_sum and w is not None:
        denominator = float(w.astype(np.float64).sum())
    if not denominator > 0:
        return None, None, None
    decay = optimizer.weight_decay / denominator if objective.decay_by_batch else optimizer.weight_decay
    return objective.output_scale / denominator, decay, rows / denominator * objective.output_scale


# --------------------------------------------------------------------------------------
# Shuffling

_GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _mulhi64(a, b):
    """floor(a * b / 2**64) for uint64 arrays, from 32-bit halves (NumPy has no 128-bit ints)."""
    low, s32 = np.uint64(0xFFFFFFFF), np.uint64(32)
    a0, a1, b0, b1 = a & low, a >> s32, b & low, b >> s32
    p00, p01, p10, p11 = a0 * b0, a0 * b1, a1 * b0, a1 * b1
    mid = (p00 >> s32) + (p01 & low) + (p10 & low)
    return p11 + (p01 >> s32) + (p10 >> s32) + (mid >> s32)


def shuffled_order(seed, out):
    """Fills ``out`` (int64, n) with the permutation of 0..n-1 that ``seed`` (an int in
    [0, 2**64)) fixes: forward Fisher-Yates, position i = 0, 1, ... swapping with
    ``i + floor(h_i * (n - i) / 2**64)``, where ``h_i`` is the splitmix64 hash of
    ``seed + i * 0x9E3779B97F4A7C15`` (mod 2**64).
    """
    n = out.shape[0]
    i = np.arange(n, dtype=np.uint64)
    h = np.uint64(int(seed)) + i * _GOLDEN_GAMMA
    h = (h ^ (h >> np.uint64(30))) * _MIX1
    h = (h ^ (h >> np.uint64(27))) * _MIX2
    h ^= h >> np.uint64(31)
    swap_with = (i + _mulhi64(h, np.uint64(n) - i)).tolist()
    order = list(range(n))
    for k in range(n):  # sequential by nature: each swap sees the earlier ones
        j = swap_with[k]
        order[k], order[j] = order[j], order[k]
    out[:] = order


class _StepIsAtomic:
    """Holds back SIGINT while one optimizer step is applied, then raises it; the C++ backend
    checks for Ctrl-C only between steps, and the reference keeps that promise too."""

    def __enter__(self):
        import signal
        import threading
        self.pending = False
        self.previous = None
        if threading.current_thread() is threading.main_thread() \
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self.previous = signal.signal(signal.SIGINT, self._hold)
        return self

    def _hold(self, signum, frame):
        self.pending = True

    def __exit__(self, *exc):
        if self.previous is not None:
            import signal
            signal.signal(signal.SIGINT, self.previous)
            if self.pending and exc[0] is None:
                raise KeyboardInterrupt
        return False
