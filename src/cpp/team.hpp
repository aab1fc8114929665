// A small team of threads that run the parts of one operation together: part 0 on the
// calling thread, parts 1..size()-1 on helpers started by the constructor.
#pragma once

#include <atomic>
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace dp {

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
    void run(const std::function<void(int)>& job);

  private:
    void helper_loop(int part);

    std::vector<std::thread> helpers_;
    const std::function<void(int)>* job_ = nullptr;
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
bool run_on_shared_team(int parts, const std::function<void(int)>& job);

// Operations run by teams in this process so far (for tests: did a team share the work?).
long team_operations();

}  // namespace dp
