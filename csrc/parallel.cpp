// Thread teams that survive fork (parallel.hpp, team_size).
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>

#include "parallel.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define SIFTERNET_HAS_FORK 1
#endif

namespace sifternet {

namespace {

std::atomic<bool> went_parallel{false};  // this process has started a team of 2 or more
std::atomic<bool> forked_serial{false};  // a child forked after that: one thread only

#ifdef SIFTERNET_HAS_FORK
// Runs in the child, on the forking thread's copy, before fork() returns there.
void after_fork_in_child() {
    if (went_parallel.load(std::memory_order_relaxed)) {
        forked_serial.store(true, std::memory_order_relaxed);
    }
}
#endif

}  // namespace

void install_fork_handler() {
    static std::once_flag once;
#ifdef SIFTERNET_HAS_FORK
    std::call_once(once, [] { pthread_atfork(nullptr, nullptr, after_fork_in_child); });
#else
    (void)once;  // no fork here
#endif
}

int team_size(std::int64_t requested) {
    if (requested <= 1 || forked_serial.load(std::memory_order_relaxed)) return 1;
    went_parallel.store(true, std::memory_order_relaxed);
    return static_cast<int>(std::min<std::int64_t>(requested, MAX_TEAM));
}

}  // namespace sifternet
