// Python bindings of denseprop._core: each entry point converts its arguments (arguments.hpp),
// plans its threads and calls the C++ pass or kernel; nothing else. Every pointer and shape is
// read before the GIL is released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cblas.h>

#include <chrono>
#include <climits>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "arguments.hpp"
#include "gemm.hpp"
#include "kernels.hpp"
#include "memory.hpp"
#include "passes.hpp"
#include "threads.hpp"
#include "tuning.hpp"

namespace py = pybind11;
using namespace pybind11::literals;

using namespace dp::args;

namespace {

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

// The thread plan of a pass over n rows, once its workspace is known to fit in memory.
template <typename T>
dp::ThreadPlan plan_pass(const dp::Model<T>& m, std::int64_t n, int batch, int threads, dp::Pass pass,
                         bool gradient_buffers = false) {
    static const char* names[] = {"forward", "evaluate", "gradients", "train_epoch"};
    const dp::ThreadPlan plan = dp::plan_threads(m.sizes, n, batch, threads, pass);
    const bool backward = pass == dp::Pass::gradients || pass == dp::Pass::train;
    const double workspaces = pass == dp::Pass::predict ? plan.team : 1;  // predict: one per thread
    dp::ensure_memory(sizeof(T) * workspaces * dp::workspace_elements(m.sizes, plan.chunk_rows, backward, gradient_buffers),
                      names[int(pass)], pass == dp::Pass::train ? "use a smaller batch_size or narrower layers"
                                                                : "use narrower layers");
    return plan;
}

template <typename T>
void gemm_impl(py::handle A_h, py::handle B_h, py::handle C_h, bool ta, bool tb, double alpha, double beta) {
    Args<T> args;
    Shape as, bs;
    const T* A = args.in(A_h, "A", kAny, kAny, &as);
    const T* B = args.in(B_h, "B", kAny, kAny, &bs);
    const std::int64_t M = ta ? as.cols : as.rows, K = ta ? as.rows : as.cols;
    const std::int64_t KB = tb ? bs.cols : bs.rows, N = tb ? bs.rows : bs.cols;
    if (K != KB)
        value_error("A and B do not chain: op(A) is (" + std::to_string(M) + ", " + std::to_string(K) +
                    ") and op(B) is (" + std::to_string(KB) + ", " + std::to_string(N) + ")");
    T* C = args.out(C_h, "C", M, N);
    args.check_overlap();
    std::optional<py::gil_scoped_release> nogil;
    if (2.0 * M * N * K >= dp::tuning::kReleaseGilFlops) nogil.emplace();
    dp::gemm<T>(ta, tb, (int)M, (int)N, (int)K, T(alpha), A, (int)as.cols, B, (int)bs.cols, T(beta), C, (int)N);
}

template <typename T>
T* data_of(py::array& a) {
    return static_cast<T*>(a.mutable_data());
}

template <typename T>
py::object dense_forward_impl(py::handle X_h, py::handle W_h, py::handle b_h) {
    Args<T> args;
    Shape xs, ws;
    const T* X = args.in(X_h, "X", kAny, kAny, &xs);
    const T* W = args.in(W_h, "W", xs.cols, kAny, &ws);
    const T* b = args.in(b_h, "b", ws.cols, kVector);
    py::array Z = new_array<T>(xs.rows, ws.cols);
    py::gil_scoped_release nogil;
    dp::dense_forward<T>(dp::act_of<dp::Identity>, (int)xs.rows, (int)xs.cols, (int)ws.cols, X, W, b, data_of<T>(Z),
                         data_of<T>(Z));
    return std::move(Z);
}

template <typename T>
py::object dense_backward_impl(py::handle X_h, py::handle W_h, py::handle dZ_h) {
    Args<T> args;
    Shape xs, ws;
    const T* X = args.in(X_h, "X", kAny, kAny, &xs);
    const T* W = args.in(W_h, "W", xs.cols, kAny, &ws);
    const T* dZ = args.in(dZ_h, "dZ", xs.rows, ws.cols);
    py::array dW = new_array<T>(ws.rows, ws.cols), db = new_array<T>(ws.cols), dX = new_array<T>(xs.rows, xs.cols);
    {
        py::gil_scoped_release nogil;
        dp::column_sums<T>((int)xs.rows, (int)ws.cols, dZ, data_of<T>(db));
        dp::dense_backward<T>((int)xs.rows, (int)xs.cols, (int)ws.cols, X, W, dZ, data_of<T>(dX), data_of<T>(dW), T(1),
                              T(0));
    }
    return py::make_tuple(dW, db, dX);
}

template <typename T>
py::object activation_forward_impl(dp::Act act, py::handle Z_h) {
    Args<T> args;
    Shape zs;
    const T* Z = args.in(Z_h, "Z", kAny, kAny, &zs);
    py::array Zc = new_array<T>(zs.rows, zs.cols), H = new_array<T>(zs.rows, zs.cols);  // the kernel may write Z
    std::copy(Z, Z + zs.rows * zs.cols, data_of<T>(Zc));
    if (zs.cols > 0) dp::activation_forward<T>(act, (int)zs.rows, (int)zs.cols, data_of<T>(Zc), nullptr, data_of<T>(H));
    return std::move(H);
}

template <typename T>
py::object activation_backward_impl(dp::Act act, py::handle Z_h, py::handle H_h, py::handle dH_h) {
    Args<T> args;
    Shape zs;
    const T* Z = args.in(Z_h, "Z", kAny, kAny, &zs);
    const T* H = args.in(H_h, "H", zs.rows, zs.cols);
    const T* dH = args.in(dH_h, "dH", zs.rows, zs.cols);
    py::array dZ = new_array<T>(zs.rows, zs.cols);
    if (zs.cols > 0) dp::activation_backward<T>(act, (int)zs.rows, (int)zs.cols, Z, H, dH, data_of<T>(dZ));
    return std::move(dZ);
}

template <typename T>
py::object loss_impl(dp::Loss loss, dp::Act out, py::handle Z_h, py::handle H_h, py::handle Y_h, py::handle w_h,
                     bool backward) {
    Args<T> args;
    Shape zs;
    const T* Z = args.in(Z_h, "Z", kAny, kAny, &zs);
    const T* H = args.in(H_h, "H", zs.rows, zs.cols);
    const T* Y = args.in(Y_h, "Y", zs.rows, zs.cols);
    const T* w = w_h.is_none() ? nullptr : args.in(w_h, "sample_weight", zs.rows, kVector);
    if (zs.rows == 0 || zs.cols == 0)
        value_error("Z must have rows and columns, got (" + std::to_string(zs.rows) + ", " + std::to_string(zs.cols) + ")");
    const T scale = T(1.0 / double(zs.rows));
    py::array dZ = backward ? new_array<T>(zs.rows, zs.cols) : py::array();
    const double total = dp::loss_forward_backward<T>(loss, out, (int)zs.rows, (int)zs.cols, Z, H, Y, w, scale,
                                                      backward ? data_of<T>(dZ) : nullptr, nullptr);
    if (backward) return std::move(dZ);
    return py::float_(total / double(zs.rows));
}

template <typename T>
void optimizer_update_impl(const dp::OptimizerConfig& c, py::handle p_h, py::handle g_h, py::handle state_h,
                           std::int64_t step, double decay) {
    Args<T> args;
    py::array p = as_ndarray(p_h, "param");
    if (p.ndim() < 1 || p.ndim() > 2) value_error("param must be 1-D or 2-D, got " + describe(p));
    const std::int64_t rows = p.shape(0), cols = p.ndim() == 2 ? p.shape(1) : kVector;
    T* P = args.out(p_h, "param", rows, cols);
    const T* G = args.in(g_h, "grad", rows, cols);
    py::list state = to_list(state_h, "state");
    if ((int)state.size() != dp::states_per_param(c))
        value_error("state must hold " + std::to_string(dp::states_per_param(c)) + " arrays for this optimizer");
    std::vector<T*> s;
    for (int i = 0; i < (int)state.size(); ++i) s.push_back(args.out(state[i], "state[" + std::to_string(i) + "]", rows, cols));
    args.check_overlap();
    dp::optimizer_update<T>(c, (std::size_t)p.size(), P, G, s.data(), T(decay), step);
}

template <typename T>
bool forward_impl(py::handle X_h, py::handle params_h, py::handle acts_h, py::handle out_h, bool check_finite,
                  int threads) {
    Args<T> args;
    const dp::Model<T> m = to_model<T>(params_h, acts_h, py::none(), args);
    std::swap(args.ins, args.outs);  // the parameters are inputs here
    const Data<T> d(X_h, py::none(), py::none(), m, false, args);
    T* out = args.out(out_h, "out", d.n, m.n_out());
    args.check_overlap();
    const dp::ThreadPlan plan = plan_pass(m, d.n, 0, threads, dp::Pass::predict);
    dp::BlasThreads blas(plan.blas_threads);
    py::gil_scoped_release nogil;
    return dp::forward<T>(m, d.X, d.n, plan, out, check_finite);
}

template <typename T>
double evaluate_impl(py::handle X_h, py::handle Y_h, py::handle w_h, py::handle params_h, py::handle acts_h,
                     py::handle loss_h, py::handle metrics_h, int threads) {
    Args<T> args;
    const dp::Model<T> m = to_model<T>(params_h, acts_h, loss_h, args);
    std::swap(args.ins, args.outs);
    const Data<T> d(X_h, Y_h, w_h, m, true, args);
    std::vector<double> own;
    double* metrics = metrics_of(metrics_h, m.n_out(), own, args);
    args.check_overlap();
    const dp::ThreadPlan plan = plan_pass(m, d.n, 0, threads, dp::Pass::evaluate);
    const double before = metrics[0];
    dp::BlasThreads blas(plan.blas_threads);
    {
        py::gil_scoped_release nogil;
        dp::evaluate<T>(m, d.X, d.Y, d.w, d.n, plan, metrics);
    }
    return (metrics[0] - before) / double(d.n);
}

template <typename T>
double gradients_impl(py::handle X_h, py::handle Y_h, py::handle w_h, py::handle params_h, py::handle acts_h,
                    py::handle loss_h, py::handle grads_h, int threads) {
    Args<T> args;
    const dp::Model<T> m = to_model<T>(params_h, acts_h, loss_h, args);
    std::swap(args.ins, args.outs);
    const Data<T> d(X_h, Y_h, w_h, m, true, args);
    std::vector<T*> gW, gb, g = param_like<T>(grads_h, "grads", m, 1, args);
    args.check_overlap();
    for (std::size_t i = 0; i < g.size(); ++i) (i % 2 ? gb : gW).push_back(g[i]);
    const dp::ThreadPlan plan = plan_pass(m, d.n, 0, threads, dp::Pass::gradients);
    dp::BlasThreads blas(plan.blas_threads);
    py::gil_scoped_release nogil;
    return dp::gradients<T>(m, d.X, d.Y, d.w, d.n, plan, gW, gb) / double(d.n);
}

template <typename T>
double train_epoch_impl(py::handle X_h, py::handle Y_h, py::handle w_h, py::handle perm_h, py::handle params_h,
                        py::handle acts_h, py::handle loss_h, int batch_size, const dp::OptimizerConfig& opt,
                        const dp::Objective& objective, py::handle state_h, py::handle step_h, py::handle metrics_h,
                        int threads) {
    Args<T> args;
    const dp::Model<T> m = to_model<T>(params_h, acts_h, loss_h, args);
    const Data<T> d(X_h, Y_h, w_h, m, true, args);
    dp::Epoch<T> e;
    e.X = d.X, e.Y = d.Y, e.w = d.w, e.n = d.n, e.batch = batch_size, e.opt = opt, e.objective = objective;
    e.perm = perm_of(perm_h, d.n, args.ins);
    e.state = param_like<T>(state_h, "state", m, dp::states_per_param(opt), args);
    std::vector<double> own;
    e.metrics = metrics_of(metrics_h, m.n_out(), own, args);
    std::int64_t own_step = 0, *step = step_of(step_h, &own_step, args.outs);
    args.check_overlap();
    e.plan = plan_pass(m, d.n, batch_size, threads, dp::Pass::train, !dp::is_plain_sgd(opt));
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

// The name lists of the tables, and the classes that carry settings across.
static void define_tables(py::module_& mod) {
    mod.attr("ACTIVATIONS") = names_of(dp::Activations{});
    mod.attr("LOSSES") = names_of(dp::Losses{});
    mod.attr("OPTIMIZERS") = names_of(dp::Optimizers{});
    // Products of at most this many multiply-adds run in plain loops (they round differently
    // from OpenBLAS): wrappers that must give a row the same bits whatever rows share its call
    // read it here.
    mod.attr("SMALL_GEMM") = dp::tuning::kSmallGemm;

    using Config = dp::OptimizerConfig;
    py::class_<Config>(mod, "OptimizerConfig", "The hyper-parameters of one epoch's steps (lr: the epoch's rate).")
        .def(py::init([](py::handle kind) {
                 Config c;
                 c.kind = dp::Opt(to_row(kind, "kind", "optimizer", dp::Optimizers{}));
                 return c;
             }),
             "kind"_a)
        .def_property_readonly("kind", [](const Config& c) { return dp::Optimizers::names[int(c.kind)]; })
        .def_readwrite("lr", &Config::lr)
        .def_readwrite("momentum", &Config::momentum)
        .def_readwrite("nesterov", &Config::nesterov)
        .def_readwrite("weight_decay", &Config::weight_decay)
        .def_readwrite("beta1", &Config::beta1)
        .def_readwrite("beta2", &Config::beta2)
        .def_readwrite("eps", &Config::eps)
        .def("states", &dp::states_per_param, "State arrays each parameter keeps.");
    py::class_<dp::Objective>(mod, "Objective", "How training normalises a batch's loss (src/cpp/model.hpp).")
        .def(py::init<>())
        .def_readwrite("output_scale", &dp::Objective::output_scale)
        .def_readwrite("by_weight_sum", &dp::Objective::by_weight_sum)
        .def_readwrite("decay_by_batch", &dp::Objective::decay_by_batch)
        .def(py::pickle(
            [](const dp::Objective& o) { return py::make_tuple(o.output_scale, o.by_weight_sum, o.decay_by_batch); },
            [](const py::tuple& t) {
                if (t.size() != 3) value_error("an Objective's state has 3 fields");
                dp::Objective o;
                o.output_scale = t[0].cast<double>(), o.by_weight_sum = t[1].cast<bool>(),
                o.decay_by_batch = t[2].cast<bool>();
                return o;
            }));

}

// The single operations of a layer, a loss and an optimizer.
static void define_operations(py::module_& mod) {
    using H = py::handle;
    using Config = dp::OptimizerConfig;
    mod.def(
        "gemm",
        [](H A, H B, H C, H ta, H tb, H alpha, H beta) {
            const bool t_a = to_bool(ta, "trans_a"), t_b = to_bool(tb, "trans_b");
            const double a = to_double(alpha, "alpha"), b = to_double(beta, "beta");
            with_dtype(dtype_of(C, "C"), [&](auto t) { gemm_impl<decltype(t)>(A, B, C, t_a, t_b, a, b); });
        },
        "A"_a, "B"_a, "C"_a, "trans_a"_a = false, "trans_b"_a = false, "alpha"_a = 1.0, "beta"_a = 0.0);
    mod.def(
        "dense_forward",
        [](H X, H W, H b) {
            return with_dtype(dtype_of(X, "X"), [&](auto t) { return dense_forward_impl<decltype(t)>(X, W, b); });
        },
        "X"_a, "W"_a, "b"_a);
    mod.def(
        "dense_backward",
        [](H X, H W, H dZ) {
            return with_dtype(dtype_of(X, "X"), [&](auto t) { return dense_backward_impl<decltype(t)>(X, W, dZ); });
        },
        "X"_a, "W"_a, "dZ"_a);
    mod.def(
        "activation_forward",
        [](H name, H Z) {
            const dp::Act a = to_activation(name, "name");
            return with_dtype(dtype_of(Z, "Z"), [&](auto t) { return activation_forward_impl<decltype(t)>(a, Z); });
        },
        "name"_a, "Z"_a);
    mod.def(
        "activation_backward",
        [](H name, H Z, H Hh, H dH) {
            const dp::Act a = to_activation(name, "name");
            return with_dtype(dtype_of(Z, "Z"),
                              [&](auto t) { return activation_backward_impl<decltype(t)>(a, Z, Hh, dH); });
        },
        "name"_a, "Z"_a, "H"_a, "dH"_a);
    for (const bool backward : {false, true})
        mod.def(
            backward ? "loss_backward" : "loss_forward",
            [backward](H loss, H out, H Z, H Hh, H Y, H w) {
                const dp::Loss l = to_loss(loss);
                const dp::Act a = to_activation(out, "output_activation");
                return with_dtype(dtype_of(Z, "Z"),
                                  [&](auto t) { return loss_impl<decltype(t)>(l, a, Z, Hh, Y, w, backward); });
            },
            "loss"_a, "output_activation"_a, "Z"_a, "H"_a, "Y"_a, "sample_weight"_a = py::none());
    mod.def(
        "optimizer_update",
        [](const Config& c, H param, H grad, H state, H step, H decay) {
            const std::int64_t t = to_integer(step, "step", 1, LLONG_MAX);
            const double wd = to_double(decay, "decay");
            with_dtype(dtype_of(param, "param"),
                       [&](auto f) { optimizer_update_impl<decltype(f)>(c, param, grad, state, t, wd); });
        },
        "config"_a, "param"_a, "grad"_a, "state"_a, "step"_a, "decay"_a);
}

// The whole-network passes.
static void define_passes(py::module_& mod) {
    using H = py::handle;
    using Config = dp::OptimizerConfig;  // train_epoch's optimizer
    mod.def(
        "forward",
        [](H X, H params, H acts, H out, H check, H threads) {
            const bool check_finite = to_bool(check, "check_finite");
            const int t = to_threads(threads);
            return with_dtype(dtype_of_params(params), [&](auto f) {
                return forward_impl<decltype(f)>(X, params, acts, out, check_finite, t);
            });
        },
        "X"_a, "params"_a, "activations"_a, "out"_a, "check_finite"_a = false, "threads"_a = py::none());
    mod.def(
        "evaluate",
        [](H X, H Y, H params, H acts, H loss, H w, H metrics, H threads) {
            const int t = to_threads(threads);
            return with_dtype(dtype_of_params(params), [&](auto f) {
                return evaluate_impl<decltype(f)>(X, Y, w, params, acts, loss, metrics, t);
            });
        },
        "X"_a, "Y"_a, "params"_a, "activations"_a, "loss"_a, "sample_weight"_a = py::none(), "metrics"_a = py::none(),
        "threads"_a = py::none());
    mod.def(
        "gradients",
        [](H X, H Y, H params, H acts, H loss, H w, H grads, H threads) {
            const int t = to_threads(threads);
            return with_dtype(dtype_of_params(params),
                              [&](auto f) { return gradients_impl<decltype(f)>(X, Y, w, params, acts, loss, grads, t); });
        },
        "X"_a, "Y"_a, "params"_a, "activations"_a, "loss"_a, "sample_weight"_a, "grads"_a, "threads"_a = py::none());
    mod.def(
        "train_epoch",
        [](H X, H Y, H params, H acts, H loss, H batch_size, H perm, H w, const Config& opt, H state, H step, H metrics,
           std::optional<dp::Objective> objective, H threads) {
            const int bs = (int)to_integer(batch_size, "batch_size", 1, INT_MAX), t = to_threads(threads);
            const dp::Objective obj = objective.value_or(dp::Objective());
            return with_dtype(dtype_of_params(params), [&](auto f) {
                return train_epoch_impl<decltype(f)>(X, Y, w, perm, params, acts, loss, bs, opt, obj, state, step,
                                                     metrics, t);
            });
        },
        "X"_a, "Y"_a, "params"_a, "activations"_a, "loss"_a, "batch_size"_a, "perm"_a, "sample_weight"_a,
        "optimizer"_a, "state"_a, "step"_a, "metrics"_a, "objective"_a = py::none(), "threads"_a = py::none());
}

// Threads, memory and the BLAS library.
static void define_runtime(py::module_& mod) {
    using H = py::handle;
    mod.def("shuffled_order", &shuffled_order_impl, "seed"_a, "out"_a);
    mod.def("metrics_size", [](H n_out) { return dp::metrics_size((int)to_integer(n_out, "n_out", 1, INT_MAX)); },
            "n_out"_a);

    mod.def(
        "plan_threads",
        [](std::vector<int> sizes, std::int64_t rows, int batch, int threads, const std::string& pass) {
            static const std::map<std::string, dp::Pass> passes = {{"predict", dp::Pass::predict},
                                                                   {"evaluate", dp::Pass::evaluate},
                                                                   {"gradients", dp::Pass::gradients},
                                                                   {"train", dp::Pass::train}};
            if (sizes.size() < 2 || rows < 0 || threads < 1 || !passes.count(pass))
                value_error("plan_threads: layers of 2+ widths, rows >= 0, threads >= 1 and a pass of predict, "
                            "evaluate, gradients or train");
            const dp::ThreadPlan p = dp::plan_threads(sizes, rows, std::max(batch, 1), threads, passes.at(pass));
            return py::dict("blas_threads"_a = p.blas_threads, "team"_a = p.team, "chunk_rows"_a = p.chunk_rows);
        },
        "layers"_a, "rows"_a, "batch"_a, "threads"_a, "pass_"_a,
        "The thread plan of a pass: OpenBLAS's threads, denseprop's own threads, rows per chunk.");
    mod.def(
        "set_num_threads", [](H n) { dp::set_user_threads((int)to_integer(n, "n", 1, 1024)); }, "n"_a,
        "Sets the user's thread count (OpenBLAS's, and that of denseprop's own threads).");
    mod.def("get_num_threads", &dp::user_threads, "The user's thread count.");
    mod.def("available_memory", &dp::available_memory, "Bytes of memory the system can still give; -1 if unknown.");
    mod.def(
        "ensure_memory", [](double nbytes, const std::string& what, const std::string& fix) {
            dp::ensure_memory(nbytes, what, fix);
        },
        "nbytes"_a, "what"_a, "fix"_a, "Raises MemoryError, naming what and the fix, when nbytes cannot fit.");
    mod.def("blas_info", []() {
        return py::dict("config"_a = std::string(scipy_openblas_get_config()),
                        "core"_a = std::string(scipy_openblas_get_corename()),
                        "threads"_a = scipy_openblas_get_num_threads());
    });
}

// Every function's contract is that of its NumPy twin in denseprop/reference.py.
PYBIND11_MODULE(_core, mod) {
    mod.doc() = "denseprop's C++ backend: the functions of denseprop.reference, on C-contiguous native float32 or\n"
                "float64 arrays, nothing converted or copied. Arguments are checked for memory safety only.";
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const dp::MemoryShortage& e) {
            PyErr_SetString(PyExc_MemoryError, e.what());
        }
    });
    dp::watch_forks();
    define_tables(mod);
    define_operations(mod);
    define_passes(mod);
    define_runtime(mod);
}
