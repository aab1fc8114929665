// The loss table: one row per loss. A row's loss sums over the outputs of a row.
//
// The residual losses have, for the residual r = h - y of one output,
//   value(r)   the loss (computed in double);
//   grad(r)    dloss/dh.
// Cross-entropy is computed from the logits of a softmax or sigmoid output (`from_logits`), so
// nothing underflows; loss_forward_backward handles it apart.
//
// To add a loss: write its row here and put it in `Losses`; reference.py gets the same row.
#pragma once

#include <algorithm>
#include <cmath>

#include "rows.hpp"

namespace dp {

struct Residual {
    static constexpr bool from_logits = false;
};

struct Mse : Residual {  // (1/2) r^2: the textbook's cost, with derivative r
    static constexpr const char* name = "mse";
    static double value(double r) { return 0.5 * (r * r); }  // r * r shared with the R^2 sums
    template <typename T> static T grad(T r) { return r; }
};

struct CrossEntropy {
    static constexpr const char* name = "cross_entropy";
    static constexpr bool from_logits = true;
};

struct Mae : Residual {
    static constexpr const char* name = "mae";
    static double value(double r) { return std::abs(r); }
    template <typename T> static T grad(T r) { return T((r > T(0)) - (r < T(0))); }
};

struct Huber : Residual {
    static constexpr const char* name = "huber";
    static constexpr double delta = 1.0;  // PyTorch's default
    static double value(double r) {
        const double a = std::abs(r);
        return a <= delta ? 0.5 * a * a : delta * (a - 0.5 * delta);
    }
    template <typename T> static T grad(T r) { return std::clamp(r, T(-delta), T(delta)); }
};

using Losses = RowList<Mse, CrossEntropy, Mae, Huber>;

// A loss: the position of its row in Losses.
enum class Loss : int {};
template <class Row>
constexpr Loss loss_of = Loss(IndexOf<Row, Losses>::value);

template <class F>
DP_ALWAYS_INLINE decltype(auto) with_loss(Loss l, F&& f) {
    return with_row(Losses{}, int(l), static_cast<F&&>(f));
}

}  // namespace dp
