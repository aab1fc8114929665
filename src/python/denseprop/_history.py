"""Per-epoch training records and the divergence error."""

from __future__ import annotations

from typing import Any


class History:
    """What ``Network.fit`` records, one entry per epoch.

    Attributes
    ----------
    epoch : list of int
        The epoch's number, counted over every ``fit`` of the network (0-based).
    loss, val_loss : list of float
        The mean training loss (from the forward passes the epoch made, before each batch's
        update) and the loss on the validation rows after the epoch.
    accuracy, val_accuracy : list of float
        Filled for cross-entropy losses.
    r2, val_r2 : list of float
        R^2 averaged over the outputs (as scikit-learn's ``r2_score``), filled for the other losses.
    time : list of float
        Each epoch's wall time in seconds.
    lr : list of float
        Each epoch's learning rate.
    records : list of dict
        The same numbers as one dict per epoch.
    stopped_early : bool
        Whether early stopping ended the fit.
    best_epoch : int or None
        The epoch with the best watched loss, under early stopping.

    The ``val_*`` lists are empty without validation data.
    """

    FIELDS = ("epoch", "loss", "val_loss", "accuracy", "val_accuracy", "r2", "val_r2", "time", "lr")

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.stopped_early = False
        self.best_epoch: int | None = None
        self.epoch: list[int] = []
        self.loss: list[float] = []
        self.val_loss: list[float] = []
        self.accuracy: list[float] = []
        self.val_accuracy: list[float] = []
        self.r2: list[float] = []
        self.val_r2: list[float] = []
        self.time: list[float] = []
        self.lr: list[float] = []

    def append(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        for field in self.FIELDS:
            if field in record:
                getattr(self, field).append(record[field])

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        last = f", last loss {self.loss[-1]:.6g}" if self.loss else ""
        return f"History({len(self)} epochs{last})"

    def plot(self, ax: Any = None) -> Any:
        """Draws the loss per epoch, and accuracy or R^2 on a second axis when recorded; marks
        the best epoch when early stopping restored it. Returns the matplotlib Axes of the loss.

        Needs matplotlib (``pip install matplotlib``); it is imported only here.
        """
        try:
            import matplotlib.pyplot as plt
            from matplotlib.ticker import MaxNLocator
        except ImportError as err:
            raise ImportError("History.plot needs matplotlib: pip install matplotlib "
                              "(or pip install 'denseprop[plot]')") from err
        if ax is None:
            _, ax = plt.subplots(figsize=(7, 4))
        epochs = [e + 1 for e in self.epoch]  # 1-based, as the progress lines count them
        ax.plot(epochs, self.loss, color="C0", label="loss")
        if self.val_loss:
            ax.plot(epochs, self.val_loss, color="C0", linestyle="--", label="val_loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        handles, labels = ax.get_legend_handles_labels()
        score = "accuracy" if self.accuracy else "r2" if self.r2 else None
        if score is not None:
            right = ax.twinx()
            right.plot(epochs, getattr(self, score), color="C1", label=score)
            if getattr(self, "val_" + score):
                right.plot(epochs, getattr(self, "val_" + score), color="C1", linestyle="--", label="val_" + score)
            right.set_ylabel("accuracy" if score == "accuracy" else "R²")
            more = right.get_legend_handles_labels()
            handles, labels = handles + more[0], labels + more[1]
        if self.best_epoch is not None and self.best_epoch in self.epoch:
            best = ax.axvline(self.best_epoch + 1, color="0.5", linestyle=":", label="best epoch")
            handles, labels = handles + [best], labels + ["best epoch"]
        # Below the axes, so it never hides a curve.
        ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=min(len(labels), 5),
                  frameon=False)
        ax.figure.tight_layout()
        return ax


class DivergenceError(ArithmeticError):
    """Training produced a NaN or infinite loss or weight.

    ``epoch`` is the (0-based) epoch of this fit in which it happened and ``history`` the
    records of the epochs before it; the network keeps the weights of the last finite epoch.
    """

    def __init__(self, message: str, epoch: int, history: History) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.history = history
