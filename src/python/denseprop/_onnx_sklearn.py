"""ONNX export of the scikit-learn estimators (DenseClassifier, DenseRegressor).

One set of graph pieces, written with ``_onnx``'s emitters, serves two doors:

* ``estimator_to_onnx``: the estimators' ``to_onnx``, a model of its own with input ``"X"``;
* ``register``: converters for skl2onnx, so that a pipeline holding an estimator converts whole.
  They write into skl2onnx's container through ``_ContainerBuilder``, a ``GraphBuilder`` whose
  names come from skl2onnx's scope.

The graphs give what the estimators' methods give, skl2onnx's names and shapes otherwise:
``"label"`` as ``predict`` (the classes; an (n, n_labels) int64 indicator matrix for multi-label
targets, as skl2onnx gives for scikit-learn's MLPClassifier), ``"probabilities"`` (n, n_classes)
as ``predict_proba`` (logistic outputs kept strictly inside (0, 1)), and ``"variable"``
(n, n_outputs) as ``predict``, in float64 whatever the network's dtype.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted

from . import _onnx
from .sklearn import _probability_bounds

CLASSIFIER_ALIAS, REGRESSOR_ALIAS = "DensepropDenseClassifier", "DensepropDenseRegressor"
# skl2onnx's options for scikit-learn's MLPClassifier, which its parser applies after our converter.
# "nocl" (ZipMap keyed by class index) is refused, as several of skl2onnx's converters refuse it:
# for MLPClassifier it makes graphs onnxruntime cannot run for text classes.
CLASSIFIER_OPTIONS = {"zipmap": [True, False, "columns"], "output_class_labels": [False, True],
                      "nocl": [True, False]}
# The threshold of LabelBinarizer.inverse_transform (halfway between its labels 0 and 1).
_LABEL_THRESHOLD = 0.5


def _skl2onnx():
    try:
        import skl2onnx
    except ImportError:
        raise ImportError("register_skl2onnx needs the skl2onnx package: pip install skl2onnx") from None
    return skl2onnx


# --------------------------------------------------------------------------------------
# The graph pieces

def _multi_label(est):
    return est._label_binarizer.y_type_ == "multilabel-indicator"


def _classifier_outputs(g, est, x, label, probabilities):
    """Appends est's network reading `x`, then `label` and `probabilities`; returns their infos."""
    net = est.network_
    out = _onnx.add_network(g, net, x)
    if est.out_activation_ == "softmax":
        proba = out
    else:
        low, high = _probability_bounds(net.dtype)
        proba = g.node("Clip", [out, g.constant(low, "low"), g.constant(high, "high")], "inside")
        if est.n_outputs_ == 1:
            proba = g.node("Concat", [g.node("Sub", [g.constant([[1]], "one"), proba]), proba], "proba", axis=1)
    g.node("Identity", [proba], output=probabilities)
    proba_info = g.tensor_info(probabilities, g.elem_type, ["N", len(est.classes_)])
    if _multi_label(est):
        above = g.node("Greater", [out, g.constant(_LABEL_THRESHOLD, "threshold")], "above")
        g.node("Cast", [above], output=label, to=g.onnx.TensorProto.INT64)
        return g.tensor_info(label, g.onnx.TensorProto.INT64, ["N", est.n_outputs_]), proba_info
    return _onnx.add_class_labels(g, proba, est.classes_, label), proba_info


def _regressor_output(g, est, x, variable):
    """Appends est's network reading `x`, then `variable` in float64; returns its info."""
    out = _onnx.add_network(g, est.network_, x)
    double = g.onnx.TensorProto.DOUBLE
    g.node("Cast", [out], output=variable, to=double)
    return (g.tensor_info(variable, double, ["N", est.n_outputs_]),)


def _check_exportable(est):
    check_is_fitted(est)
    est.network_._check_idle("export")


def estimator_to_onnx(est, path=None, *, opset=_onnx.DEFAULT_OPSET):
    """The estimators' to_onnx: input "X" (n, n_features_in_) in the estimator's dtype; outputs
    "label" and "probabilities", or "variable"."""
    _check_exportable(est)
    net = est.network_
    g = _onnx.GraphBuilder(net.dtype, opset)
    x = g.tensor_info("X", g.elem_type, ["N", est.n_features_in_])
    if est._classifies:
        outputs = _classifier_outputs(g, est, "X", "label", "probabilities")
    else:
        outputs = _regressor_output(g, est, "X", "variable")
    model = g.model([x], list(outputs), doc=f"denseprop {type(est).__name__}, network {net.layers}, "
                                            f"activations {net.activations}")
    if path is not None:
        _onnx.write_model(model, path)
    return model


# --------------------------------------------------------------------------------------
# skl2onnx converters

class _ContainerBuilder(_onnx.GraphBuilder):
    """A GraphBuilder writing into a skl2onnx converter's container, with the scope's names."""

    def __init__(self, scope, container, dtype):
        self.scope, self.container = scope, container
        opset = container.target_opset_any_domain("")
        if opset is not None and opset < _onnx.MIN_OPSET:
            raise ValueError(f"denseprop's estimators convert at target_opset >= {_onnx.MIN_OPSET}, "
                             f"got {opset}")
        super().__init__(dtype, _onnx.DEFAULT_OPSET if opset is None else opset, prefix="")

    def fresh_name(self, hint):
        return self.scope.get_unique_variable_name(hint)

    def _emit_node(self, op, inputs, outputs, domain, attributes):
        self.container.add_node(op, inputs, outputs, op_domain=domain,
                                name=self.scope.get_unique_operator_name(op), **attributes)

    def _emit_initializer(self, name, array):
        if array.dtype == object:
            self.container.add_initializer(name, self.onnx.TensorProto.STRING, list(array.shape),
                                           [s.encode("utf-8") for s in array.ravel()])
        else:
            self.container.add_initializer(name, None, None, self.onnx.numpy_helper.from_array(array, name))


def _input_in_dtype(g, variable):
    """The name of the operator's input, cast to the network's dtype when it has another type."""
    if variable.type.to_onnx_type().tensor_type.elem_type == g.elem_type:
        return variable.full_name
    return g.node("Cast", [variable.full_name], "cast_input", to=g.elem_type)


def _tensor_type(dtype):
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
    return DoubleTensorType if np.dtype(dtype) == np.float64 else FloatTensorType


def _check_input(operator):
    """One numeric input of n_features_in_ columns (where its width is known)."""
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, Int64TensorType
    from skl2onnx.common.utils import check_input_and_output_numbers, check_input_and_output_types
    est = operator.raw_operator
    check_is_fitted(est)
    check_input_and_output_numbers(operator, input_count_range=1)
    check_input_and_output_types(operator, good_input_types=[FloatTensorType, DoubleTensorType, Int64TensorType])
    shape = operator.inputs[0].type.shape
    if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != est.n_features_in_):
        raise ValueError(f"{type(est).__name__} takes (n, {est.n_features_in_}) inputs, and skl2onnx gives "
                         f"it {list(shape)}")
    return est, operator.inputs[0].get_first_dimension()


def _classifier_shapes(operator):
    from skl2onnx.common.data_types import Int64TensorType, StringTensorType
    est, n = _check_input(operator)
    if _multi_label(est):
        label = Int64TensorType([n, est.n_outputs_])
    else:
        string = _onnx.class_label_array(est.classes_).dtype == object
        label = (StringTensorType if string else Int64TensorType)([n])
    operator.outputs[0].type = label
    operator.outputs[1].type = _tensor_type(est.network_.dtype)([n, len(est.classes_)])


def _regressor_shapes(operator):
    from skl2onnx.common.data_types import DoubleTensorType
    est, n = _check_input(operator)
    operator.outputs[0].type = DoubleTensorType([n, est.n_outputs_])


def _parse_classifier(scope, model, inputs, custom_parsers=None):
    """skl2onnx's parser for classifiers, except that before a ZipMap the probabilities are declared
    in the network's dtype: skl2onnx declares them in the input's, which a float32 network fed
    float64 rows (after a StandardScaler, say) does not give."""
    from skl2onnx._parse import _apply_zipmap, _parse_sklearn_classifier
    from skl2onnx.common.data_types import Int64TensorType
    check_is_fitted(model)
    if scope.get_options(model, dict(nocl=False))["nocl"]:
        raise RuntimeError("Option 'nocl' is not implemented for DenseClassifier.")
    zipmap = scope.get_options(model, dict(zipmap=True))["zipmap"]
    if isinstance(zipmap, bool) and not zipmap:  # skl2onnx's rule for "no ZipMap"
        return _parse_sklearn_classifier(scope, model, inputs, custom_parsers=custom_parsers)
    if zipmap != "columns" and model.network_.dtype == np.float64:
        raise ValueError("a float64 DenseClassifier's probabilities cannot pass through ONNX's ZipMap, which "
                         "takes float32 only; convert with options={DenseClassifier: {'zipmap': False}} "
                         "(float64 probabilities), or train with dtype='float32'")
    if scope.get_options(model, dict(output_class_labels=False))["output_class_labels"]:
        raise RuntimeError("Option 'output_class_labels' is not compatible with option 'zipmap'.")
    operator = scope.declare_local_operator(CLASSIFIER_ALIAS, model)
    operator.inputs = inputs
    operator.outputs.append(scope.declare_local_variable("label", Int64TensorType()))
    operator.outputs.append(scope.declare_local_variable("probabilities", _tensor_type(model.network_.dtype)()))
    return _apply_zipmap(zipmap, scope, model, inputs[0].type, operator.outputs)


def _convert_classifier(scope, operator, container):
    est = operator.raw_operator
    _check_exportable(est)
    g = _ContainerBuilder(scope, container, est.network_.dtype)
    _classifier_outputs(g, est, _input_in_dtype(g, operator.inputs[0]), *(o.full_name for o in operator.outputs))


def _convert_regressor(scope, operator, container):
    est = operator.raw_operator
    _check_exportable(est)
    g = _ContainerBuilder(scope, container, est.network_.dtype)
    _regressor_output(g, est, _input_in_dtype(g, operator.inputs[0]), operator.outputs[0].full_name)


def register(classifier, regressor):
    """Registers the converters of the two estimator classes with skl2onnx."""
    _onnx._onnx()  # onnx's own message first: skl2onnx fails to import without it
    skl2onnx = _skl2onnx()
    skl2onnx.update_registered_converter(classifier, CLASSIFIER_ALIAS, _classifier_shapes, _convert_classifier,
                                         options=CLASSIFIER_OPTIONS, parser=_parse_classifier)
    skl2onnx.update_registered_converter(regressor, REGRESSOR_ALIAS, _regressor_shapes, _convert_regressor)
