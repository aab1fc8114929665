// Threads: the plan, OpenBLAS's thread count, teams; see threads.hpp.
#include "threads.hpp"

#include <cblas.h>

#include <algorithm>
#include <cstring>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

#include "tuning.hpp"

namespace dp {

// ---------------------------------------------------------------------------------------
// The plan

namespace {

long largest_weights(const std::vector<int>& sizes) {
    long largest = 1;
    for (std::size_t l = 1; l < sizes.size(); ++l) largest = std::max(largest, long(sizes[l - 1]) * sizes[l]);
    return largest;
}

// Rows per chunk of predict/evaluate/gradients: enough to keep products efficient, few enough
// that the workspace stays bounded whatever the number of rows.
long chunk_rows(const std::vector<int>& sizes, std::int64_t n, int threads) {
    using namespace tuning;
    long width = 0, params = 0;
    for (std::size_t l = 1; l < sizes.size(); ++l) {
        width += 2L * sizes[l];
        params += long(sizes[l - 1]) * sizes[l];
    }
    width = std::max(width, 1L);
    const long elements = threads > 1 ? kChunkElementsN : kChunkElements1;
    long rows = std::clamp(elements / width, kMinChunk, kMaxChunk);
    const long largest = largest_weights(sizes);
    if (kSmallProduct / largest >= 32) rows = std::min(rows, kSmallProduct / largest);
    if (largest >= kWideWeights) rows = std::max(rows, std::min(kWideChunk, params / width));
    return std::max<std::int64_t>(1, std::min<std::int64_t>(rows, n));
}

}  // namespace

bool split_by_columns(int n_in, int n_out) { return long(n_in) * n_out >= tuning::kSplitByColumns; }

ThreadPlan plan_threads(const std::vector<int>& sizes, std::int64_t rows, int batch, int threads, Pass pass) {
    using namespace tuning;
    ThreadPlan plan;
    threads = std::max(threads, 1);
    double macs = 0;  // of one row through the whole net
    for (std::size_t l = 1; l < sizes.size(); ++l) macs += double(sizes[l - 1]) * sizes[l];
    const double largest = double(largest_weights(sizes));
    if (pass == Pass::train) {
        plan.chunk_rows = (int)std::max<std::int64_t>(1, std::min<std::int64_t>(batch, rows));
        const bool hold = threads > 1 && plan.chunk_rows * largest < kTeamTrainedProduct;
        plan.blas_threads = hold ? 1 : threads;
        plan.team = hold && plan.chunk_rows * largest >= kTeamProduct ? threads : 1;
        return plan;
    }
    plan.chunk_rows = (int)chunk_rows(sizes, rows, threads);
    const bool hold = threads > 1 && plan.chunk_rows * largest < kThreadedProduct;
    plan.blas_threads = hold ? 1 : threads;
    if (pass == Pass::predict && hold && rows * macs >= kParallelForwardWork) {
        const std::int64_t chunks = rows / plan.chunk_rows + (rows % plan.chunk_rows != 0);
        plan.team = (int)std::min<std::int64_t>(threads, chunks);
    }
    return plan;
}

// ---------------------------------------------------------------------------------------
// OpenBLAS's threads
//
// OpenBLAS has one thread count for the whole process. While passes hold it, the user's count
// is kept here, and the count denseprop last set tells a change made from outside (threadpoolctl
// calls OpenBLAS directly) from denseprop's own: a different live count is the user's new one.

namespace {

struct BlasState {
    std::mutex mutex;
    std::vector<int> holds;   // the counts the running passes hold, oldest first
    int user = 1;             // the user's count while holds is not empty
    int last_set = 0;         // the count denseprop last gave OpenBLAS
    bool restore = false;     // a forked child must give OpenBLAS the user's count back
};
// Never deleted: a forked child replaces it (the parent's mutex may have been held at the fork).
BlasState* g_blas = new BlasState;

// The user's count: OpenBLAS's own, unless passes hold it and nobody changed it since.
int user_count_locked(BlasState& b) {
    const int now = scipy_openblas_get_num_threads();
    if (b.restore) {
        b.restore = false;
        scipy_openblas_set_num_threads(b.user);
        return b.user;
    }
    if (b.holds.empty()) return now;
    if (now != b.last_set) b.user = now;  // changed from outside during a pass
    return b.user;
}

void set_locked(BlasState& b, int n) {
    scipy_openblas_set_num_threads(n);
    b.last_set = n;
}

void forget_blas_holds() {
    BlasState* fresh = new BlasState;
    fresh->user = g_blas->user;
    fresh->restore = !g_blas->holds.empty();  // the child has none of the parent's passes
    g_blas = fresh;
}

}  // namespace

int user_threads() {
    std::lock_guard<std::mutex> lock(g_blas->mutex);
    return user_count_locked(*g_blas);
}

void set_user_threads(int n) {
    std::lock_guard<std::mutex> lock(g_blas->mutex);
    BlasState& b = *g_blas;
    user_count_locked(b);
    b.user = n;
    if (b.holds.empty()) scipy_openblas_set_num_threads(n);
}

BlasThreads::BlasThreads(int threads) : held_(threads) {
    std::lock_guard<std::mutex> lock(g_blas->mutex);
    BlasState& b = *g_blas;
    const int user = user_count_locked(b);
    if (b.holds.empty() && threads == user) return;  // nothing to hold
    if (b.holds.empty()) b.user = user;
    b.holds.push_back(threads);
    if (scipy_openblas_get_num_threads() != threads) set_locked(b, threads);
    else b.last_set = threads;
    active_ = true;
}

BlasThreads::~BlasThreads() {
    if (!active_) return;
    std::lock_guard<std::mutex> lock(g_blas->mutex);
    BlasState& b = *g_blas;
    user_count_locked(b);
    const auto it = std::find(b.holds.begin(), b.holds.end(), held_);
    if (it != b.holds.end()) b.holds.erase(it);  // absent after a fork: the child has its own state
    // The most recent remaining hold, or the user's count when none remains.
    set_locked(b, b.holds.empty() ? b.user : b.holds.back());
}

// ---------------------------------------------------------------------------------------
// Teams

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

std::mutex g_shared_mutex;
// Never deleted at exit: its helpers sleep between calls, and joining threads while the
// interpreter shuts down is not safe; the process's end takes them.
TeamThreads* g_shared = nullptr;
std::once_flag g_fork_handler;
// A forked child has none of the parent's helpers or passes: it starts a team of its own and
// gives OpenBLAS the user's count back. If another thread held the team's mutex at the fork, the
// child's copy stays locked and the child runs its parts on its own thread.
void forget_parent_threads() {
    g_shared = nullptr;
    forget_blas_holds();
}

}  // namespace

void watch_forks() {
#if defined(__unix__) || defined(__APPLE__)
    std::call_once(g_fork_handler, [] { pthread_atfork(nullptr, nullptr, forget_parent_threads); });
#endif
}

void run_parts(int parts, TeamJob job) {
    if (parts <= 1) {  // no team: the shared one stays free for a call that has parts to share
        for (int p = 0; p < parts; ++p) job(p);
        return;
    }
    std::unique_lock<std::mutex> lock(g_shared_mutex, std::try_to_lock);
    if (!lock.owns_lock()) {
        for (int p = 0; p < parts; ++p) job(p);
        return;
    }
    if (!g_shared || g_shared->size() != parts) {
        delete g_shared;
        g_shared = nullptr;
        g_shared = new TeamThreads(parts);
    }
    const int size = g_shared->size();  // smaller than parts when threads ran out
    g_shared->run([&](int p) {
        for (int q = p; q < parts; q += size) job(q);
    });
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
            if (++spins < tuning::kSpinsBeforeSleep) {
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

// ---------------------------------------------------------------------------------------
// Work shared by a team

template <typename T>
void Products<T>::gemm(bool ta, bool tb, int M, int N, int K, T alpha, const T* A, int lda, const T* B, int ldb,
                       T beta, T* C, int ldc, bool by_columns) const {
    if (!team_ || double(M) * N * K < tuning::kTeamProduct) {
        dp::gemm<T>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    const int parts = team_->size();
    // Part bounds in 64 bits: N * p overflows int for a wide layer and a large team.
    auto bound = [parts](int n, int p) { return int(std::int64_t(n) * p / parts); };
    if (by_columns && N >= 16 * parts) {  // blocks of 16 columns: whole cache lines of C and B per thread
        team_->run([&](int p) {
            const int n0 = bound(N, p) & ~15, n1 = p + 1 == parts ? N : bound(N, p + 1) & ~15;
            if (n0 < n1)
                dp::gemm<T>(ta, tb, M, n1 - n0, K, alpha, A, lda, tb ? B + (std::size_t)n0 * ldb : B + n0, ldb, beta,
                            C + n0, ldc);
        });
        return;
    }
    team_->run([&](int p) {
        const int m0 = bound(M, p), m1 = bound(M, p + 1);
        if (m0 < m1)
            dp::gemm<T>(ta, tb, m1 - m0, N, K, alpha, ta ? A + m0 : A + (std::size_t)m0 * lda, lda, B, ldb, beta,
                        C + (std::size_t)m0 * ldc, ldc);
    });
}

template <typename T>
void gather_rows(const T* src, int cols, const std::int64_t* idx, int rows, T* dst) {
    if (cols <= tuning::kGatherLoopCols) {  // a memcpy call costs more than a few elements
        for (int r = 0; r < rows; ++r) {
            const T* s = src + (std::size_t)idx[r] * cols;
            T* d = dst + (std::size_t)r * cols;
            for (int j = 0; j < cols; ++j) d[j] = s[j];
        }
        return;
    }
    for (int r = 0; r < rows; ++r)
        std::memcpy(dst + (std::size_t)r * cols, src + (std::size_t)idx[r] * cols, sizeof(T) * cols);
}

template class Products<float>;
template class Products<double>;
template void gather_rows<float>(const float*, int, const std::int64_t*, int, float*);
template void gather_rows<double>(const double*, int, const std::int64_t*, int, double*);

}  // namespace dp
