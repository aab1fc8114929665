"""ONNX export of DenseClassifier and DenseRegressor: their to_onnx, and skl2onnx converting them
inside pipelines after register_skl2onnx, run by onnxruntime's CPU provider against predict and
predict_proba, for every hidden activation, each kind of target and both dtypes."""

import sys
import warnings

import numpy as np
import pytest

from denseprop import _checks

from helpers import OP_TOL, rel_err

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("sklearn")

from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from denseprop import sklearn as dps  # noqa: E402
from denseprop.sklearn import DenseClassifier, DenseRegressor  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# The estimators' hidden activations: scikit-learn's names for denseprop's, then denseprop's own.
ACTIVATIONS = tuple(dps._ACTIVATION_ALIASES) + _checks.HIDDEN_ACTIVATIONS
DTYPES = ("float32", "float64")
N_FEATURES = 6


def targets(kind, X):
    """A target of each kind the estimators take, from the rows X."""
    s = X[:, 0] + X[:, 1] * X[:, 2]
    if kind == "binary":  # classes that are not 0 and 1, to see the original labels come back
        return np.where(s > 0, 7, -3)
    if kind == "multiclass":
        return np.digitize(s, [-0.8, 0.0, 0.8]) + 10
    if kind == "strings":
        return np.array(["cat", "dog", "émeu"])[np.digitize(s, [-0.5, 0.5])]
    if kind == "multilabel":
        return np.column_stack([s > 0, X[:, 3] > 0, X[:, 4] + X[:, 5] > 0.5]).astype(np.int64)
    if kind == "regression":
        return np.column_stack([s, np.sin(X[:, 3]), 2 * X[:, 4] - X[:, 5]])
    if kind == "regression1":
        return 3 * s + 1
    raise AssertionError(kind)


CLASSIFICATION = ("binary", "multiclass", "strings", "multilabel")
KINDS = CLASSIFICATION + ("regression", "regression1")


def fitted(kind, activation="tanh", dtype="float32", seed=0):
    X = np.random.default_rng(seed).standard_normal((240, N_FEATURES))
    Estimator = DenseClassifier if kind in CLASSIFICATION else DenseRegressor
    est = Estimator(hidden_layer_sizes=(16, 8), activation=activation, max_iter=15, learning_rate_init=0.01,
                    dtype=dtype, random_state=seed)
    return est.fit(X, targets(kind, X)), X


def eval_rows(dtype, n=257, seed=1):
    """Rows reaching far into every activation's tails, and probabilities that saturate."""
    X = np.random.default_rng(seed).standard_normal((n, N_FEATURES)) * 4
    X[0], X[1] = 40.0, -40.0
    return X.astype(dtype)


def session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def assert_close(got, want, dtype):
    """onnxruntime's result against the estimator's, to the estimator dtype's tolerance."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    err = rel_err(got, want)
    tol = OP_TOL[np.dtype(dtype).type]
    assert err <= tol, f"max|a-b|/max|b| = {err:.3g} > {tol:g}"


def assert_labels_equal(got, want):
    np.testing.assert_array_equal(got, want, strict=False)
    assert got.shape == want.shape
    assert got.dtype == (object if want.dtype.kind in "OUS" else np.int64)


def assert_estimator_outputs(est, outputs, X):
    """outputs, as onnxruntime returned them for X, equal est's predict (and predict_proba)."""
    if isinstance(est, DenseRegressor):
        (variable,) = outputs
        assert variable.dtype == np.float64  # as predict gives
        assert_close(variable, est.predict(X).reshape(len(X), -1), est.dtype)
        return
    label, probabilities = outputs
    assert probabilities.dtype == np.dtype(est.dtype)
    assert_close(probabilities, est.predict_proba(X), est.dtype)
    assert_labels_equal(label, est.predict(X))


# ------------------------------------------------------------------ to_onnx

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_to_onnx_matches_predict(activation, kind, dtype):
    est, _ = fitted(kind, activation, dtype)
    model = est.to_onnx()
    onnx.checker.check_model(model, full_check=True)
    run = session(model)
    X = eval_rows(dtype)
    # The estimators pad calls of very few rows; the graph gives the same rows alone.
    for rows in (X, X[:1], X[2:4]):
        assert_estimator_outputs(est, run.run(None, {"X": rows}), rows)


def _value_info(v):
    t = v.type.tensor_type
    return v.name, t.elem_type, [d.dim_value or d.dim_param for d in t.shape.dim]


@pytest.mark.parametrize("dtype", DTYPES)
def test_graph_interface(dtype):
    T = onnx.TensorProto
    float_type = T.FLOAT if dtype == "float32" else T.DOUBLE
    inputs = {"X": ("X", float_type, ["N", N_FEATURES])}
    cases = {
        "binary": [("label", T.INT64, ["N"]), ("probabilities", float_type, ["N", 2])],
        "strings": [("label", T.STRING, ["N"]), ("probabilities", float_type, ["N", 3])],
        "multilabel": [("label", T.INT64, ["N", 3]), ("probabilities", float_type, ["N", 3])],
        "regression": [("variable", T.DOUBLE, ["N", 3])],
        "regression1": [("variable", T.DOUBLE, ["N", 1])],
    }
    for kind, outputs in cases.items():
        model = fitted(kind, dtype=dtype)[0].to_onnx()
        assert [_value_info(i) for i in model.graph.input] == [inputs["X"]]
        assert [_value_info(o) for o in model.graph.output] == outputs, kind
        assert {o.domain: o.version for o in model.opset_import} == {"": 17}
    at20 = fitted("binary", dtype=dtype)[0].to_onnx(opset=20)
    assert {o.domain: o.version for o in at20.opset_import} == {"": 20}


def test_binary_probabilities_stay_strictly_inside_like_predict_proba():
    """Saturated logistic outputs come out as predict_proba's nearest floats inside (0, 1)."""
    for dtype in DTYPES:
        est, _ = fitted("binary", "identity", dtype=dtype)
        X = eval_rows(dtype, n=20) * 1000  # logits far past the sigmoid's rounding to 0 and 1
        label, proba = session(est.to_onnx()).run(None, {"X": X})
        want = est.predict_proba(X)
        high = dps._probability_bounds(dtype)[1]
        assert (want[:, 1] == high).any() and (want[:, 1] > 0).all()  # clipped, as predict_proba does
        assert (proba[:, 1] == high).any() and (proba[:, 1] > 0).all()
        assert_close(proba, want, dtype)
        assert_labels_equal(label, est.predict(X))


def test_bool_classes_come_back_as_int64():
    X = np.random.default_rng(0).standard_normal((100, 3))
    est = DenseClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(X, X[:, 0] > 0)
    label, _ = session(est.to_onnx()).run(None, {"X": X.astype(np.float32)})
    assert label.dtype == np.int64
    np.testing.assert_array_equal(label, est.predict(X).astype(np.int64))


def test_to_onnx_writes_the_file(tmp_path):
    est, _ = fitted("strings")
    path = tmp_path / "clf.onnx"
    model = est.to_onnx(path)
    assert path.read_bytes() == model.SerializeToString()
    assert [p.name for p in tmp_path.iterdir()] == ["clf.onnx"]  # no temporary file left behind
    est.to_onnx(str(path), opset=19)  # a str path; overwrites
    assert {o.version for o in onnx.load(str(path)).opset_import} == {19}
    X = eval_rows("float32")
    assert_estimator_outputs(est, session(onnx.load(str(path))).run(None, {"X": X}), X)


@pytest.mark.parametrize("Estimator", [DenseClassifier, DenseRegressor])
def test_unfitted_estimator_raises_not_fitted(Estimator):
    with pytest.raises(NotFittedError):
        Estimator().to_onnx()


@pytest.mark.parametrize("opset,error", [(12, ValueError), (10**6, ValueError), (17.0, TypeError), ("17", TypeError)])
def test_bad_opset_is_refused(opset, error):
    est, _ = fitted("regression1")
    with pytest.raises(error, match="opset"):
        est.to_onnx(opset=opset)


def test_missing_onnx_says_which_extra_to_install(monkeypatch):
    est, _ = fitted("binary")
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"denseprop\[onnx\]"):
        est.to_onnx()


# ------------------------------------------------------------------ skl2onnx

@pytest.fixture(scope="module")
def skl2onnx():
    module = pytest.importorskip("skl2onnx")
    dps.register_skl2onnx()
    return module


def pipeline(kind, dtype="float32", activation="tanh", seed=0):
    X = np.random.default_rng(seed).standard_normal((240, N_FEATURES)) * 3 + 1
    Estimator = DenseClassifier if kind in CLASSIFICATION else DenseRegressor
    est = Estimator(hidden_layer_sizes=(16,), activation=activation, max_iter=15, learning_rate_init=0.01,
                    dtype=dtype, random_state=seed)
    return Pipeline([("scale", StandardScaler()), ("mlp", est)]).fit(X, targets(kind, (X - 1) / 3)), X


def zipped_probabilities(rows, classes):
    """ZipMap's list of {class: probability} as an (n, n_classes) array in classes' order."""
    assert all(list(row) == list(classes) for row in rows)
    return np.array([[row[c] for c in classes] for row in rows])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", CLASSIFICATION)
def test_pipeline_without_zipmap(skl2onnx, kind, dtype):
    pipe, X = pipeline(kind, dtype)
    model = skl2onnx.to_onnx(pipe, X[:1], options={DenseClassifier: {"zipmap": False}})
    onnx.checker.check_model(model, full_check=True)
    assert [o.name for o in model.graph.output] == ["label", "probabilities"]
    label, proba = session(model).run(None, {"X": X})
    assert proba.dtype == np.dtype(dtype)
    assert_close(proba, pipe.predict_proba(X), dtype)
    assert_labels_equal(label, pipe.predict(X))


@pytest.mark.parametrize("kind", CLASSIFICATION)
def test_pipeline_with_zipmap(skl2onnx, kind):
    pipe, X = pipeline(kind)
    model = skl2onnx.to_onnx(pipe, X[:1])  # float64 rows into a float32 network
    onnx.checker.check_model(model, full_check=True)
    assert [o.name for o in model.graph.output] == ["output_label", "output_probability"]
    label, rows = session(model).run(None, {"X": X})
    assert isinstance(rows, list) and len(rows) == len(X)
    keys = pipe.classes_ if kind != "multilabel" else range(3)  # multi-label: the labels' indices
    assert_close(zipped_probabilities(rows, keys), pipe.predict_proba(X), np.float32)
    assert_labels_equal(label, pipe.predict(X))


def test_pipeline_with_zipmap_columns(skl2onnx):
    pipe, X = pipeline("strings")
    model = skl2onnx.to_onnx(pipe, X[:1], options={DenseClassifier: {"zipmap": "columns"}})
    onnx.checker.check_model(model, full_check=True)
    label, *columns = session(model).run(None, {"X": X})
    assert [o.name for o in model.graph.output][1:] == [f"s{c}" for c in pipe.classes_]
    assert_close(np.column_stack(columns), pipe.predict_proba(X), np.float32)
    assert_labels_equal(label, pipe.predict(X))


def test_pipeline_output_class_labels(skl2onnx):
    pipe, X = pipeline("multiclass")
    options = {DenseClassifier: {"zipmap": False, "output_class_labels": True}}
    model = skl2onnx.to_onnx(pipe, X[:1], options=options)
    label, proba, class_labels = session(model).run(None, {"X": X})
    np.testing.assert_array_equal(class_labels, pipe.classes_)
    assert_labels_equal(label, pipe.predict(X))


@pytest.mark.parametrize("zipmap", [True, False])
def test_option_nocl_is_refused(skl2onnx, zipmap):
    pipe, X = pipeline("strings")
    with pytest.raises(RuntimeError, match="'nocl' is not implemented"):
        skl2onnx.to_onnx(pipe, X[:1], options={DenseClassifier: {"nocl": True, "zipmap": zipmap}})


def test_float64_probabilities_through_zipmap_are_refused_with_the_fix(skl2onnx):
    pipe, X = pipeline("binary", "float64")
    with pytest.raises(ValueError, match=r"ZipMap.*float32.*'zipmap': False"):
        skl2onnx.to_onnx(pipe, X[:1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["regression", "regression1"])
def test_pipeline_regressor(skl2onnx, kind, dtype):
    pipe, X = pipeline(kind, dtype, activation="gelu")
    model = skl2onnx.to_onnx(pipe, X[:1])
    onnx.checker.check_model(model, full_check=True)
    n_outputs = 3 if kind == "regression" else 1
    assert [_value_info(o) for o in model.graph.output] == [("variable", onnx.TensorProto.DOUBLE, ["", n_outputs])]
    (variable,) = session(model).run(None, {"X": X})
    assert variable.dtype == np.float64
    assert_close(variable, pipe.predict(X).reshape(len(X), -1), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_float32_rows_into_the_estimator_alone(skl2onnx, dtype):
    """skl2onnx's input in the other float type is cast to the network's, as validate_data does."""
    est, X = fitted("strings", "elu", dtype)
    X32 = eval_rows("float32")
    model = skl2onnx.to_onnx(est, X32[:1], options={"zipmap": False})
    assert_estimator_outputs(est, session(model).run(None, {"X": X32}), X32)


@pytest.mark.parametrize("kind", ["binary", "strings", "multilabel"])
@pytest.mark.parametrize("options", [None, {"zipmap": False}], ids=["zipmap", "no-zipmap"])
def test_outputs_have_the_form_of_skl2onnx_mlp_classifier(skl2onnx, kind, options):
    """The same output names, types and forms as skl2onnx gives for scikit-learn's MLPClassifier."""
    from sklearn.neural_network import MLPClassifier
    X = np.random.default_rng(0).standard_normal((120, N_FEATURES)).astype(np.float32)
    y = targets(kind, X)
    ours = DenseClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X, y)
    results = []
    for est in (ours, theirs):
        model = skl2onnx.to_onnx(est, X[:1], options=options)
        outs = session(model).run(None, {"X": X})
        forms = [(o.name, o.type.WhichOneof("value")) for o in model.graph.output]
        results.append((forms, [(type(o), getattr(o, "dtype", None), getattr(o, "shape", len(o))) for o in outs]))
        if options is None:
            results[-1] += (sorted(outs[1][0]),)  # ZipMap's keys
    assert results[0] == results[1]


def test_unfitted_estimator_in_skl2onnx_raises_not_fitted(skl2onnx):
    X = np.zeros((1, 3))
    for est in (DenseClassifier(), DenseRegressor()):
        with pytest.raises(NotFittedError):
            skl2onnx.to_onnx(est, X)


def test_target_opset_below_13_is_refused(skl2onnx):
    est, X = fitted("regression")
    with pytest.raises(ValueError, match="target_opset >= 13"):
        skl2onnx.to_onnx(est, X[:1], target_opset=12)


def test_wrong_input_width_is_refused(skl2onnx):
    from skl2onnx.common.data_types import FloatTensorType
    est, _ = fitted("binary")
    with pytest.raises(ValueError, match=f"takes \\(n, {N_FEATURES}\\) inputs"):
        skl2onnx.convert_sklearn(est, initial_types=[("X", FloatTensorType([None, N_FEATURES + 1]))])


def test_missing_skl2onnx_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "skl2onnx", None)
    with pytest.raises(ImportError, match="pip install skl2onnx"):
        dps.register_skl2onnx()
