"""Seeing inside a network: the textbook quantities of one forward and backward pass (trace),
the gradients against finite differences (check_gradients), and per-layer health (health, and
the dead-unit warning of ``fit(..., verbose=1)``).

Everything here builds on the network's public attributes and its backend's operations
(``forward`` of one layer, ``dense_backward``, ``activation_forward``, ``activation_backward``,
``loss_forward``, ``loss_backward``, ``evaluate``, ``gradients``), so both backends are
covered alike.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings

import numpy as np

from . import _checks

# ---------------------------------------------------------------------------------- limits

#: trace keeps every intermediate array of every row; it refuses more rows than this ...
MAX_TRACE_ROWS = 100_000
#: ... or arrays holding more numbers than this in all (n * (n_in + 4 * sum(widths)) + parameters).
MAX_TRACE_NUMBERS = 50_000_000

# ---------------------------------------------------------------------------------- health rules

#: Which health measure each activation gets: "dead" (Z <= 0 on every row) for rectifier-like
#: activations, "saturated" (|Z| > SATURATION on every row) for squashing ones, None for the
#: rest. A test checks that every activation of the library is listed; silu may not exist yet.
HEALTH_RULES = {
    "relu": "dead", "leaky_relu": "dead", "elu": "dead", "gelu": "dead", "silu": "dead",
    "sigmoid": "saturated", "tanh": "saturated",
    "identity": None, "softplus": None, "softmax": None,
}
DEAD_ACTIVATIONS = frozenset(a for a, rule in HEALTH_RULES.items() if rule == "dead")
SATURATING_ACTIVATIONS = frozenset(a for a, rule in HEALTH_RULES.items() if rule == "saturated")
SATURATION = 5.0
#: fit(verbose=1) warns when more than this fraction of a layer's units is dead.
DEAD_WARNING_FRACTION = 0.5

# Rows per chunk of health's forward pass, so its workspace stays bounded for any n.
_HEALTH_CHUNK_NUMBERS = 1 << 22


# ================================================================================== trace

class LayerTrace:
    """One layer of a Trace: ``X``, ``Z``, ``H``, ``dH``, ``dZ``, ``dW``, ``db``, ``activation``.

    With B rows, fan_in inputs and k units::

        X   (B, fan_in)  the layer's input: the rows given, or the previous layer's H
        Z   (B, k)       Z = X W + b
        H   (B, k)       H = A(Z)
        dH  (B, k)       dL/dH = dZ_next W_next^T; on the last layer dL/dyhat (None under
                         cross-entropy, whose error is taken from the logits)
        dZ  (B, k)       E = dL/dZ = dH * A'(Z)  (softmax: H * (dH - sum(dH * H)) per row);
                         on the last layer as the loss computes it, e.g. (yhat - y) / B for
                         MSE with an identity output, (p - y) / B for cross-entropy
        dW  (fan_in, k)  dL/dW = X^T dZ
        db  (k,)         dL/db = sum of dZ over the rows
    """

    __slots__ = ("activation", "X", "Z", "H", "dH", "dZ", "dW", "db")

    def __init__(self, activation, X, Z, H, dW, db):
        self.activation, self.X, self.Z, self.H, self.dW, self.db = activation, X, Z, H, dW, db
        self.dH = self.dZ = None

    def __repr__(self):
        shapes = ", ".join(f"{k}={_shape(getattr(self, k))}" for k in self.__slots__[1:])
        return f"LayerTrace(activation={self.activation!r}, {shapes})"


class Trace:
    """One forward and one backward pass over B rows, as the textbook writes it::

        loss    float        L = (1/B) sum_i w_i loss_i, what evaluate() gives for these rows
        output  (B, n_out)   yhat, the last layer's H
        dloss   (B, n_out)   dL/dyhat, e.g. (yhat - y) / B for MSE; None under cross-entropy
        layers  list         one LayerTrace per layer, input to output
    """

    __slots__ = ("loss", "output", "dloss", "layers")

    def __init__(self, loss, output, dloss, layers):
        self.loss, self.output, self.dloss, self.layers = loss, output, dloss, layers

    def __repr__(self):
        return (f"Trace(loss={self.loss:.6g}, output={_shape(self.output)}, dloss={_shape(self.dloss)}, "
                f"layers=[{', '.join(repr(t.activation) for t in self.layers)}])")


def _affine(be, X, W, b):
    """Z = X W + b by the backend's forward pass of a one-layer identity network: unlike the
    single operation dense_forward, it holds BLAS at one thread for small products, which on a
    busy 2-core machine took a (625, 64) x (64, 64) product from 16 ms to 51 us."""
    out = np.empty((X.shape[0], W.shape[1]), X.dtype)
    be.forward(X, [W, b], ["identity"], out)
    return out


def _shape(a):
    return "None" if a is None else "x".join(map(str, a.shape))


def _row_count(X):
    """Rows of X before any conversion, so a huge input is refused before it is copied."""
    shape = getattr(X, "shape", None)
    if shape is not None:
        return int(shape[0]) if len(shape) else 0
    try:
        return len(X)
    except TypeError:  # not a sequence: the network's own conversion says what is wrong
        return 0


def _check_trace_size(net, n):
    numbers = n * (net.layers[0] + 4 * sum(net.layers[1:])) + sum(
        fi * fo + fo for fi, fo in zip(net.layers[:-1], net.layers[1:]))
    if n > MAX_TRACE_ROWS or numbers > MAX_TRACE_NUMBERS:
        raise ValueError(
            f"trace keeps every intermediate array of every row: {n:,} rows of a {net.layers} network "
            f"would hold {numbers:,} numbers, over the limit of {MAX_TRACE_ROWS:,} rows and "
            f"{MAX_TRACE_NUMBERS:,} numbers; trace a few rows (X[:100], y[:100]) instead")


def trace(net, X, y, sample_weight=None):
    """The forward and backward pass of ``net`` over the rows of X; see ``Network.trace``."""
    net._check_idle("trace")
    _check_trace_size(net, _row_count(X))
    Xc = net._X(X)
    n = Xc.shape[0]
    Y = net._Y(y, n)
    w = _checks.sample_weights(sample_weight, n, net.dtype)
    if isinstance(X, np.ndarray) and np.may_share_memory(Xc, X):
        Xc = Xc.copy()  # the trace is a snapshot: it must not change when the caller's X does
    dW, db = net.gradients(Xc, Y, w)  # the very arrays gradients() gives, bit for bit
    be = net._backend
    layers, inp = [], Xc
    for l, act in enumerate(net.activations):
        Z = _affine(be, inp, net.weights[l], net.biases[l])
        H = be.activation_forward(act, Z)
        layers.append(LayerTrace(act, inp, Z, H, dW[l], db[l]))
        inp = H
    last, out_act = layers[-1], net.activations[-1]
    loss = be.loss_forward(net.loss, out_act, last.Z, last.H, Y, w)
    last.dZ = be.loss_backward(net.loss, out_act, last.Z, last.H, Y, w)
    dloss = None
    if net.loss != "cross_entropy":
        # dL/dyhat: the loss's gradient as if the output activation were the identity (Z = H).
        dloss = be.loss_backward(net.loss, "identity", last.H, last.H, Y, w)
        last.dH = dloss
    for l in range(len(layers) - 2, -1, -1):
        nxt, t = layers[l + 1], layers[l]
        t.dH = be.dense_backward(nxt.X, net.weights[l + 1], nxt.dZ)[2]
        t.dZ = be.activation_backward(t.activation, t.Z, t.H, t.dH)
    return Trace(float(loss), last.H, dloss, layers)


# ================================================================================== health

def _dead(activation, zmax):
    """The fraction of units whose Z <= 0 on every row (zmax: each unit's largest Z), for
    rectifier-like activations; 0.0 for the others."""
    return float((zmax <= 0).mean()) if activation in DEAD_ACTIVATIONS else 0.0


def _saturated(activation, absmin):
    """The fraction of units whose |Z| > SATURATION on every row (absmin: each unit's smallest
    |Z|), for squashing activations; 0.0 for the others."""
    return float((absmin > SATURATION).mean()) if activation in SATURATING_ACTIVATIONS else 0.0


class _UnitStats:
    """Per-unit extremes and the mean |Z| of one layer, gathered chunk by chunk of rows."""

    def __init__(self, k):
        self.zmax = np.full(k, -np.inf)
        self.absmin = np.full(k, np.inf)
        self.abs_sum, self.abs_max, self.count = 0.0, 0.0, 0

    def add(self, Z):
        A = np.abs(Z)
        np.maximum(self.zmax, Z.max(axis=0), out=self.zmax)
        np.minimum(self.absmin, A.min(axis=0), out=self.absmin)
        self.abs_sum += float(A.sum(dtype=np.float64))
        self.abs_max = max(self.abs_max, float(A.max()))
        self.count += Z.size


def _layer_outputs(net, X, last):
    """Yields (layer, Z) for layers 0..last over the rows of X, one layer at a time."""
    be, h = net._backend, X
    for l in range(last + 1):
        Z = _affine(be, h, net.weights[l], net.biases[l])
        yield l, Z
        if l < last:
            h = be.activation_forward(net.activations[l], Z)


def health(net, X, y=None):
    """Per-layer health over the rows of X; see ``Network.health``."""
    net._check_idle("compute health")
    X = net._X(X)
    grads = None
    if y is not None:
        grads = net.gradients(X, net._Y(y, X.shape[0]))[0]
    acts = net.activations
    stats = [_UnitStats(k) for k in net.layers[1:]]
    chunk = max(1, _HEALTH_CHUNK_NUMBERS // max(net.layers))
    for s in range(0, X.shape[0], chunk):
        for l, Z in _layer_outputs(net, X[s:s + chunk], len(acts) - 1):
            stats[l].add(Z)
    report = []
    for l, (act, st) in enumerate(zip(acts, stats)):
        entry = {"activation": act, "units": net.layers[l + 1], "dead": _dead(act, st.zmax),
                 "saturated": _saturated(act, st.absmin), "mean_abs_z": st.abs_sum / st.count,
                 "max_abs_z": st.abs_max}
        if grads is not None:
            entry["grad_norm"] = float(np.linalg.norm(grads[l].astype(np.float64, copy=False)))
        report.append(entry)
    return report


# Rows of the training data the dead-unit watch looks at: every row of a small data set, a
# 32nd of a larger one, at most WATCH_MAX_ROWS (evenly spaced, so no random draw is used).
WATCH_ROW_SHARE = 32
WATCH_MIN_ROWS = 64
WATCH_MAX_ROWS = 1024
#: The share of the training time the dead-unit checks may take: after an epoch the check
#: runs when the checks so far and this one (expected to take as long as the last) stay
#: within this share of the epochs so far, so short epochs are checked every few epochs.
WATCH_BUDGET = 0.02
#: What the first check is expected to take: about the least measured (a tiny network's
#: check, 22-25 us warm, 40-110 us as the first of a fit; benchmarks/README.md), so a fit
#: of less than WATCH_FIRST_CHECK / WATCH_BUDGET = 2.5 ms of training is not checked.
WATCH_FIRST_CHECK = 50e-6


class DeadUnitWatch:
    """fit(verbose=1): after an epoch, warns once per layer when more than half of its units
    are dead (Z <= 0) on every one of a fixed, evenly spaced sample of the training rows."""

    def __init__(self, net, X, enabled=True):
        self.net = net
        self.todo = [l for l, a in enumerate(net.activations) if a in DEAD_ACTIVATIONS] if enabled else []
        self.trained = self.spent = 0.0
        self.last = WATCH_FIRST_CHECK
        self.X = None
        if self.todo:
            n = X.shape[0]
            rows = min(n, max(WATCH_MIN_ROWS, min(WATCH_MAX_ROWS, n // WATCH_ROW_SHARE)))
            stride = n // rows
            self.X = np.ascontiguousarray(X[: stride * rows: stride])

    def epoch_end(self, record):
        """Checks after the epoch of a fit's history record, when the time budget allows."""
        if not self.todo:
            return
        self.trained += record["time"]
        if self.spent + self.last > WATCH_BUDGET * self.trained:
            return
        start = time.perf_counter()
        found = [(l, _dead(self.net.activations[l], Z.max(axis=0)))
                 for l, Z in _layer_outputs(self.net, self.X, self.todo[-1]) if l in self.todo]
        self.last = time.perf_counter() - start
        self.spent += self.last
        for l, dead in found:
            if dead > DEAD_WARNING_FRACTION:
                self.todo.remove(l)
                self._warn(l, dead, record["epoch"])

    def _warn(self, l, dead, epoch):
        act = self.net.activations[l]
        where = "output layer" if l == len(self.net.activations) - 1 else "hidden layer"
        warnings.warn(
            f"layer {l} ({where}, {act}): {dead:.0%} of its {self.net.layers[l + 1]} units are dead "
            f"after epoch {epoch + 1} (Z <= 0 on every one of {self.X.shape[0]} sampled training "
            f"rows, so they pass no gradient); lower the learning rate, scale the inputs to zero "
            f"mean and unit variance, use leaky_relu, or start from a positive bias_init",
            RuntimeWarning, stacklevel=_first_caller_outside())


def _first_caller_outside():
    """The warnings stacklevel of the first caller outside this package, so that a warning
    points at the user's fit(...) however the training path is split into functions."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = sys._getframe(1), 1  # level 1: the function calling warnings.warn
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


# ================================================================================== gradient check

#: check_gradients: the largest error accepted, by the dtype the analytic gradients run in.
#: Correct gradients measured at most 7.8e-4 (float32) and 0 (float64) over 1,100 random
#: networks and data sets; a layer's gradient off by 1% (float32) or 1e-5 (float64) fails.
GRADIENT_TOLERANCE = {np.dtype(np.float32): 5e-3, np.dtype(np.float64): 1e-6}
#: The error's denominator is at least this fraction of the largest numeric derivative of the
#: same array, so entries far below the array's scale are judged against that scale.
GRADIENT_FLOOR = {np.dtype(np.float32): 1e-3, np.dtype(np.float64): 1e-6}
#: Default step: h = eps * max(1, |parameter|), in float64.
DEFAULT_EPS = 1e-6
# Rounding of the float64 loss, in units of its last place, that a difference may carry
# (measured up to 9 with 30,000 rows; 0 makes deep sigmoid networks fail in float64).
_ROUNDING_ULPS = 64.0


class GradientReport:
    """What check_gradients found: ``ok``, ``max_rel_error``, ``layers`` (one {"W": err, "b": err}
    per layer, None for an array none of whose entries was drawn), ``worst`` = (layer, "W" or
    "b", index), ``worst_values`` = (analytic, numeric) there, ``tolerance``, ``checked`` and
    ``total`` parameters, ``eps``."""

    def __init__(self, ok, max_rel_error, layers, worst, worst_values, tolerance, checked, total, eps,
                 dtype, backend, activations):
        self.ok, self.max_rel_error, self.layers, self.worst = ok, max_rel_error, layers, worst
        self.worst_values, self.tolerance, self.checked, self.total = worst_values, tolerance, checked, total
        self.eps, self.dtype, self.backend, self.activations = eps, dtype, backend, activations

    def __repr__(self):
        return f"<GradientReport ok={self.ok} max_rel_error={self.max_rel_error:.3g}>"

    def __str__(self):
        verdict = "ok" if self.ok else "FAILED"
        lines = [f"gradient check {verdict}: max relative error {self.max_rel_error:.3g} "
                 f"(tolerance {self.tolerance:g} for {self.dtype}, backend {self.backend!r})",
                 f"checked {self.checked} of {self.total} parameters, step eps={self.eps:g} * max(1, |p|)",
                 f"  {'layer':>5}  {'activation':<11} {'W error':>10} {'b error':>10}"]
        for l, (act, errs) in enumerate(zip(self.activations, self.layers)):
            cells = ["-" if errs[k] is None else f"{errs[k]:.3g}" for k in ("W", "b")]
            flag = "" if all(errs[k] is None or errs[k] <= self.tolerance for k in ("W", "b")) else "  <-"
            lines.append(f"  {l:>5}  {act:<11} {cells[0]:>10} {cells[1]:>10}{flag}")
        if self.worst is not None:
            l, kind, idx = self.worst
            a, num = self.worst_values
            lines.append(f"worst: layer {l} {kind}[{', '.join(map(str, idx))}]: analytic {a:.9g}, "
                         f"numeric {num:.9g}")
        return "\n".join(lines)


def _allocate(sizes, budget):
    """How many entries to draw from each array: all when they fit, else an even share each,
    the small arrays' unused share going to the larger ones."""
    take = [0] * len(sizes)
    left, arrays = budget, len(sizes)
    for k in sorted(range(len(sizes)), key=lambda k: sizes[k]):
        take[k] = min(sizes[k], left // arrays)
        left -= take[k]
        arrays -= 1
    for k in sorted(range(len(sizes)), key=lambda k: -sizes[k]):  # the remainder of the division
        extra = min(left, sizes[k] - take[k])
        take[k] += extra
        left -= extra
    return take


EPS_RANGE = (1e-12, 0.1)  # smaller steps vanish in rounding, larger ones in curvature


def _check_eps(eps):
    if eps is None:
        return DEFAULT_EPS
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, (int, float, np.integer, np.floating)):
        raise TypeError(f"eps must be a float or None, got {type(eps).__name__}")
    eps = float(eps)
    if not EPS_RANGE[0] <= eps <= EPS_RANGE[1]:  # also refuses NaN
        raise ValueError(f"eps must be between {EPS_RANGE[0]:g} and {EPS_RANGE[1]:g}, got {eps}; "
                         f"the default (None) is {DEFAULT_EPS:g}")
    return eps


def _check_count(x, name):
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(x).__name__}")
    if x < 1:
        raise ValueError(f"{name} must be at least 1, got {x}")
    return int(x)


def _differences(evaluate, flat, i, eps, L0):
    """(forward difference, backward difference, largest |loss| seen, smaller step) of the loss
    in parameter flat[i], which is put back exactly afterwards."""
    old = flat[i]
    step = eps * max(1.0, abs(old))
    flat[i] = old + step
    up = evaluate()
    h_up = flat[i] - old  # the step actually taken, after rounding
    flat[i] = old - step
    down = evaluate()
    h_down = old - flat[i]
    flat[i] = old
    return (up - L0) / h_up, (L0 - down) / h_down, max(abs(up), abs(down), abs(L0)), min(h_up, h_down)


def _entry_error(a, fp, fm, L, h, floor):
    """The error of one analytic derivative a against the forward and backward differences fp
    and fm: how far a lies outside the interval they span (widened by the loss's rounding),
    relative to max(|a|, |central difference|, floor). At a kink (relu at 0, mae at y)
    the one-sided slopes differ and the analytic one, being one of them, lies inside."""
    if not all(map(math.isfinite, (a, fp, fm, L))):
        return math.inf
    slack = _ROUNDING_ULPS * np.finfo(np.float64).eps * L / h
    lo, hi = min(fp, fm) - slack, max(fp, fm) + slack
    outside = max(lo - a, a - hi, 0.0)
    if outside == 0.0:
        return 0.0
    return outside / max(abs(a), abs(0.5 * (fp + fm)), floor)


def _array_errors(evaluate, param, grad, picks, eps, L0, floor_share):
    """[(error, flat index, central difference)] for the drawn entries of one parameter array;
    the floor is floor_share of the largest central difference among them."""
    flat, gflat = param.reshape(-1), grad.reshape(-1)
    diffs = [(i, *_differences(evaluate, flat, i, eps, L0)) for i in picks]
    scale = max((abs(0.5 * (fp + fm)) for _, fp, fm, _, _ in diffs if math.isfinite(fp + fm)), default=0.0)
    return [(_entry_error(float(gflat[i]), fp, fm, L, h, floor_share * scale), i, 0.5 * (fp + fm))
            for i, fp, fm, L, h in diffs]


def check_gradients(net, X, y, eps=None, sample_weight=None, max_checks=2000, seed=0):
    """Checks ``net.gradients`` against finite differences of the loss; returns a GradientReport.

    The analytic side is ``net.gradients(X, y, sample_weight)``, in the network's dtype and
    backend, so the float32 kernels are what is checked. The numeric side runs the same
    backend's ``evaluate`` on a float64 copy of the parameters and data, stepping one parameter
    p at a time by ``h = eps * max(1, |p|)`` (eps defaults to 1e-6, between 1e-12 and 0.1):
    the forward difference ``(L(p+h) - L(p)) / h`` and the backward one ``(L(p) - L(p-h)) / h``.

    Rule: the analytic derivative ``a`` must lie between the two one-sided differences,
    widened by the float64 rounding of the loss. For a smooth loss they straddle the exact
    derivative within ``h * |L''|``, so this is as strict as a central difference; at a kink
    (relu at Z = 0, leaky_relu, mae where yhat = y) they are the slopes on either side, and the
    analytic derivative is one of them. The error of a parameter is the distance of ``a``
    outside that interval over ``max(|a|, |central difference|, floor * G)``, where G is the
    largest central difference found in the same array: entries far below their array's
    scale, whose relative error is all rounding, are judged against that scale. floor and the
    tolerance ``rep.ok`` uses are per dtype: float32 1e-3 and 5e-3, float64 1e-6 and 1e-6
    (GRADIENT_FLOOR, GRADIENT_TOLERANCE). A non-finite derivative on either side is an error
    of inf. In float32 a saturated sigmoid unit's derivative ``H (1 - H)`` loses digits to
    cancellation beyond |Z| of about 11 and can fail the check although its formula is right:
    check the same network in float64 to tell the two apart. Where two or more rows sit exactly on a kink of the same parameter the rule
    may not hold; move X a little.

    At most ``max_checks`` parameters are checked (all of them when there are fewer), drawn
    with ``numpy.random.default_rng(seed)`` and shared evenly among the arrays W0, b0, W1, ...,
    so each layer's weights and biases are checked. Each check costs two evaluations over all
    rows: use a few hundred rows. The network is not changed.
    """
    net._check_idle("check gradients")
    eps = _check_eps(eps)
    max_checks = _check_count(max_checks, "max_checks")
    Xc = net._X(X)
    n = Xc.shape[0]
    Y = net._Y(y, n)
    w = _checks.sample_weights(sample_weight, n, net.dtype)
    dW, db = net.gradients(Xc, Y, w)
    analytic = [g for pair in zip(dW, db) for g in pair]
    params = [p.astype(np.float64) for p in net._params()]  # the float64 copy the differences step
    X64, Y64 = Xc.astype(np.float64), Y.astype(np.float64)
    w64 = None if w is None else w.astype(np.float64)
    be, acts, loss = net._backend, list(net.activations), net.loss

    def evaluate():
        return be.evaluate(X64, Y64, params, acts, loss, w64)

    L0 = evaluate()
    if not math.isfinite(L0):
        raise ValueError(f"the loss is {L0} at these parameters and rows, so it has no finite "
                         f"differences; check X, y and the weights for extreme values")
    rng = np.random.default_rng(seed)
    take = _allocate([p.size for p in params], max_checks)
    errors, worst = [None] * len(params), (-1.0, 0, 0, 0.0)
    for k, (p, g) in enumerate(zip(params, analytic)):
        if take[k]:
            picks = np.sort(rng.choice(p.size, take[k], replace=False)).tolist()
            found = _array_errors(evaluate, p, g, picks, eps, L0, GRADIENT_FLOOR[net.dtype])
            e, i, numeric = max(found, key=lambda f: f[0])
            errors[k] = e
            if e > worst[0]:
                worst = (e, k, i, numeric)
    err, k, i, numeric = worst
    tol = GRADIENT_TOLERANCE[net.dtype]
    layer, kind = divmod(k, 2)
    index = tuple(int(j) for j in np.unravel_index(i, params[k].shape))
    return GradientReport(
        ok=bool(err <= tol), max_rel_error=float(err),
        layers=[{"W": errors[2 * l], "b": errors[2 * l + 1]} for l in range(len(acts))],
        worst=(layer, "Wb"[kind], index), worst_values=(float(analytic[k].reshape(-1)[i]), float(numeric)),
        tolerance=tol, checked=sum(take), total=sum(p.size for p in params), eps=eps,
        dtype=net.dtype.name, backend=net.backend, activations=acts)
