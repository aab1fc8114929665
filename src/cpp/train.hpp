// Whole-network passes built on the kernels: inference, evaluation, full-batch
// gradients and one epoch of mini-batch training, each in a single call.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "kernels.hpp"

namespace dp {

// A network's parameters, borrowed from the caller. Layer l maps sizes[l] -> sizes[l+1].
template <typename T>
struct Model {
    std::vector<int> sizes;     // n_layers + 1 widths
    std::vector<T*> W;          // W[l] (sizes[l], sizes[l+1])
    std::vector<T*> b;          // b[l] (sizes[l+1])
    std::vector<Act> acts;      // one per layer; the last one is the output activation
    Loss loss = Loss::mse;
    int n_layers() const { return (int)W.size(); }
    int n_in() const { return sizes.front(); }
    int n_out() const { return sizes.back(); }
};

struct OptimizerConfig {
    Opt kind = Opt::sgd;
    double lr = 0.01, momentum = 0.0, weight_decay = 0.0;
    bool nesterov = false;
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
    // State arrays each parameter needs: velocity for momentum SGD, (m, v) for Adam.
    int states_per_param() const {
        return kind == Opt::adam ? 2 : (momentum != 0.0 ? 1 : 0);
    }
};

// Metrics layout shared by evaluate and train_epoch (float64, 2 + n_out entries):
// [sum of w_i * loss_i, weighted correct rows, weighted squared error per output ...].
inline int metrics_size(int n_out) { return 2 + n_out; }

// Rows per chunk of forward/evaluate/gradients (bounded workspace whatever n is), for a
// BLAS running `threads` threads.
constexpr long kSmallProduct = 1'000'000;
int chunk_rows(const std::vector<int>& sizes, std::int64_t n, int threads);

// Elements of workspace a pass over `rows` rows allocates (an upper bound), so callers can
// refuse work that cannot fit in memory before allocating anything.
double workspace_elements(const std::vector<int>& sizes, std::int64_t rows, bool backward, bool gradients);

// Shuffling: forward Fisher-Yates, where position i swaps with i + floor(h_i * (n - i) / 2^64)
// and h_i is the splitmix64 hash of seed + i * golden gamma. The hashes do not depend on each
// other, so it runs at memory speed, several times faster than numpy's Generator.permutation;
// reference.shuffled_order builds the same order. This is position i's swap.
inline void shuffle_step(std::uint64_t seed, std::int64_t n, std::int64_t* out, std::int64_t i) {
    std::uint64_t h = seed + std::uint64_t(i) * 0x9E3779B97F4A7C15ull;
    h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
    h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
    h ^= h >> 31;
    const auto j = i + std::int64_t((unsigned __int128)h * std::uint64_t(n - i) >> 64);
    const std::int64_t t = out[i];
    out[i] = out[j];
    out[j] = t;
}

// out (n) = the permutation of 0..n-1 that seed fixes.
inline void shuffled_order(std::uint64_t seed, std::int64_t n, std::int64_t* out) {
    for (std::int64_t i = 0; i < n; ++i) out[i] = i;
    for (std::int64_t i = 0; i + 1 < n; ++i) shuffle_step(seed, n, out, i);
}

// Called every few milliseconds of work; returning true stops the loop early.
using StopCheck = std::function<bool()>;

// out (n, n_out) = the network's output for X (n, n_in), in chunks of `chunk` rows. With
// check_finite, each chunk of X is checked for NaN and inf just before its pass (one read of
// X fewer than a separate check when X fits in cache); the pass stops at the first bad chunk
// and returns false. threads > 1 splits the chunks into that many contiguous runs, one per
// thread (the caller's plus threads - 1 started here), each with its own workspace; every
// row's output is the same bits as with one thread. Meant for passes whose products run
// single-threaded in BLAS, so the threads do not compete with BLAS's own.
template <typename T>
bool forward(const Model<T>& m, const T* X, std::int64_t n, int chunk, T* out, bool check_finite = false,
             int threads = 1);

// Adds the loss and metrics over X (n, n_in), Y (n, n_out), w (n, optional) to metrics.
template <typename T>
void evaluate(const Model<T>& m, const T* X, const T* Y, const T* w, std::int64_t n, int chunk,
              double* metrics);

// gW[l], gb[l] = gradients of (1/n) * sum_i w_i loss_i over all n rows (chunked).
template <typename T>
void gradients(const Model<T>& m, const T* X, const T* Y, const T* w, std::int64_t n, int chunk,
               const std::vector<T*>& gW, const std::vector<T*>& gb);

// One epoch of mini-batch training. Rows are visited in the order perm (n entries; null
// means 0..n-1) in batches of batch_size, the last one possibly smaller; each batch does
// forward, backward and one optimizer step. state holds states_per_param() arrays per
// parameter in the order W0, b0, W1, b1, ... (each state's arrays adjacent). step is the
// number of optimizer steps taken before this epoch; the new count is returned.
// The loss and metrics of each batch's forward pass are added to metrics.
// If should_stop returns true the epoch ends after the current step; *stopped is set.
// threads > 1 shares each batch's large products (split by rows, one single-threaded BLAS
// call per thread) and the gather of its rows among that many threads, the caller's and
// threads - 1 started here for the epoch; meant for a BLAS held at one thread meanwhile.
// Results then match one thread's to rounding.
template <typename T>
std::int64_t train_epoch(const Model<T>& m, const T* X, const T* Y, const T* w, std::int64_t n,
                         const std::int64_t* perm, int batch_size, const OptimizerConfig& opt,
                         const std::vector<T*>& state, std::int64_t step, double* metrics,
                         const StopCheck& should_stop, bool* stopped, int threads = 1);

}  // namespace dp
