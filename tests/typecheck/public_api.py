"""Checked with ``mypy --strict`` (tests/test_typing.py): the public API as a user calls it."""

from __future__ import annotations

import numpy as np

import denseprop as dp

X = np.random.default_rng(0).standard_normal((100, 4)).astype(np.float32)
y = X[:, 0] - X[:, 1]

net = dp.Network([4, 16, 1], activation="silu", dtype=np.float32, seed=0)
history: dp.History = net.fit(X, y, epochs=2, batch_size=16, optimizer=dp.AdamW(lr=1e-3), verbose=False,
                              early_stopping=dp.EarlyStopping(patience=3), validation_split=0.2)
last_loss: float = history.loss[-1]
best: int | None = history.best_epoch
predictions: np.ndarray = net.predict(X)
score: float = net.score(X, y)
dW, db = net.gradients(X, y)
net.fit(X, y, optimizer=dp.SGD(0.01, momentum=0.9, nesterov=True, schedule=dp.StepDecay(5, 0.5)))
net.fit(X, y, optimizer=dp.Adam(schedule=dp.ReduceOnPlateau(patience=2)))
net.fit(X, y, lr=0.01)
net.save("/tmp/denseprop-typecheck.npz")
again: dp.Network = dp.Network.load("/tmp/denseprop-typecheck.npz", backend="numpy")
dp.set_num_threads(1)
threads: int = dp.get_num_threads()
clf = dp.Network([4, 8, 3], output_activation="softmax", loss="cross_entropy", init="glorot")
classes: np.ndarray = clf.predict_classes(X)
