// Optimizer update kernels; see optimizers.hpp.
#include "optimizers.hpp"

#include <cmath>

#include "gemm.hpp"  // DP_MULTIVERSION

namespace dp {

template <typename T>
DP_MULTIVERSION void sgd_update(std::size_t n, T* p, const T* g, T* vel, T lr, T momentum, bool nesterov, T decay) {
    if (!vel) {
        const SgdStep<T> step(lr, decay);
        for (std::size_t k = 0; k < n; ++k) p[k] = step(p[k], g[k]);
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
                                 T decay, std::int64_t step, bool decoupled) {
    const double t = double(step);
    const T bc1 = T(1.0 - std::pow(double(beta1), t));
    const T bc2_sqrt = T(std::sqrt(1.0 - std::pow(double(beta2), t)));
    const T step_size = lr / bc1;
    const T keep = decoupled ? T(1) - lr * decay : T(1);  // AdamW shrinks p before the step
    const T l2 = decoupled ? T(0) : decay;                 // Adam adds decay p to the gradient
    for (std::size_t k = 0; k < n; ++k) {
        const T gk = g[k] + l2 * p[k];
        m[k] = beta1 * m[k] + (T(1) - beta1) * gk;
        v[k] = beta2 * v[k] + (T(1) - beta2) * gk * gk;
        p[k] = keep * p[k] - step_size * m[k] / (std::sqrt(v[k]) / bc2_sqrt + eps);
    }
}

template void sgd_update<float>(std::size_t, float*, const float*, float*, float, float, bool, float);
template void sgd_update<double>(std::size_t, double*, const double*, double*, double, double, bool, double);
template void adam_update<float>(std::size_t, float*, const float*, float*, float*, float, float, float, float,
                                 float, std::int64_t, bool);
template void adam_update<double>(std::size_t, double*, const double*, double*, double*, double, double, double,
                                  double, double, std::int64_t, bool);

}  // namespace dp
