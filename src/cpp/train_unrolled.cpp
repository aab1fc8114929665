// The unrolled trainer: the textbook shape, one hidden layer of ReLUs a few units wide trained one
// row at a time with plain SGD, compiled for each width so every loop is unrolled (the output's
// ReLU or identity is a flag): there the per-row work is a few dozen multiply-adds and loop
// control would otherwise cost more than the arithmetic.
#include <algorithm>

#include "losses.hpp"
#include "optimizers.hpp"
#include "strategies.hpp"

namespace dp {

namespace {

// Such a loop is bound by the latency of the chain that runs from one row's output error
// through the weights into the next row's output, so the code below keeps that chain short
// and free of branches:
//  - the weights live in local arrays (registers), not in the model's memory;
//  - sums are balanced trees rather than serial running sums;
//  - ReLU's derivative is a select, and the output error is taken from Z, not ReLU(Z);
//  - the next row's hidden pre-activation comes from the old first-layer weights plus a
//    correction, z' = (b0 + keep x'W0) - lr (1 + x'.x) d1, which equals b0' + x'W0' for the
//    updated W0' = keep W0 - lr x d1, b0' = b0 - lr d1; with d1 = g act0'(z) (e W1^T)
//    expanded, everything but the output error e is folded into a matrix made off the chain.
// The weights themselves are still updated the usual way, off the chain; the results differ
// from the step-by-step order only by rounding.

// term(LO) + ... + term(HI - 1), added as a balanced tree.
template <int LO, int HI, typename Term>
DP_ALWAYS_INLINE auto tree_sum(const Term& term) {
    if constexpr (HI - LO == 1) {
        return term(LO);
    } else {
        constexpr int MID = LO + (HI - LO) / 2;
        return tree_sum<LO, MID>(term) + tree_sum<MID, HI>(term);
    }
}

template <typename T, int NI, int NH, int NO>
DP_MULTIVERSION DP_SCALAR_LOOPS double unrolled_rows(const Model<T>& m, const T* X, const T* Y, const T* w,
                                                      std::int64_t begin, std::int64_t end,
                                                      const std::int64_t* perm, T lr, T keep, double* metrics,
                                                      bool relu_out) {
    T W0[NI * NH], b0[NH], W1[NH * NO], b1[NO];  // (NI, NH), (NH,), (NH, NO), (NO,)
    std::copy_n(m.W[0], NI * NH, W0);
    std::copy_n(m.b[0], NH, b0);
    std::copy_n(m.W[1], NH * NO, W1);
    std::copy_n(m.b[1], NO, b1);
    double loss = 0.0, sq_sums[NO] = {};
    auto row_of = [perm](std::int64_t s) { return perm ? perm[s] : s; };
    if (begin >= end) return loss;

    const T* x = X + row_of(begin) * NI;  // (NI,)
    T z1[NH];
    for (int j = 0; j < NH; ++j) z1[j] = b0[j] + tree_sum<0, NI>([&](int k) { return x[k] * W0[k * NH + j]; });
    for (std::int64_t s = begin; s < end; ++s) {
        const std::int64_t r = row_of(s);
        const T* y = Y + r * NO;
        const T g = w ? w[r] : T(1);
        T h1[NH], on1[NH], z2[NO], e[NO], d2[NO];
        for (int j = 0; j < NH; ++j) {
            h1[j] = z1[j] > T(0) ? z1[j] : T(0);
            on1[j] = z1[j] > T(0) ? T(1) : T(0);
        }
        for (int j = 0; j < NO; ++j) z2[j] = b1[j] + tree_sum<0, NH>([&](int k) { return h1[k] * W1[k * NO + j]; });
        double row = 0.0;
        for (int j = 0; j < NO; ++j) {
            const T diff = z2[j] - y[j];
            const bool active = !relu_out || z2[j] > T(0);
            const T res = active ? diff : -y[j];  // relu(z2) - y
            e[j] = active ? Mse::grad(diff) : T(0);  // dLoss/dz2 before the sample weight
            d2[j] = g * e[j];
            row += Mse::value(double(res));
            sq_sums[j] += double(g) * double(res) * double(res);
        }
        loss += double(g) * row;

        const std::int64_t s_next = s + 1 < end ? s + 1 : s;  // the last row of the block: unused
        const T* xn = X + row_of(s_next) * NI;
        const T c = g * lr * (T(1) + tree_sum<0, NI>([&](int k) { return xn[k] * x[k]; }));
        for (int j = 0; j < NH; ++j) {
            T zn = b0[j] + keep * tree_sum<0, NI>([&](int k) { return xn[k] * W0[k * NH + j]; });
            const T cj = c * on1[j];
            for (int o = 0; o < NO; ++o) zn -= e[o] * (cj * W1[j * NO + o]);
            z1[j] = zn;
        }
        // The updates, with the errors scaled by lr once: ld2 = lr d2, ld1 = lr d1, d1 taken
        // from the weights before this row's update.
        T ld2[NO], ld1[NH];
        for (int j = 0; j < NO; ++j) ld2[j] = lr * d2[j];
        for (int k = 0; k < NH; ++k) ld1[k] = on1[k] * tree_sum<0, NO>([&](int j) { return ld2[j] * W1[k * NO + j]; });
        for (int k = 0; k < NH; ++k)
            for (int j = 0; j < NO; ++j) W1[k * NO + j] = keep * W1[k * NO + j] - h1[k] * ld2[j];
        for (int j = 0; j < NO; ++j) b1[j] -= ld2[j];
        for (int k = 0; k < NI; ++k)
            for (int j = 0; j < NH; ++j) W0[k * NH + j] = keep * W0[k * NH + j] - x[k] * ld1[j];
        for (int j = 0; j < NH; ++j) b0[j] -= ld1[j];
        x = xn;
    }
    std::copy_n(W0, NI * NH, m.W[0]);
    std::copy_n(b0, NH, m.b[0]);
    std::copy_n(W1, NH * NO, m.W[1]);
    std::copy_n(b1, NO, m.b[1]);
    for (int j = 0; j < NO; ++j) metrics[1 + j] += sq_sums[j];
    return loss;
}

template <typename T>
using UnrolledRows = double (*)(const Model<T>&, const T*, const T*, const T*, std::int64_t, std::int64_t,
                             const std::int64_t*, T, T, double*, bool);

template <typename T, int NI, int NH, int NO>
UnrolledRows<T> pick_out(int no, bool relu_out) {
    if constexpr (NO > tuning::kUnrolledMaxOut) {
        return nullptr;
    } else {
        if (no != NO) return pick_out<T, NI, NH, NO + 1>(no, relu_out);
        return &unrolled_rows<T, NI, NH, NO>;
    }
}

template <typename T, int NI, int NH>
UnrolledRows<T> pick_hidden(int nh, int no, bool relu_out) {
    if constexpr (NH > tuning::kUnrolledMaxHidden) {
        return nullptr;
    } else {
        return nh == NH ? pick_out<T, NI, NH, 1>(no, relu_out) : pick_hidden<T, NI, NH + 1>(nh, no, relu_out);
    }
}

template <typename T, int NI>
UnrolledRows<T> pick_in(int ni, int nh, int no, bool relu_out) {
    if constexpr (NI > tuning::kUnrolledMaxIn) {
        return nullptr;
    } else {
        return ni == NI ? pick_hidden<T, NI, 1>(nh, no, relu_out) : pick_in<T, NI + 1>(ni, nh, no, relu_out);
    }
}

template <typename T>
UnrolledRows<T> unrolled_for(const Model<T>& m) {
    return pick_in<T, 1>(m.sizes[0], m.sizes[1], m.sizes[2], m.acts[1] == act_of<Relu>);
}

}  // namespace

template <typename T>
bool unrolled_applies(const Model<T>& m, const Epoch<T>& e) {
    return m.n_layers() == 2 && e.batch == 1 && m.loss == loss_of<Mse> &&
           is_plain_sgd(e.opt) && e.objective.is_default() && m.acts[0] == act_of<Relu> &&
           (m.acts[1] == act_of<Relu> || m.acts[1] == act_of<Identity>) && unrolled_for(m) != nullptr;
}

template <typename T>
void train_unrolled(const Model<T>& m, Epoch<T>& e, EpochPoll<T>& poll) {
    const UnrolledRows<T> rows = unrolled_for(m);
    const bool relu_out = m.acts[1] == act_of<Relu>;
    const SgdStep<T> sgd(T(e.opt.lr), T(e.opt.weight_decay));
    // Blocks of rows between Ctrl-C checks; each row is one optimizer step.
    const std::int64_t block = std::max<std::int64_t>(1, tuning::kCheckEvery / std::max<long>(poll.work_per_row(), 1));
    for (std::int64_t s = 0; s < e.n; s += block) {
        const std::int64_t end = std::min(e.n, s + block);
        e.metrics[0] += rows(m, e.X, e.Y, e.w, s, end, e.perm, sgd.lr, sgd.keep, e.metrics + 1, relu_out);
        e.step += end - s;
        if (poll(end - s)) break;
    }
}

#define DP_INSTANTIATE_UNROLLED(T)                                                   \
    template bool unrolled_applies<T>(const Model<T>&, const Epoch<T>&);            \
    template void train_unrolled<T>(const Model<T>&, Epoch<T>&, EpochPoll<T>&);

DP_INSTANTIATE_UNROLLED(float)
DP_INSTANTIATE_UNROLLED(double)

}  // namespace dp
