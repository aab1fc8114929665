// Matrix products and helpers; see gemm.hpp for the contract of each function.
#include "gemm.hpp"

#include <cblas.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif

#include "tuning.hpp"

namespace dp {

namespace {

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
    if ((long)M * N * K <= tuning::kSmallGemm)
        gemm_small(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else
        blas_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <typename T>
DP_MULTIVERSION void column_sums(int rows, int cols, const T* A, T* sums) {
    // Row by row into a small stack block, so every read is contiguous and nothing is allocated.
    constexpr int kBlock = 256;
    T acc[kBlock];
    for (int j0 = 0; j0 < cols; j0 += kBlock) {
        const int w = std::min(kBlock, cols - j0);
        std::fill(acc, acc + w, T(0));
        for (int i = 0; i < rows; ++i) {
            const T* a = A + (std::size_t)i * cols + j0;
            for (int j = 0; j < w; ++j) acc[j] += a[j];
        }
        std::copy(acc, acc + w, sums + j0);
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

#define DP_INSTANTIATE(T)                                                                          \
    template void gemm<T>(bool, bool, int, int, int, T, const T*, int, const T*, int, T, T*, int);   \
    template void column_sums<T>(int, int, const T*, T*);                                         \
    template void transpose<T>(int, int, const T*, int, T*, int);                                  \
    template bool all_finite<T>(const T*, std::size_t);

DP_INSTANTIATE(float)
DP_INSTANTIATE(double)

}  // namespace dp
