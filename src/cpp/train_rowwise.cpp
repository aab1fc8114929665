// The row-wise trainer: batches of one row through networks so small that entering BLAS and
// vectorised loops costs more than computing run in plain scalar loops: forward, loss and
// backward of the row, then one optimizer step (plain SGD's during the backward pass).
#include <vector>

#include "kernels.hpp"
#include "strategies.hpp"

namespace dp {

bool rowwise_applies(const std::vector<int>& sizes, int batch) {
    long params = 0;
    for (std::size_t l = 0; l + 1 < sizes.size(); ++l) params += (long)sizes[l] * sizes[l + 1];
    return batch == 1 && params <= tuning::kRowwiseParams;
}

namespace {

template <typename T>
class RowwiseTrainer {
  public:
    RowwiseTrainer(const Model<T>& m, Epoch<T>& e)
        : m_(m), e_(e), L_(m.n_layers()), plain_sgd_(is_plain_sgd(e.opt)), k_(states_per_param(e.opt)) {
        offset_.push_back(0);
        int widest = m.n_in();
        for (int l = 0; l < L_; ++l) {
            offset_.push_back(offset_.back() + m.fan_out(l));
            widest = std::max(widest, m.fan_out(l));
            gW_.emplace_back((std::size_t)m.fan_in(l) * m.fan_out(l));
            gb_.emplace_back(m.fan_out(l));
        }
        z_.resize(offset_.back());
        h_.resize(offset_.back());
        d_cur_.resize(widest);
        d_prev_.resize(widest);
    }

    void run(EpochPoll<T>& poll) {
        for (std::int64_t s = 0; s < e_.n; ++s) {  // batches of one row
            const std::int64_t i = e_.perm ? e_.perm[s] : s;
            const BatchScale bs = batch_scale(e_, 1, [&](int) { return e_.w[i]; });
            if (!bs.skip) e_.metrics[0] += bs.loss_weight * step(i, bs);
            if (poll(1)) break;
        }
    }

  private:
    // One optimizer step on data row i; returns its weighted loss. Plain SGD updates the
    // weights during the backward pass; the other optimizers step from the row's gradient.
    DP_SCALAR_LOOPS double step(std::int64_t i, const BatchScale& bs) {
        const SgdStep<T> sgd_w(T(e_.opt.lr), T(bs.decay)), sgd_b(T(e_.opt.lr), T(0));  // no decay on biases
        const T* x = e_.X + i * m_.n_in();
        forward(x);
        const int o = offset_[L_ - 1];
        const double loss = loss_forward_backward<T>(m_.loss, m_.acts[L_ - 1], 1, m_.n_out(), z_.data() + o,
                                                     h_.data() + o, e_.Y + i * m_.n_out(), e_.w ? e_.w + i : nullptr,
                                                     T(bs.scale), d_cur_.data(), e_.metrics + 1);
        backward(x, sgd_w, sgd_b);
        const std::int64_t t = ++e_.step;
        if (plain_sgd_) return loss;
        for (int l = 0; l < L_; ++l) {
            T* const* sw = e_.state.data() + (std::size_t)k_ * (2 * l);
            optimizer_update<T>(e_.opt, gW_[l].size(), m_.W[l], gW_[l].data(), sw, T(bs.decay), t);
            optimizer_update<T>(e_.opt, gb_[l].size(), m_.b[l], gb_[l].data(), sw + k_, T(0), t);
        }
        return loss;
    }

    // z, h of every layer for the input row x.
    DP_SCALAR_LOOPS void forward(const T* x) {
        const T* in = x;
        for (int l = 0; l < L_; ++l) {
            const int fi = m_.fan_in(l), fo = m_.fan_out(l);
            const T *W = m_.W[l], *b = m_.b[l];
            T* z = z_.data() + offset_[l];
            T* h = h_.data() + offset_[l];
            for (int j = 0; j < fo; ++j) {
                T s = T(0);
                for (int k = 0; k < fi; ++k) s += in[k] * W[(std::size_t)k * fo + j];
                z[j] = s + b[j];
            }
            with_activation(m_.acts[l], [&](auto act) DP_INLINE_LAMBDA {
                using A = decltype(act);
                if constexpr (A::rowwise) {
                    activation_forward<T>(m_.acts[l], 1, fo, z, nullptr, h);
                } else {
                    for (int j = 0; j < fo; ++j) h[j] = A::template f<T>(z[j]);
                }
            });
            in = h;
        }
    }

    // From the output error in d_cur_, each layer's gradient into gW_, gb_ (plain SGD: its step
    // taken at once), and the error of the layer below from the weights before the update.
    DP_SCALAR_LOOPS void backward(const T* x, const SgdStep<T>& sgd_w, const SgdStep<T>& sgd_b) {
        for (int l = L_ - 1; l >= 0; --l) {
            const int fi = m_.fan_in(l), fo = m_.fan_out(l);
            const T* in = l == 0 ? x : h_.data() + offset_[l - 1];
            T* W = m_.W[l];
            const T* d = d_cur_.data();
            if (l > 0) below_error(l, in);
            if (plain_sgd_) {
                for (int k = 0; k < fi; ++k)
                    for (int j = 0; j < fo; ++j) W[(std::size_t)k * fo + j] = sgd_w(W[(std::size_t)k * fo + j], in[k] * d[j]);
                for (int j = 0; j < fo; ++j) m_.b[l][j] = sgd_b(m_.b[l][j], d[j]);
            } else {
                T* g = gW_[l].data();
                for (int k = 0; k < fi; ++k)
                    for (int j = 0; j < fo; ++j) g[(std::size_t)k * fo + j] = in[k] * d[j];
                std::copy(d, d + fo, gb_[l].data());
            }
            if (l > 0) std::swap(d_cur_, d_prev_);
        }
    }

    // d_prev_ = dZ of layer l-1, whose output is `h`: (dZ_l W_l^T) * act'(z).
    DP_SCALAR_LOOPS void below_error(int l, const T* h) {
        const int fi = m_.fan_in(l), fo = m_.fan_out(l);
        const T* W = m_.W[l];
        const T* d = d_cur_.data();
        const T* z = z_.data() + offset_[l - 1];
        for (int k = 0; k < fi; ++k) {
            T s = T(0);
            for (int j = 0; j < fo; ++j) s += d[j] * W[(std::size_t)k * fo + j];
            d_prev_[k] = s;
        }
        with_activation(m_.acts[l - 1], [&](auto act) DP_INLINE_LAMBDA {
            using A = decltype(act);
            if constexpr (A::rowwise) {
                activation_backward<T>(m_.acts[l - 1], 1, fi, z, h, d_prev_.data(), d_prev_.data());
            } else {
                for (int k = 0; k < fi; ++k) d_prev_[k] *= A::template df<T>(z[k], h[k]);
            }
        });
    }

    const Model<T>& m_;
    Epoch<T>& e_;
    const int L_;
    const bool plain_sgd_;
    const int k_;
    std::vector<T> z_, h_, d_cur_, d_prev_;  // one row per layer, concatenated; errors of two layers
    std::vector<int> offset_;                // start of layer l's row in z_ and h_
    std::vector<std::vector<T>> gW_, gb_;    // the row's gradient (optimizers other than plain SGD)
};

}  // namespace

template <typename T>
void train_rowwise(const Model<T>& m, Epoch<T>& e, EpochPoll<T>& poll) {
    RowwiseTrainer<T>(m, e).run(poll);
}

template void train_rowwise<float>(const Model<float>&, Epoch<float>&, EpochPoll<float>&);
template void train_rowwise<double>(const Model<double>&, Epoch<double>&, EpochPoll<double>&);

}  // namespace dp
