// Threading and instruction-set helpers shared by the kernel's translation units.
#pragma once
#include <exception>
#include <mutex>

#ifdef _OPENMP
#include <omp.h>
#endif

// Hot loops get an AVX2 clone chosen at load time (GCC function multi-versioning on
// x86-64 Linux); the default clone runs on any x86-64. Results are identical: the hot
// loops are integer-only or sum in a fixed order.
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(SIFTERNET_NO_CLONES)
#define SIFTERNET_HOT __attribute__((target_clones("arch=haswell", "default")))
#else
#define SIFTERNET_HOT
#endif

namespace sifternet {

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
