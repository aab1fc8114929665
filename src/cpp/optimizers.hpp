// The optimizer table: one row per optimizer, and the update kernels.
//
// A row has
//   name               the `kind` the Python optimizer class passes;
//   states(config)     how many state arrays, each of its parameter's shape, a parameter keeps;
//   update(...)        one step on one parameter array, in place.
// The hyper-parameters cross from Python in an OptimizerConfig, filled by the Python optimizer.
//
// To add an optimizer: write its row (and its kernel, if it needs a new one) here, put it in
// `Optimizers`, and give the Python class in optimizers.py the same `kind`; reference.py gets
// the same row.
#pragma once

#include <cstddef>
#include <cstdint>

#include "rows.hpp"

namespace dp {

enum class Opt : int {};

// The hyper-parameters of one epoch's steps. lr is the epoch's scheduled rate.
struct OptimizerConfig {
    Opt kind{};
    double lr = 0.0, momentum = 0.0, weight_decay = 0.0, beta1 = 0.0, beta2 = 0.0, eps = 0.0;
    bool nesterov = false;
};

// Plain SGD's step on one element, p <- keep p - lr g with keep = 1 - lr decay. Every path that
// takes a plain SGD step uses these two numbers; the batched trainer folds them into its weight
// gradient's product (alpha -lr, beta keep).
template <typename T>
struct SgdStep {
    T lr, keep;
    SgdStep(T lr_, T decay) : lr(lr_), keep(T(1) - lr_ * decay) {}
    T operator()(T p, T g) const { return keep * p - lr * g; }
};

// p (n) in place from its gradient g; decay is the weight decay (0 for biases).
// SGD as torch.optim.SGD with dampening 0; velocity is null without momentum.
template <typename T>
void sgd_update(std::size_t n, T* p, const T* g, T* velocity, T lr, T momentum, bool nesterov, T decay);
// Adam as torch.optim.Adam (decay added to the gradient) or, decoupled, as torch.optim.AdamW
// (p *= 1 - lr decay first); step is 1-based.
template <typename T>
void adam_update(std::size_t n, T* p, const T* g, T* m, T* v, T lr, T beta1, T beta2, T eps, T decay,
                 std::int64_t step, bool decoupled);

struct Sgd {
    static constexpr const char* name = "sgd";
    static int states(const OptimizerConfig& c) { return c.momentum != 0.0 ? 1 : 0; }
    template <typename T>
    static void update(std::size_t n, T* p, const T* g, T* const* s, const OptimizerConfig& c, T decay, std::int64_t) {
        sgd_update<T>(n, p, g, states(c) ? s[0] : nullptr, T(c.lr), T(c.momentum), c.nesterov, decay);
    }
};

// Adam and AdamW share a kernel; AdamW decouples the weight decay from the gradient.
template <bool Decoupled>
struct AdamRow {
    static int states(const OptimizerConfig&) { return 2; }
    template <typename T>
    static void update(std::size_t n, T* p, const T* g, T* const* s, const OptimizerConfig& c, T decay,
                       std::int64_t step) {
        adam_update<T>(n, p, g, s[0], s[1], T(c.lr), T(c.beta1), T(c.beta2), T(c.eps), decay, step, Decoupled);
    }
};

struct Adam : AdamRow<false> {
    static constexpr const char* name = "adam";
};

struct AdamW : AdamRow<true> {
    static constexpr const char* name = "adamw";
};

using Optimizers = RowList<Sgd, Adam, AdamW>;

template <class F>
DP_ALWAYS_INLINE decltype(auto) with_optimizer(Opt o, F&& f) {
    return with_row(Optimizers{}, int(o), static_cast<F&&>(f));
}

inline int states_per_param(const OptimizerConfig& c) {
    return with_optimizer(c.kind, [&](auto row) { return decltype(row)::states(c); });
}

// Plain SGD without momentum: its step can be folded into the weight-gradient product.
inline bool is_plain_sgd(const OptimizerConfig& c) {
    return c.kind == Opt(IndexOf<Sgd, Optimizers>::value) && Sgd::states(c) == 0;
}

// One step on parameter p (n) with gradient g and its state arrays s (states_per_param of them).
template <typename T>
void optimizer_update(const OptimizerConfig& c, std::size_t n, T* p, const T* g, T* const* s, T decay,
                      std::int64_t step) {
    with_optimizer(c.kind, [&](auto row) { decltype(row)::update(n, p, g, s, c, decay, step); });
}

}  // namespace dp
