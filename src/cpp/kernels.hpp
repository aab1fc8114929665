// Dense-network kernels: matrix products, activations, losses and optimizer steps.
//
// Every array is row-major and contiguous. Shapes are given in the comments as
// (rows, cols). All kernels are templates over the element type T (float or double);
// kernels.cpp instantiates both. Nothing here knows about Python.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

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

// dZ = dH * act'(Z) (rows, cols); for softmax the row-wise Jacobian product.
// Z is read only when act_needs_z(act); dZ may be dH.
template <typename T>
void activation_backward(Act act, int rows, int cols, const T* Z, const T* H, const T* dH, T* dZ);

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

}  // namespace dp
