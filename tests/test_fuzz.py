"""Property-based fuzzing: no input crashes denseprop, and nothing is corrupted by a rejected call.

Allowed outcomes of any call: a correct result, or a ValueError/TypeError with a message.

* The one checker, through the public API: ``Network(...)``, ``fit``, the inference methods,
  the optimizers and save/load get odd arguments; a rejected call leaves the network as it was.
* Crash freedom of every ``denseprop._core`` binding: a generated valid call is run unchanged or
  with exactly one argument replaced by something odd (another dtype, 0-d/1-d/3-d, zero-sized,
  Fortran-order, strided, reversed, read-only, misaligned, broadcast, NaN/inf/huge/tiny values,
  a list, None, wrong scalars, aliased outputs ...).
* Valid calls of every binding give the NumPy reference's results to rounding.

Budgets come from the hypothesis profile in conftest.py (``--slow`` for many more examples).
"""

from __future__ import annotations

import math
import os
import pathlib
import warnings

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import note, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import denseprop as dp  # noqa: E402
from denseprop import _core as C  # noqa: E402
from denseprop import reference as R  # noqa: E402

ACTS = tuple(R.ACTIVATIONS)
HIDDEN = tuple(a for a in ACTS if a != "softmax")
REGRESSION_LOSSES = ("mse", "mae", "huber")
FLOATS = (np.float32, np.float64)
seeds = st.integers(0, 2**32 - 1)
small = st.integers(0, 5)
positive = st.integers(1, 5)


def examples(factor=1.0):
    """Scales the profile's max_examples for one test (cheap tests get more)."""
    return settings(max_examples=max(1, int(settings().max_examples * factor)))


# --------------------------------------------------------------------------------------
# Odd arrays and objects

ODD_DTYPES = (
    np.bool_, np.int8, np.uint8, np.int16, np.int32, np.int64, np.uint64, np.float16,
    np.float32, np.float64, np.longdouble, np.complex64, np.complex128, object, ">f4", ">f8",
    [("a", "<f4"), ("b", "<i4")], "M8[s]", "U3", "S2", "V4",
)
SPECIAL_VALUES = (np.nan, np.inf, -np.inf, 3e38, -1e300, 1e300, 1e-45, 5e-324, 0.0, -0.0)
ODD_OBJECTS = (None, 0, 1, -1, 1.5, float("nan"), "abc", b"xy", True, [], (), {}, object(),
               [[1.0, 2.0], [3.0]], 10**40)


def cast(a, dt):
    dt = np.dtype(dt)
    if dt.kind in "fc" or dt.kind in "iub":
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return a.astype(dt)
    if dt.kind == "O":
        return a.astype(object)
    if dt.kind == "U":
        return a.astype("U3")
    return np.zeros(a.shape, dt)


def misaligned(a):
    if a.dtype.itemsize < 2:
        return a.copy()
    buf = np.zeros(a.nbytes + 1, np.uint8)
    b = np.frombuffer(buf.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    b = b.copy() if b.flags.aligned else b  # platforms that align anyway
    if not b.flags.aligned:
        np.copyto(b, a)
    return b


def readonly(a):
    b = a.copy()
    b.flags.writeable = False
    return b


def with_special(a, v):
    b = a.copy()
    if b.size and b.dtype.kind == "f":
        with np.errstate(all="ignore"):
            b.reshape(-1)[::2] = v
    elif b.size and b.dtype.kind in "iu":
        b.reshape(-1)[0] = np.iinfo(b.dtype).min if v != v or v < 0 else np.iinfo(b.dtype).max
    return b


def resized(a, shape):
    if a.size == 0 or math.prod(shape) == 0:
        return np.zeros(shape, a.dtype)
    return np.resize(a, shape)


@st.composite
def array_mutation(draw):
    """A deterministic function turning a valid array into an odd one, and whether the result
    still holds finite, in-range values (so results can be compared)."""
    kind = draw(st.sampled_from(["dtype", "fortran", "strided", "reversed", "readonly", "misaligned",
                                 "broadcast", "special", "shape", "ndim", "nonarray", "list"]))
    if kind == "dtype":
        dt = draw(st.sampled_from(ODD_DTYPES))
        return f"dtype {dt}", (lambda a: cast(a, dt)), True
    if kind == "fortran":
        return kind, np.asfortranarray, True
    if kind == "strided":
        return kind, (lambda a: np.repeat(a, 2, axis=-1)[..., ::2] if a.ndim else a), True
    if kind == "reversed":
        return kind, (lambda a: a[::-1] if a.ndim else a), True
    if kind == "readonly":
        return kind, readonly, True
    if kind == "misaligned":
        return kind, misaligned, True
    if kind == "broadcast":
        return kind, (lambda a: np.broadcast_to(a.reshape(-1)[:1] if a.size else a, a.shape)), True
    if kind == "special":
        v = draw(st.sampled_from(SPECIAL_VALUES))
        return f"special {v}", (lambda a: with_special(a, v)), False
    if kind == "shape":
        delta = draw(st.sampled_from([(1, 0), (-1, 0), (0, 1), (0, -1), "zero0", "zero1"]))

        def f(a, delta=delta):
            shape = list(a.shape) or [1]
            if delta == "zero0":
                shape[0] = 0
            elif delta == "zero1":
                shape[-1] = 0
            else:
                shape[0] = max(0, shape[0] + delta[0])
                shape[-1] = max(0, shape[-1] + delta[1])
            return resized(a, tuple(shape))
        return f"shape {delta}", f, True
    if kind == "ndim":
        which = draw(st.sampled_from(["0d", "1d", "3d", "flat"]))

        def f(a, which=which):
            if which == "0d":
                return np.asarray(a.reshape(-1)[0] if a.size else 0, a.dtype)
            if which == "1d":
                return a.reshape(-1)
            if which == "3d":
                return a[None]
            return a.reshape(1, -1) if a.ndim < 2 else a.reshape(-1)
        return f"ndim {which}", f, True
    if kind == "list":
        return kind, (lambda a: a.tolist()), True
    obj = draw(st.sampled_from(range(len(ODD_OBJECTS))))
    return f"object {ODD_OBJECTS[obj]!r}", (lambda a: ODD_OBJECTS[obj]), True


ODD_INTS = (0, -1, 1, 2**31, 2**63, 10**30, True, False, 1.0, "1", None, np.int64(2), np.int32(1))
ODD_FLOATS = (0.0, -1.0, 0.5, float("nan"), float("inf"), -float("inf"), 1e308, 5e-324, 10**400, True,
              "0.1", None, np.float32(0.1), np.float64(0.1), 1, [0.1])
ODD_STRINGS = ("", "RELU", "relu ", "softmax", "sgd", "adam", "mse", "cross_entropy", None, 1, b"relu",
               "identity", "x" * 1000, "tanh\0")


# --------------------------------------------------------------------------------------
# Valid calls of each binding: a name, the ordered argument names and a builder that
# makes fresh arguments (so the C++ and the reference get separate, identical copies).

class Case:
    def __init__(self, name, argnames, build, outputs=(), rtol=None, atol=None, scalars=None):
        self.name, self.argnames, self.build, self.outputs = name, argnames, build, outputs
        self.rtol, self.atol = rtol, atol
        self.scalars = scalars or {}

    def __repr__(self):
        return f"Case({self.name})"


def rand(rng, shape, dt, scale=1.0):
    return np.ascontiguousarray(rng.standard_normal(shape) * scale, dtype=dt)


def tolerances(dt, loose=False):
    if dt == np.float32:
        return (2e-3, 2e-3) if loose else (2e-4, 5e-5)
    return (1e-8, 1e-9) if loose else (1e-9, 1e-11)


@st.composite
def gemm_case(draw):
    dt = draw(st.sampled_from(FLOATS))
    M, N, K = draw(small), draw(small), draw(small)
    ta, tb = draw(st.booleans()), draw(st.booleans())
    alpha = draw(st.sampled_from([1.0, 0.0, -0.5, 2.0, 3]))
    beta = draw(st.sampled_from([0.0, 1.0, 0.25, -1]))
    seed = draw(seeds)

    def build():
        rng = np.random.default_rng(seed)
        A = rand(rng, (K, M) if ta else (M, K), dt)
        B = rand(rng, (N, K) if tb else (K, N), dt)
        return [A, B, rand(rng, (M, N), dt), ta, tb, alpha, beta]
    return Case("gemm", ["A", "B", "C", "trans_a", "trans_b", "alpha", "beta"], build, outputs=("C",),
                scalars={"trans_a": "bool", "trans_b": "bool", "alpha": "float", "beta": "float"},
                **dict(zip(("rtol", "atol"), tolerances(dt))))


@st.composite
def dense_forward_case(draw):
    dt, n, fi, fo, seed = draw(st.sampled_from(FLOATS)), draw(small), draw(small), draw(small), draw(seeds)

    def build():
        rng = np.random.default_rng(seed)
        return [rand(rng, (n, fi), dt), rand(rng, (fi, fo), dt), rand(rng, (fo,), dt)]
    return Case("dense_forward", ["X", "W", "b"], build, **dict(zip(("rtol", "atol"), tolerances(dt))))


@st.composite
def dense_backward_case(draw):
    dt, n, fi, fo, seed = draw(st.sampled_from(FLOATS)), draw(small), draw(small), draw(small), draw(seeds)

    def build():
        rng = np.random.default_rng(seed)
        return [rand(rng, (n, fi), dt), rand(rng, (fi, fo), dt), rand(rng, (n, fo), dt)]
    return Case("dense_backward", ["X", "W", "dZ"], build, **dict(zip(("rtol", "atol"), tolerances(dt))))


@st.composite
def activation_forward_case(draw):
    dt, n, k, seed = draw(st.sampled_from(FLOATS)), draw(small), draw(positive), draw(seeds)
    act = draw(st.sampled_from(ACTS))
    scale = draw(st.sampled_from([1.0, 30.0]))

    def build():
        rng = np.random.default_rng(seed)
        return [act, rand(rng, (n, k), dt, scale)]
    return Case("activation_forward", ["name", "Z"], build, scalars={"name": "str"},
                **dict(zip(("rtol", "atol"), tolerances(dt))))


@st.composite
def activation_backward_case(draw):
    dt, n, k, seed = draw(st.sampled_from(FLOATS)), draw(small), draw(positive), draw(seeds)
    act = draw(st.sampled_from(ACTS))

    def build():
        rng = np.random.default_rng(seed)
        Z = rand(rng, (n, k), dt)
        return [act, Z, R.activation_forward(act, Z), rand(rng, (n, k), dt)]
    return Case("activation_backward", ["name", "Z", "H", "dH"], build, scalars={"name": "str"},
                **dict(zip(("rtol", "atol"), tolerances(dt, loose=True))))


def loss_pair(draw, n_out):
    loss = draw(st.sampled_from(("mse", "mae", "huber", "cross_entropy")))
    if loss == "cross_entropy":
        out = draw(st.sampled_from(("softmax", "sigmoid") if n_out >= 2 else ("sigmoid",)))
    else:
        out = draw(st.sampled_from(HIDDEN))
    return loss, out


def targets(rng, loss, out, n, k, dt):
    if loss == "cross_entropy" and out == "softmax":
        return np.ascontiguousarray(np.eye(k)[rng.integers(0, k, n)], dtype=dt)
    if loss == "cross_entropy":
        return np.ascontiguousarray(rng.integers(0, 2, (n, k)), dtype=dt)
    return rand(rng, (n, k), dt)


@st.composite
def loss_case(draw, backward):
    dt, n, k, seed = draw(st.sampled_from(FLOATS)), draw(positive), draw(positive), draw(seeds)
    loss, out = loss_pair(draw, k)
    weighted = draw(st.booleans())

    def build():
        rng = np.random.default_rng(seed)
        Z = rand(rng, (n, k), dt, 2.0)
        H = R.activation_forward(out, Z)
        w = np.ascontiguousarray(rng.uniform(0, 2, n), dtype=dt) if weighted else None
        return [loss, out, Z, H, targets(rng, loss, out, n, k, dt), w]
    name = "loss_backward" if backward else "loss_forward"
    return Case(name, ["loss", "output_activation", "Z", "H", "Y", "sample_weight"], build,
                scalars={"loss": "str", "output_activation": "str"},
                **dict(zip(("rtol", "atol"), tolerances(dt, loose=True))))


def optimizer_config(kind, lr=0.01, decay=0.0):
    """A valid OptimizerConfig of an optimizer kind ('momentum' and 'nesterov' are SGD)."""
    opt = {"sgd": lambda: dp.SGD(lr), "momentum": lambda: dp.SGD(lr, momentum=0.9, weight_decay=decay),
           "nesterov": lambda: dp.SGD(lr, momentum=0.9, nesterov=True, weight_decay=decay),
           "adam": lambda: dp.Adam(lr, weight_decay=decay), "adamw": lambda: dp.AdamW(lr, weight_decay=decay)}[kind]()
    return opt._config(lr)


OPTIMIZER_KINDS = ("sgd", "momentum", "nesterov", "adam", "adamw")


@st.composite
def optimizer_update_case(draw):
    dt, seed = draw(st.sampled_from(FLOATS)), draw(seeds)
    shape = draw(st.sampled_from([(0,), (3,), (2, 3), (0, 4), (1, 1)]))
    kind = draw(st.sampled_from(OPTIMIZER_KINDS))
    step = draw(st.integers(1, 4))
    decay = draw(st.sampled_from([0.0, 0.01]))

    def build():
        rng = np.random.default_rng(seed)
        c = optimizer_config(kind, 0.1)
        state = [rand(rng, shape, dt) ** 2 for _ in range(c.states())]
        return [c, rand(rng, shape, dt), rand(rng, shape, dt), state, step, decay]
    return Case("optimizer_update", ["config", "param", "grad", "state", "step", "decay"], build,
                outputs=("param", "state"), scalars={"config": "config", "step": "int", "decay": "float"},
                **dict(zip(("rtol", "atol"), tolerances(dt))))


@st.composite
def network_parts(draw, n_min=1):
    """(dtype, layer sizes, activations, loss) of a small valid network."""
    dt = draw(st.sampled_from(FLOATS))
    sizes = draw(st.lists(positive, min_size=2, max_size=4))
    n_layers = len(sizes) - 1
    loss, out = loss_pair(draw, sizes[-1])
    acts = [draw(st.sampled_from(HIDDEN)) for _ in range(n_layers - 1)] + [out]
    n = draw(st.integers(n_min, 9))
    return dt, sizes, acts, loss, n


def make_params(rng, sizes, dt):
    params = []
    for fi, fo in zip(sizes[:-1], sizes[1:]):
        params += [rand(rng, (fi, fo), dt, 1.0 / math.sqrt(fi)), rand(rng, (fo,), dt, 0.1)]
    return params


@st.composite
def forward_case(draw):
    dt, sizes, acts, _, n = draw(network_parts(n_min=0))
    seed, check = draw(seeds), draw(st.booleans())

    def build():
        rng = np.random.default_rng(seed)
        params = make_params(rng, sizes, dt)
        return [rand(rng, (n, sizes[0]), dt), params, list(acts), np.zeros((n, sizes[-1]), dt), check]
    return Case("forward", ["X", "params", "activations", "out", "check_finite"], build, outputs=("out",),
                scalars={"check_finite": "bool"}, **dict(zip(("rtol", "atol"), tolerances(dt, loose=True))))


@st.composite
def evaluate_case(draw):
    dt, sizes, acts, loss, n = draw(network_parts())
    seed, weighted = draw(seeds), draw(st.booleans())

    def build():
        rng = np.random.default_rng(seed)
        params = make_params(rng, sizes, dt)
        X = rand(rng, (n, sizes[0]), dt)
        Y = targets(rng, loss, acts[-1], n, sizes[-1], dt)
        w = np.ascontiguousarray(rng.uniform(0, 2, n), dtype=dt) if weighted else None
        return [X, Y, params, list(acts), loss, w, np.zeros(2 + sizes[-1])]
    return Case("evaluate", ["X", "Y", "params", "activations", "loss", "sample_weight", "metrics"], build,
                outputs=("metrics",), scalars={"loss": "str"},
                **dict(zip(("rtol", "atol"), tolerances(dt, loose=True))))


@st.composite
def gradients_case(draw):
    dt, sizes, acts, loss, n = draw(network_parts())
    seed, weighted = draw(seeds), draw(st.booleans())

    def build():
        rng = np.random.default_rng(seed)
        params = make_params(rng, sizes, dt)
        X = rand(rng, (n, sizes[0]), dt)
        Y = targets(rng, loss, acts[-1], n, sizes[-1], dt)
        w = np.ascontiguousarray(rng.uniform(0, 2, n), dtype=dt) if weighted else None
        grads = [np.full_like(p, 7.0) for p in params]
        return [X, Y, params, list(acts), loss, w, grads]
    return Case("gradients", ["X", "Y", "params", "activations", "loss", "sample_weight", "grads"], build,
                outputs=("grads",), scalars={"loss": "str"},
                **dict(zip(("rtol", "atol"), tolerances(dt, loose=True))))


@st.composite
def train_epoch_case(draw):
    dt, sizes, acts, loss, n = draw(network_parts())
    seed, weighted, shuffled = draw(seeds), draw(st.booleans()), draw(st.booleans())
    batch = draw(st.integers(1, n + 2))
    kind = draw(st.sampled_from(OPTIMIZER_KINDS))
    decay = draw(st.sampled_from([0.0, 0.01]))
    step = draw(st.integers(0, 5))
    k = optimizer_config(kind).states()

    def build():
        rng = np.random.default_rng(seed)
        params = make_params(rng, sizes, dt)
        X = rand(rng, (n, sizes[0]), dt)
        Y = targets(rng, loss, acts[-1], n, sizes[-1], dt)
        w = np.ascontiguousarray(rng.uniform(0, 2, n), dtype=dt) if weighted else None
        perm = rng.permutation(n).astype(np.int64) if shuffled else None
        state = [np.zeros_like(p) for p in params for _ in range(k)]
        return [X, Y, params, list(acts), loss, batch, perm, w, optimizer_config(kind, 0.01, decay), state,
                np.array([step], np.int64), np.zeros(2 + sizes[-1])]
    # Adam's update lr * m / (sqrt(v) + eps) is sign-like for tiny gradients: compare loosely.
    rtol, atol = tolerances(dt, loose=True)
    if kind.startswith("adam"):
        atol = 5e-3 if dt == np.float32 else 1e-6
    return Case("train_epoch", ["X", "Y", "params", "activations", "loss", "batch_size", "perm",
                                "sample_weight", "optimizer", "state", "step", "metrics"], build,
                outputs=("params", "state", "step", "metrics"),
                scalars={"loss": "str", "batch_size": "int", "optimizer": "config"},
                rtol=rtol, atol=atol)


@st.composite
def shuffled_order_case(draw):
    seed = draw(st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([0, 2**64 - 1])))
    n = draw(st.integers(0, 40))
    return Case("shuffled_order", ["seed", "out"], lambda: [seed, np.full(n, -7, np.int64)],
                outputs=("out",), scalars={"seed": "int"}, rtol=0.0, atol=0.0)


CASES = {
    "gemm": gemm_case(), "dense_forward": dense_forward_case(), "dense_backward": dense_backward_case(),
    "activation_forward": activation_forward_case(), "activation_backward": activation_backward_case(),
    "loss_forward": loss_case(False), "loss_backward": loss_case(True),
    "optimizer_update": optimizer_update_case(),
    "forward": forward_case(), "evaluate": evaluate_case(), "gradients": gradients_case(),
    "train_epoch": train_epoch_case(), "shuffled_order": shuffled_order_case(),
}


# --------------------------------------------------------------------------------------
# Perturbing one argument of a case

# Semantically odd but memory-safe hyper-parameters: _core may take them (the checker refuses
# them before a Network calls a backend), but must not crash.
ODD_CONFIG_FIELDS = (
    ("lr", 0.0), ("lr", -1.0), ("lr", float("nan")), ("lr", float("inf")), ("momentum", 1.0), ("momentum", -0.1),
    ("beta1", 1.0), ("beta2", -0.5), ("eps", 0.0), ("eps", -1e-8), ("weight_decay", -1.0), ("lr", 1e300),
)
ODD_CONFIGS = (None, "sgd", {"lr": 0.1}, 0.1, [], object())


@st.composite
def perturbed(draw, case):
    """(description, args builder, comparable) with at most one argument replaced."""
    proto = case.build()
    index = draw(st.integers(-1, len(proto) - 1))
    if index < 0:
        return "unchanged", case.build, True
    name, value = case.argnames[index], proto[index]
    kind = case.scalars.get(name)
    comparable = True
    if kind == "config":
        if draw(st.booleans()):
            odd = draw(st.sampled_from(ODD_CONFIGS))
            return f"{name} = {odd!r}", _replace(case.build, index, lambda v: odd), True
        field, value = draw(st.sampled_from(ODD_CONFIG_FIELDS))

        def f(c, field=field, value=value):
            setattr(c, field, value)
            return c
        return f"{name}.{field} = {value!r}", _replace(case.build, index, f), False
    if kind is not None:
        pool = {"bool": ODD_INTS + ("yes", 0.0), "float": ODD_FLOATS, "int": ODD_INTS,
                "str": ODD_STRINGS}[kind]
        odd = draw(st.sampled_from(pool))
        return f"{name} = {odd!r}", _replace(case.build, index, lambda v: odd), True
    if isinstance(value, list):
        how = draw(st.sampled_from(["elem", "drop", "extra", "tuple", "nonlist"]))
        if how == "elem" and value:
            i = draw(st.integers(0, len(value) - 1))
            if isinstance(value[i], np.ndarray):
                desc, f, comparable = draw(array_mutation())
            else:
                odd = draw(st.sampled_from(ODD_STRINGS))
                desc, f = f"= {odd!r}", (lambda v, odd=odd: odd)

            def g(v, i=i, f=f):
                v = list(v)
                v[i] = f(v[i])
                return v
            return f"{name}[{i}] {desc}", _replace(case.build, index, g), comparable
        if how == "drop" and value:
            return f"{name} minus its last", _replace(case.build, index, lambda v: v[:-1]), True
        if how == "extra":
            return f"{name} plus one", _replace(case.build, index, lambda v: v + [v[-1] if v else None]), True
        if how == "tuple":
            return f"{name} as tuple", _replace(case.build, index, tuple), True
        odd = draw(st.sampled_from([None, 1.0, "relu", {}, np.zeros(3)]))
        return f"{name} = {odd!r}", _replace(case.build, index, lambda v: odd), True
    if value is None:  # an optional array left out: pass one, maybe a bad one
        odd = draw(st.sampled_from(["ones", "short", "int", "2d"]))

        def f(v, args, odd=odd):
            n = args[0].shape[0] if isinstance(args[0], np.ndarray) and args[0].ndim else 1
            if case.name.startswith("loss"):
                n = args[2].shape[0]
            dt = args[2].dtype if case.name.startswith("loss") else args[0].dtype
            if name == "perm":
                return {"ones": np.arange(n, dtype=np.int64)[::-1].copy(), "short": np.arange(n - 1),
                        "int": np.arange(n, dtype=np.int32), "2d": np.zeros((n, 1), np.int64)}[odd]
            return {"ones": np.ones(n, dt), "short": np.ones(max(n - 1, 0), dt),
                    "int": np.ones(n, np.int64), "2d": np.ones((n, 1), dt)}[odd]
        return f"{name} = {odd} array", _replace_with_args(case.build, index, f), True
    desc, f, comparable = draw(array_mutation())
    if name == "perm" and desc.startswith("special"):
        bad = draw(st.sampled_from([-1, "n", 2**62]))

        def f(a, bad=bad):
            b = a.copy()
            if b.size:
                b[0] = b.size if bad == "n" else bad
            return b
        desc, comparable = f"perm with {bad}", True
    if name in case.outputs and draw(st.booleans()):
        # an output aliasing an input of the same shape and dtype, when there is one
        others = [j for j, v in enumerate(proto) if j != index and isinstance(v, np.ndarray)
                  and v.shape == value.shape and v.dtype == value.dtype]
        if others:
            j = draw(st.sampled_from(others))
            return f"{name} is {case.argnames[j]}", _alias(case.build, index, j), True
    return f"{name} {desc}", _replace(case.build, index, f), comparable


def _replace(build, index, f):
    def b():
        args = build()
        args[index] = f(args[index])
        return args
    return b


def _replace_with_args(build, index, f):
    def b():
        args = build()
        args[index] = f(args[index], args)
        return args
    return b


def _alias(build, index, j):
    def b():
        args = build()
        args[index] = args[j]
        return args
    return b


def category(err):
    return "ValueError" if isinstance(err, ValueError) else "TypeError"


def call(fn, args):
    """('ok', result, args) or ('error', exception); anything but ValueError/TypeError escapes."""
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return "ok", fn(*args), args
    except (ValueError, TypeError) as err:
        assert str(err).strip(), f"{type(err).__name__} without a message"
        return "error", err, None


def close(a, b, rtol, atol, where):
    if isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            close(x, y, rtol, atol, f"{where}[{i}]")
        return
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), where
        assert a.shape == b.shape and a.dtype == b.dtype, f"{where}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}"
        # Overflowed entries may be inf in one and NaN in the other: compare where they are.
        fa, fb = np.isfinite(a), np.isfinite(b)
        np.testing.assert_array_equal(fa, fb, err_msg=f"{where}: non-finite entries differ")
        a, b = a[fa], b[fb]
        scale = max(1.0, float(np.abs(b).max())) if b.size else 1.0
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol * scale, err_msg=where)
        return
    if isinstance(a, float):
        assert isinstance(b, float), where
        if not (math.isfinite(a) and math.isfinite(b)):
            assert math.isfinite(a) == math.isfinite(b), f"{where}: {a} vs {b}"
            return
        assert math.isclose(a, b, rel_tol=rtol, abs_tol=atol), f"{where}: {a} vs {b}"
        return
    assert a == b, f"{where}: {a!r} vs {b!r}"


def check_case(case, desc, build, comparable, parity=True):
    note(f"{case.name}: {desc}")
    c = call(getattr(C, case.name), build())
    if not parity:
        return c
    r = call(getattr(R, case.name), build())
    assert c[0] == r[0] == "ok", f"{case.name}: C++ {c[0]} {c[1]!r}, the reference {r[0]} {r[1]!r}"
    if comparable:
        close(c[1], r[1], case.rtol, case.atol, f"{case.name} result")
        for name in case.outputs:
            i = case.argnames.index(name)
            close(c[2][i], r[2][i], case.rtol, case.atol, f"{case.name} {name}")
    return c


@pytest.mark.parametrize("name", list(CASES))
@examples(2.0)
@hypothesis.given(data=st.data())
def test_core_binding_never_crashes(name, data):
    """Any odd argument: a result or a ValueError/TypeError with a message, never a crash."""
    case = data.draw(CASES[name])
    desc, build, _ = data.draw(perturbed(case))
    check_case(case, desc, build, False, parity=False)


@pytest.mark.parametrize("name", list(CASES))
@examples(0.5)
@hypothesis.given(data=st.data())
def test_core_binding_valid_calls_match_reference(name, data):
    """Unperturbed valid calls: identical outcomes, results equal to rounding."""
    case = data.draw(CASES[name])
    outcome = check_case(case, "unchanged", case.build, True)
    assert outcome[0] == "ok", f"{case.name} rejected a valid call: {outcome[1]!r}"


@pytest.fixture
def restore_threads():
    import threadpoolctl
    controller = threadpoolctl.ThreadpoolController()
    before = [(lib, lib.num_threads) for lib in controller.lib_controllers]
    yield
    for lib, n in before:
        lib.set_num_threads(n)


@examples(1.0)
@hypothesis.given(n=st.one_of(st.integers(-3, 6), st.sampled_from(ODD_INTS + ODD_FLOATS)))
def test_set_num_threads(restore_threads, n):
    c = call(C.set_num_threads, [n])
    if c[0] == "ok":
        assert C.get_num_threads() == n


@examples(3.0)
@hypothesis.given(kind=st.sampled_from(("SGD", "Adam", "AdamW")), data=st.data())
def test_optimizer_constructors(kind, data):
    """The checker's hyper-parameter rules: an optimizer is built from valid values only, and
    what it builds is taken by the backend."""
    names = {"SGD": ("lr", "momentum", "nesterov", "weight_decay"),
             "Adam": ("lr", "beta1", "beta2", "eps", "weight_decay"),
             "AdamW": ("lr", "beta1", "beta2", "eps", "weight_decay")}[kind]
    kw = {}
    for name in names:
        if data.draw(st.booleans()):
            kw[name] = data.draw(st.sampled_from(ODD_FLOATS + (0.9, 1e-3)))
    note(f"{kind}({kw})")
    try:
        opt = getattr(dp, kind)(**kw)
    except Exception as err:  # noqa: BLE001 - the check is which
        rejected(err)
        return
    c = opt._config(opt.lr)
    assert math.isfinite(c.lr) and c.lr > 0 and c.weight_decay >= 0
    p = np.ones(3)
    C.optimizer_update(c, p, np.ones(3), [np.zeros(3) for _ in range(c.states())], 1, c.weight_decay)
    assert np.isfinite(p).all()


# --------------------------------------------------------------------------------------
# The public API: Network(...) and its methods

def snapshot(net):
    """Everything a rejected call must leave alone."""
    opt = net.optimizer
    return {
        "weights": [w.copy() for w in net.weights], "biases": [b.copy() for b in net.biases],
        "weight_ids": [id(w) for w in net.weights] + [id(b) for b in net.biases],
        "optimizer": (id(opt), type(opt).__name__, opt.get_config(), opt.step, opt.epochs,
                      [s.copy() for s in opt.state], opt.schedule.get_state()),
        "rng": net._rng.bit_generator.state, "layers": list(net.layers),
        "backend": net.backend, "dtype": net.dtype, "busy": net._busy,
    }


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        x, y = a[key], b[key]
        if key in ("weights", "biases"):
            for u, v in zip(x, y):
                np.testing.assert_array_equal(u, v, err_msg=f"{key} changed by a rejected call")
        elif key == "optimizer":
            assert x[:5] == y[:5], f"optimizer changed by a rejected call: {x[:5]} vs {y[:5]}"
            for u, v in zip(x[5], y[5]):
                np.testing.assert_array_equal(u, v, err_msg="optimizer state changed by a rejected call")
            assert len(x[5]) == len(y[5]) and x[6] == y[6]
        else:
            assert x == y, f"{key} changed by a rejected call: {x!r} vs {y!r}"


def assert_sound(net):
    for l, (w, b) in enumerate(zip(net.weights, net.biases)):
        assert w.shape == (net.layers[l], net.layers[l + 1]) and b.shape == (net.layers[l + 1],)
        assert w.dtype == b.dtype == net.dtype and w.flags.c_contiguous and b.flags.c_contiguous
        assert np.isfinite(w).all() and np.isfinite(b).all(), f"non-finite parameters in layer {l}"


def rejected(err):
    assert isinstance(err, (ValueError, TypeError)), f"unexpected {type(err).__name__}: {err}"
    assert str(err).strip(), f"{type(err).__name__} without a message"


ODD_LAYERS = ([0, 1], [3, -1], [3], [], [2**31, 1], [1, 2**31 - 1 + 1], [True, 1], [2.0, 1], ["3", 1], [None, 1],
              "3,1", b"\x03\x01", 3, None, [np.int64(3), np.uint8(1)], (2, 3), np.array([2, 1]),
              np.array([2.0, 1.0]), [[2], [1]], {2: 1}, range(1, 3))


@st.composite
def network_kwargs(draw):
    layers = draw(st.one_of(st.lists(positive, min_size=2, max_size=4), st.sampled_from(ODD_LAYERS)))
    kw = {"layers": layers}
    n_hidden = len(layers) - 2 if isinstance(layers, list) else 1
    if draw(st.booleans()):
        kw["activation"] = draw(st.one_of(
            st.sampled_from(ACTS + ("RELU", "", None, 3, ("relu",), "softmax")),
            st.lists(st.sampled_from(HIDDEN), min_size=max(n_hidden, 0), max_size=max(n_hidden, 0) + 1)))
    if draw(st.booleans()):
        kw["output_activation"] = draw(st.sampled_from(ACTS + ("Softmax", None, 1)))
    if draw(st.booleans()):
        kw["loss"] = draw(st.sampled_from(tuple(R.LOSSES) + ("MSE", "nll", None, 0)))
    if draw(st.booleans()):
        kw["dtype"] = draw(st.sampled_from(("float32", "float64", np.float32, np.float64, "float16", "int32",
                                            "complex64", object, "f8", ">f4", 5, "x", "float32 ")))
    if draw(st.booleans()):
        kw["seed"] = draw(st.sampled_from((0, 1, 2**64, 2**200, -1, True, 1.5, "1", np.int64(5),
                                           np.uint64(2**63), None)))
    if draw(st.booleans()):
        kw["backend"] = draw(st.sampled_from(("cpp", "numpy", "gpu", None, "CPP", 1)))
    if draw(st.booleans()):
        kw["init"] = draw(st.sampled_from(("he", "glorot", "xavier", None, 1, "user", "weights", "bad-tuple",
                                           "bad-shape", "nan")))
    if draw(st.booleans()):
        kw["bias_init"] = draw(st.sampled_from((0.0, -1.0, 0.1, 1e30, 1e308, -1e300, 1e-320, float("nan"),
                                                float("inf"), True, "0.1", None, np.float32(0.5), 10**400)))
    return kw


def resolve_init(kw, rng):
    init = kw.get("init")
    layers = kw["layers"]
    if init in ("weights", "bad-tuple", "bad-shape", "nan"):
        try:
            sizes = [int(w) for w in layers]
        except Exception:
            sizes = [2, 1]
        sizes = [max(1, min(s, 6)) for s in sizes] if len(sizes) >= 2 else [2, 1]
        W = [rng.standard_normal((a, b)) for a, b in zip(sizes[:-1], sizes[1:])]
        B = [rng.standard_normal(b) for b in sizes[1:]]
        if init == "bad-tuple":
            kw["init"] = (W,)
        elif init == "bad-shape":
            kw["init"] = ([w.T for w in W], B)
        elif init == "nan":
            W[0][0, 0] = np.nan
            kw["init"] = (W, B)
        else:
            kw["init"] = (W, B) if len(W) != 1 or rng.random() < 0.5 else {"weights": W, "biases": None}
    return kw


@examples(3.0)
@hypothesis.given(kw=network_kwargs(), seed=seeds)
def test_network_constructor(kw, seed):
    kw = resolve_init(kw, np.random.default_rng(seed))
    note(repr(kw))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = dp.Network(**kw)
    except Exception as err:  # noqa: BLE001 - the check is which
        if isinstance(err, MemoryError):
            raise
        rejected(err)
        return
    assert_sound(net)
    assert net.dtype in (np.float32, np.float64)
    assert net.backend in ("cpp", "numpy")
    out = net.predict(np.zeros((2, net.n_in)))
    assert out.shape == (2, net.n_out) and out.dtype == net.dtype


@st.composite
def odd_data(draw, n, k, kind="X"):
    """A (n, k) array-like in one of many forms, some invalid."""
    form = draw(st.sampled_from(["valid", "valid", "mutated", "mutated", "labels"]))
    seed = draw(seeds)
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, k))
    if form == "labels":
        return rng.integers(0, max(k, 1), n) if draw(st.booleans()) else rng.integers(-1, k + 2, n)
    if form == "valid":
        return base
    desc, f, _ = draw(array_mutation())
    note(f"{kind}: {desc}")
    return f(base)


@st.composite
def small_network(draw):
    dt = draw(st.sampled_from(("float32", "float64")))
    sizes = draw(st.lists(positive, min_size=2, max_size=4))
    loss, out = loss_pair(draw, sizes[-1])
    act = draw(st.sampled_from(HIDDEN))
    backend = draw(st.sampled_from(("cpp", "numpy")))
    seed = draw(seeds)
    net = dp.Network(sizes, activation=act, output_activation=out, loss=loss, dtype=dt, seed=seed,
                     backend=backend)
    if draw(st.booleans()):  # give it optimizer state to protect
        rng = np.random.default_rng(seed)
        X = rng.standard_normal((6, sizes[0]))
        y = targets(rng, loss, out, 6, sizes[-1], np.float64)
        net.fit(X, y, epochs=1, batch_size=4, optimizer=draw(st.sampled_from([dp.Adam(), dp.SGD(momentum=0.5)])))
    return net


def target_for(net, rng, n):
    return targets(rng, net.loss, net.output_activation, n, net.n_out, np.float64)


@examples(3.0)
@hypothesis.given(net=small_network(), data=st.data())
def test_fit_fuzz(net, data):
    """fit with odd data and hyper-parameters: trains, or raises ValueError/TypeError (or
    DivergenceError) leaving the network exactly as it was."""
    n = data.draw(st.integers(1, 8))
    rng = np.random.default_rng(data.draw(seeds))
    X = data.draw(odd_data(n, net.n_in, "X"))
    y = target_for(net, rng, n) if data.draw(st.booleans()) else data.draw(odd_data(n, net.n_out, "y"))
    kw = {}
    pick = data.draw
    if pick(st.booleans()):
        kw["epochs"] = pick(st.sampled_from((0, 1, 2, -1, True, 1.0, "2", None, np.int64(1))))
    if pick(st.booleans()):
        kw["batch_size"] = pick(st.sampled_from((1, 3, 1000, 0, -2, 2**31, 2**40, True, 2.0, None, np.int32(2))))
    opt_kind = pick(st.sampled_from(("none", "lr", "optimizer", "both")))
    if opt_kind in ("lr", "both"):
        kw["lr"] = pick(st.sampled_from((0.01, 1, 0.0, -0.1, float("nan"), float("inf"), 1e308, True, "0.1",
                                         np.float32(0.01), 10**400)))
    if opt_kind in ("optimizer", "both"):
        kw["optimizer"] = pick(st.sampled_from((None, "adam", dp.SGD, 0.1))) if pick(st.booleans()) else \
            pick(st.sampled_from([dp.Adam(lr=1e-3), dp.SGD(lr=0.01, momentum=0.9, nesterov=True),
                                  dp.Adam(lr=1e-3, weight_decay=0.1, schedule=dp.StepDecay(1))]))
    if pick(st.booleans()):
        kw["shuffle"] = pick(st.sampled_from((True, False, 1, 0, None, "yes", np.bool_(True))))
    if pick(st.booleans()):
        kw["sample_weight"] = pick(st.one_of(
            st.just(rng.uniform(0, 1, n)), st.just(-rng.uniform(0, 1, n)), st.just(np.zeros(n)),
            odd_data(n, 1, "sample_weight").map(lambda a: a.reshape(-1) if isinstance(a, np.ndarray) and
                                                a.ndim == 2 else a)))
    if pick(st.booleans()):
        kw["validation_split"] = pick(st.sampled_from((0.0, 0.5, 0.99, 1.0, -0.1, float("nan"), True, "0.2")))
    if pick(st.booleans()):
        kw["validation_data"] = pick(st.sampled_from(("good", "bad-shape", "one", "four", "none", "list")))
        if kw["validation_data"] == "good":
            kw["validation_data"] = (rng.standard_normal((3, net.n_in)), target_for(net, rng, 3))
        elif kw["validation_data"] == "bad-shape":
            kw["validation_data"] = (rng.standard_normal((3, net.n_in + 1)), target_for(net, rng, 3))
        elif kw["validation_data"] == "one":
            kw["validation_data"] = (rng.standard_normal((3, net.n_in)),)
        elif kw["validation_data"] == "four":
            kw["validation_data"] = (rng.standard_normal((3, net.n_in)), target_for(net, rng, 3), None, None)
        elif kw["validation_data"] == "list":
            kw["validation_data"] = [rng.standard_normal((3, net.n_in)), target_for(net, rng, 3), np.ones(2)]
        else:
            kw["validation_data"] = None
    if pick(st.booleans()):
        kw["early_stopping"] = pick(st.sampled_from((None, dp.EarlyStopping(patience=0), 3, "yes")))
    if pick(st.booleans()):
        kw["callbacks"] = pick(st.sampled_from(((), [len], None, [None], "cb", (lambda r: True), [lambda r: None])))
    if pick(st.booleans()):
        kw["verbose"] = pick(st.sampled_from((0, -1, True, 3.0, "1", None)))
    note(f"fit kwargs: {sorted(kw)}")
    before = snapshot(net)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            history = net.fit(X, y, **kw)
    except dp.DivergenceError:
        assert_sound(net)
        return
    except Exception as err:  # noqa: BLE001
        if isinstance(err, MemoryError):
            raise
        rejected(err)
        assert_same(before, snapshot(net))
        assert_sound(net)
        return
    assert_sound(net)
    assert all(math.isfinite(v) for v in history.loss)
    assert net._busy is None


@examples(3.0)
@hypothesis.given(net=small_network(), data=st.data())
def test_inference_fuzz(net, data):
    """predict/evaluate/score/gradients/predict_classes/predict_proba never crash, never change
    the network, and predict agrees between the backends."""
    n = data.draw(st.integers(0, 8))
    rng = np.random.default_rng(data.draw(seeds))
    X = data.draw(odd_data(n, net.n_in, "X"))
    y = target_for(net, rng, n) if data.draw(st.booleans()) else data.draw(odd_data(n, net.n_out, "y"))
    w = data.draw(st.sampled_from((None, "good", "negative", "short", "nan")))
    w = {None: None, "good": rng.uniform(0, 1, n), "negative": -np.ones(n), "short": np.ones(max(n - 1, 0)),
         "nan": np.full(n, np.nan)}[w]
    method = data.draw(st.sampled_from(("predict", "predict_proba", "predict_classes", "evaluate", "score",
                                        "gradients", "forward")))
    args = (X,) if method in ("predict", "predict_proba", "predict_classes", "forward") else (X, y, w)
    before = snapshot(net)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            result = getattr(net, method)(*args)
    except Exception as err:  # noqa: BLE001
        if isinstance(err, MemoryError):
            raise
        rejected(err)
        assert_same(before, snapshot(net))
        return
    assert_same(before, snapshot(net))
    Xa = np.asarray(X)
    if method in ("predict", "predict_proba", "forward"):
        assert result.shape == (Xa.shape[0], net.n_out) and result.dtype == net.dtype
        other = "numpy" if net.backend == "cpp" else "cpp"
        net.backend, mine = other, net.backend
        try:
            again = getattr(net, method)(X)
        finally:
            net.backend = mine
        rtol = 1e-4 if net.dtype == np.float32 else 1e-10
        np.testing.assert_allclose(result, again, rtol=rtol, atol=rtol)
    elif method == "predict_classes":
        assert result.dtype == np.int64 and result.shape[0] == Xa.shape[0]
    elif method in ("evaluate", "score"):
        assert isinstance(result, float) and math.isfinite(result)
    else:
        dW, db = result
        assert [g.shape for g in dW] == [p.shape for p in net.weights]
        assert [g.shape for g in db] == [p.shape for p in net.biases]
        assert all(np.isfinite(g).all() for g in dW + db)


def same_network(a, b):
    assert a.layers == b.layers and a.activations == b.activations and a.loss == b.loss
    assert a.dtype == b.dtype and a.seed == b.seed
    for u, v in zip(a.weights + a.biases, b.weights + b.biases):
        np.testing.assert_array_equal(u, v)
    assert type(a.optimizer) is type(b.optimizer) and a.optimizer.get_config() == b.optimizer.get_config()
    assert a.optimizer.step == b.optimizer.step and a.optimizer.epochs == b.optimizer.epochs
    assert len(a.optimizer.state) == len(b.optimizer.state)
    for u, v in zip(a.optimizer.state, b.optimizer.state):
        np.testing.assert_array_equal(u, v)
    assert a._rng.bit_generator.state == b._rng.bit_generator.state


@examples(1.5)
@hypothesis.given(net=small_network(), path_kind=st.sampled_from(("str", "pathlib", "noext", "bytes", "None",
                                                                  "int", "dir", "missing-dir")),
                  schedule=st.sampled_from((None, "step", "plateau", "inv")), data=st.data())
def test_save_load_roundtrip_fuzz(tmp_path_factory, net, path_kind, schedule, data):
    """save/load keeps everything (training continues identically); odd paths are refused with
    TypeError or OSError and leave no file behind."""
    tmp = tmp_path_factory.mktemp("saves")
    rng = np.random.default_rng(data.draw(seeds))
    if schedule:
        sched = {"step": dp.StepDecay(2, 0.5), "plateau": dp.ReduceOnPlateau(patience=0),
                 "inv": dp.InverseScaling()}[schedule]
        X = rng.standard_normal((5, net.n_in))
        net.fit(X, target_for(net, rng, 5), epochs=2, optimizer=dp.Adam(schedule=sched))
    path = {"str": str(tmp / "m.npz"), "pathlib": tmp / "m.npz", "noext": tmp / "model",
            "bytes": os.fsencode(tmp / "m.npz"), "None": None, "int": 3, "dir": tmp,
            "missing-dir": tmp / "no" / "m.npz"}[path_kind]
    try:
        net.save(path)
    except (TypeError, OSError) as err:
        assert path_kind in ("bytes", "None", "int", "dir", "missing-dir"), f"save({path!r}) raised {err!r}"
        assert str(err)
        leftovers = [p for p in tmp.rglob("*") if p.is_file()]
        assert not leftovers, f"a failed save left {leftovers}"
        return
    assert path_kind in ("str", "pathlib", "noext", "bytes"), f"save({path!r}) succeeded"
    saved = pathlib.Path(os.fsdecode(path))
    assert saved.is_file()
    assert sorted(p.name for p in tmp.iterdir()) == [saved.name], "save wrote other files than the path given"
    loaded = dp.Network.load(path)
    same_network(net, loaded)
    # Both continue identically.
    X = rng.standard_normal((7, net.n_in))
    y = target_for(net, rng, 7)
    h1 = net.fit(X, y, epochs=2, batch_size=3)
    h2 = loaded.fit(X, y, epochs=2, batch_size=3)
    assert h1.loss == h2.loss
    same_network(net, loaded)


@examples(2.0)
@hypothesis.given(data=st.data())
def test_load_fuzzed_file_bytes(tmp_path_factory, data):
    """Random damage to a model file: ValueError, or (harmless damage) the very same network."""
    tmp = tmp_path_factory.mktemp("damage")
    net = dp.Network([3, 4, 2], seed=1)
    net.fit(np.ones((4, 3)), np.ones((4, 2)), epochs=1, optimizer=dp.Adam())
    path = tmp / "m.npz"
    net.save(path)
    raw = bytearray(path.read_bytes())
    how = data.draw(st.sampled_from(("flip", "truncate", "insert", "zero-run", "swap")))
    pos = data.draw(st.integers(0, len(raw) - 1))
    if how == "flip":
        raw[pos] ^= 1 << data.draw(st.integers(0, 7))
    elif how == "truncate":
        del raw[pos:]
    elif how == "insert":
        raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=16))
    elif how == "zero-run":
        raw[pos:pos + 64] = bytes(len(raw[pos:pos + 64]))
    else:
        other = data.draw(st.integers(0, len(raw) - 1))
        raw[pos], raw[other] = raw[other], raw[pos]
    path.write_bytes(bytes(raw))
    note(f"{how} at {pos}")
    try:
        loaded = dp.Network.load(path)
    except ValueError as err:
        assert str(path) in str(err)
        return
    same_network(net, loaded)


# --------------------------------------------------------------------------------------
# Specific inputs the fuzzing above found or aims at, pinned so they are checked every run.

f32 = np.float32


def _p():
    return [np.zeros((1, 1), f32), np.zeros(1, f32)]


def _x():
    return np.zeros((2, 1), f32)


def _misaligned_X(rows=3, cols=2):
    X = misaligned(np.arange(rows * cols, dtype=f32).reshape(rows, cols))
    if X.flags.aligned:
        pytest.skip("this platform aligns the buffer anyway")
    return X


def _sgd():
    return dp.SGD()._config(0.01)


PINNED_BINDING_CALLS = {
    # an int too large for a double: a RuntimeError "Unable to cast" escaped the C++ once
    "optimizer_update decay 10**400": lambda: C.optimizer_update(_sgd(), np.zeros(3, f32), np.zeros(3, f32), [], 1,
                                                                 10**400),
    "gemm alpha 10**400": lambda: C.gemm(np.zeros((1, 1), f32), np.zeros((1, 1), f32), np.zeros((1, 1), f32),
                                         alpha=10**400),
    "set_num_threads 10**30": lambda: C.set_num_threads(10**30),
    "set_num_threads bool": lambda: C.set_num_threads(True),
    "set_num_threads float": lambda: C.set_num_threads(2.0),
    "set_num_threads 2**31": lambda: C.set_num_threads(2**31),
    "optimizer_update param is grad": lambda: (lambda a: C.optimizer_update(_sgd(), a, a, [], 1, 0.0))(
        np.zeros(3, f32)),
    "forward out is X": lambda: (lambda a: C.forward(a, _p(), ["identity"], a))(np.zeros((1, 1), f32)),
    "gradients grads too short": lambda: C.gradients(_x(), _x(), _p(), ["identity"], "mse", None, _p()[:1]),
    "train_epoch options dict": lambda: C.train_epoch(_x(), _x(), _p(), ["identity"], "mse", 2, None, None,
                                                      {"lr": 0.1}, [], None, None),
    "gemm trans_a str": lambda: C.gemm(np.zeros((2, 3), f32), np.zeros((2, 3), f32), np.zeros((3, 3), f32),
                                       trans_a="no"),
    "OptimizerConfig kind 3": lambda: C.OptimizerConfig(3),
}


@pytest.mark.parametrize("call", list(PINNED_BINDING_CALLS))
def test_pinned_binding_calls_raise_value_or_type_error(restore_threads, call):
    with pytest.raises((ValueError, TypeError)) as info:
        PINNED_BINDING_CALLS[call]()
    assert type(info.value) in (ValueError, TypeError), f"{type(info.value).__name__}: {info.value}"
    assert str(info.value).strip()


PINNED_ODD_BUT_SAFE = {
    "train_epoch batch_size int64": lambda: C.train_epoch(_x(), _x(), _p(), ["identity"], "mse", np.int64(2), None,
                                                          None, _sgd(), [], None, None),
    "activation_forward softmax 0 columns": lambda: C.activation_forward("softmax", np.zeros((3, 0), f32)),
    "loss_forward softmax 0 columns": lambda: C.loss_forward("cross_entropy", "softmax", np.zeros((3, 0), f32),
                                                             np.zeros((3, 0), f32), np.zeros((3, 0), f32)),
    "loss_forward cross_entropy identity": lambda: C.loss_forward("cross_entropy", "identity", _x(), _x(), _x()),
    "forward softmax hidden": lambda: C.forward(_x(), _p() + _p(), ["softmax", "identity"], np.zeros((2, 1), f32)),
}


@pytest.mark.parametrize("call", list(PINNED_ODD_BUT_SAFE))
def test_pinned_odd_core_calls_do_not_crash(restore_threads, call):
    """Calls the checker would refuse: the backend may answer or refuse, but never crash."""
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            PINNED_ODD_BUT_SAFE[call]()
    except (ValueError, TypeError) as err:
        assert str(err).strip()


PINNED_HYPER = {
    "Network bias_init 10**400": lambda: dp.Network([2, 1], bias_init=10**400),
    "SGD lr 10**400": lambda: dp.SGD(lr=10**400),
    "Adam eps 10**400": lambda: dp.Adam(eps=10**400),
    "fit lr 10**400": lambda: dp.Network([2, 1]).fit(np.ones((2, 2)), np.ones(2), lr=10**400),
    "fit validation_split 10**400": lambda: dp.Network([2, 1]).fit(np.ones((2, 2)), np.ones(2),
                                                                   validation_split=10**400),
    "EarlyStopping min_delta 10**400": lambda: dp.EarlyStopping(min_delta=10**400),
}


@pytest.mark.parametrize("call", list(PINNED_HYPER))
def test_pinned_huge_int_hyper_parameters(call):
    with pytest.raises((ValueError, TypeError)) as info:
        PINNED_HYPER[call]()
    assert type(info.value) in (ValueError, TypeError), f"{type(info.value).__name__}: {info.value}"


@pytest.mark.parametrize("dtype,value", [("float32", 1e300), ("float32", -1e39), ("float64", 1e308)])
def test_bias_init_outside_the_dtype_range(dtype, value):
    """A finite bias_init that overflows the network's dtype must not give inf biases."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = dp.Network([2, 3, 1], dtype=dtype, bias_init=value)
    except ValueError as err:
        assert "bias_init" in str(err)
        return
    assert_sound(net)


@pytest.mark.parametrize("backend", ["cpp", "numpy"])
@pytest.mark.parametrize("method", ["predict", "fit", "evaluate", "gradients"])
def test_misaligned_input_is_converted_like_any_other_layout(backend, method):
    """fit/predict convert inputs of any layout; a misaligned float32 view is one."""
    X = _misaligned_X()
    net = dp.Network([2, 1], seed=0, backend=backend)
    y = np.ones(3)
    args = (X,) if method == "predict" else (X, y)
    kwargs = {"epochs": 1} if method == "fit" else {}
    twin = dp.Network([2, 1], seed=0, backend=backend)
    result = getattr(net, method)(*args, **kwargs)
    expected = getattr(twin, method)(*((np.ascontiguousarray(X.copy()),) + args[1:]), **kwargs)
    if method == "fit":
        assert result.loss == expected.loss
        result, expected = net.weights + net.biases, twin.weights + twin.biases
    elif method == "gradients":
        result, expected = result[0] + result[1], expected[0] + expected[1]
    for a, b in zip(result if isinstance(result, list) else [result],
                    expected if isinstance(expected, list) else [expected]):
        np.testing.assert_array_equal(a, b)
