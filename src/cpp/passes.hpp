// Whole-network passes, each one call from Python: inference, evaluation, full-batch gradients
// and one epoch of mini-batch training. All workspace is allocated once per call.
#pragma once

#include <cstdint>
#include <vector>

#include "model.hpp"
#include "optimizers.hpp"
#include "threads.hpp"

namespace dp {

// out (n, n_out) = the network's output for X (n, n_in), in chunks of plan.chunk_rows rows.
// With check_finite, each chunk of X is checked for NaN and inf just before its pass (one read
// of X fewer than a separate check when X fits in cache); the pass stops at the first bad chunk
// and returns false. With plan.team > 1 the chunks are split into that many contiguous runs,
// one per thread, each with its own workspace; every row's output is the same bits as with one
// thread.
template <typename T>
bool forward(const Model<T>& m, const T* X, std::int64_t n, const ThreadPlan& plan, T* out, bool check_finite);

// Adds the loss and metrics over X (n, n_in), Y (n, n_out), w (n, optional) to metrics.
template <typename T>
void evaluate(const Model<T>& m, const T* X, const T* Y, const T* w, std::int64_t n, const ThreadPlan& plan,
              double* metrics);

// gW[l], gb[l] = gradients of (1/n) sum_i w_i loss_i over all n rows; returns sum_i w_i loss_i.
template <typename T>
double gradients(const Model<T>& m, const T* X, const T* Y, const T* w, std::int64_t n, const ThreadPlan& plan,
               const std::vector<T*>& gW, const std::vector<T*>& gb);

// One epoch of mini-batch training: rows visited in the order `perm` (null: 0 .. n-1) in
// batches of `batch` rows, the last one possibly smaller; each batch does forward, backward and
// one optimizer step.
template <typename T>
struct Epoch {
    const T* X = nullptr;              // (n, n_in)
    const T* Y = nullptr;              // (n, n_out)
    const T* w = nullptr;              // (n) sample weights, or null
    std::int64_t n = 0;
    const std::int64_t* perm = nullptr;
    int batch = 1;
    OptimizerConfig opt;
    Objective objective;
    std::vector<T*> state;             // states_per_param(opt) arrays per parameter: W0, b0, W1, ...
    std::int64_t step = 0;             // optimizer steps taken; counts this epoch's steps too
    double* metrics = nullptr;         // metrics_size(n_out) entries, added to (the loss as the
                                       // batches' forward passes saw it, before their updates)
    StopCheck should_stop;             // polled every few milliseconds; true ends the epoch
    bool stopped = false;              // set when should_stop ended the epoch
    ThreadPlan plan;                   // plan.team > 1: products shared by that many threads
};

template <typename T>
void train_epoch(const Model<T>& m, Epoch<T>& epoch);

}  // namespace dp
