// Kernel implementations; see kernels.hpp for the contract of each function.
#include "kernels.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif

namespace dp {

bool parse_activation(const std::string& s, Act& a) {
    static const struct { const char* name; Act act; } table[] = {
        {"identity", Act::identity}, {"relu", Act::relu},       {"leaky_relu", Act::leaky_relu},
        {"elu", Act::elu},           {"gelu", Act::gelu},       {"sigmoid", Act::sigmoid},
        {"tanh", Act::tanh},         {"softplus", Act::softplus}, {"softmax", Act::softmax}};
    for (const auto& e : table)
        if (s == e.name) { a = e.act; return true; }
    return false;
}

bool parse_loss(const std::string& s, Loss& l) {
    if (s == "mse") l = Loss::mse;
    else if (s == "cross_entropy") l = Loss::cross_entropy;
    else if (s == "mae") l = Loss::mae;
    else if (s == "huber") l = Loss::huber;
    else return false;
    return true;
}

bool parse_optimizer(const std::string& s, Opt& o) {
    if (s == "sgd") o = Opt::sgd;
    else if (s == "adam") o = Opt::adam;
    else return false;
    return true;
}

// ---------------------------------------------------------------------------------------
// Matrix products

namespace {

// Below this many multiply-adds a plain loop beats a BLAS call. OpenBLAS's small-matrix
// kernels win from a few thousand up (tabular net [8, 64, 64, 1], batch 32: 1.76 M samples/s
// with BLAS for every product against 0.82 M with loops below 4096; /tmp bench, 1 thread).
#ifndef DENSEPROP_SMALL_GEMM
#define DENSEPROP_SMALL_GEMM 512
#endif
constexpr long kSmallGemm = DENSEPROP_SMALL_GEMM;

inline void blas_gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                      const float* B, int ldb, float beta, float* C, int ldc) {
    scipy_cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                      M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
inline void blas_gemm(bool ta, bool tb, int M, int N, int K, double alpha, const double* A,
                      int lda, const double* B, int ldb, double beta, double* C, int ldc) {
    scipy_cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                      M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <typename T>
inline void scale_rows(int M, int N, T beta, T* C, int ldc) {
    for (int i = 0; i < M; ++i) {
        T* c = C + (std::size_t)i * ldc;
        if (beta == T(0)) std::fill(c, c + N, T(0));
        else if (beta != T(1))
            for (int j = 0; j < N; ++j) c[j] *= beta;
    }
}

// Loops ordered so the innermost one runs along contiguous rows and vectorises.
template <typename T>
DP_MULTIVERSION void gemm_small(bool ta, bool tb, int M, int N, int K, T alpha, const T* A, int lda, const T* B,
                int ldb, T beta, T* C, int ldc) {
    if (!tb) {
        scale_rows(M, N, beta, C, ldc);
        for (int i = 0; i < M; ++i) {
            T* c = C + (std::size_t)i * ldc;
            for (int k = 0; k < K; ++k) {
                const T a = alpha * (ta ? A[(std::size_t)k * lda + i] : A[(std::size_t)i * lda + k]);
                const T* b = B + (std::size_t)k * ldb;
                for (int j = 0; j < N; ++j) c[j] += a * b[j];
            }
        }
        return;
    }
    // op(B) = B^T: C[i,j] = sum_k op(A)[i,k] * B[j,k], a dot product along rows of B.
    for (int i = 0; i < M; ++i) {
        T* c = C + (std::size_t)i * ldc;
        for (int j = 0; j < N; ++j) {
            const T* b = B + (std::size_t)j * ldb;
            T s = 0;
            if (!ta) {
                const T* a = A + (std::size_t)i * lda;
#pragma omp simd reduction(+ : s)
                for (int k = 0; k < K; ++k) s += a[k] * b[k];
            } else {
                for (int k = 0; k < K; ++k) s += A[(std::size_t)k * lda + i] * b[k];
            }
            c[j] = (beta == T(0)) ? alpha * s : alpha * s + beta * c[j];
        }
    }
}

}  // namespace

template <typename T>
void gemm(bool ta, bool tb, int M, int N, int K, T alpha, const T* A, int lda, const T* B, int ldb,
          T beta, T* C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        scale_rows(M, N, beta, C, ldc);
        return;
    }
    if ((long)M * N * K <= kSmallGemm)
        gemm_small(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else
        blas_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <typename T>
DP_MULTIVERSION void column_sums(int rows, int cols, const T* dZ, T alpha, T beta, T* db) {
    // Row by row into a small stack block, so every read is contiguous and nothing is
    // allocated; then db = alpha * sum + beta * db, the rounding of the reference.
    constexpr int kBlock = 256;
    T acc[kBlock];
    for (int j0 = 0; j0 < cols; j0 += kBlock) {
        const int w = std::min(kBlock, cols - j0);
        std::fill(acc, acc + w, T(0));
        for (int i = 0; i < rows; ++i) {
            const T* d = dZ + (std::size_t)i * cols + j0;
            for (int j = 0; j < w; ++j) acc[j] += d[j];
        }
        T* out = db + j0;
        if (beta == T(0))
            for (int j = 0; j < w; ++j) out[j] = alpha * acc[j];
        else if (beta == T(1))
            for (int j = 0; j < w; ++j) out[j] += alpha * acc[j];
        else
            for (int j = 0; j < w; ++j) out[j] = alpha * acc[j] + beta * out[j];
    }
}

template <typename T>
void dense_forward(int rows, int n_in, int n_out, const T* X, const T* W, const T* b, T* Z) {
    gemm<T>(false, false, rows, n_out, n_in, T(1), X, n_in, W, n_out, T(0), Z, n_out);
    if (b) bias_activation_forward<T>(Act::identity, rows, n_out, Z, b, Z);
}

template <typename T>
void dense_backward(int rows, int n_in, int n_out, const T* X, const T* W, const T* dZ, T* dW,
                    T* db, T* dX) {
    gemm<T>(true, false, n_in, n_out, rows, T(1), X, n_in, dZ, n_out, T(0), dW, n_out);
    column_sums<T>(rows, n_out, dZ, T(1), T(0), db);
    if (dX) gemm<T>(false, true, rows, n_in, n_out, T(1), dZ, n_out, W, n_out, T(0), dX, n_in);
}

// ---------------------------------------------------------------------------------------
// Activations

namespace {

template <typename T>
void softmax_row(int cols, const T* z, T* h) {
    T mx = z[0];
    for (int j = 1; j < cols; ++j) mx = std::max(mx, z[j]);
    T s = 0;
    for (int j = 0; j < cols; ++j) { h[j] = std::exp(z[j] - mx); s += h[j]; }
    const T inv = T(1) / s;
    for (int j = 0; j < cols; ++j) h[j] *= inv;
}

// The output width (and a small input width; FI = 0: n_in at run time) are template
// parameters so the row's accumulators stay in registers and the loops unroll.
template <typename T, int FO, int FI>
DP_MULTIVERSION void narrow_rows(Act act, int rows, int n_in, const T* X, const T* W, const T* b, T* Z, T* H) {
    const int fi = FI > 0 ? FI : n_in;
    const bool relu = act == Act::relu, identity = act == Act::identity;
    for (int i = 0; i < rows; ++i) {
        const T* x = X + (std::size_t)i * fi;
        T acc[FO];
        for (int j = 0; j < FO; ++j) acc[j] = b[j];
        for (int k = 0; k < fi; ++k)
            for (int j = 0; j < FO; ++j) acc[j] += x[k] * W[k * FO + j];
        T* h = H + (std::size_t)i * FO;
        if (Z != H)
            for (int j = 0; j < FO; ++j) Z[(std::size_t)i * FO + j] = acc[j];
        if (relu)
            for (int j = 0; j < FO; ++j) h[j] = acc[j] > T(0) ? acc[j] : T(0);
        else if (identity)
            for (int j = 0; j < FO; ++j) h[j] = acc[j];
        else
            for (int j = 0; j < FO; ++j) h[j] = elementwise(act, acc[j]);
    }
}

template <typename T, int FO = 1>
bool narrow_dispatch(Act act, int rows, int n_in, int n_out, const T* X, const T* W, const T* b, T* Z, T* H) {
    if constexpr (FO > kNarrowOut) {
        return false;
    } else {
        if (n_out != FO) return narrow_dispatch<T, FO + 1>(act, rows, n_in, n_out, X, W, b, Z, H);
        switch (n_in) {
            case 1: narrow_rows<T, FO, 1>(act, rows, n_in, X, W, b, Z, H); break;
            case 2: narrow_rows<T, FO, 2>(act, rows, n_in, X, W, b, Z, H); break;
            case 3: narrow_rows<T, FO, 3>(act, rows, n_in, X, W, b, Z, H); break;
            case 4: narrow_rows<T, FO, 4>(act, rows, n_in, X, W, b, Z, H); break;
            default: narrow_rows<T, FO, 0>(act, rows, n_in, X, W, b, Z, H);
        }
        return true;
    }
}

}  // namespace

template <typename T>
bool narrow_dense_forward(Act act, int rows, int n_in, int n_out, const T* X, const T* W, const T* b, T* Z,
                          T* H) {
    if (act == Act::softmax || n_in > kNarrowIn || n_in < 1 || rows < 1) return false;
    return narrow_dispatch<T>(act, rows, n_in, n_out, X, W, b, Z, H);
}

template <typename T>
DP_MULTIVERSION void bias_activation_forward(Act act, int rows, int cols, T* Z, const T* bias, T* H) {
    const bool keep_z = act_needs_z(act) || act == Act::softmax || H != Z;
    for (int i = 0; i < rows; ++i) {
        T* z = Z + (std::size_t)i * cols;
        T* h = H + (std::size_t)i * cols;
        if (bias && keep_z)
            for (int j = 0; j < cols; ++j) z[j] += bias[j];
        if (act == Act::softmax) { softmax_row(cols, z, h); continue; }
        // Separate loops per activation so each one vectorises on its own.
        if (bias && !keep_z) {
            switch (act) {
                case Act::relu:
                    for (int j = 0; j < cols; ++j) { const T v = z[j] + bias[j]; h[j] = v > T(0) ? v : T(0); }
                    break;
                case Act::identity:
                    for (int j = 0; j < cols; ++j) h[j] = z[j] + bias[j];
                    break;
                default:
                    for (int j = 0; j < cols; ++j) h[j] = elementwise(act, z[j] + bias[j]);
            }
        } else {
            switch (act) {
                case Act::relu:
                    for (int j = 0; j < cols; ++j) h[j] = z[j] > T(0) ? z[j] : T(0);
                    break;
                case Act::identity:
                    if (h != z) std::copy(z, z + cols, h);
                    break;
                default:
                    for (int j = 0; j < cols; ++j) h[j] = elementwise(act, z[j]);
            }
        }
    }
}

template <typename T>
DP_MULTIVERSION void activation_backward(Act act, int rows, int cols, const T* Z, const T* H, const T* dH, T* dZ) {
    const std::size_t n = (std::size_t)rows * cols;
    switch (act) {
        case Act::identity:
            if (dZ != dH) std::copy(dH, dH + n, dZ);
            return;
        case Act::relu:
            // Read before writing (dZ may be dH) so the select vectorises instead of branching.
            for (std::size_t k = 0; k < n; ++k) {
                const T g = dH[k];
                dZ[k] = H[k] > T(0) ? g : T(0);
            }
            return;
        case Act::softmax:
            for (int i = 0; i < rows; ++i) {
                const T* h = H + (std::size_t)i * cols;
                const T* g = dH + (std::size_t)i * cols;
                T* d = dZ + (std::size_t)i * cols;
                T s = 0;
                for (int j = 0; j < cols; ++j) s += g[j] * h[j];
                for (int j = 0; j < cols; ++j) d[j] = h[j] * (g[j] - s);
            }
            return;
        default:
            for (std::size_t k = 0; k < n; ++k)
                dZ[k] = dH[k] * derivative(act, Z ? Z[k] : T(0), H[k]);
    }
}

template <typename T>
DP_MULTIVERSION void activation_backward_sums(Act act, int rows, int cols, const T* Z, const T* H, const T* dH,
                                              T* dZ, T* __restrict sums) {
    if (act != Act::relu) {
        activation_backward(act, rows, cols, Z, H, dH, dZ);
        column_sums(rows, cols, dZ, T(1), T(0), sums);
        return;
    }
    // Column blocks of a fixed width, so the sums stay in registers down the rows.
    constexpr int kBlock = 256 / sizeof(T);  // four 512-bit registers
    int j0 = 0;
    for (; j0 + kBlock <= cols; j0 += kBlock) {
        T acc[kBlock] = {};
        for (int i = 0; i < rows; ++i) {
            const std::size_t off = (std::size_t)i * cols + j0;
            for (int j = 0; j < kBlock; ++j) {
                const T g = H[off + j] > T(0) ? dH[off + j] : T(0);
                dZ[off + j] = g;
                acc[j] += g;
            }
        }
        std::copy(acc, acc + kBlock, sums + j0);
    }
    if (j0 == cols) return;
    std::fill(sums + j0, sums + cols, T(0));
    for (int i = 0; i < rows; ++i) {
        const std::size_t off = (std::size_t)i * cols;
        for (int j = j0; j < cols; ++j) {
            const T g = H[off + j] > T(0) ? dH[off + j] : T(0);
            dZ[off + j] = g;
            sums[j] += g;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Losses

template <typename T>
DP_MULTIVERSION double loss_forward_backward(Loss loss, Act out_act, int rows, int cols, const T* Z, const T* H,
                             const T* Y, const T* w, T scale, T* dZ, double* metrics) {
    double total = 0.0;
    const bool classify = loss == Loss::cross_entropy;
    constexpr int kOnePassOutputs = 64;
    if (loss == Loss::mse && out_act == Act::identity && !w && dZ && metrics && cols <= kOnePassOutputs) {
        // The training loop's common case in one pass: per-output squared sums, from which
        // both the loss and the R^2 ingredients follow (the per-row loop below costs 4% of
        // a digits step, 64 rows of 10 outputs).
        // The loss squares the residual rounded to T, the metrics the exact one, as below.
        double sq[kOnePassOutputs] = {}, sq_exact[kOnePassOutputs] = {};
        for (int i = 0; i < rows; ++i) {
            const std::size_t off = (std::size_t)i * cols;
            for (int j = 0; j < cols; ++j) {
                const T r = H[off + j] - Y[off + j];
                const double exact = double(H[off + j]) - double(Y[off + j]);
                dZ[off + j] = scale * r;
                sq[j] += double(r) * double(r);
                sq_exact[j] += exact * exact;
            }
        }
        for (int j = 0; j < cols; ++j) {
            metrics[1 + j] += sq_exact[j];
            total += sq[j];
        }
        return 0.5 * total;
    }
    for (int i = 0; i < rows; ++i) {
        const std::size_t off = (std::size_t)i * cols;
        const T* z = Z + off;
        const T* h = H + off;
        const T* y = Y + off;
        const T wi = w ? w[i] : T(1);
        double row = 0.0;
        T* d = dZ ? dZ + off : nullptr;
        const T g = scale * wi;  // the row's weight in the batch's gradient
        if (classify && out_act == Act::softmax) {
            // -sum_j y_j log p_j with log p_j = z_j - logsumexp(z): no log of an underflowed p.
            T mx = z[0];
            for (int j = 1; j < cols; ++j) mx = std::max(mx, z[j]);
            double se = 0.0;
            for (int j = 0; j < cols; ++j) se += std::exp(double(z[j] - mx));
            const double lse = double(mx) + std::log(se);
            T ysum = 0;
            for (int j = 0; j < cols; ++j) { row += double(y[j]) * (lse - double(z[j])); ysum += y[j]; }
            if (d)
                for (int j = 0; j < cols; ++j) d[j] = g * (h[j] * ysum - y[j]);
        } else if (classify) {  // sigmoid outputs, one binary cross-entropy per output
            for (int j = 0; j < cols; ++j) {
                const double zj = z[j];
                row += std::max(zj, 0.0) - double(y[j]) * zj + std::log1p(std::exp(-std::abs(zj)));
                if (d) d[j] = g * (h[j] - y[j]);
            }
        } else if (loss == Loss::mse) {
            // Separate loops that vectorise; the reported loss has eight partial sums (it is
            // never differentiated, so its summation order is free).
            if (d)
                for (int j = 0; j < cols; ++j) d[j] = g * (h[j] - y[j]);
            double part[8] = {};
            int j = 0;
            for (; j + 8 <= cols; j += 8)
                for (int u = 0; u < 8; ++u) {
                    const double r = double(T(h[j + u] - y[j + u]));
                    part[u] += r * r;
                }
            for (; j < cols; ++j) {
                const double r = double(T(h[j] - y[j]));
                part[0] += r * r;
            }
            row = 0.5 * (((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7])));
            if (d && out_act != Act::identity) activation_backward(out_act, 1, cols, z, h, d, d);
        } else {
            for (int j = 0; j < cols; ++j) {
                const T r = h[j] - y[j];
                T dh;
                switch (loss) {
                    case Loss::mae:
                        row += std::abs(double(r));
                        dh = T((r > T(0)) - (r < T(0)));
                        break;
                    case Loss::huber: {
                        const double ar = std::abs(double(r));
                        row += ar <= kHuberDelta ? 0.5 * ar * ar : kHuberDelta * (ar - 0.5 * kHuberDelta);
                        dh = std::clamp(r, T(-kHuberDelta), T(kHuberDelta));
                        break;
                    }
                    default:
                        row += 0.5 * double(r) * double(r);
                        dh = r;
                }
                if (d) d[j] = g * dh;
            }
            if (d && out_act != Act::identity) activation_backward(out_act, 1, cols, z, h, d, d);
        }
        total += double(wi) * row;
        if (metrics) {
            if (classify) {
                bool correct = true;
                if (out_act == Act::softmax) {
                    int ph = 0, py = 0;
                    for (int j = 1; j < cols; ++j) {
                        if (h[j] > h[ph]) ph = j;
                        if (y[j] > y[py]) py = j;
                    }
                    correct = ph == py;
                } else {
                    for (int j = 0; j < cols && correct; ++j) correct = (h[j] > T(0.5)) == (y[j] > T(0.5));
                }
                if (correct) metrics[0] += double(wi);
            } else {
                double* __restrict sq = metrics + 1;  // per-output sums, apart from H and Y
                for (int j = 0; j < cols; ++j) {
                    const double r = double(h[j]) - double(y[j]);
                    sq[j] += double(wi) * r * r;
                }
            }
        }
    }
    return total;
}

// ---------------------------------------------------------------------------------------
// Optimizers

template <typename T>
DP_MULTIVERSION void sgd_update(std::size_t n, T* p, const T* g, T* vel, T lr, T momentum, bool nesterov, T decay) {
    if (momentum == T(0) || !vel) {
        if (decay == T(0))
            for (std::size_t k = 0; k < n; ++k) p[k] -= lr * g[k];
        else
            for (std::size_t k = 0; k < n; ++k) p[k] -= lr * (g[k] + decay * p[k]);
        return;
    }
    for (std::size_t k = 0; k < n; ++k) {
        const T gk = g[k] + decay * p[k];
        vel[k] = momentum * vel[k] + gk;
        p[k] -= lr * (nesterov ? gk + momentum * vel[k] : vel[k]);
    }
}

template <typename T>
DP_MULTIVERSION void adam_update(std::size_t n, T* p, const T* g, T* m, T* v, T lr, T beta1, T beta2, T eps,
                 T decay, std::int64_t step) {
    const double t = double(step);
    const T bc1 = T(1.0 - std::pow(double(beta1), t));
    const T bc2_sqrt = T(std::sqrt(1.0 - std::pow(double(beta2), t)));
    const T step_size = lr / bc1;
    for (std::size_t k = 0; k < n; ++k) {
        const T gk = g[k] + decay * p[k];
        m[k] = beta1 * m[k] + (T(1) - beta1) * gk;
        v[k] = beta2 * v[k] + (T(1) - beta2) * gk * gk;
        p[k] -= step_size * m[k] / (std::sqrt(v[k]) / bc2_sqrt + eps);
    }
}

template <typename T>
DP_MULTIVERSION bool all_finite(const T* a, std::size_t n) {
    // A value is NaN or inf exactly when its bits without the sign reach the all-ones
    // exponent, so the largest of those (an integer max, which vectorises) tells.
    using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    constexpr Bits magnitude = ~Bits(0) >> 1;
    constexpr Bits exponent = sizeof(T) == 4 ? Bits(0x7F800000u) : Bits(0x7FF0000000000000ull);
    const std::size_t block = 4096;  // stop soon after a bad value, yet keep the loop simple
    for (std::size_t s = 0; s < n; s += block) {
        const std::size_t e = std::min(n, s + block);
        Bits largest = 0;
        for (std::size_t i = s; i < e; ++i) {
            Bits bits;
            std::memcpy(&bits, a + i, sizeof bits);
            largest = std::max(largest, Bits(bits & magnitude));
        }
        if (largest >= exponent) return false;
    }
    return true;
}

// ---------------------------------------------------------------------------------------
// Transpose

namespace {

// dst[j, i] = src[i, j] for i in [i0, i1), j in [j0, j1).
template <typename T>
inline void transpose_block(const T* src, int ls, T* dst, int ld, int i0, int i1, int j0, int j1) {
    for (int i = i0; i < i1; ++i)
        for (int j = j0; j < j1; ++j) dst[(std::size_t)j * ld + i] = src[(std::size_t)i * ls + j];
}

#if defined(__GNUC__) && defined(__x86_64__)
#define DP_HAVE_AVX_TRANSPOSE 1
// A scalar transpose moves one element per store, which for a 64 x 64 weight matrix takes
// about as long as the product it prepares; 8 x 8 (float) and 4 x 4 (double) register tiles
// move a whole row per store. Half-rows are loaded into the two lanes, so the shuffles stay
// within lanes.

// [p[0 .. 4) | p[4 ls .. 4 ls + 4)]: four elements of a row and of the row four below.
__attribute__((target("avx"))) inline __m256 row_pair(const float* p, int ls) {
    return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(p)), _mm_loadu_ps(p + (std::size_t)4 * ls), 1);
}
// [p[0 .. 2) | p[2 ls .. 2 ls + 2)]
__attribute__((target("avx"))) inline __m256d row_pair(const double* p, int ls) {
    return _mm256_insertf128_pd(_mm256_castpd128_pd256(_mm_loadu_pd(p)), _mm_loadu_pd(p + (std::size_t)2 * ls), 1);
}

__attribute__((target("avx"))) void transpose_avx(int rows, int cols, const float* src, int ls, float* dst, int ld) {
    const int R = rows / 8 * 8, C = cols / 8 * 8;
    for (int j = 0; j < C; j += 8)  // dst rows in the outer loop: each is written front to back
        for (int i = 0; i < R; i += 8) {
            for (int c = 0; c < 8; c += 4) {
                const float* p = src + (std::size_t)i * ls + j + c;
                const __m256 r0 = row_pair(p, ls), r1 = row_pair(p + ls, ls);
                const __m256 r2 = row_pair(p + (std::size_t)2 * ls, ls), r3 = row_pair(p + (std::size_t)3 * ls, ls);
                const __m256 u0 = _mm256_unpacklo_ps(r0, r1), u1 = _mm256_unpackhi_ps(r0, r1);
                const __m256 u2 = _mm256_unpacklo_ps(r2, r3), u3 = _mm256_unpackhi_ps(r2, r3);
                float* d = dst + (std::size_t)(j + c) * ld + i;
                _mm256_storeu_ps(d, _mm256_shuffle_ps(u0, u2, 0x44));
                _mm256_storeu_ps(d + ld, _mm256_shuffle_ps(u0, u2, 0xEE));
                _mm256_storeu_ps(d + (std::size_t)2 * ld, _mm256_shuffle_ps(u1, u3, 0x44));
                _mm256_storeu_ps(d + (std::size_t)3 * ld, _mm256_shuffle_ps(u1, u3, 0xEE));
            }
        }
    transpose_block(src, ls, dst, ld, 0, R, C, cols);
    transpose_block(src, ls, dst, ld, R, rows, 0, cols);
}

__attribute__((target("avx"))) void transpose_avx(int rows, int cols, const double* src, int ls, double* dst, int ld) {
    const int R = rows / 4 * 4, C = cols / 4 * 4;
    for (int j = 0; j < C; j += 4)
        for (int i = 0; i < R; i += 4) {
            for (int c = 0; c < 4; c += 2) {
                const double* p = src + (std::size_t)i * ls + j + c;
                const __m256d r0 = row_pair(p, ls), r1 = row_pair(p + ls, ls);
                double* d = dst + (std::size_t)(j + c) * ld + i;
                _mm256_storeu_pd(d, _mm256_unpacklo_pd(r0, r1));
                _mm256_storeu_pd(d + ld, _mm256_unpackhi_pd(r0, r1));
            }
        }
    transpose_block(src, ls, dst, ld, 0, R, C, cols);
    transpose_block(src, ls, dst, ld, R, rows, 0, cols);
}
#endif

}  // namespace

template <typename T>
void transpose(int rows, int cols, const T* src, int ld_src, T* dst, int ld_dst) {
#ifdef DP_HAVE_AVX_TRANSPOSE
    static const bool avx = __builtin_cpu_supports("avx");
    if (avx) {
        transpose_avx(rows, cols, src, ld_src, dst, ld_dst);
        return;
    }
#endif
    constexpr int kTile = 16;  // a few cache lines of dst at a time
    for (int i = 0; i < rows; i += kTile)
        for (int j = 0; j < cols; j += kTile)
            transpose_block(src, ld_src, dst, ld_dst, i, std::min(rows, i + kTile), j, std::min(cols, j + kTile));
}

// ---------------------------------------------------------------------------------------
// Instantiations

#define DP_INSTANTIATE(T)                                                                        \
    template void gemm<T>(bool, bool, int, int, int, T, const T*, int, const T*, int, T, T*, int); \
    template void dense_forward<T>(int, int, int, const T*, const T*, const T*, T*);              \
    template void dense_backward<T>(int, int, int, const T*, const T*, const T*, T*, T*, T*);     \
    template void column_sums<T>(int, int, const T*, T, T, T*);                                  \
    template void bias_activation_forward<T>(Act, int, int, T*, const T*, T*);                    \
    template bool narrow_dense_forward<T>(Act, int, int, int, const T*, const T*, const T*, T*, T*); \
    template void activation_backward<T>(Act, int, int, const T*, const T*, const T*, T*);        \
    template void activation_backward_sums<T>(Act, int, int, const T*, const T*, const T*, T*, T*); \
    template double loss_forward_backward<T>(Loss, Act, int, int, const T*, const T*, const T*,   \
                                             const T*, T, T*, double*);                          \
    template void sgd_update<T>(std::size_t, T*, const T*, T*, T, T, bool, T);                    \
    template void adam_update<T>(std::size_t, T*, const T*, T*, T*, T, T, T, T, T, std::int64_t); \
    template bool all_finite<T>(const T*, std::size_t);                                           \
    template void transpose<T>(int, int, const T*, int, T*, int);

DP_INSTANTIATE(float)
DP_INSTANTIATE(double)

}  // namespace dp
