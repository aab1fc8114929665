"""Optimizers, learning-rate schedules and early stopping.

The optimizer objects only hold hyper-parameters and state arrays; the update itself runs
in the backend's ``train_epoch`` (C++ or NumPy), inside the epoch loop. Definitions follow
PyTorch's ``torch.optim.SGD`` and ``torch.optim.Adam`` (weight decay is added to the
gradient of the weights, never the biases).
"""

from __future__ import annotations

import math

import numpy as np


def _float(value, name, low=None, high=None, low_open=False, high_open=True):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    try:
        value = float(value)
    except OverflowError:
        raise ValueError(f"{name} must be a finite number, got {value}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value}")
    return value


def _int(value, name, low):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


# --------------------------------------------------------------------------------------
# Learning-rate schedules: each epoch's rate from the base rate, stepped once per epoch.

class Schedule:
    """Base class: ``lr(base_lr)`` is the rate for the coming epoch; ``step(monitored)``
    is called after each epoch with the watched loss (val_loss, else loss)."""

    def lr(self, base_lr):
        raise NotImplementedError

    def step(self, monitored):
        raise NotImplementedError

    def get_state(self):
        return {}

    def set_state(self, state):
        """Restores get_state(); raises ValueError for anything that is not such a state."""
        expected = self.get_state()
        if not isinstance(state, dict) or set(state) != set(expected):
            raise ValueError(f"a {type(self).__name__} state needs the keys {sorted(expected)}")
        for key, value in state.items():
            setattr(self, key, _int(value, f"schedule state {key!r}", 0))

    def get_config(self):
        raise NotImplementedError


class Constant(Schedule):
    """The base rate every epoch."""

    def lr(self, base_lr):
        return base_lr

    def step(self, monitored):
        pass

    def get_config(self):
        return {}


class InverseScaling(Schedule):
    """lr = base_lr / (epoch + 1) ** power_t, with epoch the epochs completed so far.

    scikit-learn's 'invscaling' counts samples seen instead of epochs; this counts epochs,
    so one setting behaves the same whatever the data size.
    """

    def __init__(self, power_t=0.5):
        self.power_t = _float(power_t, "power_t", 0.0, None)
        self.epochs = 0

    def lr(self, base_lr):
        return base_lr / (self.epochs + 1) ** self.power_t

    def step(self, monitored):
        self.epochs += 1

    def get_state(self):
        return {"epochs": self.epochs}

    def get_config(self):
        return {"power_t": self.power_t}


class StepDecay(Schedule):
    """lr = base_lr * gamma ** (epoch // step_size), as PyTorch's StepLR."""

    def __init__(self, step_size, gamma=0.1):
        self.step_size = _int(step_size, "step_size", 1)
        self.gamma = _float(gamma, "gamma", 0.0, None, low_open=True)
        self.epochs = 0

    def lr(self, base_lr):
        return base_lr * self.gamma ** (self.epochs // self.step_size)

    def step(self, monitored):
        self.epochs += 1

    def get_state(self):
        return {"epochs": self.epochs}

    def get_config(self):
        return {"step_size": self.step_size, "gamma": self.gamma}


class ReduceOnPlateau(Schedule):
    """Multiplies the rate by ``factor`` after ``patience`` epochs without improvement.

    An epoch improves when the watched loss drops below ``best * (1 - threshold)``
    (PyTorch's ReduceLROnPlateau in 'min' mode with a relative threshold); the rate
    never goes below ``min_lr``.
    """

    def __init__(self, factor=0.1, patience=10, threshold=1e-4, min_lr=0.0):
        self.factor = _float(factor, "factor", 0.0, 1.0, low_open=True)
        self.patience = _int(patience, "patience", 0)
        self.threshold = _float(threshold, "threshold", 0.0, None)
        self.min_lr = _float(min_lr, "min_lr", 0.0, None)
        self.scale = 1.0
        self.best = math.inf
        self.bad_epochs = 0
        self._base = None

    def lr(self, base_lr):
        self._base = base_lr
        return max(base_lr * self.scale, self.min_lr)

    def step(self, monitored):
        if monitored < self.best * (1.0 - self.threshold) or self.best == math.inf:
            self.best = monitored
            self.bad_epochs = 0
            return
        self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            self.scale *= self.factor
            self.bad_epochs = 0

    def get_state(self):
        return {"scale": self.scale, "best": self.best if math.isfinite(self.best) else None,
                "bad_epochs": self.bad_epochs}

    def set_state(self, state):
        if not isinstance(state, dict) or set(state) != {"scale", "best", "bad_epochs"}:
            raise ValueError("a ReduceOnPlateau state needs the keys best, bad_epochs and scale")
        self.scale = _float(state["scale"], "schedule state 'scale'", 0.0, 1.0, low_open=True, high_open=False)
        self.best = math.inf if state["best"] is None else _float(state["best"], "schedule state 'best'")
        self.bad_epochs = _int(state["bad_epochs"], "schedule state 'bad_epochs'", 0)

    def get_config(self):
        return {"factor": self.factor, "patience": self.patience, "threshold": self.threshold,
                "min_lr": self.min_lr}


SCHEDULES = {"Constant": Constant, "InverseScaling": InverseScaling, "StepDecay": StepDecay,
             "ReduceOnPlateau": ReduceOnPlateau}


# --------------------------------------------------------------------------------------
# Optimizers

class Optimizer:
    """Base class. ``state`` holds the per-parameter arrays (allocated on first use);
    ``step`` counts the updates taken; ``epochs`` the epochs trained."""

    name = ""

    def __init__(self, lr, weight_decay, schedule):
        self.lr = _float(lr, "lr", 0.0, None, low_open=True)
        self.weight_decay = _float(weight_decay, "weight_decay", 0.0, None)
        if schedule is not None and not isinstance(schedule, Schedule):
            raise TypeError("schedule must be a denseprop schedule such as dp.StepDecay(10), "
                            f"got {type(schedule).__name__}")
        self.schedule = schedule if schedule is not None else Constant()
        self.state: list[np.ndarray] = []
        self.step = 0
        self.epochs = 0
        self._owner = None

    def states_per_param(self):
        raise NotImplementedError

    def options(self, lr):
        """The hyper-parameters the backend's train_epoch takes, for an epoch at rate lr."""
        raise NotImplementedError

    def current_lr(self):
        return self.schedule.lr(self.lr)

    def _attach(self, owner, params):
        """Binds the optimizer to a network, allocating state for its parameters; an
        optimizer already bound to this network keeps its state."""
        k = self.states_per_param()
        shapes_match = len(self.state) == k * len(params) and all(
            s.shape == params[i // k].shape and s.dtype == params[i // k].dtype
            for i, s in enumerate(self.state))
        if self._owner is owner and shapes_match:
            return
        self.state = [np.zeros_like(p) for p in params for _ in range(k)]
        self.step = 0
        self._owner = owner

    def get_config(self):
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay.

    Per step, as torch.optim.SGD with dampening 0: ``g = dW + weight_decay * W``;
    ``v = momentum * v + g``; ``W -= lr * (g + momentum * v if nesterov else v)``.
    Biases get the same update without weight decay.
    """

    name = "sgd"

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0, schedule=None):
        super().__init__(lr, weight_decay, schedule)
        self.momentum = _float(momentum, "momentum", 0.0, 1.0)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be a bool, got {type(nesterov).__name__}")
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0, e.g. SGD(momentum=0.9, nesterov=True)")
        self.nesterov = bool(nesterov)

    def states_per_param(self):
        return 1 if self.momentum != 0 else 0

    def options(self, lr):
        return {"lr": float(lr), "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}

    def get_config(self):
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}


class Adam(Optimizer):
    """Adam with bias correction, as torch.optim.Adam (L2 weight decay added to the gradient,
    not decoupled as in AdamW).

    Per step t: ``m = b1 m + (1-b1) g``; ``v = b2 v + (1-b2) g^2``;
    ``W -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``.
    """

    name = "adam"

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, schedule=None):
        super().__init__(lr, weight_decay, schedule)
        self.beta1 = _float(beta1, "beta1", 0.0, 1.0)
        self.beta2 = _float(beta2, "beta2", 0.0, 1.0)
        self.eps = _float(eps, "eps", 0.0, None, low_open=True)

    def states_per_param(self):
        return 2

    def options(self, lr):
        return {"lr": float(lr), "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps,
                "weight_decay": self.weight_decay}

    def get_config(self):
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps,
                "weight_decay": self.weight_decay}


OPTIMIZERS = {"SGD": SGD, "Adam": Adam}


class EarlyStopping:
    """Stops ``fit`` when the watched loss (val_loss with validation data, else loss) has not
    improved by more than ``min_delta`` for ``patience`` epochs; with ``restore_best`` the
    network ends with the weights of its best epoch."""

    def __init__(self, patience=5, min_delta=0.0, restore_best=True):
        self.patience = _int(patience, "patience", 0)
        self.min_delta = _float(min_delta, "min_delta", 0.0, None)
        if not isinstance(restore_best, (bool, np.bool_)):
            raise TypeError(f"restore_best must be a bool, got {type(restore_best).__name__}")
        self.restore_best = bool(restore_best)

    def __repr__(self):
        return (f"EarlyStopping(patience={self.patience}, min_delta={self.min_delta}, "
                f"restore_best={self.restore_best})")
