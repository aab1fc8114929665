// Python bindings of denseprop._core.
//
// Arrays arrive as plain handles and are checked by hand (dtype, byte order, contiguity,
// shape, writability): nothing is ever converted or copied, so an output can never be
// written into a temporary and lost, and a bad argument is a TypeError or ValueError that
// names it. Every pointer and shape is read before the GIL is released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cblas.h>

#include <chrono>
#include <cstdio>
#include <mutex>
#include <climits>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

#include "kernels.hpp"
#include "team.hpp"
#include "train.hpp"

namespace py = pybind11;
using namespace pybind11::literals;

namespace {

enum class DType { f32, f64 };

[[noreturn]] void type_error(const std::string& msg) { throw py::type_error(msg); }
[[noreturn]] void value_error(const std::string& msg) { throw py::value_error(msg); }

py::array as_ndarray(py::handle h, const std::string& name) {
    if (!py::isinstance<py::array>(h))
        type_error(name + " must be a numpy.ndarray, got " +
                   std::string(py::str(py::type::of(h).attr("__name__"))) +
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

// The float type of an array argument, which must be native-endian float32 or float64.
DType float_dtype(py::handle h, const std::string& name) {
    py::array a = as_ndarray(h, name);
    const py::dtype dt = a.dtype();
    const bool native = is_native(dt);
    if (dt.kind() == 'f' && native && (dt.itemsize() == 4 || dt.itemsize() == 8))
        return dt.itemsize() == 4 ? DType::f32 : DType::f64;
    type_error(name + " must be a native float32 or float64 array, got " + describe(a) +
               "; convert it with numpy.ascontiguousarray(" + name + ", dtype=numpy.float32)");
}

struct Shape {
    std::int64_t rows = 1, cols = 1;
};

// Checks one array argument without converting it; returns its data pointer.
template <typename T>
T* view(py::handle h, const std::string& name, int ndim, bool writable, Shape* shape = nullptr) {
    py::array a = as_ndarray(h, name);
    const py::dtype dt = a.dtype();
    const bool native = is_native(dt);
    if (dt.kind() != 'f' || dt.itemsize() != (py::ssize_t)sizeof(T) || !native)
        type_error(name + " must be a native " + std::string(sizeof(T) == 4 ? "float32" : "float64") +
                   " array, got " + describe(a) + "; every array argument of one call shares one dtype");
    if (a.ndim() != ndim)
        value_error(name + " must be " + std::to_string(ndim) + "-D, got " + describe(a));
    if (!(a.flags() & py::array::c_style))
        type_error(name + " must be C-contiguous, got a strided or Fortran-order view; "
                          "pass numpy.ascontiguousarray(" + name + ")");
    if (writable && !a.writeable())
        value_error(name + " is read-only but is written to; pass a writable array");
    if (reinterpret_cast<std::uintptr_t>(a.data()) % alignof(T) != 0)
        type_error(name + " is not aligned to its element size; pass a copy");
    for (int d = 0; d < ndim; ++d)
        if (a.shape(d) > INT_MAX)
            value_error(name + " has a dimension of " + std::to_string(a.shape(d)) +
                        ", above the 32-bit BLAS limit of " + std::to_string(INT_MAX));
    if (shape) {
        shape->rows = ndim >= 1 ? a.shape(0) : 1;
        shape->cols = ndim >= 2 ? a.shape(1) : 1;
    }
    return writable ? static_cast<T*>(a.mutable_data()) : const_cast<T*>(static_cast<const T*>(a.data()));
}

void expect_shape(const std::string& name, const Shape& got, std::int64_t rows, std::int64_t cols) {
    if (got.rows != rows || got.cols != cols)
        value_error(name + " must have shape (" + std::to_string(rows) + ", " + std::to_string(cols) +
                    "), got (" + std::to_string(got.rows) + ", " + std::to_string(got.cols) + ")");
}

void expect_length(const std::string& name, const Shape& got, std::int64_t n) {
    if (got.rows != n)
        value_error(name + " must have length " + std::to_string(n) + ", got " + std::to_string(got.rows));
}

// The byte range of an array, to refuse outputs that overlap inputs (BLAS and the
// in-place kernels are undefined then).
struct Span {
    std::string name;
    const char* lo;
    const char* hi;
};

Span span_of(py::handle h, const std::string& name) {
    py::array a = py::reinterpret_borrow<py::array>(h);
    const char* p = static_cast<const char*>(a.data());
    return {name, p, p + a.nbytes()};
}

void check_no_overlap(const std::vector<Span>& outputs, const std::vector<Span>& others) {
    for (std::size_t i = 0; i < outputs.size(); ++i) {
        const Span& o = outputs[i];
        if (o.lo == o.hi) continue;
        auto clash = [&](const Span& s) { return s.lo != s.hi && o.lo < s.hi && s.lo < o.hi; };
        for (std::size_t j = i + 1; j < outputs.size(); ++j)
            if (clash(outputs[j]))
                value_error(o.name + " and " + outputs[j].name + " share memory; pass separate arrays");
        for (const Span& s : others)
            if (clash(s)) value_error(o.name + " and " + s.name + " share memory; pass separate arrays");
    }
}

// h as a Python int: Python ints and NumPy integers (anything with __index__), but not bools.
py::object as_index(py::handle h, const std::string& name, const std::string& expected) {
    const bool is_bool = py::isinstance<py::bool_>(h) ||
                         std::string(py::str(py::type::of(h).attr("__name__"))) == "bool";
    if (is_bool || !PyIndex_Check(h.ptr()))
        type_error(name + " must be " + expected + ", got " + std::string(py::str(py::type::of(h).attr("__name__"))));
    py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(h.ptr()));
    if (!index) throw py::error_already_set();
    return index;
}

long long index_value(py::handle h, const std::string& name) {
    py::object index = as_index(h, name, "an int");
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
    if (overflow) value_error(name + " is out of range, got " + std::string(py::str(h)));
    if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
    return v;
}

int to_int(py::handle h, const std::string& name, long long lo, long long hi) {
    const long long v = index_value(h, name);
    if (v < lo || v > hi)
        value_error(name + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                    std::to_string(v));
    return (int)v;
}

// Python and NumPy real numbers (not bools), finite.
double to_double(py::handle h, const std::string& name) {
    const std::string type_name = py::str(py::type::of(h).attr("__name__"));
    const bool is_bool = py::isinstance<py::bool_>(h) || type_name == "bool";
    const bool real = py::isinstance<py::float_>(h) || PyIndex_Check(h.ptr()) ||
                      (PyFloat_Check(h.ptr()) || type_name.rfind("float", 0) == 0);
    if (is_bool || !real) type_error(name + " must be a float, got " + type_name);
    const double v = PyFloat_AsDouble(h.ptr());
    if (v == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();  // e.g. an int too large for a double
        value_error(name + " must be a finite float, got " + std::string(py::str(h)));
    }
    if (!std::isfinite(v)) value_error(name + " must be finite, got " + std::to_string(v));
    return v;
}

bool to_bool(py::handle h, const std::string& name) {
    const std::string type_name = py::str(py::type::of(h).attr("__name__"));
    if (!py::isinstance<py::bool_>(h) && type_name != "bool")
        type_error(name + " must be a bool, got " + type_name);
    return PyObject_IsTrue(h.ptr()) == 1;
}

std::string to_string(py::handle h, const std::string& name) {
    if (!py::isinstance<py::str>(h))
        type_error(name + " must be a str, got " + std::string(py::str(py::type::of(h).attr("__name__"))));
    return h.cast<std::string>();
}

dp::Act to_activation(py::handle h, const std::string& name) {
    dp::Act a;
    const std::string s = to_string(h, name);
    if (!dp::parse_activation(s, a))
        value_error(name + ": unknown activation '" + s +
                    "'; choose one of identity, relu, leaky_relu, elu, gelu, sigmoid, tanh, softplus, softmax");
    return a;
}

dp::Loss to_loss(py::handle h) {
    dp::Loss l;
    const std::string s = to_string(h, "loss");
    if (!dp::parse_loss(s, l))
        value_error("loss: unknown loss '" + s + "'; choose one of mse, cross_entropy, mae, huber");
    return l;
}

py::list to_list(py::handle h, const std::string& name) {
    if (!py::isinstance<py::list>(h) && !py::isinstance<py::tuple>(h))
        type_error(name + " must be a list, got " + std::string(py::str(py::type::of(h).attr("__name__"))));
    return py::list(py::reinterpret_borrow<py::object>(h));
}

void check_output_pair(dp::Loss loss, dp::Act out) {
    if (loss == dp::Loss::cross_entropy && out != dp::Act::softmax && out != dp::Act::sigmoid)
        value_error("loss 'cross_entropy' needs a 'softmax' or 'sigmoid' output activation");
}

// A network described by a flat [W0, b0, W1, b1, ...] list and one activation per layer.
template <typename T>
dp::Model<T> to_model(py::handle params_h, py::handle acts_h, std::vector<Span>* spans) {
    py::list params = to_list(params_h, "params");
    py::list acts = to_list(acts_h, "activations");
    if (params.size() < 2 || params.size() % 2 != 0)
        value_error("params must be a non-empty list [W0, b0, W1, b1, ...], got " +
                    std::to_string(params.size()) + " arrays");
    const int L = (int)params.size() / 2;
    if ((int)acts.size() != L)
        value_error("activations must have one name per layer (" + std::to_string(L) + "), got " +
                    std::to_string(acts.size()));
    dp::Model<T> m;
    for (int l = 0; l < L; ++l) {
        const std::string wn = "params[" + std::to_string(2 * l) + "] (W" + std::to_string(l) + ")";
        const std::string bn = "params[" + std::to_string(2 * l + 1) + "] (b" + std::to_string(l) + ")";
        Shape ws, bs;
        T* W = view<T>(params[2 * l], wn, 2, true, &ws);
        T* b = view<T>(params[2 * l + 1], bn, 1, true, &bs);
        if (ws.rows < 1 || ws.cols < 1) value_error(wn + " must not be empty");
        if (l == 0) m.sizes.push_back((int)ws.rows);
        else if (ws.rows != m.sizes.back())
            value_error(wn + " has " + std::to_string(ws.rows) + " rows but the previous layer has " +
                        std::to_string(m.sizes.back()) + " outputs");
        expect_length(bn, bs, ws.cols);
        m.sizes.push_back((int)ws.cols);
        m.W.push_back(W);
        m.b.push_back(b);
        const dp::Act a = to_activation(acts[l], "activations[" + std::to_string(l) + "]");
        if (a == dp::Act::softmax && l != L - 1) value_error("softmax is only allowed on the output layer");
        m.acts.push_back(a);
        if (spans) {
            spans->push_back(span_of(params[2 * l], wn));
            spans->push_back(span_of(params[2 * l + 1], bn));
        }
    }
    return m;
}

// X (n, n_in), Y (n, n_out), optional w (n): shared checks of the data arguments.
template <typename T>
struct Data {
    const T* X = nullptr;
    const T* Y = nullptr;
    const T* w = nullptr;
    std::int64_t n = 0;
    std::vector<Span> spans;
};

template <typename T>
Data<T> to_data(py::handle X_h, py::handle Y_h, py::handle w_h, const dp::Model<T>& m, bool need_rows) {
    Data<T> d;
    Shape xs, ys, wsh;
    d.X = view<T>(X_h, "X", 2, false, &xs);
    d.n = xs.rows;
    if (need_rows && d.n == 0) value_error("X has no rows; pass at least one sample");
    expect_shape("X", xs, d.n, m.n_in());
    d.spans.push_back(span_of(X_h, "X"));
    if (!Y_h.is_none()) {
        d.Y = view<T>(Y_h, "Y", 2, false, &ys);
        expect_shape("Y", ys, d.n, m.n_out());
        d.spans.push_back(span_of(Y_h, "Y"));
    }
    if (!w_h.is_none()) {
        d.w = view<T>(w_h, "sample_weight", 1, false, &wsh);
        expect_length("sample_weight", wsh, d.n);
        d.spans.push_back(span_of(w_h, "sample_weight"));
    }
    return d;
}

double* metrics_view(py::handle h, int n_out) {
    Shape s;
    double* p = view<double>(h, "metrics", 1, true, &s);
    expect_length("metrics", s, dp::metrics_size(n_out));
    return p;
}

// Memory the system can still give us, in bytes (negative when unknown).
double available_memory() {
    if (FILE* f = std::fopen("/proc/meminfo", "r")) {
        char line[256];
        long long kb = -1;
        while (std::fgets(line, sizeof line, f))
            if (std::sscanf(line, "MemAvailable: %lld kB", &kb) == 1) break;
        std::fclose(f);
        if (kb >= 0) return double(kb) * 1024.0;
    }
#if defined(_SC_AVPHYS_PAGES) && defined(_SC_PAGESIZE)
    const long pages = sysconf(_SC_AVPHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    if (pages > 0 && size > 0) return double(pages) * double(size);
#endif
    return -1.0;
}

// Refuses, up front, work whose buffers cannot fit: with Linux overcommit an allocation
// that merely succeeds can still get the process killed when the pages are touched.
void ensure_memory(double bytes, const std::string& what,
                   const std::string& fix = "use a smaller batch_size or narrower layers") {
    if (bytes < 256.0 * (1 << 20)) return;
    const double avail = available_memory();
    if (avail >= 0 && bytes > avail) {
        const std::string msg = what + " needs " + std::to_string((long long)(bytes / (1 << 20))) +
                                " MiB but only " + std::to_string((long long)(avail / (1 << 20))) +
                                " MiB of memory is available; " + fix;
        PyErr_SetString(PyExc_MemoryError, msg.c_str());
        throw py::error_already_set();
    }
}

// ---------------------------------------------------------------------------------------
// BLAS threads. dp.set_num_threads sets the user's count. Passes whose matrix products are
// all small run single-threaded meanwhile: below about 256^3 multiply-adds a second thread
// gains little (shared/notes/build-and-blas.md: 139 -> 209 GFLOP/s at 256^3, none below
// 64^3) and on a busy machine a 2-thread product waits on the descheduled thread far longer
// than it saves (tabular net, batch 32: 0.73 M samples/s on 1 thread, 0.67 M on 2).

constexpr double kThreadedProduct = 256.0 * 256 * 256;  // multiply-adds of the largest product
constexpr double kParallelForwardWork = 1e7;             // multiply-adds of a whole forward pass
// Below this size of its largest product (multiply-adds), training holds OpenBLAS at one
// thread and shares products of 2^20 multiply-adds and up among threads of its own, one
// single-threaded BLAS call per thread (dp::train_epoch). Measured on 2 cores, 2 threads,
// samples/s with the team / with 2-thread OpenBLAS: [256, 256, 256, 10] batch 64 (largest
// product 4.2 M; held at one thread before) 238 k / 218 k, mnist-shaped [784, 256, 128, 10]
// batch 128 (25.7 M) 213 k / 198 k, [784, 512, 512, 10] batch 128 (51 M) 68 k / 77 k, wide
// (1.07 G) 2.3 k / 2.5 k.
constexpr double kTeamTrainedProduct = 1 << 25;

std::mutex g_threads_mutex;
int g_user_threads = -1;  // -1: not read from OpenBLAS yet
int g_single_scopes = 0;  // passes currently holding OpenBLAS at one thread

int user_threads_locked() {
    if (g_user_threads < 0) g_user_threads = scipy_openblas_get_num_threads();
    return g_user_threads;
}

void set_user_threads(int n) {
    std::lock_guard<std::mutex> lock(g_threads_mutex);
    g_user_threads = n;
    if (g_single_scopes == 0) scipy_openblas_set_num_threads(n);
}

int get_user_threads() {
    std::lock_guard<std::mutex> lock(g_threads_mutex);
    return user_threads_locked();
}

// Holds OpenBLAS at one thread for its lifetime when the pass's largest product has fewer
// than hold_below multiply-adds.
class SmallProductThreads {
  public:
    SmallProductThreads(const std::vector<int>& sizes, std::int64_t rows, double hold_below = kThreadedProduct) {
        double largest = 0;
        for (std::size_t l = 0; l + 1 < sizes.size(); ++l)
            largest = std::max(largest, double(rows) * sizes[l] * sizes[l + 1]);
        if (largest >= hold_below) return;
        std::lock_guard<std::mutex> lock(g_threads_mutex);
        if (user_threads_locked() <= 1) return;
        if (g_single_scopes++ == 0) scipy_openblas_set_num_threads(1);
        active_ = true;
    }
    // True while this pass holds BLAS at one thread although the user asked for more.
    bool holds_blas() const { return active_; }
    ~SmallProductThreads() {
        if (!active_) return;
        std::lock_guard<std::mutex> lock(g_threads_mutex);
        if (--g_single_scopes == 0) scipy_openblas_set_num_threads(g_user_threads);
    }
    SmallProductThreads(const SmallProductThreads&) = delete;
    SmallProductThreads& operator=(const SmallProductThreads&) = delete;

  private:
    bool active_ = false;
};

// Polls for Ctrl-C every ~20 ms from inside a loop that runs without the GIL.
struct SignalPoll {
    std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
    bool operator()() {
        const auto now = std::chrono::steady_clock::now();
        if (now - last < std::chrono::milliseconds(20)) return false;
        last = now;
        py::gil_scoped_acquire gil;
        return PyErr_CheckSignals() != 0;
    }
};

// ---------------------------------------------------------------------------------------
// Entry points, each dispatching on the dtype of its first array.

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
    if (2.0 * M * N * K >= 2e5) nogil.emplace();
    dp::gemm<T>(ta, tb, (int)M, (int)N, (int)K, T(alpha), A, (int)as.cols, B, (int)bs.cols, T(beta), C, (int)N);
}

template <typename T>
py::array_t<T> new_array(std::int64_t rows, std::int64_t cols, int ndim) {
    ensure_memory(double(sizeof(T)) * double(rows) * double(ndim == 1 ? 1 : cols), "the result",
                  "pass smaller arrays");
    if (ndim == 1) return py::array_t<T>(std::vector<py::ssize_t>{(py::ssize_t)rows});
    return py::array_t<T>(std::vector<py::ssize_t>{(py::ssize_t)rows, (py::ssize_t)cols});
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
    auto Z = new_array<T>(xs.rows, ws.cols, 2);
    T* z = Z.mutable_data();
    {
        py::gil_scoped_release nogil;
        dp::dense_forward<T>((int)xs.rows, (int)xs.cols, (int)ws.cols, X, W, b, z);
    }
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
    auto dW = new_array<T>(ws.rows, ws.cols, 2);
    auto db = new_array<T>(ws.cols, 1, 1);
    auto dX = new_array<T>(xs.rows, xs.cols, 2);
    T *pW = dW.mutable_data(), *pb = db.mutable_data(), *pX = dX.mutable_data();
    {
        py::gil_scoped_release nogil;
        dp::dense_backward<T>((int)xs.rows, (int)xs.cols, (int)ws.cols, X, W, dZ, pW, pb, pX);
    }
    return py::make_tuple(dW, db, dX);
}

void check_softmax_columns(dp::Act act, std::int64_t cols) {
    if (act == dp::Act::softmax && cols < 1) value_error("softmax needs at least one column, got 0");
}

template <typename T>
py::object activation_forward_impl(dp::Act act, py::handle Z_h) {
    Shape zs;
    const T* Z = view<T>(Z_h, "Z", 2, false, &zs);
    check_softmax_columns(act, zs.cols);
    auto Zc = new_array<T>(zs.rows, zs.cols, 2);  // the kernel may write Z; work on a copy
    auto H = new_array<T>(zs.rows, zs.cols, 2);
    T *zc = Zc.mutable_data(), *h = H.mutable_data();
    std::copy(Z, Z + zs.rows * zs.cols, zc);
    dp::bias_activation_forward<T>(act, (int)zs.rows, (int)zs.cols, zc, nullptr, h);
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
    check_softmax_columns(act, zs.cols);
    auto dZ = new_array<T>(zs.rows, zs.cols, 2);
    dp::activation_backward<T>(act, (int)zs.rows, (int)zs.cols, Z, H, dH, dZ.mutable_data());
    return std::move(dZ);
}

template <typename T>
py::object loss_impl(dp::Loss loss, dp::Act out, py::handle Z_h, py::handle H_h, py::handle Y_h,
                     py::handle w_h, bool backward) {
    check_output_pair(loss, out);
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
    if (zs.rows == 0) value_error("Z has no rows; pass at least one sample");
    if (zs.cols == 0) value_error("Z has no columns; the output layer needs at least one");
    const T scale = T(1.0 / double(zs.rows));
    if (!backward)
        return py::float_(dp::loss_forward_backward<T>(loss, out, (int)zs.rows, (int)zs.cols, Z, H, Y, w,
                                                       scale, nullptr, nullptr) / double(zs.rows));
    auto dZ = new_array<T>(zs.rows, zs.cols, 2);
    dp::loss_forward_backward<T>(loss, out, (int)zs.rows, (int)zs.cols, Z, H, Y, w, scale,
                                 dZ.mutable_data(), nullptr);
    return std::move(dZ);
}

template <typename T>
void sgd_step_impl(py::handle p_h, py::handle g_h, double lr) {
    py::array p = as_ndarray(p_h, "param"), g = as_ndarray(g_h, "grad");
    const int nd = (int)p.ndim();
    if (nd < 1 || nd > 2) value_error("param must be 1-D or 2-D, got " + describe(p));
    T* P = view<T>(p_h, "param", nd, true);
    const T* G = view<T>(g_h, "grad", nd, false);
    for (int d = 0; d < nd; ++d)
        if (p.shape(d) != g.shape(d)) value_error("grad must have the shape of param, got " + describe(g));
    check_no_overlap({span_of(p_h, "param")}, {span_of(g_h, "grad")});
    dp::sgd_update<T>((std::size_t)p.size(), P, G, nullptr, T(lr), T(0), false, T(0));
}

template <typename T>
py::object forward_impl(py::handle X_h, py::handle params_h, py::handle acts_h, py::handle out_in,
                        bool check_finite) {
    std::vector<Span> pspans;
    dp::Model<T> m = to_model<T>(params_h, acts_h, &pspans);
    Data<T> d = to_data<T>(X_h, py::none(), py::none(), m, false);
    py::object out_h = out_in.is_none() ? py::object(new_array<T>(d.n, m.n_out(), 2))
                                        : py::reinterpret_borrow<py::object>(out_in);
    Shape os;
    T* out = view<T>(out_h, "out", 2, true, &os);
    expect_shape("out", os, d.n, m.n_out());
    pspans.insert(pspans.end(), d.spans.begin(), d.spans.end());
    check_no_overlap({span_of(out_h, "out")}, pspans);
    const int chunk = dp::chunk_rows(m.sizes, d.n, get_user_threads());
    SmallProductThreads threads(m.sizes, chunk);
    // Small products leave BLAS's threads idle; the user's threads then take whole chunks
    // each, when there is enough work to pay for starting them. Predict, 2 threads against 1,
    // 40 interleaved calls: tabular (20,000 rows) 8.5 -> 13.9 M rows/s, digits (1,797 rows)
    // 3.9 -> 5.2 M.
    double macs = 0;
    for (int l = 0; l < m.n_layers(); ++l) macs += double(d.n) * m.sizes[l] * m.sizes[l + 1];
    const int parts = threads.holds_blas() && macs >= kParallelForwardWork ? get_user_threads() : 1;
    ensure_memory(sizeof(T) * parts * dp::workspace_elements(m.sizes, chunk, false, false), "forward");
    bool finite;
    {
        py::gil_scoped_release nogil;
        finite = dp::forward<T>(m, d.X, d.n, chunk, out, check_finite, parts);
    }
    if (!finite)
        value_error(std::string("X contains NaN or inf (after conversion to ") + (sizeof(T) == 4 ? "float32" : "float64") +
                    "); remove or impute those values");
    return out_h;
}

template <typename T>
double evaluate_impl(py::handle X_h, py::handle Y_h, py::handle w_h, py::handle params_h, py::handle acts_h,
                     dp::Loss loss, py::handle metrics_h) {
    dp::Model<T> m = to_model<T>(params_h, acts_h, nullptr);
    m.loss = loss;
    check_output_pair(loss, m.acts.back());
    if (Y_h.is_none()) type_error("Y must be an array, got None");
    Data<T> d = to_data<T>(X_h, Y_h, w_h, m, true);
    std::vector<double> own(dp::metrics_size(m.n_out()), 0.0);
    double* metrics = metrics_h.is_none() ? own.data() : metrics_view(metrics_h, m.n_out());
    const int chunk = dp::chunk_rows(m.sizes, d.n, get_user_threads());
    ensure_memory(sizeof(T) * dp::workspace_elements(m.sizes, chunk, false, false), "evaluate");
    const double before = metrics[0];
    SmallProductThreads threads(m.sizes, chunk);
    {
        py::gil_scoped_release nogil;
        dp::evaluate<T>(m, d.X, d.Y, d.w, d.n, chunk, metrics);
    }
    return (metrics[0] - before) / double(d.n);
}

template <typename T>
py::object gradients_impl(py::handle X_h, py::handle Y_h, py::handle w_h, py::handle params_h, py::handle acts_h,
                          dp::Loss loss, py::handle grads_in) {
    std::vector<Span> ins;
    dp::Model<T> m = to_model<T>(params_h, acts_h, &ins);
    m.loss = loss;
    check_output_pair(loss, m.acts.back());
    if (Y_h.is_none()) type_error("Y must be an array, got None");
    Data<T> d = to_data<T>(X_h, Y_h, w_h, m, true);
    ins.insert(ins.end(), d.spans.begin(), d.spans.end());
    const int L = m.n_layers();
    py::list grads;
    if (grads_in.is_none()) {
        for (int l = 0; l < L; ++l) {
            grads.append(new_array<T>(m.sizes[l], m.sizes[l + 1], 2));
            grads.append(new_array<T>(m.sizes[l + 1], 1, 1));
        }
    } else {
        grads = to_list(grads_in, "grads");
    }
    if ((int)grads.size() != 2 * L)
        value_error("grads must be a list of " + std::to_string(2 * L) + " arrays like params, got " +
                    std::to_string(grads.size()));
    std::vector<T*> gW, gb;
    std::vector<Span> outs;
    for (int l = 0; l < L; ++l) {
        Shape ws, bs;
        const std::string wn = "grads[" + std::to_string(2 * l) + "]", bn = "grads[" + std::to_string(2 * l + 1) + "]";
        gW.push_back(view<T>(grads[2 * l], wn, 2, true, &ws));
        gb.push_back(view<T>(grads[2 * l + 1], bn, 1, true, &bs));
        expect_shape(wn, ws, m.sizes[l], m.sizes[l + 1]);
        expect_length(bn, bs, m.sizes[l + 1]);
        outs.push_back(span_of(grads[2 * l], wn));
        outs.push_back(span_of(grads[2 * l + 1], bn));
    }
    check_no_overlap(outs, ins);
    const int chunk = dp::chunk_rows(m.sizes, d.n, get_user_threads());
    ensure_memory(sizeof(T) * dp::workspace_elements(m.sizes, chunk, true, false), "gradients");
    SmallProductThreads threads(m.sizes, chunk);
    {
        py::gil_scoped_release nogil;
        dp::gradients<T>(m, d.X, d.Y, d.w, d.n, chunk, gW, gb);
    }
    return std::move(grads);
}

dp::OptimizerConfig to_optimizer(py::handle name_h, py::handle options_h) {
    dp::OptimizerConfig c;
    const std::string name = to_string(name_h, "optimizer");
    if (!dp::parse_optimizer(name, c.kind))
        value_error("optimizer: unknown optimizer '" + name + "'; choose 'sgd' or 'adam'");
    if (!py::isinstance<py::dict>(options_h))
        type_error("options must be a dict of optimizer hyper-parameters");
    py::dict o = py::reinterpret_borrow<py::dict>(options_h);
    for (auto item : o) {
        const std::string key = to_string(item.first, "options key");
        if (key == "nesterov") {
            c.nesterov = to_bool(item.second, "options['nesterov']");
            continue;
        }
        const double v = to_double(item.second, "options['" + key + "']");
        if (key == "lr") c.lr = v;
        else if (key == "momentum") c.momentum = v;
        else if (key == "weight_decay") c.weight_decay = v;
        else if (key == "beta1") c.beta1 = v;
        else if (key == "beta2") c.beta2 = v;
        else if (key == "eps") c.eps = v;
        else value_error("options: unknown key '" + key + "'");
    }
    if (!(c.lr > 0)) value_error("options['lr'] must be > 0");
    if (c.momentum < 0 || c.momentum >= 1) value_error("options['momentum'] must be in [0, 1)");
    if (c.weight_decay < 0) value_error("options['weight_decay'] must be >= 0");
    if (c.beta1 < 0 || c.beta1 >= 1 || c.beta2 < 0 || c.beta2 >= 1)
        value_error("options['beta1'] and options['beta2'] must be in [0, 1)");
    if (!(c.eps > 0)) value_error("options['eps'] must be > 0");
    if (c.kind == dp::Opt::sgd && c.nesterov && c.momentum == 0)
        value_error("nesterov momentum needs momentum > 0");
    return c;
}

// The optimizer's step counter: an int64 array of shape (1,), read and written in place.
std::int64_t* step_view(py::handle h) {
    py::array a = as_ndarray(h, "step");
    const py::dtype dt = a.dtype();
    if (dt.kind() != 'i' || dt.itemsize() != 8 || !is_native(dt) || a.ndim() != 1 || a.shape(0) != 1 ||
        !(a.flags() & py::array::c_style))
        type_error("step must be an int64 array of shape (1,), got " + describe(a));
    if (!a.writeable()) value_error("step is read-only but is written to; pass a writable array");
    std::int64_t* p = static_cast<std::int64_t*>(a.mutable_data());
    if (*p < 0) value_error("step must hold a count >= 0, got " + std::to_string(*p));
    return p;
}

template <typename T>
double train_epoch_impl(py::handle X_h, py::handle Y_h, py::handle w_h, py::handle perm_h,
                        py::handle params_h, py::handle acts_h, dp::Loss loss, int batch_size,
                        const dp::OptimizerConfig& opt, py::handle state_h, py::handle step_h,
                        py::handle metrics_h) {
    std::vector<Span> outs;
    dp::Model<T> m = to_model<T>(params_h, acts_h, &outs);
    m.loss = loss;
    check_output_pair(loss, m.acts.back());
    if (Y_h.is_none()) type_error("Y must be an array, got None");
    Data<T> d = to_data<T>(X_h, Y_h, w_h, m, true);
    const std::int64_t* perm = nullptr;
    if (!perm_h.is_none()) {
        py::array p = as_ndarray(perm_h, "perm");
        const py::dtype dt = p.dtype();
        if (dt.kind() != 'i' || dt.itemsize() != 8 || !is_native(dt) || p.ndim() != 1 ||
            !(p.flags() & py::array::c_style))
            type_error("perm must be a 1-D C-contiguous int64 array, got " + describe(p));
        if (p.shape(0) != d.n)
            value_error("perm must have length " + std::to_string(d.n) + ", got " + std::to_string(p.shape(0)));
        perm = static_cast<const std::int64_t*>(p.data());
        for (std::int64_t i = 0; i < d.n; ++i)
            if (perm[i] < 0 || perm[i] >= d.n)
                value_error("perm[" + std::to_string(i) + "] = " + std::to_string(perm[i]) +
                            " is not a row index in [0, " + std::to_string(d.n) + ")");
    }
    py::list state = to_list(state_h, "state");
    const int k = opt.states_per_param();
    const int L = m.n_layers();
    if ((int)state.size() != k * 2 * L)
        value_error("state must hold " + std::to_string(k * 2 * L) + " arrays (" + std::to_string(k) +
                    " per parameter for this optimizer), got " + std::to_string(state.size()));
    std::vector<T*> st;
    for (int l = 0; l < L; ++l)
        for (int which = 0; which < 2; ++which)
            for (int j = 0; j < k; ++j) {
                const int idx = (2 * l + which) * k + j;
                const std::string nm = "state[" + std::to_string(idx) + "]";
                Shape s;
                st.push_back(view<T>(state[idx], nm, which == 0 ? 2 : 1, true, &s));
                if (which == 0) expect_shape(nm, s, m.sizes[l], m.sizes[l + 1]);
                else expect_length(nm, s, m.sizes[l + 1]);
                outs.push_back(span_of(state[idx], nm));
            }
    std::vector<double> own_metrics;
    double* metrics;
    if (metrics_h.is_none()) {
        own_metrics.assign(dp::metrics_size(m.n_out()), 0.0);
        metrics = own_metrics.data();
    } else {
        metrics = metrics_view(metrics_h, m.n_out());
        outs.push_back(span_of(metrics_h, "metrics"));
    }
    std::int64_t own_step = 0;
    std::int64_t* step = &own_step;
    if (!step_h.is_none()) {
        step = step_view(step_h);
        outs.push_back(span_of(step_h, "step"));
    }
    std::vector<Span> ins = d.spans;
    if (!perm_h.is_none()) ins.push_back(span_of(perm_h, "perm"));
    check_no_overlap(outs, ins);
    const std::int64_t rows = std::min<std::int64_t>(batch_size, d.n);
    const bool grad_buffers = !(opt.kind == dp::Opt::sgd && opt.momentum == 0.0);
    ensure_memory(sizeof(T) * dp::workspace_elements(m.sizes, rows, true, grad_buffers), "train_epoch");

    SignalPoll poll;
    dp::StopCheck check = [&poll]() { return poll(); };
    bool stopped = false;
    const double before = metrics[0];
    SmallProductThreads threads(m.sizes, rows, kTeamTrainedProduct);
    const int team_threads = threads.holds_blas() ? get_user_threads() : 1;
    {
        py::gil_scoped_release nogil;
        // The step count is written back even when Ctrl-C ends the epoch early.
        *step = dp::train_epoch<T>(m, d.X, d.Y, d.w, d.n, perm, batch_size, opt, st, *step, metrics,
                                   check, &stopped, team_threads);
    }
    if (stopped) throw py::error_already_set();
    return (metrics[0] - before) / double(d.n);
}

// A seed in [0, 2^64).
std::uint64_t seed_value(py::handle h) {
    py::object index = as_index(h, "seed", "an int in [0, 2**64)");
    const unsigned long long v = PyLong_AsUnsignedLongLong(index.ptr());
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        value_error("seed must be an int in [0, 2**64), got " + std::string(py::str(h)));
    }
    return v;
}

void shuffled_order_impl(py::handle seed_h, py::handle out_h) {
    const std::uint64_t seed = seed_value(seed_h);
    py::array a = as_ndarray(out_h, "out");
    const py::dtype dt = a.dtype();
    if (dt.kind() != 'i' || dt.itemsize() != 8 || !is_native(dt) || a.ndim() != 1 ||
        !(a.flags() & py::array::c_style))
        type_error("out must be a 1-D C-contiguous int64 array, got " + describe(a));
    if (!a.writeable()) value_error("out is read-only but is written to; pass a writable array");
    if (reinterpret_cast<std::uintptr_t>(a.data()) % alignof(std::int64_t) != 0)
        type_error("out is not aligned to its element size; pass a copy");
    std::int64_t* out = static_cast<std::int64_t*>(a.mutable_data());
    const std::int64_t n = a.shape(0);
    py::gil_scoped_release nogil;
    dp::shuffled_order(seed, n, out);
}

DType dtype_of_params(py::handle params_h) {
    py::list params = to_list(params_h, "params");
    if (params.size() == 0) value_error("params must be a non-empty list [W0, b0, W1, b1, ...]");
    return float_dtype(params[0], "params[0] (W0)");
}

}  // namespace

PYBIND11_MODULE(_core, mod) {
    mod.doc() = "denseprop's C++ kernels. Arrays must be C-contiguous native float32 or float64; "
                "nothing is converted or copied.";

    mod.def(
        "gemm",
        [](py::handle A, py::handle B, py::handle C, py::handle trans_a_h, py::handle trans_b_h, py::handle alpha_h,
           py::handle beta_h) {
            const bool trans_a = to_bool(trans_a_h, "trans_a"), trans_b = to_bool(trans_b_h, "trans_b");
            const double alpha = to_double(alpha_h, "alpha"), beta = to_double(beta_h, "beta");
            if (float_dtype(C, "C") == DType::f32) gemm_impl<float>(A, B, C, trans_a, trans_b, alpha, beta);
            else gemm_impl<double>(A, B, C, trans_a, trans_b, alpha, beta);
        },
        "A"_a, "B"_a, "C"_a, "trans_a"_a = false, "trans_b"_a = false, "alpha"_a = 1.0, "beta"_a = 0.0,
        "C (M, N) = alpha * op(A) @ op(B) + beta * C, in place. op(A) is A.T when trans_a.");

    mod.def(
        "dense_forward",
        [](py::handle X, py::handle W, py::handle b) {
            return float_dtype(X, "X") == DType::f32 ? dense_forward_impl<float>(X, W, b)
                                                      : dense_forward_impl<double>(X, W, b);
        },
        "X"_a, "W"_a, "b"_a, "Z (n, n_out) = X (n, n_in) @ W (n_in, n_out) + b (n_out,).");

    mod.def(
        "dense_backward",
        [](py::handle X, py::handle W, py::handle dZ) {
            return float_dtype(X, "X") == DType::f32 ? dense_backward_impl<float>(X, W, dZ)
                                                      : dense_backward_impl<double>(X, W, dZ);
        },
        "X"_a, "W"_a, "dZ"_a, "(dW, db, dX) = (X.T @ dZ, dZ.sum(0), dZ @ W.T).");

    mod.def(
        "activation_forward",
        [](py::handle name, py::handle Z) {
            const dp::Act a = to_activation(name, "name");
            return float_dtype(Z, "Z") == DType::f32 ? activation_forward_impl<float>(a, Z)
                                                      : activation_forward_impl<double>(a, Z);
        },
        "name"_a, "Z"_a, "H = act(Z), Z (n, k); softmax is row-wise.");

    mod.def(
        "activation_backward",
        [](py::handle name, py::handle Z, py::handle H, py::handle dH) {
            const dp::Act a = to_activation(name, "name");
            return float_dtype(Z, "Z") == DType::f32 ? activation_backward_impl<float>(a, Z, H, dH)
                                                      : activation_backward_impl<double>(a, Z, H, dH);
        },
        "name"_a, "Z"_a, "H"_a, "dH"_a, "dZ = dH * act'(Z) (softmax: the row-wise Jacobian product).");

    mod.def(
        "loss_forward",
        [](py::handle loss, py::handle out, py::handle Z, py::handle H, py::handle Y, py::handle w) {
            const dp::Loss l = to_loss(loss);
            const dp::Act a = to_activation(out, "output_activation");
            return float_dtype(Z, "Z") == DType::f32 ? loss_impl<float>(l, a, Z, H, Y, w, false)
                                                      : loss_impl<double>(l, a, Z, H, Y, w, false);
        },
        "loss"_a, "output_activation"_a, "Z"_a, "H"_a, "Y"_a, "sample_weight"_a = py::none(),
        "Mean loss (1/B) sum_i w_i loss_i of output pre-activations Z (B, k), H = act(Z), targets Y.");

    mod.def(
        "loss_backward",
        [](py::handle loss, py::handle out, py::handle Z, py::handle H, py::handle Y, py::handle w) {
            const dp::Loss l = to_loss(loss);
            const dp::Act a = to_activation(out, "output_activation");
            return float_dtype(Z, "Z") == DType::f32 ? loss_impl<float>(l, a, Z, H, Y, w, true)
                                                      : loss_impl<double>(l, a, Z, H, Y, w, true);
        },
        "loss"_a, "output_activation"_a, "Z"_a, "H"_a, "Y"_a, "sample_weight"_a = py::none(),
        "dZ (B, k): the gradient of loss_forward with respect to Z.");

    mod.def(
        "sgd_step",
        [](py::handle param, py::handle grad, py::handle lr_h) {
            const double lr = to_double(lr_h, "lr");
            if (float_dtype(param, "param") == DType::f32) sgd_step_impl<float>(param, grad, lr);
            else sgd_step_impl<double>(param, grad, lr);
        },
        "param"_a, "grad"_a, "lr"_a, "param -= lr * grad, in place.");

    mod.def(
        "forward",
        [](py::handle X, py::handle params, py::handle acts, py::handle out, py::handle check_finite_h) {
            const bool check = to_bool(check_finite_h, "check_finite");
            return dtype_of_params(params) == DType::f32 ? forward_impl<float>(X, params, acts, out, check)
                                                          : forward_impl<double>(X, params, acts, out, check);
        },
        "X"_a, "params"_a, "activations"_a, "out"_a = py::none(), "check_finite"_a = false,
        "The network's output (n, n_out) for X (n, n_in), written into out (allocated when None)\n"
        "and returned. params = [W0, b0, W1, b1, ...]; one activation name per layer. With\n"
        "check_finite, NaN or inf in X raises ValueError (checked chunk by chunk inside the pass).");

    mod.def(
        "evaluate",
        [](py::handle X, py::handle Y, py::handle params, py::handle acts, py::handle loss, py::handle w,
           py::handle metrics) {
            const dp::Loss l = to_loss(loss);
            return dtype_of_params(params) == DType::f32
                       ? evaluate_impl<float>(X, Y, w, params, acts, l, metrics)
                       : evaluate_impl<double>(X, Y, w, params, acts, l, metrics);
        },
        "X"_a, "Y"_a, "params"_a, "activations"_a, "loss"_a = "mse", "sample_weight"_a = py::none(),
        "metrics"_a = py::none(),
        "Mean loss (1/n) sum_i w_i loss_i over X (n, n_in), Y (n, n_out). If given, the float64\n"
        "metrics (2 + n_out) gets [sum_i w_i loss_i, weighted correct rows, weighted squared\n"
        "error per output] added.");

    mod.def(
        "gradients",
        [](py::handle X, py::handle Y, py::handle params, py::handle acts, py::handle loss, py::handle w,
           py::handle grads) {
            const dp::Loss l = to_loss(loss);
            return dtype_of_params(params) == DType::f32
                       ? gradients_impl<float>(X, Y, w, params, acts, l, grads)
                       : gradients_impl<double>(X, Y, w, params, acts, l, grads);
        },
        "X"_a, "Y"_a, "params"_a, "activations"_a, "loss"_a = "mse", "sample_weight"_a = py::none(),
        "grads"_a = py::none(),
        "[dW0, db0, dW1, db1, ...]: gradients of evaluate() over all rows, written into grads\n"
        "(allocated when None) and returned.");

    mod.def(
        "train_epoch",
        [](py::handle X, py::handle Y, py::handle params, py::handle acts, py::handle loss, py::handle batch_size,
           py::handle perm, py::handle w, py::handle optimizer, py::handle options, py::handle state,
           py::handle step, py::handle metrics) {
            const dp::Loss l = to_loss(loss);
            const int bs = to_int(batch_size, "batch_size", 1, INT_MAX);
            py::dict opts;
            if (!options.is_none()) {
                if (!py::isinstance<py::dict>(options)) type_error("options must be a dict of optimizer hyper-parameters");
                opts = py::reinterpret_borrow<py::dict>(options);
            }
            const dp::OptimizerConfig opt = to_optimizer(optimizer, opts);
            py::object st = state.is_none() ? py::object(py::list()) : py::reinterpret_borrow<py::object>(state);
            if (dtype_of_params(params) == DType::f32)
                return train_epoch_impl<float>(X, Y, w, perm, params, acts, l, bs, opt, st, step, metrics);
            return train_epoch_impl<double>(X, Y, w, perm, params, acts, l, bs, opt, st, step, metrics);
        },
        "X"_a, "Y"_a, "params"_a, "activations"_a, "loss"_a = "mse", "batch_size"_a = 32, "perm"_a = py::none(),
        "sample_weight"_a = py::none(), "optimizer"_a = "sgd", "options"_a = py::none(), "state"_a = py::none(),
        "step"_a = py::none(), "metrics"_a = py::none(),
        "One epoch of mini-batch training, updating params (and optimizer state) in place; returns\n"
        "the epoch's mean training loss, from each batch's forward pass before its update.\n"
        "Rows are visited in the order perm (int64, length n; None: in order) in batches of\n"
        "batch_size, the last one possibly smaller. options: lr, momentum, nesterov, weight_decay,\n"
        "beta1, beta2, eps. state: for 'sgd' with momentum one array per parameter, for 'adam' two,\n"
        "ordered W0, b0, W1, ... with each parameter's arrays adjacent. step: an int64 array of\n"
        "shape (1,) holding the optimizer steps taken, updated in place (also on Ctrl-C).");

    mod.def("shuffled_order", &shuffled_order_impl, "seed"_a, "out"_a,
            "Fills out (int64, n) with the permutation of 0..n-1 that seed (an int in [0, 2**64))\n"
            "fixes: Fisher-Yates driven by splitmix64 hashes of seed + i * 0x9E3779B97F4A7C15.\n"
            "The same seed gives the same order on every backend and platform.");

    mod.def(
        "set_num_threads",
        [](py::handle n) { set_user_threads(to_int(n, "n", 1, 1024)); }, "n"_a,
        "Threads of denseprop's OpenBLAS for large matrix products.");
    mod.def("get_num_threads", &get_user_threads, "Threads of denseprop's OpenBLAS (the user's setting).");
    mod.def("_team_operations", &dp::team_operations,
            "Operations that training shared among threads of its own so far (for tests).");
    mod.def("available_memory", &available_memory,
            "Bytes of memory the system can still provide (MemAvailable on Linux); -1 if unknown.");
    mod.def("blas_info", []() {
        return py::dict("config"_a = std::string(scipy_openblas_get_config()),
                        "core"_a = std::string(scipy_openblas_get_corename()),
                        "threads"_a = scipy_openblas_get_num_threads());
    });
}
