// The memory guard: work whose buffers cannot fit is refused before anything is allocated.
// Under Linux overcommit a large allocation can succeed and the process still be killed when
// its pages are first touched, so checking up front is the only safe time.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace dp {

// What ensure_memory throws; the bindings turn it into Python's MemoryError.
struct MemoryShortage : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Bytes of memory the system can still give (MemAvailable on Linux); negative when unknown.
double available_memory();

// Throws MemoryShortage, naming `what` and the `fix`, when `bytes` exceed the available memory.
void ensure_memory(double bytes, const std::string& what, const std::string& fix);

// Elements of workspace a pass over `rows` rows of a net with widths `sizes` allocates (an upper
// bound): activations, plus for a backward pass the error buffers and the batch's gathered rows
// (inputs and targets), plus with `gradients` one gradient per parameter.
double workspace_elements(const std::vector<int>& sizes, std::int64_t rows, bool backward, bool gradients);

}  // namespace dp
