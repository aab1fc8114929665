// A small team of threads that run the parts of one operation together: part 0 on the
// calling thread, parts 1..size()-1 on helpers started by the constructor.
#pragma once

#include <atomic>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace dp {

// A non-owning reference to a callable job(part), valid while the callable lives (one
// run()). Unlike std::function it never allocates: a lambda capturing a step's operands by
// reference outgrows std::function's small buffer, and the team runs several per batch.
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
    // From now on, helpers waiting for an operation call work->work_one() (null: none). The
    // object must outlive the team or the next run().
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

// Runs job(part) for every part in [0, parts) on a team kept from one call to the next
// (started on first use, started again when `parts` changes, forgotten in a forked child),
// so that short passes do not pay for starting threads. Returns false, having run nothing,
// when another call is using the team; the caller then runs the parts some other way.
bool run_on_shared_team(int parts, TeamJob job);

// Operations run by teams in this process so far (for tests: did a team share the work?).
long team_operations();

}  // namespace dp
