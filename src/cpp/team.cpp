#include "team.hpp"

#include <algorithm>

namespace dp {

namespace {
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}
// Spins before a helper sleeps: the operations of one training step follow each other
// within microseconds, and waking a sleeping thread costs several of them.
constexpr int kSpinsBeforeSleep = 20000;
std::atomic<long> g_operations{0};
}  // namespace

long team_operations() { return g_operations.load(std::memory_order_relaxed); }

TeamThreads::TeamThreads(int parts) {
    errors_.resize(std::max(parts, 1));
    try {
        for (int p = 1; p < parts; ++p) helpers_.emplace_back(&TeamThreads::helper_loop, this, p);
    } catch (...) {
        // Fewer threads than asked for: the team is smaller, nothing else changes.
    }
}

TeamThreads::~TeamThreads() {
    quit_.store(true);
    generation_.fetch_add(1);
    {
        std::lock_guard<std::mutex> lock(mutex_);
        wake_.notify_all();
    }
    for (std::thread& t : helpers_) t.join();
}

void TeamThreads::run(const std::function<void(int)>& job) {
    g_operations.fetch_add(1, std::memory_order_relaxed);
    job_ = &job;
    finished_.store(0, std::memory_order_relaxed);
    generation_.fetch_add(1);  // seq_cst: pairs with sleepers_ in helper_loop
    if (sleepers_.load() > 0) {
        std::lock_guard<std::mutex> lock(mutex_);
        wake_.notify_all();
    }
    try {
        job(0);
    } catch (...) {
        errors_[0] = std::current_exception();
    }
    const int helpers = (int)helpers_.size();
    while (finished_.load(std::memory_order_acquire) < helpers) cpu_relax();
    job_ = nullptr;
    for (std::exception_ptr& e : errors_)
        if (e) {
            std::exception_ptr first = e;
            for (std::exception_ptr& f : errors_) f = nullptr;
            std::rethrow_exception(first);
        }
}

void TeamThreads::helper_loop(int part) {
    // The generation at construction, not the current one: a helper may start only after
    // the first run() has begun, and must still take its part.
    unsigned seen = 0;
    for (;;) {
        int spins = 0;
        while (generation_.load(std::memory_order_acquire) == seen) {
            if (++spins < kSpinsBeforeSleep) {
                cpu_relax();
                continue;
            }
            std::unique_lock<std::mutex> lock(mutex_);
            sleepers_.fetch_add(1);
            wake_.wait(lock, [&] { return generation_.load() != seen; });
            sleepers_.fetch_sub(1);
        }
        seen = generation_.load(std::memory_order_acquire);
        if (quit_.load()) return;
        try {
            (*job_)(part);
        } catch (...) {
            errors_[part] = std::current_exception();
        }
        finished_.fetch_add(1, std::memory_order_acq_rel);
    }
}

}  // namespace dp
