"""The Network API: construction, training behaviour, features, persistence."""

import math

import numpy as np
import pytest

import denseprop as dp
from helpers import assert_unchanged, regression_data, snapshot

BACKENDS = ["cpp", "numpy"]


# ------------------------------------------------------------------ construction

def test_defaults_and_he_initialisation():
    net = dp.Network([4, 8, 3], seed=5)
    assert net.layers == [4, 8, 3]
    assert net.activations == ["relu", "identity"]
    assert net.loss == "mse" and net.dtype == np.float32 and net.backend == "cpp"
    rng = np.random.default_rng(5)
    for w, b, (fi, fo) in zip(net.weights, net.biases, [(4, 8), (8, 3)]):
        expected = (rng.standard_normal((fi, fo)) * math.sqrt(2.0 / fi)).astype(np.float32)
        np.testing.assert_array_equal(w, expected)
        np.testing.assert_array_equal(b, np.full(fo, 0.1, np.float32))
    assert isinstance(net.optimizer, dp.SGD) and net.optimizer.lr == 0.01


def test_glorot_and_user_initialisation():
    net = dp.Network([6, 10, 2], init="glorot", seed=0, dtype="float64")
    bound = math.sqrt(6 / 16)
    assert np.abs(net.weights[0]).max() <= bound
    W = [np.arange(6.0).reshape(2, 3), np.ones((3, 1))]
    user = dp.Network([2, 3, 1], init=(W, None), bias_init=0.0, dtype="float64")
    np.testing.assert_array_equal(user.weights[0], W[0])
    np.testing.assert_array_equal(user.biases[0], 0.0)
    with pytest.raises(ValueError, match="shape"):
        dp.Network([2, 3, 1], init=([np.ones((3, 2)), np.ones((3, 1))], None))


def test_textbook_example_exactly():
    """Prediction = relu(relu(X Wh + bh) Wo + bo) with layers [1, 2, 2], and one SGD step by hand."""
    net = dp.Network([1, 2, 2], output_activation="relu", dtype="float64", seed=0)
    Wh, bh, Wo, bo = net.weights[0].copy(), net.biases[0].copy(), net.weights[1].copy(), net.biases[1].copy()
    X = np.array([[0.5]])
    y = np.array([[1.0, 2.0]])
    H = np.maximum(X @ Wh + bh, 0)
    P = np.maximum(H @ Wo + bo, 0)
    np.testing.assert_allclose(net.predict(X), P, rtol=1e-15)
    assert net.evaluate(X, y) == pytest.approx(0.5 * ((P - y) ** 2).sum(), rel=1e-15)
    # Backward by hand: dP = P - y, masked by the output ReLU, then through the hidden layer.
    dZo = (P - y) * (P > 0)
    dWo, dbo = H.T @ dZo, dZo.sum(0)
    dZh = (dZo @ Wo.T) * (H > 0)
    dWh, dbh = X.T @ dZh, dZh.sum(0)
    (gW, gb) = net.gradients(X, y)
    for got, want in zip(gW + gb, [dWh, dWo, dbh, dbo]):
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)
    net.fit(X, y, epochs=1, batch_size=1, lr=0.1)
    np.testing.assert_allclose(net.weights[0], Wh - 0.1 * dWh, rtol=1e-14)
    np.testing.assert_allclose(net.weights[1], Wo - 0.1 * dWo, rtol=1e-14)
    np.testing.assert_allclose(net.biases[1], bo - 0.1 * dbo, rtol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_lowers_the_loss_on_the_textbook_problem(backend):
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (200, 1))
    y = np.column_stack([X[:, 0] + 0.5, 2 * X[:, 0] + 0.2])
    # Two ReLU units can die for an unlucky draw (seeds 3 and 6 here); seed 0 is a typical one.
    net = dp.Network([1, 2, 2], output_activation="relu", seed=0, backend=backend)
    before = net.evaluate(X, y)
    hist = net.fit(X, y, epochs=30, batch_size=1, lr=0.01)
    assert hist.loss[-1] < 0.01 * hist.loss[0]
    assert net.evaluate(X, y) < 0.01 * before


def test_weights_are_live_arrays():
    net = dp.Network([2, 3, 1], seed=0)
    w0 = net.weights[0]
    net.weights[0][...] = 0
    net.biases[0][...] = 0
    np.testing.assert_array_equal(net.predict(np.ones((2, 2))), np.tile(net.biases[1], (2, 1)))
    net.fit(np.ones((4, 2)), np.ones(4), epochs=1, lr=0.1)
    assert net.weights[0] is w0  # updated in place, never replaced


def test_replaced_weights_are_rejected_clearly():
    net = dp.Network([2, 3, 1], seed=0)
    net.weights[0] = np.zeros((2, 3))  # float64 into a float32 network
    with pytest.raises(ValueError, match="weights\\[0\\]"):
        net.predict(np.ones((1, 2)))


def test_seed_reproduces_training_on_both_backends():
    X, y = regression_data(64, 3, 1, seed=1)
    runs = []
    for backend in BACKENDS * 2:
        net = dp.Network([3, 8, 1], seed=42, backend=backend, dtype="float64")
        runs.append(net.fit(X, y, epochs=3, batch_size=8).loss)
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-10)
    assert runs[0] == runs[2] and runs[1] == runs[3]


def test_input_conversion_and_no_copy():
    net = dp.Network([3, 4, 1], seed=0)
    X = np.ones((5, 3), np.float32)
    assert net._X(X) is X  # right dtype and layout: used as is
    for variant in (X.tolist(), X.astype(np.int64), X.astype(">f8"), np.asfortranarray(X), X.astype(bool),
                    X.astype(np.float16)):
        np.testing.assert_array_equal(net.predict(variant), net.predict(X))


def test_memmap_trains_without_copy(tmp_path):
    path = tmp_path / "x.dat"
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(256, 4))
    X[:] = np.random.default_rng(0).standard_normal((256, 4))
    net = dp.Network([4, 8, 1], seed=0)
    assert np.shares_memory(net._X(X), X)
    net.fit(X, X[:, :1] * 2, epochs=2, batch_size=16)


def test_predict_in_chunks_matches_small_batches():
    net = dp.Network([3, 16, 2], seed=0, dtype="float64")
    X = np.random.default_rng(1).standard_normal((20000, 3))
    full = net.predict(X)
    np.testing.assert_allclose(full[-7:], net.predict(X[-7:]), rtol=1e-13)


def test_big_weight_matrices_use_tall_chunks_with_the_same_results():
    """A layer of a million weights or more runs predict, evaluate and gradients in taller
    chunks (here 512 rows: 1,501 rows are two chunks and a short one); the results still
    match the NumPy reference."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((1501, 1024))
    Y = rng.standard_normal((1501, 4))
    net = dp.Network([1024, 1024, 4], seed=0, dtype="float64")
    ref = dp.Network([1024, 1024, 4], seed=0, dtype="float64", backend="numpy")
    np.testing.assert_allclose(net.predict(X), ref.predict(X), rtol=1e-11, atol=1e-12)
    assert net.evaluate(X, Y) == pytest.approx(ref.evaluate(X, Y), rel=1e-11)
    dW, db = net.gradients(X, Y)
    rW, rb = ref.gradients(X, Y)
    for a, b in zip(dW + db, rW + rb):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.fixture
def restore_threads():
    before = dp.get_num_threads()
    yield
    dp.set_num_threads(before)


def _max_rel_diff(a, b):
    return max(float(np.max(np.abs(x - y))) / max(float(np.max(np.abs(y))), 1e-30) for x, y in zip(a, b))


@pytest.mark.parametrize("hidden", [160, 400])
@pytest.mark.parametrize("dtype, tol", [("float64", 1e-9), ("float32", 3e-4)])
@pytest.mark.parametrize("make_opt, weighted, shuffle", [
    (lambda: dp.SGD(0.01), False, True),  # SGD folded into the weight-gradient products
    (lambda: dp.SGD(0.01, momentum=0.9), True, True),
    (lambda: dp.Adam(1e-3), False, False),
])
def test_two_threads_share_large_products_and_match_the_reference(restore_threads, hidden, dtype, tol, make_opt,
                                                                    weighted, shuffle):
    """With 2 threads, training splits its products of 2^20 multiply-adds and more between
    two threads (here 48 x 400 x hidden: by rows for a 400 x 160 weight matrix, by columns
    for 400 x 400) and shares the gather of each batch's rows.
    The weights after 3 epochs match the NumPy reference and the same fit on 1 thread to
    rounding; 1,000 rows leave a last batch of 40."""
    X, Y = regression_data(1000, 400, 3, seed=4, dtype=np.dtype(dtype))
    w = np.random.default_rng(5).uniform(0.5, 2.0, len(X)) if weighted else None
    layers = [400, hidden, 40, 3]
    # The plan: OpenBLAS held at one thread, a team of two sharing the products.
    assert dp._core.plan_threads(layers, 1000, 48, 2, "train") == {"blas_threads": 1, "team": 2, "chunk_rows": 48}
    assert dp._core.plan_threads(layers, 1000, 48, 1, "train") == {"blas_threads": 1, "team": 1, "chunk_rows": 48}
    fits = {}
    for name, backend, threads in [("ref", "numpy", 1), ("one", "cpp", 1), ("two", "cpp", 2)]:
        dp.set_num_threads(threads)
        net = dp.Network(layers, seed=0, dtype=dtype, backend=backend)
        hist = net.fit(X, Y, epochs=3, batch_size=48, optimizer=make_opt(), shuffle=shuffle, sample_weight=w)
        fits[name] = (net.weights + net.biases, hist.loss)
    for name in ("one", "two"):
        assert _max_rel_diff(fits[name][0], fits["ref"][0]) < tol, name
        np.testing.assert_allclose(fits[name][1], fits["ref"][1], rtol=tol)
    assert _max_rel_diff(fits["two"][0], fits["one"][0]) < tol


@pytest.mark.parametrize("threads", [2, 3, 5])
@pytest.mark.parametrize("n_rows", [1000, 1010])
@pytest.mark.parametrize("dtype, tol", [("float64", 1e-9), ("float32", 3e-4)])
def test_helpers_gathering_the_next_batch_give_the_reference_result(restore_threads, threads, n_rows, dtype, tol):
    """With a team, the helpers gather the next batch's rows into a second buffer between
    the step's shared products, and every thread finishes the gather at the next step's
    start. Here every 40-row batch of 512 inputs is shared (20,480 elements); with 1,010
    rows the last 10 are not, and are gathered by the calling thread alone. Each epoch
    draws a new order; a wrong or stale row would move the weights far beyond rounding.
    Two 2-thread fits are identical, and match the NumPy reference and 1 thread."""
    X, Y = regression_data(n_rows, 512, 3, seed=7, dtype=np.dtype(dtype))
    assert dp._core.plan_threads([512, 256, 3], n_rows, 40, threads, "train")["team"] == threads
    fits = {}
    for name, backend, t in [("ref", "numpy", 1), ("one", "cpp", 1), ("team", "cpp", threads),
                             ("again", "cpp", threads)]:
        dp._core.set_num_threads(t)  # more threads than cores: uncapped
        net = dp.Network([512, 256, 3], seed=1, dtype=dtype, backend=backend)
        hist = net.fit(X, Y, epochs=4, batch_size=40, lr=0.01, shuffle=True)
        fits[name] = (net.weights + net.biases, hist.loss)
    for a, b in zip(fits["again"][0], fits["team"][0]):
        np.testing.assert_array_equal(a, b)
    for name in ("one", "team"):
        assert _max_rel_diff(fits[name][0], fits["ref"][0]) < tol, name
        np.testing.assert_allclose(fits[name][1], fits["ref"][1], rtol=tol)


def test_epoch_loss_is_the_mean_of_batch_losses_before_each_update():
    X, y = regression_data(10, 2, 1, seed=2, dtype=np.float64)
    net = dp.Network([2, 3, 1], seed=0, dtype="float64")
    clone = dp.Network([2, 3, 1], seed=0, dtype="float64")
    hist = net.fit(X, y, epochs=1, batch_size=4, lr=0.1, shuffle=False)
    total = 0.0
    for s in (0, 4, 8):
        xb, yb = X[s:s + 4], y[s:s + 4]
        total += clone.evaluate(xb, yb) * len(xb)
        clone.fit(xb, yb, epochs=1, batch_size=4, lr=0.1, shuffle=False)
    assert hist.loss[0] == pytest.approx(total / 10, rel=1e-12)


# ------------------------------------------------------------------ optimizers and continuation

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("make_opt", [lambda: dp.SGD(0.02, momentum=0.9),
                                      lambda: dp.Adam(0.01, schedule=dp.StepDecay(2, 0.5)),
                                      lambda: dp.SGD(0.05, schedule=dp.ReduceOnPlateau(patience=0))])
def test_fit_in_parts_with_save_and_load_equals_one_fit(tmp_path, backend, make_opt):
    X, y = regression_data(90, 4, 2, seed=3)
    whole = dp.Network([4, 9, 2], seed=8, backend=backend)
    whole.fit(X, y, epochs=6, batch_size=16, optimizer=make_opt())
    parts = dp.Network([4, 9, 2], seed=8, backend=backend)
    parts.fit(X, y, epochs=3, batch_size=16, optimizer=make_opt())
    parts.save(tmp_path / "m.npz")
    again = dp.Network.load(tmp_path / "m.npz")
    assert again.backend == backend
    again.fit(X, y, epochs=3, batch_size=16)  # neither lr nor optimizer: continue
    for a, b in zip(whole.weights + whole.biases, again.weights + again.biases):
        np.testing.assert_array_equal(a, b)


def test_optimizer_choice_rules():
    X, y = regression_data(20, 2, 1)
    net = dp.Network([2, 3, 1], seed=0)
    net.fit(X, y, epochs=1, optimizer=dp.Adam(0.01))
    adam = net.optimizer
    net.fit(X, y, epochs=1)
    assert net.optimizer is adam and adam.step == 2
    net.fit(X, y, epochs=1, optimizer=adam)
    assert adam.step == 3
    net.fit(X, y, epochs=1, lr=0.05)
    assert isinstance(net.optimizer, dp.SGD) and net.optimizer.lr == 0.05
    with pytest.raises(TypeError, match="not both"):
        net.fit(X, y, lr=0.1, optimizer=dp.SGD())


def test_schedules():
    X, y = regression_data(20, 2, 1)
    net = dp.Network([2, 3, 1], seed=0)
    hist = net.fit(X, y, epochs=5, optimizer=dp.SGD(0.1, schedule=dp.StepDecay(2, gamma=0.5)))
    assert hist.lr == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    hist = net.fit(X, y, epochs=3, optimizer=dp.SGD(0.1, schedule=dp.InverseScaling(power_t=1.0)))
    assert hist.lr == pytest.approx([0.1, 0.05, 0.1 / 3])
    plateau = dp.ReduceOnPlateau(factor=0.5, patience=1)
    for value in [1.0, 1.0, 1.0, 0.5, 0.5, 0.5]:
        plateau.step(value)
    assert plateau.lr(1.0) == pytest.approx(0.25)


# ------------------------------------------------------------------ losses and classification

def test_softmax_classification_with_labels_and_one_hot():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 2))
    labels = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0).astype(int)
    net = dp.Network([2, 16, 3], output_activation="softmax", loss="cross_entropy", seed=0)
    hist = net.fit(X, labels, epochs=30, batch_size=16, optimizer=dp.Adam(0.01))
    assert hist.accuracy[-1] > 0.9 and hist.r2 == []
    proba = net.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    classes = net.predict_classes(X)
    assert classes.dtype == np.int64 and classes.shape == (300,)
    assert net.score(X, labels) == pytest.approx(np.mean(classes == labels))
    onehot = np.eye(3)[labels]
    assert net.evaluate(X, onehot) == pytest.approx(net.evaluate(X, labels))


def test_sigmoid_binary_and_multilabel():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((200, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    net = dp.Network([3, 8, 1], output_activation="sigmoid", loss="cross_entropy", seed=0)
    net.fit(X, y, epochs=20, optimizer=dp.Adam(0.02))
    assert net.predict_classes(X).shape == (200,)
    assert net.score(X, y) > 0.9
    Y2 = np.column_stack([y, 1 - y])
    multi = dp.Network([3, 8, 2], output_activation="sigmoid", loss="cross_entropy", seed=0)
    multi.fit(X, Y2, epochs=5)
    assert multi.predict_classes(X).shape == (200, 2)


def test_classification_rules():
    with pytest.raises(ValueError, match="cross_entropy"):
        dp.Network([2, 3], output_activation="softmax")
    with pytest.raises(ValueError, match="softmax"):
        dp.Network([2, 3], loss="cross_entropy")
    with pytest.raises(ValueError, match="2 outputs"):
        dp.Network([2, 1], output_activation="softmax", loss="cross_entropy")
    with pytest.raises(ValueError):
        dp.Network([2, 3, 2], activation="softmax")
    reg = dp.Network([2, 1])
    with pytest.raises(ValueError, match="cross_entropy"):
        reg.predict_classes(np.ones((1, 2)))
    with pytest.raises(ValueError, match="cross_entropy"):
        reg.predict_proba(np.ones((1, 2)))
    clf = dp.Network([2, 3], output_activation="softmax", loss="cross_entropy")
    X = np.ones((3, 2))
    for bad in (np.array([0, 1, 3]), np.array([0, -1, 1]), np.array([0.0, 1.0, 2.0]), np.ones((3, 2)),
                np.full((3, 3), 2.0)):
        with pytest.raises(ValueError):
            clf.fit(X, bad)


def test_regression_metrics_and_sample_weight():
    X, y = regression_data(200, 3, 2, seed=4, dtype=np.float64)
    net = dp.Network([3, 16, 2], seed=0, dtype="float64")
    hist = net.fit(X, y, epochs=20, batch_size=16, lr=0.05, validation_split=0.25)
    assert len(hist.r2) == len(hist.val_r2) == 20 and hist.accuracy == []
    pred = net.predict(X)
    r2 = np.mean([1 - ((y[:, j] - pred[:, j]) ** 2).sum() / ((y[:, j] - y[:, j].mean()) ** 2).sum()
                  for j in range(2)])
    assert net.score(X, y) == pytest.approx(r2, rel=1e-10)
    w = np.zeros(200)
    w[:10] = 1
    assert net.evaluate(X, y, sample_weight=w) == pytest.approx(net.evaluate(X[:10], y[:10]) * 10 / 200)


def test_sample_weight_zero_rows_do_not_train():
    X, y = regression_data(40, 2, 1, seed=5, dtype=np.float64)
    w = np.r_[np.ones(20), np.zeros(20)]
    a = dp.Network([2, 4, 1], seed=0, dtype="float64")
    a.fit(X, y, epochs=2, batch_size=40, sample_weight=w, lr=0.1, shuffle=False)
    y2 = y.copy()
    y2[20:] = 1e3  # ignored rows
    b = dp.Network([2, 4, 1], seed=0, dtype="float64")
    b.fit(X, y2, epochs=2, batch_size=40, sample_weight=w, lr=0.1, shuffle=False)
    np.testing.assert_allclose(a.weights[0], b.weights[0], rtol=1e-14)


# ------------------------------------------------------------------ validation, stopping, callbacks

def test_validation_split_holds_out_last_rows():
    X, y = regression_data(100, 2, 1, seed=6)
    a = dp.Network([2, 4, 1], seed=0)
    ha = a.fit(X, y, epochs=2, validation_split=0.2)
    b = dp.Network([2, 4, 1], seed=0)
    hb = b.fit(X[:80], y[:80], epochs=2, validation_data=(X[80:], y[80:]))
    assert ha.loss == hb.loss and ha.val_loss == hb.val_loss
    assert dp.Network([2, 4, 1]).fit(X, y, epochs=2).val_loss == []


def test_early_stopping_restores_best_weights():
    X, y = regression_data(100, 2, 1, seed=7)
    net = dp.Network([2, 16, 1], seed=0)
    seen = []

    def spy(record):
        seen.append((record["epoch"], [w.copy() for w in net.weights]))

    # A huge lr makes validation loss bounce, so the best epoch is early.
    hist = net.fit(X, y, epochs=50, lr=0.3, validation_split=0.3, callbacks=[spy],
                   early_stopping=dp.EarlyStopping(patience=2))
    assert hist.stopped_early and len(hist.loss) < 50
    best = int(np.argmin(hist.val_loss))
    assert hist.best_epoch == best
    for a, b in zip(net.weights, seen[best][1]):
        np.testing.assert_array_equal(a, b)


def test_callback_can_stop_and_gets_records():
    X, y = regression_data(30, 2, 1)
    records = []
    hist = dp.Network([2, 3, 1], seed=0).fit(
        X, y, epochs=10, callbacks=[lambda r: records.append(r) or r["epoch"] == 2])
    assert len(hist.loss) == 3 and [r["epoch"] for r in records] == [0, 1, 2]
    assert set(records[0]) >= {"epoch", "loss", "r2", "time", "lr"}


def test_verbose_prints_a_line_per_epoch_without_tqdm(capsys, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_tqdm(name, *a, **k):
        if name.startswith("tqdm"):
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    X, y = regression_data(30, 2, 1)
    dp.Network([2, 3, 1], seed=0).fit(X, y, epochs=3, verbose=1)
    out = capsys.readouterr().out
    assert out.count("epoch ") == 3 and "loss=" in out


def test_history_plot_says_how_to_install_matplotlib(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_mpl(name, *a, **k):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_mpl)
    hist = dp.Network([2, 1]).fit(np.ones((3, 2)), np.ones(3), epochs=1)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        hist.plot()


# ------------------------------------------------------------------ persistence

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_load_round_trip(tmp_path, dtype):
    net = dp.Network([3, 5, 4, 2], activation=["tanh", "gelu"], output_activation="softmax",
                     loss="cross_entropy", dtype=dtype, seed=1)
    X = np.random.default_rng(0).standard_normal((20, 3))
    net.fit(X, np.arange(20) % 2, epochs=2, optimizer=dp.Adam(0.01, schedule=dp.InverseScaling()))
    path = tmp_path / "model"  # no extension: written as given
    net.save(path)
    assert path.exists() and not (tmp_path / "model.npz").exists()
    loaded = dp.Network.load(path, backend="numpy")
    assert loaded.backend == "numpy" and loaded.layers == net.layers
    assert loaded.activations == net.activations and loaded.loss == net.loss and loaded.dtype == net.dtype
    for a, b in zip(net.weights + net.biases + net.optimizer.state,
                    loaded.weights + loaded.biases + loaded.optimizer.state):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert loaded.optimizer.step == net.optimizer.step
    assert isinstance(loaded.optimizer.schedule, dp.InverseScaling)
    np.testing.assert_allclose(loaded.predict(X), net.predict(X), rtol=1e-5)  # other backend


# ------------------------------------------------------------------ bad input

def bad_calls():
    X = np.ones((6, 3))
    y = np.ones(6)
    return [
        (lambda n: n.fit(X[:, :2], y), ValueError, "features"),
        (lambda n: n.fit(X, np.ones(5)), ValueError, "rows"),
        (lambda n: n.fit(X, np.ones((6, 2))), ValueError, "outputs"),
        (lambda n: n.fit(np.where(X > 0, np.nan, X), y), ValueError, "NaN"),
        (lambda n: n.fit(X, np.full(6, np.inf)), ValueError, "NaN or inf"),
        (lambda n: n.fit(np.ones((0, 3)), np.ones(0)), ValueError, "empty"),
        (lambda n: n.fit(X, y, batch_size=0), ValueError, "batch_size"),
        (lambda n: n.fit(X, y, batch_size=2.5), TypeError, "batch_size"),
        (lambda n: n.fit(X, y, epochs=-1), ValueError, "epochs"),
        (lambda n: n.fit(X, y, epochs=True), TypeError, "epochs"),
        (lambda n: n.fit(X, y, lr=0), ValueError, "lr"),
        (lambda n: n.fit(X, y, lr=float("nan")), ValueError, "lr"),
        (lambda n: n.fit(X, y, lr=-0.1), ValueError, "lr"),
        (lambda n: n.fit(X, y, lr="fast"), TypeError, "lr"),
        (lambda n: n.fit(X, y, optimizer="adam"), TypeError, "optimizer"),
        (lambda n: n.fit(X, y, sample_weight=-np.ones(6)), ValueError, "non-negative"),
        (lambda n: n.fit(X, y, validation_split=1.0), ValueError, "validation_split"),
        (lambda n: n.fit(X, y, validation_data=(X, y), validation_split=0.5), ValueError, "not both"),
        (lambda n: n.fit(X, y, validation_data=(X[:, :2], y)), ValueError, "features"),
        (lambda n: n.fit(X, y, callbacks=[1]), TypeError, "callbacks"),
        (lambda n: n.fit(X.astype(complex), y), TypeError, "complex"),
        (lambda n: n.fit(X.astype(object), y), TypeError, "object"),
        (lambda n: n.fit(np.array([["a"] * 3] * 6), y), TypeError, "dtype"),
        (lambda n: n.fit(X[0], y), ValueError, "2-D"),
        (lambda n: n.predict(np.ones((2, 4))), ValueError, "features"),
        (lambda n: n.evaluate(X, y[:3]), ValueError, "rows"),
        (lambda n: n.gradients(X, np.nan * y), ValueError, "NaN"),
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_input_raises_and_leaves_network_unchanged(backend):
    net = dp.Network([3, 4, 1], seed=0, backend=backend)
    net.fit(np.ones((6, 3)), np.ones(6), epochs=1, optimizer=dp.Adam())
    snap = snapshot(net)
    for call, exc, words in bad_calls():
        with pytest.raises(exc, match=words):
            call(net)
        assert_unchanged(net, snap)


@pytest.mark.parametrize("kwargs,exc", [
    (dict(layers=[3]), ValueError), (dict(layers=[3, 0]), ValueError), (dict(layers=[3, -1]), ValueError),
    (dict(layers=[3, 2.0]), TypeError), (dict(layers="34"), TypeError), (dict(layers=[3, True]), TypeError),
    (dict(layers=[3, 2**31]), ValueError), (dict(layers=[3, 1], activation="swish"), ValueError),
    (dict(layers=[3, 1], output_activation="max"), ValueError), (dict(layers=[3, 1], loss="hinge"), ValueError),
    (dict(layers=[3, 1], dtype="float16"), ValueError), (dict(layers=[3, 1], dtype="int32"), ValueError),
    (dict(layers=[3, 1], backend="cuda"), ValueError), (dict(layers=[3, 1], seed=-1), ValueError),
    (dict(layers=[3, 1], seed=1.5), TypeError), (dict(layers=[3, 1], init="lecun"), ValueError),
    (dict(layers=[3, 2, 1], activation=["relu", "relu"]), ValueError),
    (dict(layers=[3, 1], activation=3), TypeError),
])
def test_bad_constructor_arguments(kwargs, exc):
    layers = kwargs.pop("layers")
    with pytest.raises(exc):
        dp.Network(layers, **kwargs)


@pytest.mark.parametrize("make", [lambda: dp.SGD(lr=0), lambda: dp.SGD(momentum=1.0),
                                  lambda: dp.SGD(nesterov=True), lambda: dp.SGD(weight_decay=-1),
                                  lambda: dp.Adam(beta1=1.0), lambda: dp.Adam(eps=0),
                                  lambda: dp.Adam(lr=float("inf")), lambda: dp.StepDecay(0),
                                  lambda: dp.ReduceOnPlateau(factor=1.5), lambda: dp.EarlyStopping(patience=-1),
                                  lambda: dp.SGD(schedule="step")])
def test_bad_optimizer_arguments(make):
    with pytest.raises((ValueError, TypeError)):
        make()


@pytest.mark.parametrize("backend", ["cpp", "numpy"])
def test_predict_rejects_nan_in_a_late_chunk(backend):
    net = dp.Network([4, 300, 2], seed=0, backend=backend)
    X = np.random.default_rng(0).standard_normal((20_000, 4))
    before = [w.copy() for w in net.weights]
    X[-1, 3] = np.nan
    with pytest.raises(ValueError, match="X contains NaN or inf.*remove or impute"):
        net.predict(X)
    X[-1, 3] = 0.0
    assert net.predict(X).shape == (20_000, 2)
    assert all((a == b).all() for a, b in zip(before, net.weights))
