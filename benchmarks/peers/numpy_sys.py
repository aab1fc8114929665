"""Plain NumPy training loop: forward, backward and SGD written out by hand.

BLAS threads are limited with threadpoolctl (and OPENBLAS_NUM_THREADS set by
the worker before import).
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from workloads import batch_slices, epoch_permutations, he_init


class NumpyRunner:
    def __init__(self, w, X, y, threads):
        self.w, self.X, self.y = w, X, y
        self._limits = threadpool_limits(limits=threads)  # kept for the process lifetime
        self.params = [(W.copy(), b.copy()) for W, b in he_init(w.layers)]
        self.relu_out = w.output_activation == "relu"
        self.notes = {"init": "shared He init", "shuffle": "shared permutations (same stream as dp seed=0)"}

    def _forward(self, x):
        """Return the list of layer outputs (activations) starting with x."""
        acts = [x]
        last = len(self.params) - 1
        for i, (W, b) in enumerate(self.params):
            z = acts[-1] @ W
            z += b
            if i < last or self.relu_out:
                np.maximum(z, 0.0, out=z)
            acts.append(z)
        return acts

    def _step(self, xb, yb, lr):
        acts = self._forward(xb)
        bsz = xb.shape[0]
        diff = acts[-1] - yb
        loss = 0.5 * float(np.vdot(diff, diff)) / bsz
        dz = diff * diff.dtype.type(1.0 / bsz)
        if self.relu_out:
            dz *= acts[-1] > 0
        for i in range(len(self.params) - 1, -1, -1):
            W, b = self.params[i]
            dW = acts[i].T @ dz
            db = dz.sum(axis=0)
            if i > 0:
                dz = dz @ W.T
                dz *= acts[i] > 0  # ReLU derivative from the layer's output
            W -= W.dtype.type(lr) * dW
            b -= b.dtype.type(lr) * db
        return loss

    def fit(self):
        w, X, y = self.w, self.X, self.y
        slices = batch_slices(w.rows, w.batch)
        history = []
        for perm in epoch_permutations(w.layers, w.rows, w.epochs):
            total = 0.0
            for s, e in slices:
                idx = perm[s:e]
                total += self._step(X.take(idx, axis=0), y.take(idx, axis=0), w.lr) * (e - s)
            history.append(total / w.rows)
        return history

    def predict(self, X):
        return self._forward(X)[-1]


def make(system, w, X, y, threads):
    return NumpyRunner(w, X, y, threads)
