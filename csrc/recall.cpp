// Batched asynchronous recall (METHOD.md section 4) in three field representations that
// share one update loop: Hebbian overlaps, dense integer weights, dense float64 weights.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <type_traits>
#include <vector>

#include "kernel.hpp"
#include "parallel.hpp"
#include "streams.hpp"

namespace sifternet {

namespace {

using Index = std::int64_t;

// The update rule's comparison h_i >= theta_i; `scale` converts theta to the field's units.
class Thresholds {
   public:
    Thresholds(const double* theta, Index n, double scale) : theta_(theta) {
        if (theta == nullptr) return;
        scaled_.resize(static_cast<std::size_t>(n));
        for (Index i = 0; i < n; ++i) scaled_[i] = theta[i] * scale;
    }
    template <class Value>
    bool up(Value h, Index i) const {
        return scaled_.empty() ? h >= 0 : static_cast<double>(h) >= scaled_[i];
    }
    // theta^T s, summed in index order.
    double dot(const std::int8_t* s, Index n) const {
        double acc = 0.0;
        for (Index i = 0; i < n && theta_ != nullptr; ++i) acc += theta_[i] * s[i];
        return acc;
    }

   private:
    const double* theta_;
    std::vector<double> scaled_;
};

// Hebbian field in the overlap form. M holds the overlaps m_mu = xi^mu . s (|m| <= N) and
// Acc the field sum_mu xi_i^mu m_mu - P s_i (|h| <= P N); both are chosen wide enough.
template <class M, class Acc>
class OverlapField {
   public:
    struct Shared {
        Index P, N, padded, words;
        std::vector<M> columns;             // (N, padded): xi_i^mu at [i * padded + mu]
        std::vector<std::uint64_t> rows;    // (P, words): bit j of pattern mu set if +1
    };

    static Shared share(const std::int8_t* patterns, Index P, Index N) {
        Shared sh{P, N, (P + 15) / 16 * 16, (N + 63) / 64, {}, {}};
        sh.columns.assign(static_cast<std::size_t>(N * sh.padded), 0);
        sh.rows.assign(static_cast<std::size_t>(P * sh.words), 0);
        for (Index mu = 0; mu < P; ++mu) {
            for (Index i = 0; i < N; ++i) {
                const std::int8_t x = patterns[mu * N + i];
                sh.columns[i * sh.padded + mu] = static_cast<M>(x);
                if (x > 0) sh.rows[mu * sh.words + (i >> 6)] |= std::uint64_t{1} << (i & 63);
            }
        }
        return sh;
    }

    OverlapField(const Shared& sh, const Thresholds& th)
        : sh_(sh), th_(th), m_(static_cast<std::size_t>(sh.padded), 0),
          bits_(static_cast<std::size_t>(sh.words)) {}

    void load(const std::int8_t* s) {
        start_overlaps(sh_.rows.data(), sh_.P, sh_.N, sh_.words, s, bits_.data(), m_.data());
    }

    bool visit(std::int8_t* s, Index i) {
        const M* col = sh_.columns.data() + i * sh_.padded;
        const Acc h = dot(col, m_.data(), sh_.padded) - static_cast<Acc>(sh_.P) * s[i];
        const std::int8_t next = th_.up(h, i) ? 1 : -1;
        if (next == s[i]) return false;
        s[i] = next;
        add_scaled(col, static_cast<M>(2 * next), m_.data(), sh_.padded);
        return true;
    }

    bool stable(const std::int8_t* s) const {
        for (Index i = 0; i < sh_.N; ++i) {
            const M* col = sh_.columns.data() + i * sh_.padded;
            const Acc h = dot(col, m_.data(), sh_.padded) - static_cast<Acc>(sh_.P) * s[i];
            if ((th_.up(h, i) ? 1 : -1) != s[i]) return false;
        }
        return true;
    }

    // s^T (N W) s = sum_mu m_mu^2 - P N.
    double energy(const std::int8_t* s) const {
        std::int64_t q = -sh_.P * sh_.N;
        for (Index mu = 0; mu < sh_.P; ++mu) q += static_cast<std::int64_t>(m_[mu]) * m_[mu];
        const double n = static_cast<double>(sh_.N);
        return -0.5 * static_cast<double>(q) / n + th_.dot(s, sh_.N);
    }

   private:
    SIFTERNET_HOT static Acc dot(const M* a, const M* b, Index n) {
        Acc acc = 0;
        for (Index k = 0; k < n; ++k) acc += static_cast<Acc>(a[k]) * static_cast<Acc>(b[k]);
        return acc;
    }
    SIFTERNET_HOT static void add_scaled(const M* col, M factor, M* m, Index n) {
        for (Index k = 0; k < n; ++k) m[k] = static_cast<M>(m[k] + factor * col[k]);
    }
    // m_mu = N - 2 popcount(xi^mu XOR s) over the packed bits.
    SIFTERNET_HOT static void start_overlaps(const std::uint64_t* rows, Index P, Index N,
                                             Index words, const std::int8_t* s,
                                             std::uint64_t* bits, M* m) {
        for (Index w = 0; w < words; ++w) {
            std::uint64_t word = 0;
            const Index end = std::min<Index>(64, N - w * 64);
            for (Index k = 0; k < end; ++k)
                word |= static_cast<std::uint64_t>(s[w * 64 + k] > 0) << k;
            bits[w] = word;
        }
        for (Index mu = 0; mu < P; ++mu) {
            Index differ = 0;
            const std::uint64_t* row = rows + mu * words;
            for (Index w = 0; w < words; ++w) differ += __builtin_popcountll(row[w] ^ bits[w]);
            m[mu] = static_cast<M>(N - 2 * differ);
        }
    }

    const Shared& sh_;
    const Thresholds& th_;
    std::vector<M> m_;
    std::vector<std::uint64_t> bits_;
};

// Field from dense weights W (N, N): integer (N times W) or float64 (W itself). W[i][i]
// takes no part: the field is the row's sum in index order minus W_ii s_i.
template <class W, class Acc>
class DenseField {
   public:
    struct Shared {
        const W* weights;
        Index N;
    };

    DenseField(const Shared& sh, const Thresholds& th)
        : sh_(sh), th_(th), x_(static_cast<std::size_t>(sh.N)) {}

    void load(const std::int8_t* s) { std::copy(s, s + sh_.N, x_.begin()); }

    bool visit(std::int8_t* s, Index i) {
        const std::int8_t next = th_.up(field(i), i) ? 1 : -1;
        if (next == s[i]) return false;
        s[i] = next;
        x_[i] = next;
        return true;
    }

    bool stable(const std::int8_t* s) const {
        for (Index i = 0; i < sh_.N; ++i)
            if ((th_.up(field(i), i) ? 1 : -1) != s[i]) return false;
        return true;
    }

    double energy(const std::int8_t* s) const {
        Acc q = 0;
        for (Index i = 0; i < sh_.N; ++i) q += field(i) * s[i];
        const double scale = std::is_integral<W>::value ? static_cast<double>(sh_.N) : 1.0;
        return -0.5 * static_cast<double>(q) / scale + th_.dot(s, sh_.N);
    }

   private:
    Acc field(Index i) const {
        const Acc h = row_dot(sh_.weights + i * sh_.N, x_.data(), sh_.N);
        return h - static_cast<Acc>(sh_.weights[i * sh_.N + i]) * x_[i];
    }
    SIFTERNET_HOT static Acc row_dot(const W* row, const W* x, Index n) {
        Acc acc = 0;
        for (Index j = 0; j < n; ++j) acc += static_cast<Acc>(row[j]) * static_cast<Acc>(x[j]);
        return acc;
    }

    const Shared& sh_;
    const Thresholds& th_;
    std::vector<W> x_;  // the state in W's type
};

// One row: the update loop of METHOD.md section 4 over any field representation.
template <class Field>
void recall_row(Field& field, std::int8_t* s, Index N, std::uint64_t key,
                const RecallConfig& config, std::vector<std::uint32_t>& perm,
                std::int64_t& flips, std::int64_t& done, std::uint8_t& converged,
                double& energy) {
    std::uint64_t t = 0;
    const bool sweep = config.order == Order::sweep;
    auto shuffle = [&] {
        std::iota(perm.begin(), perm.end(), 0u);
        for (Index k = N - 1; k >= 1; --k)
            std::swap(perm[k], perm[below(draw(key, t++), static_cast<std::uint64_t>(k + 1))]);
    };
    // `count` attempts; a sweep-order pass over perm[0, count).
    auto run = [&](Index count) {
        Index changed = 0;
        if (sweep) {
            shuffle();
            for (Index k = 0; k < count; ++k) changed += field.visit(s, perm[k]);
        } else {
            for (Index k = 0; k < count; ++k)
                changed += field.visit(s, static_cast<Index>(below(draw(key, t++), N)));
        }
        done += count;
        flips += changed;
        return changed;
    };

    field.load(s);
    flips = 0;
    done = 0;
    converged = 0;
    if (config.steps >= 0) {
        const Index block = sweep ? N : config.steps;
        while (done < config.steps) run(std::min(block, config.steps - done));
        converged = config.stats && field.stable(s);
    } else {
        for (Index pass = 0; pass < config.max_sweeps; ++pass) {
            // A quiet sweep-order pass visited every neuron: a fixed point.
            if (run(N) == 0 && (sweep || field.stable(s))) {
                converged = 1;
                break;
            }
        }
    }
    energy = config.stats ? field.energy(s) : std::numeric_limits<double>::quiet_NaN();
}

template <class Field>
void recall_rows(const typename Field::Shared& shared, Index N, double theta_scale,
                 const std::uint64_t* indices, Index B, const RecallConfig& config,
                 const RecallOutput& out) {
    const Thresholds thresholds(config.thresholds, N, theta_scale);
    const int threads = static_cast<int>(std::max<Index>(1, std::min<Index>(config.num_threads, B)));
    FirstError error;
#pragma omp parallel num_threads(threads)
    {
        // Every thread must reach the work-sharing loop, so scratch failures are kept aside.
        bool ready = false;
        Field* field = nullptr;
        std::vector<std::uint32_t> perm;
        try {
            field = new Field(shared, thresholds);
            perm.resize(config.order == Order::sweep ? static_cast<std::size_t>(N) : 0);
            ready = true;
        } catch (...) {
            error.capture();
        }
#pragma omp for schedule(dynamic, 32)
        for (Index b = 0; b < B; ++b) {
            if (!ready) continue;
            const std::uint64_t key =
                stream_key(config.seed, indices[b], config.channels, config.channel);
            recall_row(*field, out.states + b * N, N, key, config, perm, out.flips[b],
                       out.steps[b], out.converged[b], out.energy[b]);
        }
        delete field;
    }
    error.rethrow();
}

}  // namespace

void recall_overlap(const std::int8_t* patterns, Index P, Index N, const std::uint64_t* indices,
                    Index B, const RecallConfig& config, const RecallOutput& out) {
    const double scale = static_cast<double>(N);
    const bool narrow = N <= std::numeric_limits<std::int16_t>::max() &&
                        P * N <= std::numeric_limits<std::int32_t>::max();
    if (narrow) {
        using Field = OverlapField<std::int16_t, std::int32_t>;
        recall_rows<Field>(Field::share(patterns, P, N), N, scale, indices, B, config, out);
    } else {
        using Field = OverlapField<std::int32_t, std::int64_t>;
        recall_rows<Field>(Field::share(patterns, P, N), N, scale, indices, B, config, out);
    }
}

void recall_dense(const std::int32_t* weights, Index N, const std::uint64_t* indices, Index B,
                  const RecallConfig& config, const RecallOutput& out) {
    using Field = DenseField<std::int32_t, std::int64_t>;
    recall_rows<Field>({weights, N}, N, static_cast<double>(N), indices, B, config, out);
}

void recall_dense(const double* weights, Index N, const std::uint64_t* indices, Index B,
                  const RecallConfig& config, const RecallOutput& out) {
    using Field = DenseField<double, double>;
    recall_rows<Field>({weights, N}, N, 1.0, indices, B, config, out);
}

bool has_openmp() {
#ifdef _OPENMP
    return true;
#else
    return false;
#endif
}

int max_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

}  // namespace sifternet
