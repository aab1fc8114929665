"""Whole-network passes of the C++ backend against the NumPy reference."""

import numpy as np
import pytest

import denseprop as dp
from denseprop import _core, reference
from helpers import FIT_TOL, OP_TOL, max_rel_err, regression_data, rel_err

DTYPES = [np.float32, np.float64]

# (layers, batch_size, n): the textbook net, deep, wide, several outputs, batch 1,
# a last partial batch, a batch larger than n, and widths that are not multiples of the
# 8 x 8 tiles in which the backward pass transposes W.
CASES = [
    ([1, 2, 2], 1, 40),
    ([3, 8, 8, 8, 8, 8, 2], 7, 50),
    ([16, 300, 4], 32, 100),
    ([5, 12, 6], 1, 17),
    ([4, 10, 3], 8, 29),
    ([4, 10, 3], 64, 29),
    ([10, 64, 64, 1], 32, 96),
    ([7, 45, 37, 3], 20, 70),
]


def pair(layers, dtype, seed=0, **kw):
    return [dp.Network(layers, dtype=dtype.__name__, seed=seed, backend=b, **kw) for b in ("cpp", "numpy")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layers,batch,n", CASES)
def test_forward_and_gradients(dtype, layers, batch, n):
    X, Y = regression_data(n, layers[0], layers[-1], seed=n, dtype=dtype)
    a, b = pair(layers, dtype)
    assert rel_err(a.predict(X), b.predict(X)) < OP_TOL[dtype] * 10
    assert rel_err(a.evaluate(X, Y), b.evaluate(X, Y)) < OP_TOL[dtype] * 10
    ga, gb = a.gradients(X, Y), b.gradients(X, Y)
    assert max_rel_err(ga[0] + ga[1], gb[0] + gb[1]) < OP_TOL[dtype] * 10


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", ["relu", "identity", "tanh", "gelu", "softplus", "elu"])
@pytest.mark.parametrize("output,loss", [("identity", "mse"), ("sigmoid", "cross_entropy"),
                                         ("softmax", "cross_entropy"), ("relu", "huber")])
@pytest.mark.parametrize("layers", [[1, 2, 2], [3, 8, 5], [16, 4, 8], [17, 3, 2], [6, 9, 3]])
def test_narrow_layers_forward_and_gradients(dtype, hidden, output, loss, layers):
    """Layers of at most 16 inputs by 8 outputs take a fused pass instead of BLAS (5000 rows:
    more than one chunk), for every activation."""
    n = 5000
    X, Y = regression_data(n, layers[0], layers[-1], seed=7, dtype=dtype)
    if loss == "cross_entropy":
        Y = (Y > np.median(Y, axis=0)).astype(dtype)
        if output == "softmax":
            Y = np.eye(layers[-1], dtype=dtype)[np.argmax(Y, axis=1)]
    a, b = pair(layers, dtype, activation=hidden, output_activation=output, loss=loss)
    assert rel_err(a.predict(X), b.predict(X)) < OP_TOL[dtype] * 10
    assert rel_err(a.evaluate(X, Y), b.evaluate(X, Y)) < OP_TOL[dtype] * 10
    ga, gb = a.gradients(X, Y), b.gradients(X, Y)
    assert max_rel_err(ga[0] + ga[1], gb[0] + gb[1]) < OP_TOL[dtype] * 10


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layers,batch,n", CASES)
def test_one_train_epoch(dtype, layers, batch, n):
    """One _core.train_epoch call against reference.train_epoch, from identical parameters."""
    X, Y = regression_data(n, layers[0], layers[-1], seed=n, dtype=dtype)
    net = dp.Network(layers, dtype=dtype.__name__, seed=1)
    perm = np.random.default_rng(5).permutation(n)
    results = []
    for backend in (_core, reference):
        params = [p.copy() for p in net._params()]
        metrics = np.zeros(2 + layers[-1])
        step = np.array([3], np.int64)
        mean = backend.train_epoch(X, Y, params, net.activations, "mse", batch, perm, None,
                                   dp.SGD(0.05)._config(0.05), [], step, metrics)
        assert mean == pytest.approx(metrics[0] / n, rel=1e-15)
        results.append((params, metrics, step[0], mean))
    (pa, ma, sa, la), (pb, mb, sb, lb) = results
    assert sa == sb == 3 + -(-n // batch)
    assert max_rel_err(pa, pb) < OP_TOL[dtype] * 10
    assert rel_err(ma, mb) < OP_TOL[dtype] * 10
    assert rel_err(la, lb) < OP_TOL[dtype] * 10


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layers,batch,n", CASES)
def test_multi_epoch_fit(dtype, layers, batch, n):
    X, Y = regression_data(n, layers[0], layers[-1], seed=n, dtype=dtype)
    a, b = pair(layers, dtype, seed=7)
    ha = a.fit(X, Y, epochs=4, batch_size=batch, lr=0.02)
    hb = b.fit(X, Y, epochs=4, batch_size=batch, lr=0.02)
    assert max_rel_err(a.weights + a.biases, b.weights + b.biases) < FIT_TOL[dtype]
    assert rel_err(ha.loss, hb.loss) < FIT_TOL[dtype]


OPTIMIZERS = [
    lambda: dp.SGD(lr=0.05),
    lambda: dp.SGD(lr=0.02, weight_decay=0.01),
    lambda: dp.SGD(lr=0.02, momentum=0.9),
    lambda: dp.SGD(lr=0.02, momentum=0.8, nesterov=True, weight_decay=1e-3),
    lambda: dp.Adam(lr=0.01),
    lambda: dp.Adam(lr=0.005, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.01),
    lambda: dp.AdamW(lr=0.01),
    lambda: dp.AdamW(lr=0.005, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.1,
                     schedule=dp.StepDecay(1, 0.5)),
]

MODELS = [
    dict(activation="relu", output_activation="identity", loss="mse"),
    dict(activation=["leaky_relu", "elu"], output_activation="identity", loss="huber"),
    dict(activation=["gelu", "softplus"], output_activation="identity", loss="mae"),
    dict(activation=["tanh", "sigmoid"], output_activation="softmax", loss="cross_entropy"),
    dict(activation="relu", output_activation="sigmoid", loss="cross_entropy"),
    dict(activation="identity", output_activation="tanh", loss="mse"),
    dict(activation=["silu", "silu"], output_activation="silu", loss="mse"),
]


def targets_for(model, n, n_out, rng, dtype):
    if model["output_activation"] == "softmax":
        return rng.integers(0, n_out, n)
    if model["output_activation"] == "sigmoid":
        return (rng.uniform(size=(n, n_out)) > 0.5).astype(dtype)
    return rng.standard_normal((n, n_out)).astype(dtype) * 0.5


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make_opt", OPTIMIZERS)
@pytest.mark.parametrize("model", MODELS)
def test_fit_parity_features(dtype, make_opt, model):
    rng = np.random.default_rng(11)
    n, layers = 83, [5, 12, 9, 3]
    X = rng.standard_normal((n, 5)).astype(dtype)
    Y = targets_for(model, n, 3, rng, dtype)
    w = rng.uniform(0, 2, n)
    a, b = pair(layers, dtype, seed=2, **model)
    ha = a.fit(X, Y, epochs=3, batch_size=10, optimizer=make_opt(), sample_weight=w, validation_split=0.2)
    hb = b.fit(X, Y, epochs=3, batch_size=10, optimizer=make_opt(), sample_weight=w, validation_split=0.2)
    assert max_rel_err(a.weights + a.biases, b.weights + b.biases) < FIT_TOL[dtype]
    assert max_rel_err(a.optimizer.state, b.optimizer.state) < FIT_TOL[dtype] if a.optimizer.state else True
    assert a.optimizer.step == b.optimizer.step
    for field in ("loss", "val_loss", "accuracy", "val_accuracy", "r2", "val_r2"):
        assert len(getattr(ha, field)) == len(getattr(hb, field))
        if getattr(ha, field):
            assert rel_err(getattr(ha, field), getattr(hb, field)) < FIT_TOL[dtype] * 10


@pytest.mark.parametrize("dtype", DTYPES)
def test_unshuffled_fit_matches(dtype):
    X, Y = regression_data(50, 3, 2, dtype=dtype)
    a, b = pair([3, 6, 2], dtype)
    a.fit(X, Y, epochs=3, batch_size=8, lr=0.05, shuffle=False)
    b.fit(X, Y, epochs=3, batch_size=8, lr=0.05, shuffle=False)
    assert max_rel_err(a.weights + a.biases, b.weights + b.biases) < FIT_TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layers", [[1, 2, 2], [3, 8, 1], [4, 5, 4], [2, 3, 3], [4, 8, 4, 2], [6, 40, 3]])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("acts", [("tanh", "sigmoid"), ("relu", "identity"), ("relu", "relu")])
@pytest.mark.parametrize("weighted", [True, False])
def test_row_by_row_paths(dtype, layers, batch, acts, weighted):
    """Small nets train row by row (unrolled for one hidden layer of ReLU or identity units
    with batch 1 and plain SGD, scalar loops otherwise): same results as the reference, with
    and without sample weights, with decay, shuffled and in order."""
    rng = np.random.default_rng(4)
    n = 41
    X = rng.standard_normal((n, layers[0])).astype(dtype)
    Y = rng.uniform(0, 1, (n, layers[-1])).astype(dtype)
    w = rng.uniform(0, 2, n) if weighted else None
    a, b = pair(layers, dtype, seed=3, activation=acts[0], output_activation=acts[1])
    for net in (a, b):
        net.fit(X, Y, epochs=3, batch_size=batch, sample_weight=w, optimizer=dp.SGD(0.02, weight_decay=0.01))
        net.fit(X, Y, epochs=2, batch_size=batch, sample_weight=w, lr=0.02, shuffle=False)
    assert max_rel_err(a.weights + a.biases, b.weights + b.biases) < FIT_TOL[dtype]
    assert rel_err(a.predict(X), b.predict(X)) < FIT_TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layers", [[1, 2, 2], [3, 8, 1], [2, 3, 3], [4, 4, 4]])
@pytest.mark.parametrize("weighted", [True, False])
def test_unrolled_path_with_linear_hidden_layer(dtype, layers, weighted):
    """The unrolled one-hidden-layer trainer with identity hidden units and a ReLU output."""
    rng = np.random.default_rng(5)
    n = 50
    X = rng.standard_normal((n, layers[0])).astype(dtype)
    Y = rng.uniform(0, 1, (n, layers[-1])).astype(dtype)
    w = rng.uniform(0, 2, n) if weighted else None
    a, b = pair(layers, dtype, seed=3, activation="identity", output_activation="relu")
    for net in (a, b):
        net.fit(X, Y, epochs=4, batch_size=1, sample_weight=w, optimizer=dp.SGD(0.02, weight_decay=0.01))
    assert max_rel_err(a.weights + a.biases, b.weights + b.biases) < FIT_TOL[dtype]


OBJECTIVES = [
    dict(output_scale=1 / 3, by_weight_sum=False, decay_by_batch=False),
    dict(output_scale=1.0, by_weight_sum=True, decay_by_batch=True),
    dict(output_scale=1 / 3, by_weight_sum=True, decay_by_batch=True),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("layers,batch", [([5, 12, 9, 3], 10), ([2, 4, 3], 1), ([2, 4, 3], 7), ([6, 80, 3], 16)])
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_objective_normalisation(dtype, objective, layers, batch, kind):
    """A batch's loss divided by its weight sum, a mean over outputs too, weight decay divided by
    the same denominator: both backends, on the batched and the row-wise loops. A batch whose
    weights are all zero takes no step."""
    rng = np.random.default_rng(7)
    n = 60
    X = rng.standard_normal((n, layers[0])).astype(dtype)
    Y = rng.standard_normal((n, layers[-1])).astype(dtype)
    w = rng.uniform(0, 2, n).astype(dtype)
    w[:batch] = 0  # the first batch in order weighs nothing
    net = dp.Network(layers, dtype=dtype.__name__, seed=1)
    opt = (dp.SGD(0.05, momentum=0.5, weight_decay=0.3) if kind == "sgd" else dp.Adam(0.01, weight_decay=0.3))
    obj = _core.Objective()
    for key, value in objective.items():
        setattr(obj, key, value)
    results = []
    for backend in (_core, reference):
        params = [p.copy() for p in net._params()]
        state = [np.zeros_like(p) for p in params for _ in range(opt.states_per_param())]
        metrics, step = np.zeros(2 + layers[-1]), np.zeros(1, np.int64)
        for _ in range(3):
            backend.train_epoch(X, Y, params, net.activations, "mse", batch, None, w, opt._config(opt.lr), state,
                                step, metrics, obj)
        results.append((params, metrics, int(step[0])))
    (pa, ma, sa), (pb, mb, sb) = results
    batches = -(-n // batch)
    assert sa == sb == 3 * (batches - (1 if objective["by_weight_sum"] else 0))
    assert max_rel_err(pa, pb) < FIT_TOL[dtype]
    assert rel_err(ma, mb) < FIT_TOL[dtype]
