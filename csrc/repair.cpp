// Output repair: the recall's verdict put back into the input image, one image
// per task. Integer arithmetic only, so the result is the same for any thread count.
#include <algorithm>
#include <vector>

#include "kernel.hpp"
#include "parallel.hpp"

namespace sifternet {

namespace {

using Index = std::int64_t;

SIFTERNET_INLINE std::uint8_t pixel_of(std::int8_t state) { return state > 0 ? 255 : 0; }

// Marks the flipped (recalled != binarised) values of one image; with `joint` a pixel
// flipped in any channel is marked in all. Returns whether anything was marked.
SIFTERNET_INLINE bool mark_holes(const std::int8_t* binarised, const std::int8_t* recalled,
                                 Index pixels, Index C, bool joint, std::uint8_t* holes) {
    std::uint8_t any_hole = 0;
    for (Index p = 0; p < pixels; ++p) {
        std::uint8_t any = 0;
        for (Index c = 0; c < C; ++c) {
            const std::uint8_t flipped = binarised[p * C + c] != recalled[p * C + c];
            holes[p * C + c] = flipped;
            any |= flipped;
        }
        if (joint) std::fill(holes + p * C, holes + (p + 1) * C, any);
        any_hole |= any;
    }
    return any_hole != 0;
}

// Window sums of one image: sums/counts (H+1, W+1, C) integral images of the non-hole
// values and of their number; then each hole takes the rounded mean of its window.
SIFTERNET_HOT void fill_image(const std::uint8_t* image, const std::uint8_t* holes,
                              const std::int8_t* recalled, const RepairShape& shape, Index size,
                              Index* sums, Index* counts, std::uint8_t* out) {
    const Index H = shape.H, W = shape.W, C = shape.C, row = (W + 1) * C;
    std::fill(sums, sums + row, 0);
    std::fill(counts, counts + row, 0);
    for (Index y = 0; y < H; ++y) {
        Index* s = sums + (y + 1) * row;
        Index* n = counts + (y + 1) * row;
        const Index* s_up = s - row;
        const Index* n_up = n - row;
        for (Index c = 0; c < C; ++c) s[c] = n[c] = 0;
        for (Index x = 0; x < W; ++x) {
            for (Index c = 0; c < C; ++c) {
                const Index k = (y * W + x) * C + c, at = (x + 1) * C + c, left = x * C + c;
                const Index valid = holes[k] ? 0 : 1;
                s[at] = s_up[at] + s[left] - s_up[left] + valid * image[k];
                n[at] = n_up[at] + n[left] - n_up[left] + valid;
            }
        }
    }
    const Index before = size / 2, after = size - 1 - size / 2;
    for (Index y = 0; y < H; ++y) {
        const Index y0 = std::max<Index>(0, y - before) * row;
        const Index y1 = std::min<Index>(H, y + after + 1) * row;
        for (Index x = 0; x < W; ++x) {
            const Index x0 = std::max<Index>(0, x - before) * C;
            const Index x1 = std::min<Index>(W, x + after + 1) * C;
            for (Index c = 0; c < C; ++c) {
                const Index k = (y * W + x) * C + c;
                if (!holes[k]) continue;
                const Index total = sums[y1 + x1 + c] - sums[y0 + x1 + c] - sums[y1 + x0 + c] +
                                    sums[y0 + x0 + c];
                const Index count = counts[y1 + x1 + c] - counts[y0 + x1 + c] -
                                    counts[y1 + x0 + c] + counts[y0 + x0 + c];
                out[k] = count > 0 ? static_cast<std::uint8_t>((total + count / 2) / count)
                                   : pixel_of(recalled[k]);
            }
        }
    }
}

// One thread's scratch: the holes (H, W, C), unless binary; for inpaint, the window sums
// and counts (H+1, W+1, C).
struct Scratch {
    std::vector<std::uint8_t> holes;
    std::vector<Index> sums, counts;
};

// One image (H, W, C) repaired into `result`. A function of its own, so that the sizes are
// locals: stores through uint8_t may alias anything reachable by reference.
void repair_image(const std::uint8_t* image, const std::int8_t* before, const std::int8_t* after,
                  const RepairShape& shape, const RepairConfig& config, Scratch& scratch,
                  std::uint8_t* result) {
    const Index pixels = shape.H * shape.W, values = pixels * shape.C;
    if (config.output == Output::binary) {
        for (Index k = 0; k < values; ++k) result[k] = pixel_of(after[k]);
        return;
    }
    std::uint8_t* holes = scratch.holes.data();
    std::copy(image, image + values, result);
    if (!mark_holes(before, after, pixels, shape.C, config.joint_channels, holes)) return;
    if (config.output == Output::restore) {
        for (Index k = 0; k < values; ++k) {
            if (holes[k]) result[k] = pixel_of(after[k]);
        }
    } else {
        fill_image(image, holes, after, shape, config.fill_size, scratch.sums.data(),
                   scratch.counts.data(), result);
    }
}

}  // namespace

void repair_images(const std::uint8_t* images, const std::int8_t* binarised,
                   const std::int8_t* recalled, const RepairShape& shape, const RepairConfig& config,
                   std::uint8_t* out) {
    if (shape.B == 0 || shape.H * shape.W * shape.C == 0) return;  // no pixel, no scratch
    const Index values = shape.H * shape.W * shape.C;
    const Index plane = (shape.H + 1) * (shape.W + 1) * shape.C;
    const auto hole_count = static_cast<std::size_t>(config.output == Output::binary ? 0 : values);
    const auto plane_count = static_cast<std::size_t>(config.output == Output::inpaint ? plane : 0);
    for_each_row(
        shape.B, {config.num_threads, values, Index{1} << 16, 0},
        [&] {
            return Scratch{std::vector<std::uint8_t>(hole_count), std::vector<Index>(plane_count),
                           std::vector<Index>(plane_count)};
        },
        [&](Scratch& scratch, Index b) {
            repair_image(images + b * values, binarised + b * values, recalled + b * values, shape,
                         config, scratch, out + b * values);
        });
}

}  // namespace sifternet
