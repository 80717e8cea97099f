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

// Whether the build has OpenMP, and how many threads it may use.
bool has_openmp();
int max_threads();

}  // namespace sifternet
