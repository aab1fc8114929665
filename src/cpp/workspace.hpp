// The buffers of a pass over a block of rows, and the walks through the layers that use them:
// forward (dense_forward per layer) and backward (dense_backward and activation_backward per
// layer). predict, evaluate, gradients and the batched trainer all run these walks.
#pragma once

#include <algorithm>
#include <utility>
#include <vector>

#include "kernels.hpp"
#include "model.hpp"

namespace dp {

// Where dense_backward puts a layer's weight gradient: dW = alpha X^T dZ + beta dW.
template <typename T>
struct WeightSide {
    T* dW;
    T alpha, beta;
};

template <typename T>
class Workspace {
  public:
    // Buffers for up to `capacity` rows; the error buffers only with `backward`.
    Workspace(const Model<T>& model, int capacity, bool backward) : m(model), capacity_(capacity) {
        const int L = m.n_layers();
        Z_.resize(L);
        H_.resize(L);
        int widest = 0;
        for (int l = 0; l < L; ++l) {
            const std::size_t cells = (std::size_t)capacity * m.fan_out(l);
            H_[l].resize(cells);
            if (keeps_z(l)) Z_[l].resize(cells);
            widest = std::max({widest, m.fan_out(l), l > 0 ? m.fan_in(l) : 0});
        }
        if (!backward) return;
        dz_.resize((std::size_t)capacity * widest);
        dh_.resize((std::size_t)capacity * widest);
        db_.resize(widest);
        std::size_t transposed = 0;
        for (int l = 1; l < L; ++l)
            if (use_transposed_w<T>(m.fan_in(l), m.fan_out(l), capacity))
                transposed = std::max(transposed, (std::size_t)m.fan_in(l) * m.fan_out(l));
        wt_.resize(transposed);
    }

    T* h(int l) { return H_[l].data(); }
    const T* output() { return H_.back().data(); }
    // Z of layer l: its own buffer, or H's when the activation does not need Z kept.
    T* z(int l) { return Z_[l].empty() ? H_[l].data() : Z_[l].data(); }
    T* dz() { return dz_.data(); }  // dZ of the layer being walked (rows, fan_out)
    T* db() { return db_.data(); }  // its column sums: the bias gradient

    // X (rows, n_in) through every layer; the output is then in output().
    void forward(const T* X, int rows, const Products<T>& products = Products<T>()) {
        const T* in = X;
        for (int l = 0; l < m.n_layers(); ++l) {
            dense_forward<T>(m.acts[l], rows, m.fan_in(l), m.fan_out(l), in, m.W[l], m.b[l], z(l), h(l), products);
            in = h(l);
        }
    }

    // The loss of the last forward pass over rows whose targets are Y and weights w; leaves
    // dLoss/dZ of the output layer (scaled by `scale`) in dz() and its column sums in db().
    double loss(const T* Y, const T* w, int rows, T scale, double* metrics) {
        const int L = m.n_layers();
        const double total = loss_forward_backward<T>(m.loss, m.acts[L - 1], rows, m.n_out(), z(L - 1), h(L - 1), Y,
                                                      w, scale, dz(), metrics);
        column_sums<T>(rows, m.n_out(), dz(), db());
        return total;
    }

    // Walks the layers backwards from the error in dz() and db(). For layer l, dense_backward
    // takes the error of the layer below from W[l] and writes the weight gradient as
    // weight_side(l) says; then after(l) may change W[l] and b[l] (the bias gradient is in
    // db()); then the layer below's activation backward gives its own dz() and db().
    template <class Side, class After>
    void backward(const T* X, int rows, Side&& weight_side, After&& after,
                  const Products<T>& products = Products<T>()) {
        for (int l = m.n_layers() - 1; l >= 0; --l) {
            const int fi = m.fan_in(l), fo = m.fan_out(l);
            const WeightSide<T> side = weight_side(l);
            dense_backward<T>(rows, fi, fo, l > 0 ? h(l - 1) : X, m.W[l], dz(), l > 0 ? dh_.data() : nullptr, side.dW,
                              side.alpha, side.beta, wt(l), products);
            after(l);
            if (l == 0) break;
            activation_backward<T>(m.acts[l - 1], rows, fi, Z_[l - 1].empty() ? nullptr : Z_[l - 1].data(), h(l - 1),
                                   dh_.data(), dh_.data(), db());
            std::swap(dz_, dh_);
        }
    }

  private:
    // The output layer keeps Z for the loss unless H equals it (identity); hidden layers keep it
    // only when their activation's derivative needs it.
    bool keeps_z(int l) const {
        return (l == m.n_layers() - 1 && m.acts[l] != act_of<Identity>) || act_needs_z(m.acts[l]);
    }
    // Scratch for W[l]^T when dense_backward's dX is faster through it (layers above the first).
    T* wt(int l) {
        return l > 0 && use_transposed_w<T>(m.fan_in(l), m.fan_out(l), capacity_) ? wt_.data() : nullptr;
    }

    const Model<T>& m;
    int capacity_;
    std::vector<std::vector<T>> Z_, H_;  // Z_[l] empty when H_[l] holds it
    std::vector<T> dz_, dh_, db_, wt_;
};

}  // namespace dp
