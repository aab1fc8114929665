// The activation table: one row per activation.
//
// A row has
//   name       what users pass;
//   f(z)       H = f(Z), element by element;
//   df(z, h)   f'(z), written with h = f(z) wherever that is exact;
//   needs_z    whether df reads z: otherwise H may overwrite Z and a layer keeps one buffer.
// Softmax couples the columns of a row (`rowwise`); the kernels handle it apart.
//
// To add an activation: write its row here and put it in `Activations`; the enum, the names
// and the error messages follow from the list. reference.py gets the same function and row.
#pragma once

#include <algorithm>
#include <cmath>

#include "rows.hpp"

namespace dp {

template <typename T>
inline T sigmoid(T z) {  // never exp of a large positive number
    if (z >= T(0)) return T(1) / (T(1) + std::exp(-z));
    const T e = std::exp(z);
    return e / (T(1) + e);
}

struct Elementwise {
    static constexpr bool rowwise = false;
    static constexpr bool needs_z = false;
};

struct Identity : Elementwise {
    static constexpr const char* name = "identity";
    template <typename T> static T f(T z) { return z; }
    template <typename T> static T df(T, T) { return T(1); }
};

struct Relu : Elementwise {
    static constexpr const char* name = "relu";
    template <typename T> static T f(T z) { return z > T(0) ? z : T(0); }
    template <typename T> static T df(T, T h) { return h > T(0) ? T(1) : T(0); }
};

struct LeakyRelu : Elementwise {
    static constexpr const char* name = "leaky_relu";
    static constexpr double slope = 0.01;  // PyTorch's default
    template <typename T> static T f(T z) { return z > T(0) ? z : T(slope) * z; }
    template <typename T> static T df(T, T h) { return h > T(0) ? T(1) : T(slope); }
};

struct Elu : Elementwise {
    static constexpr const char* name = "elu";
    static constexpr double alpha = 1.0;  // PyTorch's default
    template <typename T> static T f(T z) { return z > T(0) ? z : T(alpha) * std::expm1(z); }
    template <typename T> static T df(T, T h) { return h > T(0) ? T(1) : h + T(alpha); }
};

// The tanh form, 0.5 z (1 + tanh(u)) with u = c (z + a z^3), written as z sigmoid(2u): the same
// function, without the cancellation of 1 + tanh(u) for negative z (float32's derivative was 0.8%
// off at z = -4.5 that way).
struct Gelu : Elementwise {
    static constexpr const char* name = "gelu";
    static constexpr bool needs_z = true;
    static constexpr double c = 0.7978845608028654, a = 0.044715;  // sqrt(2 / pi), the cubic term
    template <typename T> static T f(T z) { return z * sigmoid(T(2 * c) * (z + T(a) * z * z * z)); }
    template <typename T> static T df(T z, T) {
        const T s = sigmoid(T(2 * c) * (z + T(a) * z * z * z));
        return s + T(2) * z * s * (T(1) - s) * T(c) * (T(1) + T(3 * a) * z * z);
    }
};

struct Sigmoid : Elementwise {
    static constexpr const char* name = "sigmoid";
    template <typename T> static T f(T z) { return sigmoid(z); }
    template <typename T> static T df(T, T h) { return h * (T(1) - h); }
};

struct Tanh : Elementwise {
    static constexpr const char* name = "tanh";
    template <typename T> static T f(T z) { return std::tanh(z); }
    template <typename T> static T df(T, T h) { return T(1) - h * h; }
};

struct Softplus : Elementwise {
    static constexpr const char* name = "softplus";
    static constexpr bool needs_z = true;
    template <typename T> static T f(T z) { return std::max(z, T(0)) + std::log1p(std::exp(-std::abs(z))); }
    template <typename T> static T df(T z, T) { return sigmoid(z); }
};

struct Silu : Elementwise {  // x * sigmoid(x), also called swish
    static constexpr const char* name = "silu";
    static constexpr bool needs_z = true;
    template <typename T> static T f(T z) { return z * sigmoid(z); }
    template <typename T> static T df(T z, T) {
        const T s = sigmoid(z);
        return s * (T(1) + z * (T(1) - s));
    }
};

struct Softmax {  // row-wise: softmax_rows and the Jacobian product in activation_backward
    static constexpr const char* name = "softmax";
    static constexpr bool rowwise = true;
    static constexpr bool needs_z = false;
};

using Activations = RowList<Identity, Relu, LeakyRelu, Elu, Gelu, Sigmoid, Tanh, Softplus, Silu, Softmax>;

// An activation: the position of its row in Activations.
enum class Act : int {};
template <class Row>
constexpr Act act_of = Act(IndexOf<Row, Activations>::value);

template <class F>
DP_ALWAYS_INLINE decltype(auto) with_activation(Act a, F&& f) {
    return with_row(Activations{}, int(a), static_cast<F&&>(f));
}

inline bool act_needs_z(Act a) {
    return with_activation(a, [](auto row) { return decltype(row)::needs_z; });
}

}  // namespace dp
