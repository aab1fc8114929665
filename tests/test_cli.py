"""The command line, run as subprocesses on generated CSV and Parquet files: train, predict,
evaluate, info, export and demo; standard output carries only data; errors are one line with
exit codes 1 (data, files, models, divergence), 2 (usage) and 130 (Ctrl-C)."""

from __future__ import annotations

import csv
import io
import json
import os
import pathlib
import pty
import select
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import denseprop as dp
from denseprop.tabular import TableModel, split_rows

pa = pytest.importorskip("pyarrow")
import pyarrow.csv as pacsv  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

CLI = [sys.executable, "-m", "denseprop"]
SCRIPT = pathlib.Path(sys.executable).with_name("denseprop")


def run(*args, stdin=None, cwd=None, env=None, timeout=180, binary=False):
    proc = subprocess.run(CLI + [str(a) for a in args], input=stdin, capture_output=True, cwd=cwd,
                          env=env, timeout=timeout)
    out = proc.stdout if binary else proc.stdout.decode()
    return proc.returncode, out, proc.stderr.decode()


def assert_one_line_error(code, err, want_code, *words):
    assert code == want_code, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("denseprop: error")]
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def make_columns(n=600, seed=0):
    """Numbers, a text column, a string class target ('label'), a 3-class integer target
    ('grade'), a regression target in the hundreds ('price') and an ID column."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(n).round(5)
    b = rng.integers(0, 50, n)
    color = rng.choice(["red", "green", "blue"], n)
    label = np.where(a + 1.5 * (color == "red") - (b > 40) > 0.3, "yes", "no")
    grade = np.digitize(a + 0.02 * b, [-0.2, 1.0])
    price = (100 + 3 * a + 0.2 * b + 0.1 * rng.standard_normal(n)).round(4)
    return {"id": np.arange(n), "a": a, "b": b, "color": color, "label": label, "grade": grade, "price": price}


def write_csv(path, columns):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(list(columns))
        writer.writerows(zip(*[np.asarray(v).tolist() for v in columns.values()]))
    return path


def write_parquet(path, columns):
    pq.write_table(pa.table({k: np.asarray(v) for k, v in columns.items()}), path)
    return path


def read_csv_text(text):
    return pacsv.read_csv(io.BytesIO(text.encode() if isinstance(text, str) else text)).to_pydict()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    columns = make_columns()
    return {"root": root, "columns": columns, "csv": write_csv(root / "data.csv", columns),
            "parquet": write_parquet(root / "data.parquet", columns)}


@pytest.fixture(scope="module")
def classifier(data):
    """A model of 'label' from a, b and color (id, grade and price dropped)."""
    path = data["root"] / "label.npz"
    code, out, err = run("train", data["csv"], "--target", "label", "--drop", "id,grade", "--drop", "price",
                         "--epochs", "15", "-o", path)
    assert code == 0, err
    assert out == ""
    return path


@pytest.fixture(scope="module")
def regressor(data):
    """A float64 model of 'price' from a and b: an all-numeric table."""
    path = data["root"] / "price.npz"
    code, out, err = run("train", data["parquet"], "--target", "price", "--drop", "id,label,grade,color",
                         "--epochs", "30", "--dtype", "float64", "-o", path)
    assert code == 0, err
    return path


# ------------------------------------------------------------------ train

def test_train_says_task_and_one_summary_line_on_stderr_only(data):
    path = data["root"] / "g.npz"
    code, out, err = run("train", data["csv"], "--target", "grade", "--drop", "label,price", "--epochs", "3",
                         "-o", path)
    assert code == 0 and out == ""
    lines = err.splitlines()
    assert len(lines) == 2, err  # the task line and the summary; no progress when piped
    assert lines[0].startswith("denseprop: task: classification") and "3 distinct integers" in lines[0]
    summary = lines[1]
    for word in ("validation accuracy", "on 60 rows", "3 epochs", " s,", "rows/s", "read", str(path)):
        assert word in summary, (word, summary)
    model = TableModel.load(path)
    assert model.task == "classification" and list(model.classes) == [0, 1, 2]
    assert model.classes.dtype == np.int64
    assert model.features == ["id", "a", "b", "color"]


def test_task_auto_rule_and_override(data, tmp_path):
    cols = dict(data["columns"])
    cols["many"] = np.arange(len(cols["a"])) % 21  # 21 distinct integers: regression
    cols["flag"] = cols["a"] > 0                    # booleans: classification
    path = write_csv(tmp_path / "t.csv", cols)
    for target, task in (("many", "regression"), ("flag", "classification"), ("label", "classification"),
                         ("price", "regression")):
        code, _, err = run("train", path, "--target", target, "--epochs", "1", "-o", tmp_path / "m.npz")
        assert code == 0, err
        assert f"task: {task} ('{target}'" in err
        assert TableModel.load(tmp_path / "m.npz").task == task
    code, _, err = run("train", path, "--target", "grade", "--task", "regression", "--epochs", "1",
                       "-o", tmp_path / "m.npz")
    assert code == 0 and "task: regression (as asked by --task)" in err
    assert TableModel.load(tmp_path / "m.npz").classes is None


def test_defaults_are_recorded(classifier):
    code, out, err = run("info", classifier, "--json")
    assert code == 0, err
    info = json.loads(out)
    opts = info["training"]["options"]
    assert opts["layers"] == [64, 64] and opts["optimizer"] == "adam" and opts["lr"] == 0.001
    assert opts["early_stopping"] == 10 and opts["valid_fraction"] == 0.1 and opts["seed"] == 0
    assert info["network"]["layers"] == [5, 64, 64, 1]  # a, b and 3 colours; binary: one sigmoid output
    assert info["network"]["optimizer"] == "Adam"


def test_default_output_is_model_npz_in_the_working_directory(data, tmp_path):
    code, _, err = run("train", data["csv"], "--target", "label", "--epochs", "1", "-q", cwd=tmp_path)
    assert code == 0 and err == ""  # --quiet: nothing on standard error either
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]


def test_early_stopping_restores_the_best_epoch(data, tmp_path):
    code, _, err = run("train", data["csv"], "--target", "price", "--drop", "label", "--epochs", "300",
                       "--early-stopping", "2", "--lr", "0.05", "-o", tmp_path / "m.npz")
    assert code == 0, err
    training = TableModel.load(tmp_path / "m.npz").training
    assert training["stopped_early"] and training["epochs"] < 300
    assert training["best_epoch"] == training["epochs"] - 3  # patience 2: three epochs without a better one
    assert "stopped early" in err


def test_same_seed_same_model_other_seed_other_split(data, tmp_path):
    def weights(seed, name):
        code, _, err = run("train", data["csv"], "--target", "label", "--epochs", "2", "--seed", seed,
                           "-o", tmp_path / name)
        assert code == 0, err
        return TableModel.load(tmp_path / name).network.weights[0]
    np.testing.assert_array_equal(weights(3, "a.npz"), weights(3, "b.npz"))
    assert not np.array_equal(weights(3, "a.npz"), weights(4, "c.npz"))


def test_validation_split_is_random_stratified_and_seeded():
    codes = np.repeat([0, 1, 2], [500, 300, 200])  # sorted by class, as tables often are
    train, valid = split_rows(len(codes), 0.1, seed=0, codes=codes)
    assert len(valid) == 100 and len(train) == 900
    assert np.bincount(codes[valid]).tolist() == [50, 30, 20]
    assert not set(train) & set(valid) and np.all(np.diff(valid) > 0)
    assert valid.max() > 900 or valid.min() < 500  # not the last rows
    assert np.array_equal(valid, split_rows(len(codes), 0.1, seed=0, codes=codes)[1])
    assert not np.array_equal(valid, split_rows(len(codes), 0.1, seed=1, codes=codes)[1])
    _, plain = split_rows(1000, 0.25, seed=0)
    assert len(plain) == 250 and plain.min() < 500
    rare = np.array([0] * 50 + [1])  # a class of one row trains
    assert 50 not in split_rows(51, 0.2, seed=0, codes=rare)[1]


def test_sample_weight_column(data, tmp_path):
    cols = dict(data["columns"])
    cols["w"] = np.where(cols["label"] == "yes", 2.0, 1.0)
    path = write_csv(tmp_path / "w.csv", cols)
    code, _, err = run("train", path, "--target", "label", "--sample-weight", "w", "--epochs", "2",
                       "--threads", "1", "-o", tmp_path / "m.npz")
    assert code == 0, err
    model = TableModel.load(tmp_path / "m.npz")
    assert "w" not in model.features and model.training["options"]["sample_weight"] == "w"
    cols["w"][5] = -1
    code, _, err = run("train", write_csv(tmp_path / "neg.csv", cols), "--target", "label", "--sample-weight",
                       "w", "-o", tmp_path / "m2.npz")
    assert_one_line_error(code, err, 1, "'w'", "row 6", "negative")


# ------------------------------------------------------------------ predict

def test_predict_writes_the_target_column_in_row_order(data, classifier):
    code, out, err = run("predict", classifier, data["csv"])
    assert code == 0
    table = read_csv_text(out)
    assert list(table) == ["label"]
    model = TableModel.load(classifier)
    expected = model.predict({k: v for k, v in data["columns"].items() if k in model.features})
    assert table["label"] == expected.tolist()
    accuracy = np.mean(np.array(table["label"]) == data["columns"]["label"])
    assert accuracy > 0.85
    # The unused columns, the target among them, are named in one warning.
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and all(f"'{c}'" in warnings[0] for c in ("id", "label", "grade", "price"))


def test_predict_proba_columns(data, classifier, tmp_path):
    code, out, _ = run("predict", classifier, data["csv"], "--proba")
    assert code == 0
    table = read_csv_text(out)
    assert list(table) == ["label", "proba_no", "proba_yes"]
    p = np.column_stack([table["proba_no"], table["proba_yes"]])
    np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-6)
    assert np.array_equal(np.where(p[:, 1] > p[:, 0], "yes", "no"), table["label"])
    model = TableModel.load(classifier)
    np.testing.assert_allclose(p, model.predict_proba({k: data["columns"][k] for k in model.features}),
                               rtol=0, atol=1e-6)


def test_predict_parquet_in_and_out_and_stdin_stdout(data, classifier, tmp_path):
    out_path = tmp_path / "pred.parquet"
    code, out, err = run("predict", classifier, data["parquet"], "-o", out_path, "--proba")
    assert code == 0 and out == "", err
    parquet = pq.read_table(out_path).to_pydict()
    code, out, _ = run("predict", classifier, "-", "-o", "-", "--proba", stdin=data["csv"].read_bytes())
    assert code == 0
    from_stdin = read_csv_text(out)
    assert parquet["label"] == from_stdin["label"]
    np.testing.assert_allclose(parquet["proba_yes"], from_stdin["proba_yes"], rtol=1e-6)
    # Parquet on standard input is recognised by its first bytes.
    code, out, _ = run("predict", classifier, "-", stdin=data["parquet"].read_bytes())
    assert code == 0 and read_csv_text(out)["label"] == parquet["label"]
    # CSV output to a file.
    code, _, _ = run("predict", classifier, data["csv"], "-o", tmp_path / "pred.csv")
    assert code == 0 and read_csv_text((tmp_path / "pred.csv").read_text())["label"] == parquet["label"]


def test_train_from_stdin_and_model_to_stdout(data, tmp_path):
    code, out, err = run("train", "-", "--target", "label", "--epochs", "2", "-o", "-",
                         stdin=data["csv"].read_bytes(), binary=True)
    assert code == 0, err
    (tmp_path / "m.npz").write_bytes(out)
    assert TableModel.load(tmp_path / "m.npz").target == "label"


def test_regression_predictions_are_in_the_targets_units(data, regressor):
    model = TableModel.load(regressor)
    assert model.task == "regression" and model.classes is None and model.network.dtype == np.float64
    assert 90 < model.target_mean < 115 and model.target_scale > 1
    code, out, _ = run("predict", regressor, data["csv"])
    pred = np.array(read_csv_text(out)["price"])
    assert np.abs(pred - data["columns"]["price"]).mean() < 1.0
    assert 95 < pred.mean() < 110


def test_columns_in_another_order_are_matched_by_name(data, classifier, tmp_path):
    cols = data["columns"]
    shuffled = {k: cols[k] for k in ("color", "price", "b", "a")}
    code, out, err = run("predict", classifier, write_csv(tmp_path / "s.csv", shuffled))
    assert code == 0
    code, ref, _ = run("predict", classifier, data["csv"])
    assert out == ref


def test_missing_columns_are_refused(data, classifier, tmp_path):
    cols = {k: v for k, v in data["columns"].items() if k not in ("b", "color")}
    code, _, err = run("predict", classifier, write_csv(tmp_path / "m.csv", cols))
    assert_one_line_error(code, err, 1, "m.csv", "missing columns 'b', 'color'")


def test_unseen_category_encodes_as_zeros_with_one_warning(data, classifier, tmp_path):
    cols = {k: data["columns"][k][:6].copy() for k in ("a", "b", "color")}
    cols["color"] = cols["color"].astype(object)
    cols["color"][[1, 4]] = "purple"
    code, out, err = run("predict", classifier, write_csv(tmp_path / "u.csv", cols), "--proba")
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "'purple'" in warnings[0] and "rows 2 and 5" in warnings[0]
    model = TableModel.load(classifier)
    X = model.encode({k: data["columns"][k][:6] for k in ("a", "b", "color")})
    X[[1, 4], 2:] = 0
    expected = model.network.predict(X)[:, 0]
    np.testing.assert_allclose(read_csv_text(out)["proba_yes"], expected, rtol=1e-6)


def test_plain_network_file_reads_columns_in_order(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 3))
    net = dp.Network([3, 8, 2], output_activation="softmax", loss="cross_entropy", dtype="float64", seed=0)
    net.save(tmp_path / "net.npz")
    write_csv(tmp_path / "x.csv", {"p": X[:, 0], "q": X[:, 1], "r": X[:, 2]})
    code, out, err = run("predict", tmp_path / "net.npz", tmp_path / "x.csv", "--proba")
    assert code == 0, err
    table = read_csv_text(out)
    assert list(table) == ["class", "proba_0", "proba_1"]
    np.testing.assert_allclose(np.column_stack([table["proba_0"], table["proba_1"]]), net.predict(X), rtol=1e-12)
    assert table["class"] == net.predict_classes(X).tolist()
    reg = dp.Network([3, 4, 1], seed=0)
    reg.save(tmp_path / "reg.npz")
    code, out, _ = run("predict", tmp_path / "reg.npz", tmp_path / "x.csv")
    np.testing.assert_allclose(read_csv_text(out)["y"], reg.predict(X)[:, 0], rtol=1e-6)
    write_csv(tmp_path / "x2.csv", {"p": X[:, 0], "q": X[:, 1]})
    code, _, err = run("predict", tmp_path / "net.npz", tmp_path / "x2.csv")
    assert_one_line_error(code, err, 1, "x2.csv has 2 columns", "takes 3 inputs")
    code, _, err = run("predict", tmp_path / "reg.npz", tmp_path / "x.csv", "--proba")
    assert code == 2 and "--proba needs a classifier" in err


# ------------------------------------------------------------------ evaluate, info

def test_evaluate_prints_json_metrics(data, classifier, regressor):
    code, out, _ = run("evaluate", classifier, data["csv"], "--target", "label")
    assert code == 0
    metrics = json.loads(out)
    assert set(metrics) == {"accuracy", "log_loss", "rows"} and metrics["rows"] == 600
    assert metrics["accuracy"] > 0.85 and 0 < metrics["log_loss"] < 0.5
    code, out, _ = run("evaluate", regressor, data["parquet"])  # --target defaults to the model's
    metrics = json.loads(out)
    assert set(metrics) == {"r2", "mse", "mae", "rows"} and metrics["r2"] > 0.9
    model = TableModel.load(regressor)
    pred = model.predict({k: data["columns"][k] for k in model.features})
    np.testing.assert_allclose(metrics["mae"], np.abs(pred - data["columns"]["price"]).mean(), rtol=1e-9)


def test_evaluate_refuses_unknown_classes(data, classifier, tmp_path):
    cols = {k: data["columns"][k][:10].astype(object) for k in ("a", "b", "color", "label")}
    cols["label"][3] = "maybe"
    code, _, err = run("evaluate", classifier, write_csv(tmp_path / "e.csv", cols))
    assert_one_line_error(code, err, 1, "'label'", "row 4", "'maybe'", "not trained on")


def test_info_text_and_json(classifier, tmp_path):
    code, out, _ = run("info", classifier)
    assert code == 0
    for word in ("table model", "model file format 2", "task: classification of 'label'", "2 classes: no, yes",
                 "features (3, in order)", "color", "categorical", "3 categories: blue, green, red",
                 "layers [5, 64, 64, 1]", "versions: denseprop " + dp.__version__, "numpy", "pyarrow"):
        assert word in out, word
    code, out, _ = run("info", classifier, "--json")
    info = json.loads(out)
    assert info["kind"] == "table model" and info["classes"] == ["no", "yes"]
    assert [f["name"] for f in info["features"]] == ["a", "b", "color"]
    assert info["features"][2]["categories"] == ["blue", "green", "red"]
    assert info["versions"]["format_version"] == 2 and info["versions"]["denseprop"] == dp.__version__
    dp.Network([3, 2]).save(tmp_path / "net.npz")
    code, out, _ = run("info", tmp_path / "net.npz", "--json")
    assert code == 0 and json.loads(out)["kind"] == "network"


# ------------------------------------------------------------------ export

def _ort_session(path):
    ort = pytest.importorskip("onnxruntime")
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_export_numeric_table_folds_scaling_into_one_input(data, regressor, tmp_path):
    pytest.importorskip("onnx")
    onnx_path = tmp_path / "price.onnx"
    code, out, err = run("export", regressor, "--format", "onnx", "-o", onnx_path)
    assert code == 0 and out == "", err
    assert "inputs X (N, 2) double" in err and "outputs variable (N, 1) double" in err
    session = _ort_session(onnx_path)
    cols = data["columns"]
    (variable,) = session.run(None, {"X": np.column_stack([cols["a"], cols["b"]]).astype(np.float64)})
    model = TableModel.load(regressor)
    expected = model.predict({"a": cols["a"], "b": cols["b"]})
    assert np.abs(variable[:, 0] - expected).max() / np.abs(expected).max() <= 1e-12


def test_export_mixed_table_has_one_input_per_column(data, classifier, tmp_path):
    pytest.importorskip("onnx")
    code, _, err = run("export", classifier, cwd=tmp_path)  # default: next to the model, .onnx
    assert code == 0, err
    onnx_path = classifier.with_suffix(".onnx")
    assert "one input per column" in err and "all zeros" in err
    session = _ort_session(onnx_path)
    cols = data["columns"]
    feeds = {"a": cols["a"].reshape(-1, 1).astype(np.float32), "b": cols["b"].reshape(-1, 1).astype(np.float32),
             "color": cols["color"].astype(object).reshape(-1, 1)}
    label, proba = session.run(None, feeds)
    model = TableModel.load(classifier)
    table = {k: cols[k] for k in ("a", "b", "color")}
    assert (label == model.predict(table)).all()
    want = model.predict_proba(table)
    assert np.abs(proba - want).max() / np.abs(want).max() <= 1e-5


def test_export_plain_network_and_to_stdout(tmp_path):
    pytest.importorskip("onnx")
    net = dp.Network([3, 4, 2], activation="elu", seed=0)
    net.save(tmp_path / "net.npz")
    code, out, err = run("export", tmp_path / "net.npz", "-o", "-", binary=True)
    assert code == 0, err
    (tmp_path / "net.onnx").write_bytes(out)
    X = np.random.default_rng(0).standard_normal((20, 3)).astype(np.float32)
    (Y,) = _ort_session(tmp_path / "net.onnx").run(None, {"X": X})
    np.testing.assert_allclose(Y, net.predict(X), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ errors and exit codes

def test_error_missing_target_column(data, tmp_path):
    code, _, err = run("train", data["csv"], "--target", "nope", "-o", tmp_path / "m.npz")
    assert_one_line_error(code, err, 1, "data.csv", "'nope'", "--target")
    assert not (tmp_path / "m.npz").exists()


def test_error_non_numeric_value_in_a_numeric_column(data, classifier, tmp_path):
    cols = {k: data["columns"][k].astype(object) for k in ("a", "b", "color", "label")}
    cols["b"][7] = "12x"
    code, _, err = run("train", write_csv(tmp_path / "t.csv", cols), "--target", "label", "-o", tmp_path / "m")
    assert_one_line_error(code, err, 1, "t.csv", "'b'", "row 8", "'12x'", "not a number")
    code, _, err = run("predict", classifier, tmp_path / "t.csv")
    assert_one_line_error(code, err, 1, "t.csv", "'b'", "row 8", "'12x'")


def test_error_missing_values_say_how_many_and_where(data, classifier, tmp_path):
    cols = {k: data["columns"][k][:20].astype(object) for k in ("a", "b", "color", "label")}
    cols["a"][[2, 9]] = ""
    cols["color"][4] = "NA"
    path = write_csv(tmp_path / "t.csv", cols)
    code, _, err = run("train", path, "--target", "label", "-o", tmp_path / "m")
    assert_one_line_error(code, err, 1, "t.csv", "3 missing values", "column 'a' rows 3 and 10",
                          "column 'color' row 5")
    code, _, err = run("predict", classifier, path)
    assert_one_line_error(code, err, 1, "3 missing values")


def test_error_empty_file_and_header_only(tmp_path):
    (tmp_path / "e.csv").write_text("")
    code, _, err = run("train", tmp_path / "e.csv", "--target", "y")
    assert_one_line_error(code, err, 1, "e.csv is empty")
    code, _, err = run("train", "-", "--target", "y", stdin=b"")
    assert_one_line_error(code, err, 1, "<stdin> is empty")
    (tmp_path / "h.csv").write_text("a,y\n")
    code, _, err = run("train", tmp_path / "h.csv", "--target", "y")
    assert_one_line_error(code, err, 1, "h.csv has a header but no rows")


def test_error_ragged_csv_names_the_row(tmp_path):
    lines = ["a,b,y"] + [f"{i},{i % 3},{i % 2}" for i in range(40)]
    lines[26] = "1,2,3,4"
    (tmp_path / "r.csv").write_text("\n".join(lines) + "\n")
    code, _, err = run("train", tmp_path / "r.csv", "--target", "y")
    assert_one_line_error(code, err, 1, "r.csv", "row 26 (line 27)", "4 fields", "header has 3")


def test_error_file_that_is_not_a_model(data, tmp_path):
    (tmp_path / "x.npz").write_text("hello")
    for command in (["predict", tmp_path / "x.npz", data["csv"]], ["info", tmp_path / "x.npz"],
                    ["export", tmp_path / "x.npz"], ["evaluate", data["csv"], data["csv"]]):
        code, _, err = run(*command)
        assert_one_line_error(code, err, 1, "cannot load", "not an .npz")
    code, _, err = run("predict", tmp_path / "missing.npz", data["csv"])
    assert_one_line_error(code, err, 1, "missing.npz", "No such file")


def test_error_missing_data_file_and_bad_output_directory(data, tmp_path):
    code, _, err = run("train", tmp_path / "none.csv", "--target", "y")
    assert_one_line_error(code, err, 1, "none.csv", "No such file")
    code, _, err = run("train", data["csv"], "--target", "label", "-o", tmp_path / "no" / "m.npz")
    assert_one_line_error(code, err, 1, "does not exist")


@pytest.mark.parametrize("args", [["train", "x.csv"], ["train", "x.csv", "--target", "y", "--bogus"],
                                  ["train", "x.csv", "--target", "y", "--layers", "64,x"],
                                  ["train", "x.csv", "--target", "y", "--valid-fraction", "1"],
                                  ["train", "x.csv", "--target", "y", "--activation", "softmax"],
                                  ["predict", "m.npz"], ["export", "m.npz", "--format", "tflite"], ["nope"], []])
def test_usage_errors_exit_2(args):
    code, out, err = run(*args)
    assert code == 2 and out == "" and "Traceback" not in err and "usage:" in err


def test_proba_on_a_regression_model_is_a_usage_error(data, regressor):
    code, _, err = run("predict", regressor, data["csv"], "--proba")
    assert code == 2 and "--proba needs a classification model" in err


def test_divergence_exits_1(data, tmp_path):
    code, _, err = run("train", data["csv"], "--target", "price", "--optimizer", "sgd", "--lr", "1e12",
                       "-o", tmp_path / "m.npz")
    assert_one_line_error(code, err, 1, "diverged", "learning rate")
    assert not (tmp_path / "m.npz").exists()


def test_ctrl_c_exits_130_without_a_model(tmp_path):
    rng = np.random.default_rng(0)
    n = 200_000
    write_csv(tmp_path / "big.csv", {"a": rng.standard_normal(n).round(4), "y": rng.standard_normal(n).round(4)})
    proc = subprocess.Popen(CLI + ["train", str(tmp_path / "big.csv"), "--target", "y", "--epochs", "1000",
                                   "--early-stopping", "0", "-o", str(tmp_path / "m.npz")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert b"task:" in proc.stderr.readline()  # training has started
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert b"interrupted" in err and b"Traceback" not in err
    assert not (tmp_path / "m.npz").exists()


# ------------------------------------------------------------------ progress, entry points

def test_progress_bar_on_a_terminal_only(data, tmp_path):
    args = ["train", str(data["csv"]), "--target", "label", "--epochs", "4", "-o", str(tmp_path / "m.npz")]
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.Popen(CLI + args, stdout=subprocess.DEVNULL, stderr=secondary)
        os.close(secondary)
        seen = b""
        while True:
            ready, _, _ = select.select([primary], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            seen += chunk
        assert proc.wait(timeout=60) == 0
    finally:
        os.close(primary)
    text = seen.decode(errors="replace")
    assert "epoch" in text and "\r" in text, text
    code, _, err = run(*args)
    assert code == 0 and "\r" not in err and "it/s" not in err and "epoch 1/" not in err


def test_console_script_and_module_are_the_same_command_line():
    if not SCRIPT.exists():
        pytest.skip("the console script is not installed next to this interpreter")
    proc = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    code, out, _ = run("--help")
    assert proc.returncode == code == 0 and proc.stdout == out
    for command in ("train", "predict", "evaluate", "info", "export", "demo"):
        assert command in out


def test_demo_still_runs():
    code, out, err = run("demo", "--epochs", "2")
    assert code == 0, err
    assert "1) Regression" in out and "test R^2" in out and "held-out accuracy" in out


# ------------------------------------------------------------------ without pyarrow

def _without_pyarrow(*args, stdin=None, cwd=None):
    code = ("import sys; sys.modules['pyarrow'] = None; from denseprop.__main__ import main; "
            f"sys.exit(main({[str(a) for a in args]!r}))")
    proc = subprocess.run([sys.executable, "-c", code], input=stdin, capture_output=True, cwd=cwd, timeout=180)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def test_without_pyarrow_csv_works_and_parquet_says_what_to_install(data, classifier, tmp_path):
    code, out, err = _without_pyarrow("predict", classifier, data["csv"], "--proba")
    assert code == 0, err
    code, ref, _ = run("predict", classifier, data["csv"], "--proba")
    fallback, arrow = read_csv_text(out), read_csv_text(ref)
    assert fallback["label"] == arrow["label"]
    np.testing.assert_allclose(fallback["proba_yes"], arrow["proba_yes"], rtol=1e-6)
    code, _, err = _without_pyarrow("train", data["csv"], "--target", "label", "--epochs", "2", "-o",
                                    tmp_path / "m.npz")
    assert code == 0, err
    lines = ["a,b,y"] + [f"{i},{i % 3},{i % 2}" for i in range(10)]
    lines[4] = "1,2"
    (tmp_path / "r.csv").write_text("\n".join(lines) + "\n")
    code, _, err = _without_pyarrow("train", tmp_path / "r.csv", "--target", "y")
    assert_one_line_error(code, err, 1, "row 4 (line 5)", "2 fields")
    code, _, err = _without_pyarrow("predict", classifier, data["parquet"])
    assert_one_line_error(code, err, 1, "needs pyarrow", "denseprop[parquet]")
