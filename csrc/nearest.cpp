// Nearest-seed repair (docs/method.md, Nearest-seed repair): each image is judged by the
// seeds that look most like it. One image per task, integer arithmetic only (the gate's
// single product is a double of integers), so any thread count gives the same result.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <utility>
#include <vector>

#include "kernel.hpp"
#include "parallel.hpp"

namespace sifternet {

namespace {

using Index = std::int64_t;

// One thread's scratch, sized for one image.
struct NearestScratch {
    std::vector<std::int32_t> thumb;                        // (T)
    std::vector<std::pair<std::int64_t, Index>> distance;  // (P): (squared distance, seed)
    std::vector<Index> memories;                            // (k) seed indices, nearest first
    std::vector<std::int8_t> states;                        // (C, N) the image at one level
    std::vector<std::uint64_t> bits;                        // (C, words) the same, packed
    std::vector<std::uint8_t> planar;                       // (C, N) the image
    std::vector<std::int32_t> overlap;                      // (k)
    std::vector<std::int32_t> field;                        // (N)
    std::vector<std::uint8_t> holes, evidence, odd, known, inside;  // (N) each
    std::vector<Index> blob, stack, ready, waiting;         // pixel lists
    std::vector<std::int64_t> sums;                         // (N C) fill values of one round
};

// The k seeds nearest to the image by squared distance of thumbnails; ties go to the
// lower seed index.
SIFTERNET_HOT void choose_memories(const std::int32_t* thumb, const NearestSeeds& seeds, Index k,
                                   NearestScratch& s) {
    for (Index j = 0; j < seeds.P; ++j) {
        const std::int32_t* t = seeds.thumbs + j * seeds.T;
        std::int64_t d = 0;
        for (Index i = 0; i < seeds.T; ++i) {
            const std::int32_t diff = thumb[i] - t[i];  // block sums are below 2^31 (checked)
            d += std::int64_t{diff} * diff;
        }
        s.distance[static_cast<std::size_t>(j)] = {d, j};
    }
    // (distance, seed) pairs are distinct, so the k smallest and their order are unique.
    std::nth_element(s.distance.begin(), s.distance.begin() + (k - 1), s.distance.end());
    std::sort(s.distance.begin(), s.distance.begin() + k);
    for (Index j = 0; j < k; ++j) s.memories[static_cast<std::size_t>(j)] = s.distance[j].second;
}

// One level of the thermometer: per channel, the memories' one-step Hebbian field
// h_p = sum_j m_j x_jp with overlaps m_j = x_j . s = N - 2 popcount(x_j XOR s) over packed
// bits; a pixel is a hole when -s_p h_p > agreement * sum_j |m_j| in any channel. The
// caller checks that 2 k N fits int32.
SIFTERNET_HOT void gate_level(const NearestSeeds& seeds,
                              const RepairShape& shape, Index k, Index level, double agreement,
                              NearestScratch& s) {
    const Index N = shape.H * shape.W, C = shape.C, words = seeds.words;
    const std::uint8_t cut = seeds.cuts[seeds.G + level];
    const std::uint8_t* planar = s.planar.data();  // the image (C, N)
    std::int8_t* states = s.states.data();
    std::uint64_t* bits = s.bits.data();
    for (Index v = 0; v < C * N; ++v) states[v] = planar[v] > cut ? 1 : -1;
    for (Index c = 0; c < C; ++c) {
        for (Index w = 0; w < words; ++w) {
            const Index first = w * 64, count = std::min<Index>(64, N - first);
            const std::uint8_t* v = planar + c * N + first;
            std::uint64_t word = 0;
            for (Index b = 0; b < count; ++b) word |= std::uint64_t{v[b] > cut} << b;
            bits[c * words + w] = word;
        }
    }
    std::int32_t* field = s.field.data();
    std::uint8_t* holes = s.holes.data();
    for (Index c = 0; c < C; ++c) {
        const std::int8_t* state = states + c * N;
        const std::uint64_t* mine = bits + c * words;
        std::int64_t mass = 0;
        for (Index j = 0; j < k; ++j) {
            const Index plane = (s.memories[static_cast<std::size_t>(j)] * seeds.levels + level) * C + c;
            const std::uint64_t* theirs = seeds.bits + plane * words;
            Index differ = 0;
            for (Index w = 0; w < words; ++w) differ += __builtin_popcountll(mine[w] ^ theirs[w]);
            s.overlap[static_cast<std::size_t>(j)] = static_cast<std::int32_t>(N - 2 * differ);
            mass += std::abs(N - 2 * differ);
        }
        // field_p = sum_j m_j [x_jp = +1], from the packed bits 32 pixels at a time; then
        // h_p = 2 field_p - sum_j m_j.
        // Two memories per pass over the field (a lone last one pairs with a zero overlap).
        std::fill(field, field + N, 0);
        std::int32_t total = 0;
        for (Index j = 0; j < k; j += 2) {
            const auto plane = [&](Index i) {
                return seeds.bits + ((s.memories[static_cast<std::size_t>(i)] * seeds.levels + level) * C + c) * words;
            };
            const std::uint64_t* one = plane(j);
            const std::uint64_t* two = j + 1 < k ? plane(j + 1) : one;
            const std::int32_t m1 = s.overlap[static_cast<std::size_t>(j)];
            const std::int32_t m2 = j + 1 < k ? s.overlap[static_cast<std::size_t>(j + 1)] : 0;
            total += m1 + m2;
            for (Index first = 0; first < N; first += 32) {
                const int shift = first & 32 ? 32 : 0;
                const auto half1 = static_cast<std::uint32_t>(one[first >> 6] >> shift);
                const auto half2 = static_cast<std::uint32_t>(two[first >> 6] >> shift);
                std::int32_t* at = field + first;
                const Index count = std::min<Index>(32, N - first);
                if (count == 32) {
                    for (std::uint32_t b = 0; b < 32; ++b) {
                        at[b] += (m1 & -static_cast<std::int32_t>((half1 >> b) & 1U)) +
                                 (m2 & -static_cast<std::int32_t>((half2 >> b) & 1U));
                    }
                } else {
                    for (Index b = 0; b < count; ++b) {
                        at[b] += (m1 & -static_cast<std::int32_t>((half1 >> b) & 1U)) +
                                 (m2 & -static_cast<std::int32_t>((half2 >> b) & 1U));
                    }
                }
            }
        }
        // An integer exceeds agreement * mass exactly when it exceeds its floor.
        const auto bound = static_cast<std::int32_t>(std::floor(agreement * static_cast<double>(mass)));
        for (Index p = 0; p < N; ++p)
            holes[p] |= static_cast<std::uint8_t>(-state[p] * (2 * field[p] - total) > bound);
    }
}

// The all-seed gate at all-seed level g: every seed votes with the same weight, a pixel
// is a hole when -s_p v_p > agreement * P in any channel, v_p = sum_j x_jp (the seeds'
// votes, counted once at fit time).
SIFTERNET_HOT void gate_all(const NearestSeeds& seeds, const RepairShape& shape, Index g, double agreement,
                            NearestScratch& s) {
    const Index N = shape.H * shape.W, C = shape.C;
    const std::uint8_t cut = seeds.cuts[g];
    const auto bound = static_cast<std::int64_t>(std::floor(agreement * static_cast<double>(seeds.P)));
    std::uint8_t* holes = s.holes.data();
    for (Index c = 0; c < C; ++c) {
        const std::uint8_t* value = s.planar.data() + c * N;  // the image's channel c
        const std::int32_t* votes = seeds.votes + (g * C + c) * N;
        for (Index p = 0; p < N; ++p) {  // -s_p v_p with s_p = +1 above the cut, else -1
            const std::int64_t against = value[p] > cut ? -std::int64_t{votes[p]} : votes[p];
            holes[p] |= static_cast<std::uint8_t>(against > bound);
        }
    }
}

// Pixels that no memory supports: a memory supports a pixel when, in every channel, the
// value lies in the memory's range around it (seeds.low, seeds.high: planar, tolerance
// included).
SIFTERNET_HOT void mark_unsupported(const NearestSeeds& seeds, const RepairShape& shape, Index k,
                                    NearestScratch& s) {
    const Index N = shape.H * shape.W, C = shape.C;
    const std::uint8_t* planar = s.planar.data();  // the image (C, N)
    std::uint8_t* odd = s.odd.data();
    std::uint8_t* inside = s.inside.data();
    std::fill(odd, odd + N, 1);
    for (Index j = 0; j < k; ++j) {
        const Index at = s.memories[static_cast<std::size_t>(j)] * C * N;
        std::fill(inside, inside + N, 1);
        for (Index c = 0; c < C; ++c) {
            const std::uint8_t* low = seeds.low + at + c * N;
            const std::uint8_t* high = seeds.high + at + c * N;
            const std::uint8_t* v = planar + c * N;
            for (Index p = 0; p < N; ++p) inside[p] &= (v[p] >= low[p]) & (v[p] <= high[p]);
        }
        for (Index p = 0; p < N; ++p) odd[p] &= static_cast<std::uint8_t>(inside[p] ^ 1);
    }
}

// The evidence gains the 8-connected blobs of unsupported pixels of at most max_area
// pixels, and the holes gain them grown by `grow` pixels (a square). Blobs are found in
// scan order.
void add_small_blobs(const RepairShape& shape, Index max_area, Index grow, NearestScratch& s) {
    const Index H = shape.H, W = shape.W;
    std::uint8_t* odd = s.odd.data();  // 1: unsupported and not yet in a blob
    for (Index start = 0; start < H * W; ++start) {
        if (!odd[start]) continue;
        s.blob.clear();
        s.stack.assign(1, start);
        odd[start] = 0;
        while (!s.stack.empty()) {
            const Index p = s.stack.back();
            s.stack.pop_back();
            s.blob.push_back(p);
            const Index y = p / W, x = p % W;
            for (Index dy = -1; dy <= 1; ++dy) {
                for (Index dx = -1; dx <= 1; ++dx) {
                    const Index ny = y + dy, nx = x + dx;
                    if (ny < 0 || ny >= H || nx < 0 || nx >= W || !odd[ny * W + nx]) continue;
                    odd[ny * W + nx] = 0;
                    s.stack.push_back(ny * W + nx);
                }
            }
        }
        if (static_cast<Index>(s.blob.size()) > max_area) continue;
        for (const Index p : s.blob) {
            s.evidence[static_cast<std::size_t>(p)] = 1;
            const Index y = p / W, x = p % W;
            for (Index ny = std::max<Index>(0, y - grow); ny <= std::min(H - 1, y + grow); ++ny)
                for (Index nx = std::max<Index>(0, x - grow); nx <= std::min(W - 1, x + grow); ++nx)
                    s.holes[static_cast<std::size_t>(ny * W + nx)] = 1;
        }
    }
}

// Fills the holes of `out` from the outside in: in each round, every hole with a known
// pixel in its size x size window takes, per channel, the rounded mean of the known values
// there; then those holes count as known. Holes with no known pixel at all keep the input.
void fill_holes(const RepairShape& shape, Index size, NearestScratch& s, std::uint8_t* out) {
    const Index H = shape.H, W = shape.W, C = shape.C, before = size / 2, after = size - 1 - size / 2;
    std::uint8_t* known = s.known.data();
    for (Index p = 0; p < H * W; ++p) known[p] = !s.holes[static_cast<std::size_t>(p)];
    s.stack.clear();
    for (Index p = 0; p < H * W; ++p)
        if (!known[p]) s.stack.push_back(p);
    while (!s.stack.empty()) {
        s.ready.clear();
        s.waiting.clear();
        for (const Index p : s.stack) {
            const Index y = p / W, x = p % W;
            Index count = 0;
            std::int64_t* sum = s.sums.data() + p * C;
            std::fill(sum, sum + C, 0);
            for (Index ny = std::max<Index>(0, y - before); ny <= std::min(H - 1, y + after); ++ny) {
                for (Index nx = std::max<Index>(0, x - before); nx <= std::min(W - 1, x + after); ++nx) {
                    if (!known[ny * W + nx]) continue;
                    ++count;
                    for (Index c = 0; c < C; ++c) sum[c] += out[(ny * W + nx) * C + c];
                }
            }
            if (count == 0) {
                s.waiting.push_back(p);
                continue;
            }
            for (Index c = 0; c < C; ++c) sum[c] = (sum[c] + count / 2) / count;
            s.ready.push_back(p);
        }
        if (s.ready.empty()) break;  // no known pixel anywhere: the rest keep the input
        for (const Index p : s.ready) {
            for (Index c = 0; c < C; ++c) out[p * C + c] = static_cast<std::uint8_t>(s.sums[p * C + c]);
            known[p] = 1;
        }
        s.stack.swap(s.waiting);
    }
}

// The largest sum of values (N) in any window x window square (a smaller side if the image
// is smaller).
std::int64_t densest_square(const RepairShape& shape, Index window, const std::uint8_t* values) {
    const Index H = shape.H, W = shape.W, side = std::min({window, H, W});
    std::int64_t best = 0;
    for (Index y = 0; y + side <= H; ++y) {
        for (Index x = 0; x + side <= W; ++x) {
            std::int64_t count = 0;
            for (Index dy = 0; dy < side; ++dy)
                for (Index dx = 0; dx < side; ++dx) count += values[(y + dy) * W + x + dx];
            best = std::max(best, count);
        }
    }
    return best;
}

void repair_one(const std::uint8_t* image, const NearestSeeds& seeds, const RepairShape& shape,
                const NearestConfig& config, NearestScratch& s, std::uint8_t* out,
                std::uint8_t* holes_out, std::int64_t* marked_out, std::int64_t* moved_out) {
    const Index N = shape.H * shape.W, C = shape.C;
    const Index k = std::min(config.neighbours, seeds.P);
    thumbnails(image, 1, shape.H, shape.W, C, seeds.side, s.thumb.data());
    choose_memories(s.thumb.data(), seeds, k, s);
    std::fill(s.holes.begin(), s.holes.end(), 0);
    for (Index p = 0; p < N; ++p)
        for (Index c = 0; c < C; ++c) s.planar[static_cast<std::size_t>(c * N + p)] = image[p * C + c];
    for (Index g = 0; g < seeds.G; ++g) gate_all(seeds, shape, g, config.agreement, s);
    for (Index level = 0; level < seeds.levels; ++level)
        gate_level(seeds, shape, k, level, config.agreement, s);
    std::copy(s.holes.begin(), s.holes.end(), s.evidence.begin());
    if (config.support) {
        mark_unsupported(seeds, shape, k, s);
        add_small_blobs(shape, config.max_area, config.grow, s);
    }
    std::copy(image, image + N * C, out);
    fill_holes(shape, config.fill_size, s, out);
    if (!config.scored) return;
    std::copy(s.holes.begin(), s.holes.end(), holes_out);
    *marked_out = densest_square(shape, config.window, s.evidence.data());
    std::uint8_t* moved = s.odd.data();  // free after the fill: each pixel's largest change
    for (Index p = 0; p < N; ++p) {
        int most = 0;
        for (Index c = 0; c < C; ++c) most = std::max(most, std::abs(out[p * C + c] - image[p * C + c]));
        moved[p] = static_cast<std::uint8_t>(most);
    }
    *moved_out = densest_square(shape, config.window, moved);
}

}  // namespace

void thumbnails(const std::uint8_t* images, Index B, Index H, Index W, Index C, Index side,
                std::int32_t* out) {
    for (Index b = 0; b < B; ++b) {
        const std::uint8_t* image = images + b * H * W * C;
        std::int32_t* thumb = out + b * side * side * C;
        std::fill(thumb, thumb + side * side * C, 0);
        for (Index y = 0; y < H; ++y) {
            const Index ty = y * side / H;
            for (Index x = 0; x < W; ++x) {
                const Index tx = x * side / W;
                for (Index c = 0; c < C; ++c) thumb[(ty * side + tx) * C + c] += image[(y * W + x) * C + c];
            }
        }
    }
}

void nearest_repair(const std::uint8_t* images, const RepairShape& shape, const NearestSeeds& seeds,
                    const NearestConfig& config, std::uint8_t* out, std::uint8_t* holes,
                    std::int64_t* marked, std::int64_t* moved) {
    const Index N = shape.H * shape.W, values = N * shape.C;
    if (shape.B == 0 || values == 0 || seeds.P == 0) {  // no pixel or no seed: nothing marked
        if (config.scored) {
            std::fill(holes, holes + shape.B * N, 0);
            std::fill(marked, marked + shape.B, 0);
            std::fill(moved, moved + shape.B, 0);
        }
        return;
    }
    const Index k = std::min(config.neighbours, seeds.P);
    const auto n = static_cast<std::size_t>(N);
    for_each_row(
        shape.B, {config.num_threads, values * (k * (seeds.levels + 1) + seeds.G + 1), Index{1} << 16, 0},
        [&] {
            NearestScratch scratch;
            scratch.thumb.resize(static_cast<std::size_t>(seeds.T));
            scratch.distance.resize(static_cast<std::size_t>(seeds.P));
            scratch.memories.resize(static_cast<std::size_t>(k));
            scratch.states.resize(static_cast<std::size_t>(values));
            scratch.bits.resize(static_cast<std::size_t>(shape.C * seeds.words));
            scratch.planar.resize(static_cast<std::size_t>(values));
            scratch.overlap.resize(static_cast<std::size_t>(k));
            scratch.field.resize(n);
            scratch.holes.resize(n);
            scratch.evidence.resize(n);
            scratch.odd.resize(n);
            scratch.known.resize(n);
            scratch.inside.resize(n);
            scratch.sums.resize(static_cast<std::size_t>(values));
            return scratch;
        },
        [&](NearestScratch& scratch, Index b) {
            repair_one(images + b * values, seeds, shape, config, scratch, out + b * values,
                       config.scored ? holes + b * N : nullptr, config.scored ? marked + b : nullptr,
                       config.scored ? moved + b : nullptr);
        });
}

}  // namespace sifternet
