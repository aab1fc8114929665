"""Optimizers, learning-rate schedules and early stopping.

The optimizer objects only hold hyper-parameters and state arrays; the update itself runs in
the backend's ``train_epoch`` (C++ or NumPy), inside the epoch loop, as the row named by the
optimizer's ``kind`` in the backend's optimizer table. Definitions follow PyTorch's
``torch.optim.SGD``, ``Adam`` and ``AdamW``; weight decay applies to the weights, never the
biases.
"""

from __future__ import annotations

import math

import numpy as np

from . import _core
from ._checks import boolean, integer, real


# --------------------------------------------------------------------------------------
# Learning-rate schedules: each epoch's rate from the base rate, stepped once per epoch.

class Schedule:
    """Base class: ``lr(base_lr)`` is the rate for the coming epoch; ``step(monitored)``
    is called after each epoch with the watched loss (val_loss, else loss)."""

    registry: dict[str, type[Schedule]] = {}  # class name -> class, for model files

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        Schedule.registry[cls.__name__] = cls

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
            setattr(self, key, integer(value, f"schedule state {key!r}", 0))

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
        self.power_t = real(power_t, "power_t", 0.0, None)
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
        self.step_size = integer(step_size, "step_size", 1)
        self.gamma = real(gamma, "gamma", 0.0, None, low_open=True)
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
        self.factor = real(factor, "factor", 0.0, 1.0, low_open=True)
        self.patience = integer(patience, "patience", 0)
        self.threshold = real(threshold, "threshold", 0.0, None)
        self.min_lr = real(min_lr, "min_lr", 0.0, None)
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
        self.scale = real(state["scale"], "schedule state 'scale'", 0.0, 1.0, low_open=True, high_open=False)
        self.best = math.inf if state["best"] is None else real(state["best"], "schedule state 'best'")
        self.bad_epochs = integer(state["bad_epochs"], "schedule state 'bad_epochs'", 0)

    def get_config(self):
        return {"factor": self.factor, "patience": self.patience, "threshold": self.threshold,
                "min_lr": self.min_lr}



# --------------------------------------------------------------------------------------
# Optimizers

class Optimizer:
    """Base class. ``state`` holds the per-parameter arrays (allocated on first use);
    ``step`` counts the updates taken; ``epochs`` the epochs trained.

    A subclass names its update with ``kind`` (a row of the backends' optimizer tables) and
    lists its hyper-parameters in ``HYPER``: they are its constructor's arguments besides
    ``schedule``, its saved configuration and the fields of the backend's OptimizerConfig.
    """

    kind = ""
    HYPER: tuple[str, ...] = ("lr", "weight_decay")
    registry: dict[str, type[Optimizer]] = {}  # class name -> class, for model files

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        Optimizer.registry[cls.__name__] = cls

    def __init__(self, lr, weight_decay, schedule):
        self.lr = real(lr, "lr", 0.0, None, low_open=True)
        self.weight_decay = real(weight_decay, "weight_decay", 0.0, None)
        if schedule is not None and not isinstance(schedule, Schedule):
            raise TypeError("schedule must be a denseprop schedule such as dp.StepDecay(10), "
                            f"got {type(schedule).__name__}")
        self.schedule = schedule if schedule is not None else Constant()
        self.state: list[np.ndarray] = []
        self.step = 0
        self.epochs = 0
        self._owner = None

    def _config(self, lr):
        """The backend's OptimizerConfig for an epoch at rate lr."""
        config = _core.OptimizerConfig(self.kind)
        for key in self.HYPER:
            setattr(config, key, getattr(self, key))
        config.lr = float(lr)
        return config

    def states_per_param(self):
        """State arrays each parameter keeps (the backend's rule for this optimizer)."""
        return self._config(self.lr).states()

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
        return {key: getattr(self, key) for key in self.HYPER}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay.

    Per step, as torch.optim.SGD with dampening 0: ``g = dW + weight_decay * W``;
    ``v = momentum * v + g``; ``W -= lr * (g + momentum * v if nesterov else v)``.
    Without momentum that is ``W = (1 - lr * weight_decay) * W - lr * dW``.
    Biases get the same update without weight decay.
    """

    kind = "sgd"
    HYPER = ("lr", "momentum", "nesterov", "weight_decay")

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0, schedule=None):
        super().__init__(lr, weight_decay, schedule)
        self.momentum = real(momentum, "momentum", 0.0, 1.0)
        self.nesterov = boolean(nesterov, "nesterov")
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0, e.g. SGD(momentum=0.9, nesterov=True)")


class Adam(Optimizer):
    """Adam with bias correction, as torch.optim.Adam (L2 weight decay added to the gradient).

    Per step t: ``g = dW + weight_decay * W``; ``m = b1 m + (1-b1) g``; ``v = b2 v + (1-b2) g^2``;
    ``W -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``.
    """

    kind = "adam"
    HYPER = ("lr", "beta1", "beta2", "eps", "weight_decay")

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, schedule=None):
        super().__init__(lr, weight_decay, schedule)
        self.beta1 = real(beta1, "beta1", 0.0, 1.0)
        self.beta2 = real(beta2, "beta2", 0.0, 1.0)
        self.eps = real(eps, "eps", 0.0, None, low_open=True)


class AdamW(Adam):
    """Adam with decoupled weight decay, as torch.optim.AdamW.

    Per step t, with the epoch's (scheduled) rate lr: first ``W *= 1 - lr * weight_decay``,
    then the Adam update of ``dW`` without decay. Biases are never decayed (torch with a
    parameter group for the biases at ``weight_decay=0``).
    """

    kind = "adamw"

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01, schedule=None):
        super().__init__(lr, beta1, beta2, eps, weight_decay, schedule)


class EarlyStopping:
    """Stops ``fit`` when the watched loss (val_loss with validation data, else loss) has not
    improved by more than ``min_delta`` for ``patience`` epochs; with ``restore_best`` the
    network ends with the weights of its best epoch."""

    def __init__(self, patience=5, min_delta=0.0, restore_best=True):
        self.patience = integer(patience, "patience", 0)
        self.min_delta = real(min_delta, "min_delta", 0.0, None)
        self.restore_best = boolean(restore_best, "restore_best")

    def __repr__(self):
        return (f"EarlyStopping(patience={self.patience}, min_delta={self.min_delta}, "
                f"restore_best={self.restore_best})")
