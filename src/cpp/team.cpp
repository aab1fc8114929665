#include "team.hpp"

#include <algorithm>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

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

namespace {
std::mutex g_shared_mutex;
// Never deleted at exit: its helpers sleep between calls, and joining threads while the
// interpreter shuts down is not safe; the process's end takes them.
TeamThreads* g_shared = nullptr;
std::once_flag g_fork_handler;
// A forked child has none of the parent's helpers: it starts a team of its own. If another
// thread held the mutex at the fork, the child's copy stays locked and the child runs its
// parts the other way.
void forget_shared_team() { g_shared = nullptr; }
}  // namespace

bool run_on_shared_team(int parts, TeamJob job) {
#if defined(__unix__) || defined(__APPLE__)
    std::call_once(g_fork_handler, [] { pthread_atfork(nullptr, nullptr, forget_shared_team); });
#endif
    std::unique_lock<std::mutex> lock(g_shared_mutex, std::try_to_lock);
    if (!lock.owns_lock()) return false;
    if (!g_shared || g_shared->size() != parts) {
        delete g_shared;
        g_shared = nullptr;
        g_shared = new TeamThreads(parts);
    }
    const int size = g_shared->size();  // smaller than parts when threads ran out
    g_shared->run([&](int p) {
        for (int q = p; q < parts; q += size) job(q);
    });
    return true;
}

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

void TeamThreads::run(TeamJob job) {
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
            if (IdleWork* idle = idle_.load(std::memory_order_acquire); idle && idle->work_one()) {
                spins = 0;
                continue;
            }
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
