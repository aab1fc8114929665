// The layer kernels; see kernels.hpp for the contract of each function.
#include "kernels.hpp"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "tuning.hpp"

namespace dp {

namespace {

// act(z) for one element of an element-wise activation chosen at run time.
template <typename T>
DP_ALWAYS_INLINE T apply(Act act, T z) {
    return with_activation(act, [z](auto row) DP_INLINE_LAMBDA {
        using A = decltype(row);
        if constexpr (A::rowwise) return z;
        else return A::template f<T>(z);
    });
}

template <typename T>
void softmax_row(int cols, const T* z, T* h) {
    T mx = z[0];
    for (int j = 1; j < cols; ++j) mx = std::max(mx, z[j]);
    T s = 0;
    for (int j = 0; j < cols; ++j) {
        h[j] = std::exp(z[j] - mx);
        s += h[j];
    }
    const T inv = T(1) / s;
    for (int j = 0; j < cols; ++j) h[j] *= inv;
}

// ---------------------------------------------------------------------------------------
// Narrow layers: Z and H in one pass over the rows. The output width (and a small input width;
// FI = 0: n_in at run time) are template parameters, so a row's outputs stay in registers and
// the loops unroll.

template <typename T, int FO, int FI>
DP_MULTIVERSION void narrow_rows(Act act, int rows, int n_in, const T* X, const T* W, const T* b, T* Z, T* H) {
    const int fi = FI > 0 ? FI : n_in;
    const bool relu = act == act_of<Relu>, identity = act == act_of<Identity>;
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
            for (int j = 0; j < FO; ++j) h[j] = Relu::f(acc[j]);
        else if (identity)
            for (int j = 0; j < FO; ++j) h[j] = acc[j];
        else
            for (int j = 0; j < FO; ++j) h[j] = apply(act, acc[j]);
    }
}

template <typename T, int FO = 1>
bool narrow_forward(Act act, int rows, int n_in, int n_out, const T* X, const T* W, const T* b, T* Z, T* H) {
    if constexpr (FO > tuning::kNarrowOut) {
        return false;
    } else {
        if (FO == 1 && (act == act_of<Softmax> || n_in > tuning::kNarrowIn || n_in < 1 || rows < 1)) return false;
        if (n_out != FO) return narrow_forward<T, FO + 1>(act, rows, n_in, n_out, X, W, b, Z, H);
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

// ---------------------------------------------------------------------------------------
// Dense layer

template <typename T>
void dense_forward(Act act, int rows, int n_in, int n_out, const T* X, const T* W, const T* b, T* Z, T* H,
                   const Products<T>& products) {
    if (narrow_forward<T>(act, rows, n_in, n_out, X, W, b, Z, H)) return;
    products.gemm(false, false, rows, n_out, n_in, T(1), X, n_in, W, n_out, T(0), Z, n_out,
                  split_by_columns(n_in, n_out));
    activation_forward<T>(act, rows, n_out, Z, b, H);
}

template <typename T>
void dense_backward(int rows, int n_in, int n_out, const T* X, const T* W, const T* dZ, T* dX, T* dW, T alpha,
                    T beta, T* WT, const Products<T>& products) {
    if (dX && WT) {
        transpose<T>(n_in, n_out, W, n_out, WT, n_in);
        products.gemm(false, false, rows, n_in, n_out, T(1), dZ, n_out, WT, n_in, T(0), dX, n_in);
    } else if (dX) {
        products.gemm(false, true, rows, n_in, n_out, T(1), dZ, n_out, W, n_out, T(0), dX, n_in);
    }
    products.gemm(true, false, n_in, n_out, rows, alpha, X, n_in, dZ, n_out, beta, dW, n_out,
                  split_by_columns(n_in, n_out));
}

template <typename T>
bool use_transposed_w(int n_in, int n_out, int rows) {
    using namespace tuning;
    if (n_out <= kTransposeOut && n_in <= kTransposeIn) return true;
    return rows >= kTransposeMinRows && long(n_in) * n_out * long(sizeof(T)) <= kTransposeBytes &&
           long(n_in) * n_out * rows <= kSmallProduct;
}

// ---------------------------------------------------------------------------------------
// Activation

template <typename T>
DP_MULTIVERSION void activation_forward(Act act, int rows, int cols, T* Z, const T* bias, T* H) {
    with_activation(act, [&](auto row) DP_INLINE_LAMBDA {
        using A = decltype(row);
        if constexpr (std::is_same_v<A, Identity>) {
            if (!bias && H == Z) return;
        }
        // Z + bias is stored in Z when Z is kept beside H (or softmax reads it back).
        const bool keep_z = A::needs_z || A::rowwise || H != Z;
        for (int i = 0; i < rows; ++i) {
            T* z = Z + (std::size_t)i * cols;
            T* h = H + (std::size_t)i * cols;
            if (bias && keep_z)
                for (int j = 0; j < cols; ++j) z[j] += bias[j];
            if constexpr (A::rowwise) {
                softmax_row(cols, z, h);
            } else if (bias && !keep_z) {
                for (int j = 0; j < cols; ++j) h[j] = A::template f<T>(z[j] + bias[j]);
            } else {
                for (int j = 0; j < cols; ++j) h[j] = A::template f<T>(z[j]);
            }
        }
    });
}

template <typename T>
DP_MULTIVERSION void activation_backward(Act act, int rows, int cols, const T* Z, const T* H, const T* dH, T* dZ,
                                         T* __restrict sums) {
    with_activation(act, [&](auto row) DP_INLINE_LAMBDA {
        using A = decltype(row);
        if constexpr (A::rowwise) {
            for (int i = 0; i < rows; ++i) {
                const T* h = H + (std::size_t)i * cols;
                const T* g = dH + (std::size_t)i * cols;
                T* d = dZ + (std::size_t)i * cols;
                T s = 0;
                for (int j = 0; j < cols; ++j) s += g[j] * h[j];
                for (int j = 0; j < cols; ++j) d[j] = h[j] * (g[j] - s);
            }
            if (sums) column_sums(rows, cols, dZ, sums);
        } else {
            // dZ and, in the same pass, its column sums: blocks of columns whose sums stay in
            // registers down the rows (the sums come out as column_sums gives them, bit for bit).
            auto dz = [&](std::size_t k) DP_INLINE_LAMBDA {
                return dH[k] * A::template df<T>(A::needs_z ? Z[k] : T(0), H[k]);
            };
            if (!sums) {
                const std::size_t n = (std::size_t)rows * cols;
                for (std::size_t k = 0; k < n; ++k) dZ[k] = dz(k);
                return;
            }
            constexpr int kBlock = 256 / sizeof(T);  // four 512-bit registers
            int j0 = 0;
            for (; j0 + kBlock <= cols; j0 += kBlock) {
                T acc[kBlock] = {};
                for (int i = 0; i < rows; ++i) {
                    const std::size_t off = (std::size_t)i * cols + j0;
                    for (int j = 0; j < kBlock; ++j) {
                        const T g = dz(off + j);
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
                    const T g = dz(off + j);
                    dZ[off + j] = g;
                    sums[j] += g;
                }
            }
        }
    });
}

// ---------------------------------------------------------------------------------------
// Loss

namespace {

// A residual loss (mse, mae, huber) over rows (rows, cols), in blocks of columns whose sums
// stay in registers down the rows. The loss takes the residual rounded to T, as training sees
// it; the R^2 sums take the exact one.
template <class L, typename T>
DP_ALWAYS_INLINE double residual_rows(int rows, int cols, const T* H, const T* Y, const T* w, T scale, T* dZ,
                                      double* metrics) {
    constexpr int kBlock = 64;
    double total = 0.0;
    for (int j0 = 0; j0 < cols; j0 += kBlock) {
        const int width = std::min(kBlock, cols - j0);
        double loss[kBlock], sq[kBlock];
        std::fill(loss, loss + width, 0.0);
        std::fill(sq, sq + width, 0.0);
        for (int i = 0; i < rows; ++i) {
            const std::size_t off = (std::size_t)i * cols + j0;
            const T wi = w ? w[i] : T(1);
            const T g = scale * wi;  // the row's weight in the batch's gradient
            for (int j = 0; j < width; ++j) {
                const T r = H[off + j] - Y[off + j];
                const double exact = double(H[off + j]) - double(Y[off + j]);
                if (dZ) dZ[off + j] = g * L::template grad<T>(r);
                loss[j] += double(wi) * L::value(double(r));
                sq[j] += double(wi) * exact * exact;
            }
        }
        for (int j = 0; j < width; ++j) {
            total += loss[j];
            if (metrics) metrics[1 + j0 + j] += sq[j];
        }
    }
    return total;
}

// Cross-entropy from the logits Z of a softmax output (-sum_j y_j log p_j, per row) or of
// sigmoid outputs (binary cross-entropy per output); dZ = g (p - y), accuracy in metrics.
template <typename T>
double cross_entropy_rows(Act out_act, int rows, int cols, const T* Z, const T* H, const T* Y, const T* w, T scale,
                          T* dZ, double* metrics) {
    const bool softmax = out_act == act_of<Softmax>;
    double total = 0.0;
    for (int i = 0; i < rows; ++i) {
        const std::size_t off = (std::size_t)i * cols;
        const T *z = Z + off, *h = H + off, *y = Y + off;
        T* d = dZ ? dZ + off : nullptr;
        const T wi = w ? w[i] : T(1);
        const T g = scale * wi;
        double row = 0.0;
        bool correct = true;
        if (softmax) {  // log p_j = z_j - logsumexp(z): no log of an underflowed p
            T mx = z[0];
            for (int j = 1; j < cols; ++j) mx = std::max(mx, z[j]);
            double se = 0.0;
            for (int j = 0; j < cols; ++j) se += std::exp(double(z[j] - mx));
            const double lse = double(mx) + std::log(se);
            T ysum = 0;
            for (int j = 0; j < cols; ++j) {
                row += double(y[j]) * (lse - double(z[j]));
                ysum += y[j];
            }
            if (d)
                for (int j = 0; j < cols; ++j) d[j] = g * (h[j] * ysum - y[j]);
            int ph = 0, py = 0;
            for (int j = 1; j < cols; ++j) {
                if (h[j] > h[ph]) ph = j;
                if (y[j] > y[py]) py = j;
            }
            correct = ph == py;
        } else {
            for (int j = 0; j < cols; ++j) {
                const double zj = z[j];
                row += std::max(zj, 0.0) - double(y[j]) * zj + std::log1p(std::exp(-std::abs(zj)));
                if (d) d[j] = g * (h[j] - y[j]);
                correct = correct && (h[j] > T(0.5)) == (y[j] > T(0.5));
            }
        }
        total += double(wi) * row;
        if (metrics && correct) metrics[0] += double(wi);
    }
    return total;
}

}  // namespace

template <typename T>
DP_MULTIVERSION double loss_forward_backward(Loss loss, Act out_act, int rows, int cols, const T* Z, const T* H,
                                             const T* Y, const T* w, T scale, T* dZ, double* metrics) {
    return with_loss(loss, [&](auto row) DP_INLINE_LAMBDA -> double {
        using L = decltype(row);
        if constexpr (L::from_logits) {
            return cross_entropy_rows(out_act, rows, cols, Z, H, Y, w, scale, dZ, metrics);
        } else {
            const double total = residual_rows<L>(rows, cols, H, Y, w, scale, dZ, metrics);
            if (dZ && out_act != act_of<Identity>) activation_backward<T>(out_act, rows, cols, Z, H, dZ, dZ);
            return total;
        }
    });
}

// ---------------------------------------------------------------------------------------
// Instantiations

#define DP_INSTANTIATE(T)                                                                                   \
    template void dense_forward<T>(Act, int, int, int, const T*, const T*, const T*, T*, T*, const Products<T>&); \
    template void dense_backward<T>(int, int, int, const T*, const T*, const T*, T*, T*, T, T, T*,            \
                                    const Products<T>&);                                                      \
    template bool use_transposed_w<T>(int, int, int);                                                         \
    template void activation_forward<T>(Act, int, int, T*, const T*, T*);                                     \
    template void activation_backward<T>(Act, int, int, const T*, const T*, const T*, T*, T*);                \
    template double loss_forward_backward<T>(Loss, Act, int, int, const T*, const T*, const T*, const T*, T, T*, \
                                             double*);

DP_INSTANTIATE(float)
DP_INSTANTIATE(double)

}  // namespace dp
