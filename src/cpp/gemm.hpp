// Matrix products and the small matrix helpers around them. Every array is row-major; shapes
// are given as (rows, cols). Templates over T = float or double; gemm.cpp instantiates both.
#pragma once

#include <cstddef>

// Hot element-wise loops are compiled three times (AVX-512, AVX2+FMA, baseline) and the loader
// picks the best for the CPU (GCC function multiversioning); elsewhere one build.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define DP_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DP_MULTIVERSION
#endif

namespace dp {

// C (M, N) = alpha op(A) op(B) + beta C, op(A) (M, K), op(B) (K, N). As in BLAS, C is not read
// when beta == 0. Products too small for a BLAS call to pay run in plain loops.
template <typename T>
void gemm(bool trans_a, bool trans_b, int M, int N, int K, T alpha, const T* A, int lda, const T* B, int ldb,
          T beta, T* C, int ldc);

// sums (cols) = column sums of A (rows, cols).
template <typename T>
void column_sums(int rows, int cols, const T* A, T* sums);

// dst (cols, rows) = src (rows, cols)^T; rows of src are ld_src apart, rows of dst ld_dst apart;
// the two do not overlap.
template <typename T>
void transpose(int rows, int cols, const T* src, int ld_src, T* dst, int ld_dst);

// True when none of a (n) is NaN or infinite.
template <typename T>
bool all_finite(const T* a, std::size_t n);

}  // namespace dp
