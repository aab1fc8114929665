"""Prints how closely onnxruntime (CPU provider) reproduces predict for exported networks,
max|a-b|/max|b| per activation, dtype and opset, over inputs that reach the activations' tails:

    python benchmarks/onnx_parity.py
"""

import numpy as np
import onnxruntime as ort

import denseprop as dp
from denseprop import reference


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.abs(a - b).max() / np.abs(b).max()


def parity(net, opset):
    X = np.random.default_rng(0).standard_normal((4096, net.n_in)) * 4
    X[:2] = [[40.0], [-40.0]]
    X = X.astype(net.dtype)
    session = ort.InferenceSession(net.to_onnx(opset=opset).SerializeToString(), providers=["CPUExecutionProvider"])
    return rel(session.run(None, {"X": X})[0], net.predict(X))


def main():
    print(f"onnxruntime {ort.__version__}; max|onnxruntime - predict| / max|predict| over 4096 rows\n")
    print("| network | float32, opset 17 | float32, opset 20 | float64, opset 17 | float64, opset 20 |")
    print("|---|---|---|---|---|")
    rows = [(f"hidden {a}", dict(activation=a)) for a in reference.ACTIVATIONS if a != "softmax"]
    rows += [("output softmax", dict(activation="tanh", output_activation="softmax", loss="cross_entropy")),
             ("output sigmoid", dict(activation="tanh", output_activation="sigmoid", loss="cross_entropy"))]
    for name, kwargs in rows:
        cells = []
        for dtype in ("float32", "float64"):
            net = dp.Network([6, 64, 64, 4], dtype=dtype, seed=0, **kwargs)
            cells += [f"{parity(net, opset):.1e}" for opset in (17, 20)]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
