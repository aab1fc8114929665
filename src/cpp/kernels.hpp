// Dense-network kernels: matrix products, activations, losses and optimizer steps.
//
// Every array is row-major and contiguous. Shapes are given in the comments as
// (rows, cols). All kernels are templates over the element type T (float or double);
// kernels.cpp instantiates both. Nothing here knows about Python.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

// Hot elementwise loops are compiled three times (AVX-512, AVX2+FMA, baseline) and the
// loader picks the best for the CPU (GCC function multiversioning); elsewhere one build.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(DENSEPROP_NO_MULTIVERSION)
#define DP_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DP_MULTIVERSION
#endif

namespace dp {

enum class Act : int { identity, relu, leaky_relu, elu, gelu, sigmoid, tanh, softplus, softmax };
enum class Loss : int { mse, cross_entropy, mae, huber };
enum class Opt : int { sgd, adam };

// Fixed constants, PyTorch's defaults.
constexpr double kLeakySlope = 0.01;
constexpr double kEluAlpha = 1.0;
constexpr double kHuberDelta = 1.0;

bool parse_activation(const std::string& name, Act& out);
bool parse_loss(const std::string& name, Loss& out);
bool parse_optimizer(const std::string& name, Opt& out);

// The derivative of these needs Z itself; for the others it follows from H = act(Z),
// so H may overwrite Z and the layer keeps one buffer.
inline bool act_needs_z(Act a) { return a == Act::gelu || a == Act::softplus; }
// Row-wise activations: the derivative couples the columns of a row.
inline bool act_is_rowwise(Act a) { return a == Act::softmax; }

// Scalar activation functions, shared by the batched kernels and the row-wise trainer.
template <typename T>
inline T sigmoid(T z) {
    if (z >= T(0)) return T(1) / (T(1) + std::exp(-z));
    const T e = std::exp(z);
    return e / (T(1) + e);
}

template <typename T>
inline T softplus(T z) {  // log(1 + e^z) without overflow
    return std::max(z, T(0)) + std::log1p(std::exp(-std::abs(z)));
}

constexpr double kGeluC = 0.7978845608028654;  // sqrt(2 / pi)
constexpr double kGeluA = 0.044715;

template <typename T>
inline T gelu(T z) {
    const T u = T(kGeluC) * (z + T(kGeluA) * z * z * z);
    return T(0.5) * z * (T(1) + std::tanh(u));
}

template <typename T>
inline T gelu_grad(T z) {
    const T u = T(kGeluC) * (z + T(kGeluA) * z * z * z);
    const T t = std::tanh(u);
    return T(0.5) * (T(1) + t) + T(0.5) * z * (T(1) - t * t) * T(kGeluC) * (T(1) + T(3 * kGeluA) * z * z);
}

template <typename T>
inline T elementwise(Act act, T z) {
    switch (act) {
        case Act::relu: return z > T(0) ? z : T(0);
        case Act::leaky_relu: return z > T(0) ? z : T(kLeakySlope) * z;
        case Act::elu: return z > T(0) ? z : T(kEluAlpha) * std::expm1(z);
        case Act::gelu: return gelu(z);
        case Act::sigmoid: return sigmoid(z);
        case Act::tanh: return std::tanh(z);
        case Act::softplus: return softplus(z);
        default: return z;
    }
}

// act'(z) written with h = act(z) wherever that is exact, so H may overwrite Z.
template <typename T>
inline T derivative(Act act, T z, T h) {
    switch (act) {
        case Act::relu: return h > T(0) ? T(1) : T(0);
        case Act::leaky_relu: return h > T(0) ? T(1) : T(kLeakySlope);
        case Act::elu: return h > T(0) ? T(1) : h + T(kEluAlpha);
        case Act::gelu: return gelu_grad(z);
        case Act::sigmoid: return h * (T(1) - h);
        case Act::tanh: return T(1) - h * h;
        case Act::softplus: return sigmoid(z);
        default: return T(1);
    }
}

// The same two, with ReLU and identity inlined: the row-wise trainers call these per element,
// and a call per element costs more than the arithmetic of a textbook-sized layer.
#if defined(__GNUC__)
#define DP_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define DP_ALWAYS_INLINE inline
#endif

template <typename T>
DP_ALWAYS_INLINE T activate(Act act, T z) {
    if (act == Act::relu) return z > T(0) ? z : T(0);
    if (act == Act::identity) return z;
    return elementwise(act, z);
}

template <typename T>
DP_ALWAYS_INLINE T activate_grad(Act act, T z, T h) {
    if (act == Act::relu) return h > T(0) ? T(1) : T(0);
    if (act == Act::identity) return T(1);
    return derivative(act, z, h);
}

// C (M,N) = alpha * op(A) @ op(B) + beta * C, op(A) (M,K), op(B) (K,N).
// Small products run in plain loops (a BLAS call costs more than the arithmetic);
// the rest go to OpenBLAS. As in BLAS, C is not read when beta == 0.
template <typename T>
void gemm(bool trans_a, bool trans_b, int M, int N, int K, T alpha, const T* A, int lda,
          const T* B, int ldb, T beta, T* C, int ldc);

// Dense layer. X (rows, n_in), W (n_in, n_out), b (n_out), Z (rows, n_out).
template <typename T>
void dense_forward(int rows, int n_in, int n_out, const T* X, const T* W, const T* b, T* Z);
// dZ (rows, n_out) -> dW (n_in, n_out) = X^T dZ, db (n_out) = column sums of dZ,
// dX (rows, n_in) = dZ W^T (skipped when dX is null).
template <typename T>
void dense_backward(int rows, int n_in, int n_out, const T* X, const T* W, const T* dZ, T* dW,
                    T* db, T* dX);

// db (cols) = alpha * column sums of dZ (rows, cols) + beta * db.
template <typename T>
void column_sums(int rows, int cols, const T* dZ, T alpha, T beta, T* db);

// Z (rows, cols) += bias (cols) when bias is non-null, then H = act(Z). H may be Z.
template <typename T>
void bias_activation_forward(Act act, int rows, int cols, T* Z, const T* bias, T* H);

// Z (rows, n_out) = X (rows, n_in) @ W (n_in, n_out) + b, H = act(Z), in one pass over the
// rows, for layers so narrow (n_out <= kNarrowOut, n_in <= kNarrowIn) that a BLAS call
// costs more than the arithmetic. Z is written only when it is not H. Returns false, and
// does nothing, for other layers and for softmax.
constexpr int kNarrowIn = 16, kNarrowOut = 8;
template <typename T>
bool narrow_dense_forward(Act act, int rows, int n_in, int n_out, const T* X, const T* W, const T* b, T* Z,
                          T* H);

// dZ = dH * act'(Z) (rows, cols); for softmax the row-wise Jacobian product.
// Z is read only when act_needs_z(act); dZ may be dH.
template <typename T>
void activation_backward(Act act, int rows, int cols, const T* Z, const T* H, const T* dH, T* dZ);
// activation_backward, and sums (cols) = column sums of dZ as column_sums(..., 1, 0, sums)
// gives them, bit for bit; for ReLU in the same pass.
template <typename T>
void activation_backward_sums(Act act, int rows, int cols, const T* Z, const T* H, const T* dH, T* dZ,
                              T* sums);

// Loss of the output layer for `rows` rows. Z (rows, cols) are the output's
// pre-activations, H = act(Z), Y the targets, w (rows) optional row weights.
// Returns sum over rows of w_i * loss_i (a row's loss sums over its outputs).
// If dZ is non-null, writes dZ = scale * d(sum_i w_i loss_i)/dZ; scale is 1/B for a batch
// of B rows. If metrics is non-null, adds [weighted correct rows, weighted squared error
// per output (cols)] to it: accuracy for cross-entropy, R^2 ingredients otherwise.
template <typename T>
double loss_forward_backward(Loss loss, Act out_act, int rows, int cols, const T* Z, const T* H,
                             const T* Y, const T* w, T scale, T* dZ, double* metrics);

// In-place optimizer steps on one parameter array of n elements with gradient g.
// decay is the L2 weight decay (0 for biases). velocity may be null when momentum == 0.
template <typename T>
void sgd_update(std::size_t n, T* p, const T* g, T* velocity, T lr, T momentum, bool nesterov,
                T decay);
// PyTorch's Adam (not AdamW): decay is added to the gradient; step is 1-based.
template <typename T>
void adam_update(std::size_t n, T* p, const T* g, T* m, T* v, T lr, T beta1, T beta2, T eps,
                 T decay, std::int64_t step);

// True when none of a (n) is NaN or infinite. Tests the exponent bits, so it needs no
// floating-point compare and vectorises; used on each chunk of an input while it is in cache.
template <typename T>
bool all_finite(const T* a, std::size_t n);

// dst (cols, rows) = src (rows, cols)^T; rows of src are ld_src apart, rows of dst ld_dst
// apart; the two do not overlap.
template <typename T>
void transpose(int rows, int cols, const T* src, int ld_src, T* dst, int ld_dst);

}  // namespace dp
