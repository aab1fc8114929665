"""scikit-learn MLPRegressor with plain SGD.

MLPRegressor cannot take the He initialisation (it uses its own Glorot-style
init) nor a ReLU output layer, and its loss is averaged over the outputs as
well as the rows: ``((y - yhat)**2).mean() / 2``.  The reported loss is
therefore ``loss_curve_[-1] * n_outputs`` so that it is on the same scale as
the other systems; note its gradients (and so its effective learning rate) are
also ``1/n_outputs`` of the others' on multi-output workloads.
"""

from __future__ import annotations

import warnings

import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPRegressor
from threadpoolctl import threadpool_limits


class SklearnRunner:
    def __init__(self, w, X, y, threads):
        self._limits = threadpool_limits(limits=threads)
        self.w, self.X = w, X
        self.y = y[:, 0] if y.shape[1] == 1 else y  # 1-D target avoids a warning
        self.n_out = y.shape[1]
        self.model = MLPRegressor(
            hidden_layer_sizes=tuple(w.layers[1:-1]),
            activation="relu",
            solver="sgd",
            momentum=0.0,
            nesterovs_momentum=False,
            learning_rate="constant",
            learning_rate_init=w.lr,
            batch_size=w.batch,
            max_iter=w.epochs,
            shuffle=True,
            alpha=0.0,
            tol=0.0,
            n_iter_no_change=10**9,
            early_stopping=False,
            random_state=0,
        )
        self.notes = {
            "init": "sklearn's own (Glorot uniform)",
            "loss": "loss_curve_ * n_outputs",
            "sklearn_version": sklearn.__version__,
        }
        if w.output_activation != "identity":
            self.notes["output_activation"] = "identity (MLPRegressor has no ReLU output)"

    def fit(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model.fit(self.X, self.y)
        return [float(v) * self.n_out for v in self.model.loss_curve_]

    def predict(self, X):
        return self.model.predict(X)


def make(system, w, X, y, threads):
    return SklearnRunner(w, X, y, threads)
