"""Optimizers, learning-rate schedules and early stopping.

The optimizer objects only hold hyper-parameters and state arrays; the update itself runs in
the backend's ``train_epoch`` (C++ or NumPy), inside the epoch loop, as the row named by the
optimizer's ``_kind`` in the backend's optimizer table. Definitions follow PyTorch's
``torch.optim.SGD``, ``Adam`` and ``AdamW``; weight decay applies to the weights, never the
biases.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _core
from ._checks import boolean, integer, real


# --------------------------------------------------------------------------------------
# Learning-rate schedules: each epoch's rate from the base rate, stepped once per epoch.

class Schedule:
    """Base class: ``lr(base_lr)`` is the rate for the coming epoch; ``step(monitored)``
    is called after each epoch with the watched loss (val_loss, else loss)."""


    def lr(self, base_lr: float) -> float:
        raise NotImplementedError

    def step(self, monitored: float) -> None:
        raise NotImplementedError

    def get_state(self) -> dict[str, Any]:
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restores get_state(); raises ValueError for anything that is not such a state."""
        expected = self.get_state()
        if not isinstance(state, dict) or set(state) != set(expected):
            raise ValueError(f"a {type(self).__name__} state needs the keys {sorted(expected)}")
        for key, value in state.items():
            setattr(self, key, integer(value, f"schedule state {key!r}", 0))

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError


class Constant(Schedule):
    """The base rate every epoch."""

    def lr(self, base_lr: float) -> float:
        return base_lr

    def step(self, monitored: float) -> None:
        pass

    def get_config(self) -> dict[str, Any]:
        return {}


class InverseScaling(Schedule):
    """lr = base_lr / (epoch + 1) ** power_t, with epoch the epochs completed so far.

    scikit-learn's 'invscaling' counts samples seen instead of epochs; this counts epochs,
    so one setting behaves the same whatever the data size.
    """

    def __init__(self, power_t: float = 0.5) -> None:
        self.power_t = real(power_t, "power_t", 0.0, None)
        self.epochs = 0

    def lr(self, base_lr: float) -> float:
        return float(base_lr / (self.epochs + 1) ** self.power_t)

    def step(self, monitored: float) -> None:
        self.epochs += 1

    def get_state(self) -> dict[str, Any]:
        return {"epochs": self.epochs}

    def get_config(self) -> dict[str, Any]:
        return {"power_t": self.power_t}


class StepDecay(Schedule):
    """lr = base_lr * gamma ** (epoch // step_size), as PyTorch's StepLR."""

    def __init__(self, step_size: int, gamma: float = 0.1) -> None:
        self.step_size = integer(step_size, "step_size", 1)
        self.gamma = real(gamma, "gamma", 0.0, None, low_open=True)
        self.epochs = 0

    def lr(self, base_lr: float) -> float:
        return float(base_lr * self.gamma ** (self.epochs // self.step_size))

    def step(self, monitored: float) -> None:
        self.epochs += 1

    def get_state(self) -> dict[str, Any]:
        return {"epochs": self.epochs}

    def get_config(self) -> dict[str, Any]:
        return {"step_size": self.step_size, "gamma": self.gamma}


class ReduceOnPlateau(Schedule):
    """Multiplies the rate by ``factor`` after ``patience`` epochs without improvement.

    An epoch improves when the watched loss drops below ``best * (1 - threshold)``
    (PyTorch's ReduceLROnPlateau in 'min' mode with a relative threshold); the rate
    never goes below ``min_lr``.
    """

    def __init__(self, factor: float = 0.1, patience: int = 10, threshold: float = 1e-4, min_lr: float = 0.0) -> None:
        self.factor = real(factor, "factor", 0.0, 1.0, low_open=True)
        self.patience = integer(patience, "patience", 0)
        self.threshold = real(threshold, "threshold", 0.0, None)
        self.min_lr = real(min_lr, "min_lr", 0.0, None)
        self.scale = 1.0
        self.best = math.inf
        self.bad_epochs = 0

    def lr(self, base_lr: float) -> float:
        return max(base_lr * self.scale, self.min_lr)

    def step(self, monitored: float) -> None:
        if monitored < self.best * (1.0 - self.threshold) or self.best == math.inf:
            self.best = monitored
            self.bad_epochs = 0
            return
        self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            self.scale *= self.factor
            self.bad_epochs = 0

    def get_state(self) -> dict[str, Any]:
        return {"scale": self.scale, "best": self.best if math.isfinite(self.best) else None,
                "bad_epochs": self.bad_epochs}

    def set_state(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or set(state) != {"scale", "best", "bad_epochs"}:
            raise ValueError("a ReduceOnPlateau state needs the keys best, bad_epochs and scale")
        self.scale = real(state["scale"], "schedule state 'scale'", 0.0, 1.0, low_open=True, high_open=False)
        self.best = math.inf if state["best"] is None else real(state["best"], "schedule state 'best'")
        self.bad_epochs = integer(state["bad_epochs"], "schedule state 'bad_epochs'", 0)

    def get_config(self) -> dict[str, Any]:
        return {"factor": self.factor, "patience": self.patience, "threshold": self.threshold,
                "min_lr": self.min_lr}



# --------------------------------------------------------------------------------------
# Optimizers

class Optimizer:
    """Base class. ``state`` holds the per-parameter arrays (allocated on first use);
    ``step`` counts the updates taken; ``epochs`` the epochs trained.

    A subclass names its update with ``_kind`` (a row of the backends' optimizer tables) and
    lists its hyper-parameters in ``_hyper``: they are its constructor's arguments besides
    ``schedule``, its saved configuration and the fields of the backend's OptimizerConfig.
    """

    _kind = ""
    _hyper: tuple[str, ...] = ("lr", "weight_decay")

    def __init__(self, lr: float, weight_decay: float, schedule: Schedule | None) -> None:
        self.lr = real(lr, "lr", 0.0, None, low_open=True)
        self.weight_decay = real(weight_decay, "weight_decay", 0.0, None)
        if schedule is not None and not isinstance(schedule, Schedule):
            raise TypeError("schedule must be a denseprop schedule such as dp.StepDecay(10), "
                            f"got {type(schedule).__name__}")
        self.schedule: Schedule = schedule if schedule is not None else Constant()
        self.state: list[np.ndarray[Any, Any]] = []
        self.step = 0
        self.epochs = 0
        self._owner: Any = None

    def _config(self, lr: float) -> Any:
        """The backend's OptimizerConfig for an epoch at rate lr."""
        config = _core.OptimizerConfig(self._kind)
        for key in self._hyper:
            setattr(config, key, getattr(self, key))
        config.lr = float(lr)
        return config

    def states_per_param(self) -> int:
        """State arrays each parameter keeps (the backend's rule for this optimizer)."""
        return self._config(self.lr).states()

    def current_lr(self) -> float:
        """The rate of the coming epoch, from ``lr`` and the schedule."""
        return self.schedule.lr(self.lr)

    def _attach(self, owner: Any, params: list[np.ndarray[Any, Any]]) -> None:
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

    def get_config(self) -> dict[str, Any]:
        """The hyper-parameters, as the constructor takes them."""
        return {key: getattr(self, key) for key in self._hyper}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay.

    Per step, as torch.optim.SGD with dampening 0: ``g = dW + weight_decay * W``;
    ``v = momentum * v + g``; ``W -= lr * (g + momentum * v if nesterov else v)``.
    Without momentum that is ``W = (1 - lr * weight_decay) * W - lr * dW``.
    Biases get the same update without weight decay.
    """

    _kind = "sgd"
    _hyper = ("lr", "momentum", "nesterov", "weight_decay")

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0,
                 schedule: Schedule | None = None) -> None:
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

    _kind = "adam"
    _hyper = ("lr", "beta1", "beta2", "eps", "weight_decay")

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.0, schedule: Schedule | None = None) -> None:
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

    _kind = "adamw"

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.01, schedule: Schedule | None = None) -> None:
        super().__init__(lr, beta1, beta2, eps, weight_decay, schedule)


class EarlyStopping:
    """Stops ``fit`` when the watched loss (``val_loss`` with validation data, else ``loss``) has
    not improved by more than ``min_delta`` for more than ``patience`` epochs in a row; with
    ``restore_best`` the network ends with the weights of its best epoch.

    The count is scikit-learn's ``n_iter_no_change`` rule (``ReduceOnPlateau`` counts the same
    way): training stops after ``patience + 1`` epochs without improvement. With
    ``EarlyStopping(patience=2)`` and validation losses 1.0, 0.9, 0.95, 0.93, 0.92, 0.91, epochs
    3, 4 and 5 fail to beat 0.9, so ``fit`` stops after epoch 5 and restores epoch 2's weights.
    Keras's ``EarlyStopping(patience=2)`` counts differently: it stops after ``patience`` epochs
    without improvement, here after epoch 4; ``dp.EarlyStopping(patience=p - 1)`` matches Keras's
    ``patience=p``.

    Parameters
    ----------
    patience : int, default 5
        Epochs without improvement that are tolerated; one more stops training.
    min_delta : float, default 0.0
        An epoch improves when its loss is below the best so far minus ``min_delta``.
    restore_best : bool, default True
        Restore the weights of the best epoch when training stops (early or not).
    """

    def __init__(self, patience: int = 5, min_delta: float = 0.0, restore_best: bool = True) -> None:
        self.patience = integer(patience, "patience", 0)
        self.min_delta = real(min_delta, "min_delta", 0.0, None)
        self.restore_best = boolean(restore_best, "restore_best")

    def __repr__(self) -> str:
        return (f"EarlyStopping(patience={self.patience}, min_delta={self.min_delta}, "
                f"restore_best={self.restore_best})")


def subclasses(base: type) -> dict[str, type]:
    """Every subclass of base, by class name: how model files find an optimizer or a schedule."""
    found: dict[str, type] = {}
    cls: type
    for cls in base.__subclasses__():
        found[cls.__name__] = cls
        found.update(subclasses(cls))
    return found
