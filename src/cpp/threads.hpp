// Threads: every decision and mechanism about threads in the C++ backend.
//
// - plan_threads() decides, from the layer sizes, the rows, the user's thread count and the
//   kind of pass, how many threads OpenBLAS runs, how many denseprop runs itself, and the rows
//   per chunk. Nothing else decides about threads.
// - BlasThreads holds OpenBLAS at the planned count for one pass; user_threads() and
//   set_user_threads() are the user's setting (dp.set_num_threads), read live from OpenBLAS, so
//   a limit set through threadpoolctl is never undone by a cached count.
// - TeamThreads is denseprop's one mechanism for its own threads: a calling thread plus helpers
//   that run the parts of one operation together. fit keeps a team for its epoch; predict uses
//   the team shared by calls (run_parts).
// - Products splits one matrix product among a team; SharedRowGather lets helpers copy the next
//   batch's rows while they would otherwise wait.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#include "gemm.hpp"

namespace dp {

// ---------------------------------------------------------------------------------------
// The plan

enum class Pass { predict, evaluate, gradients, train };

struct ThreadPlan {
    int blas_threads = 1;  // OpenBLAS's threads during the pass
    int team = 1;          // threads denseprop runs itself (1: none besides the caller)
    int chunk_rows = 1;    // rows per chunk of predict/evaluate/gradients; a batch's rows in train
};

// The plan of a pass over `rows` rows (in batches of `batch` rows for train) of a net with
// widths `sizes`, for a user who asked for `threads` threads.
ThreadPlan plan_threads(const std::vector<int>& sizes, std::int64_t rows, int batch, int threads, Pass pass);

// Whether a layer's forward and update products are split among a team by columns (else rows).
bool split_by_columns(int n_in, int n_out);

// ---------------------------------------------------------------------------------------
// OpenBLAS's threads

int user_threads();             // the user's count: OpenBLAS's own, unless a pass holds it
void set_user_threads(int n);   // takes effect now, or when the passes holding OpenBLAS end

// Sets OpenBLAS to `threads` for its lifetime (unless no pass holds it and that is the user's
// count), then to the most recent remaining pass's count, or back to the user's when none
// remains. OpenBLAS's count is the process's: a limit set from outside while a pass holds it is
// kept unless it equals the count denseprop last set, which it cannot be told from.
class BlasThreads {
  public:
    explicit BlasThreads(int threads);
    ~BlasThreads();
    BlasThreads(const BlasThreads&) = delete;
    BlasThreads& operator=(const BlasThreads&) = delete;

  private:
    int held_;
    bool active_ = false;
};

// Installs, once, the fork handler that lets a forked child forget its parent's threads and
// holds (the bindings call it at import).
void watch_forks();

// ---------------------------------------------------------------------------------------
// Teams

// A non-owning reference to a callable job(part), valid while the callable lives (one run()).
// Unlike std::function it never allocates: a lambda capturing a step's operands by reference
// outgrows std::function's small buffer, and a team runs several per batch.
class TeamJob {
  public:
    template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, TeamJob>>>
    TeamJob(F&& f)  // NOLINT: implicit, so that run([&](int p) { ... }) reads naturally
        : callable_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
          call_([](void* callable, int part) { (*static_cast<std::remove_reference_t<F>*>(callable))(part); }) {}
    void operator()(int part) const { call_(callable_, part); }

  private:
    void* callable_;
    void (*call_)(void*, int);
};

class TeamThreads {
  public:
    // Starts up to parts - 1 helpers; fewer when the system refuses threads (size() tells).
    explicit TeamThreads(int parts);
    ~TeamThreads();
    TeamThreads(const TeamThreads&) = delete;
    TeamThreads& operator=(const TeamThreads&) = delete;

    // Work the helpers take up while they wait between operations: each call does one short
    // unit (a few microseconds at most, as the next operation waits for it) and returns false
    // when there is nothing to do.
    class IdleWork {
      public:
        virtual bool work_one() = 0;

      protected:
        ~IdleWork() = default;
    };

    int size() const { return 1 + (int)helpers_.size(); }
    // From now on, waiting helpers call work->work_one() (null: none). The object must outlive
    // the team or the next run().
    void set_idle_work(IdleWork* work) { idle_.store(work, std::memory_order_release); }
    // Runs job(part) for every part in [0, size()) and returns when all have finished;
    // rethrows the first exception a part threw.
    void run(TeamJob job);

  private:
    void helper_loop(int part);

    std::vector<std::thread> helpers_;
    const TeamJob* job_ = nullptr;
    std::vector<std::exception_ptr> errors_;
    std::atomic<unsigned> generation_{0};
    std::atomic<int> finished_{0};
    std::atomic<int> sleepers_{0};
    std::atomic<bool> quit_{false};
    std::atomic<IdleWork*> idle_{nullptr};
    std::mutex mutex_;
    std::condition_variable wake_;
};

// Runs job(part) for every part in [0, parts): on the team shared by calls (started on first
// use, started again when `parts` changes, forgotten in a forked child), so that short passes
// do not pay for starting threads; on the calling thread alone, one part after another, for one
// part or when another call is using that team.
void run_parts(int parts, TeamJob job);

// ---------------------------------------------------------------------------------------
// Work shared by a team

// Matrix products of one pass: gemm on the calling thread, or, with a team, a large product
// split among the team's threads, one single-threaded BLAS call per part.
template <typename T>
class Products {
  public:
    Products() = default;
    explicit Products(TeamThreads* team) : team_(team && team->size() > 1 ? team : nullptr) {}
    // C (M, N) = alpha op(A) op(B) + beta C, as gemm; split by rows of C, or by blocks of 16
    // columns when by_columns.
    void gemm(bool ta, bool tb, int M, int N, int K, T alpha, const T* A, int lda, const T* B, int ldb, T beta,
              T* C, int ldc, bool by_columns = false) const;

  private:
    TeamThreads* team_ = nullptr;
};

// dst (rows, cols) = the rows idx[0 .. rows) of src (n, cols).
template <typename T>
void gather_rows(const T* src, int cols, const std::int64_t* idx, int rows, T* dst);

// A row gather that several threads share by claiming one row at a time: the calling thread
// through claim_all(), a team's helpers as idle work between the operations of a step, so that
// the next batch's rows arrive while the calling thread runs element-wise passes alone.
template <typename T>
class SharedRowGather final : public TeamThreads::IdleWork {
  public:
    // Offers rows [0, rows) of dst (rows, cols) = src[idx] for claiming. Every row offered
    // before must have been copied: call after a team run in which each part claimed all.
    void offer(const T* src, int cols, const std::int64_t* idx, int rows, T* dst) {
        src_ = src;
        cols_ = cols;
        idx_ = idx;
        dst_ = dst;
        // Rows offered in the high half, rows claimed in the low half: one atomic word, so a
        // claim that succeeds has seen the fields written above.
        state_.store(std::uint64_t(rows) << 32, std::memory_order_release);
    }
    bool work_one() override {
        std::uint64_t v = state_.load(std::memory_order_acquire);
        for (;;) {
            const std::uint32_t next = std::uint32_t(v), rows = std::uint32_t(v >> 32);
            if (next >= rows) return false;
            if (state_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
                gather_rows(src_, cols_, idx_ + next, 1, dst_ + std::size_t(next) * cols_);
                return true;
            }
        }
    }
    void claim_all() {
        while (work_one()) {
        }
    }

  private:
    std::atomic<std::uint64_t> state_{0};
    const T* src_ = nullptr;
    int cols_ = 0;
    const std::int64_t* idx_ = nullptr;
    T* dst_ = nullptr;
};

}  // namespace dp
