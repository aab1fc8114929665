// Shared by the C++ micro-benchmarks in this folder.
#pragma once
#include <algorithm>
#include <chrono>

// Best of 9 timed blocks of `reps` calls of f, in microseconds per call: on a shared machine
// interference only ever adds time, so the fastest block is the closest to the true cost.
template <class F>
double best_us(F f, int reps) {
    double best = 1e30;
    for (int block = 0; block < 9; ++block) {
        const auto start = std::chrono::steady_clock::now();
        for (int i = 0; i < reps; ++i) f();
        const auto stop = std::chrono::steady_clock::now();
        best = std::min(best, std::chrono::duration<double>(stop - start).count() / reps);
    }
    return best * 1e6;
}
