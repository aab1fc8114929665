"""Seeing inside: Network.trace, dp.check_gradients, Network.health and fit's dead-unit warning."""

import warnings

import numpy as np
import pytest

import denseprop as dp
from denseprop import _core, _inspect, reference
from helpers import OP_TOL, assert_unchanged, rel_err, snapshot

BACKENDS = {"cpp": _core, "numpy": reference}
DTYPES = ["float32", "float64"]
HIDDEN = [a for a in reference.ACTIVATIONS if a != "softmax"]


def output_pairs():
    """Every (output activation, loss) pair the Network accepts, from the library's name lists."""
    pairs = []
    for out in reference.ACTIVATIONS:
        for loss in reference.LOSSES:
            try:
                dp.Network([2, 2], output_activation=out, loss=loss)
            except ValueError:
                continue
            pairs.append((out, loss))
    return pairs


PAIRS = output_pairs()


def targets(out, loss, n, n_out, rng):
    if out == "softmax":
        return np.eye(n_out)[rng.integers(0, n_out, n)]
    if loss == "cross_entropy":
        return rng.uniform(size=(n, n_out))
    if out == "relu":
        return rng.uniform(0.5, 2, size=(n, n_out))
    return rng.standard_normal((n, n_out))


def textbook(backend="cpp", dtype="float64"):
    return dp.Network([1, 2, 2], activation="relu", output_activation="relu", dtype=dtype, seed=0,
                      backend=backend)


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# ================================================================================== trace

@pytest.mark.parametrize("backend", BACKENDS)
def test_trace_of_the_textbook_step_by_hand(backend):
    net = textbook(backend)
    Wh, Bh, Wo, Bo = net.weights[0], net.biases[0], net.weights[1], net.biases[1]
    x, y = np.array([[0.5]]), np.array([[0.3, 0.7]])
    tr = net.trace(x, y)
    hidden, output = tr.layers
    Zh = x @ Wh + Bh
    H = np.maximum(Zh, 0)
    Zo = H @ Wo + Bo
    yhat = np.maximum(Zo, 0)
    Eo = (yhat - y) * (Zo > 0)
    Eh = (Eo @ Wo.T) * (Zh > 0)
    expected = {
        (0, "X"): x, (0, "Z"): Zh, (0, "H"): H, (0, "dH"): Eo @ Wo.T, (0, "dZ"): Eh,
        (0, "dW"): x.T @ Eh, (0, "db"): Eh.sum(0),
        (1, "X"): H, (1, "Z"): Zo, (1, "H"): yhat, (1, "dH"): yhat - y, (1, "dZ"): Eo,
        (1, "dW"): H.T @ Eo, (1, "db"): Eo.sum(0),
    }
    for (l, name), want in expected.items():
        got = getattr(tr.layers[l], name)
        assert got.shape == want.shape and got.dtype == np.float64, (l, name)
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-16, err_msg=f"layer {l} {name}")
    assert isinstance(tr.loss, float)
    assert tr.loss == pytest.approx(0.5 * ((yhat - y) ** 2).sum(), rel=1e-14)
    np.testing.assert_allclose(tr.output, yhat, rtol=1e-14)
    np.testing.assert_allclose(tr.dloss, yhat - y, rtol=1e-14)
    assert hidden.activation == "relu" and output.activation == "relu"
    assert tr.layers[1].X is tr.layers[0].H  # a layer's input is the previous layer's output
    assert "LayerTrace" in repr(hidden) and "Trace(" in repr(tr)


def test_trace_last_error_is_residual_over_batch_for_mse_identity():
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((7, 3)), rng.standard_normal((7, 2))
    net = dp.Network([3, 4, 2], dtype="float64", seed=1)
    tr = net.trace(X, Y)
    np.testing.assert_allclose(tr.layers[-1].dZ, (tr.output - Y) / 7, rtol=1e-14, atol=1e-17)
    np.testing.assert_allclose(tr.dloss, (tr.output - Y) / 7, rtol=1e-14, atol=1e-17)


def _cases():
    for h in HIDDEN:
        yield h, "identity", "mse"
    for out, loss in PAIRS:
        yield "tanh", out, loss


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("hidden,out,loss", list(_cases()))
def test_trace_links_each_array_to_the_next(backend, hidden, out, loss):
    """The docstring's formulas, checked against the reference's single operations in float64,
    and dW/db bit for bit equal to gradients()."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((9, 3))
    Y = targets(out, loss, 9, 3, rng)
    w = rng.uniform(0.2, 2, 9)
    net = dp.Network([3, 5, 4, 3], activation=hidden, output_activation=out, loss=loss, dtype="float64",
                     seed=3, backend=backend)
    tr = net.trace(X, Y, sample_weight=w)
    dW, db = net.gradients(X, Y, sample_weight=w)
    R, tol = reference, 1e-12
    inp = X
    for l, t in enumerate(tr.layers):
        assert t.activation == net.activations[l]
        assert rel_err(t.X, inp) == 0
        assert rel_err(t.Z, inp @ net.weights[l] + net.biases[l]) <= tol
        assert rel_err(t.H, R.activation_forward(t.activation, t.Z)) <= tol
        assert same_bits(t.dW, dW[l]) and same_bits(t.db, db[l])
        assert rel_err(t.dW, t.X.T @ t.dZ) <= 1e-10 and rel_err(t.db, t.dZ.sum(0)) <= 1e-10
        if l + 1 < len(tr.layers):
            nxt = tr.layers[l + 1]
            assert rel_err(t.dH, nxt.dZ @ net.weights[l + 1].T) <= tol
            assert rel_err(t.dZ, R.activation_backward(t.activation, t.Z, t.H, t.dH)) <= tol
        inp = t.H
    last = tr.layers[-1]
    assert rel_err(last.dZ, R.loss_backward(loss, out, last.Z, last.H, Y, w)) <= tol
    if loss == "cross_entropy":
        assert tr.dloss is None and last.dH is None
    else:
        assert tr.dloss is last.dH
        assert rel_err(last.dZ, R.activation_backward(out, last.Z, last.H, last.dH)) <= tol
    assert tr.output is last.H
    assert tr.loss == pytest.approx(net.evaluate(X, Y, sample_weight=w), rel=1e-12)
    assert rel_err(tr.output, net.predict(X)) <= tol


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_trace_dw_db_are_gradients_bit_for_bit(dtype, backend):
    rng = np.random.default_rng(4)
    X, Y = rng.standard_normal((3000, 12)), rng.standard_normal((3000, 3))  # several chunks
    net = dp.Network([12, 32, 16, 3], activation="gelu", dtype=dtype, seed=0, backend=backend)
    tr = net.trace(X, Y)
    dW, db = net.gradients(X, Y)
    for t, gw, gb in zip(tr.layers, dW, db):
        assert same_bits(t.dW, gw) and same_bits(t.db, gb)
        assert t.dW.dtype == np.dtype(dtype) and t.Z.dtype == np.dtype(dtype)
        # dZ is consistent with them to the rounding of the dtype
        assert rel_err(t.dW, t.X.astype(np.float64).T @ t.dZ.astype(np.float64)) <= OP_TOL[np.dtype(dtype).type] * 10


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("out,loss", [("identity", "mse"), ("softmax", "cross_entropy"),
                                      ("sigmoid", "cross_entropy"), ("relu", "huber"), ("tanh", "mae")])
def test_trace_backends_agree(dtype, out, loss):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((40, 6))
    Y = targets(out, loss, 40, 3, rng)
    tol = OP_TOL[np.dtype(dtype).type]
    traces = [dp.Network([6, 16, 8, 3], activation=["elu", "sigmoid"], output_activation=out, loss=loss,
                         dtype=dtype, seed=1, backend=b).trace(X, Y) for b in BACKENDS]
    a, b = traces
    assert abs(a.loss - b.loss) <= tol * abs(b.loss)
    assert rel_err(a.output, b.output) <= tol
    if a.dloss is not None:
        assert rel_err(a.dloss, b.dloss) <= tol
    for la, lb in zip(a.layers, b.layers):
        for name in ("X", "Z", "H", "dH", "dZ", "dW", "db"):
            x, y = getattr(la, name), getattr(lb, name)
            assert (x is None) == (y is None)
            if x is not None:
                assert rel_err(x, y) <= tol, name


@pytest.mark.parametrize("backend", BACKENDS)
def test_trace_health_and_check_change_nothing(backend):
    rng = np.random.default_rng(6)
    X, Y = rng.standard_normal((50, 4)), rng.standard_normal((50, 2))
    net = dp.Network([4, 8, 2], seed=0, backend=backend)
    net.fit(X, Y, epochs=1, optimizer=dp.Adam(lr=0.01))  # some optimizer state to keep
    twin = dp.Network([4, 8, 2], seed=0, backend=backend)
    twin.fit(X, Y, epochs=1, optimizer=dp.Adam(lr=0.01))
    snap = snapshot(net)
    net.trace(X, Y)
    net.health(X, Y)
    dp.check_gradients(net, X, Y, max_checks=50)
    assert_unchanged(net, snap)
    # and so training goes on exactly as in a twin that was never inspected
    net.fit(X, Y, epochs=2)
    twin.fit(X, Y, epochs=2)
    for a, b in zip(net.weights + net.biases, twin.weights + twin.biases):
        assert same_bits(a, b)


def test_trace_is_a_snapshot_of_the_callers_rows():
    X = np.linspace(-1, 1, 12, dtype=np.float32).reshape(6, 2)
    net = dp.Network([2, 3, 1], seed=0)
    tr = net.trace(X, np.zeros(6))
    X[:] = 7
    assert tr.layers[0].X.max() <= 1


def test_trace_takes_class_labels_and_lists():
    net = dp.Network([2, 4, 3], output_activation="softmax", loss="cross_entropy", dtype="float64", seed=0)
    tr = net.trace([[0.1, 0.2], [0.3, -0.4]], np.array([2, 0]))
    Y = np.eye(3)[[2, 0]]
    np.testing.assert_allclose(tr.layers[-1].dZ, (tr.output - Y) / 2, rtol=1e-13, atol=1e-16)
    assert tr.dloss is None and tr.layers[-1].dH is None


def test_trace_refuses_too_many_rows_before_converting_them():
    net = dp.Network([3, 4, 1], seed=0)
    rows = _inspect.MAX_TRACE_ROWS + 1
    huge = np.broadcast_to(np.float64(1.0), (rows, 3))  # no memory behind it; a copy would take some
    with pytest.raises(ValueError, match="100,000 rows"):
        net.trace(huge, np.zeros(rows))
    net.trace(np.ones((1000, 3)), np.zeros(1000))  # well within


def test_trace_refuses_more_than_fifty_million_numbers():
    net = dp.Network([10, 5000, 1], seed=0)
    n = 2600  # 2600 * (10 + 4 * 5001) + 55001 = 52.1 million numbers
    with pytest.raises(ValueError, match="50,000,000 numbers"):
        net.trace(np.zeros((n, 10)), np.zeros(n))
    assert _inspect.MAX_TRACE_NUMBERS == 50_000_000 and _inspect.MAX_TRACE_ROWS == 100_000


def test_trace_bad_input_names_the_argument():
    net = dp.Network([3, 4, 1], seed=0)
    with pytest.raises(ValueError, match="features"):
        net.trace(np.ones((5, 2)), np.ones(5))
    with pytest.raises(ValueError, match="y has 4 rows"):
        net.trace(np.ones((5, 3)), np.ones(4))
    with pytest.raises(ValueError, match="NaN"):
        net.trace(np.full((2, 3), np.nan), np.ones(2))
    with pytest.raises(ValueError, match="sample_weight"):
        net.trace(np.ones((2, 3)), np.ones(2), sample_weight=[-1, 1])


# ================================================================================== check_gradients

def _checked(net, X, Y, **kw):
    rep = dp.check_gradients(net, X, Y, **kw)
    assert rep.ok, str(rep)
    return rep


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("hidden", HIDDEN)
def test_check_gradients_passes_for_every_hidden_activation(dtype, backend, hidden):
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((30, 3)), rng.standard_normal((30, 2))
    net = dp.Network([3, 6, 5, 2], activation=hidden, dtype=dtype, seed=1, backend=backend)
    rep = _checked(net, X, Y)
    assert rep.checked == rep.total == 3 * 6 + 6 + 6 * 5 + 5 + 5 * 2 + 2
    assert all(e["W"] is not None and e["b"] is not None for e in rep.layers)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("out,loss", PAIRS)
def test_check_gradients_passes_for_every_output_and_loss(dtype, backend, out, loss):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((25, 3))
    Y = targets(out, loss, 25, 3, rng)
    w = rng.uniform(0.2, 2.0, 25)
    net = dp.Network([3, 6, 3], activation="tanh", output_activation=out, loss=loss, dtype=dtype, seed=4,
                     backend=backend)
    _checked(net, X, Y, sample_weight=w)


def _corrupt(monkeypatch, backend, change):
    """Makes backend.gradients return wrong values: change(list of [dW0, db0, ...]) edits them."""
    module = BACKENDS[backend]
    real = module.gradients

    def wrong(X, Y, params, activations, loss, sample_weight, grads, *rest):
        mean_loss = real(X, Y, params, activations, loss, sample_weight, grads, *rest)  # fills grads
        change(grads)
        return mean_loss

    monkeypatch.setattr(module, "gradients", wrong)


@pytest.mark.parametrize("dtype,factor", [("float32", 1.01), ("float64", 1 + 1e-5)])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("target", range(6))
def test_check_gradients_fails_on_the_corrupted_layer(monkeypatch, dtype, factor, backend, target):
    """A layer's dW or db off by 1% (float32) or 1e-5 (float64) fails, and the report names it."""
    rng = np.random.default_rng(7)
    X, Y = rng.standard_normal((40, 4)), rng.standard_normal((40, 2))
    net = dp.Network([4, 7, 5, 2], activation=["relu", "sigmoid"], dtype=dtype, seed=2, backend=backend)
    assert dp.check_gradients(net, X, Y).ok

    def scale(grads):
        grads[target] *= factor

    _corrupt(monkeypatch, backend, scale)
    rep = dp.check_gradients(net, X, Y, max_checks=30)
    layer, kind = divmod(target, 2)
    assert not rep.ok
    assert rep.worst[:2] == (layer, "Wb"[kind]), str(rep)
    for l, errs in enumerate(rep.layers):
        for k in "Wb":
            bad = (l, k) == (layer, "Wb"[kind])
            assert (errs[k] > rep.tolerance) == bad, (l, k, str(rep))
    assert "FAILED" in str(rep) and "<-" in str(rep)


@pytest.mark.parametrize("backend", BACKENDS)
def test_check_gradients_finds_one_wrong_entry(monkeypatch, backend):
    rng = np.random.default_rng(8)
    X, Y = rng.standard_normal((20, 3)), rng.standard_normal((20, 2))
    net = dp.Network([3, 5, 2], activation="softplus", dtype="float64", seed=0, backend=backend)

    def nudge(grads):
        grads[2][3, 1] += 1e-4 * np.abs(grads[2]).max()

    _corrupt(monkeypatch, backend, nudge)
    rep = dp.check_gradients(net, X, Y)
    assert not rep.ok and rep.worst == (1, "W", (3, 1))
    assert rep.layers[0]["W"] <= rep.tolerance and rep.layers[1]["b"] <= rep.tolerance
    a, numeric = rep.worst_values
    assert a != pytest.approx(numeric, rel=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_check_gradients_reports_non_finite_gradients(monkeypatch, backend):
    rng = np.random.default_rng(8)
    X, Y = rng.standard_normal((20, 3)), rng.standard_normal((20, 2))
    net = dp.Network([3, 5, 2], dtype="float64", seed=0, backend=backend)

    def poison(grads):
        grads[1][2] = np.nan

    _corrupt(monkeypatch, backend, poison)
    rep = dp.check_gradients(net, X, Y)
    assert not rep.ok and rep.max_rel_error == np.inf and rep.worst == (0, "b", (2,))


def test_check_gradients_refuses_a_non_finite_loss():
    net = dp.Network([2, 3, 1], dtype="float64", seed=0)
    X = np.full((3, 2), 1e200)  # finite, but its squared error is not
    with pytest.raises(ValueError, match="loss is inf"):
        dp.check_gradients(net, X, np.ones(3))
    net32 = dp.Network([2, 3, 1], seed=0)  # float32 gradients overflow where float64 does not
    rep = dp.check_gradients(net32, np.full((3, 2), 1e30), np.ones(3))
    assert not rep.ok and rep.max_rel_error == np.inf


@pytest.mark.parametrize("backend", BACKENDS)
def test_check_gradients_at_kinks(backend):
    """relu at exactly Z = 0 and mae at exactly yhat = y: one-sided slopes differ there, and
    the analytic derivative (one of them) must pass."""
    X = np.array([[0.0, 0.0], [1.0, -0.5], [0.3, 0.8], [-1.2, 0.4]])
    W = [np.array([[0.5, -0.3, 0.8], [0.2, 0.7, -0.6]]), np.array([[0.4], [-0.9], [0.6]])]
    b = [np.zeros(3), np.zeros(1)]
    net = dp.Network([2, 3, 1], init=(W, b), dtype="float64", loss="mae", backend=backend)
    tr = net.trace(X, np.zeros(4))
    assert (tr.layers[0].Z[0] == 0).all()  # the first row sits on every hidden unit's kink
    Y = net.predict(X)[:, 0].copy()
    Y[1:] += np.array([0.3, -0.2, 0.5])  # row 0 is fitted exactly: |yhat - y| at its kink
    rep = _checked(net, X, Y)
    assert rep.checked == rep.total


@pytest.mark.parametrize("backend", BACKENDS)
def test_check_gradients_huber_and_relu_near_kinks(backend):
    rng = np.random.default_rng(9)
    X = rng.standard_normal((200, 5))
    Y = rng.standard_normal((200, 2)) * 2  # residuals on both sides of huber's delta
    net = dp.Network([5, 40, 2], loss="huber", dtype="float64", seed=1, backend=backend)
    _checked(net, X, Y)


def test_check_gradients_draws_reproducibly_and_shares_among_arrays():
    rng = np.random.default_rng(10)
    X, Y = rng.standard_normal((30, 20)), rng.standard_normal((30, 3))
    net = dp.Network([20, 64, 32, 3], seed=0)
    rep = dp.check_gradients(net, X, Y, max_checks=60)
    again = dp.check_gradients(net, X, Y, max_checks=60)
    other = dp.check_gradients(net, X, Y, max_checks=60, seed=1)
    assert rep.checked == 60 and rep.total == sum(p.size for p in net.weights + net.biases)
    assert str(rep) == str(again) and rep.max_rel_error == again.max_rel_error
    assert rep.ok and other.ok
    assert all(e["W"] is not None and e["b"] is not None for e in rep.layers)
    assert _inspect._allocate([1280, 64, 2048, 32, 96, 3], 60) == [12, 11, 12, 11, 11, 3]
    assert _inspect._allocate([5, 5], 100) == [5, 5]
    assert sum(_inspect._allocate([7, 1, 100, 3], 11)) == 11
    few = dp.check_gradients(net, X, Y, max_checks=2)
    assert few.checked == 2 and sum(e is None for layer in few.layers for e in layer.values()) == 4


def test_check_gradients_report_fields_and_text():
    rng = np.random.default_rng(11)
    X, Y = rng.standard_normal((10, 2)), rng.standard_normal((10, 1))
    rep = dp.check_gradients(dp.Network([2, 3, 1], seed=0), X, Y)
    assert isinstance(rep.ok, bool) and isinstance(rep.max_rel_error, float)
    assert rep.tolerance == _inspect.GRADIENT_TOLERANCE[np.dtype(np.float32)]
    assert len(rep.layers) == 2 and set(rep.layers[0]) == {"W", "b"}
    layer, kind, index = rep.worst
    assert kind in ("W", "b") and isinstance(index, tuple)
    text = str(rep)
    assert text.startswith("gradient check ok") and "float32" in text and "layer" in text
    assert "ok=True" in repr(rep)


def test_check_gradients_bad_arguments():
    net = dp.Network([2, 3, 1], seed=0)
    X, y = np.ones((4, 2)), np.ones(4)
    for kw, err in [({"eps": 0.0}, ValueError), ({"eps": float("nan")}, ValueError), ({"eps": "1e-6"}, TypeError),
                    ({"eps": 1e-20}, ValueError), ({"eps": 0.5}, ValueError),
                    ({"max_checks": 0}, ValueError), ({"max_checks": 2.5}, TypeError),
                    ({"sample_weight": [1, 2]}, ValueError)]:
        with pytest.raises(err):
            dp.check_gradients(net, X, y, **kw)
    with pytest.raises(ValueError, match="features"):
        dp.check_gradients(net, np.ones((4, 3)), y)


# ================================================================================== health

def test_health_rules_cover_every_activation():
    """The table keeps up with the library: a new activation must be given a rule here."""
    names = set(reference.ACTIVATIONS)
    assert names <= set(_inspect.HEALTH_RULES), names - set(_inspect.HEALTH_RULES)
    assert set(_inspect.HEALTH_RULES) - names <= {"silu"}  # silu is coming; nothing else is stale
    assert _inspect.DEAD_ACTIVATIONS == {"relu", "leaky_relu", "elu", "gelu", "silu"}
    assert _inspect.SATURATING_ACTIVATIONS == {"sigmoid", "tanh"}
    z = np.array([[-8.0, -20.0]])
    for name in _inspect.DEAD_ACTIVATIONS & names:  # rectifier-like: next to no slope far below 0
        slope = reference.activation_backward(name, z, reference.activation_forward(name, z), np.ones_like(z))
        assert np.abs(slope).max() <= 0.01 + 1e-12, name
    for name in _inspect.SATURATING_ACTIVATIONS:
        big = np.array([[-6.0, 6.0]])
        slope = reference.activation_backward(name, big, reference.activation_forward(name, big),
                                              np.ones_like(big))
        assert np.abs(slope).max() < 0.01, name


def test_health_by_hand():
    W = [np.array([[1.0, -1.0, 2.0, 0.0]]), np.array([[1.0], [1.0], [-1.0], [10.0]])]
    b = [np.array([0.0, -5.0, 0.5, -1.0]), np.array([0.2])]
    net = dp.Network([1, 4, 1], init=(W, b), dtype="float64")
    X = np.array([[1.0], [2.0], [-0.5]])
    y = np.array([1.0, 0.0, 2.0])
    h = net.health(X, y)
    Zh = X @ W[0] + b[0]   # unit 1: -6, -7, -4.5 (dead); unit 3: -1 always (dead); unit 0 and 2 alive
    Zo = np.maximum(Zh, 0) @ W[1] + b[1]
    assert [e["activation"] for e in h] == ["relu", "identity"]
    assert h[0]["dead"] == 0.5 and h[0]["saturated"] == 0.0 and h[0]["units"] == 4
    assert h[0]["mean_abs_z"] == pytest.approx(np.abs(Zh).mean()) and h[0]["max_abs_z"] == 7.0
    assert h[1]["dead"] == 0.0 and h[1]["max_abs_z"] == pytest.approx(np.abs(Zo).max())
    dW, _ = net.gradients(X, y)
    for entry, g in zip(h, dW):
        assert entry["grad_norm"] == pytest.approx(np.sqrt((g ** 2).sum()))
    assert all("grad_norm" not in e for e in net.health(X))


def test_health_saturation():
    W = [np.array([[10.0, -10.0, 0.1]]), np.ones((3, 1))]
    net = dp.Network([1, 3, 1], activation="tanh", init=(W, None), bias_init=0.0, dtype="float64")
    h = net.health(np.array([[1.0], [-2.0], [0.9]]))
    assert h[0]["saturated"] == pytest.approx(2 / 3) and h[0]["dead"] == 0.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_health_backends_agree_and_chunks_do_not_matter(monkeypatch, dtype):
    rng = np.random.default_rng(12)
    X, Y = rng.standard_normal((500, 6)) * 2, rng.standard_normal((500, 2))
    nets = [dp.Network([6, 32, 16, 2], activation=["relu", "tanh"], dtype=dtype, seed=0, backend=b)
            for b in BACKENDS]
    for net in nets:
        net.biases[0][:8] = -100  # 8 of 32 relu units dead
        net.biases[1][:4] = 100   # 4 of 16 tanh units saturated
    tol = OP_TOL[np.dtype(dtype).type]
    a, b = (n.health(X, Y) for n in nets)
    monkeypatch.setattr(_inspect, "_HEALTH_CHUNK_NUMBERS", 32 * 7)  # 7-row chunks
    c = nets[0].health(X, Y)
    for ea, eb, ec in zip(a, b, c):
        for key in ("dead", "saturated"):
            assert ea[key] == eb[key] == ec[key]
        for key in ("mean_abs_z", "max_abs_z", "grad_norm"):
            assert abs(ea[key] - eb[key]) <= tol * abs(eb[key]), key
            assert abs(ea[key] - ec[key]) <= tol * abs(ea[key]), key
    assert a[0]["dead"] == 0.25 and a[1]["saturated"] == 0.25


# ================================================================================== fit's warning

def _dying(backend="cpp", rows=400):
    """A network whose ReLU layer is dead from the start (bias -10; the next layer is tanh)."""
    rng = np.random.default_rng(13)
    X, y = rng.standard_normal((rows, 4)), rng.standard_normal(rows)
    net = dp.Network([4, 16, 8, 1], activation=["relu", "tanh"], seed=0, bias_init=-10.0, backend=backend)
    return net, X, y


@pytest.fixture
def every_epoch(monkeypatch):
    """The dead-unit check after every epoch, whatever it costs, so tests need not train long."""
    monkeypatch.setattr(_inspect, "WATCH_BUDGET", np.inf)
    monkeypatch.setattr(_inspect, "WATCH_FIRST_CHECK", 0.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_verbose_warns_once_per_dead_layer(capsys, every_epoch, backend):
    net, X, y = _dying(backend)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net.fit(X, y, epochs=4, verbose=1)
    dead = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(dead) == 1, [str(w.message) for w in dead]
    message = str(dead[0].message)
    assert message.startswith("layer 0 (hidden layer, relu)") and "dead after epoch 1" in message
    assert dead[0].filename == __file__  # points at the caller's fit
    # the same again in a new fit: once per layer per fit
    with pytest.warns(RuntimeWarning, match="layer 0"):
        net.fit(X, y, epochs=1, verbose=1)
    capsys.readouterr()


def test_fit_warns_for_each_dead_layer_including_the_output(capsys, every_epoch):
    rng = np.random.default_rng(14)
    X, y = rng.standard_normal((100, 3)), rng.uniform(1, 2, (100, 2))
    net = dp.Network([3, 6, 2], output_activation="relu", seed=0, bias_init=-5.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net.fit(X, y, epochs=2, verbose=1)
    messages = sorted(str(w.message) for w in caught if issubclass(w.category, RuntimeWarning))
    assert len(messages) == 2
    assert messages[0].startswith("layer 0 (hidden layer") and messages[1].startswith("layer 1 (output layer")
    capsys.readouterr()


def test_fit_quiet_or_healthy_does_not_warn(capsys, every_epoch):
    net, X, y = _dying()
    healthy = dp.Network([4, 16, 8, 1], seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net.fit(X, y, epochs=2)  # verbose=0: no check at all
        healthy.fit(X, y, epochs=3, verbose=1)
    capsys.readouterr()


def test_fit_warns_within_its_time_budget(capsys):
    """Unpatched: a fit of well over 2.5 ms of training is checked, and warns."""
    net, X, y = _dying(rows=20_000)
    with pytest.warns(RuntimeWarning, match=r"layer 0 \(hidden layer, relu\): 100% of its 16 units"):
        net.fit(X, y, epochs=20, batch_size=4, verbose=1)
    capsys.readouterr()


def test_fit_verbose_trains_exactly_as_quiet(capsys, every_epoch):
    quiet, X, y = _dying()
    loud, _, _ = _dying()
    quiet.fit(X, y, epochs=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loud.fit(X, y, epochs=3, verbose=1)
    capsys.readouterr()
    for a, b in zip(quiet.weights + quiet.biases, loud.weights + loud.biases):
        assert same_bits(a, b)
    assert repr(quiet._rng.bit_generator.state) == repr(loud._rng.bit_generator.state)


def test_dead_unit_watch_keeps_to_its_time_budget():
    net, X, _ = _dying()
    watch = _inspect.DeadUnitWatch(net, np.asarray(X, np.float32))
    assert watch.X.shape[0] == 64  # 400 rows: the minimum sample
    watch.todo = [2]  # a layer that never warns, so it checks whenever the budget allows
    net.activations[2] = "relu"
    net.biases[2][:] = 10.0

    def epochs(count, seconds):
        checks = 0
        for _ in range(count):
            before = watch.spent
            watch.epoch_end({"epoch": 0, "time": seconds})
            checks += watch.spent != before
        return checks

    assert epochs(200, 1e-7) == 0  # 2% of 20 us of training cannot pay for a first check of 50 us
    assert epochs(1, 1e-3) == 0  # nor 2% of 1 ms
    assert epochs(10, 0.05) == 10  # 1 ms for each 50 ms epoch pays for its check (tens of us)
    assert 0 < watch.spent <= _inspect.WATCH_BUDGET * watch.trained
    big = _inspect.DeadUnitWatch(net, np.zeros((100_000, 4), np.float32))
    assert big.X.shape[0] == _inspect.WATCH_MAX_ROWS
    assert _inspect.DeadUnitWatch(net, X, enabled=False).todo == []


# ================================================================================== README

def test_readme_seeing_inside_example_is_what_trace_gives():
    import json
    import pathlib
    import re
    text = (pathlib.Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = text.split("## Seeing inside", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace = {"dp": dp}
    checked = 0
    for line in code.splitlines():
        statement, _, comment = line.partition("#")
        if not statement.strip() or statement.startswith("import "):
            continue
        if "=" in statement:
            exec(statement, namespace)  # the example's own set-up lines
            continue
        values = re.split(r"\s{2,}", comment.strip())[-1]
        got = eval(statement, namespace)
        want = json.loads(f"[{values}]") if "," in statement else json.loads(values)
        for g, w in (zip(got, want) if isinstance(got, tuple) else [(got, want)]):
            np.testing.assert_allclose(np.round(np.asarray(g, float), 4), np.asarray(w, float), atol=1e-12,
                                       err_msg=statement)
        checked += 1
    assert checked == 11
