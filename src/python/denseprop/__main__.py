"""Command line: ``python -m denseprop demo`` trains two small networks on built-in data."""

from __future__ import annotations

import argparse
import sys
import time

from denseprop import _explain


def demo(epochs: int, backend: str) -> int:
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m denseprop", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    d = sub.add_parser("demo", help="train two small networks on built-in data")
    d.add_argument("--epochs", type=int, default=20)
    d.add_argument("--backend", choices=("cpp", "numpy"), default="cpp")
    _explain.add_subcommand(sub)
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo(args.epochs, args.backend)
    if args.command == "explain":
        return _explain.run(args)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
