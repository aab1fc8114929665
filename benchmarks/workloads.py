"""Benchmark workloads: specifications, synthetic data and the shared initialisation.

Every system sees exactly the same data: it is generated here with NumPy from
fixed seeds (float64 arithmetic, cast to float32 at the end), written once to
``.npy`` files by the driver and loaded by each worker subprocess.

Targets for the synthetic workloads come from a fixed random *teacher* (a small
tanh network or a smooth function), standardised so that every output column
has zero mean and unit variance (or lies in [0, 1] for ``tiny``, whose output
layer is a ReLU).  With the learning rates in the table below plain SGD from
the He initialisation decreases the loss steadily and does not diverge.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

DATA_SEED = 1234  # seed for synthetic inputs and teachers
# Element type of every system's data and weights: float32 unless run.py --dtype float64
# sets this variable for the workers.
DTYPE = np.dtype(os.environ.get("DENSEPROP_BENCH_DTYPE", "float32"))
INIT_SEED = 0  # seed of the shared init + shuffle stream (= dp.Network seed)


@dataclasses.dataclass(frozen=True)
class Workload:
    """One training job: architecture, data size and SGD hyper-parameters."""

    name: str
    layers: tuple[int, ...]
    batch: int
    rows: int
    epochs: int
    lr: float
    output_activation: str = "identity"
    description: str = ""

    @property
    def samples(self) -> int:
        """Number of samples processed by one full training run."""
        return self.rows * self.epochs

    @property
    def weight_products(self) -> int:
        """sum(fan_in * fan_out) over the layers."""
        return sum(a * b for a, b in zip(self.layers[:-1], self.layers[1:]))

    def flops_per_step(self, batch: int | None = None) -> int:
        """FLOPs of the GEMMs in one SGD step (forward, dW, and dX except layer 0)."""
        b = self.batch if batch is None else batch
        return 6 * b * self.weight_products - 2 * b * self.layers[0] * self.layers[1]

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["layers"] = list(self.layers)
        return d


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in [
        Workload("tiny", (1, 2, 2), 1, 20_000, 5, 0.01, output_activation="relu",
                 description="textbook net, ReLU output, one sample per step"),
        Workload("tabular", (8, 64, 64, 1), 32, 20_000, 10, 0.01,
                 description="small regression MLP"),
        Workload("digits", (64, 128, 10), 64, 1_797, 50, 0.1,
                 description="scikit-learn load_digits, one-hot targets"),
        Workload("mnist", (784, 256, 128, 10), 128, 60_000, 2, 0.01,
                 description="MNIST-shaped synthetic data"),
        Workload("wide", (1024, 4096, 4096, 1024), 256, 8_192, 1, 0.001,
                 description="large GEMM-bound layers"),
    ]
}

# --quick: fewer rows/epochs so that the whole suite is a smoke test.
QUICK_SIZES: dict[str, tuple[int, int]] = {
    "tiny": (2_000, 2),
    "tabular": (4_000, 2),
    "digits": (1_797, 5),
    "mnist": (6_000, 1),
    "wide": (1_024, 1),
}


def get_workload(name: str, quick: bool = False) -> Workload:
    """Return the workload spec, shrunk to its --quick size if requested."""
    w = WORKLOADS[name]
    if quick:
        rows, epochs = QUICK_SIZES[name]
        w = dataclasses.replace(w, rows=min(rows, w.rows), epochs=min(epochs, w.epochs))
    return w


# --------------------------------------------------------------------------- data


def _standardise(y: np.ndarray) -> np.ndarray:
    return (y - y.mean(axis=0)) / y.std(axis=0)


def _teacher(x: np.ndarray, hidden: int, n_out: int, rng: np.random.Generator) -> np.ndarray:
    """A fixed random one-hidden-layer tanh network, outputs standardised to O(1)."""
    n_in = x.shape[1]
    w1 = rng.standard_normal((n_in, hidden)) / np.sqrt(n_in)
    b1 = 0.1 * rng.standard_normal(hidden)
    w2 = rng.standard_normal((hidden, n_out)) / np.sqrt(hidden)
    return _standardise(np.tanh(x @ w1 + b1) @ w2)


def _digits_data() -> tuple[np.ndarray, np.ndarray, str]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        # Deterministic stand-in of the same shape: 10 random 8x8 "prototype"
        # images with pixel noise, classes balanced.
        rng = np.random.default_rng(DATA_SEED + 3)
        labels = np.arange(1_797) % 10
        protos = rng.random((10, 64))
        x = np.clip(protos[labels] + 0.2 * rng.standard_normal((1_797, 64)), 0.0, 1.0)
        source = "synthetic stand-in (scikit-learn not importable)"
    else:
        d = load_digits()
        x = d.data / 16.0
        labels = d.target
        source = "sklearn.datasets.load_digits"
    y = np.zeros((x.shape[0], 10))
    y[np.arange(x.shape[0]), labels] = 1.0
    return x, y, source


def make_data(w: Workload) -> tuple[np.ndarray, np.ndarray, str]:
    """Return (X, y, source) as C-contiguous float32 arrays for workload ``w``.

    The data depend only on the workload name and its row count.
    """
    n = w.rows
    if w.name == "tiny":
        rng = np.random.default_rng(DATA_SEED)
        x = rng.uniform(-2.0, 2.0, size=(n, 1))
        # Two smooth, non-negative targets in [0, 1] (the output layer is a ReLU).
        y = np.hstack([0.5 + 0.4 * np.sin(1.5 * x), 0.2 + 0.2 * x**2])
        source = "smooth function of x ~ U(-2, 2)"
    elif w.name == "tabular":
        rng = np.random.default_rng(DATA_SEED + 1)
        x = rng.standard_normal((n, 8))
        y = _teacher(x, 32, 1, rng)
        source = "N(0,1) features, tanh teacher [8,32,1]"
    elif w.name == "digits":
        x, y, source = _digits_data()
    elif w.name == "mnist":
        rng = np.random.default_rng(DATA_SEED + 2)
        # "Pixels": about 20% of inputs lit with an intensity in [0, 1],
        # like handwritten digits on a dark background.
        x = rng.random((n, 784)) * (rng.random((n, 784)) < 0.2)
        y = _teacher(x - 0.1, 64, 10, rng)
        source = "sparse [0,1] pixels, tanh teacher [784,64,10]"
    elif w.name == "wide":
        rng = np.random.default_rng(DATA_SEED + 4)
        x = rng.standard_normal((n, 1024))
        y = _teacher(x, 256, 1024, rng)
        source = "N(0,1) features, tanh teacher [1024,256,1024]"
    else:  # pragma: no cover - guarded by WORKLOADS
        raise KeyError(w.name)
    x = np.ascontiguousarray(x[:n], dtype=DTYPE)
    y = np.ascontiguousarray(y[:n], dtype=DTYPE)
    return x, y, source


def save_data(w: Workload, directory: str) -> dict:
    """Generate the data of ``w`` into ``directory``; return paths and metadata."""
    x, y, source = make_data(w)
    xp = os.path.join(directory, f"{w.name}_{w.rows}_{DTYPE.name}_X.npy")
    yp = os.path.join(directory, f"{w.name}_{w.rows}_{DTYPE.name}_y.npy")
    np.save(xp, x)
    np.save(yp, y)
    return {"X": xp, "y": yp, "source": source, "X_shape": list(x.shape), "y_shape": list(y.shape)}


# ------------------------------------------------------------------ shared helpers


def _draw_he(rng: np.random.Generator, layers) -> list[tuple[np.ndarray, np.ndarray]]:
    params = []
    for fan_in, fan_out in zip(layers[:-1], layers[1:]):
        w = rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)
        params.append((w.astype(DTYPE), np.full(fan_out, 0.1, dtype=DTYPE)))
    return params


def he_init(layers, seed: int = INIT_SEED) -> list[tuple[np.ndarray, np.ndarray]]:
    """He initialisation shared by all peers that accept given weights.

    ``W_l = randn(fan_in, fan_out) * sqrt(2 / fan_in)`` drawn in float64 from
    ``np.random.default_rng(seed)`` layer by layer, then cast to float32;
    every bias is 0.1.  This is the same recipe and random stream that
    ``dp.Network(..., seed=0)`` uses, so the peers start from denseprop's weights.
    """
    return _draw_he(np.random.default_rng(seed), layers)


def epoch_permutations(layers, rows: int, epochs: int, seed: int = INIT_SEED):
    """Yield one shuffled row order per epoch, shared by the hand-written peers.

    They continue the initialisation's random stream (init first, then one
    ``rng.permutation(rows)`` per epoch, what a user of those libraries would
    write, timed with the fit). denseprop draws its own orders from the same
    stream (one 64-bit seed per epoch for its ``shuffled_order``), so the peers
    start from denseprop's exact weights but visit rows in other random orders;
    final losses are compared within the 5% the issue allows.
    """
    rng = np.random.default_rng(seed)
    _draw_he(rng, layers)
    for _ in range(epochs):
        yield rng.permutation(rows)


def batch_slices(rows: int, batch: int):
    """Start/stop pairs of the mini-batches of one epoch (last one may be short)."""
    return [(s, min(s + batch, rows)) for s in range(0, rows, batch)]
