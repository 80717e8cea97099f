// The Hopfield kernel of sifternet: learning rules and batched asynchronous recall
// (docs/method.md). Pure C++17 (+ OpenMP when available), no Python.
// Callers validate their inputs: patterns and states hold only -1 and +1.
#pragma once
#include <cstdint>

namespace sifternet {

// Integer Hebbian weights: W[i][j] = sum_mu xi_i^mu xi_j^mu, W[i][i] = 0, i.e. N times
// the W of docs/method.md. patterns: (P, N) row-major; weights: (N, N) output.
void hebbian_weights(const std::int8_t* patterns, std::int64_t P, std::int64_t N,
                     std::int32_t* weights, int num_threads);

// Storkey (1997) incremental rule, float64, diagonal kept at zero; weights: (N, N) output.
void storkey_weights(const std::int8_t* patterns, std::int64_t P, std::int64_t N,
                     double* weights, int num_threads);

enum class Order { random, sweep };

struct RecallConfig {
    std::int64_t steps = 0;         // single-neuron update attempts; < 0: until converged
    std::int64_t max_sweeps = 100;  // cap on sweeps (of N attempts) when steps < 0
    Order order = Order::random;
    std::uint64_t seed = 0;
    std::uint64_t channel = 0;      // keys the streams together with the global index
    std::uint64_t channels = 1;
    const double* thresholds = nullptr;  // theta (N,), in the units of W s; null: all zero
    double margin = 0.0;            // >= 0, units of W s: change a neuron only beyond it
    double agreement = 0.0;         // [0, 1), overlap form only: and beyond kappa sum|m_mu|
    bool stats = true;              // compute energy, and the fixed-point test for steps >= 0
    int num_threads = 1;
};

// Recall writes the final states in place and one entry per row into each array.
struct RecallOutput {
    std::int8_t* states;       // (B, N), holds the initial states on entry
    std::int64_t* flips;       // (B,)
    std::int64_t* steps;       // (B,) update attempts done
    std::uint8_t* converged;   // (B,) 1 = a fixed point (known when steps < 0 or stats)
    double* energy;            // (B,) E(s) = -1/2 s^T W s + theta^T s (NaN unless stats)
};

// Hebbian recall in the overlap form: O(P) per step; overlaps start from XOR + popcount.
void recall_overlap(const std::int8_t* patterns, std::int64_t P, std::int64_t N,
                    const std::uint64_t* indices, std::int64_t B, const RecallConfig& config,
                    const RecallOutput& out);

// Recall with dense integer weights (N times W, as from hebbian_weights): O(N) per step.
void recall_dense(const std::int32_t* weights, std::int64_t N, const std::uint64_t* indices,
                  std::int64_t B, const RecallConfig& config, const RecallOutput& out);

// Recall with dense float64 weights (storkey, projection): O(N) per step; each field is
// summed in index order so that results are reproducible bit for bit.
void recall_dense(const double* weights, std::int64_t N, const std::uint64_t* indices,
                  std::int64_t B, const RecallConfig& config, const RecallOutput& out);

enum class Output { binary, restore, inpaint };

struct RepairShape {
    std::int64_t B, H, W, C;  // images (B, H, W, C), channels last
};

struct RepairConfig {
    Output output = Output::binary;
    std::int64_t fill_size = 3;  // inpaint's window side, >= 1
    bool joint_channels = false;  // a pixel flipped in any channel is replaced in all
    int num_threads = 1;
};

// The purified pixels `out` (B, H, W, C) from the input images, their binarised states and
// the recalled states. binary: the recalled states as 0/255. restore: the input,
// except the flipped values (recalled != binarised), which take the recalled 0/255.
// inpaint: the input, except each flipped value, which takes the rounded mean of the
// unflipped values of its channel in the fill_size x fill_size window around it (outside
// the image counts as absent), or the recalled 0/255 when there is none.
void repair_images(const std::uint8_t* images, const std::int8_t* binarised,
                   const std::int8_t* recalled, const RepairShape& shape, const RepairConfig& config,
                   std::uint8_t* out);

// The seeds of nearest-seed repair, for images (H, W, C) of N = H W pixels: cuts (G +
// levels), the G all-seed levels first; at each all-seed level g, votes (G, C, N): per
// pixel the sum over the seeds of their states (+1 where the value > cuts[g], else -1), so
// |votes| <= P; each seed's states at each level of the thermometer, packed: bits (P,
// levels, C, words), bit (p & 63) of word (p >> 6) set where the value > cuts[G + level],
// words = ceil(N / 64), the padding bits clear; the per-channel minimum and maximum of
// each seed over the 3x3 window of each pixel, widened by the support tolerance, planar
// (P, C, N); thumbnails (P, T), T = side side C (see thumbnails()).
struct NearestSeeds {
    const std::uint64_t* bits;
    const std::uint8_t* cuts;
    const std::uint8_t* low;
    const std::uint8_t* high;
    const std::int32_t* thumbs;
    const std::int32_t* votes;
    std::int64_t P, levels, words, T, side, G;
};

struct NearestConfig {
    std::int64_t neighbours = 16;  // k: the memories of an image, >= 1; k N < 2^30
    double agreement = 0.9;        // the gate, in [0, 1)
    bool support = true;           // mark small blobs that no memory supports
    std::int64_t max_area = 0;     // the largest unsupported blob repaired (pixels)
    std::int64_t grow = 1;         // repaired blobs grow by this many pixels
    std::int64_t fill_size = 5;    // the fill's window side, >= 1
    std::int64_t window = 3;       // the score's square side, >= 1
    bool scored = true;            // write the holes and scores (else both may be null)
    int num_threads = 1;
};

// Block sums of images (B, H, W, C) on a side x side grid: pixel (y, x) falls in block
// (y * side / H, x * side / W); out (B, side * side * C).
void thumbnails(const std::uint8_t* images, std::int64_t B, std::int64_t H, std::int64_t W,
                std::int64_t C, std::int64_t side, std::int32_t* out);

// Nearest-seed repair of images (B, H, W, C) (docs/method.md, Nearest-seed repair): the
// repaired images `out` (B, H, W, C), the repaired pixels `holes` (B, H, W) as 0/1, and per
// image, in its densest window x window square, the most marked pixels (holes before the
// support blobs grow), `marked` (B), and the largest sum of each pixel's largest change in
// any channel (|out - image|), `moved` (B).
void nearest_repair(const std::uint8_t* images, const RepairShape& shape, const NearestSeeds& seeds,
                    const NearestConfig& config, std::uint8_t* out, std::uint8_t* holes,
                    std::int64_t* marked, std::int64_t* moved);

// Whether the build has OpenMP, and how many threads it may use.
bool has_openmp();
int max_threads();

}  // namespace sifternet
