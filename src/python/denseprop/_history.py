"""Per-epoch training records and the divergence error."""

from __future__ import annotations


class History:
    """What ``Network.fit`` records, one entry per epoch.

    ``loss``/``val_loss`` are the mean training loss (from the forward passes the epoch
    made, before each batch's update) and the validation loss after the epoch;
    ``accuracy``/``val_accuracy`` are filled for cross-entropy losses, ``r2``/``val_r2``
    (R^2, averaged over outputs as scikit-learn's ``r2_score``) for the others; ``time`` is
    each epoch's wall time in seconds and ``lr`` its learning rate. ``val_*`` lists are
    empty without validation data. ``records`` holds the same numbers as one dict per epoch.
    """

    FIELDS = ("epoch", "loss", "val_loss", "accuracy", "val_accuracy", "r2", "val_r2", "time", "lr")

    def __init__(self):
        self.records: list[dict] = []
        self.stopped_early = False
        self.best_epoch: int | None = None
        for field in self.FIELDS:
            setattr(self, field, [])

    def append(self, record: dict) -> None:
        self.records.append(record)
        for field in self.FIELDS:
            if field in record:
                getattr(self, field).append(record[field])

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        last = f", last loss {self.loss[-1]:.6g}" if self.loss else ""
        return f"History({len(self)} epochs{last})"

    def plot(self, ax=None):
        """Draws the training (and validation) loss per epoch; returns the matplotlib Axes.

        Needs matplotlib (``pip install matplotlib``); it is imported only here.
        """
        try:
            import matplotlib.pyplot as plt
        except ImportError as err:
            raise ImportError("History.plot needs matplotlib: pip install matplotlib "
                              "(or pip install 'denseprop[plot]')") from err
        if ax is None:
            _, ax = plt.subplots()
        ax.plot(self.epoch, self.loss, label="loss")
        if self.val_loss:
            ax.plot(self.epoch, self.val_loss, label="val_loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.legend()
        return ax


class DivergenceError(ArithmeticError):
    """Training produced a NaN or infinite loss or weight.

    ``epoch`` is the (0-based) epoch of this fit in which it happened and ``history`` the
    records of the epochs before it; the network keeps the weights of the last finite epoch.
    """

    def __init__(self, message, epoch, history):
        super().__init__(message)
        self.epoch = epoch
        self.history = history
