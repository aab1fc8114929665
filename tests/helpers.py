"""Shared test helpers."""

import numpy as np

# Tolerances as max|a - b| / max|b|.
OP_TOL = {np.float32: 1e-5, np.float64: 1e-12}
FIT_TOL = {np.float32: 3e-4, np.float64: 1e-9}


def rel_err(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = np.abs(b).max() if b.size else 0.0
    diff = np.abs(a - b).max() if a.size else 0.0
    return diff / scale if scale > 0 else diff


def max_rel_err(xs, ys):
    return max(rel_err(x, y) for x, y in zip(xs, ys))


def snapshot(net):
    """Everything a rejected call must leave unchanged."""
    return {
        "weights": [w.copy() for w in net.weights],
        "biases": [b.copy() for b in net.biases],
        "state": [s.copy() for s in net.optimizer.state],
        "step": net.optimizer.step,
        "epochs": net.optimizer.epochs,
        "optimizer": net.optimizer,
        "rng": repr(net._rng.bit_generator.state),
    }


def assert_unchanged(net, snap):
    now = snapshot(net)
    for key in ("weights", "biases", "state"):
        assert len(now[key]) == len(snap[key])
        for a, b in zip(now[key], snap[key]):
            np.testing.assert_array_equal(a, b)
    for key in ("step", "epochs", "rng"):
        assert now[key] == snap[key], key
    assert now["optimizer"] is snap["optimizer"]


def regression_data(n, n_in, n_out, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_in))
    W = rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)
    Y = np.tanh(X @ W) + 0.1 * rng.standard_normal((n, n_out))
    return X.astype(dtype), Y.astype(dtype)
