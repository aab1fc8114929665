// Micro-benchmark of the choices behind two small-net paths of the C++ backend, run against
// the same OpenBLAS the extension links:
//   1. dH = dZ W^T: BLAS's transposed-B product against a plain product with a transposed
//      copy of W (use_transposed_w in src/cpp/kernels.cpp);
//   2. forward-pass chunk sizes for small nets (the chunk rule of plan_threads in src/cpp/threads.cpp).
// Build and run (from the repository root, in an environment with scipy-openblas32):
//   OB=$(python -c "import scipy_openblas32, os; print(os.path.dirname(scipy_openblas32.__file__))")
//   g++ -O3 -std=c++17 -ffp-contract=fast -fopenmp-simd -pthread -Isrc/cpp -I$OB/include \
//       benchmarks/cpp/small_products.cpp src/cpp/{gemm,kernels,optimizers,passes,threads,train_batched,train_rowwise,train_unrolled}.cpp \
//       -L$OB/lib -lscipy_openblas -Wl,-rpath,$OB/lib -o /tmp/small_products
//   OPENBLAS_NUM_THREADS=1 /tmp/small_products
// Times are the best of 9 blocks: a ceiling, like the benchmark's GEMM limit.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "best_time.hpp"
#include "passes.hpp"

using namespace dp;

template <class T>
void transposed_products(std::mt19937& gen) {
    std::normal_distribution<float> normal;
    const int shapes[][3] = {{64, 128, 10}, {32, 64, 1},   {128, 128, 10}, {64, 64, 16},  // rows, fi, fo
                             {32, 64, 64},  {256, 64, 32}, {64, 128, 64},  {128, 128, 64}, {32, 128, 128}};
    for (const auto& s : shapes) {
        const int rows = s[0], fi = s[1], fo = s[2];
        std::vector<T> dZ((std::size_t)rows * fo), W((std::size_t)fi * fo), WT(W.size()), dH((std::size_t)rows * fi);
        for (auto& v : dZ) v = normal(gen);
        for (auto& v : W) v = normal(gen);
        const int reps = std::max(3, int(2e8 / (2.0 * rows * fi * fo)));
        const double nt = best_us([&] {
            gemm<T>(false, true, rows, fi, fo, T(1), dZ.data(), fo, W.data(), fo, T(0), dH.data(), fi);
        }, reps);
        const double nn = best_us([&] {
            transpose<T>(fi, fo, W.data(), fo, WT.data(), fi);
            gemm<T>(false, false, rows, fi, fo, T(1), dZ.data(), fo, WT.data(), fi, T(0), dH.data(), fi);
        }, reps);
        std::printf("%s dZ (%d, %d) W^T, W (%d, %d): transposed-B product %.2f us, copy + plain product %.2f us\n",
                    sizeof(T) == 4 ? "float32" : "float64", rows, fo, fi, fo, nt, nn);
    }
}

void forward_chunks(std::mt19937& gen) {
    std::normal_distribution<float> normal;
    const std::vector<std::vector<int>> nets = {{8, 64, 64, 1}, {64, 128, 10}};  // tabular, digits
    const std::vector<long> rows_of = {20000, 1797};
    for (std::size_t k = 0; k < nets.size(); ++k) {
        Model<float> m;
        m.sizes = nets[k];
        std::vector<std::vector<float>> Ws, bs;
        for (std::size_t l = 0; l + 1 < nets[k].size(); ++l) {
            Ws.emplace_back((std::size_t)nets[k][l] * nets[k][l + 1]);
            bs.emplace_back(nets[k][l + 1], 0.1f);
            for (auto& v : Ws.back()) v = 0.1f * normal(gen);
        }
        for (std::size_t l = 0; l < Ws.size(); ++l) {
            m.W.push_back(Ws[l].data());
            m.b.push_back(bs[l].data());
            m.acts.push_back(l + 1 < Ws.size() ? act_of<Relu> : act_of<Identity>);
        }
        const long n = rows_of[k];
        std::vector<float> X((std::size_t)n * nets[k][0]), out((std::size_t)n * nets[k].back());
        for (auto& v : X) v = normal(gen);
        const int chosen = plan_threads(m.sizes, n, 0, 1, Pass::predict).chunk_rows;
        for (int chunk : {64, 128, 256, 1024, chosen}) {
            ThreadPlan plan;
            plan.chunk_rows = chunk;
            const double us = best_us([&] { forward<float>(m, X.data(), n, plan, out.data(), false); }, 20);
            std::printf("net %zu, %ld rows, chunk %4d%s: %.2f M rows/s\n", k, n, chunk,
                        chunk == chosen ? " (planned)" : "", n / us);
        }
    }
}

int main() {
    std::mt19937 gen(1);
    transposed_products<float>(gen);
    transposed_products<double>(gen);
    forward_chunks(gen);
}
