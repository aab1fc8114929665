"""Single C++ operations against the NumPy reference, and the bindings' argument checks."""

import numpy as np
import pytest

from denseprop import _core, reference
from helpers import OP_TOL, rel_err

DTYPES = [np.float32, np.float64]
ACTS = list(reference.ACTIVATIONS)
SHAPES = [(1, 1, 1), (1, 2, 2), (3, 1, 4), (7, 5, 3), (32, 64, 8), (64, 33, 65), (128, 256, 96)]


def rand(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,K,N", SHAPES)
def test_dense_forward_backward(dtype, M, K, N):
    rng = np.random.default_rng(M * 1000 + K * 10 + N)
    X, W, b, dZ = rand(rng, (M, K), dtype), rand(rng, (K, N), dtype), rand(rng, N, dtype), rand(rng, (M, N), dtype)
    Z = _core.dense_forward(X, W, b)
    assert Z.dtype == dtype and Z.shape == (M, N)
    assert rel_err(Z, reference.dense_forward(X, W, b)) < OP_TOL[dtype]
    for got, want in zip(_core.dense_backward(X, W, dZ), reference.dense_backward(X, W, dZ)):
        assert got.dtype == dtype and got.shape == want.shape
        assert rel_err(got, want) < OP_TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("M,K,N", [(2, 3, 4), (17, 9, 5), (100, 80, 60)])
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (-0.5, 1.0), (2.0, 0.25)])
def test_gemm(dtype, trans_a, trans_b, M, K, N, alpha, beta):
    rng = np.random.default_rng(0)
    A = rand(rng, (K, M) if trans_a else (M, K), dtype)
    B = rand(rng, (N, K) if trans_b else (K, N), dtype)
    C0 = rand(rng, (M, N), dtype)
    C1, C2 = C0.copy(), C0.copy()
    _core.gemm(A, B, C1, trans_a, trans_b, alpha, beta)
    reference.gemm(A, B, C2, trans_a, trans_b, alpha, beta)
    assert rel_err(C1, C2) < OP_TOL[dtype] * 10  # K-term sums in different orders


def test_gemm_beta_zero_ignores_nan_in_output():
    A = np.ones((3, 2), np.float32)
    B = np.ones((2, 4), np.float32)
    C = np.full((3, 4), np.nan, np.float32)
    _core.gemm(A, B, C)
    np.testing.assert_array_equal(C, 2.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTS)
def test_activations(dtype, act):
    rng = np.random.default_rng(1)
    Z = rand(rng, (33, 7), dtype, 3.0)
    Z[0, :] = [0, -1e-3, 1e-3, 30, -30, 80, -80]  # kinks and saturation
    dH = rand(rng, (33, 7), dtype)
    H = _core.activation_forward(act, Z)
    H_ref = reference.activation_forward(act, Z)
    assert np.isfinite(H).all()
    assert rel_err(H, H_ref) < OP_TOL[dtype]
    dZ = _core.activation_backward(act, Z, H_ref, dH)
    assert rel_err(dZ, reference.activation_backward(act, Z, H_ref, dH)) < OP_TOL[dtype]


LOSS_PAIRS = [("mse", "identity"), ("mse", "relu"), ("mse", "sigmoid"), ("mae", "identity"),
              ("huber", "identity"), ("huber", "tanh"), ("cross_entropy", "softmax"),
              ("cross_entropy", "sigmoid")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss,out", LOSS_PAIRS)
@pytest.mark.parametrize("weighted", [False, True])
def test_losses(dtype, loss, out, weighted):
    rng = np.random.default_rng(2)
    Z = rand(rng, (19, 4), dtype, 2.0)
    H = reference.activation_forward(out, Z)
    if out == "softmax":
        Y = np.eye(4, dtype=dtype)[rng.integers(0, 4, 19)]
    else:
        Y = rng.uniform(size=(19, 4)).astype(dtype)
    w = rng.uniform(0, 2, 19).astype(dtype) if weighted else None
    got = _core.loss_forward(loss, out, Z, H, Y, w)
    want = reference.loss_forward(loss, out, Z, H, Y, w)
    assert isinstance(got, float)
    assert rel_err(got, want) < OP_TOL[dtype]
    assert rel_err(_core.loss_backward(loss, out, Z, H, Y, w),
                   reference.loss_backward(loss, out, Z, H, Y, w)) < OP_TOL[dtype]


def test_textbook_mse_batch_of_one():
    """B = 1: L = 0.5 * (yhat - y)^2 and dL/dyhat = yhat - y, exactly."""
    Z = np.array([[1.5, -0.25]])
    Y = np.array([[0.5, 0.75]])
    assert _core.loss_forward("mse", "identity", Z, Z, Y) == pytest.approx(0.5 * (1.0 + 1.0))
    np.testing.assert_array_equal(_core.loss_backward("mse", "identity", Z, Z, Y), Z - Y)


def test_cross_entropy_is_stable_for_huge_logits():
    Z = np.array([[1000.0, -1000.0, 0.0]])
    H = reference.activation_forward("softmax", Z)
    Y = np.array([[0.0, 1.0, 0.0]])
    assert _core.loss_forward("cross_entropy", "softmax", Z, H, Y) == pytest.approx(2000.0)
    Zs = np.array([[800.0, -800.0]])
    Hs = reference.activation_forward("sigmoid", Zs)
    got = _core.loss_forward("cross_entropy", "sigmoid", Zs, Hs, np.array([[0.0, 0.0]]))
    assert got == pytest.approx(800.0)


def config(kind, **hyper):
    c = _core.OptimizerConfig(kind)
    for key, value in {"lr": 0.1, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0, "beta1": 0.9,
                       "beta2": 0.999, "eps": 1e-8, **hyper}.items():
        setattr(c, key, value)
    return c


OPTIMIZER_CONFIGS = [
    ("sgd", {}), ("sgd", {"weight_decay": 0.3}), ("sgd", {"momentum": 0.9, "weight_decay": 0.1}),
    ("sgd", {"momentum": 0.5, "nesterov": True}), ("adam", {}), ("adam", {"weight_decay": 0.2}),
    ("adamw", {"weight_decay": 0.2}), ("adamw", {"weight_decay": 0.0, "beta1": 0.5}),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind,hyper", OPTIMIZER_CONFIGS)
def test_optimizer_update(dtype, kind, hyper):
    """Three steps of every optimizer row, on both backends, from the same state."""
    rng = np.random.default_rng(3)
    c = config(kind, **hyper)
    p1 = rand(rng, (5, 4), dtype)
    p2 = p1.copy()
    s1 = [np.zeros_like(p1) for _ in range(c.states())]
    s2 = [np.zeros_like(p1) for _ in range(c.states())]
    for step in (1, 2, 3):
        g = rand(rng, (5, 4), dtype)
        _core.optimizer_update(c, p1, g, s1, step, c.weight_decay)
        reference.optimizer_update(c, p2, g, s2, step, c.weight_decay)
        assert rel_err(p1, p2) < OP_TOL[dtype]
        for a, b in zip(s1, s2):
            assert rel_err(a, b) < OP_TOL[dtype]


def test_optimizer_table_is_the_same_on_both_backends():
    assert tuple(_core.OPTIMIZERS) == tuple(reference.OPTIMIZERS)
    assert [config("sgd").states(), config("sgd", momentum=0.5).states(), config("adam").states(),
            config("adamw").states()] == [0, 1, 2, 2]
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'; choose one of sgd, adam, adamw"):
        _core.OptimizerConfig("rmsprop")


def test_name_tables_are_the_same_on_both_backends():
    assert tuple(_core.ACTIVATIONS) == tuple(reference.ACTIVATIONS)
    assert tuple(_core.LOSSES) == tuple(reference.LOSSES)
    assert all(_core.metrics_size(k) == reference.metrics_size(k) for k in (1, 2, 10))


# ------------------------------------------------------------------ argument checks

def bad_variants(a):
    """(label, array) pairs that a float binding must refuse without copying."""
    other = np.float64 if a.dtype == np.float32 else np.float32
    wide = np.zeros((a.shape[0], 2 * a.shape[1]) if a.ndim == 2 else (2 * a.shape[0],), a.dtype)
    strided = wide[:, ::2] if a.ndim == 2 else wide[::2]
    ro = a.copy()
    ro.flags.writeable = False
    return [
        ("other float dtype", a.astype(other)),
        ("int", a.astype(np.int32)),
        ("strided view", strided),
        ("list", a.tolist()),
        ("big-endian", a.astype(a.dtype.newbyteorder(">"))),
    ] + ([("fortran", np.asfortranarray(np.zeros((a.shape[0] + 1, a.shape[1] + 1), a.dtype)[:-1, :-1]))]
         if a.ndim == 2 else []), ro


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_rejects_bad_arrays(dtype):
    A, B, C = np.ones((3, 2), dtype), np.ones((2, 4), dtype), np.zeros((3, 4), dtype)
    variants, ro = bad_variants(C)
    for label, bad in variants:
        with pytest.raises((TypeError, ValueError)):
            _core.gemm(A, B, bad)
    with pytest.raises(ValueError, match="read-only"):
        _core.gemm(A, B, ro)
    with pytest.raises(ValueError, match="shape"):
        _core.gemm(A, B, np.zeros((4, 3), dtype))
    with pytest.raises(ValueError, match="chain"):
        _core.gemm(A, A, C)
    # an output that overlaps an input is refused
    buf = np.ones((4, 4), dtype)
    with pytest.raises(ValueError, match="share memory"):
        _core.gemm(buf, buf, buf)


@pytest.mark.parametrize("fn", ["dense_forward", "dense_backward"])
def test_dense_bindings_reject_bad_arrays(fn):
    X, W, third = np.ones((3, 2), np.float32), np.ones((2, 4), np.float32), None
    third = np.ones(4, np.float32) if fn == "dense_forward" else np.ones((3, 4), np.float32)
    args = [X, W, third]
    for i in range(3):
        variants, _ = bad_variants(args[i])
        for label, bad in variants:
            call = list(args)
            call[i] = bad
            with pytest.raises((TypeError, ValueError)):
                getattr(_core, fn)(*call)


def test_bindings_name_the_argument():
    X = np.ones((3, 2), np.float32)
    with pytest.raises(TypeError, match="W"):
        _core.dense_forward(X, np.ones((2, 4), np.float64), np.ones(4, np.float32))
    with pytest.raises(TypeError, match="C-contiguous"):
        _core.dense_forward(X, np.ones((4, 2), np.float32).T, np.ones(4, np.float32))
    with pytest.raises(ValueError, match="unknown activation"):
        _core.activation_forward("swish", X)
    with pytest.raises(ValueError, match="unknown loss 'hinge'; choose one of mse, cross_entropy, mae, huber"):
        _core.loss_forward("hinge", "identity", X, X, X)


def test_in_place_outputs_are_never_copied():
    """A binding that copied its output would leave the caller's array untouched."""
    X = np.random.default_rng(0).standard_normal((10, 3)).astype(np.float32)
    params = [np.ones((3, 2), np.float32), np.zeros(2, np.float32)]
    out = np.zeros((10, 2), np.float32)
    assert _core.forward(X, params, ["identity"], out) is True
    np.testing.assert_allclose(out, X.sum(axis=1, keepdims=True) * np.ones((1, 2)), rtol=1e-6)
    step = np.zeros(1, np.int64)
    _core.train_epoch(X, out.copy(), params, ["identity"], "mse", 3, None, None, config("sgd"), [], step, None)
    assert step[0] == 4


def test_train_epoch_rejects_what_is_not_memory_safe():
    """_core refuses what could read or write out of bounds; semantic rules (a positive rate, a
    loss that suits the output) are the Python checker's (test_checks.py)."""
    X = np.ones((4, 2))
    Y = np.ones((4, 1))
    params = [np.ones((2, 1)), np.zeros(1)]
    good = dict(X=X, Y=Y, sample_weight=None, perm=None, params=params, activations=["identity"],
                loss="mse", batch_size=2, optimizer=config("sgd"), state=[], step=np.zeros(1, np.int64),
                metrics=np.zeros(3))
    bad_cases = [
        ("batch_size", 0, ValueError), ("batch_size", True, TypeError), ("batch_size", 2.0, TypeError),
        ("batch_size", 2**40, ValueError), ("step", np.array([-1]), ValueError), ("step", 0, TypeError),
        ("step", np.zeros(1, np.int32), TypeError), ("step", np.zeros(2, np.int64), ValueError),
        ("optimizer", "sgd", TypeError), ("optimizer", {"lr": 0.1}, TypeError),
        ("perm", np.array([0, 1, 2, 9]), ValueError), ("perm", np.array([0, 1, 2, -1]), ValueError),
        ("perm", np.array([0, 1, 2, 3], np.int32), TypeError), ("perm", np.arange(3), ValueError),
        ("activations", ["relu", "relu"], ValueError), ("activations", ["swish"], ValueError),
        ("params", [np.ones((2, 1))], ValueError), ("params", [np.ones((3, 1)), np.zeros(1)], ValueError),
        ("state", [np.zeros((2, 1))], ValueError), ("metrics", np.zeros(2), ValueError),
        ("metrics", np.zeros(3, np.float32), TypeError), ("sample_weight", np.ones(3), ValueError),
        ("Y", np.ones((4, 2)), ValueError), ("Y", None, TypeError), ("loss", 3, TypeError),
        ("loss", "hinge", ValueError), ("metrics", X, ValueError), ("threads", 0, ValueError),
    ]
    for key, value, exc in bad_cases:
        before = [p.copy() for p in params]
        with pytest.raises(exc):
            _core.train_epoch(**{**good, key: value})
            print("accepted", key, value)
        for p, q in zip(params, before):
            np.testing.assert_array_equal(p, q)
    # A momentum optimizer needs one state array per parameter, shaped like it.
    with pytest.raises(ValueError, match="state must hold 2 arrays"):
        _core.train_epoch(**{**good, "optimizer": config("sgd", momentum=0.9)})
    with pytest.raises(ValueError, match="state"):
        _core.train_epoch(**{**good, "optimizer": config("sgd", momentum=0.9), "state": [np.zeros((1, 2)), np.zeros(1)]})
    # A semantically odd value is memory-safe, and passes.
    odd = config("sgd", lr=float("nan"))
    _core.train_epoch(**{**good, "params": [np.ones((2, 1)), np.zeros(1)], "optimizer": odd})
    for backend in (_core, reference):
        good["step"][0] = 0
        # X @ [1, 1] = 2 and y = 1: the first batch's loss is 0.5 * (2 - 1)^2.
        fresh = [np.ones((2, 1)), np.zeros(1)]
        mean = backend.train_epoch(**{**good, "params": fresh, "metrics": None})
        assert good["step"][0] == 2 and 0 < mean <= 0.5


def test_threads_setting():
    before = _core.get_num_threads()
    try:
        _core.set_num_threads(1)
        assert _core.get_num_threads() == 1
        with pytest.raises(ValueError):
            _core.set_num_threads(0)
        with pytest.raises(TypeError):
            _core.set_num_threads(1.5)
    finally:
        _core.set_num_threads(before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [2, 3, 7])
def test_forward_on_several_threads_gives_the_same_bits(dtype, threads):
    """With small products BLAS stays at one thread and the user's threads share out the
    forward pass's chunks (20,001 rows of 4,800 multiply-adds: 82 chunks of 244 rows and a
    short one). Every row's output is the one-thread output bit for bit, and a NaN anywhere,
    the last row included, is still found."""
    rng = np.random.default_rng(4)
    sizes = [8, 64, 64, 3]
    params = []
    for fi, fo in zip(sizes, sizes[1:]):
        params += [rng.standard_normal((fi, fo)).astype(dtype) * 0.3, rng.standard_normal(fo).astype(dtype)]
    acts = ["relu", "relu", "identity"]
    X = rng.standard_normal((20001, 8)).astype(dtype)
    before = _core.get_num_threads()
    try:
        _core.set_num_threads(1)
        one = np.empty((len(X), 3), dtype)
        _core.forward(X, params, acts, one)
        _core.set_num_threads(threads)
        assert _core.plan_threads(sizes, len(X), 0, threads, "predict")["team"] == threads
        out = np.full_like(one, 7.0)
        assert _core.forward(X, params, acts, out, True)
        np.testing.assert_array_equal(out, one)
        for row in (0, 10000, -1):
            bad = X.copy()
            bad[row, 3] = np.nan
            assert not _core.forward(bad, params, acts, out, True)
    finally:
        _core.set_num_threads(before)
    ref = np.empty_like(one)
    reference.forward(X, params, acts, ref)
    assert rel_err(one, ref) < OP_TOL[dtype] * 10


BACKEND_FUNCTIONS = ["gemm", "dense_forward", "dense_backward", "activation_forward", "activation_backward",
                     "loss_forward", "loss_backward", "optimizer_update", "forward", "evaluate", "gradients",
                     "train_epoch", "shuffled_order", "metrics_size"]


@pytest.mark.parametrize("name", BACKEND_FUNCTIONS)
def test_reference_has_the_same_signatures(name):
    """The reference is the specification: same names, parameters, order and defaults."""
    import inspect
    import re
    ref = inspect.signature(getattr(reference, name))
    doc = getattr(_core, name).__doc__.splitlines()[0]
    params = re.match(rf"{name}\((.*)\) ->", doc).group(1)
    core = [p.split(":")[0].strip() for p in params.split(",") if p.strip()]
    assert core == list(ref.parameters), (core, list(ref.parameters))
    core_defaults = {p.split(":")[0].strip(): p.split("=")[1].strip() for p in params.split(",") if "=" in p}
    ref_defaults = {k: repr(v.default) for k, v in ref.parameters.items() if v.default is not inspect._empty}
    assert set(core_defaults) == set(ref_defaults)
    for key, value in ref_defaults.items():
        assert core_defaults[key].replace("'", "") == value.replace("'", ""), key


@pytest.mark.parametrize("n", [0, 1, 2, 3, 17, 1000, 20_001])
@pytest.mark.parametrize("seed", [0, 1, 2**32, 2**64 - 1, np.uint64(12345678901234567890)])
def test_shuffled_order_is_a_permutation_equal_to_the_reference(n, seed):
    ours, ref = np.full(n, -1, np.int64), np.full(n, -1, np.int64)
    _core.shuffled_order(seed, ours)
    reference.shuffled_order(seed, ref)
    np.testing.assert_array_equal(ours, ref)
    np.testing.assert_array_equal(np.sort(ours), np.arange(n))


def test_shuffled_order_is_uniform_and_seed_dependent():
    """Every order of 4 items about equally often (chi-square against the uniform
    distribution), and every position of 1000 items reached by item 0."""
    import itertools
    counts = dict.fromkeys(itertools.permutations(range(4)), 0)
    out = np.empty(4, np.int64)
    draws = 24_000
    for seed in range(draws):
        _core.shuffled_order(seed, out)
        counts[tuple(out.tolist())] += 1
    expected = draws / 24
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    assert chi2 < 60, counts  # 23 degrees of freedom: P(chi2 > 60) is about 4e-5
    first = np.empty(1000, np.int64)
    positions = set()
    for seed in range(20_000):
        _core.shuffled_order(seed, first)
        positions.add(int(np.flatnonzero(first == 0)[0]))
    assert len(positions) == 1000
    a, b = np.empty(1000, np.int64), np.empty(1000, np.int64)
    _core.shuffled_order(7, a)
    _core.shuffled_order(8, b)
    assert (a != b).mean() > 0.9


def test_shuffled_order_rejects_bad_arguments():
    backend = _core
    out = np.empty(5, np.int64)
    for seed, err in [(-1, ValueError), (2**64, ValueError), (1.0, TypeError), (True, TypeError),
                      ("3", TypeError), (None, TypeError)]:
        with pytest.raises(err, match="seed"):
            backend.shuffled_order(seed, out)
    readonly = np.empty(5, np.int64)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        backend.shuffled_order(1, readonly)
    for bad in [np.empty(5, np.int32), np.empty(5), np.empty((5, 1), np.int64), np.empty(10, np.int64)[::2],
                [0, 1, 2]]:
        with pytest.raises((TypeError, ValueError), match="out"):
            backend.shuffled_order(1, bad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", [_core, reference])
@pytest.mark.parametrize("where", [0, 777, -1])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_forward_check_finite_finds_bad_values_in_any_chunk(dtype, backend, where, value):
    """check_finite looks at every chunk of X: a bad value in the first row, the middle or the
    very last row of a multi-chunk input makes forward return False; without the flag the pass
    runs and gives the same output as for a finite X where the rows are finite."""
    rng = np.random.default_rng(0)
    params = [rng.standard_normal((3, 600)).astype(dtype), np.zeros(600, dtype),
              rng.standard_normal((600, 2)).astype(dtype), np.zeros(2, dtype)]
    X = rng.standard_normal((5000, 3)).astype(dtype)
    good, out = np.empty((5000, 2), dtype), np.empty((5000, 2), dtype)
    assert backend.forward(X, params, ["relu", "identity"], good, True) is True
    X[where, 1] = value
    assert backend.forward(X, params, ["relu", "identity"], out, True) is False
    with np.errstate(invalid="ignore"):  # inf * 0 in the reference's products
        assert backend.forward(X, params, ["relu", "identity"], out) is True
    keep = np.ones(len(X), bool)
    keep[where] = False
    np.testing.assert_array_equal(out[keep], good[keep])


# ------------------------------------------------------------------ found in review

def test_a_wide_layer_split_among_many_threads_stays_in_bounds():
    """Part bounds of a shared product are 64-bit: N * p overflowed int for an 8M-wide layer and
    300 threads, and the update wrote into the bias array."""
    n_out = 8_000_000
    W = np.zeros((1, n_out), np.float32)
    b = np.full(n_out, 0.1, np.float32)
    X = np.ones((2, 1), np.float32)
    Y = np.ones((2, n_out), np.float32)
    assert _core.plan_threads([1, n_out], 2, 2, 300, "train")["team"] == 300
    _core.train_epoch(X, Y, [W, b], ["identity"], "mse", 2, None, None, config("sgd", lr=1.0), [],
                      np.zeros(1, np.int64), np.zeros(2 + n_out), None, 300)
    # One step of plain SGD from W = 0, b = 0.1 on rows x = 1, y = 1: dZ = (0.1 - 1) / 1 per row.
    np.testing.assert_allclose(W, 0.9, rtol=1e-6)
    np.testing.assert_allclose(b, 0.1 + 0.9, rtol=1e-6)


def test_plan_of_a_huge_pass_has_no_negative_team():
    plan = _core.plan_threads([64, 64, 1], 2**63 - 1, 0, 2, "predict")
    assert plan["team"] == 2 and plan["chunk_rows"] > 0


def test_labelled_passes_refuse_no_rows():
    X, Y = np.ones((0, 2)), np.ones((0, 1))
    params = [np.ones((2, 1)), np.zeros(1)]
    with pytest.raises(ValueError, match="no rows"):
        _core.evaluate(X, Y, params, ["identity"], "mse")
    with pytest.raises(ValueError, match="no rows"):
        _core.gradients(X, Y, params, ["identity"], "mse", None, [np.empty((2, 1)), np.empty(1)])
    with pytest.raises(ValueError, match="no rows"):
        _core.train_epoch(X, Y, params, ["identity"], "mse", 1, None, None, config("sgd"), [], None, None)


def test_overlapping_passes_leave_the_users_thread_count():
    """A pass holding OpenBLAS at 3 threads while others hold it at 1: when all end, OpenBLAS is
    back at the user's count."""
    import threading
    before = _core.get_num_threads()
    rng = np.random.default_rng(0)
    big = [rng.standard_normal((512, 512)).astype(np.float32), np.zeros(512, np.float32)]
    small = [np.ones((4, 8), np.float32), np.zeros(8, np.float32), np.ones((8, 1), np.float32), np.zeros(1, np.float32)]
    Xb, Xs = rng.standard_normal((4096, 512)).astype(np.float32), np.ones((100, 4), np.float32)
    assert _core.plan_threads([512, 512], 4096, 0, 3, "predict")["blas_threads"] == 3
    try:
        _core.set_num_threads(2)
        stop = threading.Event()

        def small_passes():
            out = np.empty((100, 1), np.float32)
            while not stop.is_set():
                _core.forward(Xs, small, ["relu", "identity"], out, False, 2)
        t = threading.Thread(target=small_passes)
        t.start()
        out = np.empty((4096, 512), np.float32)
        for _ in range(20):
            _core.forward(Xb, big, ["identity"], out, False, 3)
        stop.set()
        t.join()
        assert _core.get_num_threads() == 2 and _core.blas_info()["threads"] == 2
    finally:
        _core.set_num_threads(before)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="fork")
def test_a_forked_child_gets_the_users_thread_count_back():
    """A fork while another thread's pass holds OpenBLAS at one thread: the child, which has
    none of the parent's passes, runs with the user's count."""
    import os
    import threading
    before = _core.get_num_threads()
    rng = np.random.default_rng(0)
    params = [rng.standard_normal((64, 64)).astype(np.float32), np.zeros(64, np.float32)]
    X = rng.standard_normal((200_000, 64)).astype(np.float32)
    try:
        _core.set_num_threads(2)
        assert _core.plan_threads([64, 64], 200_000, 0, 2, "evaluate")["blas_threads"] == 1
        Y = np.zeros((200_000, 64), np.float32)
        holding = threading.Thread(target=lambda: [_core.evaluate(X, Y, params, ["identity"], "mse") for _ in range(20)])
        holding.start()
        while _core.blas_info()["threads"] != 1 and holding.is_alive():
            pass
        pid = os.fork()
        if pid == 0:  # the child: exit code 0 when the count is the user's
            os._exit(0 if _core.get_num_threads() == 2 and _core.blas_info()["threads"] == 2 else 1)
        _, status = os.waitpid(pid, 0)
        holding.join()
        assert os.WEXITSTATUS(status) == 0
    finally:
        _core.set_num_threads(before)
