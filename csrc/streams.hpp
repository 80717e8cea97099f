// Counter-based random streams of docs/method.md: one per (image, channel),
// independent of thread count, batch split and machine.
#pragma once
#include <cstdint>

#include "parallel.hpp"

namespace sifternet {

// SplitMix64's output for state z (increment included).
SIFTERNET_INLINE std::uint64_t mix(std::uint64_t z) {
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// Key of the stream owned by channel c (of C) of the image with global index g.
SIFTERNET_INLINE std::uint64_t stream_key(std::uint64_t seed, std::uint64_t g, std::uint64_t channels,
                                std::uint64_t c) {
    return mix(mix(seed) ^ (g * channels + c));
}

// r_t, the t-th draw of a stream.
SIFTERNET_INLINE std::uint64_t draw(std::uint64_t key, std::uint64_t t) { return mix(key + t); }

// A uniform integer in [0, n) from one draw (multiply-shift on the high 32 bits).
SIFTERNET_INLINE std::uint64_t below(std::uint64_t r, std::uint64_t n) { return ((r >> 32) * n) >> 32; }

}  // namespace sifternet
