// Learning rules: integer Hebbian (bit-packed XOR + popcount) and Storkey.
#include <algorithm>
#include <exception>
#include <vector>

#include "kernel.hpp"
#include "parallel.hpp"

namespace sifternet {

namespace {

// Columns of the pattern matrix as bit sets: bit mu of neuron i is set where xi_i^mu = +1.
// Threads own blocks of neurons, so each writes only its own columns' bits.
std::vector<std::uint64_t> pack_columns(const std::int8_t* patterns, std::int64_t P,
                                        std::int64_t N, std::int64_t words, int num_threads) {
    std::vector<std::uint64_t> bits(static_cast<std::size_t>(N * words), 0);
    std::uint64_t* out = bits.data();
    constexpr std::int64_t block = 256;
    [[maybe_unused]] const int team = team_size(num_threads);  // unused by a serial build
#pragma omp parallel for schedule(static) num_threads(team)
    for (std::int64_t first = 0; first < N; first += block) {
        const std::int64_t last = first + block < N ? first + block : N;
        for (std::int64_t mu = 0; mu < P; ++mu) {
            const std::int8_t* row = patterns + mu * N;
            const std::uint64_t shift = static_cast<std::uint64_t>(mu & 63);
            std::uint64_t* column = out + (mu >> 6);
            for (std::int64_t i = first; i < last; ++i)
                column[i * words] |= static_cast<std::uint64_t>(row[i] > 0) << shift;
        }
    }
    return bits;
}

// Row i of the Hebbian weights, j > i, mirrored below the diagonal.
SIFTERNET_HOT void hebbian_row(const std::uint64_t* bits, std::int64_t words, std::int64_t P,
                               std::int64_t N, std::int64_t i, std::int32_t* weights) {
    const std::uint64_t* a = bits + i * words;
    for (std::int64_t j = i + 1; j < N; ++j) {
        const std::uint64_t* b = bits + j * words;
        std::int64_t differ = 0;
        for (std::int64_t w = 0; w < words; ++w) differ += __builtin_popcountll(a[w] ^ b[w]);
        const auto value = static_cast<std::int32_t>(P - 2 * differ);
        weights[i * N + j] = value;
        weights[j * N + i] = value;
    }
    weights[i * N + i] = 0;
}

}  // namespace

void hebbian_weights(const std::int8_t* patterns, std::int64_t P, std::int64_t N,
                     std::int32_t* weights, int num_threads) {
    const std::int64_t words = (P + 63) / 64;
    const std::vector<std::uint64_t> bits = pack_columns(patterns, P, N, words, num_threads);
    [[maybe_unused]] const int team = team_size(num_threads);  // unused by a serial build
    // Rows never collide: row i writes (i, j > i) and (j > i, i) only.
#pragma omp parallel for schedule(dynamic, 16) num_threads(team)
    for (std::int64_t i = 0; i < N; ++i) hebbian_row(bits.data(), words, P, N, i, weights);
}

void storkey_weights(const std::int8_t* patterns, std::int64_t P, std::int64_t N,
                     double* weights, int num_threads) {
    std::fill(weights, weights + N * N, 0.0);
    std::vector<double> xi(static_cast<std::size_t>(N));
    std::vector<double> h(static_cast<std::size_t>(N));
    const double inv_n = 1.0 / static_cast<double>(N);
    [[maybe_unused]] const int team = team_size(num_threads);  // unused by a serial build
    for (std::int64_t mu = 0; mu < P; ++mu) {
        for (std::int64_t i = 0; i < N; ++i) xi[i] = patterns[mu * N + i];
        // h_i = sum_k W_ik xi_k with the old weights (W_ii = 0).
#pragma omp parallel for schedule(static) num_threads(team)
        for (std::int64_t i = 0; i < N; ++i) {
            double acc = 0.0;
            for (std::int64_t k = 0; k < N; ++k) acc += weights[i * N + k] * xi[k];
            h[i] = acc;
        }
        // W_ij += (xi_i xi_j - xi_i h_ji - h_ij xi_j) / N, h_ij = h_i - W_ij xi_j.
#pragma omp parallel for schedule(static) num_threads(team)
        for (std::int64_t i = 0; i < N; ++i) {
            for (std::int64_t j = 0; j < N; ++j) {
                if (j == i) continue;
                const double w = weights[i * N + j];
                const double h_ij = h[i] - w * xi[j];
                const double h_ji = h[j] - w * xi[i];
                weights[i * N + j] = w + (xi[i] * xi[j] - xi[i] * h_ji - h_ij * xi[j]) * inv_n;
            }
        }
    }
}

}  // namespace sifternet
