// Threading and instruction-set helpers shared by the kernel's translation units.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <optional>

#ifdef _OPENMP
#include <omp.h>
#endif

// Hot loops get an x86-64-v3 clone (AVX2, POPCNT, BMI2, FMA) chosen at load time by CPU
// features (GCC function multi-versioning on
// x86-64 Linux); the default clone runs on any x86-64. Results are identical: the hot
// loops are integer-only or sum in a fixed order.
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(SIFTERNET_NO_CLONES)
#define SIFTERNET_HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define SIFTERNET_HOT
#endif

// Forces a helper into its caller, so that it is compiled for the caller's clone.
#if defined(__GNUC__)
#define SIFTERNET_INLINE inline __attribute__((always_inline))
#define SIFTERNET_LAMBDA_INLINE __attribute__((always_inline))
#else
#define SIFTERNET_INLINE inline
#define SIFTERNET_LAMBDA_INLINE
#endif

namespace sifternet {

// The most threads a call may ask for (sifternet._threads.MAX_THREADS).
constexpr std::int64_t MAX_TEAM = 1024;

// GNU OpenMP's thread pool does not survive fork(): in a child forked after the parent ran
// a parallel region, the next region waits forever for the parent's threads. team_size()
// is the team for `requested` threads: 1 in such a child (results never depend on the
// thread count), else `requested` (at most MAX_TEAM), noting that a team was started.
// install_fork_handler() registers the pthread_atfork handler that tells the child; the
// module does it once when it loads. Every parallel region takes its team from here.
int team_size(std::int64_t requested);
void install_fork_handler();

// A zeroed scratch array of one thread, on cache lines of its own (no false sharing).
// Movable; the array itself never moves.
template <class T>
class ThreadScratch {
   public:
    explicit ThreadScratch(std::size_t count)
        : data_(static_cast<T*>(std::aligned_alloc(64, bytes(count)))) {
        if (!data_) throw std::bad_alloc();
        std::memset(static_cast<void*>(data_.get()), 0, bytes(count));
    }
    T* data() const { return data_.get(); }

   private:
    static std::size_t bytes(std::size_t count) { return (count * sizeof(T) + 63) / 64 * 64 + 64; }
    struct Free {
        void operator()(T* p) const { std::free(p); }
    };
    std::unique_ptr<T, Free> data_;
};

// How a batch of rows is shared among threads.
struct RowSchedule {
    int num_threads;            // the most threads to use
    std::int64_t row_work;      // work units of one row
    std::int64_t serial_below;  // one thread while the batch is below this many units
                                // (starting threads would cost more than the work)
    std::int64_t chunk;         // rows a thread takes at a time; 0: one even share each
};

// Runs body(scratch, row) for every row in [0, rows): serially while the batch is small,
// else on up to num_threads threads (at most one per row). Each thread builds its own
// scratch once, by make_scratch(), and frees it on leaving. The first exception thrown
// by a factory or a body is kept, the rows not yet started are skipped, and it is
// rethrown after the parallel region: no exception may leave an OpenMP region. Each row
// must depend on its own inputs only, so that any thread count gives the same result.
template <class MakeScratch, class Body>
void for_each_row(std::int64_t rows, const RowSchedule& plan, MakeScratch make_scratch,
                  Body body) {
    // Serial while rows * row_work < serial_below (written so that it cannot overflow).
    const bool small =
        rows < 1 || (plan.serial_below > 0 && plan.row_work <= (plan.serial_below - 1) / rows);
    const int threads = small ? 1 : team_size(std::min<std::int64_t>(plan.num_threads, rows));
    [[maybe_unused]] const std::int64_t chunk =  // unused by a serial build
        plan.chunk > 0 ? plan.chunk : std::max<std::int64_t>(1, (rows + threads - 1) / threads);
    std::atomic<bool> failed{false};
    std::exception_ptr error;  // written only by the thread that set `failed`
    auto keep_first = [&] {
        if (!failed.exchange(true)) error = std::current_exception();
    };
#pragma omp parallel num_threads(threads)
    {
        std::optional<decltype(make_scratch())> scratch;
        try {
            scratch.emplace(make_scratch());
        } catch (...) {
            keep_first();  // this thread still has to reach the work-sharing loop
        }
#pragma omp for schedule(dynamic, chunk)
        for (std::int64_t row = 0; row < rows; ++row) {
            if (!scratch || failed.load(std::memory_order_relaxed)) continue;
            try {
                body(*scratch, row);
            } catch (...) {
                keep_first();
            }
        }
    }
    if (error) std::rethrow_exception(error);
}

}  // namespace sifternet
