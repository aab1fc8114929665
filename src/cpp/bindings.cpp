// Python bindings of denseprop._core: argument conversion and dispatch, nothing else.
//
// Arrays arrive as plain handles and are checked by hand (dtype, byte order, contiguity, shape,
// writability, alignment, overlap): nothing is ever converted or copied, so an output can never
// be written into a temporary and lost. These checks keep every call memory-safe, and a bad
// argument is a TypeError or ValueError that names it. Whether a value makes sense (a positive
// learning rate, a loss that suits the output) is the Python checker's business
// (denseprop/_checks.py), not this module's. Every pointer and shape is read before the GIL is
// released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cblas.h>

#include <chrono>
#include <climits>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gemm.hpp"
#include "kernels.hpp"
#include "memory.hpp"
#include "passes.hpp"
#include "threads.hpp"
#include "tuning.hpp"

namespace py = pybind11;
using namespace pybind11::literals;

namespace {

[[noreturn]] void type_error(const std::string& msg) { throw py::type_error(msg); }
[[noreturn]] void value_error(const std::string& msg) { throw py::value_error(msg); }

std::string type_name(py::handle h) { return py::str(py::type::of(h).attr("__name__")); }

// ---------------------------------------------------------------------------------------
// Arrays

py::array as_ndarray(py::handle h, const std::string& name) {
    if (!py::isinstance<py::array>(h))
        type_error(name + " must be a numpy.ndarray, got " + type_name(h) +
                   "; convert it with numpy.ascontiguousarray(..., dtype=...)");
    return py::reinterpret_borrow<py::array>(h);
}

bool is_native(const py::dtype& dt) {
    const char bo = dt.byteorder();
    const std::uint16_t probe = 1;
    const bool little = *reinterpret_cast<const unsigned char*>(&probe) == 1;
    return bo == '=' || bo == '|' || bo == (little ? '<' : '>');
}

std::string describe(const py::array& a) {
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

void expect_shape(const std::string& name, const Shape& got, std::int64_t rows, std::int64_t cols) {
    if (got.rows != rows || got.cols != cols)
        value_error(name + " must have shape (" + std::to_string(rows) + ", " + std::to_string(cols) + "), got (" +
                    std::to_string(got.rows) + ", " + std::to_string(got.cols) + ")");
}

void expect_length(const std::string& name, const Shape& got, std::int64_t n) {
    if (got.rows != n) value_error(name + " must have length " + std::to_string(n) + ", got " + std::to_string(got.rows));
}

// The byte ranges of outputs and inputs: BLAS and the in-place kernels are undefined when an
// output overlaps another array.
struct Span {
    std::string name;
    const char *lo, *hi;
};

Span span_of(py::handle h, const std::string& name) {
    py::array a = py::reinterpret_borrow<py::array>(h);
    const char* p = static_cast<const char*>(a.data());
    return {name, p, p + a.nbytes()};
}

void check_no_overlap(const std::vector<Span>& outputs, const std::vector<Span>& others) {
    for (std::size_t i = 0; i < outputs.size(); ++i) {
        const Span& o = outputs[i];
        auto clash = [&](const Span& s) { return o.lo != o.hi && s.lo != s.hi && o.lo < s.hi && s.lo < o.hi; };
        for (std::size_t j = i + 1; j < outputs.size(); ++j)
            if (clash(outputs[j])) value_error(o.name + " and " + outputs[j].name + " share memory; pass separate arrays");
        for (const Span& s : others)
            if (clash(s)) value_error(o.name + " and " + s.name + " share memory; pass separate arrays");
    }
}

template <typename T>
py::array new_array(std::int64_t rows, std::int64_t cols = -1) {
    dp::ensure_memory(double(sizeof(T)) * double(rows) * double(cols < 0 ? 1 : cols), "the result", "pass smaller arrays");
    if (cols < 0) return py::array(py::dtype::of<T>(), std::vector<py::ssize_t>{(py::ssize_t)rows});
    return py::array(py::dtype::of<T>(), std::vector<py::ssize_t>{(py::ssize_t)rows, (py::ssize_t)cols});
}

// The float type of a call: that of its first float array.
enum class DType { f32, f64 };

DType dtype_of(py::handle h, const std::string& name) {
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
long long to_integer(py::handle h, const std::string& name, long long lo, long long hi) {
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
std::uint64_t to_seed(py::handle h) {
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
double to_double(py::handle h, const std::string& name) {
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

bool to_bool(py::handle h, const std::string& name) {
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

dp::Act to_activation(py::handle h, const std::string& name) {
    return dp::Act(to_row(h, name, "activation", dp::Activations{}));
}
dp::Loss to_loss(py::handle h) { return dp::Loss(to_row(h, "loss", "loss", dp::Losses{})); }

py::list to_list(py::handle h, const std::string& name) {
    if (!py::isinstance<py::list>(h) && !py::isinstance<py::tuple>(h)) type_error(name + " must be a list, got " + type_name(h));
    return py::list(py::reinterpret_borrow<py::object>(h));
}

// The threads of a pass: the user's setting, or the count the caller passes.
int to_threads(py::handle h) { return h.is_none() ? dp::user_threads() : (int)to_integer(h, "threads", 1, 1024); }

// ---------------------------------------------------------------------------------------
// Networks and data

// A network described by a flat [W0, b0, W1, b1, ...] list and one activation per layer.
template <typename T>
dp::Model<T> to_model(py::handle params_h, py::handle acts_h, py::handle loss_h, std::vector<Span>* spans) {
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
        const std::string bn = "params[" + std::to_string(2 * l + 1) + "] (b" + std::to_string(l) + ")";
        Shape ws, bs;
        m.W.push_back(view<T>(params[2 * l], wn, 2, true, &ws));
        m.b.push_back(view<T>(params[2 * l + 1], bn, 1, true, &bs));
        if (ws.rows < 1 || ws.cols < 1) value_error(wn + " must not be empty");
        if (l == 0) m.sizes.push_back((int)ws.rows);
        else if (ws.rows != m.sizes.back())
            value_error(wn + " has " + std::to_string(ws.rows) + " rows but the previous layer has " +
                        std::to_string(m.sizes.back()) + " outputs");
        expect_length(bn, bs, ws.cols);
        m.sizes.push_back((int)ws.cols);
        m.acts.push_back(to_activation(acts[l], "activations[" + std::to_string(l) + "]"));
        if (spans) {
            spans->push_back(span_of(params[2 * l], wn));
            spans->push_back(span_of(params[2 * l + 1], bn));
        }
    }
    return m;
}

// X (n, n_in), and when given Y (n, n_out) and sample weights w (n).
template <typename T>
struct Data {
    const T *X = nullptr, *Y = nullptr, *w = nullptr;
    std::int64_t n = 0;
    std::vector<Span> spans;

    Data(py::handle X_h, py::handle Y_h, py::handle w_h, const dp::Model<T>& m, bool need_y) {
        Shape xs, ys, wsh;
        X = view<T>(X_h, "X", 2, false, &xs);
        n = xs.rows;
        expect_shape("X", xs, n, m.n_in());
        spans.push_back(span_of(X_h, "X"));
        if (need_y && Y_h.is_none()) type_error("Y must be an array, got None");
        if (!Y_h.is_none()) {
            Y = view<T>(Y_h, "Y", 2, false, &ys);
            expect_shape("Y", ys, n, m.n_out());
            spans.push_back(span_of(Y_h, "Y"));
        }
        if (!w_h.is_none()) {
            w = view<T>(w_h, "sample_weight", 1, false, &wsh);
            expect_length("sample_weight", wsh, n);
            spans.push_back(span_of(w_h, "sample_weight"));
        }
    }
};

// Arrays shaped like the parameters [W0, b0, W1, ...] (`per` arrays each), written in place.
template <typename T>
std::vector<T*> param_like(py::handle h, const std::string& name, const dp::Model<T>& m, int per,
                           std::vector<Span>& spans) {
    py::list list = to_list(h, name);
    const int L = m.n_layers();
    if ((int)list.size() != per * 2 * L)
        value_error(name + " must hold " + std::to_string(per * 2 * L) + " arrays (" + std::to_string(per) +
                    " per parameter), got " + std::to_string(list.size()));
    std::vector<T*> out;
    for (int i = 0; i < (int)list.size(); ++i) {
        const int param = i / std::max(per, 1), l = param / 2;
        const bool weights = param % 2 == 0;
        const std::string nm = name + "[" + std::to_string(i) + "]";
        Shape s;
        out.push_back(view<T>(list[i], nm, weights ? 2 : 1, true, &s));
        if (weights) expect_shape(nm, s, m.sizes[l], m.sizes[l + 1]);
        else expect_length(nm, s, m.sizes[l + 1]);
        spans.push_back(span_of(list[i], nm));
    }
    return out;
}

double* metrics_view(py::handle h, int n_out, std::vector<Span>& spans) {
    Shape s;
    double* p = view<double>(h, "metrics", 1, true, &s);
    expect_length("metrics", s, dp::metrics_size(n_out));
    spans.push_back(span_of(h, "metrics"));
    return p;
}

// Polls for Ctrl-C every few milliseconds from inside a loop that runs without the GIL.
struct SignalPoll {
    std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
    bool operator()() {
        const auto now = std::chrono::steady_clock::now();
        if (now - last < std::chrono::milliseconds(dp::tuning::kSignalPollMs)) return false;
        last = now;
        py::gil_scoped_acquire gil;
        return PyErr_CheckSignals() != 0;
    }
};

// ---------------------------------------------------------------------------------------
// Entry points, templates over the float type; the module definition dispatches on the dtype.

template <typename T>
void gemm_impl(py::handle A_h, py::handle B_h, py::handle C_h, bool ta, bool tb, double alpha, double beta) {
    Shape as, bs, cs;
    const T* A = view<T>(A_h, "A", 2, false, &as);
    const T* B = view<T>(B_h, "B", 2, false, &bs);
    T* C = view<T>(C_h, "C", 2, true, &cs);
    const std::int64_t M = ta ? as.cols : as.rows, K = ta ? as.rows : as.cols;
    const std::int64_t KB = tb ? bs.cols : bs.rows, N = tb ? bs.rows : bs.cols;
    if (K != KB)
        value_error("A and B do not chain: op(A) is (" + std::to_string(M) + ", " + std::to_string(K) +
                    ") and op(B) is (" + std::to_string(KB) + ", " + std::to_string(N) + ")");
    expect_shape("C", cs, M, N);
    check_no_overlap({span_of(C_h, "C")}, {span_of(A_h, "A"), span_of(B_h, "B")});
    std::optional<py::gil_scoped_release> nogil;
    if (2.0 * M * N * K >= dp::tuning::kReleaseGilFlops) nogil.emplace();
    dp::gemm<T>(ta, tb, (int)M, (int)N, (int)K, T(alpha), A, (int)as.cols, B, (int)bs.cols, T(beta), C, (int)N);
}

template <typename T>
py::object dense_forward_impl(py::handle X_h, py::handle W_h, py::handle b_h) {
    Shape xs, ws, bs;
    const T* X = view<T>(X_h, "X", 2, false, &xs);
    const T* W = view<T>(W_h, "W", 2, false, &ws);
    const T* b = view<T>(b_h, "b", 1, false, &bs);
    if (xs.cols != ws.rows)
        value_error("X has " + std::to_string(xs.cols) + " columns but W has " + std::to_string(ws.rows) + " rows");
    expect_length("b", bs, ws.cols);
    py::array Z = new_array<T>(xs.rows, ws.cols);
    T* z = static_cast<T*>(Z.mutable_data());
    py::gil_scoped_release nogil;
    dp::dense_forward<T>(dp::act_of<dp::Identity>, (int)xs.rows, (int)xs.cols, (int)ws.cols, X, W, b, z, z);
    return std::move(Z);
}

template <typename T>
py::object dense_backward_impl(py::handle X_h, py::handle W_h, py::handle dZ_h) {
    Shape xs, ws, ds;
    const T* X = view<T>(X_h, "X", 2, false, &xs);
    const T* W = view<T>(W_h, "W", 2, false, &ws);
    const T* dZ = view<T>(dZ_h, "dZ", 2, false, &ds);
    if (xs.cols != ws.rows)
        value_error("X has " + std::to_string(xs.cols) + " columns but W has " + std::to_string(ws.rows) + " rows");
    expect_shape("dZ", ds, xs.rows, ws.cols);
    py::array dW = new_array<T>(ws.rows, ws.cols), db = new_array<T>(ws.cols), dX = new_array<T>(xs.rows, xs.cols);
    T *pW = static_cast<T*>(dW.mutable_data()), *pb = static_cast<T*>(db.mutable_data());
    T* pX = static_cast<T*>(dX.mutable_data());
    {
        py::gil_scoped_release nogil;
        dp::column_sums<T>((int)xs.rows, (int)ws.cols, dZ, pb);
        dp::dense_backward<T>((int)xs.rows, (int)xs.cols, (int)ws.cols, X, W, dZ, pX, pW, T(1), T(0));
    }
    return py::make_tuple(dW, db, dX);
}

template <typename T>
py::object activation_forward_impl(dp::Act act, py::handle Z_h) {
    Shape zs;
    const T* Z = view<T>(Z_h, "Z", 2, false, &zs);
    py::array Zc = new_array<T>(zs.rows, zs.cols), H = new_array<T>(zs.rows, zs.cols);  // the kernel may write Z
    T *zc = static_cast<T*>(Zc.mutable_data()), *h = static_cast<T*>(H.mutable_data());
    std::copy(Z, Z + zs.rows * zs.cols, zc);
    if (zs.cols > 0) dp::activation_forward<T>(act, (int)zs.rows, (int)zs.cols, zc, nullptr, h);
    return std::move(H);
}

template <typename T>
py::object activation_backward_impl(dp::Act act, py::handle Z_h, py::handle H_h, py::handle dH_h) {
    Shape zs, hs, ds;
    const T* Z = view<T>(Z_h, "Z", 2, false, &zs);
    const T* H = view<T>(H_h, "H", 2, false, &hs);
    const T* dH = view<T>(dH_h, "dH", 2, false, &ds);
    expect_shape("H", hs, zs.rows, zs.cols);
    expect_shape("dH", ds, zs.rows, zs.cols);
    py::array dZ = new_array<T>(zs.rows, zs.cols);
    if (zs.cols > 0)
        dp::activation_backward<T>(act, (int)zs.rows, (int)zs.cols, Z, H, dH, static_cast<T*>(dZ.mutable_data()));
    return std::move(dZ);
}

template <typename T>
py::object loss_impl(dp::Loss loss, dp::Act out, py::handle Z_h, py::handle H_h, py::handle Y_h, py::handle w_h,
                     bool backward) {
    Shape zs, hs, ys, wsh;
    const T* Z = view<T>(Z_h, "Z", 2, false, &zs);
    const T* H = view<T>(H_h, "H", 2, false, &hs);
    const T* Y = view<T>(Y_h, "Y", 2, false, &ys);
    expect_shape("H", hs, zs.rows, zs.cols);
    expect_shape("Y", ys, zs.rows, zs.cols);
    const T* w = nullptr;
    if (!w_h.is_none()) {
        w = view<T>(w_h, "sample_weight", 1, false, &wsh);
        expect_length("sample_weight", wsh, zs.rows);
    }
    if (zs.rows == 0 || zs.cols == 0) value_error("Z must have rows and columns, got (" + std::to_string(zs.rows) +
                                                  ", " + std::to_string(zs.cols) + ")");
    const T scale = T(1.0 / double(zs.rows));
    if (!backward)
        return py::float_(dp::loss_forward_backward<T>(loss, out, (int)zs.rows, (int)zs.cols, Z, H, Y, w, scale,
                                                       nullptr, nullptr) / double(zs.rows));
    py::array dZ = new_array<T>(zs.rows, zs.cols);
    dp::loss_forward_backward<T>(loss, out, (int)zs.rows, (int)zs.cols, Z, H, Y, w, scale,
                                 static_cast<T*>(dZ.mutable_data()), nullptr);
    return std::move(dZ);
}

template <typename T>
void optimizer_update_impl(const dp::OptimizerConfig& c, py::handle p_h, py::handle g_h, py::handle state_h,
                           std::int64_t step, double decay) {
    py::array p = as_ndarray(p_h, "param");
    const int nd = (int)p.ndim();
    if (nd < 1 || nd > 2) value_error("param must be 1-D or 2-D, got " + describe(p));
    Shape ps, gs;
    T* P = view<T>(p_h, "param", nd, true, &ps);
    const T* G = view<T>(g_h, "grad", nd, false, &gs);
    expect_shape("grad", gs, ps.rows, ps.cols);
    std::vector<Span> outs{span_of(p_h, "param")};
    py::list state = to_list(state_h, "state");
    const int k = dp::states_per_param(c);
    if ((int)state.size() != k) value_error("state must hold " + std::to_string(k) + " arrays for this optimizer");
    std::vector<T*> s;
    for (int i = 0; i < k; ++i) {
        Shape ss;
        s.push_back(view<T>(state[i], "state[" + std::to_string(i) + "]", nd, true, &ss));
        expect_shape("state[" + std::to_string(i) + "]", ss, ps.rows, ps.cols);
        outs.push_back(span_of(state[i], "state[" + std::to_string(i) + "]"));
    }
    check_no_overlap(outs, {span_of(g_h, "grad")});
    dp::optimizer_update<T>(c, (std::size_t)p.size(), P, G, s.data(), T(decay), step);
}

template <typename T>
bool forward_impl(py::handle X_h, py::handle params_h, py::handle acts_h, py::handle out_h, bool check_finite,
                  int threads) {
    std::vector<Span> ins;
    const dp::Model<T> m = to_model<T>(params_h, acts_h, py::none(), &ins);
    const Data<T> d(X_h, py::none(), py::none(), m, false);
    Shape os;
    T* out = view<T>(out_h, "out", 2, true, &os);
    expect_shape("out", os, d.n, m.n_out());
    ins.insert(ins.end(), d.spans.begin(), d.spans.end());
    check_no_overlap({span_of(out_h, "out")}, ins);
    const dp::ThreadPlan plan = dp::plan_threads(m.sizes, d.n, 0, threads, dp::Pass::predict);
    dp::ensure_memory(sizeof(T) * plan.team * dp::workspace_elements(m.sizes, plan.chunk_rows, false, false),
                      "forward", "use narrower layers");
    dp::BlasThreads blas(plan.blas_threads);
    py::gil_scoped_release nogil;
    return dp::forward<T>(m, d.X, d.n, plan, out, check_finite);
}

template <typename T>
double evaluate_impl(py::handle X_h, py::handle Y_h, py::handle w_h, py::handle params_h, py::handle acts_h,
                     py::handle loss_h, py::handle metrics_h, int threads) {
    std::vector<Span> spans;
    const dp::Model<T> m = to_model<T>(params_h, acts_h, loss_h, nullptr);
    const Data<T> d(X_h, Y_h, w_h, m, true);
    std::vector<double> own(dp::metrics_size(m.n_out()), 0.0);
    double* metrics = metrics_h.is_none() ? own.data() : metrics_view(metrics_h, m.n_out(), spans);
    const dp::ThreadPlan plan = dp::plan_threads(m.sizes, d.n, 0, threads, dp::Pass::evaluate);
    dp::ensure_memory(sizeof(T) * dp::workspace_elements(m.sizes, plan.chunk_rows, false, false), "evaluate",
                      "use narrower layers");
    const double before = metrics[0];
    dp::BlasThreads blas(plan.blas_threads);
    {
        py::gil_scoped_release nogil;
        dp::evaluate<T>(m, d.X, d.Y, d.w, d.n, plan, metrics);
    }
    return (metrics[0] - before) / double(d.n);
}

template <typename T>
void gradients_impl(py::handle X_h, py::handle Y_h, py::handle w_h, py::handle params_h, py::handle acts_h,
                          py::handle loss_h, py::handle grads_h, int threads) {
    std::vector<Span> ins, outs;
    const dp::Model<T> m = to_model<T>(params_h, acts_h, loss_h, &ins);
    const Data<T> d(X_h, Y_h, w_h, m, true);
    ins.insert(ins.end(), d.spans.begin(), d.spans.end());
    std::vector<T*> g = param_like<T>(grads_h, "grads", m, 1, outs);
    check_no_overlap(outs, ins);
    std::vector<T*> gW, gb;
    for (std::size_t i = 0; i < g.size(); ++i) (i % 2 ? gb : gW).push_back(g[i]);
    const dp::ThreadPlan plan = dp::plan_threads(m.sizes, d.n, 0, threads, dp::Pass::gradients);
    dp::ensure_memory(sizeof(T) * dp::workspace_elements(m.sizes, plan.chunk_rows, true, false), "gradients",
                      "use narrower layers");
    dp::BlasThreads blas(plan.blas_threads);
    py::gil_scoped_release nogil;
    dp::gradients<T>(m, d.X, d.Y, d.w, d.n, plan, gW, gb);
}

// The optimizer's step counter: an int64 array of shape (1,), read and written in place.
std::int64_t* step_view(py::handle h, std::vector<Span>& spans) {
    Shape s;
    std::int64_t* p = view<std::int64_t>(h, "step", 1, true, &s);
    expect_length("step", s, 1);
    if (*p < 0) value_error("step must hold a count >= 0, got " + std::to_string(*p));
    spans.push_back(span_of(h, "step"));
    return p;
}

template <typename T>
double train_epoch_impl(py::handle X_h, py::handle Y_h, py::handle w_h, py::handle perm_h, py::handle params_h,
                        py::handle acts_h, py::handle loss_h, int batch_size, const dp::OptimizerConfig& opt,
                        const dp::Objective& objective, py::handle state_h, py::handle step_h, py::handle metrics_h,
                        int threads) {
    std::vector<Span> outs;
    const dp::Model<T> m = to_model<T>(params_h, acts_h, loss_h, &outs);
    const Data<T> d(X_h, Y_h, w_h, m, true);
    std::vector<Span> ins = d.spans;
    dp::Epoch<T> e;
    e.X = d.X, e.Y = d.Y, e.w = d.w, e.n = d.n, e.batch = batch_size, e.opt = opt, e.objective = objective;
    if (!perm_h.is_none()) {
        Shape ps;
        e.perm = view<std::int64_t>(perm_h, "perm", 1, false, &ps);
        expect_length("perm", ps, d.n);
        for (std::int64_t i = 0; i < d.n; ++i)
            if (e.perm[i] < 0 || e.perm[i] >= d.n)
                value_error("perm[" + std::to_string(i) + "] = " + std::to_string(e.perm[i]) +
                            " is not a row index in [0, " + std::to_string(d.n) + ")");
        ins.push_back(span_of(perm_h, "perm"));
    }
    e.state = param_like<T>(state_h, "state", m, dp::states_per_param(opt), outs);
    std::vector<double> own(dp::metrics_size(m.n_out()), 0.0);
    e.metrics = metrics_h.is_none() ? own.data() : metrics_view(metrics_h, m.n_out(), outs);
    std::int64_t own_step = 0;
    std::int64_t* step = step_h.is_none() ? &own_step : step_view(step_h, outs);
    check_no_overlap(outs, ins);
    e.plan = dp::plan_threads(m.sizes, d.n, batch_size, threads, dp::Pass::train);
    dp::ensure_memory(sizeof(T) * dp::workspace_elements(m.sizes, e.plan.chunk_rows, true, !dp::is_plain_sgd(opt)),
                      "train_epoch", "use a smaller batch_size or narrower layers");
    SignalPoll poll;
    e.should_stop = [&poll]() { return poll(); };
    e.step = *step;
    const double before = e.metrics[0];
    {
        dp::BlasThreads blas(e.plan.blas_threads);
        py::gil_scoped_release nogil;
        dp::train_epoch<T>(m, e);
    }
    *step = e.step;  // written back on Ctrl-C too: the steps taken count
    if (e.stopped) throw py::error_already_set();
    return (e.metrics[0] - before) / double(d.n);
}

void shuffled_order_impl(py::handle seed_h, py::handle out_h) {
    const std::uint64_t seed = to_seed(seed_h);
    Shape s;
    std::int64_t* out = view<std::int64_t>(out_h, "out", 1, true, &s);
    py::gil_scoped_release nogil;
    dp::shuffled_order(seed, s.rows, out);
}

DType dtype_of_params(py::handle params_h) {
    py::list params = to_list(params_h, "params");
    if (params.size() == 0) value_error("params must be a non-empty list [W0, b0, W1, b1, ...]");
    return dtype_of(params[0], "params[0] (W0)");
}

template <class List>
py::tuple names_of(List) {
    py::tuple out(List::size);
    for (int i = 0; i < List::size; ++i) out[i] = py::str(List::names[i]);
    return out;
}

}  // namespace

PYBIND11_MODULE(_core, mod) {
    mod.doc() = "denseprop's C++ backend. Arrays must be C-contiguous native float32 or float64; nothing is\n"
                "converted or copied. Arguments are checked for memory safety only: denseprop's Python layer\n"
                "(denseprop._checks) checks what they mean.";
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const dp::MemoryShortage& e) {
            PyErr_SetString(PyExc_MemoryError, e.what());
        }
    });

    mod.attr("ACTIVATIONS") = names_of(dp::Activations{});
    mod.attr("LOSSES") = names_of(dp::Losses{});
    mod.attr("OPTIMIZERS") = names_of(dp::Optimizers{});

    py::class_<dp::OptimizerConfig>(mod, "OptimizerConfig",
                                    "The hyper-parameters of one epoch's optimizer steps (lr is the epoch's rate).")
        .def(py::init([](py::handle kind) {
                 dp::OptimizerConfig c;
                 c.kind = dp::Opt(to_row(kind, "kind", "optimizer", dp::Optimizers{}));
                 return c;
             }),
             "kind"_a)
        .def_property_readonly("kind", [](const dp::OptimizerConfig& c) { return dp::Optimizers::names[int(c.kind)]; })
        .def_readwrite("lr", &dp::OptimizerConfig::lr)
        .def_readwrite("momentum", &dp::OptimizerConfig::momentum)
        .def_readwrite("nesterov", &dp::OptimizerConfig::nesterov)
        .def_readwrite("weight_decay", &dp::OptimizerConfig::weight_decay)
        .def_readwrite("beta1", &dp::OptimizerConfig::beta1)
        .def_readwrite("beta2", &dp::OptimizerConfig::beta2)
        .def_readwrite("eps", &dp::OptimizerConfig::eps)
        .def("states", &dp::states_per_param, "State arrays each parameter keeps.");

    py::class_<dp::Objective>(mod, "Objective", "How training normalises a batch's loss (see model.hpp).")
        .def(py::init<>())
        .def_readwrite("output_scale", &dp::Objective::output_scale)
        .def_readwrite("by_weight_sum", &dp::Objective::by_weight_sum)
        .def_readwrite("decay_by_batch", &dp::Objective::decay_by_batch);

    mod.def(
        "gemm",
        [](py::handle A, py::handle B, py::handle C, py::handle ta, py::handle tb, py::handle alpha, py::handle beta) {
            const bool trans_a = to_bool(ta, "trans_a"), trans_b = to_bool(tb, "trans_b");
            const double a = to_double(alpha, "alpha"), b = to_double(beta, "beta");
            with_dtype(dtype_of(C, "C"), [&](auto t) { gemm_impl<decltype(t)>(A, B, C, trans_a, trans_b, a, b); });
        },
        "A"_a, "B"_a, "C"_a, "trans_a"_a = false, "trans_b"_a = false, "alpha"_a = 1.0, "beta"_a = 0.0,
        "C (M, N) = alpha * op(A) @ op(B) + beta * C, in place. op(A) is A.T when trans_a.");
    mod.def(
        "dense_forward",
        [](py::handle X, py::handle W, py::handle b) {
            return with_dtype(dtype_of(X, "X"), [&](auto t) { return dense_forward_impl<decltype(t)>(X, W, b); });
        },
        "X"_a, "W"_a, "b"_a, "Z (n, n_out) = X (n, n_in) @ W (n_in, n_out) + b (n_out,).");
    mod.def(
        "dense_backward",
        [](py::handle X, py::handle W, py::handle dZ) {
            return with_dtype(dtype_of(X, "X"), [&](auto t) { return dense_backward_impl<decltype(t)>(X, W, dZ); });
        },
        "X"_a, "W"_a, "dZ"_a, "(dW, db, dX) = (X.T @ dZ, dZ.sum(0), dZ @ W.T).");
    mod.def(
        "activation_forward",
        [](py::handle name, py::handle Z) {
            const dp::Act a = to_activation(name, "name");
            return with_dtype(dtype_of(Z, "Z"), [&](auto t) { return activation_forward_impl<decltype(t)>(a, Z); });
        },
        "name"_a, "Z"_a, "H = act(Z), Z (n, k); softmax is row-wise.");
    mod.def(
        "activation_backward",
        [](py::handle name, py::handle Z, py::handle H, py::handle dH) {
            const dp::Act a = to_activation(name, "name");
            return with_dtype(dtype_of(Z, "Z"),
                              [&](auto t) { return activation_backward_impl<decltype(t)>(a, Z, H, dH); });
        },
        "name"_a, "Z"_a, "H"_a, "dH"_a, "dZ = dH * act'(Z) (softmax: the row-wise Jacobian product).");
    mod.def(
        "loss_forward",
        [](py::handle loss, py::handle out, py::handle Z, py::handle H, py::handle Y, py::handle w) {
            const dp::Loss l = to_loss(loss);
            const dp::Act a = to_activation(out, "output_activation");
            return with_dtype(dtype_of(Z, "Z"), [&](auto t) { return loss_impl<decltype(t)>(l, a, Z, H, Y, w, false); });
        },
        "loss"_a, "output_activation"_a, "Z"_a, "H"_a, "Y"_a, "sample_weight"_a = py::none(),
        "Mean loss (1/B) sum_i w_i loss_i of output pre-activations Z (B, k), H = act(Z), targets Y.");
    mod.def(
        "loss_backward",
        [](py::handle loss, py::handle out, py::handle Z, py::handle H, py::handle Y, py::handle w) {
            const dp::Loss l = to_loss(loss);
            const dp::Act a = to_activation(out, "output_activation");
            return with_dtype(dtype_of(Z, "Z"), [&](auto t) { return loss_impl<decltype(t)>(l, a, Z, H, Y, w, true); });
        },
        "loss"_a, "output_activation"_a, "Z"_a, "H"_a, "Y"_a, "sample_weight"_a = py::none(),
        "dZ (B, k): the gradient of loss_forward with respect to Z.");
    mod.def(
        "optimizer_update",
        [](const dp::OptimizerConfig& c, py::handle param, py::handle grad, py::handle state, py::handle step,
           py::handle decay) {
            const std::int64_t t = to_integer(step, "step", 1, LLONG_MAX);
            const double wd = to_double(decay, "decay");
            with_dtype(dtype_of(param, "param"),
                       [&](auto f) { optimizer_update_impl<decltype(f)>(c, param, grad, state, t, wd); });
        },
        "config"_a, "param"_a, "grad"_a, "state"_a, "step"_a, "decay"_a,
        "One optimizer step on param, in place: state holds config.states() arrays shaped like param,\n"
        "step is the 1-based step number, decay the weight decay (0 for biases).");
    mod.def(
        "forward",
        [](py::handle X, py::handle params, py::handle acts, py::handle out, py::handle check, py::handle threads) {
            const bool check_finite = to_bool(check, "check_finite");
            const int t = to_threads(threads);
            return with_dtype(dtype_of_params(params), [&](auto f) {
                return forward_impl<decltype(f)>(X, params, acts, out, check_finite, t);
            });
        },
        "X"_a, "params"_a, "activations"_a, "out"_a, "check_finite"_a = false, "threads"_a = py::none(),
        "Writes the network's output for X (n, n_in) into out (n, n_out). params = [W0, b0, W1, b1, ...];\n"
        "one activation name per layer. With check_finite, returns False (and stops) at the first\n"
        "chunk of X holding NaN or inf; True otherwise.");
    mod.def(
        "evaluate",
        [](py::handle X, py::handle Y, py::handle params, py::handle acts, py::handle loss, py::handle w,
           py::handle metrics, py::handle threads) {
            const int t = to_threads(threads);
            return with_dtype(dtype_of_params(params), [&](auto f) {
                return evaluate_impl<decltype(f)>(X, Y, w, params, acts, loss, metrics, t);
            });
        },
        "X"_a, "Y"_a, "params"_a, "activations"_a, "loss"_a, "sample_weight"_a = py::none(), "metrics"_a = py::none(),
        "threads"_a = py::none(),
        "Mean loss (1/n) sum_i w_i loss_i over X (n, n_in), Y (n, n_out). If given, the float64 metrics\n"
        "(2 + n_out) gets [sum_i w_i loss_i, weighted correct rows, weighted squared error per output]\n"
        "added.");
    mod.def(
        "gradients",
        [](py::handle X, py::handle Y, py::handle params, py::handle acts, py::handle loss, py::handle w,
           py::handle grads, py::handle threads) {
            const int t = to_threads(threads);
            with_dtype(dtype_of_params(params),
                       [&](auto f) { gradients_impl<decltype(f)>(X, Y, w, params, acts, loss, grads, t); });
        },
        "X"_a, "Y"_a, "params"_a, "activations"_a, "loss"_a, "sample_weight"_a, "grads"_a, "threads"_a = py::none(),
        "Writes into grads = [dW0, db0, dW1, db1, ...] the gradients of evaluate() over all rows.");
    mod.def(
        "train_epoch",
        [](py::handle X, py::handle Y, py::handle params, py::handle acts, py::handle loss, py::handle batch_size,
           py::handle perm, py::handle w, const dp::OptimizerConfig& opt, py::handle state, py::handle step,
           py::handle metrics, std::optional<dp::Objective> objective, py::handle threads) {
            const int bs = (int)to_integer(batch_size, "batch_size", 1, INT_MAX);
            const int t = to_threads(threads);
            const dp::Objective obj = objective.value_or(dp::Objective());
            return with_dtype(dtype_of_params(params), [&](auto f) {
                return train_epoch_impl<decltype(f)>(X, Y, w, perm, params, acts, loss, bs, opt, obj, state, step,
                                                     metrics, t);
            });
        },
        "X"_a, "Y"_a, "params"_a, "activations"_a, "loss"_a, "batch_size"_a, "perm"_a, "sample_weight"_a,
        "optimizer"_a, "state"_a, "step"_a, "metrics"_a, "objective"_a = py::none(), "threads"_a = py::none(),
        "One epoch of mini-batch training, updating params and the optimizer state in place; returns\n"
        "the epoch's mean training loss, from each batch's forward pass before its update. Rows are\n"
        "visited in the order perm (int64, length n; None: in order) in batches of batch_size rows,\n"
        "the last one possibly smaller. optimizer is an OptimizerConfig; state holds optimizer.states()\n"
        "arrays per parameter, ordered W0, b0, W1, ... with each parameter's arrays adjacent; step an\n"
        "int64 array of shape (1,) counting the optimizer's steps, updated in place (on Ctrl-C too).");
    mod.def("shuffled_order", &shuffled_order_impl, "seed"_a, "out"_a,
            "Fills out (int64, n) with the permutation of 0..n-1 that seed (an int in [0, 2**64)) fixes:\n"
            "Fisher-Yates driven by splitmix64 hashes of seed + i * 0x9E3779B97F4A7C15.");
    mod.def(
        "plan_threads",
        [](std::vector<int> sizes, std::int64_t rows, int batch, int threads, const std::string& pass) {
            const dp::Pass p = pass == "train" ? dp::Pass::train
                               : pass == "evaluate" ? dp::Pass::evaluate
                               : pass == "gradients" ? dp::Pass::gradients
                                                     : dp::Pass::predict;
            if (sizes.size() < 2 || rows < 0 || threads < 1) value_error("plan_threads: bad arguments");
            const dp::ThreadPlan plan = dp::plan_threads(sizes, rows, std::max(batch, 1), threads, p);
            return py::dict("blas_threads"_a = plan.blas_threads, "team"_a = plan.team, "chunk_rows"_a = plan.chunk_rows);
        },
        "layers"_a, "rows"_a, "batch"_a, "threads"_a, "pass_"_a,
        "The thread plan of a pass ('predict', 'evaluate', 'gradients' or 'train'): OpenBLAS's threads,\n"
        "denseprop's own threads and the rows per chunk.");
    mod.def(
        "set_num_threads", [](py::handle n) { dp::set_user_threads((int)to_integer(n, "n", 1, 1024)); }, "n"_a,
        "Sets the user's thread count (OpenBLAS's, and denseprop's own threads).");
    mod.def("get_num_threads", &dp::user_threads, "The user's thread count.");
    mod.def("available_memory", &dp::available_memory,
            "Bytes of memory the system can still provide (MemAvailable on Linux); -1 if unknown.");
    mod.def(
        "ensure_memory",
        [](double bytes, const std::string& what, const std::string& fix) { dp::ensure_memory(bytes, what, fix); },
        "nbytes"_a, "what"_a, "fix"_a, "Raises MemoryError, naming what and the fix, when nbytes cannot fit.");
    mod.def("blas_info", []() {
        return py::dict("config"_a = std::string(scipy_openblas_get_config()),
                        "core"_a = std::string(scipy_openblas_get_corename()),
                        "threads"_a = scipy_openblas_get_num_threads());
    });
}
