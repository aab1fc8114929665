"""PyTorch eager training loop with torch.optim.SGD.

Weights are the shared He initialisation copied in; the loss is
``0.5 * ((yhat - y)**2).sum() / B`` exactly as in the other systems.
"""

from __future__ import annotations

import numpy as np
import torch

from workloads import batch_slices, epoch_permutations, he_init


class TorchRunner:
    def __init__(self, w, X, y, threads):
        torch.set_num_threads(threads)
        self.w = w
        self.X = torch.from_numpy(X)
        self.y = torch.from_numpy(y)
        self.params = []
        for W, b in he_init(w.layers):
            self.params.append(torch.tensor(W, requires_grad=True))
            self.params.append(torch.tensor(b, requires_grad=True))
        self.relu_out = w.output_activation == "relu"
        self.opt = torch.optim.SGD(self.params, lr=w.lr, momentum=0.0)
        self.notes = {
            "init": "shared He init",
            "shuffle": "shared permutations (same stream as dp seed=0)",
            "torch_threads": torch.get_num_threads(),
            "torch_version": torch.__version__,
        }

    def _forward(self, x):
        n = len(self.params) // 2
        for i in range(n):
            x = torch.addmm(self.params[2 * i + 1], x, self.params[2 * i])
            if i < n - 1 or self.relu_out:
                x = torch.relu(x)
        return x

    def fit(self):
        w = self.w
        slices = batch_slices(w.rows, w.batch)
        history = []
        for perm in epoch_permutations(w.layers, w.rows, w.epochs):
            perm_t = torch.from_numpy(perm)
            total = 0.0
            for s, e in slices:
                idx = perm_t[s:e]
                xb = self.X.index_select(0, idx)
                yb = self.y.index_select(0, idx)
                self.opt.zero_grad(set_to_none=True)
                loss = 0.5 * ((self._forward(xb) - yb) ** 2).sum() / (e - s)
                loss.backward()
                self.opt.step()
                total += loss.item() * (e - s)
            history.append(total / w.rows)
        return history

    def predict(self, X):
        with torch.no_grad():
            return self._forward(torch.from_numpy(X)).numpy()


def make(system, w, X, y, threads):
    return TorchRunner(w, X, y, threads)
