"""dp.AdamW against torch.optim.AdamW: a NumPy transcription of torch's update (always), and
torch itself when it is installed. Biases form a second parameter group at weight_decay=0."""

import numpy as np
import pytest

import denseprop as dp
from denseprop import reference
from helpers import FIT_TOL, max_rel_err, regression_data


class TorchAdamW:
    """torch.optim.AdamW's step (amsgrad off, maximize off), per its documented algorithm: for
    each parameter, p *= 1 - lr * weight_decay; m lerps towards g by 1 - beta1; v = beta2 v +
    (1 - beta2) g g; p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)."""

    def __init__(self, groups, lr, betas, eps):
        self.groups, self.lr, self.betas, self.eps, self.t = groups, lr, betas, eps, 0
        self.m = [[np.zeros_like(p) for p in params] for params, _ in groups]
        self.v = [[np.zeros_like(p) for p in params] for params, _ in groups]

    def step(self, grads):
        self.t += 1
        b1, b2 = self.betas
        for (params, wd), gs, ms, vs in zip(self.groups, grads, self.m, self.v):
            for p, g, m, v in zip(params, gs, ms, vs):
                t = p.dtype.type
                p *= t(1 - self.lr * wd)
                m += (g - m) * t(1 - b1)
                v *= t(b2)
                v += t(1 - b2) * g * g
                denom = np.sqrt(v) / t(np.sqrt(1 - b2 ** self.t)) + t(self.eps)
                p -= t(self.lr / (1 - b1 ** self.t)) * m / denom


def batch_gradients(net, X, Y):
    """Gradients of the mean loss of one batch at the current weights, as training takes them."""
    grads = [np.empty_like(p) for p in net._params()]
    reference.gradients(X, Y, net._params(), net.activations, net.loss, None, grads)
    return grads[0::2], grads[1::2]


def replay(layers, X, Y, epochs, batch, lr, wd, dtype, step_fn):
    """A fit by hand: the network's own init and shuffle seeds, batch gradients, step_fn."""
    net = dp.Network(layers, dtype=dtype, seed=3, backend="numpy")
    perm = np.empty(len(X), np.int64)
    for _ in range(epochs):
        reference.shuffled_order(net._rng.integers(0, 2**64, dtype=np.uint64), perm)
        for s in range(0, len(X), batch):
            idx = perm[s:s + batch]
            step_fn(net, *batch_gradients(net, X[idx], Y[idx]))
    return net


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", ["cpp", "numpy"])
def test_adamw_matches_a_transcription_of_torch(dtype, backend):
    layers, epochs, batch, lr, wd = [6, 16, 8, 2], 5, 16, 0.01, 0.1
    X, Y = regression_data(100, 6, 2, seed=5, dtype=np.dtype(dtype))
    net = dp.Network(layers, dtype=dtype, seed=3, backend=backend)
    net.fit(X, Y, epochs=epochs, batch_size=batch, optimizer=dp.AdamW(lr=lr, weight_decay=wd))

    torch_like = {}

    def step(ref, dW, db):
        if "opt" not in torch_like:
            torch_like["opt"] = TorchAdamW([(ref.weights, wd), (ref.biases, 0.0)], lr, (0.9, 0.999), 1e-8)
        torch_like["opt"].step([dW, db])
    ref = replay(layers, X, Y, epochs, batch, lr, wd, dtype, step)
    assert max_rel_err(net.weights + net.biases, ref.weights + ref.biases) < FIT_TOL[np.dtype(dtype).type]


@pytest.mark.parametrize("backend", [dp._core, reference])
def test_adamw_decay_is_decoupled(backend):
    """With a zero gradient Adam's step is 0, so an AdamW step only shrinks the weights by
    1 - lr * weight_decay (lr is the epoch's scheduled rate the config carries); a bias, updated
    with decay 0, stays; Adam's coupled decay instead moves p by about lr, sign-like."""
    p = np.array([1.0, -2.0, 3.0])
    for kind, decay, expected in [("adamw", 0.5, p * (1 - 0.05 * 0.5)), ("adamw", 0.0, p),
                                  ("adam", 0.5, p - 0.05 * np.sign(p))]:
        opt = dp.AdamW(lr=0.05) if kind == "adamw" else dp.Adam(lr=0.05)
        c = opt._config(0.05)
        q, state = p.copy(), [np.zeros(3), np.zeros(3)]
        backend.optimizer_update(c, q, np.zeros(3), state, 1, decay)
        np.testing.assert_allclose(q, expected, rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_adamw_matches_torch(dtype):
    torch = pytest.importorskip("torch")
    layers, epochs, batch, lr, wd = [6, 16, 8, 2], 5, 16, 0.01, 0.1
    X, Y = regression_data(100, 6, 2, seed=5, dtype=np.dtype(dtype))
    net = dp.Network(layers, dtype=dtype, seed=3)
    net.fit(X, Y, epochs=epochs, batch_size=batch, optimizer=dp.AdamW(lr=lr, weight_decay=wd))

    tdtype = torch.float32 if dtype == "float32" else torch.float64
    holder = {}

    def step(ref, dW, db):
        if "opt" not in holder:
            holder["W"] = [torch.from_numpy(w) for w in ref.weights]  # share memory with the network
            holder["b"] = [torch.from_numpy(b) for b in ref.biases]
            holder["opt"] = torch.optim.AdamW([{"params": holder["W"], "weight_decay": wd},
                                               {"params": holder["b"], "weight_decay": 0.0}], lr=lr)
        for t, g in zip(holder["W"] + holder["b"], dW + db):
            t.grad = torch.from_numpy(np.ascontiguousarray(g)).to(tdtype)
        with torch.no_grad():
            holder["opt"].step()
    ref = replay(layers, X, Y, epochs, batch, lr, wd, dtype, step)
    assert max_rel_err(net.weights + net.biases, ref.weights + ref.biases) < FIT_TOL[np.dtype(dtype).type]
