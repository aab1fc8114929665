"""JAX (CPU) training, two variants.

* ``jax-step``: one jitted SGD step per mini-batch, driven by a Python loop.
* ``jax-scan``: one jitted call per epoch; ``lax.scan`` runs every full batch
  and gathers its rows by the epoch's permutation inside the compiled code.
  A short last batch, if any, is run by the jitted step.

The training data live on the device once; each step gathers its rows with
the permutation indices.  Compilation (ahead of time, ``jit(...).lower().compile()``)
happens in setup and is reported separately as ``compile_s``, not counted in
the training time.  Thread count is fixed by the worker through XLA_FLAGS and
CPU affinity before JAX is imported.
"""

from __future__ import annotations

import time

import os

import jax

if os.environ.get("DENSEPROP_BENCH_DTYPE") == "float64":
    jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np

from workloads import batch_slices, epoch_permutations, he_init

jax.config.update("jax_platforms", "cpu")


def _forward(params, x, relu_out):
    last = len(params) - 1
    for i, (W, b) in enumerate(params):
        x = x @ W + b
        if i < last or relu_out:
            x = jax.nn.relu(x)
    return x


class JaxRunner:
    def __init__(self, system, w, X, y, threads):
        self.w, self.system = w, system
        relu_out = w.output_activation == "relu"
        self.X = jax.device_put(X)
        self.y = jax.device_put(y)
        self.params = tuple((jnp.asarray(W), jnp.asarray(b)) for W, b in he_init(w.layers))

        def batch_loss(params, xb, yb):
            d = _forward(params, xb, relu_out) - yb
            return 0.5 * jnp.sum(d * d) / xb.shape[0]

        def step(params, total, X, y, idx):
            xb, yb = X[idx], y[idx]
            loss, grads = jax.value_and_grad(batch_loss)(params, xb, yb)
            params = jax.tree_util.tree_map(lambda p, g: p - w.lr * g, params, grads)
            return params, total + loss * idx.shape[0]

        def epoch(params, total, X, y, idx_mat):
            def body(carry, idx):
                return step(carry[0], carry[1], X, y, idx), None

            (params, total), _ = jax.lax.scan(body, (params, total), idx_mat)
            return params, total

        self.slices = batch_slices(w.rows, w.batch)
        n_full = w.rows // w.batch
        rem = w.rows - n_full * w.batch
        zero = jnp.zeros((), X.dtype)
        t0 = time.perf_counter()
        step_jit = jax.jit(step, donate_argnums=0)
        self.step_full = step_jit.lower(self.params, zero, self.X, self.y,
                                        np.zeros(w.batch, np.int32)).compile()
        self.step_rem = None
        if rem:
            self.step_rem = step_jit.lower(self.params, zero, self.X, self.y,
                                           np.zeros(rem, np.int32)).compile()
        self.epoch_c = None
        if system == "jax-scan" and n_full:
            self.epoch_c = jax.jit(epoch, donate_argnums=0).lower(
                self.params, zero, self.X, self.y, np.zeros((n_full, w.batch), np.int32)
            ).compile()
        self.predict_jit = jax.jit(lambda p, x: _forward(p, x, relu_out))
        self.n_full, self.rem = n_full, rem
        self.notes = {
            "init": "shared He init",
            "shuffle": "shared permutations (same stream as dp seed=0)",
            "compile_s": round(time.perf_counter() - t0, 3),
            "jax_version": jax.__version__,
        }

    def fit(self):
        w = self.w
        history = []
        params = self.params
        for perm in epoch_permutations(w.layers, w.rows, w.epochs):
            perm = perm.astype(np.int32)
            total = jnp.zeros((), self.X.dtype)
            if self.epoch_c is not None:
                idx_mat = perm[: self.n_full * w.batch].reshape(self.n_full, w.batch)
                params, total = self.epoch_c(params, total, self.X, self.y, idx_mat)
                if self.rem:
                    params, total = self.step_rem(params, total, self.X, self.y,
                                                  perm[self.n_full * w.batch:])
            else:
                for s, e in self.slices:
                    f = self.step_full if e - s == w.batch else self.step_rem
                    params, total = f(params, total, self.X, self.y, perm[s:e])
            history.append(total)  # device scalar; no sync inside the epoch
        jax.block_until_ready(params)
        self.params = params
        return [float(t) / w.rows for t in history]

    def predict(self, X):
        return np.asarray(self.predict_jit(self.params, X))


def make(system, w, X, y, threads):
    return JaxRunner(system, w, X, y, threads)
