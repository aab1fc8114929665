"""Small built-in data sets, generated on the fly (nothing is downloaded)."""

from __future__ import annotations

import numpy as np


def make_regression(n_samples=4000, n_features=8, seed=0, dtype=np.float32):
    """A smooth non-linear regression problem: X (n, n_features) standard normal,
    y (n,) = sin(x0) + 0.5 x1 x2 - 0.3 x3^2 + 0.2 * sum(x) / sqrt(n_features) + noise."""
    if n_features < 4:
        raise ValueError("make_regression needs n_features >= 4")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features))
    y = (np.sin(X[:, 0]) + 0.5 * X[:, 1] * X[:, 2] - 0.3 * X[:, 3] ** 2
         + 0.2 * X.sum(axis=1) / np.sqrt(n_features) + 0.05 * rng.standard_normal(n_samples))
    return X.astype(dtype), y.astype(dtype)


def make_spirals(n_samples=3000, n_classes=3, noise=0.25, seed=0, dtype=np.float32):
    """Interleaved 2-D spirals, one arm per class (1.5 turns each): X (n, 2), integer labels y (n,)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n_samples)
    r = rng.uniform(0.1, 1.0, n_samples)
    theta = 3.0 * np.pi * r + 2.0 * np.pi * y / n_classes + noise * rng.standard_normal(n_samples)
    X = np.column_stack([r * np.cos(theta), r * np.sin(theta)]) * 2.0
    return X.astype(dtype), y.astype(np.int64)
