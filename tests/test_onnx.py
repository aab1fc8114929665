"""ONNX export: graphs checked by onnx's checker and run by onnxruntime's CPU provider against
predict, for every activation, output activation, loss and both dtypes."""

import sys

import numpy as np
import pytest

import denseprop as dp
from denseprop import _onnx, reference

from helpers import OP_TOL, rel_err

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

DTYPES = (np.float32, np.float64)
HIDDEN = [a for a in reference.ACTIVATIONS if a != "softmax"]
OUTPUTS = list(reference.ACTIVATIONS)
OPSETS = (17, 20)


def run(model, **feeds):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def inputs(n_in, dtype, n=257, spread=4.0, seed=0):
    """Rows that reach far into every activation's tails (softplus and elu overflow there)."""
    X = np.random.default_rng(seed).standard_normal((n, n_in)) * spread
    X[0] = 40.0
    X[1] = -40.0
    return X.astype(dtype)


def assert_close(got, want, dtype):
    assert got.dtype == np.dtype(dtype)
    assert got.shape == want.shape
    err = rel_err(got, want)
    assert err <= OP_TOL[dtype], f"max|a-b|/max|b| = {err:.3g} > {OP_TOL[dtype]:g}"


def test_every_activation_has_an_emitter():
    """A new activation in the reference fails here until the export knows it."""
    missing = set(reference.ACTIVATIONS) - set(_onnx.EMITTERS)
    assert not missing, f"add ONNX emitters for {sorted(missing)} to denseprop._onnx.EMITTERS"


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("activation", HIDDEN)
def test_hidden_activation_matches_predict(activation, dtype, opset):
    net = dp.Network([6, 32, 16, 3], activation=activation, dtype=dtype, seed=1)
    model = net.to_onnx(opset=opset)
    onnx.checker.check_model(model, full_check=True)
    X = inputs(6, dtype)
    (Y,) = run(model, X=X)
    assert_close(Y, net.predict(X), dtype)


def _output_cases():
    for out in OUTPUTS:
        for loss in reference.LOSSES:
            if (loss == "cross_entropy") == (out in ("softmax", "sigmoid")) or \
                    (loss != "cross_entropy" and out != "softmax"):
                yield out, loss


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("output_activation,loss", list(_output_cases()))
def test_output_activation_and_loss_match_predict(output_activation, loss, dtype):
    net = dp.Network([4, 24, 5], activation="tanh", output_activation=output_activation, loss=loss,
                     dtype=dtype, seed=2)
    model = net.to_onnx()
    onnx.checker.check_model(model, full_check=True)
    X = inputs(4, dtype, spread=3.0)
    (Y,) = run(model, X=X)
    assert_close(Y, net.predict(X), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_mixed_activations_after_training(dtype):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((300, 5)).astype(dtype)
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(np.int64)
    net = dp.Network([5, 16, 16, 8, 2], activation=HIDDEN[:3], output_activation="softmax",
                     loss="cross_entropy", dtype=dtype, seed=3)
    net.fit(X, y, epochs=3, optimizer=dp.Adam(lr=0.01))
    (Y,) = run(net.to_onnx(), X=X)
    assert_close(Y, net.predict(X), dtype)


def test_graph_interface_names_shapes_and_types():
    net = dp.Network([7, 4, 2], dtype="float64", seed=0)
    model = net.to_onnx()
    graph = model.graph
    assert [i.name for i in graph.input] == ["X"] and [o.name for o in graph.output] == ["Y"]
    x_type, y_type = graph.input[0].type.tensor_type, graph.output[0].type.tensor_type
    assert x_type.elem_type == onnx.TensorProto.DOUBLE and y_type.elem_type == onnx.TensorProto.DOUBLE
    assert x_type.shape.dim[1].dim_value == 7 and y_type.shape.dim[1].dim_value == 2
    assert x_type.shape.dim[0].dim_param  # any number of rows
    assert {o.domain: o.version for o in model.opset_import} == {"": 17}
    assert model.producer_name == "denseprop" and model.producer_version == dp.__version__
    # Works for one row as well as many.
    for n in (1, 3000):
        X = np.random.default_rng(n).standard_normal((n, 7))
        (Y,) = run(model, X=X)
        assert_close(Y, net.predict(X), np.float64)


def test_float64_graphs_avoid_ops_onnxruntime_lacks_in_float64():
    for activation in HIDDEN:
        for opset in OPSETS:
            model = dp.Network([3, 4, 1], activation=activation, dtype="float64").to_onnx(opset=opset)
            used = {node.op_type for node in model.graph.node}
            assert not used & _onnx._FLOAT32_ONLY, (activation, opset, used)


def test_float32_graphs_use_native_ops_where_they_exist():
    ops = {a: {n.op_type for n in dp.Network([3, 4, 1], activation=a).to_onnx(opset=20).graph.node}
           for a in ("elu", "leaky_relu", "softplus", "gelu")}
    assert "Elu" in ops["elu"] and "LeakyRelu" in ops["leaky_relu"]
    assert "Softplus" in ops["softplus"] and "Gelu" in ops["gelu"]
    at17 = {n.op_type for n in dp.Network([3, 4, 1], activation="gelu").to_onnx(opset=17).graph.node}
    assert "Gelu" not in at17 and "Tanh" in at17  # Gelu is an opset 20 op


def test_to_onnx_writes_the_file(tmp_path):
    net = dp.Network([3, 5, 2], activation="elu", seed=0)
    path = tmp_path / "net.onnx"
    model = net.to_onnx(path)
    assert path.read_bytes() == model.SerializeToString()
    loaded = onnx.load(str(path))
    X = inputs(3, np.float32)
    (Y,) = run(loaded, X=X)
    assert_close(Y, net.predict(X), np.float32)
    assert [p.name for p in tmp_path.iterdir()] == ["net.onnx"]  # no temporary file left behind
    net.to_onnx(str(path), opset=19)  # a str path; overwrites
    assert {o.version for o in onnx.load(str(path)).opset_import} == {19}


@pytest.mark.parametrize("opset,error", [(12, ValueError), (10**6, ValueError), (17.0, TypeError),
                                         ("17", TypeError), (True, TypeError)])
def test_bad_opset_is_refused(opset, error):
    with pytest.raises(error, match="opset"):
        dp.Network([2, 1]).to_onnx(opset=opset)


def test_activation_without_emitter_is_refused_with_its_name(monkeypatch):
    net = dp.Network([2, 3, 1], activation="gelu")
    monkeypatch.delitem(_onnx.EMITTERS, "gelu")
    with pytest.raises(ValueError, match="cannot export to ONNX.*gelu"):
        net.to_onnx()


def test_replaced_weights_are_refused():
    net = dp.Network([2, 3, 1])
    net.weights[0] = np.ones((3, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"weights\[0\]"):
        net.to_onnx()


def test_missing_onnx_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"denseprop\[onnx\]"):
        dp.Network([2, 1]).to_onnx()


# ------------------------------------------------------------------ tails for estimators

def _classifier_model(net, classes, opset=17):
    g = _onnx.GraphBuilder(net.dtype, opset)
    outputs = _onnx.add_classifier_outputs(g, net, "X", classes)
    return g.model([g.tensor_info("X", g.elem_type, ["N", net.n_in])], list(outputs))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("classes", [np.array(["cat", "dog", "émeu"]), np.array([-3, 7, 10])],
                         ids=["strings", "ints"])
def test_classifier_outputs_softmax(classes, dtype):
    net = dp.Network([4, 8, 3], output_activation="softmax", loss="cross_entropy", dtype=dtype, seed=4)
    X = inputs(4, dtype)
    label, proba = run(_classifier_model(net, classes), X=X)
    assert_close(proba, net.predict_proba(X), dtype)
    np.testing.assert_array_equal(label, classes[net.predict_classes(X)])
    assert label.shape == (len(X),)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_classifier_outputs_binary_sigmoid_give_two_columns(dtype):
    net = dp.Network([4, 8, 1], output_activation="sigmoid", loss="cross_entropy", dtype=dtype, seed=5)
    X = inputs(4, dtype, spread=0.3)
    label, proba = run(_classifier_model(net, np.array(["no", "yes"])), X=X)
    p = net.predict(X)
    assert proba.shape == (len(X), 2)
    assert_close(proba, np.hstack([1 - p, p]), dtype)
    np.testing.assert_array_equal(label, np.where(net.predict_classes(X) == 1, "yes", "no"))


def test_classifier_outputs_refuse_what_has_no_label():
    multi_label = dp.Network([3, 2], output_activation="sigmoid", loss="cross_entropy")
    with pytest.raises(ValueError, match="multi-label"):
        _classifier_model(multi_label, [0, 1])
    with pytest.raises(ValueError, match="cross_entropy"):
        _classifier_model(dp.Network([3, 2]), [0, 1])
    softmax = dp.Network([3, 3], output_activation="softmax", loss="cross_entropy")
    with pytest.raises(ValueError, match="3 class probabilities but 2 classes"):
        _classifier_model(softmax, [0, 1])
    with pytest.raises(ValueError, match="integers or strings"):
        _classifier_model(softmax, [0.5, 1.5, 2.5])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_regressor_output_in_target_units(dtype):
    net = dp.Network([3, 8, 2], activation="softplus", dtype=dtype, seed=6)
    mean, scale = np.array([100.0, -5.0]), np.array([20.0, 0.5])
    g = _onnx.GraphBuilder(dtype)
    out = _onnx.add_regressor_output(g, net, "X", mean, scale)
    model = g.model([g.tensor_info("X", g.elem_type, ["N", 3])], [out])
    X = inputs(3, dtype)
    (variable,) = run(model, X=X)
    assert [o.name for o in model.graph.output] == ["variable"]
    assert_close(variable, net.predict(X).astype(np.float64) * scale + mean, dtype)


def test_one_hot_with_unknown_values_gives_zero_rows():
    g = _onnx.GraphBuilder(np.float32)
    out = _onnx.add_one_hot(g, "s", ["a", "b", "c"])
    g.node("Identity", [out], output="Y")
    model = g.model([g.tensor_info("s", onnx.TensorProto.STRING, ["N", 1])],
                    [g.tensor_info("Y", g.elem_type, ["N", 3])])
    (Y,) = run(model, s=np.array([["b"], ["zz"], ["a"], ["c"]], dtype=object))
    np.testing.assert_array_equal(Y, [[0, 1, 0], [0, 0, 0], [1, 0, 0], [0, 0, 1]])
