// A network as the whole-network passes see it, and what they share.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "activations.hpp"
#include "losses.hpp"

namespace dp {

// A network's parameters, borrowed from the caller. Layer l maps sizes[l] -> sizes[l+1].
template <typename T>
struct Model {
    std::vector<int> sizes;  // n_layers + 1 widths
    std::vector<T*> W;       // W[l] (sizes[l], sizes[l+1])
    std::vector<T*> b;       // b[l] (sizes[l+1])
    std::vector<Act> acts;   // one per layer; the last one is the output activation
    Loss loss{};
    int n_layers() const { return (int)W.size(); }
    int n_in() const { return sizes.front(); }
    int n_out() const { return sizes.back(); }
    int fan_in(int l) const { return sizes[l]; }
    int fan_out(int l) const { return sizes[l + 1]; }
};

// The metrics that evaluate and train_epoch add to (float64, 2 + n_out entries):
// [sum of w_i * loss_i, weighted correct rows, weighted squared error per output ...].
inline int metrics_size(int n_out) { return 2 + n_out; }

// How training normalises a batch's loss. The default is denseprop's: the mean over the
// batch's rows of each row's loss, summed over outputs, with weight decay as given.
struct Objective {
    double output_scale = 1.0;    // multiplies every row's loss (1 / n_out: a mean over outputs too)
    bool by_weight_sum = false;   // divide by the batch's sum of sample weights, not its rows
    bool decay_by_batch = false;  // weight decay divided by the same denominator
    bool is_default() const { return output_scale == 1.0 && !by_weight_sum && !decay_by_batch; }
};

// Called every few milliseconds of work; returning true stops the loop early.
using StopCheck = std::function<bool()>;

// Shuffling: forward Fisher-Yates, where position i swaps with i + floor(h_i * (n - i) / 2^64)
// and h_i is the splitmix64 hash of seed + i * golden gamma. The hashes do not depend on each
// other, so it runs at memory speed, several times faster than numpy's Generator.permutation;
// reference.shuffled_order builds the same order.
inline void shuffled_order(std::uint64_t seed, std::int64_t n, std::int64_t* out) {
    for (std::int64_t i = 0; i < n; ++i) out[i] = i;
    for (std::int64_t i = 0; i + 1 < n; ++i) {
        std::uint64_t h = seed + std::uint64_t(i) * 0x9E3779B97F4A7C15ull;
        h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
        h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
        h ^= h >> 31;
        const auto j = i + std::int64_t((unsigned __int128)h * std::uint64_t(n - i) >> 64);
        const std::int64_t t = out[i];
        out[i] = out[j];
        out[j] = t;
    }
}

}  // namespace dp
