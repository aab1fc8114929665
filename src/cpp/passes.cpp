// The whole-network passes; see passes.hpp. Training strategies live in train_*.cpp.
#include "passes.hpp"

#include <algorithm>
#include <cstring>

#include "strategies.hpp"
#include "workspace.hpp"

namespace dp {

template <typename T>
bool forward(const Model<T>& m, const T* X, std::int64_t n, const ThreadPlan& plan, T* out, bool check_finite) {
    if (n <= 0) return true;
    const int chunk = plan.chunk_rows;
    const std::int64_t n_chunks = (n + chunk - 1) / chunk;
    const int parts = (int)std::min<std::int64_t>(std::max(plan.team, 1), n_chunks);
    // Part p takes a contiguous run of chunks with its own workspace; the chunk boundaries do
    // not depend on the number of parts, so neither does any row's output. An exception in a
    // part reaches the caller (TeamThreads::run rethrows it).
    std::vector<char> ok(parts, 1);
    run_parts(parts, [&](int p) {
        Workspace<T> ws(m, chunk, false);
        for (std::int64_t c = n_chunks * p / parts; c < n_chunks * (p + 1) / parts; ++c) {
            const std::int64_t s = c * chunk;
            const int rows = (int)std::min<std::int64_t>(chunk, n - s);
            const T* Xc = X + s * m.n_in();
            if (check_finite && !all_finite(Xc, (std::size_t)rows * m.n_in())) {
                ok[p] = 0;
                return;
            }
            ws.forward(Xc, rows);
            std::memcpy(out + s * m.n_out(), ws.output(), sizeof(T) * (std::size_t)rows * m.n_out());
        }
    });
    return std::all_of(ok.begin(), ok.end(), [](char v) { return v != 0; });
}

template <typename T>
void evaluate(const Model<T>& m, const T* X, const T* Y, const T* w, std::int64_t n, const ThreadPlan& plan,
              double* metrics) {
    if (n <= 0) return;
    const int chunk = plan.chunk_rows, L = m.n_layers();
    Workspace<T> ws(m, chunk, false);
    for (std::int64_t s = 0; s < n; s += chunk) {
        const int rows = (int)std::min<std::int64_t>(chunk, n - s);
        ws.forward(X + s * m.n_in(), rows);
        metrics[0] += loss_forward_backward<T>(m.loss, m.acts[L - 1], rows, m.n_out(), ws.z(L - 1), ws.h(L - 1),
                                               Y + s * m.n_out(), w ? w + s : nullptr, T(1), nullptr, metrics + 1);
    }
}

template <typename T>
double gradients(const Model<T>& m, const T* X, const T* Y, const T* w, std::int64_t n, const ThreadPlan& plan,
                 const std::vector<T*>& gW, const std::vector<T*>& gb) {
    for (int l = 0; l < m.n_layers(); ++l) {  // n == 0 leaves zero gradients
        std::fill(gW[l], gW[l] + (std::size_t)m.fan_in(l) * m.fan_out(l), T(0));
        std::fill(gb[l], gb[l] + m.fan_out(l), T(0));
    }
    double total = 0.0;
    if (n <= 0) return total;
    const int chunk = plan.chunk_rows;
    Workspace<T> ws(m, chunk, true);
    const T scale = T(1.0 / double(n));
    for (std::int64_t s = 0; s < n; s += chunk) {  // each chunk adds its part of the mean's gradient
        const int rows = (int)std::min<std::int64_t>(chunk, n - s);
        const T* Xc = X + s * m.n_in();
        ws.forward(Xc, rows);
        total += ws.loss(Y + s * m.n_out(), w ? w + s : nullptr, rows, scale, nullptr);
        ws.backward(
            Xc, rows, [&](int l) { return WeightSide<T>{gW[l], T(1), T(1)}; },
            [&](int l) {
                for (int j = 0; j < m.fan_out(l); ++j) gb[l][j] += ws.db()[j];
            });
    }
    return total;
}

// Which loop trains an epoch:
//
// | loop      | when                                                  | why                                   |
// |-----------|-------------------------------------------------------|---------------------------------------|
// | unrolled  | [<=4, <=8, <=4], ReLU hidden, ReLU or identity output,| a row is a few dozen multiply-adds:   |
// |           | MSE, batch 1, plain SGD, the default objective        | loop control would cost more          |
// | row-wise  | batch 1, at most 64 weights                           | entering BLAS or a vectorised loop    |
// |           |                                                       | costs more than its arithmetic        |
// | batched   | everything else                                       | the step is layer products (BLAS),    |
// |           |                                                       | shared by a team when they are large  |
template <typename T>
void train_epoch(const Model<T>& m, Epoch<T>& e) {
    e.stopped = false;
    if (e.n <= 0) return;
    e.batch = (int)std::min<std::int64_t>(e.batch, e.n);
    EpochPoll<T> poll(m, e);
    if (unrolled_applies(m, e)) train_unrolled(m, e, poll);
    else if (rowwise_applies(m.sizes, e.batch)) train_rowwise(m, e, poll);
    else train_batched(m, e, poll);
}

#define DP_INSTANTIATE_PASSES(T)                                                                              \
    template bool forward<T>(const Model<T>&, const T*, std::int64_t, const ThreadPlan&, T*, bool);           \
    template void evaluate<T>(const Model<T>&, const T*, const T*, const T*, std::int64_t, const ThreadPlan&, \
                              double*);                                                                       \
    template double gradients<T>(const Model<T>&, const T*, const T*, const T*, std::int64_t, const ThreadPlan&, \
                                 const std::vector<T*>&, const std::vector<T*>&);                             \
    template void train_epoch<T>(const Model<T>&, Epoch<T>&);

DP_INSTANTIATE_PASSES(float)
DP_INSTANTIATE_PASSES(double)

}  // namespace dp
