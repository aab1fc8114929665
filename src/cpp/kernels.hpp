// The layers of a dense network, each a forward/backward pair, and the loss at the end.
//
// One training step is, for a net of L layers (X = H[-1] the batch's inputs):
//   forward   for l = 0 .. L-1:   dense_forward(l):  Z[l] = H[l-1] W[l] + b[l], H[l] = act(Z[l])
//   loss                          loss_forward_backward: the loss, and dZ[L-1] = dLoss/dZ[L-1]
//   backward  for l = L-1 .. 0:   dense_backward(l): dH[l-1] = dZ[l] W[l]^T, then dW[l] = H[l-1]^T dZ[l]
//                                 activation_backward(l-1): dZ[l-1] = dH[l-1] * act'(Z[l-1]),
//                                                           db[l-1] = column sums of dZ[l-1]
// and an optimizer step on W[l], b[l] once dense_backward(l) has taken dH[l-1] from the old W[l].
//
// Every array is row-major and contiguous; shapes are given as (rows, cols). Templates over
// T = float or double; kernels.cpp instantiates both. Nothing here knows about Python.
#pragma once

#include <cstddef>
#include <cstdint>

#include "activations.hpp"
#include "gemm.hpp"
#include "losses.hpp"
#include "threads.hpp"

namespace dp {

// Dense layer, forward: Z (rows, n_out) = X (rows, n_in) W (n_in, n_out) + b (n_out), then
// H = act(Z). H may be Z (one buffer) unless act's derivative needs Z; Z is written only when it
// is not H. A narrow layer computes each row in one pass; the others make one product, split
// among a team by `products`.
template <typename T>
void dense_forward(Act act, int rows, int n_in, int n_out, const T* X, const T* W, const T* b, T* Z, T* H,
                   const Products<T>& products = Products<T>());

// Dense layer, backward, from this layer's dZ (rows, n_out):
//   dX (rows, n_in) = dZ W^T, when dX is not null, from W as it is on entry;
//   then dW (n_in, n_out) = alpha X^T dZ + beta dW: the gradient with alpha 1, beta 0, or a plain
//   SGD step folded into the product with dW = W, alpha = -lr, beta = keep (see SgdStep).
// WT, when not null, is scratch of n_in * n_out elements: dX then comes from a plain product
// with a transposed copy of W (use_transposed_w says when that is faster).
// The bias gradient is the column sums of dZ (activation_backward returns them with dZ).
template <typename T>
void dense_backward(int rows, int n_in, int n_out, const T* X, const T* W, const T* dZ, T* dX, T* dW, T alpha,
                    T beta, T* WT = nullptr, const Products<T>& products = Products<T>());

// Whether dense_backward's dX is faster through a transposed copy of W (n_in, n_out).
template <typename T>
bool use_transposed_w(int n_in, int n_out, int rows);

// Activation, forward: Z (rows, cols) += bias (cols) when bias is not null, then H = act(Z).
// H may be Z.
template <typename T>
void activation_forward(Act act, int rows, int cols, T* Z, const T* bias, T* H);

// Activation, backward: dZ (rows, cols) = dH * act'(Z) (softmax: the row-wise Jacobian
// product), and sums (cols) = the column sums of dZ when sums is not null. Z is read only when
// the activation needs it; dZ may be dH.
template <typename T>
void activation_backward(Act act, int rows, int cols, const T* Z, const T* H, const T* dH, T* dZ, T* sums = nullptr);

// Loss of the output layer over `rows` rows: Z (rows, cols) are its pre-activations, H =
// act(Z), Y the targets, w (rows) optional row weights. Returns sum_i w_i loss_i. When dZ is not
// null it gets dZ = scale * d(sum_i w_i loss_i)/dZ (scale is 1/B for the mean over a batch of B
// rows). When metrics is not null it gets [weighted correct rows, weighted squared error per
// output (cols)] added: accuracy for cross-entropy, the ingredients of R^2 otherwise.
template <typename T>
double loss_forward_backward(Loss loss, Act out_act, int rows, int cols, const T* Z, const T* H, const T* Y,
                             const T* w, T scale, T* dZ, double* metrics);

}  // namespace dp
