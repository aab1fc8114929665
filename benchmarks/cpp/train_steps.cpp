// Per-step time of each training loop (unrolled, row-wise, batched) on chosen nets, against
// the same OpenBLAS the extension links: the measurements behind the strategy table in
// src/cpp/passes.cpp (see benchmarks/README.md, "Tuning constants").
// Build and run (from the repository root, in an environment with scipy-openblas32):
//   OB=$(python -c "import scipy_openblas32, os; print(os.path.dirname(scipy_openblas32.__file__))")
//   g++ -O3 -std=c++17 -ffp-contract=fast -fopenmp-simd -pthread -Isrc/cpp -I$OB/include \
//       benchmarks/cpp/train_steps.cpp src/cpp/{gemm,kernels,optimizers,passes,threads,train_batched,train_rowwise,train_unrolled}.cpp \
//       -L$OB/lib -lscipy_openblas -Wl,-rpath,$OB/lib -o /tmp/train_steps
//   OPENBLAS_NUM_THREADS=1 /tmp/train_steps
// Each line is the median of 9 epochs, in nanoseconds per step (one batch).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "strategies.hpp"

using namespace dp;

namespace {

struct Net {
    std::vector<int> sizes;
    std::vector<std::vector<float>> W, b;
    Model<float> model;
    explicit Net(std::vector<int> s, Act hidden, Act out) : sizes(std::move(s)) {
        std::mt19937 gen(0);
        std::normal_distribution<float> normal;
        model.sizes = sizes;
        for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
            W.emplace_back((std::size_t)sizes[l] * sizes[l + 1]);
            for (float& v : W.back()) v = normal(gen) * std::sqrt(2.0f / sizes[l]);
            b.emplace_back(sizes[l + 1], 0.1f);
            model.acts.push_back(l + 2 == sizes.size() ? out : hidden);
        }
        for (std::size_t l = 0; l < W.size(); ++l) {
            model.W.push_back(W[l].data());
            model.b.push_back(b[l].data());
        }
        model.loss = loss_of<Mse>;
    }
};

enum class Loop { unrolled, rowwise, batched };

double ns_per_step(Net& net, int n, int batch, Loop loop) {
    std::mt19937 gen(1);
    std::normal_distribution<float> normal;
    std::vector<float> X((std::size_t)n * net.sizes.front()), Y((std::size_t)n * net.sizes.back());
    for (float& v : X) v = normal(gen);
    for (float& v : Y) v = 0.5f + 0.1f * normal(gen);
    std::vector<std::int64_t> perm(n);
    std::vector<double> metrics(metrics_size(net.sizes.back()));
    std::vector<double> times;
    for (int epoch = 0; epoch < 10; ++epoch) {
        shuffled_order(epoch, n, perm.data());
        Epoch<float> e;
        e.X = X.data(), e.Y = Y.data(), e.n = n, e.perm = perm.data(), e.batch = batch, e.metrics = metrics.data();
        e.opt.lr = 1e-3;
        EpochPoll<float> poll(net.model, e);
        const auto start = std::chrono::steady_clock::now();
        if (loop == Loop::unrolled) train_unrolled(net.model, e, poll);
        else if (loop == Loop::rowwise) train_rowwise(net.model, e, poll);
        else train_batched(net.model, e, poll);
        const auto stop = std::chrono::steady_clock::now();
        if (epoch > 0) times.push_back(std::chrono::duration<double, std::nano>(stop - start).count() / ((n + batch - 1) / batch));
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
}

}  // namespace

int main() {
    const Act relu = act_of<Relu>, identity = act_of<Identity>, tanh = act_of<Tanh>;
    struct Case {
        std::vector<int> sizes;
        Act hidden, out;
        int n, batch;
    } cases[] = {
        {{1, 2, 2}, relu, relu, 20000, 1},    {{2, 4, 1}, relu, identity, 20000, 1},
        {{4, 8, 4}, relu, relu, 20000, 1},    {{3, 8, 1}, relu, identity, 20000, 1},
        {{1, 2, 2}, tanh, relu, 20000, 1},    {{2, 4, 1}, tanh, identity, 20000, 1},
        {{2, 4, 1}, tanh, identity, 20000, 4}, {{4, 8, 4}, tanh, identity, 20000, 1},
        {{8, 16, 1}, relu, identity, 20000, 1}, {{8, 16, 1}, relu, identity, 20000, 8},
        {{16, 32, 4}, relu, identity, 20000, 1}, {{16, 32, 4}, relu, identity, 20000, 32},
    };
    std::printf("%-20s %6s %12s %12s %12s\n", "layers", "batch", "unrolled", "row-wise", "batched");
    for (const Case& c : cases) {
        Net net(c.sizes, c.hidden, c.out);
        Epoch<float> probe;
        probe.n = c.n, probe.batch = c.batch;
        probe.opt.lr = 1e-3;
        const bool unrolled = unrolled_applies(net.model, probe);
        char name[64];
        std::snprintf(name, sizeof name, "[%d,%d,%d] %s", c.sizes[0], c.sizes[1], c.sizes[2],
                      c.hidden == tanh ? "tanh" : "relu");
        std::printf("%-20s %6d", name, c.batch);
        if (unrolled) std::printf(" %12.1f", ns_per_step(net, c.n, c.batch, Loop::unrolled));
        else std::printf(" %12s", "-");
        std::printf(" %12.1f", ns_per_step(net, c.n, c.batch, Loop::rowwise));
        std::printf(" %12.1f\n", ns_per_step(net, c.n, c.batch, Loop::batched));
    }
}
