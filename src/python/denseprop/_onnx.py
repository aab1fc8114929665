"""ONNX export: a network's forward pass as an ONNX graph, built with onnx's helper API.

A graph is assembled by a ``GraphBuilder`` from small pieces that each append nodes and return
the name of the tensor they produce:

* ``add_network(g, net, x)``: the dense layers (``Gemm``) and one emitter per activation
  (``EMITTERS``, name -> function, one entry for every name in ``reference.ACTIVATIONS``);
* ``add_scaling`` and ``add_one_hot``: standardisation and one-hot encoding of inputs;
* ``add_classifier_outputs`` (``label`` and ``probabilities``, as skl2onnx names them; the
  labels from ``add_class_labels``) and ``add_regressor_output`` (``variable``), for models that
  predict classes or targets.

Ops that the opset, or onnxruntime's CPU provider for the graph's dtype, lacks are decomposed
into basic ops, so every exported graph runs there in float32 and float64. To emit into
another container (for example a skl2onnx converter's), subclass ``GraphBuilder`` and override
``fresh_name``, ``_emit_node`` and ``_emit_initializer``.
"""

from __future__ import annotations

import itertools
import os

import numpy as np

from . import __version__, reference

DEFAULT_OPSET = 17
# Softmax normalises over the last axis only from opset 13; older opsets flatten its input.
MIN_OPSET = 13
ML_DOMAIN = "ai.onnx.ml"
ML_OPSET = 2  # LabelEncoder with string keys and int64 values
# Ops that float64 graphs decompose: onnxruntime's CPU provider (checked with 1.32) has no float64
# Elu or Softplus, a float64 LeakyRelu only at opsets 16-18, and a float64 Gelu accurate to 1e-9.
_FLOAT32_ONLY = frozenset({"Elu", "LeakyRelu", "Softplus", "Gelu"})
# Ops newer than MIN_OPSET, with the opset that introduced them.
_SINCE = {"Gelu": 20}
# A protobuf message cannot exceed 2 GiB; larger graphs need external data files.
_PROTOBUF_LIMIT = 2**31 - 2**20


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("ONNX export needs the onnx package: pip install 'denseprop[onnx]'") from None
    return onnx


def check_opset(opset):
    onnx = _onnx()
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)):
        raise TypeError(f"opset must be an int, got {type(opset).__name__}")
    if not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset must be in [{MIN_OPSET}, {newest}] (the installed onnx "
                         f"{onnx.__version__} knows up to {newest}), got {opset}")
    return int(opset)


class GraphBuilder:
    """Collects the nodes and constants of one graph in one float dtype and opset."""

    def __init__(self, dtype, opset=DEFAULT_OPSET, prefix="dp_"):
        self.onnx = _onnx()
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"ONNX export supports float32 and float64 networks, not {self.dtype}")
        self.opset = check_opset(opset)
        self.prefix = prefix
        self.nodes, self.initializers = [], []
        self.domains = {"": self.opset}
        self._counter = itertools.count()

    @property
    def elem_type(self):
        return self.onnx.helper.np_dtype_to_tensor_dtype(self.dtype)

    def native(self, op):
        """Whether `op` exists in this opset and onnxruntime's CPU provider runs it in this dtype."""
        if self.opset < _SINCE.get(op, MIN_OPSET):
            return False
        return self.dtype == np.float32 or op not in _FLOAT32_ONLY

    def fresh_name(self, hint):
        return f"{self.prefix}{hint}_{next(self._counter)}"

    def constant(self, value, hint="c", dtype=None):
        """The name of a new initializer holding `value` (in the graph's dtype unless given)."""
        if dtype is None:
            array = np.asarray(value, dtype=self.dtype)
        elif dtype is str:
            array = np.array([str(v) for v in np.ravel(value)], dtype=object).reshape(np.shape(value))
        else:
            array = np.asarray(value, dtype=dtype)
        name = self.fresh_name(hint)
        self._emit_initializer(name, array)
        return name

    def node(self, op, inputs, hint=None, *, output=None, domain="", **attributes):
        """Appends one node with one output; returns the output's name."""
        output = output or self.fresh_name(hint or op.lower())
        if domain and domain not in self.domains:
            self.domains[domain] = ML_OPSET if domain == ML_DOMAIN else 1
        self._emit_node(op, list(inputs), [output], domain, attributes)
        return output

    def _emit_node(self, op, inputs, outputs, domain, attributes):
        self.nodes.append(self.onnx.helper.make_node(op, inputs, outputs, name=outputs[0] + "_op",
                                                     domain=domain, **attributes))

    def _emit_initializer(self, name, array):
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))

    def tensor_info(self, name, elem_type, shape):
        return self.onnx.helper.make_tensor_value_info(name, elem_type, shape)

    def model(self, inputs, outputs, doc=""):
        """A checked ModelProto of the collected graph; inputs and outputs are ValueInfoProtos."""
        helper = self.onnx.helper
        size = sum(t.ByteSize() for t in self.initializers)
        if size > _PROTOBUF_LIMIT:
            raise ValueError(f"the network's parameters take {size / 2**30:.1f} GiB, more than the 2 GiB an "
                             "ONNX file can hold in one piece; export a smaller network")
        graph = helper.make_graph(self.nodes, "denseprop", inputs, outputs, initializer=self.initializers,
                                  doc_string=doc)
        opsets = [helper.make_opsetid(domain, version) for domain, version in self.domains.items()]
        model = helper.make_model(graph, opset_imports=opsets, producer_name="denseprop",
                                  producer_version=__version__, doc_string=doc)
        # The oldest IR version that carries these opsets, so older runtimes load the file.
        model.ir_version = helper.find_min_ir_version_for(opsets)
        self.onnx.checker.check_model(model, full_check=True)
        return model


# --------------------------------------------------------------------------------------
# Activations: name -> emitter(g, x) returning the activated tensor, written to match
# reference.ACTIVATIONS operation by operation.

def _identity(g, x):
    return x


def _relu(g, x):
    return g.node("Relu", [x])


def _where_positive(g, x, otherwise):
    return g.node("Where", [g.node("Greater", [x, g.constant(0, "zero")]), x, otherwise])


def _leaky_relu(g, x):
    if g.native("LeakyRelu"):
        return g.node("LeakyRelu", [x], alpha=reference.LEAKY_SLOPE)
    return _where_positive(g, x, g.node("Mul", [g.constant(reference.LEAKY_SLOPE, "slope"), x]))


def _elu(g, x):
    if g.native("Elu"):
        return g.node("Elu", [x], alpha=reference.ELU_ALPHA)
    # exp(min(x, 0)) - 1 never overflows; the positive side is taken from x itself.
    negative = g.node("Min", [x, g.constant(0, "zero")])
    expm1 = g.node("Sub", [g.node("Exp", [negative]), g.constant(1, "one")])
    return _where_positive(g, x, g.node("Mul", [g.constant(reference.ELU_ALPHA, "alpha"), expm1]))


def _gelu(g, x):
    if g.native("Gelu"):
        return g.node("Gelu", [x], approximate="tanh")
    # 0.5 x (1 + tanh(c (x + a x^3))), the tanh form, with a x x x multiplied left to right.
    ax3 = g.node("Mul", [g.node("Mul", [g.node("Mul", [g.constant(reference._GELU_A, "gelu_a"), x]), x]), x])
    inner = g.node("Mul", [g.constant(reference._GELU_C, "gelu_c"), g.node("Add", [x, ax3])])
    one_plus = g.node("Add", [g.constant(1, "one"), g.node("Tanh", [inner])])
    return g.node("Mul", [g.node("Mul", [g.constant(0.5, "half"), x]), one_plus])


def _sigmoid(g, x):
    return g.node("Sigmoid", [x])


def _tanh(g, x):
    return g.node("Tanh", [x])


def _softplus(g, x):
    if g.native("Softplus"):
        return g.node("Softplus", [x])
    # max(x, 0) + log(1 + exp(-|x|)): no overflow for large |x|.
    tail = g.node("Exp", [g.node("Neg", [g.node("Abs", [x])])])
    return g.node("Add", [g.node("Relu", [x]), g.node("Log", [g.node("Add", [g.constant(1, "one"), tail])])])


def _softmax(g, x):
    return g.node("Softmax", [x], axis=-1)


def _silu(g, x):
    return g.node("Mul", [x, g.node("Sigmoid", [x])])


EMITTERS = {
    "identity": _identity,
    "relu": _relu,
    "leaky_relu": _leaky_relu,
    "elu": _elu,
    "gelu": _gelu,
    "sigmoid": _sigmoid,
    "tanh": _tanh,
    "softplus": _softplus,
    "softmax": _softmax,
    "silu": _silu,
}


def check_exportable(net):
    """ValueError naming what keeps `net` from being exported, if anything does."""
    if net.dtype not in (np.float32, np.float64):
        raise ValueError(f"cannot export to ONNX: dtype {net.dtype} is neither float32 nor float64")
    missing = sorted({a for a in net.activations if a not in EMITTERS})
    if missing:
        raise ValueError(f"cannot export to ONNX: no ONNX emitter for activation(s) {', '.join(missing)} "
                         f"in denseprop._onnx.EMITTERS; this denseprop cannot export such a network")
    net._params()  # raises if weights or biases were replaced by arrays of another layout


# --------------------------------------------------------------------------------------
# Graph pieces.

def add_network(g, net, x):
    """Appends the layers of `net` to g, reading the (n, n_in) tensor `x`; returns the name of
    the (n, n_out) output, equal to ``net.predict``."""
    check_exportable(net)
    for l, (w, b, act) in enumerate(zip(net.weights, net.biases, net.activations)):
        z = g.node("Gemm", [x, g.constant(w, f"W{l}"), g.constant(b, f"b{l}")], f"z{l}")
        x = EMITTERS[act](g, z)
    return x


def add_scaling(g, x, mean, scale):
    """(x - mean) / scale, column by column."""
    return g.node("Div", [g.node("Sub", [x, g.constant(mean, "mean")]), g.constant(scale, "scale")])


def add_unscaling(g, x, mean, scale):
    """x * scale + mean, column by column: the inverse of add_scaling."""
    return g.node("Add", [g.node("Mul", [x, g.constant(scale, "scale")]), g.constant(mean, "mean")])


def add_one_hot(g, x, categories):
    """The (n, k) one-hot encoding of the (n, 1) string tensor `x` over `categories`; a value
    outside them encodes as all zeros."""
    codes = g.node("LabelEncoder", [x], "codes", domain=ML_DOMAIN, keys_strings=[str(c) for c in categories],
                   values_int64s=list(range(len(categories))), default_int64=-1)
    positions = g.constant(np.arange(len(categories)).reshape(1, -1), "positions", dtype=np.int64)
    return g.node("Cast", [g.node("Equal", [codes, positions])], "one_hot", to=g.elem_type)


def class_label_array(classes):
    """Classes as an ONNX-ready array: int64 for integers and booleans, str for text."""
    classes = np.asarray(classes)
    if classes.dtype.kind in "biu":
        return classes.astype(np.int64)
    if classes.dtype.kind == "f" and np.all(classes == np.round(classes)):
        return classes.astype(np.int64)
    if classes.dtype.kind in "OUS":
        return np.array([str(c) for c in classes], dtype=object)
    raise ValueError(f"cannot export class labels of dtype {classes.dtype} to ONNX: labels must be "
                     "integers or strings")


def probability_columns(g, net, out):
    """(n, n_classes) probabilities from the network output `out`: the softmax itself, or
    [1 - p, p] for one sigmoid output."""
    if net.loss != "cross_entropy":
        raise ValueError(f"class probabilities need a cross_entropy network, this one uses {net.loss!r}")
    if net.output_activation == "softmax":
        return out
    if net.output_activation == "sigmoid" and net.n_out == 1:
        return g.node("Concat", [g.node("Sub", [g.constant([[1]], "one"), out]), out], "proba", axis=1)
    raise ValueError("class labels need a softmax output or a single sigmoid output; this network has "
                     f"{net.n_out} sigmoid outputs (multi-label), which has no single label per row")


def add_classifier_outputs(g, net, x, classes, label="label", probabilities="probabilities"):
    """Appends the network and its class outputs: `label` (n,) holding classes[argmax] and
    `probabilities` (n, n_classes). Returns (label info, probabilities info) for the graph."""
    labels = class_label_array(classes)
    proba = probability_columns(g, net, add_network(g, net, x))
    n_classes = net.n_out if net.output_activation == "softmax" else 2
    if len(labels) != n_classes:
        raise ValueError(f"the network gives {n_classes} class probabilities but {len(labels)} classes were given")
    g.node("Identity", [proba], output=probabilities)
    return add_class_labels(g, proba, labels, label), g.tensor_info(probabilities, g.elem_type, ["N", n_classes])


def add_class_labels(g, proba, classes, output="label"):
    """Appends `output` (n,): the class of each row's largest probability in `proba`, the first
    on ties (classes[argmax]). Returns its info."""
    labels = class_label_array(classes)
    index = g.node("ArgMax", [proba], "class_index", axis=1, keepdims=0)
    g.node("Gather", [g.constant(labels, "classes", dtype=str if labels.dtype == object else np.int64), index],
           output=output, axis=0)
    label_type = g.onnx.TensorProto.STRING if labels.dtype == object else g.onnx.TensorProto.INT64
    return g.tensor_info(output, label_type, ["N"])


def add_regressor_output(g, net, x, target_mean=None, target_scale=None, output="variable"):
    """Appends the network and its (n, n_out) output in the target's units (the inverse of a
    standardisation when target_mean/target_scale are given). Returns the output's info."""
    y = add_network(g, net, x)
    if target_scale is not None:
        y = add_unscaling(g, y, np.reshape(target_mean, (1, -1)), np.reshape(target_scale, (1, -1)))
    g.node("Identity", [y], output=output)
    return g.tensor_info(output, g.elem_type, ["N", net.n_out])


def network_to_onnx(net, path=None, *, opset=DEFAULT_OPSET):
    """Network.to_onnx: input "X" (n, n_in), output "Y" = predict(X), both in the network's dtype."""
    net._check_idle("export")
    g = GraphBuilder(net.dtype, opset)
    x = g.tensor_info("X", g.elem_type, ["N", net.n_in])
    g.node("Identity", [add_network(g, net, "X")], output="Y")
    y = g.tensor_info("Y", g.elem_type, ["N", net.n_out])
    model = g.model([x], [y], doc=f"denseprop network {net.layers}, activations {net.activations}")
    if path is not None:
        write_model(model, path)
    return model


def write_model(model, path):
    """Writes the model to exactly `path`, atomically (a temporary file, then a rename)."""
    from ._io import write_atomically
    data = model.SerializeToString()
    write_atomically(os.fspath(path), lambda f: f.write(data))
