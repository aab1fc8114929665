"""TableModel, the Python door to `denseprop train`'s model files, and the table readers."""

from __future__ import annotations

import io
import os
import warnings

import numpy as np
import pytest

import denseprop as dp
from denseprop import _table_io
from denseprop._table_io import TableError, read_table, table_from_columns
from denseprop.tabular import MAX_CATEGORIES, TableModel, choose_task, train_table_model


def columns(n=400, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(n)
    b = rng.integers(0, 10, n)
    shape = rng.choice(["circle", "square", "star"], n)
    kind = np.where(a + (shape == "star") > 0.4, "good", "bad")
    level = np.digitize(a, [-0.5, 0.5]) * 10  # classes 0, 10, 20
    return {"a": a, "b": b, "shape": shape, "kind": kind, "level": level, "value": 50 + 4 * a - b}


@pytest.fixture(scope="module")
def model():
    m, _ = train_table_model(columns(), "kind", drop=["level", "value"], epochs=20, seed=0)
    return m


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def test_attributes(model):
    assert model.task == "classification" and model.target == "kind"
    assert model.features == ["a", "b", "shape"]
    assert model.classes.tolist() == ["bad", "good"]
    assert isinstance(model.network, dp.Network) and model.network.layers == [5, 64, 64, 1]
    assert model.feature_specs[2] == {"name": "shape", "kind": "categorical",
                                      "categories": ["circle", "square", "star"]}


def test_predict_on_dict_and_dataframe_agree_and_round_trip(model, tmp_path):
    pd = pytest.importorskip("pandas")
    cols = {k: v for k, v in columns(seed=1).items() if k in ("a", "b", "shape")}
    from_dict = model.predict(cols)
    assert from_dict.dtype == object and set(from_dict) <= {"bad", "good"}
    np.testing.assert_array_equal(model.predict(pd.DataFrame(cols)), from_dict)
    proba = model.predict_proba(pd.DataFrame(cols))
    assert proba.shape == (400, 2) and np.allclose(proba.sum(axis=1), 1, atol=1e-6)
    np.testing.assert_array_equal(model.classes[proba.argmax(axis=1)], from_dict)
    model.save(tmp_path / "m.npz")
    loaded = TableModel.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.predict(cols), from_dict)
    np.testing.assert_array_equal(loaded.predict_proba(cols), proba)
    assert loaded.features == model.features and loaded.classes.tolist() == model.classes.tolist()


def test_accuracy_is_learned(model):
    cols = columns(seed=2)
    assert np.mean(quiet(model.predict, cols) == cols["kind"]) > 0.9


def test_network_load_refuses_table_models_and_table_model_refuses_networks(model, tmp_path):
    model.save(tmp_path / "m.npz")
    with pytest.raises(ValueError, match="TableModel"):
        dp.Network.load(tmp_path / "m.npz")
    dp.Network([2, 1]).save(tmp_path / "n.npz")
    with pytest.raises(ValueError, match="Network.load"):
        TableModel.load(tmp_path / "n.npz")


def test_integer_and_boolean_classes_come_back_as_they_were():
    cols = columns()
    m, _ = train_table_model(cols, "level", drop=["kind", "value"], epochs=3)
    pred = quiet(m.predict, cols)
    assert m.classes.tolist() == [0, 10, 20] and pred.dtype == np.int64 and set(pred) <= {0, 10, 20}
    assert m.network.output_activation == "softmax"
    cols["flag"] = cols["a"] > 0
    m, _ = train_table_model(cols, "flag", drop=["kind", "level", "value"], epochs=3)
    assert m.task == "classification" and quiet(m.predict, cols).dtype == bool


def test_regression_target_is_standardised_and_predictions_in_its_units():
    cols = columns()
    cols["value"] = cols["value"] * 1000.0
    m, report = train_table_model(cols, "value", drop=["kind", "level"], epochs=40, lr=0.003)
    assert m.task == "regression" and m.network.output_activation == "identity"
    y = cols["value"]
    assert m.target_mean == pytest.approx(y.mean(), rel=0.05) and m.target_scale == pytest.approx(y.std(), rel=0.1)
    pred = quiet(m.predict, cols)
    assert np.corrcoef(pred, y)[0, 1] > 0.95 and abs(pred.mean() - y.mean()) < 0.1 * y.std()
    assert report["metrics"]["r2"] > 0.9


def test_task_auto_rule():
    t = table_from_columns({"i": np.arange(100) % 20, "j": np.arange(100) % 21, "f": np.linspace(0, 1, 100),
                            "s": np.array(["x", "y"] * 50), "b": np.arange(100) % 2 == 0})
    assert choose_task(t, "i")[0] == "classification"
    assert choose_task(t, "j")[0] == "regression"
    assert choose_task(t, "f")[0] == "regression"
    assert choose_task(t, "s")[0] == "classification"
    assert choose_task(t, "b")[0] == "classification"
    assert choose_task(t, "s", "regression") == ("regression", "as asked by --task")


def test_constant_column_is_centred_not_divided_by_zero():
    cols = columns()
    cols["c"] = np.full(400, 7.0)
    m, _ = train_table_model(cols, "kind", drop=["level", "value"], epochs=1)
    spec = next(f for f in m.feature_specs if f["name"] == "c")
    assert spec["mean"] == 7.0 and spec["scale"] == 1.0


def _refusal(cols):
    with pytest.raises(TableError) as info:
        train_table_model(cols, "kind", drop=["level", "value"], epochs=1)
    return str(info.value)


def test_a_single_class_is_refused():
    cols = columns()
    cols["kind"] = np.array(["same"] * 400)
    assert "single class" in _refusal(cols) and "'same'" in _refusal(cols)


def test_an_id_like_text_column_is_refused():
    cols = {k: np.resize(v, MAX_CATEGORIES + 200) for k, v in columns().items()}
    cols["ident"] = np.array([f"id{i}" for i in range(MAX_CATEGORIES + 200)])
    message = _refusal(cols)
    assert "'ident'" in message and f"at most {MAX_CATEGORIES:,}" in message and "--drop" in message


def test_an_infinite_value_is_refused_with_its_row():
    cols = columns()
    cols["a"][5] = np.inf
    message = _refusal(cols)
    assert "'a'" in message and "row 6" in message and "inf" in message


def test_unseen_category_and_extra_columns_warn_once_each(model):
    cols = {k: v[:5] for k, v in columns().items()}
    cols["shape"] = cols["shape"].astype(object)
    cols["shape"][2] = "hexagon"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.predict(cols)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2
    assert any("'hexagon'" in m and "row 3" in m and "all zeros" in m for m in messages)
    assert any("ignoring columns" in m and "'kind'" in m for m in messages)
    assert all(w.filename == __file__ for w in caught)  # they point at the caller's line


def test_missing_column_is_refused(model):
    with pytest.raises(TableError, match="missing column 'shape'"):
        model.predict({"a": [0.0], "b": [1]})


def test_table_model_to_onnx_numeric_multiclass(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    cols = columns()
    m, _ = train_table_model(cols, "level", drop=["kind", "value", "shape"], epochs=5)
    proto = m.to_onnx(tmp_path / "m.onnx")
    assert [i.name for i in proto.graph.input] == ["X"]
    assert [o.name for o in proto.graph.output] == ["label", "probabilities"]
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    X = np.column_stack([cols["a"], cols["b"]]).astype(np.float32)
    label, proba = session.run(None, {"X": X})
    table = {"a": cols["a"], "b": cols["b"]}
    np.testing.assert_array_equal(label, m.predict(table))
    want = m.predict_proba(table)
    assert np.abs(proba - want).max() / np.abs(want).max() <= 1e-5


def test_to_onnx_refuses_a_column_named_like_an_output():
    pytest.importorskip("onnx")
    cols = columns()
    cols["label"] = cols.pop("shape")
    m, _ = train_table_model(cols, "kind", drop=["level", "value"], epochs=1)
    with pytest.raises(ValueError, match="'label' would clash"):
        m.to_onnx()


# ------------------------------------------------------------------ readers

TRICKY = (
    '\ufeffnum,int,flag,text,when,quoted,empty_name,\n'
    '1.5,1,true,red,2024-01-02,"a, b",x,1\n'
    'NA,2,false,,2024-01-03 10:00,"line\nbreak",y,2\n'
    '-3e2,,TRUE,blue,2024-01-04,"say ""hi""",x,3\n'
)


def _describe(table):
    out = {}
    for name in table.names:
        c = table[name]
        if c.kind == "text":
            values = [None if k < 0 else c.levels[k] for k in c.codes]
        else:
            mask = c.missing_mask()
            values = [None if mask is not None and mask[i] else v for i, v in enumerate(c.values.tolist())]
        out[name] = (c.kind, values)
    return out


def test_python_reader_matches_pyarrow_reader(tmp_path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "t.csv"
    path.write_text(TRICKY, encoding="utf-8")
    arrow = read_table(path)
    python_columns, n = _table_io._read_csv_python(os.fspath(path), "t.csv", set(), ",")
    python = _table_io.Table(python_columns, n, "t.csv")
    assert _describe(arrow) == _describe(python)
    described = _describe(arrow)
    assert described["num"] == ("float", [1.5, None, -300.0])
    assert described["int"] == ("int", [1, 2, None])
    assert described["flag"] == ("bool", [True, False, True])
    assert described["text"] == ("text", ["red", None, "blue"])
    assert described["when"] == ("text", ["2024-01-02", "2024-01-03 10:00", "2024-01-04"])  # as written
    assert described["quoted"] == ("text", ["a, b", "line\nbreak", 'say "hi"'])
    assert "unnamed_8" in described  # a blank header name


def test_readers_refuse_duplicate_header_names(tmp_path):
    (tmp_path / "d.csv").write_text("a,b,a\n1,2,3\n")
    with pytest.raises(TableError, match="'a' twice"):
        read_table(tmp_path / "d.csv")
    with pytest.raises(TableError, match="'a' twice"):
        _table_io._read_csv_python(os.fspath(tmp_path / "d.csv"), "d.csv", set(), ",")


def test_a_typo_deep_in_a_large_numeric_column_is_found(tmp_path):
    pytest.importorskip("pyarrow")
    n = 300_000  # beyond pyarrow's first block, where it infers the column's type
    body = "\n".join(f"{i % 97},{i % 2}" for i in range(n)).split("\n")
    body[250_000] = "oops,1"
    (tmp_path / "big.csv").write_text("x,y\n" + "\n".join(body) + "\n")
    table = read_table(tmp_path / "big.csv")
    with pytest.raises(TableError, match=r"column 'x' row 250001 holds 'oops'"):
        train_table_model(table, "y", epochs=1)


def test_stdin_reader_and_parquet_magic():
    table = read_table("-", stdin=io.BytesIO(b"a,b\n1,x\n2,y\n"))
    assert table.source == "<stdin>" and table.n_rows == 2 and table["b"].kind == "text"
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    buffer = io.BytesIO()
    pq.write_table(pa.table({"a": [1, 2, 3]}), buffer)
    table = read_table("-", stdin=io.BytesIO(buffer.getvalue()))
    assert table["a"].values.tolist() == [1, 2, 3]


def test_table_from_pandas_with_missing_values_and_categoricals():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"n": pd.array([1, None, 3], dtype="Int64"), "f": [1.0, np.nan, 2.0],
                       "c": pd.Categorical(["a", None, "b"]), "s": ["x", None, "z"]})
    table = table_from_columns(df)
    assert [table[c].missing_rows().tolist() for c in "nfcs"] == [[1]] * 4
    assert table["n"].kind == "float" and table["c"].kind == "text" and table["s"].kind == "text"
    with pytest.raises(TypeError, match="DataFrame or a dict"):
        table_from_columns([[1, 2]])
    with pytest.raises(TableError, match="different lengths"):
        table_from_columns({"a": [1, 2], "b": [1]})
