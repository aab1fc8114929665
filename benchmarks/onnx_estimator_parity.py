"""Prints how closely onnxruntime (CPU provider) reproduces the scikit-learn estimators' predict and
predict_proba through their to_onnx, max|a-b|/max|b| per hidden activation and dtype, over rows
that reach the activations' tails, and how many labels differ from predict's:

    python benchmarks/onnx_estimator_parity.py
"""

import warnings

import numpy as np
import onnxruntime as ort
from sklearn.exceptions import ConvergenceWarning

from denseprop import _checks
from denseprop.sklearn import _ACTIVATION_ALIASES, DenseClassifier, DenseRegressor

N_FEATURES, N_TRAIN, N_EVAL = 8, 2000, 4096


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.abs(a - b).max() / np.abs(b).max()


def problems(X):
    """(name, estimator class, target) of each kind the estimators take."""
    s = X[:, 0] + X[:, 1] * X[:, 2] - np.sin(X[:, 3])
    return [("binary", DenseClassifier, s > 0),
            ("classes", DenseClassifier, np.array(["a", "b", "c", "d"])[np.digitize(s, [-1, 0, 1])]),
            ("multi-label", DenseClassifier, np.column_stack([s > 0, X[:, 4] > 0, X[:, 5] * X[:, 6] > 0])),
            ("regression", DenseRegressor, np.column_stack([s, X[:, 4] ** 2, np.tanh(X[:, 7])]))]


def parity(est, X):
    """(max relative error of the float output, labels that differ) of est's graph on X."""
    outputs = ort.InferenceSession(est.to_onnx().SerializeToString(),
                                   providers=["CPUExecutionProvider"]).run(None, {"X": X})
    if isinstance(est, DenseRegressor):
        return rel(outputs[0], est.predict(X).reshape(len(X), -1)), 0
    label, proba = outputs
    return rel(proba, est.predict_proba(X)), int((label != est.predict(X)).sum())


def main():
    rng = np.random.default_rng(0)
    X_train = rng.standard_normal((N_TRAIN, N_FEATURES))
    X_eval = rng.standard_normal((N_EVAL, N_FEATURES)) * 4
    X_eval[:2] = [[40.0], [-40.0]]
    kinds = problems(X_train)
    print(f"onnxruntime {ort.__version__}; estimators (64, 64) trained 30 epochs on {N_TRAIN} rows; "
          f"max|onnxruntime - predict(_proba)| / max|predict(_proba)| over {N_EVAL} rows; "
          "labels differing from predict's in brackets\n")
    header = [f"{name}, {dtype}" for dtype in ("float32", "float64") for name, _, _ in kinds]
    print("| hidden activation | " + " | ".join(header) + " |")
    print("|---" * (len(header) + 1) + "|")
    for activation in tuple(_ACTIVATION_ALIASES) + _checks.HIDDEN_ACTIVATIONS:
        cells = []
        for dtype in ("float32", "float64"):
            for _, Estimator, y in kinds:
                est = Estimator(hidden_layer_sizes=(64, 64), activation=activation, max_iter=30, dtype=dtype,
                                random_state=0)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    est.fit(X_train, y)
                err, wrong = parity(est, X_eval.astype(dtype))
                cells.append(f"{err:.1e}" + (f" [{wrong}]" if est._classifies else ""))
        print(f"| {activation} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
