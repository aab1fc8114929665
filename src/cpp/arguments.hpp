// How Python arguments become C++ views, for the bindings (bindings.cpp).
//
// Arrays arrive as plain handles and are checked by hand (dtype, byte order, contiguity, shape,
// writability, alignment, overlap): nothing is ever converted or copied, so an output can never
// be written into a temporary and lost. These checks keep every call memory-safe, and a bad
// argument is a TypeError or ValueError that names it. Whether a value makes sense (a positive
// learning rate, a loss that suits the output) is the Python checker's business
// (denseprop/_checks.py), not this file's.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <climits>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "memory.hpp"
#include "model.hpp"
#include "optimizers.hpp"
#include "threads.hpp"

namespace dp::args {

namespace py = pybind11;


[[noreturn]] inline void type_error(const std::string& msg) { throw py::type_error(msg); }
[[noreturn]] inline void value_error(const std::string& msg) { throw py::value_error(msg); }

inline std::string type_name(py::handle h) { return py::str(py::type::of(h).attr("__name__")); }

// ---------------------------------------------------------------------------------------
// Arrays

inline py::array as_ndarray(py::handle h, const std::string& name) {
    if (!py::isinstance<py::array>(h))
        type_error(name + " must be a numpy.ndarray, got " + type_name(h) +
                   "; convert it with numpy.ascontiguousarray(..., dtype=...)");
    return py::reinterpret_borrow<py::array>(h);
}

inline bool is_native(const py::dtype& dt) {
    const char bo = dt.byteorder();
    const std::uint16_t probe = 1;
    const bool little = *reinterpret_cast<const unsigned char*>(&probe) == 1;
    return bo == '=' || bo == '|' || bo == (little ? '<' : '>');
}

inline std::string describe(const py::array& a) {
    return std::string(py::str(a.dtype())) + " array of shape " + std::string(py::str(a.attr("shape")));
}

struct Shape {
    std::int64_t rows = 1, cols = 1;
};

// Checks one array argument of element type T without converting it; returns its data.
// `kind` is the dtype kind: 'f' for float, 'i' for int64 arrays.
template <typename T>
T* view(py::handle h, const std::string& name, int ndim, bool writable, Shape* shape = nullptr) {
    py::array a = as_ndarray(h, name);
    const py::dtype dt = a.dtype();
    const char kind = std::is_floating_point_v<T> ? 'f' : 'i';
    if (dt.kind() != kind || dt.itemsize() != (py::ssize_t)sizeof(T) || !is_native(dt))
        type_error(name + " must be a native " + std::string(py::str(py::dtype::of<T>())) + " array, got " +
                   describe(a) + (kind == 'f' ? "; every float array of one call shares one dtype" : ""));
    if (a.ndim() != ndim) value_error(name + " must be " + std::to_string(ndim) + "-D, got " + describe(a));
    if (!(a.flags() & py::array::c_style))
        type_error(name + " must be C-contiguous, got a strided or Fortran-order view; pass numpy.ascontiguousarray(" +
                   name + ")");
    if (writable && !a.writeable()) value_error(name + " is read-only but is written to; pass a writable array");
    if (reinterpret_cast<std::uintptr_t>(a.data()) % alignof(T) != 0)
        type_error(name + " is not aligned to its element size; pass a copy");
    for (int d = 0; d < ndim; ++d)
        if (a.shape(d) > INT_MAX)
            value_error(name + " has a dimension of " + std::to_string(a.shape(d)) + ", above the 32-bit BLAS limit of " +
                        std::to_string(INT_MAX));
    if (shape) {
        shape->rows = ndim >= 1 ? a.shape(0) : 1;
        shape->cols = ndim >= 2 ? a.shape(1) : 1;
    }
    return writable ? static_cast<T*>(a.mutable_data()) : const_cast<T*>(static_cast<const T*>(a.data()));
}

inline void expect_shape(const std::string& name, const Shape& got, std::int64_t rows, std::int64_t cols) {
    if (got.rows != rows || got.cols != cols)
        value_error(name + " must have shape (" + std::to_string(rows) + ", " + std::to_string(cols) + "), got (" +
                    std::to_string(got.rows) + ", " + std::to_string(got.cols) + ")");
}

inline void expect_length(const std::string& name, const Shape& got, std::int64_t n) {
    if (got.rows != n) value_error(name + " must have length " + std::to_string(n) + ", got " + std::to_string(got.rows));
}

// The byte ranges of outputs and inputs: BLAS and the in-place kernels are undefined when an
// output overlaps another array.
struct Span {
    std::string name;
    const char *lo, *hi;
};

inline Span span_of(py::handle h, const std::string& name) {
    py::array a = py::reinterpret_borrow<py::array>(h);
    const char* p = static_cast<const char*>(a.data());
    return {name, p, p + a.nbytes()};
}

inline void check_no_overlap(const std::vector<Span>& outputs, const std::vector<Span>& others) {
    for (std::size_t i = 0; i < outputs.size(); ++i) {
        const Span& o = outputs[i];
        auto clash = [&](const Span& s) { return o.lo != o.hi && s.lo != s.hi && o.lo < s.hi && s.lo < o.hi; };
        for (std::size_t j = i + 1; j < outputs.size(); ++j)
            if (clash(outputs[j])) value_error(o.name + " and " + outputs[j].name + " share memory; pass separate arrays");
        for (const Span& s : others)
            if (clash(s)) value_error(o.name + " and " + s.name + " share memory; pass separate arrays");
    }
}

// The array arguments of one call, each checked as it is taken (dtype, layout, shape: a
// dimension of kAny is not checked); outputs must not share memory with the call's other arrays.
constexpr std::int64_t kAny = -1, kVector = -2;  // cols == kVector: a 1-D array

template <typename T>
struct Args {
    std::vector<Span> ins, outs;

    T* take(py::handle h, const std::string& name, std::int64_t rows, std::int64_t cols, bool output,
            Shape* got = nullptr) {
        Shape s;
        T* p = view<T>(h, name, cols == kVector ? 1 : 2, output, &s);
        if (cols == kVector && rows != kAny) expect_length(name, s, rows);
        else if (cols != kVector && (rows != kAny || cols != kAny))
            expect_shape(name, s, rows == kAny ? s.rows : rows, cols == kAny ? s.cols : cols);
        (output ? outs : ins).push_back(span_of(h, name));
        if (got) *got = s;
        return p;
    }
    const T* in(py::handle h, const std::string& name, std::int64_t rows, std::int64_t cols, Shape* got = nullptr) {
        return take(h, name, rows, cols, false, got);
    }
    T* out(py::handle h, const std::string& name, std::int64_t rows, std::int64_t cols, Shape* got = nullptr) {
        return take(h, name, rows, cols, true, got);
    }
    void check_overlap() const { check_no_overlap(outs, ins); }
};

template <typename T>
py::array new_array(std::int64_t rows, std::int64_t cols = -1) {
    dp::ensure_memory(double(sizeof(T)) * double(rows) * double(cols < 0 ? 1 : cols), "the result", "pass smaller arrays");
    if (cols < 0) return py::array(py::dtype::of<T>(), std::vector<py::ssize_t>{(py::ssize_t)rows});
    return py::array(py::dtype::of<T>(), std::vector<py::ssize_t>{(py::ssize_t)rows, (py::ssize_t)cols});
}

// The float type of a call: that of its first float array.
enum class DType { f32, f64 };

inline DType dtype_of(py::handle h, const std::string& name) {
    py::array a = as_ndarray(h, name);
    const py::dtype dt = a.dtype();
    if (dt.kind() == 'f' && is_native(dt) && (dt.itemsize() == 4 || dt.itemsize() == 8))
        return dt.itemsize() == 4 ? DType::f32 : DType::f64;
    type_error(name + " must be a native float32 or float64 array, got " + describe(a) +
               "; convert it with numpy.ascontiguousarray(" + name + ", dtype=numpy.float32)");
}

// f(T{}) with T the C++ type of dt.
template <class F>
decltype(auto) with_dtype(DType dt, F&& f) {
    if (dt == DType::f32) return f(float{});
    return f(double{});
}

// ---------------------------------------------------------------------------------------
// Scalars and names

// h as an integer: Python ints and NumPy integers (anything with __index__), but not bools.
inline long long to_integer(py::handle h, const std::string& name, long long lo, long long hi) {
    if (py::isinstance<py::bool_>(h) || type_name(h) == "bool" || !PyIndex_Check(h.ptr()))
        type_error(name + " must be an int, got " + type_name(h));
    py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(h.ptr()));
    if (!index) throw py::error_already_set();
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
    if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
    if (overflow || v < lo || v > hi)
        value_error(name + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                    std::string(py::str(h)));
    return v;
}

// A seed in [0, 2^64).
inline std::uint64_t to_seed(py::handle h) {
    if (py::isinstance<py::bool_>(h) || type_name(h) == "bool" || !PyIndex_Check(h.ptr()))
        type_error("seed must be an int in [0, 2**64), got " + type_name(h));
    py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(h.ptr()));
    if (!index) throw py::error_already_set();
    const unsigned long long v = PyLong_AsUnsignedLongLong(index.ptr());
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        value_error("seed must be an int in [0, 2**64), got " + std::string(py::str(h)));
    }
    return v;
}

// Python and NumPy real numbers, not bools. Any value, NaN included, is memory-safe here.
inline double to_double(py::handle h, const std::string& name) {
    const std::string tn = type_name(h);
    if (py::isinstance<py::bool_>(h) || tn == "bool" || !(PyFloat_Check(h.ptr()) || PyIndex_Check(h.ptr()) ||
                                                          tn.rfind("float", 0) == 0))
        type_error(name + " must be a float, got " + tn);
    const double v = PyFloat_AsDouble(h.ptr());
    if (v == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();  // an int too large for a double
        value_error(name + " must fit in a float, got " + std::string(py::str(h)));
    }
    return v;
}

inline bool to_bool(py::handle h, const std::string& name) {
    if (!py::isinstance<py::bool_>(h) && type_name(h) != "bool") type_error(name + " must be a bool, got " + type_name(h));
    return PyObject_IsTrue(h.ptr()) == 1;
}

// The position of a name in a table; a ValueError listing the table's names otherwise.
template <class List>
int to_row(py::handle h, const std::string& name, const char* what, List list) {
    if (!py::isinstance<py::str>(h)) type_error(name + " must be a str, got " + type_name(h));
    const std::string s = h.cast<std::string>();
    const int i = dp::find_row(list, s);
    if (i < 0) value_error(name + ": unknown " + what + " '" + s + "'; choose one of " + dp::row_names(list));
    return i;
}

inline dp::Act to_activation(py::handle h, const std::string& name) {
    return dp::Act(to_row(h, name, "activation", dp::Activations{}));
}
inline dp::Loss to_loss(py::handle h) { return dp::Loss(to_row(h, "loss", "loss", dp::Losses{})); }

inline py::list to_list(py::handle h, const std::string& name) {
    if (!py::isinstance<py::list>(h) && !py::isinstance<py::tuple>(h)) type_error(name + " must be a list, got " + type_name(h));
    return py::list(py::reinterpret_borrow<py::object>(h));
}

// The threads of a pass: the user's setting, or the count the caller passes.
inline int to_threads(py::handle h) { return h.is_none() ? dp::user_threads() : (int)to_integer(h, "threads", 1, 1024); }

// ---------------------------------------------------------------------------------------
// Networks and data

// A network described by a flat [W0, b0, W1, b1, ...] list and one activation per layer; its
// parameters are outputs of the call (training writes them).
template <typename T>
dp::Model<T> to_model(py::handle params_h, py::handle acts_h, py::handle loss_h, Args<T>& args) {
    py::list params = to_list(params_h, "params"), acts = to_list(acts_h, "activations");
    if (params.size() < 2 || params.size() % 2 != 0)
        value_error("params must be a non-empty list [W0, b0, W1, b1, ...], got " + std::to_string(params.size()) +
                    " arrays");
    const int L = (int)params.size() / 2;
    if ((int)acts.size() != L)
        value_error("activations must have one name per layer (" + std::to_string(L) + "), got " +
                    std::to_string(acts.size()));
    dp::Model<T> m;
    if (!loss_h.is_none()) m.loss = to_loss(loss_h);
    for (int l = 0; l < L; ++l) {
        const std::string wn = "params[" + std::to_string(2 * l) + "] (W" + std::to_string(l) + ")";
        Shape ws;
        m.W.push_back(args.out(params[2 * l], wn, l == 0 ? kAny : m.sizes.back(), kAny, &ws));
        if (ws.rows < 1 || ws.cols < 1) value_error(wn + " must not be empty");
        if (l == 0) m.sizes.push_back((int)ws.rows);
        m.sizes.push_back((int)ws.cols);
        m.b.push_back(args.out(params[2 * l + 1], "params[" + std::to_string(2 * l + 1) + "] (b" + std::to_string(l) + ")",
                               ws.cols, kVector));
        m.acts.push_back(to_activation(acts[l], "activations[" + std::to_string(l) + "]"));
    }
    return m;
}

// X (n, n_in), and when given Y (n, n_out) and sample weights w (n).
template <typename T>
struct Data {
    const T *X = nullptr, *Y = nullptr, *w = nullptr;
    std::int64_t n = 0;

    // Labelled data (need_y) is what a loss is averaged over: it needs a row.
    Data(py::handle X_h, py::handle Y_h, py::handle w_h, const dp::Model<T>& m, bool need_y, Args<T>& args) {
        Shape xs;
        X = args.in(X_h, "X", kAny, m.n_in(), &xs);
        n = xs.rows;
        if (need_y && n == 0) value_error("X has no rows; pass at least one sample");
        if (need_y && Y_h.is_none()) type_error("Y must be an array, got None");
        if (!Y_h.is_none()) Y = args.in(Y_h, "Y", n, m.n_out());
        if (!w_h.is_none()) w = args.in(w_h, "sample_weight", n, kVector);
    }
};

// Arrays shaped like the parameters [W0, b0, W1, ...] (`per` arrays each), written in place.
template <typename T>
std::vector<T*> param_like(py::handle h, const std::string& name, const dp::Model<T>& m, int per, Args<T>& args) {
    py::list list = to_list(h, name);
    if ((int)list.size() != per * 2 * m.n_layers())
        value_error(name + " must hold " + std::to_string(per * 2 * m.n_layers()) + " arrays (" + std::to_string(per) +
                    " per parameter), got " + std::to_string(list.size()));
    std::vector<T*> out;
    for (int i = 0; i < (int)list.size(); ++i) {
        const int param = i / per, l = param / 2;
        const std::string nm = name + "[" + std::to_string(i) + "]";
        out.push_back(args.out(list[i], nm, param % 2 ? m.fan_out(l) : m.fan_in(l), param % 2 ? kVector : m.fan_out(l)));
    }
    return out;
}

// The float64 metrics (metrics_size(n_out)), or the call's own zeros when none are given.
template <typename T>
double* metrics_of(py::handle h, int n_out, std::vector<double>& own, Args<T>& args) {
    own.assign(dp::metrics_size(n_out), 0.0);
    if (h.is_none()) return own.data();
    Shape s;
    double* p = view<double>(h, "metrics", 1, true, &s);
    expect_length("metrics", s, dp::metrics_size(n_out));
    args.outs.push_back(span_of(h, "metrics"));
    return p;
}

// The visiting order of an epoch's rows: int64 (n), every entry a row index; null when None.
inline const std::int64_t* perm_of(py::handle h, std::int64_t n, std::vector<Span>& ins) {
    if (h.is_none()) return nullptr;
    Shape s;
    const std::int64_t* perm = view<std::int64_t>(h, "perm", 1, false, &s);
    expect_length("perm", s, n);
    for (std::int64_t i = 0; i < n; ++i)
        if (perm[i] < 0 || perm[i] >= n)
            value_error("perm[" + std::to_string(i) + "] = " + std::to_string(perm[i]) + " is not a row index in [0, " +
                        std::to_string(n) + ")");
    ins.push_back(span_of(h, "perm"));
    return perm;
}

// The optimizer's step counter: an int64 array of shape (1,) holding a count, written in place;
// `own` when None.
inline std::int64_t* step_of(py::handle h, std::int64_t* own, std::vector<Span>& outs) {
    if (h.is_none()) return own;
    Shape s;
    std::int64_t* step = view<std::int64_t>(h, "step", 1, true, &s);
    expect_length("step", s, 1);
    if (*step < 0) value_error("step must hold a count >= 0, got " + std::to_string(*step));
    outs.push_back(span_of(h, "step"));
    return step;
}

}  // namespace dp::args
