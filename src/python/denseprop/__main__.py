"""Command line: ``denseprop COMMAND`` or ``python -m denseprop COMMAND``.

The commands are the table ``COMMANDS`` below: the table commands of ``denseprop.cli`` (train,
predict, evaluate, info, export) and ``demo``, which trains two small networks on built-in data.
"""

from __future__ import annotations

import sys
import time
from typing import Literal

from denseprop import _explain, cli


def demo(epochs: int, backend: Literal["cpp", "numpy"]) -> int:
    import numpy as np

    import denseprop as dp
    from denseprop.datasets import make_regression, make_spirals

    print(f"denseprop {dp.__version__}, backend={backend}, BLAS: {dp._core.blas_info()['core']}")

    print("\n1) Regression: [8, 64, 64, 1] ReLU MLP, MSE, SGD lr=0.01, batch 32")
    X, y = make_regression(6000, 8, seed=0)
    Xtr, ytr, Xte, yte = X[:5000], y[:5000], X[5000:], y[5000:]
    net = dp.Network([8, 64, 64, 1], seed=0, backend=backend)
    start = time.perf_counter()
    hist = net.fit(Xtr, ytr, epochs=epochs, batch_size=32, lr=0.01, validation_data=(Xte, yte))
    elapsed = time.perf_counter() - start
    for e, (loss, vloss) in enumerate(zip(hist.loss, hist.val_loss)):
        print(f"  epoch {e + 1:3d}  loss {loss:.5f}  val_loss {vloss:.5f}")
    print(f"  test R^2 = {net.score(Xte, yte):.4f}   ({elapsed:.2f} s, "
          f"{len(Xtr) * epochs / elapsed:,.0f} samples/s)")

    print("\n2) Classification: 3 spirals, [2, 64, 64, 3] tanh MLP, softmax + cross-entropy, Adam")
    X, y = make_spirals(3000, 3, seed=1)
    clf = dp.Network([2, 64, 64, 3], activation="tanh", output_activation="softmax",
                     loss="cross_entropy", seed=0, backend=backend)
    start = time.perf_counter()
    hist = clf.fit(X, y, epochs=epochs, batch_size=32, optimizer=dp.Adam(lr=0.01), validation_split=0.2)
    elapsed = time.perf_counter() - start
    for e in range(len(hist.loss)):
        print(f"  epoch {e + 1:3d}  loss {hist.loss[e]:.5f}  acc {hist.accuracy[e]:.3f}  "
              f"val_loss {hist.val_loss[e]:.5f}  val_acc {hist.val_accuracy[e]:.3f}")
    acc = float(np.mean(clf.predict_classes(X[2400:]) == y[2400:]))
    print(f"  held-out accuracy = {acc:.3f}   ({elapsed:.2f} s)")
    return 0


def _demo_arguments(parser):
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--backend", choices=("cpp", "numpy"), default="cpp")


def _run_demo(args):
    return demo(args.epochs, args.backend)


# name -> (one-line help, add_arguments(parser), run(args) -> exit code)
COMMANDS = {
    **cli.COMMANDS,
    "demo": ("train two small networks on built-in data", _demo_arguments, _run_demo),
    "explain": (_explain.SUMMARY, _explain.add_arguments, _explain.run),
}


def main(argv=None) -> int:
    return cli.main(argv, COMMANDS)


if __name__ == "__main__":
    sys.exit(main())
