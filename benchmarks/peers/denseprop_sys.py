"""denseprop through its public API (backend "cpp" or "numpy").

Only the pinned API is used: ``dp.Network(...)``, ``net.fit`` (its
``hist.loss`` gives the per-epoch loss), ``net.predict``, ``net.evaluate`` and
``dp.set_num_threads``.  The network uses its own initialisation with
``seed=0`` and its own shuffling; per its docstring both come from
``np.random.default_rng(0)`` (He init first, then one shuffle seed per epoch). The
hand-written peers reproduce the init exactly and shuffle with ``rng.permutation``
from the same stream (see ``workloads.epoch_permutations``).
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

import denseprop as dp


class DensepropRunner:
    def __init__(self, system, w, X, y, threads):
        backend = system.split("-", 1)[1]
        # The numpy backend runs on numpy's BLAS: limit it like the other peers.
        self._limits = threadpool_limits(limits=threads)
        dp.set_num_threads(threads)
        self.w, self.X, self.y = w, X, y
        self.net = dp.Network(
            list(w.layers),
            activation="relu",
            output_activation=w.output_activation,
            loss="mse",
            dtype=X.dtype.name,
            seed=0,
            backend=backend,
        )
        self.notes = {
            "init": "denseprop's own (seed=0)",
            "shuffle": "denseprop's own",
            "dp_threads": dp.get_num_threads(),
            "denseprop_version": getattr(dp, "__version__", "?"),
        }

    def fit(self):
        w = self.w
        hist = self.net.fit(self.X, self.y, epochs=w.epochs, batch_size=w.batch,
                            lr=w.lr, shuffle=True)
        return [float(v) for v in hist.loss]

    def predict(self, X):
        return np.asarray(self.net.predict(X))

    def check(self):
        """Compare net.evaluate with the MSE of net.predict (both per the pinned loss)."""
        pred = self.predict(self.X).reshape(self.y.shape).astype(np.float64)
        ours = 0.5 * float(((pred - self.y) ** 2).sum()) / self.X.shape[0]
        ev = self.net.evaluate(self.X, self.y)
        ev = float(ev[0] if isinstance(ev, (tuple, list)) else ev)
        return {"evaluate": ev, "loss_from_predict": ours}


def make(system, w, X, y, threads):
    return DensepropRunner(system, w, X, y, threads)
