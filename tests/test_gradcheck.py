"""Gradients against central finite differences, in float64, on both backends."""

import numpy as np
import pytest

import denseprop as dp
from helpers import regression_data

HIDDEN = list(dp._checks.HIDDEN_ACTIVATIONS)  # every hidden activation, silu included
KINKED = ("relu", "leaky_relu", "elu")  # derivatives that jump (or bend) at 0
OUTPUTS = [("identity", "mse"), ("relu", "mse"), ("sigmoid", "mse"), ("tanh", "huber"),
           ("identity", "mae"), ("softmax", "cross_entropy"), ("sigmoid", "cross_entropy")]


def finite_difference_check(net, X, Y, w=None, eps=1e-6):
    """Largest relative error between analytic and central-difference gradients."""
    dW, db = net.gradients(X, Y, sample_weight=w)
    worst = 0.0
    for params, grads in ((net.weights, dW), (net.biases, db)):
        for p, g in zip(params, grads):
            flat, gflat = p.reshape(-1), g.reshape(-1)
            for i in range(flat.size):
                old = flat[i]
                flat[i] = old + eps
                up = net.evaluate(X, Y, sample_weight=w)
                flat[i] = old - eps
                down = net.evaluate(X, Y, sample_weight=w)
                flat[i] = old
                numeric = (up - down) / (2 * eps)
                worst = max(worst, abs(numeric - gflat[i]) / max(abs(numeric), abs(gflat[i]), 1e-4))
    return worst


def data_for(out, loss, n, n_out, rng):
    X = rng.standard_normal((n, 3))
    if out == "softmax":
        Y = np.eye(n_out)[rng.integers(0, n_out, n)]
    elif out == "sigmoid":
        Y = rng.uniform(size=(n, n_out))
    elif out == "relu":
        Y = rng.uniform(0.5, 2, size=(n, n_out))
    else:
        Y = rng.standard_normal((n, n_out))
    return X, Y


@pytest.mark.parametrize("backend", ["cpp", "numpy"])
@pytest.mark.parametrize("hidden", HIDDEN)
def test_hidden_activation_gradients(backend, hidden):
    rng = np.random.default_rng(0)
    X, Y = data_for("identity", "mse", 9, 2, rng)
    net = dp.Network([3, 5, 4, 2], activation=hidden, dtype="float64", seed=1, backend=backend)
    if hidden in KINKED:  # central differences across a kink would be wrong: none is within reach
        Z = X
        for W, b in zip(net.weights[:-1], net.biases[:-1]):
            Z = Z @ W + b
            assert np.abs(Z).min() > 1e-3
            Z = dp.reference.ACTIVATIONS[hidden].f(Z)
    assert finite_difference_check(net, X, Y) < 1e-6


@pytest.mark.parametrize("backend", ["cpp", "numpy"])
@pytest.mark.parametrize("out,loss", OUTPUTS)
def test_output_and_loss_gradients(backend, out, loss):
    rng = np.random.default_rng(3)
    X, Y = data_for(out, loss, 11, 3, rng)
    w = rng.uniform(0.2, 2.0, 11)
    net = dp.Network([3, 6, 3], activation="tanh", output_activation=out, loss=loss, dtype="float64",
                     seed=4, backend=backend)
    assert finite_difference_check(net, X, Y, w) < 1e-5


def test_gradients_chunked_over_many_rows():
    """gradients() works through large inputs in chunks; the sum must not depend on that."""
    X, Y = regression_data(10000, 4, 1, seed=3)
    net = dp.Network([4, 8, 1], dtype="float64", seed=0)
    dW, db = net.gradients(X, Y)
    ref = dp.Network([4, 8, 1], dtype="float64", seed=0, backend="numpy")
    rW, rb = ref.gradients(X, Y)
    for a, b in zip(dW + db, rW + rb):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
