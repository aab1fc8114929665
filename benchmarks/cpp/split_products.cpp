// Micro-benchmark behind training's team split (Products::gemm in src/cpp/threads.cpp): the
// mnist-shaped step's large products as one 2-thread OpenBLAS call, against two threads of
// our own that each make a 1-thread OpenBLAS call on half of the rows (halfM) or half of the
// columns (halfN) of the result.
// Build and run (from the repository root, in an environment with scipy-openblas32):
//   OB=$(python -c "import scipy_openblas32, os; print(os.path.dirname(scipy_openblas32.__file__))")
//   g++ -O2 -std=c++17 -pthread -I$OB/include benchmarks/cpp/split_products.cpp
//       -L$OB/lib -lscipy_openblas -Wl,-rpath,$OB/lib -o /tmp/split_products   (one line)
//   /tmp/split_products
// Times are the best of 9 blocks of 50 calls, in us.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <random>
#include <thread>
#include <vector>

#include "best_time.hpp"
#include "cblas.h"

extern "C" void scipy_openblas_set_num_threads(int);

// One helper thread that spins between jobs, so a call pays no wake-up.
struct Pool {
    std::atomic<int> generation{0}, done{0};
    std::atomic<bool> quit{false};
    std::function<void()> job;
    std::thread helper;
    Pool() {
        helper = std::thread([this] {
            int seen = 0;
            while (!quit.load()) {
                const int g = generation.load(std::memory_order_acquire);
                if (g == seen) {
                    __builtin_ia32_pause();
                    continue;
                }
                seen = g;
                job();
                done.store(g, std::memory_order_release);
            }
        });
    }
    ~Pool() {
        quit = true;
        helper.join();
    }
    // Runs theirs on the helper and mine here; returns when both are done.
    void run(std::function<void()> theirs, const std::function<void()>& mine) {
        job = std::move(theirs);
        const int g = generation.load() + 1;
        generation.store(g, std::memory_order_release);
        mine();
        while (done.load(std::memory_order_acquire) != g) __builtin_ia32_pause();
    }
};

int main() {
    std::mt19937 gen(1); std::normal_distribution<float> nd;
    auto mk = [&](size_t n) { std::vector<float> v(n); for (auto& x : v) x = nd(gen) * 0.01f; return v; };
    struct S { const char* name; bool ta, tb; int M, N, K; float beta; };
    S shapes[] = {{"fwd0 NN", false, false, 128, 256, 784, 0}, {"fwd1 NN", false, false, 128, 128, 256, 0},
                  {"dH1 NT", false, true, 128, 256, 128, 0}, {"dW1 TN", true, false, 256, 128, 128, 1},
                  {"dW0 TN", true, false, 784, 256, 128, 1}};
    const int n = sizeof(shapes) / sizeof(shapes[0]);
    std::vector<std::vector<float>> As, Bs, Cs;
    for (auto& s : shapes) { As.push_back(mk((size_t)s.M * s.K)); Bs.push_back(mk((size_t)s.K * s.N)); Cs.push_back(mk((size_t)s.M * s.N)); }
    auto call = [&](int q, int m0, int m1, int n0, int n1) {
        const S& s = shapes[q];
        const int lda = s.ta ? s.M : s.K, ldb = s.tb ? s.K : s.N;
        const float* a = s.ta ? As[q].data() + m0 : As[q].data() + (size_t)m0 * lda;
        const float* b = s.tb ? Bs[q].data() + (size_t)n0 * ldb : Bs[q].data() + n0;
        scipy_cblas_sgemm(CblasRowMajor, s.ta ? CblasTrans : CblasNoTrans, s.tb ? CblasTrans : CblasNoTrans, m1 - m0, n1 - n0, s.K, -1e-3f, a, lda, b, ldb, s.beta, Cs[q].data() + (size_t)m0 * s.N + n0, s.N);
    };
    double tot[4] = {}, two[8], one[8], hN[8], hM[8];
    scipy_openblas_set_num_threads(2);
    for (int q = 0; q < n; ++q) two[q] = best_us([&] { call(q, 0, shapes[q].M, 0, shapes[q].N); }, 50);
    scipy_openblas_set_num_threads(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    {
        Pool pool;
        for (int q = 0; q < n; ++q) {
            const S& s = shapes[q];
            one[q] = best_us([&] { call(q, 0, s.M, 0, s.N); }, 50);
            hN[q] = best_us([&] { pool.run([&] { call(q, 0, s.M, s.N / 2, s.N); }, [&] { call(q, 0, s.M, 0, s.N / 2); }); }, 50);
            hM[q] = best_us([&] { pool.run([&] { call(q, s.M / 2, s.M, 0, s.N); }, [&] { call(q, 0, s.M / 2, 0, s.N); }); }, 50);
        }
    }
    for (int q = 0; q < n; ++q) {
        const S& s = shapes[q];
        tot[0] += one[q]; tot[1] += two[q]; tot[2] += hN[q]; tot[3] += hM[q];
        printf("%-8s %4dx%4dx%4d  1thr %7.1f  blas2 %7.1f (x%.2f)  halfN %7.1f (x%.2f)  halfM %7.1f (x%.2f)\n", s.name, s.M, s.N, s.K, one[q], two[q], one[q] / two[q], hN[q], one[q] / hN[q], hM[q], one[q] / hM[q]);
    }
    printf("total    1thr %.1f  blas2 %.1f  halfN %.1f  halfM %.1f us\n", tot[0], tot[1], tot[2], tot[3]);
}
