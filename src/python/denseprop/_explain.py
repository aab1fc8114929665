"""``python -m denseprop explain``: the textbook example, step by step, every number from the library.

The network is [1, 2, 2] with ReLU hidden and output layers, He initialisation and biases 0.1,
in float64; each step is one training row, the MSE cost ``C = 0.5 sum((yhat - y)^2)`` and one
plain SGD update. Each value is printed beside its formula, so the arithmetic can be redone
by hand: ``trace`` gives the forward and backward pass, the network's own ``fit`` the update.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from .cli import _finite_float, _int_at_least, _positive_float

LAYERS = [1, 2, 2]
DIGITS = 6  # decimals printed; the starting parameters are printed the same way
# One printed line: the name, the formula, the value (parameters have no formula).
_WIDTH = 30


def _targets(text):
    parts = text.split(",")
    if len(parts) != LAYERS[-1]:
        raise argparse.ArgumentTypeError(
            f"expected {LAYERS[-1]} comma-separated numbers (one per output), such as 0.3,0.7; got {text!r}")
    return [_finite_float(p.strip()) for p in parts]


SUMMARY = "walk through the textbook forward and backward pass, every number printed"


def add_arguments(p):
    """The options of ``explain``."""
    p.add_argument("--steps", type=_int_at_least(1), default=3, help="SGD steps to show (default 3)")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="seed of the He initialisation (default 0)")
    p.add_argument("--x", type=_finite_float, default=0.5, help="the input (default 0.5)")
    p.add_argument("--y", type=_targets, default=[0.3, 0.7],
                   help="the two targets (default 0.3,0.7; write --y=-0.5,3 when the first is negative)")
    p.add_argument("--lr", type=_positive_float, default=0.1, help="learning rate (default 0.1)")


def _number(v):
    return str(v) if isinstance(v, (int, np.integer)) else f"{v + 0.0:.{DIGITS}f}"  # no "-0.000000"


def _array(a):
    a = np.asarray(a)
    if a.ndim == 1:
        return "[" + ", ".join(_number(v) for v in a) + "]"
    return "[" + ", ".join(_array(row) for row in a) + "]"


def _line(name, formula, value, sign="="):
    text = _number(value) if np.ndim(value) == 0 else _array(value)
    if formula is None:
        return f"    {name:<9} {sign:<2} {text}"
    return f"    {name:<9} {sign:<2} {formula:<{_WIDTH}} = {text}"


def walk_through(steps=3, seed=0, x=0.5, y=(0.3, 0.7), lr=0.1, out=None):
    """Prints the walk-through to ``out`` (stdout); returns the network after the steps."""
    import denseprop as dp

    write = (out or sys.stdout).write
    net = dp.Network(LAYERS, activation="relu", output_activation="relu", loss="mse", dtype="float64",
                     seed=seed, init="he", bias_init=0.1)
    X = np.array([[x]])
    Y = np.array([list(y)])
    be = net._backend

    def relu_slope(layer):  # relu'(Z): the backend's own derivative, applied to ones
        return be.activation_backward("relu", layer.Z, layer.H, np.ones_like(layer.Z))[0].astype(int)

    write(f"The textbook network, step by step (denseprop {dp.__version__}, backend {net.backend}, "
          f"float64)\n")
    write(f"  layers {LAYERS}: input x -> 2 ReLU hidden units -> 2 ReLU outputs\n")
    write(f"  He initialisation, seed {seed}: W = randn(fan_in, fan_out) * sqrt(2 / fan_in); "
          f"biases 0.1\n")
    write(f"  one row x = {_array(X[0])}, target y = {_array(Y[0])}; cost C = 0.5 sum((yhat - y)^2); "
          f"plain SGD, lr = {lr:g}\n")
    write("  Rows are vectors: x Wh is a row times a matrix, ^T a transpose, * element by element,\n"
          "  A <- B the new value of A.\n")
    write("\nStarting parameters\n")
    _parameters(write, net)
    start = net.evaluate(X, Y)
    for step in range(1, steps + 1):
        tr = net.trace(X, Y)
        hidden, output = tr.layers
        write(f"\nStep {step}\n  forward\n")
        write(_line("Zh", "x Wh + Bh", hidden.Z[0]) + "\n")
        write(_line("H", "relu(Zh)", hidden.H[0]) + "\n")
        write(_line("Zo", "H Wo + Bo", output.Z[0]) + "\n")
        write(_line("yhat", "relu(Zo)", tr.output[0]) + "\n")
        write("  cost\n")
        write(_line("C", "0.5 sum((yhat - y)^2)", tr.loss) + "\n")
        write("  backward\n")
        write(_line("relu'(Zo)", "1 where Zo > 0, else 0", relu_slope(output)) + "\n")
        write(_line("Eo", "(yhat - y) * relu'(Zo)", output.dZ[0]) + "\n")
        write(_line("relu'(Zh)", "1 where Zh > 0, else 0", relu_slope(hidden)) + "\n")
        write(_line("Eh", "(Eo Wo^T) * relu'(Zh)", hidden.dZ[0]) + "\n")
        write(_line("dWo", "H^T Eo", output.dW) + "\n")
        write(_line("dBo", "Eo", output.db) + "\n")
        write(_line("dWh", "x^T Eh", hidden.dW) + "\n")
        write(_line("dBh", "Eh", hidden.db) + "\n")
        net.fit(X, Y, epochs=1, batch_size=1, lr=lr, shuffle=False)
        write(f"  update (lr = {lr:g})\n")
        for name, grad, new in (("Wo", "dWo", net.weights[1]), ("Bo", "dBo", net.biases[1]),
                                ("Wh", "dWh", net.weights[0]), ("Bh", "dBh", net.biases[0])):
            write(_line(name, f"{name} - lr {grad}", new, "<-") + "\n")
    write(f"\nAfter {steps} step{'s' if steps != 1 else ''}: C = {_number(net.evaluate(X, Y))} "
          f"(it was {_number(start)}); yhat = {_array(net.predict(X)[0])}, y = {_array(Y[0])}\n")
    return net


def _parameters(write, net):
    for name, value, note in (("Wh", net.weights[0], "input -> hidden, 1 x 2"),
                              ("Bh", net.biases[0], "hidden biases"),
                              ("Wo", net.weights[1], "hidden -> output, 2 x 2; row i feeds from hidden unit i"),
                              ("Bo", net.biases[1], "output biases")):
        write(_line(name, None, value) + f"    ({note})\n")


def run(args):
    """Runs the subcommand from parsed arguments; returns the exit code."""
    import denseprop as dp

    try:
        walk_through(args.steps, args.seed, args.x, args.y, args.lr)
    except dp.DivergenceError as err:
        print(f"denseprop explain: {err}", file=sys.stderr)
        return 1
    return 0
