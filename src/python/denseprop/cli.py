"""The command line's table commands: train, predict, evaluate, info and export.

Each command is a pair of functions, one adding its arguments to a parser and one running it;
``COMMANDS`` lists them and ``__main__`` adds the rest (demo). Standard output carries only data
(CSV, Parquet, JSON, model bytes); the task line, progress, the summary, warnings and errors go
to standard error. Exit codes: 0 success; 1 a problem with the data, a file or a model, or
divergence; 2 bad usage (as argparse gives); 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import time
import warnings

PROG = "denseprop"
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
STDIO = "-"


class CommandError(Exception):
    """A mistake of the user's (data, files, models): one line on standard error, exit 1."""


class UsageError(Exception):
    """Options that do not fit together or with the model: exit 2, as argparse's own errors."""


def say(text):
    print(f"{PROG}: {text}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# Option types: argparse turns their ArgumentTypeError into a usage error (exit 2).

def _finite_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _positive_float(text):
    value = _finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _fraction(text):
    value = _finite_float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def _int_at_least(low):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value
    parse.__name__ = "integer"
    return parse


def _layers(text):
    """'64,64' -> (64, 64); '' -> () (no hidden layer)."""
    if not text.strip():
        return ()
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of widths such as 64,64") from None
    if any(w < 1 for w in widths):
        raise argparse.ArgumentTypeError(f"layer widths must be positive, got {text}")
    return widths


def _names(text):
    return [name for name in text.split(",") if name]


# --------------------------------------------------------------------------------------
# Shared pieces.

def _load(path):
    """A TableModel, or a Network for a plain Network.save file."""
    from .tabular import load_model_file
    try:
        return load_model_file(path)
    except ValueError as err:
        raise CommandError(str(err)) from None


def _is_table_model(model):
    from .tabular import TableModel
    return isinstance(model, TableModel)


def _save_model(model, path):
    """model.save(path) (atomic), or the file's bytes on standard output for "-"."""
    if path != STDIO:
        model.save(path)
        return
    with tempfile.TemporaryDirectory() as tmp:
        staged = os.path.join(tmp, "model.npz")
        model.save(staged)
        with open(staged, "rb") as f:
            sys.stdout.buffer.write(f.read())
    sys.stdout.buffer.flush()


def _check_writable(path, what):
    """Fails before a long run, not after it, when `path` cannot be written."""
    if path == STDIO:
        return
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CommandError(f"cannot write {what} {path}: the directory {directory} does not exist")
    if os.path.isdir(path):
        raise CommandError(f"cannot write {what} {path}: it is a directory")
    if not os.access(directory, os.W_OK):
        raise CommandError(f"cannot write {what} {path}: the directory {directory} is not writable")


class _Progress:
    """A bar over epochs on a terminal (tqdm when installed); nothing otherwise."""

    def __init__(self, epochs, enabled):
        self.epochs, self.enabled, self.bar, self.done = epochs, enabled, None, 0
        if enabled:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=epochs, unit="epoch", file=sys.stderr, leave=False)
            except ImportError:
                self.bar = None

    @staticmethod
    def _text(record):
        keys = ("loss", "val_loss", "accuracy", "val_accuracy", "r2", "val_r2")
        return " ".join(f"{k} {record[k]:.4g}" for k in keys if k in record)

    def update(self, record):
        if not self.enabled:
            return None
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(self._text(record), refresh=False)
            self.bar.update(1)
        else:
            filled = 30 * self.done // max(self.epochs, 1)
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] epoch {self.done}/{self.epochs} "
                             f"{self._text(record)}\033[K")
            sys.stderr.flush()
        return None

    def close(self):
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and self.done:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def _metrics_text(metrics):
    return ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k != "rows")


# --------------------------------------------------------------------------------------
# train

def train_arguments(p):
    from ._checks import HIDDEN_ACTIVATIONS
    p.add_argument("data", metavar="DATA", help="CSV file with a header row, or Parquet; - for standard input")
    p.add_argument("--target", required=True, metavar="COL", help="the column to predict")
    p.add_argument("-o", "--output", default="model.npz", metavar="MODEL",
                   help="where to write the model (default model.npz; - for standard output)")
    p.add_argument("--task", choices=("auto", "classification", "regression"), default="auto",
                   help="auto: classification for a text or boolean target, or integers with at most 20 "
                        "distinct values; regression otherwise")
    p.add_argument("--layers", type=_layers, default=(64, 64), metavar="64,64",
                   help="hidden layer widths (default 64,64; '' for none)")
    p.add_argument("--activation", choices=HIDDEN_ACTIVATIONS, default="relu", help="hidden activation")
    p.add_argument("--epochs", type=_int_at_least(1), default=50, help="at most this many epochs (default 50)")
    p.add_argument("--batch-size", type=_int_at_least(1), default=32, help="rows per step (default 32)")
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    p.add_argument("--lr", type=_positive_float, default=None, help="learning rate (default 0.001 adam, 0.01 sgd)")
    p.add_argument("--valid-fraction", type=_fraction, default=0.1, metavar="F",
                   help="random share of rows held out for validation, stratified by class (default 0.1)")
    p.add_argument("--early-stopping", type=_int_at_least(0), default=10, metavar="PATIENCE",
                   help="stop after this many epochs without a better validation loss and keep the best "
                        "epoch (default 10; 0 turns it off)")
    p.add_argument("--drop", type=_names, action="append", default=[], metavar="COL,...",
                   help="columns not to use")
    p.add_argument("--sample-weight", metavar="COL", help="a column of non-negative row weights")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="seeds the split, the weights and the shuffle")
    p.add_argument("--threads", type=_int_at_least(1), default=None, metavar="N", help="BLAS threads")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("-q", "--quiet", action="store_true", help="no task line, progress or summary")


def train(args):
    import denseprop as dp
    from ._table_io import read_table
    from .tabular import train_table_model
    _check_writable(args.output, "the model")
    if args.threads:
        dp.set_num_threads(args.threads)
    log = (lambda text: None) if args.quiet else say
    start = time.perf_counter()
    table = read_table(args.data)
    read_seconds = time.perf_counter() - start
    progress = _Progress(args.epochs, enabled=not args.quiet and sys.stderr.isatty())
    try:
        model, report = train_table_model(
            table, args.target, task=args.task, drop=[n for names in args.drop for n in names],
            sample_weight=args.sample_weight, layers=args.layers, activation=args.activation, epochs=args.epochs,
            batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr, valid_fraction=args.valid_fraction,
            early_stopping=args.early_stopping, seed=args.seed, dtype=args.dtype, callbacks=[progress.update],
            log=log)
    finally:
        progress.close()
    del table
    _save_model(model, args.output)
    best = ""
    if report["stopped_early"] or (report["best_epoch"] and report["best_epoch"] != report["epochs"]):
        best = f" (best {report['best_epoch']}{', stopped early' if report['stopped_early'] else ''})"
    log(f"{report['metrics_on']} {_metrics_text(report['metrics'])} on {report['metrics']['rows']:,} rows; "
        f"{report['epochs']} epochs{best} in {report['train_seconds']:.2f} s, "
        f"{report['rows_per_second']:,.0f} rows/s; read {read_seconds:.2f} s, prepared "
        f"{report['prepare_seconds']:.2f} s; model written to {args.output if args.output != STDIO else '<stdout>'}")
    return EXIT_OK


# --------------------------------------------------------------------------------------
# predict and evaluate

class _PlainNetwork:
    """A plain Network.save file applied to a table: its columns, in order, are the inputs."""

    def __init__(self, net):
        self.net = net

    def text_columns(self, target=None):
        return []

    def classifies(self):
        net = self.net
        return net.loss == "cross_entropy" and (net.output_activation == "softmax" or net.n_out == 1)

    def _X(self, table, exclude=()):
        import numpy as np

        from .tabular import _check_missing, _numeric_values
        names = [n for n in table.names if n not in exclude]
        if len(names) != self.net.n_in:
            left = f" besides {', '.join(repr(e) for e in exclude)}" if exclude else ""
            raise CommandError(f"{table.source} has {len(names)} columns{left} but the network takes "
                               f"{self.net.n_in} inputs (a plain network reads the columns in order)")
        _check_missing(table, names)
        return np.column_stack([_numeric_values(table, n) for n in names])

    def _proba(self, out):
        import numpy as np
        return out if self.net.output_activation == "softmax" else np.hstack([1 - out, out])

    def predict_columns(self, table, proba=False):
        out = self.net.predict(self._X(table))
        if self.classifies():
            p = self._proba(out)
            columns = {"class": p.argmax(axis=1)}
            if proba:
                columns.update({f"proba_{j}": p[:, j] for j in range(p.shape[1])})
            return columns
        if proba:
            raise UsageError("--proba needs a classifier (a cross-entropy network with a softmax or one "
                             "sigmoid output)")
        if self.net.n_out == 1:
            return {"y": out[:, 0]}
        return {f"y{j}": out[:, j] for j in range(self.net.n_out)}

    def evaluate(self, table, target):
        import numpy as np

        from .tabular import LOG_LOSS_EPS, _check_missing, _numeric_values, regression_metrics
        if target not in table:
            raise CommandError(f"{table.source}: no column {target!r} with the true values")
        _check_missing(table, [target])
        truth = _numeric_values(table, target)
        out = self.net.predict(self._X(table, exclude=(target,)))
        if self.classifies():
            p = self._proba(out).astype(np.float64)
            index = truth.astype(np.int64)
            if not np.array_equal(index, truth) or index.min() < 0 or index.max() >= p.shape[1]:
                raise CommandError(f"{table.source}: column {target!r} must hold class indices 0 to "
                                   f"{p.shape[1] - 1} for this network")
            true_p = np.clip(p[np.arange(len(index)), index], LOG_LOSS_EPS, 1.0)
            return {"accuracy": float(np.mean(p.argmax(axis=1) == index)),
                    "log_loss": float(-np.mean(np.log(true_p))), "rows": int(len(index))}
        if self.net.n_out != 1:
            raise CommandError(f"evaluate takes one target column; this network has {self.net.n_out} outputs")
        return regression_metrics(truth, out[:, 0])


def _model_for_table(path):
    model = _load(path)
    return model if _is_table_model(model) else _PlainNetwork(model)


def predict_arguments(p):
    p.add_argument("model", metavar="MODEL", help="a model written by train (or by Network.save)")
    p.add_argument("data", metavar="DATA", help="CSV or Parquet; - for standard input")
    p.add_argument("-o", "--output", default=STDIO, metavar="OUT",
                   help="CSV, or Parquet by its extension (default: CSV on standard output)")
    p.add_argument("--proba", action="store_true", help="add one proba_<class> column per class")


def predict(args):
    from ._table_io import read_table, write_table
    model = _model_for_table(args.model)
    if args.proba and _is_table_model(model) and model.task != "classification":
        raise UsageError(f"--proba needs a classification model; {args.model} is a regression model")
    _check_writable(args.output, "the predictions")
    table = read_table(args.data, text_columns=model.text_columns())
    write_table(model.predict_columns(table, proba=args.proba), args.output)
    return EXIT_OK


def evaluate_arguments(p):
    p.add_argument("model", metavar="MODEL", help="a model written by train (or by Network.save)")
    p.add_argument("data", metavar="DATA", help="CSV or Parquet with the true values; - for standard input")
    p.add_argument("--target", metavar="COL",
                   help="the column of true values (default: the model's target; needed for a plain network)")


def evaluate(args):
    from ._table_io import read_table
    model = _model_for_table(args.model)
    target = args.target or getattr(model, "target", None)
    if target is None:
        raise UsageError(f"{args.model} is a plain network: name the column of true values with --target")
    table = read_table(args.data, text_columns=model.text_columns(target))
    metrics = model.evaluate(table, target)
    sys.stdout.write(json.dumps(metrics) + "\n")
    sys.stdout.flush()
    return EXIT_OK


# --------------------------------------------------------------------------------------
# info

def info_arguments(p):
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--json", action="store_true", help="print the same as JSON")


def describe_file(path):
    """What `info` shows, as JSON-ready data."""
    import numpy as np

    import denseprop as dp

    from . import _io
    from .tabular import describe_network
    model = _load(path)
    try:
        meta, _ = _io._read(os.fspath(path))
    except ValueError as err:
        raise CommandError(str(err)) from None
    if _is_table_model(model):
        data = {"file": os.fspath(path), "kind": "table model", **model.describe()}
    else:
        data = {"file": os.fspath(path), "kind": "network", "network": describe_network(model)}
    versions = {"format_version": meta["format_version"], "written_by_denseprop": meta.get("library_version"),
                "denseprop": dp.__version__, "numpy": np.__version__}
    for module in ("pyarrow", "onnx"):
        with contextlib.suppress(ImportError):
            versions[module] = __import__(module).__version__
    data["versions"] = versions
    return data


def _info_text(d):
    lines = [f"{d['file']}: {d['kind']} (model file format {d['versions']['format_version']}, written by "
             f"denseprop {d['versions']['written_by_denseprop']})"]
    if d["kind"] == "table model":
        task = f"task: {d['task']} of {d['target']!r}"
        if d["classes"] is not None:
            shown = ", ".join(str(c) for c in d["classes"][:20])
            task += f" ({len(d['classes'])} classes: {shown}{' ...' if len(d['classes']) > 20 else ''})"
        if d["target_scaling"]:
            task += f" (standardised for training: mean {d['target_scaling']['mean']:.6g}, " \
                    f"scale {d['target_scaling']['scale']:.6g})"
        lines.append(task)
        lines.append(f"features ({len(d['features'])}, in order):")
        width = max(len(f["name"]) for f in d["features"])
        for f in d["features"]:
            if f["kind"] == "numeric":
                detail = f"numeric      mean {f['mean']:.6g}, scale {f['scale']:.6g}"
            else:
                cats = f["categories"]
                detail = (f"categorical  {len(cats)} categories: {', '.join(cats[:8])}"
                          f"{' ...' if len(cats) > 8 else ''}")
            lines.append(f"  {f['name']:<{width}}  {detail}")
    n = d["network"]
    lines.append(f"network: layers {n['layers']}, activations {', '.join(n['activations'])}, loss {n['loss']}, "
                 f"{n['dtype']}, {n['parameters']:,} parameters, {n['optimizer']} for {n['epochs_trained']} epochs")
    t = d.get("training")
    if t:
        best = f", best {t['best_epoch']}" if t.get("best_epoch") else ""
        lines.append(f"training: {t['rows']:,} rows, {t['validation_rows']:,} validation rows, {t['epochs']} "
                     f"epochs{best}{', stopped early' if t.get('stopped_early') else ''}; "
                     f"{t['metrics_on']} {_metrics_text(t['metrics'])}")
    lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in d["versions"].items()
                                          if k not in ("format_version", "written_by_denseprop")))
    return "\n".join(lines)


def info(args):
    data = describe_file(args.model)
    sys.stdout.write((json.dumps(data, indent=2) if args.json else _info_text(data)) + "\n")
    sys.stdout.flush()
    return EXIT_OK


# --------------------------------------------------------------------------------------
# export

def export_arguments(p):
    from ._onnx import DEFAULT_OPSET
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--format", choices=("onnx",), default="onnx", help="onnx (the only format so far)")
    p.add_argument("-o", "--output", metavar="FILE", help="default: MODEL with the suffix .onnx; - for standard output")
    p.add_argument("--opset", type=_int_at_least(1), default=DEFAULT_OPSET,
                   help=f"ONNX opset (default {DEFAULT_OPSET})")


def _interface_text(proto):
    from onnx import TensorProto

    def describe(value):
        t = value.type.tensor_type
        dims = ", ".join(d.dim_param or str(d.dim_value) for d in t.shape.dim)
        return f"{value.name} ({dims}) {TensorProto.DataType.Name(t.elem_type).lower()}"
    return (f"inputs {'; '.join(describe(v) for v in proto.graph.input)}; "
            f"outputs {'; '.join(describe(v) for v in proto.graph.output)}")


def export(args):
    model = _load(args.model)
    output = args.output or os.path.splitext(args.model)[0] + ".onnx"
    _check_writable(output, "the ONNX model")
    try:
        proto = model.to_onnx(opset=args.opset)
    except ImportError as err:
        raise CommandError(str(err)) from None
    except ValueError as err:
        raise CommandError(f"cannot export {args.model}: {err}") from None
    data = proto.SerializeToString()
    if output == STDIO:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        from ._io import write_atomically
        write_atomically(output, lambda f: f.write(data))
    say(f"wrote {output if output != STDIO else '<stdout>'}: {_interface_text(proto)}")
    if _is_table_model(model):
        if any(f["kind"] == "categorical" for f in model.feature_specs):
            say("note: text columns are separate string inputs, so the graph has one input per column; "
                "a category not seen in training encodes as all zeros there without the warning "
                "`denseprop predict` gives")
    return EXIT_OK


# name -> (one-line help, add_arguments(parser), run(args) -> exit code)
COMMANDS = {
    "train": ("train a network on a CSV or Parquet table", train_arguments, train),
    "predict": ("predict with a trained model; CSV (or Parquet) out", predict_arguments, predict),
    "evaluate": ("metrics of a trained model on a table, as JSON", evaluate_arguments, evaluate),
    "info": ("what a model file holds: task, features, classes, layers, versions", info_arguments, info),
    "export": ("export a model to ONNX, its preprocessing included", export_arguments, export),
}


def build_parser(commands):
    parser = argparse.ArgumentParser(
        prog=PROG, description="Dense neural networks on the CPU: train on tables, predict, export.",
        epilog=f"Run '{PROG} COMMAND --help' for a command's options.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (summary, add_arguments, run) in commands.items():
        p = sub.add_parser(name, help=summary, description=summary)
        add_arguments(p)
        p.set_defaults(run=run, subparser=p)
    return parser


@contextlib.contextmanager
def _warnings_as_lines():
    """Library warnings as one 'denseprop: warning: ...' line each on standard error."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)
        warnings.showwarning = lambda message, *_args, **_kw: say(f"warning: {message}")
        yield


def main(argv, commands):
    """Parses argv, runs the command and returns its exit code; no traceback for user mistakes."""
    from ._history import DivergenceError
    from ._table_io import TableError
    parser = build_parser(commands)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_usage(sys.stderr)
        say("error: name a command: " + ", ".join(commands))
        return EXIT_USAGE
    try:
        with _warnings_as_lines():
            return args.run(args)
    except UsageError as err:
        args.subparser.print_usage(sys.stderr)
        print(f"{PROG} {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (CommandError, TableError, DivergenceError) as err:
        say(f"error: {' '.join(str(err).split())}")
    except OSError as err:
        if isinstance(err, BrokenPipeError):  # the reader of standard output went away: stop quietly
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_ERROR
        name = f" {err.filename}" if err.filename else ""
        say(f"error: cannot open{name}: {err.strerror or err}")
    except MemoryError as err:
        say(f"error: out of memory: {err}")
    except KeyboardInterrupt:
        say("interrupted (no model was written)" if args.command == "train" else "interrupted")
        return EXIT_INTERRUPTED
    return EXIT_ERROR
