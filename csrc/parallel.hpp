// Threading and instruction-set helpers shared by the kernel's translation units.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <new>

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

// Threads for a batch of `rows` of `work` units each: one while the whole batch is below
// `serial_below` units (starting threads would cost more than the work), else up to
// `num_threads`, at most one per row.
inline int team_size(std::int64_t rows, std::int64_t work, std::int64_t serial_below, int num_threads) {
    if (rows * work < serial_below) return 1;
    return static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(num_threads, rows)));
}

// A zeroed scratch array of one thread, on cache lines of its own (no false sharing).
template <class T>
class ThreadScratch {
   public:
    explicit ThreadScratch(std::size_t count) {
        const std::size_t bytes = (count * sizeof(T) + 63) / 64 * 64 + 64;
        data_ = static_cast<T*>(std::aligned_alloc(64, bytes));
        if (data_ == nullptr) throw std::bad_alloc();
        std::memset(static_cast<void*>(data_), 0, bytes);
    }
    ThreadScratch(const ThreadScratch&) = delete;
    ThreadScratch& operator=(const ThreadScratch&) = delete;
    ~ThreadScratch() { std::free(data_); }
    T* data() const { return data_; }

   private:
    T* data_;
};

// Keeps the first exception thrown inside a parallel region, to rethrow outside it.
class FirstError {
   public:
    void capture() {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!error_) error_ = std::current_exception();
    }
    void rethrow() const {
        if (error_) std::rethrow_exception(error_);
    }

   private:
    std::mutex mutex_;
    std::exception_ptr error_;
};

}  // namespace sifternet
