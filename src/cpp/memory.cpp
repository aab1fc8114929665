#include "memory.hpp"

#include <algorithm>
#include <cstdio>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

#include "tuning.hpp"

namespace dp {

double available_memory() {
    if (FILE* f = std::fopen("/proc/meminfo", "r")) {
        char line[256];
        long long kb = -1;
        while (std::fgets(line, sizeof line, f))
            if (std::sscanf(line, "MemAvailable: %lld kB", &kb) == 1) break;
        std::fclose(f);
        if (kb >= 0) return double(kb) * 1024.0;
    }
#if defined(_SC_AVPHYS_PAGES) && defined(_SC_PAGESIZE)
    const long pages = sysconf(_SC_AVPHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    if (pages > 0 && size > 0) return double(pages) * double(size);
#endif
    return -1.0;
}

void ensure_memory(double bytes, const std::string& what, const std::string& fix) {
    if (bytes < tuning::kCheckedBytes) return;
    const double avail = available_memory();
    if (avail >= 0 && bytes > avail)
        throw MemoryShortage(what + " needs " + std::to_string((long long)(bytes / (1 << 20))) + " MiB but only " +
                             std::to_string((long long)(avail / (1 << 20))) + " MiB of memory is available; " + fix);
}

double workspace_elements(const std::vector<int>& sizes, std::int64_t rows, bool backward, bool gradients) {
    double width = 0, widest = double(sizes[0]), params = 0;
    for (std::size_t l = 1; l < sizes.size(); ++l) {
        width += 2.0 * sizes[l];
        widest = std::max(widest, double(sizes[l]));
        params += double(sizes[l - 1]) * sizes[l] + sizes[l];
    }
    double total = double(rows) * (width + (backward ? 2.0 * widest + sizes[0] + sizes.back() : 0.0));
    if (gradients) total += params;
    return total;
}

}  // namespace dp
