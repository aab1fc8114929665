// Whole-network loops. All workspace is allocated once per call, before the loop.
#include "train.hpp"

#include "team.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <thread>
#include <utility>

namespace dp {

// Enough rows to keep GEMMs efficient, few enough that workspace stays near 4 M elements.
int chunk_rows(const std::vector<int>& sizes, std::int64_t n, int threads) {
    long width = 0;
    for (std::size_t l = 1; l < sizes.size(); ++l) width += 2L * sizes[l];
    // One thread: activations of about L2 size, so each layer's output is still cached when
    // the next layer reads it (tabular predict: 6.3 -> 7.9 M rows/s). More threads: larger
    // products, which OpenBLAS splits better (mnist predict on 2 threads: 0.38 -> 0.44 M/s).
    // At least 256 rows either way: wide layers need tall products to run at GEMM speed.
    const long elements = threads > 1 ? (4L << 20) : (256L << 10);
    long rows = std::clamp(elements / std::max(width, 1L), 256L, 4096L);
    // Small layers: chunks whose every product stays within OpenBLAS's small-matrix kernels
    // (at most 100^3 multiply-adds on SkylakeX; no packing, no threads) are faster still:
    // tabular predict 7.1 -> 8.8 M rows/s, digits 4.2 -> 4.6 M.
    long largest = 1;
    for (std::size_t l = 1; l < sizes.size(); ++l) largest = std::max(largest, long(sizes[l - 1]) * sizes[l]);
    const long small = kSmallProduct / largest;
    if (small >= 32) rows = std::min(rows, small);
    // Weight matrices far beyond L2 (a million elements or more) want taller products
    // still: predict on the wide [1024, 4096, 4096, 1024] net, products alone, 1 thread,
    // 1965 rows/s in 256-row chunks, 2471 in 1024 (2 threads 3962 -> 4490). The workspace
    // then stays below the size of the parameters themselves.
    if (largest >= (1L << 20)) {
        long params = 0;
        for (std::size_t l = 1; l < sizes.size(); ++l) params += long(sizes[l - 1]) * sizes[l];
        rows = std::max(rows, std::min(1024L, params / std::max(width, 1L)));
    }
    return (int)std::max<std::int64_t>(1, std::min<std::int64_t>(rows, n));
}

double workspace_elements(const std::vector<int>& sizes, std::int64_t rows, bool backward, bool gradients) {
    double width = 0, widest = 0, params = 0;
    for (std::size_t l = 1; l < sizes.size(); ++l) {
        width += 2.0 * sizes[l];
        widest = std::max(widest, double(sizes[l]));
        params += double(sizes[l - 1]) * sizes[l] + sizes[l];
    }
    widest = std::max(widest, double(sizes[0]));
    double total = double(rows) * (width + (backward ? 2.0 * widest + sizes[0] + sizes.back() : 0.0));
    if (gradients) total += params;
    return total;
}

namespace {

// Work from which a batch's product or row gather is shared among a team of threads
// (train_epoch's `threads`): multiply-adds of one product, elements gathered.
constexpr double kTeamProduct = 1 << 20;
constexpr double kTeamGather = 1 << 14;

// Per-layer activations of one batch and the two error buffers of the backward pass.
template <typename T>
struct Workspace {
    const Model<T>& m;
    int capacity;                       // rows the buffers hold
    std::vector<std::vector<T>> Z, H;   // Z[l] (capacity, sizes[l+1]), empty when H holds it
    std::vector<T> d_cur, d_prev;       // (capacity, widest layer)
    std::vector<T> dz_sums;             // (widest layer) column sums of d_cur: the bias gradient
    std::vector<T> WT;                  // W[l]^T (fo, fi) of a layer with few outputs
    TeamThreads* team = nullptr;        // shares large products, when set

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
            dz_sums.resize(widest);
            std::size_t transposed = 0;
            for (int l = 1; l < L; ++l)
                if (transpose_w(m.sizes[l], m.sizes[l + 1], rows))
                    transposed = std::max(transposed, (std::size_t)m.sizes[l] * m.sizes[l + 1]);
            WT.resize(transposed);
        }
    }
    // Whether layer l's forward and weight-update products are split by columns: for a
    // weight matrix of 2^17 elements and more. mnist-shaped, 2 threads, its 784 x 256 layer:
    // forward product 210 -> 200 us, update 188 -> 175 us (215 k -> 221 k samples/s).
    bool by_columns(int l) const { return (long)m.sizes[l] * m.sizes[l + 1] >= (1L << 17); }
    // From now on, large products are split among the team's threads.
    void share_with(TeamThreads* t) { team = t && t->size() > 1 ? t : nullptr; }

    // C (M, N) = alpha op(A) op(B) + beta C, as gemm. A large product is split among the
    // team, one single-threaded BLAS call per part: by rows of C, or with by_columns by
    // blocks of 16 columns. On 2 cores, products alone, the mnist-shaped step's took 398 us
    // split by rows, 470 us by columns and 437 us as 2-thread OpenBLAS calls. In a step,
    // though, a large weight matrix split by rows in its update and read whole by the next
    // forward product crosses between the cores every step; its layer's products are split
    // by columns (see by_columns), so each thread keeps its own columns. The element-wise
    // passes stay on the calling thread: split by rows they made the step slower.
    void product(bool ta, bool tb, int M, int N, int K, T alpha, const T* A, int lda, const T* B, int ldb, T beta,
                 T* C, int ldc, bool by_columns = false) {
        if (!team || double(M) * N * K < kTeamProduct) {
            gemm<T>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
            return;
        }
        const int parts = team->size();
        if (by_columns) {
            team->run([&](int p) {
                const int n0 = (N * p / parts) & ~15, n1 = p + 1 == parts ? N : (N * (p + 1) / parts) & ~15;
                if (n0 < n1)
                    gemm<T>(ta, tb, M, n1 - n0, K, alpha, A, lda, tb ? B + (std::size_t)n0 * ldb : B + n0, ldb, beta,
                            C + n0, ldc);
            });
            return;
        }
        team->run([&](int p) {
            const int m0 = M * p / parts, m1 = M * (p + 1) / parts;
            if (m0 < m1)
                gemm<T>(ta, tb, m1 - m0, N, K, alpha, ta ? A + m0 : A + (std::size_t)m0 * lda, lda, B, ldb, beta,
                        C + (std::size_t)m0 * ldc, ldc);
        });
    }
    // dZ W^T is faster as a plain product with a transposed copy of W than through BLAS's
    // transposed-B path (OpenBLAS 0.3.34 SkylakeX, 1 thread, benchmarks/cpp/small_products.cpp)
    //  - when dZ has few columns (fo): (64, 10) x (10, 128) takes 3.1 us against 3.8 us in
    //    float32, 3.3 against 6.1 in float64;
    //  - when the product is small and W fits in L1 (32 KB), where the plain product runs in
    //    OpenBLAS's small-matrix kernels but the transposed one takes the packing path:
    //    float32 (32, 64) x (64, 64) 2.0 us against 4.2 us, (256, 32) x (32, 64) 7.2 against
    //    12.8, float64 (32, 64) x (64, 64) 6.4 against 7.5; a 64 KB W loses (float64
    //    (64, 64) x (64, 128) 35 us against 28).
    static bool transpose_w(int fi, int fo, int rows) {
        if (fo <= 16 && fi <= 1024) return true;
        return rows >= 16 && (long)fi * fo * (long)sizeof(T) <= 32768 && (long)fi * fo * rows <= kSmallProduct;
    }
    // The output layer keeps Z for the loss unless H equals it (identity; a copy of Z there
    // cost 3% of a digits step); hidden layers only when the derivative needs it.
    bool keeps_z(int l) const {
        return (l == m.n_layers() - 1 && m.acts[l] != Act::identity) || act_needs_z(m.acts[l]);
    }
    T* z(int l) { return Z[l].empty() ? H[l].data() : Z[l].data(); }
    const T* z_or_null(int l) const { return Z[l].empty() ? nullptr : Z[l].data(); }
    T* h(int l) { return H[l].data(); }
    const T* output() { return H.back().data(); }

    // X (rows, n_in) -> H[l] for every layer.
    void forward(const T* X, int rows) {
        const T* in = X;
        for (int l = 0; l < m.n_layers(); ++l) {
            const int fi = m.sizes[l], fo = m.sizes[l + 1];
            if (!narrow_dense_forward<T>(m.acts[l], rows, fi, fo, in, m.W[l], m.b[l], z(l), h(l))) {
                product(false, false, rows, fo, fi, T(1), in, fi, m.W[l], fo, T(0), z(l), fo, by_columns(l));
                bias_activation_forward<T>(m.acts[l], rows, fo, z(l), m.b[l], h(l));
            }
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
    // receives (l, layer input, dZ, column sums of dZ) after dZ W^T has been taken from the
    // old weights, so it may change W[l] in place. A hidden layer's sums come out of its
    // activation derivative's pass.
    template <typename Update>
    void backward(const T* X, int rows, Update&& update) {
        column_sums<T>(rows, m.n_out(), d_cur.data(), T(1), T(0), dz_sums.data());
        for (int l = m.n_layers() - 1; l >= 0; --l) {
            const int fi = m.sizes[l], fo = m.sizes[l + 1];
            const T* in = l == 0 ? X : h(l - 1);
            if (l > 0 && transpose_w(fi, fo, capacity)) {  // dH (rows, fi) = dZ (rows, fo) W^T
                transpose<T>(fi, fo, m.W[l], fo, WT.data(), fi);
                product(false, false, rows, fi, fo, T(1), d_cur.data(), fo, WT.data(), fi, T(0), d_prev.data(), fi);
            } else if (l > 0) {
                product(false, true, rows, fi, fo, T(1), d_cur.data(), fo, m.W[l], fo, T(0), d_prev.data(), fi);
            }
            update(l, in, (const T*)d_cur.data(), (const T*)dz_sums.data());
            if (l > 0) {
                activation_backward_sums<T>(m.acts[l - 1], rows, fi, z_or_null(l - 1), h(l - 1),
                                            d_prev.data(), d_prev.data(), dz_sums.data());
                std::swap(d_cur, d_prev);
            }
        }
    }
};

// Copies the batch's rows, chosen by perm, into contiguous buffers.
// Narrow rows are copied in a plain loop: a memcpy call costs more than a few elements.
template <typename T>
void gather_rows(const T* src, int cols, const std::int64_t* idx, int rows, T* dst) {
    if (cols <= 16) {
        for (int r = 0; r < rows; ++r) {
            const T* s = src + (std::size_t)idx[r] * cols;
            T* d = dst + (std::size_t)r * cols;
            for (int j = 0; j < cols; ++j) d[j] = s[j];
        }
        return;
    }
    for (int r = 0; r < rows; ++r)
        std::memcpy(dst + (std::size_t)r * cols, src + (std::size_t)idx[r] * cols, sizeof(T) * cols);
}

// A row gather that several threads share by claiming one row at a time: the calling
// thread through claim_all(), a team's helpers as idle work between the operations of a
// step, so that the next batch's rows arrive while the calling thread runs the step's
// element-wise passes and small products alone.
template <typename T>
class SharedRowGather final : public TeamThreads::IdleWork {
  public:
    // Offers rows [0, rows) of dst (rows, cols) = src[idx] for claiming. Every row offered
    // before must have been copied: call after a team run in which each part claimed all.
    void offer(const T* src, int cols, const std::int64_t* idx, int rows, T* dst) {
        src_ = src;
        cols_ = cols;
        idx_ = idx;
        dst_ = dst;
        // Rows offered in the high half, rows claimed in the low half: one atomic word, so a
        // claim that succeeds has seen the fields written above.
        state_.store(std::uint64_t(rows) << 32, std::memory_order_release);
    }
    bool work_one() override {
        std::uint64_t v = state_.load(std::memory_order_acquire);
        for (;;) {
            const std::uint32_t next = std::uint32_t(v), rows = std::uint32_t(v >> 32);
            if (next >= rows) return false;
            if (state_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
                gather_rows(src_, cols_, idx_ + next, 1, dst_ + std::size_t(next) * cols_);
                return true;
            }
        }
    }
    void claim_all() {
        while (work_one()) {
        }
    }

  private:
    std::atomic<std::uint64_t> state_{0};
    const T* src_ = nullptr;
    int cols_ = 0;
    const std::int64_t* idx_ = nullptr;
    T* dst_ = nullptr;
};

// One optimizer step on layer l from its gradients gW (fan_in, fan_out) and gb (fan_out);
// state holds states_per_param() arrays per parameter, W0, b0, W1, b1, ... in turn.
template <typename T>
void step_layer(const Model<T>& m, const OptimizerConfig& opt, const std::vector<T*>& state, int l,
                const T* gW, const T* gb, std::int64_t step) {
    const int k = opt.states_per_param();
    const std::size_t nw = (std::size_t)m.sizes[l] * m.sizes[l + 1], nb = m.sizes[l + 1];
    T* const* sw = state.data() + (std::size_t)k * (2 * l);  // W[l]'s state arrays
    T* const* sb = sw + k;                                   // b[l]'s state arrays
    const T lr = T(opt.lr), decay = T(opt.weight_decay);
    if (opt.kind == Opt::adam) {
        adam_update<T>(nw, m.W[l], gW, sw[0], sw[1], lr, T(opt.beta1), T(opt.beta2), T(opt.eps), decay, step);
        adam_update<T>(nb, m.b[l], gb, sb[0], sb[1], lr, T(opt.beta1), T(opt.beta2), T(opt.eps), T(0), step);
    } else {
        sgd_update<T>(nw, m.W[l], gW, k ? sw[0] : nullptr, lr, T(opt.momentum), opt.nesterov, decay);
        sgd_update<T>(nb, m.b[l], gb, k ? sb[0] : nullptr, lr, T(opt.momentum), opt.nesterov, T(0));
    }
}

// Networks this small spend more time entering BLAS and vectorised loops than computing,
// so they are trained one row at a time in plain scalar loops: forward, loss and backward
// per row, gradients summed over the batch, then one optimizer step.
bool use_rowwise(const std::vector<int>& sizes) {
    long params = 0;
    for (std::size_t l = 0; l + 1 < sizes.size(); ++l) params += (long)sizes[l] * sizes[l + 1];
    for (int w : sizes)
        if (w > 32) return false;
    return params <= 1024;
}

// Scalar loops on purpose: at these widths a vectorised loop's set-up costs more than it saves.
#if defined(__GNUC__) && !defined(__clang__)
#define DP_SCALAR_LOOPS __attribute__((optimize("no-tree-vectorize")))
#else
#define DP_SCALAR_LOOPS
#endif

template <typename T>
struct RowwiseTrainer {
    const Model<T>& m;
    const OptimizerConfig& opt;
    const std::vector<T*>& state;
    const int L;
    const bool fused_sgd;              // plain SGD: update in the backward pass when rows == 1
    std::vector<T> z, h, d_cur, d_prev;  // one row per layer, concatenated
    std::vector<int> offset;             // start of layer l's row in z and h
    std::vector<std::vector<T>> gW, gb;  // gradient sums over the batch

    RowwiseTrainer(const Model<T>& model, const OptimizerConfig& o, const std::vector<T*>& st)
        : m(model), opt(o), state(st), L(model.n_layers()),
          fused_sgd(o.kind == Opt::sgd && o.momentum == 0.0) {
        offset.push_back(0);
        int widest = m.n_in();
        for (int l = 0; l < L; ++l) {
            offset.push_back(offset.back() + m.sizes[l + 1]);
            widest = std::max(widest, m.sizes[l + 1]);
        }
        z.resize(offset.back());
        h.resize(offset.back());
        d_cur.resize(widest);
        d_prev.resize(widest);
        gW.resize(L);
        gb.resize(L);
        for (int l = 0; l < L; ++l) {
            gW[l].resize((std::size_t)m.sizes[l] * m.sizes[l + 1]);
            gb[l].resize(m.sizes[l + 1]);
        }
    }

    // One batch: row r's input is x(r), its targets y(r), its weight *w(r) (w(r) null
    // without sample weights). Returns the batch's sum of weighted row losses.
    template <typename RowX, typename RowY, typename RowW>
    DP_SCALAR_LOOPS double batch(int rows, RowX x, RowY y, RowW w, std::int64_t step, double* metrics) {
        const bool direct = fused_sgd && rows == 1;
        if (!direct)
            for (int l = 0; l < L; ++l) {
                std::fill(gW[l].begin(), gW[l].end(), T(0));
                std::fill(gb[l].begin(), gb[l].end(), T(0));
            }
        const T scale = T(1.0 / rows);
        const T lr = T(opt.lr), keep = T(1) - T(opt.lr) * T(opt.weight_decay);
        double loss = 0.0;
        for (int r = 0; r < rows; ++r) {
            const T* in = x(r);
            for (int l = 0; l < L; ++l) {
                const int fi = m.sizes[l], fo = m.sizes[l + 1];
                const T* W = m.W[l];
                const T* b = m.b[l];
                T* zl = z.data() + offset[l];
                T* hl = h.data() + offset[l];
                const Act act = m.acts[l];
                for (int j = 0; j < fo; ++j) {
                    T s = T(0);
                    for (int k = 0; k < fi; ++k) s += in[k] * W[(std::size_t)k * fo + j];
                    zl[j] = s + b[j];
                }
                if (act == Act::softmax) bias_activation_forward<T>(act, 1, fo, zl, nullptr, hl);
                else
                    for (int j = 0; j < fo; ++j) hl[j] = activate(act, zl[j]);
                in = hl;
            }
            const T* zo = z.data() + offset[L - 1];
            const T* ho = h.data() + offset[L - 1];
            const Act out = m.acts[L - 1];
            if (m.loss == Loss::mse && out != Act::softmax) {  // the common case, inline
                const T* yr = y(r);
                const T* wp = w(r);
                const T g = wp ? scale * *wp : scale;
                T* d = d_cur.data();
                double row = 0.0;
                for (int j = 0; j < m.n_out(); ++j) {
                    const T res = ho[j] - yr[j];
                    row += 0.5 * double(res) * double(res);
                    metrics[1 + j] += (wp ? double(*wp) : 1.0) * double(res) * double(res);
                    d[j] = g * res * activate_grad(out, zo[j], ho[j]);
                }
                loss += wp ? double(*wp) * row : row;
            } else {
                loss += loss_forward_backward<T>(m.loss, out, 1, m.n_out(), zo, ho, y(r), w(r), scale,
                                                 d_cur.data(), metrics);
            }
            for (int l = L - 1; l >= 0; --l) {
                const int fi = m.sizes[l], fo = m.sizes[l + 1];
                const T* lin = l == 0 ? x(r) : h.data() + offset[l - 1];
                T* W = m.W[l];
                T* b = m.b[l];
                const T* d = d_cur.data();
                if (l > 0) {  // dH of the layer below, from the weights before this step's update
                    const Act below = m.acts[l - 1];
                    const T* zb = z.data() + offset[l - 1];
                    for (int k = 0; k < fi; ++k) {
                        T s = T(0);
                        for (int j = 0; j < fo; ++j) s += d[j] * W[(std::size_t)k * fo + j];
                        d_prev[k] = s * activate_grad(below, zb[k], lin[k]);
                    }
                }
                if (direct) {
                    for (int k = 0; k < fi; ++k)
                        for (int j = 0; j < fo; ++j) {
                            T& wkj = W[(std::size_t)k * fo + j];
                            wkj = keep * wkj - lr * (lin[k] * d[j]);
                        }
                    for (int j = 0; j < fo; ++j) b[j] -= lr * d[j];
                } else {
                    T* g = gW[l].data();
                    for (int k = 0; k < fi; ++k)
                        for (int j = 0; j < fo; ++j) g[(std::size_t)k * fo + j] += lin[k] * d[j];
                    T* gbl = gb[l].data();
                    for (int j = 0; j < fo; ++j) gbl[j] += d[j];
                }
                if (l > 0) std::swap(d_cur, d_prev);
            }
        }
        if (!direct) update(step);
        return loss;
    }

    void update(std::int64_t step) {
        for (int l = 0; l < L; ++l) step_layer(m, opt, state, l, gW[l].data(), gb[l].data(), step);
    }
};

// The textbook shape, one hidden layer of ReLUs a few units wide trained one row at a time
// with plain SGD, compiled for each width and output activation (ReLU or identity) so every
// loop is unrolled: there the per-row work is a few dozen multiply-adds and loop control
// would otherwise cost more than the arithmetic.
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
constexpr int kFixedMaxIn = 4, kFixedMaxHidden = 8, kFixedMaxOut = 4;

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

template <typename T, int NI, int NH, int NO, bool ReluOut>
DP_MULTIVERSION DP_SCALAR_LOOPS double fixed_sgd_rows(const Model<T>& m, const T* X, const T* Y, const T* w,
                                                      std::int64_t begin, std::int64_t end,
                                                      const std::int64_t* perm, T lr, T keep, double* metrics) {
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
            const bool active = !ReluOut || z2[j] > T(0);
            const T res = active ? diff : -y[j];  // relu(z2) - y
            e[j] = active ? diff : T(0);          // dLoss/dz2 before the sample weight
            d2[j] = g * e[j];
            const double sq = double(res) * double(res);
            row += 0.5 * sq;
            sq_sums[j] += double(g) * sq;
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
using FixedRows = double (*)(const Model<T>&, const T*, const T*, const T*, std::int64_t, std::int64_t,
                             const std::int64_t*, T, T, double*);

template <typename T, int NI, int NH, int NO>
FixedRows<T> pick_out(int no, bool relu_out) {
    if constexpr (NO > kFixedMaxOut) {
        return nullptr;
    } else {
        if (no != NO) return pick_out<T, NI, NH, NO + 1>(no, relu_out);
        return relu_out ? &fixed_sgd_rows<T, NI, NH, NO, true> : &fixed_sgd_rows<T, NI, NH, NO, false>;
    }
}

template <typename T, int NI, int NH>
FixedRows<T> pick_hidden(int nh, int no, bool relu_out) {
    if constexpr (NH > kFixedMaxHidden) {
        return nullptr;
    } else {
        return nh == NH ? pick_out<T, NI, NH, 1>(no, relu_out) : pick_hidden<T, NI, NH + 1>(nh, no, relu_out);
    }
}

template <typename T, int NI>
FixedRows<T> pick_in(int ni, int nh, int no, bool relu_out) {
    if constexpr (NI > kFixedMaxIn) {
        return nullptr;
    } else {
        return ni == NI ? pick_hidden<T, NI, 1>(nh, no, relu_out) : pick_in<T, NI + 1>(ni, nh, no, relu_out);
    }
}

// The unrolled trainer for this model and step, or null when it does not apply.
template <typename T>
FixedRows<T> fixed_trainer(const Model<T>& m, int batch, const OptimizerConfig& opt) {
    if (m.n_layers() != 2 || batch != 1 || m.loss != Loss::mse || opt.kind != Opt::sgd || opt.momentum != 0.0 ||
        m.acts[0] != Act::relu || (m.acts[1] != Act::relu && m.acts[1] != Act::identity))
        return nullptr;
    return pick_in<T, 1>(m.sizes[0], m.sizes[1], m.sizes[2], m.acts[1] == Act::relu);
}

}  // namespace

template <typename T>
bool forward(const Model<T>& m, const T* X, std::int64_t n, int chunk, T* out, bool check_finite, int threads) {
    if (n <= 0) return true;
    const std::int64_t n_chunks = (n + chunk - 1) / chunk;
    // Chunks [c0, c1) on the calling thread; the chunk boundaries do not depend on threads.
    auto run = [&](std::int64_t c0, std::int64_t c1) {
        if (c0 >= c1) return true;
        Workspace<T> ws(m, chunk, false);
        for (std::int64_t c = c0; c < c1; ++c) {
            const std::int64_t s = c * chunk;
            const int rows = (int)std::min<std::int64_t>(chunk, n - s);
            const T* Xc = X + s * m.n_in();
            if (check_finite && !all_finite(Xc, (std::size_t)rows * m.n_in())) return false;
            ws.forward(Xc, rows);
            std::memcpy(out + s * m.n_out(), ws.output(), sizeof(T) * (std::size_t)rows * m.n_out());
        }
        return true;
    };
    const int parts = (int)std::min<std::int64_t>(std::max(threads, 1), n_chunks);
    if (parts == 1) return run(0, n_chunks);

    auto first = [&](int p) { return n_chunks * p / parts; };
    std::vector<char> ok(parts, 1);
    std::vector<std::exception_ptr> errors(parts);
    auto part = [&](int p) {
        try {
            ok[p] = run(first(p), first(p + 1));
        } catch (...) {
            errors[p] = std::current_exception();
        }
    };
    // The shared team's helpers are usually waiting already; starting a thread per call
    // cost digits-sized predicts most of what the second thread saved.
    if (run_on_shared_team(parts, part)) {
        for (const std::exception_ptr& e : errors)
            if (e) std::rethrow_exception(e);
        return std::all_of(ok.begin(), ok.end(), [](char v) { return v != 0; });
    }
    std::vector<std::thread> started;
    int p = 1;
    try {
        for (; p < parts; ++p) started.emplace_back(part, p);
    } catch (...) {
        // No more threads to be had: the caller's thread takes the parts not started.
    }
    part(0);
    for (int q = p; q < parts; ++q) part(q);
    for (std::thread& t : started) t.join();
    for (const std::exception_ptr& e : errors)
        if (e) std::rethrow_exception(e);
    return std::all_of(ok.begin(), ok.end(), [](char v) { return v != 0; });
}

template <typename T>
void evaluate(const Model<T>& m, const T* X, const T* Y, const T* w, std::int64_t n, int chunk,
              double* metrics) {
    if (n <= 0) return;
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
void gradients(const Model<T>& m, const T* X, const T* Y, const T* w, std::int64_t n, int chunk,
               const std::vector<T*>& gW, const std::vector<T*>& gb) {
    const int L = m.n_layers();
    for (int l = 0; l < L; ++l) {  // n == 0 leaves zero gradients
        std::fill(gW[l], gW[l] + (std::size_t)m.sizes[l] * m.sizes[l + 1], T(0));
        std::fill(gb[l], gb[l] + m.sizes[l + 1], T(0));
    }
    if (n <= 0) return;
    Workspace<T> ws(m, chunk, true);
    const T scale = T(1.0 / double(n));
    for (std::int64_t s = 0; s < n; s += chunk) {
        const int rows = (int)std::min<std::int64_t>(chunk, n - s);
        const T* Xc = X + s * m.n_in();
        ws.forward(Xc, rows);
        ws.output_error(Y + s * m.n_out(), w ? w + s : nullptr, rows, scale, nullptr);
        ws.backward(Xc, rows, [&](int l, const T* in, const T* dZ, const T* sums) {
            const int fi = m.sizes[l], fo = m.sizes[l + 1];
            gemm<T>(true, false, fi, fo, rows, T(1), in, fi, dZ, fo, T(1), gW[l], fo);
            for (int j = 0; j < fo; ++j) gb[l][j] += sums[j];
        });
    }
}

template <typename T>
std::int64_t train_epoch(const Model<T>& m, const T* X, const T* Y, const T* w, std::int64_t n,
                         const std::int64_t* perm, int batch_size, const OptimizerConfig& opt,
                         const std::vector<T*>& state, std::int64_t step, double* metrics,
                         const StopCheck& should_stop, bool* stopped, int threads) {
    if (stopped) *stopped = false;
    if (n <= 0) return step;
    const int L = m.n_layers();
    const int batch = (int)std::min<std::int64_t>(batch_size, n);

    long work_per_row = 0;  // multiply-adds, to call should_stop every few milliseconds
    for (int l = 0; l < L; ++l) work_per_row += 3L * m.sizes[l] * m.sizes[l + 1] + 8L * m.sizes[l + 1];
    constexpr long kCheckEvery = 2'000'000;
    long work = 0;
    auto poll = [&](int rows) {
        work += work_per_row * rows;
        if (!should_stop || work < kCheckEvery) return false;
        work = 0;
        if (!should_stop()) return false;
        if (stopped) *stopped = true;
        return true;
    };

    if (FixedRows<T> rows_fn = fixed_trainer(m, batch, opt)) {
        const T lr = T(opt.lr), keep = T(1) - T(opt.lr) * T(opt.weight_decay);
        // Blocks of rows between Ctrl-C checks; each row is one optimizer step.
        const std::int64_t block = std::max<std::int64_t>(1, 2'000'000 / std::max<long>(work_per_row, 1));
        for (std::int64_t s = 0; s < n; s += block) {
            const std::int64_t e = std::min(n, s + block);
            metrics[0] += rows_fn(m, X, Y, w, s, e, perm, lr, keep, metrics + 1);
            step += e - s;
            if (poll(int(e - s))) break;
        }
        return step;
    }

    if (use_rowwise(m.sizes)) {
        RowwiseTrainer<T> tr(m, opt, state);
        const int ni = m.n_in(), no = m.n_out();
        for (std::int64_t s = 0; s < n; s += batch) {
            const int rows = (int)std::min<std::int64_t>(batch, n - s);
            const std::int64_t* idx = perm ? perm + s : nullptr;
            auto row = [&](int r) { return idx ? idx[r] : s + r; };
            auto x = [&](int r) { return X + row(r) * ni; };
            auto y = [&](int r) { return Y + row(r) * no; };
            auto wr = [&](int r) { return w ? w + row(r) : nullptr; };
            metrics[0] += tr.batch(rows, x, y, wr, ++step, metrics + 1);
            if (poll(rows)) break;
        }
        return step;
    }

    Workspace<T> ws(m, batch, true);
    // Gathered batch rows (only when visiting rows out of order); with a team, two buffers
    // of X rows: the helpers gather the next batch's into one while the step reads the other.
    // Declared before the team, whose helpers use them until it is gone.
    std::vector<T> Xb, Xb_next, Yb, wb;
    SharedRowGather<T> shared_gather;
    if (perm) {
        Xb.resize((std::size_t)batch * m.n_in());
        Yb.resize((std::size_t)batch * m.n_out());
        if (w) wb.resize(batch);
    }
    // A team when some product is large enough to share (the team's helpers spin between
    // the operations of a step, so none are started for nothing).
    std::unique_ptr<TeamThreads> team;
    for (int l = 0; l < L && threads > 1 && !team; ++l)
        if (double(batch) * m.sizes[l] * m.sizes[l + 1] >= kTeamProduct) team = std::make_unique<TeamThreads>(threads);
    ws.share_with(team.get());
    auto shares_gather = [&](std::int64_t s) {
        return perm && team && s < n && double(std::min<std::int64_t>(batch, n - s)) * m.n_in() >= kTeamGather;
    };
    if (shares_gather(0)) {
        Xb_next.resize(Xb.size());
        team->set_idle_work(&shared_gather);
    }
    bool next_offered = false;  // the batch at s has been offered to the helpers
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

    for (std::int64_t s = 0; s < n; s += batch) {
        const int rows = (int)std::min<std::int64_t>(batch, n - s);
        const T *Xc, *Yc, *wc = nullptr;
        if (perm) {
            // Random rows are read at memory latency; two cores fetch them faster than one
            // (mnist-shaped, 2 threads: 198 k -> 213 k samples/s with the products shared),
            // and the helpers start on them while the previous step's element-wise passes
            // and small products keep only the calling thread busy.
            if (shares_gather(s)) {
                if (!next_offered) shared_gather.offer(X, m.n_in(), perm + s, rows, Xb_next.data());
                team->run([&](int) { shared_gather.claim_all(); });
                std::swap(Xb, Xb_next);
                next_offered = shares_gather(s + batch);
                if (next_offered)
                    shared_gather.offer(X, m.n_in(), perm + s + batch, (int)std::min<std::int64_t>(batch, n - s - batch),
                                        Xb_next.data());
            } else {
                gather_rows(X, m.n_in(), perm + s, rows, Xb.data());
            }
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
        ws.backward(Xc, rows, [&](int l, const T* in, const T* dZ, const T* sums) {
            const int fi = m.sizes[l], fo = m.sizes[l + 1];
            if (fused_sgd) {
                ws.product(true, false, fi, fo, rows, -lr, in, fi, dZ, fo, T(1) - lr * decay, m.W[l], fo,
                           ws.by_columns(l));
                sgd_update<T>(fo, m.b[l], sums, nullptr, lr, T(0), false, T(0));
                return;
            }
            ws.product(true, false, fi, fo, rows, T(1), in, fi, dZ, fo, T(0), gW[l].data(), fo, ws.by_columns(l));
            std::copy(sums, sums + fo, gb[l].data());
            step_layer(m, opt, state, l, gW[l].data(), gb[l].data(), step);
        });

        if (poll(rows)) break;
    }
    return step;
}

#define DP_INSTANTIATE_TRAIN(T)                                                                   \
    template bool forward<T>(const Model<T>&, const T*, std::int64_t, int, T*, bool, int);        \
    template void evaluate<T>(const Model<T>&, const T*, const T*, const T*, std::int64_t, int,   \
                              double*);                                                           \
    template void gradients<T>(const Model<T>&, const T*, const T*, const T*, std::int64_t, int,  \
                               const std::vector<T*>&, const std::vector<T*>&);                  \
    template std::int64_t train_epoch<T>(const Model<T>&, const T*, const T*, const T*,            \
                                         std::int64_t, const std::int64_t*, int,                  \
                                         const OptimizerConfig&, const std::vector<T*>&,          \
                                         std::int64_t, double*, const StopCheck&, bool*, int);

DP_INSTANTIATE_TRAIN(float)
DP_INSTANTIATE_TRAIN(double)

}  // namespace dp
