"""NumPy reference backend: the executable specification of ``denseprop._core``.

Every function here has the name, signature and semantics of its C++ counterpart and is
written in plain vectorised NumPy for clarity. The tests hold the C++ backend to it.

Conventions shared with ``_core``:

* arrays are C-contiguous float32 or float64; all arrays of one call share one dtype;
* a network is a flat list ``params = [W0, b0, W1, b1, ...]`` with ``W_l`` of shape
  ``(fan_in, fan_out)`` and ``b_l`` of shape ``(fan_out,)``, plus one activation name per layer
  (the last one is the output activation);
* a loss is a mean over the B rows of a batch and a sum over outputs, each row weighted by
  its optional sample weight: ``L = (1/B) * sum_i w_i * loss_i``;
* ``metrics`` is a float64 array ``[sum_i w_i loss_i, weighted correct rows,
  weighted squared error of output 0, output 1, ...]`` that evaluate/train_epoch add to.
"""

from __future__ import annotations

import numpy as np

LEAKY_SLOPE = 0.01
ELU_ALPHA = 1.0
HUBER_DELTA = 1.0
_GELU_C = np.sqrt(2.0 / np.pi)
_GELU_A = 0.044715


# --------------------------------------------------------------------------------------
# Activations: H = act(Z) and act'(Z) written with H wherever that is exact.

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
    c, a = z.dtype.type(_GELU_C), z.dtype.type(_GELU_A)
    return z.dtype.type(0.5) * z * (1 + np.tanh(c * (z + a * z * z * z)))


def _gelu_grad(z):
    c, a = z.dtype.type(_GELU_C), z.dtype.type(_GELU_A)
    t = np.tanh(c * (z + a * z * z * z))
    half = z.dtype.type(0.5)
    return half * (1 + t) + half * z * (1 - t * t) * c * (1 + z.dtype.type(3 * _GELU_A) * z * z)


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e * (1 / e.sum(axis=1, keepdims=True))


ACTIVATIONS = {
    "identity": lambda z: z.copy(),
    "relu": lambda z: np.maximum(z, 0),
    "leaky_relu": lambda z: np.where(z > 0, z, z.dtype.type(LEAKY_SLOPE) * z),
    "elu": lambda z: np.where(z > 0, z, z.dtype.type(ELU_ALPHA) * np.expm1(np.minimum(z, 0))),
    "gelu": _gelu,
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "softplus": _softplus,
    "softmax": _softmax,
}

# act'(Z) as a function of (Z, H); softmax is row-wise and handled in activation_backward.
DERIVATIVES = {
    "identity": lambda z, h: np.ones_like(h),
    "relu": lambda z, h: (h > 0).astype(h.dtype),
    "leaky_relu": lambda z, h: np.where(h > 0, h.dtype.type(1), h.dtype.type(LEAKY_SLOPE)),
    "elu": lambda z, h: np.where(h > 0, h.dtype.type(1), h + h.dtype.type(ELU_ALPHA)),
    "gelu": lambda z, h: _gelu_grad(z),
    "sigmoid": lambda z, h: h * (1 - h),
    "tanh": lambda z, h: 1 - h * h,
    "softplus": lambda z, h: _sigmoid(z),
}

LOSSES = ("mse", "cross_entropy", "mae", "huber")
OPTIMIZERS = ("sgd", "adam")


# --------------------------------------------------------------------------------------
# Argument checks, mirroring the C++ bindings (no conversion, no copy).

def _array(a, name, ndim, writable=False, dtype=None):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}; "
                        f"convert it with numpy.ascontiguousarray(..., dtype=...)")
    if a.dtype.kind != "f" or a.dtype.itemsize not in (4, 8) or not a.dtype.isnative \
            or (dtype is not None and a.dtype != dtype):
        want = "float32 or float64" if dtype is None else np.dtype(dtype).name
        raise TypeError(f"{name} must be a native {want} array, got {a.dtype} array of shape {a.shape}")
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got {a.dtype} array of shape {a.shape}")
    if not a.flags.c_contiguous:
        raise TypeError(f"{name} must be C-contiguous, got a strided or Fortran-order view; "
                        f"pass numpy.ascontiguousarray({name})")
    if writable and not a.flags.writeable:
        raise ValueError(f"{name} is read-only but is written to; pass a writable array")
    return a


def _int(x, name, lo, hi=None):
    """An int (Python or NumPy, not bool) in [lo, hi], as the bindings accept."""
    if isinstance(x, (bool, np.bool_)) or not hasattr(type(x), "__index__"):
        raise TypeError(f"{name} must be an int, got {type(x).__name__}")
    x = int(x.__index__())
    if x < lo or (hi is not None and x > hi):
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {x}" if hi is not None
                         else f"{name} must be >= {lo}, got {x}")
    return x


def _float(x, name):
    """A finite real number (not bool), as the bindings accept."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a float, got {type(x).__name__}")
    try:
        v = float(x)
    except OverflowError:
        raise ValueError(f"{name} must be a finite float, got {x}") from None
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    return v


def _bool(x, name):
    if not isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(x).__name__}")
    return bool(x)


def _name(x, name, choices):
    if not isinstance(x, str):
        raise TypeError(f"{name} must be a str, got {type(x).__name__}")
    if x not in choices:
        raise ValueError(f"{name}: unknown value {x!r}; choose one of {', '.join(choices)}")
    return x


def _activation(x, name="name"):
    return _name(x, name, tuple(ACTIVATIONS))


def _model(params, activations):
    if not isinstance(params, (list, tuple)):
        raise TypeError(f"params must be a list, got {type(params).__name__}")
    if not isinstance(activations, (list, tuple)):
        raise TypeError(f"activations must be a list, got {type(activations).__name__}")
    if len(params) < 2 or len(params) % 2:
        raise ValueError(f"params must be a non-empty list [W0, b0, W1, b1, ...], got {len(params)} arrays")
    n_layers = len(params) // 2
    if len(activations) != n_layers:
        raise ValueError(f"activations must have one name per layer ({n_layers}), got {len(activations)}")
    dtype = _array(params[0], "params[0] (W0)", 2).dtype
    Ws, bs = [], []
    for l in range(n_layers):
        W = _array(params[2 * l], f"params[{2 * l}] (W{l})", 2, True, dtype)
        b = _array(params[2 * l + 1], f"params[{2 * l + 1}] (b{l})", 1, True, dtype)
        if W.size == 0:
            raise ValueError(f"params[{2 * l}] (W{l}) must not be empty")
        if l and W.shape[0] != Ws[-1].shape[1]:
            raise ValueError(f"params[{2 * l}] (W{l}) has {W.shape[0]} rows but the previous layer "
                             f"has {Ws[-1].shape[1]} outputs")
        if b.shape[0] != W.shape[1]:
            raise ValueError(f"params[{2 * l + 1}] (b{l}) must have length {W.shape[1]}, got {b.shape[0]}")
        act = _activation(activations[l], f"activations[{l}]")
        if act == "softmax" and l != n_layers - 1:
            raise ValueError("softmax is only allowed on the output layer")
        Ws.append(W)
        bs.append(b)
    return Ws, bs, list(activations), dtype


def _check_output_pair(loss, out_act):
    if loss == "cross_entropy" and out_act not in ("softmax", "sigmoid"):
        raise ValueError("loss 'cross_entropy' needs a 'softmax' or 'sigmoid' output activation")


def _data(X, Y, w, Ws, dtype, need_rows=True):
    X = _array(X, "X", 2, dtype=dtype)
    n = X.shape[0]
    if need_rows and n == 0:
        raise ValueError("X has no rows; pass at least one sample")
    if X.shape[1] != Ws[0].shape[0]:
        raise ValueError(f"X must have shape ({n}, {Ws[0].shape[0]}), got {X.shape}")
    if Y is not None:
        Y = _array(Y, "Y", 2, dtype=dtype)
        if Y.shape != (n, Ws[-1].shape[1]):
            raise ValueError(f"Y must have shape ({n}, {Ws[-1].shape[1]}), got {Y.shape}")
    if w is not None:
        w = _array(w, "sample_weight", 1, dtype=dtype)
        if w.shape[0] != n:
            raise ValueError(f"sample_weight must have length {n}, got {w.shape[0]}")
    return X, Y, w


def _no_overlap(outputs, others):
    """Refuses outputs that share memory with each other or with inputs, as the bindings do."""
    for i, (name, a) in enumerate(outputs):
        for other, b in outputs[i + 1:] + others:
            if a.size and b.size and np.shares_memory(a, b):
                raise ValueError(f"{name} and {other} share memory; pass separate arrays")


def _metrics(metrics, n_out):
    m = _array(metrics, "metrics", 1, True, np.float64)
    if m.shape[0] != 2 + n_out:
        raise ValueError(f"metrics must have length {2 + n_out}, got {m.shape[0]}")
    return m


def _chunk_rows(Ws, n):
    """Rows per chunk of forward/evaluate/gradients: the C++ backend's rule for a multi-threaded
    BLAS (on one thread it takes smaller chunks; sums over chunks then differ only by rounding)."""
    width = sum(2 * W.shape[1] for W in Ws)
    rows = min(max((4 << 20) // max(width, 1), 256), 4096)
    small = 1_000_000 // max(W.size for W in Ws)  # small layers: products within BLAS's small kernels
    if small >= 32:
        rows = min(rows, small)
    return max(1, min(rows, n))


# --------------------------------------------------------------------------------------
# Single operations

def gemm(A, B, C, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    """C (M, N) = alpha * op(A) @ op(B) + beta * C, in place; op(A) is A.T when trans_a."""
    trans_a, trans_b = _bool(trans_a, "trans_a"), _bool(trans_b, "trans_b")
    alpha, beta = _float(alpha, "alpha"), _float(beta, "beta")
    dtype = _array(C, "C", 2, True).dtype
    A = _array(A, "A", 2, dtype=dtype)
    B = _array(B, "B", 2, dtype=dtype)
    opA = A.T if trans_a else A
    opB = B.T if trans_b else B
    if opA.shape[1] != opB.shape[0]:
        raise ValueError(f"A and B do not chain: op(A) is {opA.shape} and op(B) is {opB.shape}")
    if C.shape != (opA.shape[0], opB.shape[1]):
        raise ValueError(f"C must have shape {(opA.shape[0], opB.shape[1])}, got {C.shape}")
    if np.shares_memory(C, A) or np.shares_memory(C, B):
        raise ValueError("C and an input share memory; pass separate arrays")
    prod = opA @ opB
    a, b = dtype.type(alpha), dtype.type(beta)
    if b == 0:
        C[...] = a * prod
    else:
        C[...] = a * prod + b * C


def dense_forward(X, W, b):
    """Z (n, n_out) = X (n, n_in) @ W (n_in, n_out) + b (n_out,)."""
    X = _array(X, "X", 2)
    W = _array(W, "W", 2, dtype=X.dtype)
    b = _array(b, "b", 1, dtype=X.dtype)
    if X.shape[1] != W.shape[0]:
        raise ValueError(f"X has {X.shape[1]} columns but W has {W.shape[0]} rows")
    if b.shape[0] != W.shape[1]:
        raise ValueError(f"b must have length {W.shape[1]}, got {b.shape[0]}")
    return X @ W + b


def dense_backward(X, W, dZ):
    """(dW, db, dX) = (X.T @ dZ, dZ.sum(0), dZ @ W.T)."""
    X = _array(X, "X", 2)
    W = _array(W, "W", 2, dtype=X.dtype)
    dZ = _array(dZ, "dZ", 2, dtype=X.dtype)
    if X.shape[1] != W.shape[0]:
        raise ValueError(f"X has {X.shape[1]} columns but W has {W.shape[0]} rows")
    if dZ.shape != (X.shape[0], W.shape[1]):
        raise ValueError(f"dZ must have shape ({X.shape[0]}, {W.shape[1]}), got {dZ.shape}")
    return X.T @ dZ, dZ.sum(axis=0), dZ @ W.T


def activation_forward(name, Z):
    """H = act(Z) for Z (n, k); softmax is row-wise."""
    name = _activation(name)
    Z = _array(Z, "Z", 2)
    _softmax_columns(name, Z)
    return ACTIVATIONS[name](Z)


def activation_backward(name, Z, H, dH):
    """dZ = dH * act'(Z); for softmax the row-wise Jacobian product H * (dH - sum(dH * H))."""
    name = _activation(name)
    Z = _array(Z, "Z", 2)
    H = _array(H, "H", 2, dtype=Z.dtype)
    dH = _array(dH, "dH", 2, dtype=Z.dtype)
    if H.shape != Z.shape or dH.shape != Z.shape:
        raise ValueError(f"H and dH must have the shape of Z {Z.shape}, got {H.shape} and {dH.shape}")
    _softmax_columns(name, Z)
    return _act_backward(name, Z, H, dH)


def _softmax_columns(name, Z):
    if name == "softmax" and Z.shape[1] < 1:
        raise ValueError("softmax needs at least one column, got 0")


def _act_backward(name, Z, H, dH):
    if name == "softmax":
        return H * (dH - (dH * H).sum(axis=1, keepdims=True))
    if name == "identity":
        return dH.copy()
    return dH * DERIVATIVES[name](Z, H)


def _row_losses(loss, out_act, Z, H, Y):
    """Per-row losses (float64) and dLoss_row/dZ (in the arrays' dtype)."""
    if loss == "cross_entropy" and out_act == "softmax":
        mx = Z.max(axis=1, keepdims=True)
        lse = mx.astype(np.float64) + np.log(np.exp((Z - mx).astype(np.float64)).sum(axis=1, keepdims=True))
        rows = (Y.astype(np.float64) * (lse - Z.astype(np.float64))).sum(axis=1)
        return rows, H * Y.sum(axis=1, keepdims=True) - Y
    if loss == "cross_entropy":
        z = Z.astype(np.float64)
        rows = (np.maximum(z, 0) - Y.astype(np.float64) * z + np.log1p(np.exp(-np.abs(z)))).sum(axis=1)
        return rows, H - Y
    R = H - Y
    r = R.astype(np.float64)
    if loss == "mae":
        rows, dH = np.abs(r).sum(axis=1), np.sign(R)
    elif loss == "huber":
        a = np.abs(r)
        rows = np.where(a <= HUBER_DELTA, 0.5 * a * a, HUBER_DELTA * (a - 0.5 * HUBER_DELTA)).sum(axis=1)
        dH = np.clip(R, -HUBER_DELTA, HUBER_DELTA).astype(R.dtype)
    else:
        rows, dH = 0.5 * (r * r).sum(axis=1), R
    return rows, dH


def _loss_grad(loss, out_act, Z, H, Y, w, scale):
    """(sum_i w_i loss_i, dZ = scale * d/dZ of that sum)."""
    rows, dH = _row_losses(loss, out_act, Z, H, Y)
    g = np.full((Z.shape[0], 1), scale, dtype=Z.dtype) if w is None else (scale * w)[:, None]
    dH = g * dH
    if loss != "cross_entropy" and out_act != "identity":
        dH = _act_backward(out_act, Z, H, dH)
    total = rows.sum() if w is None else (w.astype(np.float64) * rows).sum()
    return float(total), dH


def _add_metrics(loss, out_act, H, Y, w, metrics):
    wf = np.ones(H.shape[0]) if w is None else w.astype(np.float64)
    if loss == "cross_entropy":
        if out_act == "softmax":
            correct = H.argmax(axis=1) == Y.argmax(axis=1)
        else:
            correct = ((H > 0.5) == (Y > 0.5)).all(axis=1)
        metrics[1] += wf[correct].sum()
    else:
        r = H.astype(np.float64) - Y.astype(np.float64)
        metrics[2:] += (wf[:, None] * r * r).sum(axis=0)


def _loss_args(loss, output_activation, Z, H, Y, sample_weight):
    loss = _name(loss, "loss", LOSSES)
    out = _activation(output_activation, "output_activation")
    _check_output_pair(loss, out)
    Z = _array(Z, "Z", 2)
    H = _array(H, "H", 2, dtype=Z.dtype)
    Y = _array(Y, "Y", 2, dtype=Z.dtype)
    if H.shape != Z.shape or Y.shape != Z.shape:
        raise ValueError(f"H and Y must have the shape of Z {Z.shape}, got {H.shape} and {Y.shape}")
    w = None if sample_weight is None else _array(sample_weight, "sample_weight", 1, dtype=Z.dtype)
    if w is not None and w.shape[0] != Z.shape[0]:
        raise ValueError(f"sample_weight must have length {Z.shape[0]}, got {w.shape[0]}")
    if Z.shape[0] == 0:
        raise ValueError("Z has no rows; pass at least one sample")
    if Z.shape[1] == 0:
        raise ValueError("Z has no columns; the output layer needs at least one")
    return loss, out, Z, H, Y, w


def loss_forward(loss, output_activation, Z, H, Y, sample_weight=None):
    """Mean loss (1/B) sum_i w_i loss_i of output pre-activations Z (B, k), H = act(Z), targets Y."""
    loss, out, Z, H, Y, w = _loss_args(loss, output_activation, Z, H, Y, sample_weight)
    rows, _ = _row_losses(loss, out, Z, H, Y)
    total = rows.sum() if w is None else (w.astype(np.float64) * rows).sum()
    return float(total) / Z.shape[0]


def loss_backward(loss, output_activation, Z, H, Y, sample_weight=None):
    """dZ (B, k): the gradient of loss_forward with respect to Z."""
    loss, out, Z, H, Y, w = _loss_args(loss, output_activation, Z, H, Y, sample_weight)
    return _loss_grad(loss, out, Z, H, Y, w, Z.dtype.type(1.0 / Z.shape[0]))[1]


def sgd_step(param, grad, lr):
    """param -= lr * grad, in place."""
    lr = _float(lr, "lr")
    if not isinstance(param, np.ndarray):
        raise TypeError(f"param must be a numpy.ndarray, got {type(param).__name__}")
    if param.ndim not in (1, 2):
        raise ValueError(f"param must be 1-D or 2-D, got shape {param.shape}")
    param = _array(param, "param", param.ndim, True)
    grad = _array(grad, "grad", param.ndim, dtype=param.dtype)
    if grad.shape != param.shape:
        raise ValueError(f"grad must have the shape of param {param.shape}, got {grad.shape}")
    if np.shares_memory(param, grad):
        raise ValueError("param and grad share memory; pass separate arrays")
    param -= param.dtype.type(lr) * grad


# --------------------------------------------------------------------------------------
# Whole-network passes

def _forward_layers(Ws, bs, acts, X):
    """Per-layer (Z, H) of one batch; Z is the pre-activation."""
    cache, h = [], X
    for W, b, act in zip(Ws, bs, acts):
        z = h @ W + b
        h = ACTIVATIONS[act](z)
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


def forward(X, params, activations, out=None, check_finite=False):
    """The network's output (n, n_out) for X (n, n_in), written into out (allocated when None)
    and returned. params = [W0, b0, W1, b1, ...]; one activation name per layer. With
    ``check_finite``, NaN or inf in X raises ValueError."""
    check_finite = _bool(check_finite, "check_finite")
    Ws, bs, acts, dtype = _model(params, activations)
    X, _, _ = _data(X, None, None, Ws, dtype, need_rows=False)
    if out is None:
        out = np.empty((X.shape[0], Ws[-1].shape[1]), dtype)
    out = _array(out, "out", 2, True, dtype)
    if out.shape != (X.shape[0], Ws[-1].shape[1]):
        raise ValueError(f"out must have shape ({X.shape[0]}, {Ws[-1].shape[1]}), got {out.shape}")
    _no_overlap([("out", out)], [("X", X)] + [(f"params[{i}]", p) for i, p in enumerate(params)])
    if check_finite and not np.isfinite(X).all():
        raise ValueError(f"X contains NaN or inf (after conversion to {dtype.name}); remove or impute those values")
    chunk = _chunk_rows(Ws, X.shape[0])
    for s in range(0, X.shape[0], chunk):
        out[s:s + chunk] = _forward_layers(Ws, bs, acts, X[s:s + chunk])[-1][1]
    return out


def evaluate(X, Y, params, activations, loss="mse", sample_weight=None, metrics=None):
    """Mean loss (1/n) sum_i w_i loss_i over X (n, n_in), Y (n, n_out). If given, the float64
    metrics (2 + n_out) gets [sum_i w_i loss_i, weighted correct rows, weighted squared error
    per output] added."""
    loss = _name(loss, "loss", LOSSES)
    Ws, bs, acts, dtype = _model(params, activations)
    _check_output_pair(loss, acts[-1])
    if Y is None:
        raise TypeError("Y must be an array, got None")
    X, Y, w = _data(X, Y, sample_weight, Ws, dtype)
    metrics = np.zeros(2 + Ws[-1].shape[1]) if metrics is None else _metrics(metrics, Ws[-1].shape[1])
    before = metrics[0]
    chunk = _chunk_rows(Ws, X.shape[0])
    for s in range(0, X.shape[0], chunk):
        sl = slice(s, s + chunk)
        wc = None if w is None else w[sl]
        z, h = _forward_layers(Ws, bs, acts, X[sl])[-1]
        rows, _ = _row_losses(loss, acts[-1], z, h, Y[sl])
        metrics[0] += rows.sum() if wc is None else (wc.astype(np.float64) * rows).sum()
        _add_metrics(loss, acts[-1], h, Y[sl], wc, metrics)
    return float((metrics[0] - before) / X.shape[0])


def gradients(X, Y, params, activations, loss="mse", sample_weight=None, grads=None):
    """[dW0, db0, dW1, db1, ...]: gradients of evaluate() over all rows, written into grads
    (allocated when None) and returned."""
    loss = _name(loss, "loss", LOSSES)
    Ws, bs, acts, dtype = _model(params, activations)
    _check_output_pair(loss, acts[-1])
    if Y is None:
        raise TypeError("Y must be an array, got None")
    X, Y, w = _data(X, Y, sample_weight, Ws, dtype)
    if grads is None:
        grads = [np.empty_like(p) for p in params]
    if not isinstance(grads, (list, tuple)) or len(grads) != len(params):
        raise ValueError(f"grads must be a list of {len(params)} arrays like params")
    for i, (g, p) in enumerate(zip(grads, params)):
        _array(g, f"grads[{i}]", p.ndim, True, dtype)
        if g.shape != p.shape:
            raise ValueError(f"grads[{i}] must have shape {p.shape}, got {g.shape}")
    _no_overlap([(f"grads[{i}]", g) for i, g in enumerate(grads)],
                [("X", X), ("Y", Y)] + [(f"params[{i}]", p) for i, p in enumerate(params)])
    for g in grads:
        g[...] = 0
    n = X.shape[0]
    chunk = _chunk_rows(Ws, n)
    scale = dtype.type(1.0 / n)
    for s in range(0, n, chunk):
        sl = slice(s, s + chunk)
        Xc = X[sl]
        cache = _forward_layers(Ws, bs, acts, Xc)
        z, h = cache[-1]
        _, dZ = _loss_grad(loss, acts[-1], z, h, Y[sl], None if w is None else w[sl], scale)
        for l, inp, d in _backward_layers(Ws, acts, Xc, cache, dZ):
            np.add(grads[2 * l], inp.T @ d, out=grads[2 * l])
            np.add(grads[2 * l + 1], d.sum(axis=0), out=grads[2 * l + 1])
    return list(grads)


def _optimizer_options(optimizer, options):
    optimizer = _name(optimizer, "optimizer", OPTIMIZERS)
    if not isinstance(options, dict):
        raise TypeError("options must be a dict of optimizer hyper-parameters")
    o = dict(lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0, beta1=0.9, beta2=0.999, eps=1e-8)
    for key, v in options.items():
        if not isinstance(key, str):
            raise TypeError(f"options keys must be str, got {type(key).__name__}")
        if key == "nesterov":
            o[key] = _bool(v, "options['nesterov']")
            continue
        v = _float(v, f"options[{key!r}]")
        if key not in o:
            raise ValueError(f"options: unknown key {key!r}")
        o[key] = v
    if not o["lr"] > 0:
        raise ValueError("options['lr'] must be > 0")
    if not 0 <= o["momentum"] < 1:
        raise ValueError("options['momentum'] must be in [0, 1)")
    if o["weight_decay"] < 0:
        raise ValueError("options['weight_decay'] must be >= 0")
    if not (0 <= o["beta1"] < 1 and 0 <= o["beta2"] < 1):
        raise ValueError("options['beta1'] and options['beta2'] must be in [0, 1)")
    if not o["eps"] > 0:
        raise ValueError("options['eps'] must be > 0")
    if optimizer == "sgd" and o["nesterov"] and o["momentum"] == 0:
        raise ValueError("nesterov momentum needs momentum > 0")
    return optimizer, o


def states_per_param(optimizer, options):
    """How many state arrays each parameter needs: (m, v) for Adam, a velocity for momentum SGD."""
    if optimizer == "adam":
        return 2
    return 1 if options.get("momentum", 0.0) != 0 else 0


def _update(optimizer, o, p, g, states, step, decay):
    """One optimizer step on parameter p (in place), PyTorch's definitions."""
    t = p.dtype.type
    lr, wd = t(o["lr"]), t(decay)
    if optimizer == "adam":
        m, v = states
        b1, b2 = t(o["beta1"]), t(o["beta2"])
        g = g + wd * p
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        bc1 = t(1.0 - o["beta1"] ** step)
        bc2_sqrt = t(np.sqrt(1.0 - o["beta2"] ** step))
        p -= (lr / bc1) * m / (np.sqrt(v) / bc2_sqrt + t(o["eps"]))
    elif states:
        (vel,) = states
        mu = t(o["momentum"])
        g = g + wd * p
        vel *= mu
        vel += g
        p -= lr * (g + mu * vel if o["nesterov"] else vel)
    else:
        p -= lr * (g + wd * p) if decay else lr * g


def train_epoch(X, Y, params, activations, loss="mse", batch_size=32, perm=None, sample_weight=None,
                optimizer="sgd", options=None, state=None, step=None, metrics=None):
    """One epoch of mini-batch training, updating params (and optimizer state) in place.

    Returns the epoch's mean training loss, from each batch's forward pass before its update.
    Rows are visited in the order ``perm`` (int64, length n; None: in order) in batches of
    ``batch_size`` rows, the last one possibly smaller. ``options``: lr, momentum, nesterov,
    weight_decay, beta1, beta2, eps. ``state``: for 'sgd' with momentum one array per
    parameter, for 'adam' two, ordered W0, b0, W1, ... with each parameter's arrays adjacent.
    ``step``: an int64 array of shape (1,) holding the optimizer steps taken, updated in place.
    ``metrics``: as in evaluate, added to.
    """
    loss = _name(loss, "loss", LOSSES)
    batch_size = _int(batch_size, "batch_size", 1, 2**31 - 1)
    optimizer, o = _optimizer_options(optimizer, {} if options is None else options)
    if step is not None:
        if not isinstance(step, np.ndarray) or step.dtype != np.int64 or step.shape != (1,) \
                or not step.flags.c_contiguous:
            raise TypeError("step must be an int64 array of shape (1,)")
        if not step.flags.writeable:
            raise ValueError("step is read-only but is written to; pass a writable array")
        if step[0] < 0:
            raise ValueError(f"step must hold a count >= 0, got {step[0]}")
    Ws, bs, acts, dtype = _model(params, activations)
    _check_output_pair(loss, acts[-1])
    if Y is None:
        raise TypeError("Y must be an array, got None")
    X, Y, w = _data(X, Y, sample_weight, Ws, dtype)
    n = X.shape[0]
    if perm is not None:
        if not isinstance(perm, np.ndarray) or perm.dtype != np.int64 or perm.ndim != 1 \
                or not perm.flags.c_contiguous:
            raise TypeError("perm must be a 1-D C-contiguous int64 array")
        if perm.shape[0] != n:
            raise ValueError(f"perm must have length {n}, got {perm.shape[0]}")
        if n and (perm.min() < 0 or perm.max() >= n):
            raise ValueError(f"perm holds a value that is not a row index in [0, {n})")
    k = states_per_param(optimizer, o)
    state = [] if state is None else state
    if not isinstance(state, (list, tuple)) or len(state) != k * len(params):
        raise ValueError(f"state must hold {k * len(params)} arrays ({k} per parameter for this optimizer)")
    for i, s in enumerate(state):
        p = params[i // k]
        _array(s, f"state[{i}]", p.ndim, True, dtype)
        if s.shape != p.shape:
            raise ValueError(f"state[{i}] must have shape {p.shape}, got {s.shape}")
    metrics = np.zeros(2 + Ws[-1].shape[1]) if metrics is None else _metrics(metrics, Ws[-1].shape[1])
    counter = np.zeros(1, np.int64) if step is None else step
    before = metrics[0]
    _epoch_loop(X, Y, w, perm, Ws, bs, acts, loss, min(batch_size, n), optimizer, o, state, k, counter,
                metrics)
    return float((metrics[0] - before) / n)


def _epoch_loop(X, Y, w, perm, Ws, bs, acts, loss, batch, optimizer, o, state, k, counter, metrics):
    """The batches of train_epoch; counter[0] counts optimizer steps (kept current, so an
    interrupt leaves it right)."""
    n, dtype = X.shape[0], X.dtype
    for s in range(0, n, batch):
        idx = slice(s, s + batch) if perm is None else perm[s:s + batch]
        Xb, Yb = X[idx], Y[idx]
        wb = None if w is None else w[idx]
        rows = Xb.shape[0]
        cache = _forward_layers(Ws, bs, acts, Xb)
        z, h = cache[-1]
        total, dZ = _loss_grad(loss, acts[-1], z, h, Yb, wb, dtype.type(1.0 / rows))
        metrics[0] += total
        _add_metrics(loss, acts[-1], h, Yb, wb, metrics)
        step = int(counter[0]) + 1
        grads = [(l, inp.T @ d, d.sum(axis=0)) for l, inp, d in _backward_layers(Ws, acts, Xb, cache, dZ)]
        with _StepIsAtomic():  # Ctrl-C leaves the weights of the last completed step
            for l, dW, db in grads:
                _update(optimizer, o, Ws[l], dW, state[2 * l * k:(2 * l + 1) * k], step, o["weight_decay"])
                _update(optimizer, o, bs[l], db, state[(2 * l + 1) * k:(2 * l + 2) * k], step, 0.0)
            counter[0] = step


_GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _seed(x, name):
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"{name} must be an int in [0, 2**64), got {type(x).__name__}")
    if not 0 <= int(x) < 2**64:
        raise ValueError(f"{name} must be an int in [0, 2**64), got {x}")


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
    _seed(seed, "seed")
    if not isinstance(out, np.ndarray) or out.dtype != np.int64 or out.ndim != 1 \
            or not out.flags.c_contiguous:
        raise TypeError("out must be a 1-D C-contiguous int64 array")
    if not out.flags.writeable:
        raise ValueError("out is read-only but is written to; pass a writable array")
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


def set_num_threads(n):
    """Threads of NumPy's BLAS, through threadpoolctl when it is installed."""
    n = _int(n, "n", 1, 1024)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # without threadpoolctl NumPy's threads cannot be changed at run time
        return
    threadpool_limits(n, user_api="blas")


def get_num_threads():
    """Threads of NumPy's BLAS (1 when threadpoolctl is not installed to ask)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return 1
    counts = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
    return max(counts) if counts else 1
