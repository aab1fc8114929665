// Whole-network loops. All workspace is allocated once per call, before the loop.
#include "train.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

namespace dp {

namespace {

// Rows per chunk for forward/evaluate/gradients: enough to keep GEMMs efficient,
// few enough that workspace stays small (about 4 M elements) whatever n is.
int chunk_rows(const std::vector<int>& sizes, std::int64_t n) {
    long width = 0;
    for (std::size_t l = 1; l < sizes.size(); ++l) width += 2L * sizes[l];
    long rows = (4L << 20) / std::max(width, 1L);
    rows = std::clamp(rows, 64L, 4096L);
    return (int)std::max<std::int64_t>(1, std::min<std::int64_t>(rows, n));
}

// Per-layer activations of one batch and the two error buffers of the backward pass.
template <typename T>
struct Workspace {
    const Model<T>& m;
    int capacity;                       // rows the buffers hold
    std::vector<std::vector<T>> Z, H;   // Z[l] (capacity, sizes[l+1]), empty when H holds it
    std::vector<T> d_cur, d_prev;       // (capacity, widest layer)

    Workspace(const Model<T>& model, int rows, bool backward) : m(model), capacity(rows) {
        const int L = m.n_layers();
        Z.resize(L);
        H.resize(L);
        int widest = 0;
        for (int l = 0; l < L; ++l) {
            const std::size_t cells = (std::size_t)rows * m.sizes[l + 1];
            H[l].resize(cells);
            if (keeps_z(l)) Z[l].resize(cells);
            widest = std::max(widest, m.sizes[l + 1]);
            if (l > 0) widest = std::max(widest, m.sizes[l]);
        }
        if (backward) {
            d_cur.resize((std::size_t)rows * widest);
            d_prev.resize((std::size_t)rows * widest);
        }
    }
    // The output layer keeps Z for the loss; hidden layers only when the derivative needs it.
    bool keeps_z(int l) const { return l == m.n_layers() - 1 || act_needs_z(m.acts[l]); }
    T* z(int l) { return Z[l].empty() ? H[l].data() : Z[l].data(); }
    const T* z_or_null(int l) const { return Z[l].empty() ? nullptr : Z[l].data(); }
    T* h(int l) { return H[l].data(); }
    const T* output() { return H.back().data(); }

    // X (rows, n_in) -> H[l] for every layer.
    void forward(const T* X, int rows) {
        const T* in = X;
        for (int l = 0; l < m.n_layers(); ++l) {
            const int fi = m.sizes[l], fo = m.sizes[l + 1];
            gemm<T>(false, false, rows, fo, fi, T(1), in, fi, m.W[l], fo, T(0), z(l), fo);
            bias_activation_forward<T>(m.acts[l], rows, fo, z(l), m.b[l], h(l));
            in = h(l);
        }
    }

    // Loss of the forward pass just made; leaves dLoss/dZ of the output layer in d_cur.
    double output_error(const T* Y, const T* w, int rows, T scale, double* metrics) {
        const int L = m.n_layers();
        return loss_forward_backward<T>(m.loss, m.acts[L - 1], rows, m.n_out(), z(L - 1), h(L - 1), Y,
                                        w, scale, d_cur.data(), metrics);
    }

    // Walks the layers backwards from the output error in d_cur. For each layer, `update`
    // receives (l, layer input, dZ) after dZ W^T has been taken from the old weights, so
    // it may change W[l] in place.
    template <typename Update>
    void backward(const T* X, int rows, Update&& update) {
        for (int l = m.n_layers() - 1; l >= 0; --l) {
            const int fi = m.sizes[l], fo = m.sizes[l + 1];
            const T* in = l == 0 ? X : h(l - 1);
            if (l > 0)  // dH (rows, fi) = dZ (rows, fo) W^T
                gemm<T>(false, true, rows, fi, fo, T(1), d_cur.data(), fo, m.W[l], fo, T(0),
                        d_prev.data(), fi);
            update(l, in, (const T*)d_cur.data());
            if (l > 0) {
                activation_backward<T>(m.acts[l - 1], rows, fi, z_or_null(l - 1), h(l - 1),
                                       d_prev.data(), d_prev.data());
                std::swap(d_cur, d_prev);
            }
        }
    }
};

// Copies the batch's rows, chosen by perm, into contiguous buffers.
template <typename T>
void gather_rows(const T* src, int cols, const std::int64_t* idx, int rows, T* dst) {
    for (int r = 0; r < rows; ++r)
        std::memcpy(dst + (std::size_t)r * cols, src + (std::size_t)idx[r] * cols, sizeof(T) * cols);
}

}  // namespace

template <typename T>
void forward(const Model<T>& m, const T* X, std::int64_t n, T* out) {
    if (n <= 0) return;
    const int chunk = chunk_rows(m.sizes, n);
    Workspace<T> ws(m, chunk, false);
    for (std::int64_t s = 0; s < n; s += chunk) {
        const int rows = (int)std::min<std::int64_t>(chunk, n - s);
        ws.forward(X + s * m.n_in(), rows);
        std::memcpy(out + s * m.n_out(), ws.output(), sizeof(T) * (std::size_t)rows * m.n_out());
    }
}

template <typename T>
void evaluate(const Model<T>& m, const T* X, const T* Y, const T* w, std::int64_t n,
              double* metrics) {
    if (n <= 0) return;
    const int chunk = chunk_rows(m.sizes, n);
    Workspace<T> ws(m, chunk, false);
    const int L = m.n_layers();
    for (std::int64_t s = 0; s < n; s += chunk) {
        const int rows = (int)std::min<std::int64_t>(chunk, n - s);
        ws.forward(X + s * m.n_in(), rows);
        metrics[0] += loss_forward_backward<T>(m.loss, m.acts[L - 1], rows, m.n_out(), ws.z(L - 1),
                                               ws.h(L - 1), Y + s * m.n_out(), w ? w + s : nullptr,
                                               T(1), nullptr, metrics + 1);
    }
}

template <typename T>
void gradients(const Model<T>& m, const T* X, const T* Y, const T* w, std::int64_t n,
               const std::vector<T*>& gW, const std::vector<T*>& gb) {
    const int L = m.n_layers();
    for (int l = 0; l < L; ++l) {  // n == 0 leaves zero gradients
        std::fill(gW[l], gW[l] + (std::size_t)m.sizes[l] * m.sizes[l + 1], T(0));
        std::fill(gb[l], gb[l] + m.sizes[l + 1], T(0));
    }
    if (n <= 0) return;
    const int chunk = chunk_rows(m.sizes, n);
    Workspace<T> ws(m, chunk, true);
    const T scale = T(1.0 / double(n));
    for (std::int64_t s = 0; s < n; s += chunk) {
        const int rows = (int)std::min<std::int64_t>(chunk, n - s);
        const T* Xc = X + s * m.n_in();
        ws.forward(Xc, rows);
        ws.output_error(Y + s * m.n_out(), w ? w + s : nullptr, rows, scale, nullptr);
        ws.backward(Xc, rows, [&](int l, const T* in, const T* dZ) {
            const int fi = m.sizes[l], fo = m.sizes[l + 1];
            gemm<T>(true, false, fi, fo, rows, T(1), in, fi, dZ, fo, T(1), gW[l], fo);
            column_sums<T>(rows, fo, dZ, T(1), T(1), gb[l]);
        });
    }
}

template <typename T>
std::int64_t train_epoch(const Model<T>& m, const T* X, const T* Y, const T* w, std::int64_t n,
                         const std::int64_t* perm, int batch_size, const OptimizerConfig& opt,
                         const std::vector<T*>& state, std::int64_t step, double* metrics,
                         const StopCheck& should_stop, bool* stopped) {
    if (stopped) *stopped = false;
    if (n <= 0) return step;
    const int L = m.n_layers();
    const int batch = (int)std::min<std::int64_t>(batch_size, n);
    Workspace<T> ws(m, batch, true);

    // Gathered batch rows (only when visiting rows out of order).
    std::vector<T> Xb, Yb, wb;
    if (perm) {
        Xb.resize((std::size_t)batch * m.n_in());
        Yb.resize((std::size_t)batch * m.n_out());
        if (w) wb.resize(batch);
    }
    // Plain SGD folds the update into the weight-gradient GEMM (W = beta W - lr X^T dZ) and
    // needs no gradient buffers; the other optimizers keep one gradient per parameter.
    const bool fused_sgd = opt.kind == Opt::sgd && opt.momentum == 0.0;
    std::vector<std::vector<T>> gW, gb;
    if (!fused_sgd) {
        gW.resize(L);
        gb.resize(L);
        for (int l = 0; l < L; ++l) {
            gW[l].resize((std::size_t)m.sizes[l] * m.sizes[l + 1]);
            gb[l].resize(m.sizes[l + 1]);
        }
    }
    const T lr = T(opt.lr), decay = T(opt.weight_decay);
    const int k = opt.states_per_param();

    long work_per_row = 0;  // multiply-adds, to call should_stop every few milliseconds
    for (int l = 0; l < L; ++l) work_per_row += 3L * m.sizes[l] * m.sizes[l + 1] + 8L * m.sizes[l + 1];
    constexpr long kCheckEvery = 2'000'000;
    long work = 0;

    for (std::int64_t s = 0; s < n; s += batch) {
        const int rows = (int)std::min<std::int64_t>(batch, n - s);
        const T *Xc, *Yc, *wc = nullptr;
        if (perm) {
            gather_rows(X, m.n_in(), perm + s, rows, Xb.data());
            gather_rows(Y, m.n_out(), perm + s, rows, Yb.data());
            if (w) {
                for (int r = 0; r < rows; ++r) wb[r] = w[perm[s + r]];
                wc = wb.data();
            }
            Xc = Xb.data();
            Yc = Yb.data();
        } else {
            Xc = X + s * m.n_in();
            Yc = Y + s * m.n_out();
            if (w) wc = w + s;
        }

        ws.forward(Xc, rows);
        metrics[0] += ws.output_error(Yc, wc, rows, T(1.0 / rows), metrics + 1);
        ++step;
        ws.backward(Xc, rows, [&](int l, const T* in, const T* dZ) {
            const int fi = m.sizes[l], fo = m.sizes[l + 1];
            if (fused_sgd) {
                gemm<T>(true, false, fi, fo, rows, -lr, in, fi, dZ, fo, T(1) - lr * decay, m.W[l], fo);
                column_sums<T>(rows, fo, dZ, -lr, T(1), m.b[l]);
                return;
            }
            gemm<T>(true, false, fi, fo, rows, T(1), in, fi, dZ, fo, T(0), gW[l].data(), fo);
            column_sums<T>(rows, fo, dZ, T(1), T(0), gb[l].data());
            T* const* sw = state.data() + (std::size_t)k * (2 * l);  // W[l]'s state arrays
            T* const* sb = sw + k;                                   // b[l]'s state arrays
            const std::size_t nw = (std::size_t)fi * fo;
            if (opt.kind == Opt::adam) {
                adam_update<T>(nw, m.W[l], gW[l].data(), sw[0], sw[1], lr, T(opt.beta1),
                               T(opt.beta2), T(opt.eps), decay, step);
                adam_update<T>(fo, m.b[l], gb[l].data(), sb[0], sb[1], lr, T(opt.beta1),
                               T(opt.beta2), T(opt.eps), T(0), step);
            } else {
                sgd_update<T>(nw, m.W[l], gW[l].data(), k ? sw[0] : nullptr, lr, T(opt.momentum),
                              opt.nesterov, decay);
                sgd_update<T>(fo, m.b[l], gb[l].data(), k ? sb[0] : nullptr, lr, T(opt.momentum),
                              opt.nesterov, T(0));
            }
        });

        work += work_per_row * rows;
        if (should_stop && work >= kCheckEvery) {
            work = 0;
            if (should_stop()) {
                if (stopped) *stopped = true;
                break;
            }
        }
    }
    return step;
}

#define DP_INSTANTIATE_TRAIN(T)                                                                   \
    template void forward<T>(const Model<T>&, const T*, std::int64_t, T*);                        \
    template void evaluate<T>(const Model<T>&, const T*, const T*, const T*, std::int64_t,        \
                              double*);                                                           \
    template void gradients<T>(const Model<T>&, const T*, const T*, const T*, std::int64_t,       \
                               const std::vector<T*>&, const std::vector<T*>&);                  \
    template std::int64_t train_epoch<T>(const Model<T>&, const T*, const T*, const T*,            \
                                         std::int64_t, const std::int64_t*, int,                  \
                                         const OptimizerConfig&, const std::vector<T*>&,          \
                                         std::int64_t, double*, const StopCheck&, bool*);

DP_INSTANTIATE_TRAIN(float)
DP_INSTANTIATE_TRAIN(double)

}  // namespace dp
