"""Table models: a network together with the preprocessing of the table it was trained on.

    from denseprop.tabular import TableModel
    model = TableModel.load("model.npz")        # written by `denseprop train`
    model.predict(df)                           # a pandas DataFrame or a dict of columns
    model.predict_proba(df), model.network, model.features, model.classes, model.task

What training does with a table (``train_table_model``, run by ``denseprop train``):

* numeric columns (integers, floats, booleans) are standardised with the training rows' mean
  and standard deviation (a constant column is only centred);
* text columns are one-hot encoded over the categories of the training rows (at most
  ``MAX_CATEGORIES``); a category never seen in training encodes as all zeros, with one warning;
* a regression target is standardised for training and predictions come back in its units;
  class labels (text, integers, booleans) come back as they were;
* missing values are refused, with their count and rows: fill them in or drop the column.

The model file is the same versioned, checksummed, pickle-free .npz as ``Network.save``, with the
preprocessing in a ``table`` entry of its metadata.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np

from . import _io
from ._network import Network
from ._table_io import Table, TableError, parses_as_number, read_table, rows_text, table_from_columns

TASKS = ("classification", "regression")
# --task auto: an integer target with at most this many distinct values is a set of classes.
AUTO_MAX_CLASSES = 20
# One-hot encoding a column with more distinct values than this is almost always an ID column.
MAX_CATEGORIES = 1000
LOG_LOSS_EPS = 1e-15
DEFAULT_LR = {"adam": 0.001, "sgd": 0.01}
_NUMERIC, _CATEGORICAL = "numeric", "categorical"
_ENCODE_ROWS = 16384


def _fail(table, message):
    raise TableError(f"{table.source}: {message}")


# --------------------------------------------------------------------------------------
# Columns -> numbers.

def _numeric_values(table, name, rows=None):
    """A column as float64 values; TableError naming the first cell that is not a number."""
    col = table[name]
    if col.kind == "text":
        numbers = np.array([parses_as_number(level) for level in col.levels], dtype=bool)
        bad = np.flatnonzero((col.codes >= 0) & ~numbers[np.maximum(col.codes, 0)])
        if len(bad):
            value = col.levels[col.codes[bad[0]]]
            more = f" (and {len(bad) - 1:,} more cells that are not numbers)" if len(bad) > 1 else ""
            _fail(table, f"column {name!r} {rows_text(bad[:1])} holds {value!r}, which is not a number{more}; "
                  "fix it or --drop the column")
        levels = np.array([float(level) for level in col.levels] or [0.0])
        values = np.where(col.codes >= 0, levels[np.maximum(col.codes, 0)], np.nan)
    elif col.is_number:
        values = col.values.astype(np.float64, copy=False)
    else:
        _fail(table, f"column {name!r} holds {col.type_name}, which denseprop cannot use; --drop it")
    infinite = np.flatnonzero(np.isinf(values))
    if len(infinite):
        _fail(table, f"column {name!r} {rows_text(infinite)} holds {values[infinite[0]]}; "
              "replace infinite values with finite numbers")
    return values if rows is None else values[rows]


def _mostly_numbers(col):
    """A text column most of whose cells read as numbers: a numeric column with typos."""
    if col.kind != "text" or not len(col.levels):
        return False
    counts = np.bincount(col.codes[col.codes >= 0], minlength=len(col.levels))
    numbers = np.array([parses_as_number(level) for level in col.levels], dtype=bool)
    return counts[numbers].sum() * 2 > counts.sum()


def _check_missing(table, names):
    """TableError with the count and rows of every missing value in the named columns."""
    parts, total = [], 0
    for name in names:
        rows = table[name].missing_rows()
        if len(rows):
            total += len(rows)
            parts.append(f"column {name!r} {rows_text(rows, 3)}")
    if total:
        _fail(table, f"{total:,} missing value{'s' if total > 1 else ''} ({'; '.join(parts)}); denseprop does "
              "not fill them in: fill or drop those rows, or --drop the column")


def _label_text(value):
    """How a class label is written in column names (proba_<label>) and messages."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    return str(value.item() if hasattr(value, "item") else value)


# --------------------------------------------------------------------------------------
# Preprocessing specs: plain JSON-ready dicts, stored in the model file.

def _fit_feature(table, name, rows):
    col = table[name]
    if col.kind == "other":
        _fail(table, f"column {name!r} holds {col.type_name}, which denseprop cannot use; --drop it")
    if col.kind == "text" and not _mostly_numbers(col):
        present = col.codes[rows]
        used = np.unique(present[present >= 0])
        categories = sorted(str(level) for level in col.levels[used])
        if len(categories) > MAX_CATEGORIES:
            _fail(table, f"column {name!r} holds {len(categories):,} distinct text values; one-hot encoding "
                  f"takes at most {MAX_CATEGORIES:,} (an ID or free-text column?): --drop it")
        return {"name": name, "kind": _CATEGORICAL, "categories": categories}
    values = _numeric_values(table, name, rows)
    mean = float(values.mean())
    std = float(values.std())
    return {"name": name, "kind": _NUMERIC, "mean": mean, "scale": std if std > 0 else 1.0}


def _width(feature):
    return 1 if feature["kind"] == _NUMERIC else len(feature["categories"])


def _category_codes(col, categories):
    """Per row: the index of its category, -1 for an unseen one (missing cells were refused)."""
    if col.kind != "text":
        col = col.as_text()
    index = {c: i for i, c in enumerate(categories)}
    level_codes = np.array([index.get(str(level), -1) for level in col.levels] + [-1], dtype=np.int64)
    return level_codes[col.codes]


class TableModel:
    """A trained network plus everything ``predict`` needs: the columns in training order, their
    scaling and categories, the classes and the task."""

    def __init__(self, network, task, target, features, classes=None, target_mean=None, target_scale=None,
                 training=None):
        if task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        self.network = network
        self.task = task
        self.target = target
        self._features = [dict(f) for f in features]
        self._classes = None if classes is None else np.asarray(classes)
        self.target_mean, self.target_scale = target_mean, target_scale
        self.training = dict(training or {})
        width = sum(_width(f) for f in self._features)
        if width != network.n_in:
            raise ValueError(f"the features encode to {width} inputs but the network takes {network.n_in}")

    @property
    def features(self):
        """The input column names, in training order."""
        return [f["name"] for f in self._features]

    @property
    def classes(self):
        """The class labels (classification), in the order of predict_proba's columns; else None."""
        return None if self._classes is None else self._classes.copy()

    @property
    def feature_specs(self):
        """Per input column: its name and kind, with mean and scale (numeric) or categories."""
        return [dict(f) for f in self._features]

    def __repr__(self):
        return (f"TableModel(task={self.task!r}, target={self.target!r}, features={self.features!r}, "
                f"network={self.network!r})")

    # ------------------------------------------------------------ persistence

    def _table_meta(self):
        meta = {"task": self.task, "target": self.target, "features": self._features, "training": self.training}
        if self._classes is not None:
            kind = self._classes.dtype.kind
            meta["class_type"] = {"b": "bool", "i": "int", "u": "int", "f": "float"}.get(kind, "str")
            meta["classes"] = [c.item() if hasattr(c, "item") else str(c) for c in self._classes]
        if self.target_scale is not None:
            meta["target_mean"], meta["target_scale"] = self.target_mean, self.target_scale
        return meta

    def save(self, path):
        """Writes the model atomically to exactly `path` (a Network.save file plus the table entry)."""
        self.network._check_idle("save")
        _io.save_network(self.network, path, table=self._table_meta())

    @classmethod
    def load(cls, path, backend=None):
        """Reads a model written by `denseprop train`. ValueError for anything else, including a
        plain Network.save file (load that with denseprop.Network.load)."""
        net, meta = _io.load_model(Network, path, backend)
        if meta is None:
            raise ValueError(f"{path} is a plain network (Network.save) without a table's preprocessing; "
                             "load it with denseprop.Network.load")
        try:
            return cls._from_meta(net, meta)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ValueError(f"cannot load {path}: its table entry is inconsistent "
                             f"({type(err).__name__}: {err})") from None

    @classmethod
    def _from_meta(cls, net, meta):
        classes = None
        if "classes" in meta:
            types = {"bool": bool, "int": np.int64, "float": np.float64, "str": object}
            classes = np.array(meta["classes"], dtype=types[meta["class_type"]])
        for f in meta["features"]:
            if f["kind"] == _NUMERIC:
                if not (math.isfinite(f["mean"]) and math.isfinite(f["scale"]) and f["scale"] > 0):
                    raise ValueError(f"feature {f['name']!r} has an invalid scaling")
            elif f["kind"] != _CATEGORICAL or not isinstance(f["categories"], list):
                raise ValueError(f"feature {f['name']!r} has an unknown kind")
        return cls(net, meta["task"], meta["target"], meta["features"], classes, meta.get("target_mean"),
                   meta.get("target_scale"), meta.get("training"))

    # ------------------------------------------------------------ prediction

    @staticmethod
    def _as_table(table):
        return table if isinstance(table, Table) else table_from_columns(table)

    def text_columns(self, target=None):
        """The columns to read as text: categorical features, and the target (named `target`
        when it is not the training target's name) when the classes are text."""
        names = [f["name"] for f in self._features if f["kind"] == _CATEGORICAL]
        if self._classes is not None and self._classes.dtype == object:
            names.append(self.target if target is None else target)
        return names

    def encode(self, table, *, allowed_extra=()):
        """The network's input (n, n_in) for a table: columns found by name, scaled and one-hot
        encoded. Warns once about unused columns and once about unseen categories."""
        table = self._as_table(table)
        missing = [name for name in self.features if name not in table]
        if missing:
            _fail(table, f"missing column{'s' if len(missing) > 1 else ''} "
                  f"{', '.join(repr(m) for m in missing)} that the model was trained on")
        extra = [name for name in table.names if name not in set(self.features) | set(allowed_extra)]
        if extra:
            warnings.warn(f"{table.source}: ignoring column{'s' if len(extra) > 1 else ''} the model does not "
                          f"use: {', '.join(repr(e) for e in extra)}", UserWarning, stacklevel=4)
        _check_missing(table, self.features)
        X = np.zeros((table.n_rows, self.network.n_in), dtype=self.network.dtype)
        unseen, numeric = [], []
        position = 0
        for f in self._features:
            if f["kind"] == _NUMERIC:
                numeric.append((position, _numeric_values(table, f["name"]), f["mean"], f["scale"]))
            else:
                codes = _category_codes(table[f["name"]], f["categories"])
                known = np.flatnonzero(codes >= 0)
                X[known, position + codes[known]] = 1
                if len(known) < len(codes):
                    rows = np.flatnonzero(codes < 0)
                    col = table[f["name"]] if table[f["name"]].kind == "text" else table[f["name"]].as_text()
                    example = col.levels[col.codes[rows[0]]]
                    unseen.append(f"{f['name']!r}: {example!r} in {rows_text(rows, 3)}")
            position += _width(f)
        # Blocks of rows, so that writing column after column into X stays within the cache.
        for start in range(0, table.n_rows, _ENCODE_ROWS):
            block = X[start:start + _ENCODE_ROWS]
            for position, values, mean, scale in numeric:
                block[:, position] = (values[start:start + _ENCODE_ROWS] - mean) / scale
        if unseen:
            warnings.warn(f"{table.source}: categories not seen in training are encoded as all zeros "
                          f"({'; '.join(unseen)})", UserWarning, stacklevel=4)
        return X

    def _outputs(self, table, allowed_extra=()):
        X = self.encode(table, allowed_extra=allowed_extra)
        return self.network.predict(X)

    def _proba(self, out):
        if self.network.output_activation == "softmax":
            return out
        return np.hstack([1 - out, out])

    def predict(self, table):
        """Predictions for each row: class labels as in training, or targets in their units."""
        return self._predict_from(self._outputs(table))

    def _predict_from(self, out):
        if self.task == "classification":
            return self._classes[self._proba(out).argmax(axis=1)]
        return out[:, 0].astype(np.float64) * self.target_scale + self.target_mean

    def predict_proba(self, table):
        """Class probabilities (n, n_classes), columns in the order of ``classes``."""
        if self.task != "classification":
            raise ValueError("predict_proba needs a classification model; this one is a regression model")
        return self._proba(self._outputs(table))

    def predict_columns(self, table, proba=False):
        """{column name: values} for `denseprop predict`: the target's column of predictions,
        then, with proba, one proba_<class> column per class."""
        out = self._outputs(table)
        columns = {self.target: self._predict_from(out)}
        if proba:
            if self.task != "classification":
                raise ValueError("--proba needs a classification model; this one is a regression model")
            p = self._proba(out)
            for j, c in enumerate(self._classes):
                columns[f"proba_{_label_text(c)}"] = p[:, j]
        return columns

    def evaluate(self, table, target=None):
        """Metrics against the true values in column `target` (default: the training target's
        name): accuracy and log_loss (classification); r2, mse and mae in the target's units
        (regression); and rows."""
        table = self._as_table(table)
        target = self.target if target is None else target
        if target not in table:
            _fail(table, f"no column {target!r} with the true values, which evaluate needs")
        _check_missing(table, [target])
        truth = self._class_index(table, target) if self.task == "classification" else \
            _numeric_values(table, target)
        return self._metrics(self._outputs(table, allowed_extra=(target,)), truth)

    def _metrics(self, out, truth):
        """evaluate's metrics from the network's outputs and the true class indices or targets."""
        if self.task == "regression":
            return regression_metrics(truth, self._predict_from(out))
        p = self._proba(out).astype(np.float64)
        true_p = np.clip(p[np.arange(len(truth)), truth], LOG_LOSS_EPS, 1.0)
        return {"accuracy": float(np.mean(p.argmax(axis=1) == truth)),
                "log_loss": float(-np.mean(np.log(true_p))), "rows": int(len(truth))}

    def _class_index(self, table, target):
        col = table[target]
        if self._classes.dtype == object or col.kind == "text":
            codes = _category_codes(col, [_label_text(c) for c in self._classes])
        else:  # numbers against numeric classes, so that 1.0 finds the class 1
            lookup = {c.item(): i for i, c in enumerate(self._classes)}
            codes = np.array([lookup.get(v, -1) for v in col.values.tolist()], dtype=np.int64)
        bad = np.flatnonzero(codes < 0)
        if len(bad):
            text = col if col.kind == "text" else col.as_text()
            value = text.levels[text.codes[bad[0]]]
            _fail(table, f"column {target!r} {rows_text(bad[:1])} holds the class {value!r}, "
                  f"which the model was not trained on (its classes: "
                  f"{', '.join(_label_text(c) for c in self._classes[:10])})")
        return codes

    # ------------------------------------------------------------ export

    def onnx_inputs(self):
        """[(input name, kind, width)] of the exported graph: one numeric input "X" for an all-numeric
        table, else one (n, 1) input per column, numbers as floats and text as strings."""
        if all(f["kind"] == _NUMERIC for f in self._features):
            return [("X", _NUMERIC, len(self._features))]
        return [(f["name"], f["kind"], 1) for f in self._features]

    def to_onnx(self, path=None, *, opset=17):
        """The model with its preprocessing as an ONNX graph (written to `path` when given).

        Inputs: see onnx_inputs. Outputs as skl2onnx names them: "label" (n,) and
        "probabilities" (n, n_classes) for classification, "variable" (n, 1) for regression.
        Unseen categories encode as all zeros, without predict's warning.
        """
        from . import _onnx
        g = _onnx.GraphBuilder(self.network.dtype, opset)
        inputs = self.onnx_inputs()
        outputs = ("label", "probabilities") if self.task == "classification" else ("variable",)
        clash = [name for name, _, _ in inputs if name in outputs or name.startswith(g.prefix)]
        if clash:
            raise ValueError(f"cannot export: column {clash[0]!r} would clash with a name of the graph; "
                             "rename it and train again")
        string = g.onnx.TensorProto.STRING
        infos = []
        if len(inputs) == 1 and inputs[0][0] == "X":
            infos.append(g.tensor_info("X", g.elem_type, ["N", len(self._features)]))
            x = _onnx.add_scaling(g, "X", [[f["mean"] for f in self._features]],
                                  [[f["scale"] for f in self._features]])
        else:
            pieces = []
            for f in self._features:
                if f["kind"] == _NUMERIC:
                    infos.append(g.tensor_info(f["name"], g.elem_type, ["N", 1]))
                    pieces.append(_onnx.add_scaling(g, f["name"], [[f["mean"]]], [[f["scale"]]]))
                else:
                    infos.append(g.tensor_info(f["name"], string, ["N", 1]))
                    pieces.append(_onnx.add_one_hot(g, f["name"], f["categories"]))
            x = g.node("Concat", pieces, "encoded", axis=1) if len(pieces) > 1 else pieces[0]
        if self.task == "classification":
            out = list(_onnx.add_classifier_outputs(g, self.network, x, self._classes))
        else:
            out = [_onnx.add_regressor_output(g, self.network, x, [self.target_mean], [self.target_scale])]
        model = g.model(infos, out, doc=f"denseprop table model: {self.task} of {self.target!r}")
        if path is not None:
            _onnx.write_model(model, path)
        return model

    def describe(self):
        """Everything `denseprop info` shows, as JSON-ready data."""
        net = self.network
        return {
            "task": self.task,
            "target": self.target,
            "features": self.feature_specs,
            "classes": None if self._classes is None else [c.item() if hasattr(c, "item") else c
                                                           for c in self._classes],
            "target_scaling": None if self.target_scale is None else {"mean": self.target_mean,
                                                                      "scale": self.target_scale},
            "network": describe_network(net),
            "training": self.training,
        }


def describe_network(net):
    return {"layers": net.layers, "activations": net.activations, "loss": net.loss, "dtype": net.dtype.name,
            "parameters": int(sum(w.size + b.size for w, b in zip(net.weights, net.biases))),
            "optimizer": type(net.optimizer).__name__, "epochs_trained": int(net.optimizer.epochs)}


def regression_metrics(y, pred):
    err = np.asarray(pred, dtype=np.float64) - y
    sst = float(((y - y.mean()) ** 2).sum())
    sse = float((err ** 2).sum())
    r2 = 1.0 - sse / sst if sst > 0 else float(sse == 0)
    return {"r2": r2, "mse": sse / len(y), "mae": float(np.abs(err).mean()), "rows": int(len(y))}


# --------------------------------------------------------------------------------------
# Training on a table.

def choose_task(table, target, requested="auto"):
    """(task, reason): `requested` unless "auto", which picks classification for a non-numeric
    target or an integer one with at most AUTO_MAX_CLASSES distinct values."""
    col = table[target]
    if requested != "auto":
        return requested, "as asked by --task"
    if col.kind in ("text", "bool") and not _mostly_numbers(col):
        return "classification", f"{target!r} holds {'text' if col.kind == 'text' else 'booleans'}"
    if col.kind == "int":
        present = col.values if col.missing is None else col.values[~col.missing]
        distinct = len(np.unique(present))
        if distinct <= AUTO_MAX_CLASSES:
            return "classification", f"{target!r} holds {distinct} distinct integers (at most {AUTO_MAX_CLASSES})"
        return "regression", f"{target!r} holds {distinct} distinct integers (more than {AUTO_MAX_CLASSES})"
    return "regression", f"{target!r} holds numbers"


def _classes_and_codes(table, target):
    """(classes in sorted order, per-row class index) of a classification target."""
    col = table[target]
    if col.kind == "text":
        order = sorted(range(len(col.levels)), key=lambda i: str(col.levels[i]))
        classes = np.array([str(col.levels[i]) for i in order], dtype=object)
        rank = np.empty(len(order) + 1, dtype=np.int64)
        rank[order] = np.arange(len(order))
        rank[-1] = -1
        codes = rank[col.codes]
        used = np.unique(codes)
        if len(used) < len(classes):  # levels that only occur in dropped rows
            classes, codes = classes[used], np.searchsorted(used, codes)
        return classes, codes
    if col.kind == "other":
        _fail(table, f"the target {target!r} holds {col.type_name}, which denseprop cannot use")
    classes, codes = np.unique(col.values, return_inverse=True)
    return classes, codes.reshape(-1).astype(np.int64)


def split_rows(n, fraction, seed, codes=None):
    """(training rows, validation rows), sorted: a random `fraction` of the rows drawn from
    `seed`, stratified by `codes` (each class gives its share; a class of one row trains)."""
    if fraction <= 0:
        return np.arange(n), np.empty(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    if codes is None:
        valid = rng.permutation(n)[:int(round(fraction * n))]
    else:
        order = np.argsort(codes, kind="stable")
        bounds = np.flatnonzero(np.diff(codes[order])) + 1
        valid = []
        for members in np.split(order, bounds):
            k = int(round(fraction * len(members)))
            k = min(max(k, 1), len(members) - 1) if len(members) > 1 else 0
            valid.append(rng.permutation(members)[:k])
        valid = np.concatenate(valid)
    mask = np.zeros(n, dtype=bool)
    mask[valid] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def train_table_model(table, target, *, task="auto", drop=(), sample_weight=None, layers=(64, 64),
                      activation="relu", epochs=50, batch_size=32, optimizer="adam", lr=None,
                      valid_fraction=0.1, early_stopping=10, seed=0, dtype="float32", callbacks=(),
                      log=None):
    """Trains a TableModel on `table` (a Table, DataFrame or dict of columns) to predict the
    column `target`; what `denseprop train` runs. `log(text)` receives the task line.
    Returns (model, report) with the report's timings and validation metrics."""
    from .optimizers import SGD, Adam, EarlyStopping
    start = time.perf_counter()
    if not isinstance(table, Table):
        table = table_from_columns(table)
    if target not in table:
        _fail(table, f"no column {target!r} to predict (--target); its columns are "
              f"{', '.join(repr(n) for n in table.names[:20])}{' ...' if len(table.names) > 20 else ''}")
    for name in list(drop) + ([sample_weight] if sample_weight else []):
        if name not in table:
            _fail(table, f"no column {name!r} (named by --drop or --sample-weight)")
    excluded = {target, *drop} | ({sample_weight} if sample_weight else set())
    features = [name for name in table.names if name not in excluded]
    if not features:
        _fail(table, "no feature columns are left after the target and --drop")
    _check_missing(table, [target] + features + ([sample_weight] if sample_weight else []))

    task, reason = choose_task(table, target, task)
    if log:
        log(f"task: {task} ({reason})")
    if task == "classification":
        classes, codes = _classes_and_codes(table, target)
        if len(classes) < 2:
            _fail(table, f"the target {target!r} holds a single class ({_label_text(classes[0])!r}); "
                  "classification needs at least two")
        y_all, strata = codes, codes
    else:
        y_all, strata, classes = _numeric_values(table, target), None, None
        if table[target].kind == "bool":
            _fail(table, f"the target {target!r} holds booleans: use --task classification")
    weights = None
    if sample_weight:
        weights = _numeric_values(table, sample_weight)
        negative = np.flatnonzero(weights < 0)
        if len(negative):
            _fail(table, f"column {sample_weight!r} (--sample-weight) {rows_text(negative)} holds negative weights")

    train_rows, valid_rows = split_rows(table.n_rows, valid_fraction, seed, strata)
    if len(train_rows) == 0:
        _fail(table, f"--valid-fraction {valid_fraction} leaves no training rows out of {table.n_rows}")
    specs = [_fit_feature(table, name, train_rows) for name in features]
    n_in = sum(_width(f) for f in specs)
    if task == "classification":
        binary = len(classes) == 2
        net_layers = [n_in, *layers, 1 if binary else len(classes)]
        output, loss = ("sigmoid" if binary else "softmax"), "cross_entropy"
        target_mean = target_scale = None
        y = y_all.astype(np.float64) if binary else y_all
    else:
        net_layers, output, loss = [n_in, *layers, 1], "identity", "mse"
        train_y = y_all[train_rows]
        target_mean, target_scale = float(train_y.mean()), float(train_y.std()) or 1.0
        y = (y_all - target_mean) / target_scale
    net = Network(net_layers, activation=activation, output_activation=output, loss=loss, dtype=dtype, seed=seed)
    model = TableModel(net, task, target, specs, classes, target_mean, target_scale)

    X = model.encode(table, allowed_extra=excluded)
    Xtr, ytr = X[train_rows], y[train_rows]
    wtr = None if weights is None else weights[train_rows]
    validation = None
    if len(valid_rows):
        validation = (X[valid_rows], y[valid_rows]) + (() if weights is None else (weights[valid_rows],))
    del X
    opt = (Adam if optimizer == "adam" else SGD)(lr=lr if lr is not None else DEFAULT_LR[optimizer])
    stopper = EarlyStopping(patience=early_stopping, restore_best=True) if early_stopping else None
    prepared = time.perf_counter()
    history = net.fit(Xtr, ytr, epochs=epochs, batch_size=batch_size, optimizer=opt, sample_weight=wtr,
                      validation_data=validation, early_stopping=stopper, callbacks=list(callbacks))
    trained = time.perf_counter()

    report = {
        "rows": int(len(train_rows)),
        "validation_rows": int(len(valid_rows)),
        "epochs": len(history.loss),
        "best_epoch": None if history.best_epoch is None else int(history.best_epoch) + 1,
        "stopped_early": bool(history.stopped_early),
        "prepare_seconds": prepared - start,
        "train_seconds": trained - prepared,
        "rows_per_second": len(train_rows) * len(history.loss) / max(trained - prepared, 1e-9),
    }
    rows, X_eval = (valid_rows, validation[0]) if validation else (train_rows, Xtr)
    report["metrics_on"] = "validation" if validation else "training"
    report["metrics"] = model._metrics(net.predict(X_eval), y_all[rows])
    model.training = {
        "rows": report["rows"], "validation_rows": report["validation_rows"], "epochs": report["epochs"],
        "best_epoch": report["best_epoch"], "stopped_early": report["stopped_early"],
        "metrics_on": report["metrics_on"], "metrics": report["metrics"],
        "options": {"layers": list(layers), "activation": activation, "optimizer": optimizer,
                    "lr": opt.lr, "batch_size": batch_size, "epochs": epochs, "valid_fraction": valid_fraction,
                    "early_stopping": early_stopping, "seed": seed, "dtype": dtype, "drop": list(drop),
                    "sample_weight": sample_weight},
    }
    return model, report


def load_model_file(path):
    """A TableModel, or a Network for a plain Network.save file."""
    net, meta = _io.load_model(Network, path)
    if meta is None:
        return net
    try:
        return TableModel._from_meta(net, meta)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"cannot load {path}: its table entry is inconsistent ({type(err).__name__}: {err})") \
            from None


__all__ = ["TableModel", "TableError", "read_table", "train_table_model"]
