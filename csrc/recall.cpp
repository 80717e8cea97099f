// Batched asynchronous recall (docs/method.md) in three field representations that
// share one update loop: Hebbian overlaps, dense integer weights, dense float64 weights.
#include <algorithm>
#include <cmath>
#include <cstring>
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

// The update rule: s_i <- +1 if h_i >= theta_i else -1, except that a gated rule changes a
// neuron only when its field is beyond theta_i against it by the margin m plus `extra`
// (the agreement gate kappa V of the overlap form): +1 stays unless
// h_i < (theta_i - m) - extra; -1 turns +1 only if h_i >= (theta_i + m) + extra. `scale`
// converts theta and m from the units of W s to the field's units.
class UpdateRule {
   public:
    UpdateRule(const double* theta, double margin, bool gated, Index n, double scale)
        : theta_(theta) {
        if (theta == nullptr && margin == 0.0 && !gated) return;  // plain: integer h >= 0
        bounds_.resize(static_cast<std::size_t>(2 * n));
        const double m = margin * scale;
        for (Index i = 0; i < n; ++i) {
            const double t = theta == nullptr ? 0.0 : theta[i] * scale;
            bounds_[2 * i] = t - m;
            bounds_[2 * i + 1] = t + m;
        }
        limits_ = bounds_.data();
    }
    template <class Value>
    SIFTERNET_INLINE std::int8_t next(Value h, Index i, std::int8_t now, double extra = 0.0) const {
        if (limits_ == nullptr) return h >= 0 ? 1 : -1;
        const double v = static_cast<double>(h);
        return now > 0 ? (v < limits_[2 * i] - extra ? -1 : 1)
                       : (v >= limits_[2 * i + 1] + extra ? 1 : -1);
    }
    // theta^T s, summed in index order.
    double dot(const std::int8_t* s, Index n) const {
        double acc = 0.0;
        for (Index i = 0; i < n && theta_ != nullptr; ++i) acc += theta_[i] * s[i];
        return acc;
    }

   private:
    const double* theta_;
    std::vector<double> bounds_;
    const double* limits_ = nullptr;  // bounds_ while in use; null: the plain rule
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

    OverlapField(const Shared& sh, const UpdateRule& th, double agreement)
        : th_(th), storage_(static_cast<std::size_t>(sh.padded + 4 * sh.words)),
          columns_(sh.columns.data()), rows_(sh.rows.data()), m_(storage_.data()),
          bits_(reinterpret_cast<std::uint64_t*>(storage_.data() + sh.padded)), P_(sh.P),
          N_(sh.N), padded_(sh.padded), words_(sh.words), agreement_(agreement) {
        static_assert(sizeof(std::uint64_t) <= 4 * sizeof(M), "bits fit in 4 M per word");
    }

    SIFTERNET_INLINE void load(const std::int8_t* s) {
        start_overlaps(rows_, P_, N_, words_, s, bits_, m_);
        vote_ = vote(m_, padded_);
    }

    SIFTERNET_INLINE Acc field(const std::int8_t* s, Index i) const {
        return dot(columns_ + i * padded_, m_, padded_) - static_cast<Acc>(P_) * s[i];
    }

    // The agreement gate: kappa times the vote mass V = sum_mu |m_mu|.
    SIFTERNET_INLINE double extra() const {
        return agreement_ > 0.0 ? agreement_ * static_cast<double>(vote_) : 0.0;
    }

    SIFTERNET_INLINE bool visit(std::int8_t* s, Index i) {
        const std::int8_t next = th_.next(field(s, i), i, s[i], extra());
        if (next == s[i]) return false;
        s[i] = next;
        add_scaled(columns_ + i * padded_, static_cast<M>(2 * next), m_, padded_);
        if (agreement_ > 0.0) vote_ = vote(m_, padded_);
        return true;
    }

    SIFTERNET_INLINE bool stable(const std::int8_t* s) const {
        for (Index i = 0; i < N_; ++i)
            if (th_.next(field(s, i), i, s[i], extra()) != s[i]) return false;
        return true;
    }

    // s^T (N W) s = sum_mu m_mu^2 - P N.
    SIFTERNET_INLINE double energy(const std::int8_t* s) const {
        std::int64_t q = -P_ * N_;
        for (Index mu = 0; mu < P_; ++mu) q += static_cast<std::int64_t>(m_[mu]) * m_[mu];
        return -0.5 * static_cast<double>(q) / static_cast<double>(N_) + th_.dot(s, N_);
    }

   private:
    SIFTERNET_INLINE static Acc dot(const M* a, const M* b, Index n) {
        Acc acc = 0;
        for (Index k = 0; k < n; ++k) acc += static_cast<Acc>(a[k]) * static_cast<Acc>(b[k]);
        return acc;
    }
    SIFTERNET_INLINE static std::int64_t vote(const M* m, Index n) {
        std::int64_t total = 0;
        for (Index k = 0; k < n; ++k) total += m[k] < 0 ? -m[k] : m[k];
        return total;
    }
    SIFTERNET_INLINE static void add_scaled(const M* col, M factor, M* m, Index n) {
        for (Index k = 0; k < n; ++k) m[k] = static_cast<M>(m[k] + factor * col[k]);
    }
    // Bit k set where s[k] = +1, for 8 spins: their sign bits, inverted, gathered into one
    // byte by a multiply whose partial products never overlap.
    SIFTERNET_INLINE static std::uint64_t pack8(const std::int8_t* s) {
        std::uint64_t v;
        std::memcpy(&v, s, 8);
        const std::uint64_t signs = (~v & 0x8080808080808080ULL) >> 7;
        return (signs * 0x0102040810204080ULL) >> 56;
    }
    // m_mu = N - 2 popcount(xi^mu XOR s) over the packed bits.
    SIFTERNET_INLINE static void start_overlaps(const std::uint64_t* rows, Index P, Index N,
                                             Index words, const std::int8_t* s,
                                             std::uint64_t* bits, M* m) {
        for (Index w = 0; w < words; ++w) bits[w] = 0;
        Index j = 0;
        for (; j + 8 <= N; j += 8) bits[j >> 6] |= pack8(s + j) << (j & 63);
        for (; j < N; ++j) bits[j >> 6] |= static_cast<std::uint64_t>(s[j] > 0) << (j & 63);
        for (Index mu = 0; mu < P; ++mu) {
            Index differ = 0;
            const std::uint64_t* row = rows + mu * words;
            for (Index w = 0; w < words; ++w) differ += __builtin_popcountll(row[w] ^ bits[w]);
            m[mu] = static_cast<M>(N - 2 * differ);
        }
    }

    const UpdateRule& th_;
    ThreadScratch<M> storage_;  // this thread's overlaps, then its packed state
    const M* columns_;
    const std::uint64_t* rows_;
    M* m_;
    std::uint64_t* bits_;
    Index P_, N_, padded_, words_;
    double agreement_;
    std::int64_t vote_ = 0;
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

    DenseField(const Shared& sh, const UpdateRule& th, double /*agreement: overlap form only*/)
        : th_(th), storage_(static_cast<std::size_t>(sh.N)), weights_(sh.weights),
          x_(storage_.data()), N_(sh.N) {}

    SIFTERNET_INLINE void load(const std::int8_t* s) {
        for (Index j = 0; j < N_; ++j) x_[j] = s[j];
    }

    SIFTERNET_INLINE bool visit(std::int8_t* s, Index i) {
        const std::int8_t next = th_.next(field(i), i, s[i]);
        if (next == s[i]) return false;
        s[i] = next;
        x_[i] = next;
        return true;
    }

    SIFTERNET_INLINE bool stable(const std::int8_t* s) const {
        for (Index i = 0; i < N_; ++i)
            if (th_.next(field(i), i, s[i]) != s[i]) return false;
        return true;
    }

    SIFTERNET_INLINE double energy(const std::int8_t* s) const {
        Acc q = 0;
        for (Index i = 0; i < N_; ++i) q += field(i) * s[i];
        const double scale = std::is_integral<W>::value ? static_cast<double>(N_) : 1.0;
        return -0.5 * static_cast<double>(q) / scale + th_.dot(s, N_);
    }

   private:
    SIFTERNET_INLINE Acc field(Index i) const {
        const Acc h = row_dot(weights_ + i * N_, x_, N_);
        return h - static_cast<Acc>(weights_[i * N_ + i]) * x_[i];
    }
    SIFTERNET_INLINE static Acc row_dot(const W* row, const W* x, Index n) {
        Acc acc = 0;
        for (Index j = 0; j < n; ++j) acc += static_cast<Acc>(row[j]) * static_cast<Acc>(x[j]);
        return acc;
    }

    const UpdateRule& th_;
    ThreadScratch<W> storage_;  // the state in W's type
    const W* weights_;
    W* x_;
    Index N_;
};

// What recall did to one row.
struct RowResult {
    std::int64_t flips = 0;  // neurons changed
    std::int64_t steps = 0;  // update attempts done
    bool converged = false;  // a fixed point (known when steps < 0 or stats)
    double energy = std::numeric_limits<double>::quiet_NaN();  // NaN unless stats
};

// One row: the update loop of docs/method.md over any field representation.
template <class Field>
SIFTERNET_INLINE RowResult recall_row(Field& field, std::int8_t* s, Index N, std::uint64_t key,
                                      const RecallConfig& config, std::uint32_t* perm) {
    RowResult r;
    std::uint64_t t = 0;
    const bool sweep = config.order == Order::sweep;
    auto shuffle = [&]() SIFTERNET_LAMBDA_INLINE {
        for (Index k = 0; k < N; ++k) perm[k] = static_cast<std::uint32_t>(k);
        for (Index k = N - 1; k >= 1; --k) {
            const auto j = below(draw(key, t++), static_cast<std::uint64_t>(k + 1));
            const std::uint32_t held = perm[k];
            perm[k] = perm[j];
            perm[j] = held;
        }
    };
    // `count` attempts; a sweep-order pass over perm[0, count).
    auto run = [&](Index count) SIFTERNET_LAMBDA_INLINE {
        Index changed = 0;
        if (sweep) {
            shuffle();
            for (Index k = 0; k < count; ++k) changed += field.visit(s, perm[k]);
        } else {
            for (Index k = 0; k < count; ++k)
                changed += field.visit(s, static_cast<Index>(below(draw(key, t++), N)));
        }
        r.steps += count;
        r.flips += changed;
        return changed;
    };

    field.load(s);
    if (config.steps >= 0) {
        const Index block = sweep ? N : config.steps;
        while (r.steps < config.steps)
            run(block < config.steps - r.steps ? block : config.steps - r.steps);
        r.converged = config.stats && field.stable(s);
    } else {
        for (Index pass = 0; pass < config.max_sweeps; ++pass) {
            // A quiet sweep-order pass visited every neuron: a fixed point.
            if (run(N) == 0 && (sweep || field.stable(s))) {
                r.converged = true;
                break;
            }
        }
    }
    if (config.stats) r.energy = field.energy(s);
    return r;
}

// The row loop compiled once per field type and instruction set (SIFTERNET_HOT), so that
// the whole step loop inlines into each clone.
#define SIFTERNET_ROW_FUNCTION(NAME, FIELD)                                                  \
    SIFTERNET_HOT RowResult NAME(FIELD& field, std::int8_t* s, Index N, std::uint64_t key,   \
                                 const RecallConfig& config, std::uint32_t* perm) {          \
        return recall_row(field, s, N, key, config, perm);                                   \
    }
using NarrowOverlap = OverlapField<std::int16_t, std::int32_t>;
using WideOverlap = OverlapField<std::int32_t, std::int64_t>;
using IntDense = DenseField<std::int32_t, std::int64_t>;
using FloatDense = DenseField<double, double>;
SIFTERNET_ROW_FUNCTION(row_narrow_overlap, NarrowOverlap)
SIFTERNET_ROW_FUNCTION(row_wide_overlap, WideOverlap)
SIFTERNET_ROW_FUNCTION(row_int_dense, IntDense)
SIFTERNET_ROW_FUNCTION(row_float_dense, FloatDense)
#undef SIFTERNET_ROW_FUNCTION

template <class Field, class RowFunction>
void recall_rows(RowFunction row, const typename Field::Shared& shared, Index N, double theta_scale,
                 const std::uint64_t* indices, Index B, const RecallConfig& config,
                 const RecallOutput& out) {
    const UpdateRule thresholds(config.thresholds, config.margin, config.agreement > 0.0, N,
                                theta_scale);
    const Index steps = config.steps >= 0 ? config.steps : 4 * N;
    const Index row_work = steps < std::numeric_limits<Index>::max() - N ? steps + N
                                                                          : std::numeric_limits<Index>::max();
    struct Scratch {
        Field field;
        ThreadScratch<std::uint32_t> perm;  // the sweep order's permutation
    };
    for_each_row(
        B, {config.num_threads, row_work, Index{1} << 18, 32},
        [&] {
            return Scratch{Field(shared, thresholds, config.agreement),
                           ThreadScratch<std::uint32_t>(
                               config.order == Order::sweep ? static_cast<std::size_t>(N) : 0)};
        },
        [&](Scratch& scratch, Index b) {
            const std::uint64_t key =
                stream_key(config.seed, indices[b], config.channels, config.channel);
            const RowResult r = row(scratch.field, out.states + b * N, N, key, config,
                                    scratch.perm.data());
            out.flips[b] = r.flips;
            out.steps[b] = r.steps;
            out.converged[b] = r.converged;
            out.energy[b] = r.energy;
        });
}

}  // namespace

void recall_overlap(const std::int8_t* patterns, Index P, Index N, const std::uint64_t* indices,
                    Index B, const RecallConfig& config, const RecallOutput& out) {
    const double scale = static_cast<double>(N);
    const bool narrow = N <= std::numeric_limits<std::int16_t>::max() &&
                        P * N <= std::numeric_limits<std::int32_t>::max();
    if (narrow) {
        recall_rows<NarrowOverlap>(row_narrow_overlap, NarrowOverlap::share(patterns, P, N), N,
                                   scale, indices, B, config, out);
    } else {
        recall_rows<WideOverlap>(row_wide_overlap, WideOverlap::share(patterns, P, N), N, scale,
                                 indices, B, config, out);
    }
}

void recall_dense(const std::int32_t* weights, Index N, const std::uint64_t* indices, Index B,
                  const RecallConfig& config, const RecallOutput& out) {
    recall_rows<IntDense>(row_int_dense, {weights, N}, N, static_cast<double>(N), indices, B,
                          config, out);
}

void recall_dense(const double* weights, Index N, const std::uint64_t* indices, Index B,
                  const RecallConfig& config, const RecallOutput& out) {
    recall_rows<FloatDense>(row_float_dense, {weights, N}, N, 1.0, indices, B, config, out);
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
