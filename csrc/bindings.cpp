// sifternet._core: the kernel's Python face. Every array is checked here (dtype, shape,
// values) so that no user input reaches the kernel unchecked; the GIL is released while
// the kernel runs.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

#include "kernel.hpp"
#include "parallel.hpp"

namespace py = pybind11;
using sifternet::RecallConfig;
using sifternet::RecallOutput;

namespace {

template <class T>
const char* dtype_name() {
    if (std::is_same<T, std::int8_t>::value) return "int8";
    if (std::is_same<T, std::uint8_t>::value) return "uint8";
    if (std::is_same<T, std::int32_t>::value) return "int32";
    if (std::is_same<T, std::uint64_t>::value) return "uint64";
    if (std::is_same<T, std::int64_t>::value) return "int64";
    return "float64";
}

std::string shape_of(const py::array& a) {
    std::ostringstream out;
    out << "(";
    for (py::ssize_t d = 0; d < a.ndim(); ++d) out << (d ? ", " : "") << a.shape(d);
    out << (a.ndim() == 1 ? ",)" : ")");
    return out.str();
}

// `obj` as a C-contiguous array of T (copied only if strided or byte-swapped); a TypeError
// for anything that is not a numpy array of T's kind and size, a ValueError for wrong ndim,
// NumPy's MemoryError when the copy cannot be allocated.
template <class T>
py::array_t<T, py::array::c_style> as_array(const py::object& obj, const char* name,
                                            py::ssize_t ndim) {
    if (!py::isinstance<py::array>(obj)) {
        throw py::type_error(std::string(name) + ": expected a numpy array of dtype " +
                             dtype_name<T>() + ", got " +
                             std::string(py::str(py::type::of(obj).attr("__name__"))));
    }
    const auto arr = py::reinterpret_borrow<py::array>(obj);
    const py::dtype want = py::dtype::of<T>();
    if (arr.dtype().kind() != want.kind() || arr.dtype().itemsize() != want.itemsize()) {
        throw py::type_error(std::string(name) + ": expected dtype " + dtype_name<T>() +
                             ", got " + std::string(py::str(arr.dtype())));
    }
    if (arr.ndim() != ndim) {
        throw py::value_error(std::string(name) + ": expected a " + std::to_string(ndim) +
                              "-D array, got shape " + shape_of(arr));
    }
    // Not ensure(): it swallows the copy's MemoryError and returns a null array.
    using Contiguous = py::array_t<T, py::array::c_style | py::array::forcecast>;
    return Contiguous(static_cast<const py::object&>(arr));
}

void require_spins(const std::int8_t* data, py::ssize_t size, const char* name) {
    for (py::ssize_t k = 0; k < size; ++k) {
        if (data[k] != 1 && data[k] != -1) {
            throw py::value_error(std::string(name) + ": values must be -1 or +1, found " +
                                  std::to_string(data[k]) + " at flat index " +
                                  std::to_string(k));
        }
    }
}

py::array_t<std::int8_t, py::array::c_style> spins(const py::object& obj, const char* name) {
    auto arr = as_array<std::int8_t>(obj, name, 2);
    require_spins(arr.data(), arr.size(), name);
    return arr;
}

py::array_t<std::int8_t, py::array::c_style> patterns_arg(const py::object& obj) {
    auto arr = spins(obj, "patterns");
    if (arr.shape(0) < 1 || arr.shape(1) < 1) {
        throw py::value_error("patterns: expected shape (P, N) with P >= 1 and N >= 1, got " +
                              shape_of(arr));
    }
    return arr;
}

int threads_arg(std::int64_t num_threads) {
    if (num_threads < 1) {
        throw py::value_error("num_threads: expected a positive count, got " +
                              std::to_string(num_threads));
    }
    if (num_threads > sifternet::MAX_TEAM) {
        throw py::value_error("num_threads: expected a positive count up to " +
                              std::to_string(sifternet::MAX_TEAM) + ", got " +
                              std::to_string(num_threads));
    }
    return static_cast<int>(num_threads);
}

std::uint64_t seed_arg(const py::int_& seed) {
    if (seed < py::int_(0) || seed > py::int_(std::numeric_limits<std::uint64_t>::max())) {
        throw py::value_error("seed: expected an integer in [0, 2**64), got " +
                              std::string(py::str(seed)));
    }
    return seed.cast<std::uint64_t>();
}

// The enum value named `value` among `choices`; a ValueError listing them otherwise.
template <class E>
E choice_arg(const char* name, const std::string& value,
             std::initializer_list<std::pair<const char*, E>> choices) {
    std::string expected;
    std::size_t k = 0;
    for (const auto& [text, choice] : choices) {
        if (value == text) return choice;
        expected += std::string(k == 0 ? "" : k + 1 == choices.size() ? " or " : ", ") + "'" + text + "'";
        ++k;
    }
    throw py::value_error(std::string(name) + ": expected " + expected + ", got '" + value + "'");
}

// A learning rule's (N, N) weights of checked patterns, computed without the GIL.
template <class W, void (*rule)(const std::int8_t*, std::int64_t, std::int64_t, W*, int)>
py::array_t<W> learn(const py::object& patterns_obj, std::int64_t num_threads) {
    const auto patterns = patterns_arg(patterns_obj);
    const py::ssize_t P = patterns.shape(0), N = patterns.shape(1);
    py::array_t<W> weights({N, N});
    W* w = weights.mutable_data();
    const int threads = threads_arg(num_threads);
    {
        py::gil_scoped_release release;
        rule(patterns.data(), P, N, w, threads);
    }
    return weights;
}

// Everything a recall call takes besides the memory; checked against N.
struct RecallArgs {
    py::array_t<std::int8_t, py::array::c_style> states;
    py::array_t<std::uint64_t, py::array::c_style> indices;
    py::array_t<double, py::array::c_style> thresholds;
    RecallConfig config;
};

RecallArgs recall_args(const py::object& states, py::ssize_t N, const py::object& indices,
                       const py::object& steps, const std::string& order, const py::int_& seed,
                       std::int64_t channel, std::int64_t channels,
                       const py::object& thresholds, double margin, double agreement,
                       std::int64_t max_sweeps, bool stats, std::int64_t num_threads) {
    RecallArgs args{spins(states, "states"), as_array<std::uint64_t>(indices, "indices", 1),
                    {}, {}};
    if (args.states.shape(1) != N) {
        throw py::value_error("states: expected shape (B, " + std::to_string(N) +
                              ") to match the network's N, got " + shape_of(args.states));
    }
    if (args.indices.shape(0) != args.states.shape(0)) {
        throw py::value_error("indices: expected one index per state row (" +
                              std::to_string(args.states.shape(0)) + "), got " +
                              shape_of(args.indices));
    }
    RecallConfig& c = args.config;
    if (steps.is_none()) {
        c.steps = -1;
    } else {
        c.steps = py::cast<std::int64_t>(steps);
        if (c.steps < 0) {
            throw py::value_error("steps: expected a non-negative count or None, got " +
                                  std::to_string(c.steps));
        }
    }
    c.order = choice_arg<sifternet::Order>(
        "order", order, {{"random", sifternet::Order::random}, {"sweep", sifternet::Order::sweep}});
    if (max_sweeps < 1) {
        throw py::value_error("max_sweeps: expected at least 1, got " + std::to_string(max_sweeps));
    }
    if (channels < 1 || channel < 0 || channel >= channels) {
        throw py::value_error("channel: expected 0 <= channel < channels, got channel=" +
                              std::to_string(channel) + ", channels=" + std::to_string(channels));
    }
    if (!thresholds.is_none()) {
        args.thresholds = as_array<double>(thresholds, "thresholds", 1);
        if (args.thresholds.shape(0) != N) {
            throw py::value_error("thresholds: expected shape (" + std::to_string(N) +
                                  ",), got " + shape_of(args.thresholds));
        }
        for (py::ssize_t i = 0; i < N; ++i) {
            if (!std::isfinite(args.thresholds.data()[i])) {
                throw py::value_error("thresholds: expected finite values, found " +
                                      std::to_string(args.thresholds.data()[i]) + " at " +
                                      std::to_string(i));
            }
        }
        c.thresholds = args.thresholds.data();
    }
    if (!std::isfinite(margin) || margin < 0.0) {
        throw py::value_error("margin: expected a finite number >= 0, got " + std::to_string(margin));
    }
    c.margin = margin;
    if (!(agreement >= 0.0 && agreement < 1.0)) {
        throw py::value_error("agreement: expected a fraction in [0, 1), got " + std::to_string(agreement));
    }
    c.agreement = agreement;
    c.max_sweeps = max_sweeps;
    c.seed = seed_arg(seed);
    c.channel = static_cast<std::uint64_t>(channel);
    c.channels = static_cast<std::uint64_t>(channels);
    c.stats = stats;
    c.num_threads = threads_arg(num_threads);
    return args;
}

// Allocates the outputs, runs `kernel(out)` without the GIL, returns the result tuple.
template <class Kernel>
py::tuple run_recall(const RecallArgs& args, Kernel kernel) {
    const py::ssize_t B = args.states.shape(0);
    const py::ssize_t N = args.states.shape(1);
    py::array_t<std::int8_t> states({B, N});
    py::array_t<std::int64_t> flips(B), steps(B);
    py::array_t<bool> converged(B);
    py::array_t<double> energy(B);
    std::copy(args.states.data(), args.states.data() + B * N, states.mutable_data());
    const RecallOutput out{states.mutable_data(), flips.mutable_data(), steps.mutable_data(),
                           reinterpret_cast<std::uint8_t*>(converged.mutable_data()),
                           energy.mutable_data()};
    {
        py::gil_scoped_release release;
        kernel(args.indices.data(), B, out);
    }
    return py::make_tuple(states, flips, steps, converged, energy);
}

// The repair's purified pixels; every array is (B, H, W, C), checked against the images
// (the states may hold any int8: > 0 counts as +1, and only their differences matter).
py::array_t<std::uint8_t> repair(const py::object& images_obj, const py::object& binarised_obj,
                                 const py::object& recalled_obj, const std::string& output,
                                 std::int64_t fill_size, bool joint_channels,
                                 std::int64_t num_threads) {
    const auto images = as_array<std::uint8_t>(images_obj, "images", 4);
    const auto binarised = as_array<std::int8_t>(binarised_obj, "binarised", 4);
    const auto recalled = as_array<std::int8_t>(recalled_obj, "recalled", 4);
    for (const auto& [arr, name] : {std::pair<py::array, const char*>{binarised, "binarised"},
                                    {recalled, "recalled"}}) {
        if (!std::equal(arr.shape(), arr.shape() + 4, images.shape())) {
            throw py::value_error(std::string(name) + ": expected the images' shape " +
                                  shape_of(images) + ", got " + shape_of(arr));
        }
    }
    sifternet::RepairConfig config;
    config.output = choice_arg<sifternet::Output>("output", output,
                                                  {{"binary", sifternet::Output::binary},
                                                   {"restore", sifternet::Output::restore},
                                                   {"inpaint", sifternet::Output::inpaint}});
    if (fill_size < 1) {
        throw py::value_error("fill_size: expected at least 1, got " + std::to_string(fill_size));
    }
    config.fill_size = fill_size;
    config.joint_channels = joint_channels;
    config.num_threads = threads_arg(num_threads);
    const sifternet::RepairShape shape{images.shape(0), images.shape(1), images.shape(2), images.shape(3)};
    py::array_t<std::uint8_t> out({shape.B, shape.H, shape.W, shape.C});
    {
        py::gil_scoped_release release;
        sifternet::repair_images(images.data(), binarised.data(), recalled.data(), shape, config,
                                 out.mutable_data());
    }
    return out;
}

void require_range(const char* name, std::int64_t value, std::int64_t low, std::int64_t high) {
    if (value < low || value > high) {
        throw py::value_error(std::string(name) + ": expected an integer in [" + std::to_string(low) +
                              ", " + std::to_string(high) + "], got " + std::to_string(value));
    }
}

// A thumbnail block sum, at most 255 H W, must fit in int32 and the largest squared
// thumbnail distance, below 2 255^2 C (H W)^2, in int64.
void require_thumbnail_range(const py::array& images) {
    const double pixels = static_cast<double>(images.shape(1)) * static_cast<double>(images.shape(2));
    if (255.0 * pixels >= 2147483648.0 ||
        2.0 * 65025.0 * static_cast<double>(images.shape(3)) * pixels * pixels >= 9.0e18) {
        throw py::value_error("images: too many pixels for exact thumbnail distances, got shape " +
                              shape_of(images));
    }
}

py::array_t<std::int32_t> thumbnails(const py::object& images_obj, std::int64_t side) {
    const auto images = as_array<std::uint8_t>(images_obj, "images", 4);
    require_thumbnail_range(images);
    require_range("side", side, 1, 1 << 12);
    const py::ssize_t B = images.shape(0), T = side * side * images.shape(3);
    py::array_t<std::int32_t> out({B, T});
    py::gil_scoped_release release;
    sifternet::thumbnails(images.data(), B, images.shape(1), images.shape(2), images.shape(3), side,
                          out.mutable_data());
    return out;
}

// Nearest-seed repair; the seeds' arrays are checked against the images and each other.
py::tuple nearest_repair(const py::object& images_obj, const py::object& bits_obj, const py::object& cuts_obj,
                         const py::object& low_obj, const py::object& high_obj,
                         const py::object& thumbs_obj, const py::object& votes_obj, std::int64_t side,
                         std::int64_t neighbours, double agreement, bool support, std::int64_t max_area, std::int64_t grow,
                         std::int64_t fill_size, std::int64_t window, bool scored,
                         std::int64_t num_threads) {
    const auto images = as_array<std::uint8_t>(images_obj, "images", 4);
    const auto bits = as_array<std::uint64_t>(bits_obj, "bits", 4);
    const auto cuts = as_array<std::uint8_t>(cuts_obj, "cuts", 1);
    const auto low = as_array<std::uint8_t>(low_obj, "low", 3);
    const auto high = as_array<std::uint8_t>(high_obj, "high", 3);
    const auto thumbs = as_array<std::int32_t>(thumbs_obj, "thumbs", 2);
    const auto votes = as_array<std::int32_t>(votes_obj, "votes", 3);
    require_thumbnail_range(images);
    const py::ssize_t P = low.shape(0), H = images.shape(1), W = images.shape(2), C = images.shape(3);
    const py::ssize_t N = H * W, G = votes.shape(0), L = bits.shape(1), words = (N + 63) / 64;
    const auto expect = [&images](const py::array& arr, const char* name,
                                   std::initializer_list<py::ssize_t> want) {
        if (!std::equal(want.begin(), want.end(), arr.shape())) {
            std::string text = "(";
            for (const py::ssize_t d : want) text += (text.size() > 1 ? ", " : "") + std::to_string(d);
            throw py::value_error(std::string(name) + ": expected " + text + ") for the images " +
                                  shape_of(images) + ", got " + shape_of(arr));
        }
    };
    if (P < 1) throw py::value_error("low: expected at least one seed, got " + shape_of(low));
    expect(low, "low", {P, C, N});
    expect(high, "high", {P, C, N});
    if (cuts.shape(0) != G + L) {
        throw py::value_error("cuts: expected one cut per all-seed level of votes (" + std::to_string(G) +
                              ") and per level of bits (" + std::to_string(L) + "), got " + shape_of(cuts));
    }
    expect(bits, "bits", {P, L, C, words});
    expect(votes, "votes", {G, C, N});
    for (py::ssize_t i = 0; i < G * C * N; ++i) {
        const std::int32_t vote = votes.data()[i];
        if (vote < -P || vote > P) {
            throw py::value_error("votes: expected sums of " + std::to_string(P) + " seeds' states in [-" +
                                  std::to_string(P) + ", " + std::to_string(P) + "], got " +
                                  std::to_string(vote));
        }
    }
    require_range("side", side, 1, 1 << 12);
    if (thumbs.shape(0) != P || thumbs.shape(1) != side * side * C) {
        throw py::value_error("thumbs: expected (" + std::to_string(P) + ", " +
                              std::to_string(side * side * C) + "), got " + shape_of(thumbs));
    }
    // Contents the kernel's integer bounds rely on: a seed's block sums are >= 0 and add
    // up to at most 255 H W C (an image's do), and no state bit lies past the last pixel.
    const std::int64_t most = 255 * static_cast<std::int64_t>(N) * C;
    for (py::ssize_t row = 0; row < P; ++row) {
        std::int64_t sum = 0;
        for (py::ssize_t i = 0; i < thumbs.shape(1); ++i) {
            const std::int32_t value = thumbs.data()[row * thumbs.shape(1) + i];
            if (value < 0) {
                throw py::value_error("thumbs: expected block sums >= 0, got " + std::to_string(value) +
                                      " in seed " + std::to_string(row));
            }
            sum += value;
        }
        if (sum > most) {
            throw py::value_error("thumbs: expected the block sums of a seed to add up to at most " +
                                  std::to_string(most) + ", got " + std::to_string(sum) + " in seed " +
                                  std::to_string(row));
        }
    }
    if (N % 64 != 0) {
        const std::uint64_t padding = ~std::uint64_t{0} << (N % 64);
        for (py::ssize_t row = 0; row < P * L * C; ++row) {
            if (bits.data()[row * words + words - 1] & padding) {
                throw py::value_error("bits: expected the bits past pixel " + std::to_string(N - 1) +
                                      " clear, found one set in plane " + std::to_string(row));
            }
        }
    }
    if (!(agreement >= 0.0 && agreement < 1.0)) {
        throw py::value_error("agreement: expected a fraction in [0, 1), got " + std::to_string(agreement));
    }
    require_range("neighbours", neighbours, 1, std::numeric_limits<std::int32_t>::max());
    if (static_cast<double>(std::min<py::ssize_t>(neighbours, P)) * static_cast<double>(H * W) >= 1073741824.0) {
        throw py::value_error("neighbours: " + std::to_string(neighbours) + " memories of " +
                              std::to_string(H * W) + " pixels overflow the int32 field; use fewer");
    }
    require_range("max_area", max_area, 0, std::numeric_limits<std::int64_t>::max());
    require_range("grow", grow, 0, 1 << 20);
    require_range("fill_size", fill_size, 1, 1 << 20);
    require_range("window", window, 1, 1 << 20);
    sifternet::NearestConfig config;
    config.neighbours = neighbours;
    config.agreement = agreement;
    config.support = support;
    config.max_area = max_area;
    config.grow = grow;
    config.fill_size = fill_size;
    config.window = window;
    config.scored = scored;
    config.num_threads = threads_arg(num_threads);
    const sifternet::NearestSeeds bank{bits.data(), cuts.data(),    low.data(), high.data(),
                                       thumbs.data(), votes.data(), P, L,
                                       words,         thumbs.shape(1), side, G};
    const sifternet::RepairShape shape{images.shape(0), H, W, C};
    py::array_t<std::uint8_t> out({shape.B, H, W, C});
    if (!scored) {
        {
            py::gil_scoped_release release;
            sifternet::nearest_repair(images.data(), shape, bank, config, out.mutable_data(), nullptr,
                                      nullptr, nullptr);
        }
        return py::make_tuple(out, py::none(), py::none(), py::none());
    }
    py::array_t<bool> holes({shape.B, H, W});
    py::array_t<std::int64_t> marked(shape.B), moved(shape.B);
    {
        py::gil_scoped_release release;
        sifternet::nearest_repair(images.data(), shape, bank, config, out.mutable_data(),
                                  reinterpret_cast<std::uint8_t*>(holes.mutable_data()),
                                  marked.mutable_data(), moved.mutable_data());
    }
    return py::make_tuple(out, holes, marked, moved);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "sifternet's C++ Hopfield kernel (private; use sifternet.HopfieldNetwork).";
    sifternet::install_fork_handler();  // a child forked after a parallel call runs serially

    m.def("hebbian_weights", &learn<std::int32_t, sifternet::hebbian_weights>,
          py::arg("patterns"), py::arg("num_threads") = 1,
          "Integer Hebbian weights N*W (int32, zero diagonal) of patterns (P, N) int8 in {-1,+1}.");
    m.def("storkey_weights", &learn<double, sifternet::storkey_weights>, py::arg("patterns"),
          py::arg("num_threads") = 1,
          "Storkey weights (float64, zero diagonal) of patterns (P, N) int8 in {-1,+1}.");

    m.def(
        "recall_overlap",
        [](const py::object& patterns_obj, const py::object& states, const py::object& indices,
           const py::object& steps, const std::string& order, const py::int_& seed,
           std::int64_t channel, std::int64_t channels, const py::object& thresholds,
           double margin, double agreement, std::int64_t max_sweeps, bool stats,
           std::int64_t num_threads) {
            const auto patterns = patterns_arg(patterns_obj);
            const py::ssize_t P = patterns.shape(0), N = patterns.shape(1);
            const RecallArgs args = recall_args(states, N, indices, steps, order, seed, channel,
                                                channels, thresholds, margin, agreement,
                                                max_sweeps, stats, num_threads);
            return run_recall(args, [&](const std::uint64_t* idx, py::ssize_t B,
                                        const RecallOutput& out) {
                sifternet::recall_overlap(patterns.data(), P, N, idx, B, args.config, out);
            });
        },
        py::arg("patterns"), py::arg("states"), py::arg("indices"), py::kw_only(),
        py::arg("steps"), py::arg("order"), py::arg("seed"), py::arg("channel"),
        py::arg("channels"), py::arg("thresholds"), py::arg("margin"), py::arg("agreement"),
        py::arg("max_sweeps"),
        py::arg("stats"),
        py::arg("num_threads"),
        "Hebbian recall in the overlap form; returns (states, flips, steps, converged, energy).");

    m.def(
        "recall_dense",
        [](const py::object& weights_obj, const py::object& states, const py::object& indices,
           const py::object& steps, const std::string& order, const py::int_& seed,
           std::int64_t channel, std::int64_t channels, const py::object& thresholds,
           double margin, double agreement, std::int64_t max_sweeps, bool stats,
           std::int64_t num_threads) {
            const bool integral = py::isinstance<py::array>(weights_obj) &&
                                  py::reinterpret_borrow<py::array>(weights_obj).dtype().kind() == 'i';
            // Kept alive until the kernel returns; only one of the two is filled.
            py::array_t<std::int32_t, py::array::c_style> wi;
            py::array_t<double, py::array::c_style> wf;
            py::array w = integral ? py::array(wi = as_array<std::int32_t>(weights_obj, "weights", 2))
                                   : py::array(wf = as_array<double>(weights_obj, "weights", 2));
            const py::ssize_t N = w.shape(0);
            if (N < 1 || w.shape(1) != N) {
                throw py::value_error("weights: expected a square (N, N) array with N >= 1, got " +
                                      shape_of(w));
            }
            const RecallArgs args = recall_args(states, N, indices, steps, order, seed, channel,
                                                channels, thresholds, margin, agreement,
                                                max_sweeps, stats, num_threads);
            if (agreement > 0.0) {
                throw py::value_error("agreement: needs the overlap form (Hebbian rule), not dense weights");
            }
            return run_recall(args, [&](const std::uint64_t* idx, py::ssize_t B,
                                        const RecallOutput& out) {
                if (integral) {
                    sifternet::recall_dense(wi.data(), N, idx, B, args.config, out);
                } else {
                    sifternet::recall_dense(wf.data(), N, idx, B, args.config, out);
                }
            });
        },
        py::arg("weights"), py::arg("states"), py::arg("indices"), py::kw_only(),
        py::arg("steps"), py::arg("order"), py::arg("seed"), py::arg("channel"),
        py::arg("channels"), py::arg("thresholds"), py::arg("margin"), py::arg("agreement"),
        py::arg("max_sweeps"),
        py::arg("stats"),
        py::arg("num_threads"),
        "Recall with dense weights: int32 (N*W, Hebbian) or float64 (W); same result tuple.");

    m.def("repair", &repair, py::arg("images"), py::arg("binarised"), py::arg("recalled"),
          py::kw_only(), py::arg("output"), py::arg("fill_size"), py::arg("joint_channels"),
          py::arg("num_threads"),
          "Purified pixels (B, H, W, C) uint8 of an output mode from the images (uint8), their "
          "binarised and recalled states (int8), all (B, H, W, C).");

    m.def("thumbnails", &thumbnails, py::arg("images"), py::arg("side"),
          "Block sums (B, side * side * C) int32 of images (B, H, W, C) uint8 on a side x side grid.");
    m.def("nearest_repair", &nearest_repair, py::arg("images"), py::arg("bits"),
          py::arg("cuts"),
          py::arg("low"), py::arg("high"), py::arg("thumbs"), py::arg("votes"), py::kw_only(),
          py::arg("side"), py::arg("neighbours"), py::arg("agreement"), py::arg("support"),
          py::arg("max_area"),
          py::arg("grow"), py::arg("fill_size"), py::arg("window"), py::arg("scored"),
          py::arg("num_threads"),
          "Nearest-seed repair of images (B, H, W, C) uint8: (repaired images, holes (B, H, W) "
          "bool, most marked pixels in a window (B,) int64, largest change summed in a window "
          "(B,) int64), the last three None unless scored.");

    m.def(
        "check_patterns", [](const py::object& patterns) { return patterns_arg(patterns); },
        py::arg("patterns"),
        "patterns as a C-contiguous (P, N) int8 array in {-1,+1}; TypeError/ValueError if not.");
    // Exists only for the tests (tests/test_kernel.py): runs for_each_row over n_rows rows
    // on num_threads threads however small the batch, each thread with a scratch array, and
    // throws std::runtime_error("row <failing_row> failed") in that row, or in every
    // thread's scratch factory when failing_row < 0. Returns how many rows ran.
    m.def(
        "_fail_in_row",
        [](std::int64_t n_rows, std::int64_t failing_row, std::int64_t num_threads) {
            if (n_rows < 0) throw py::value_error("n_rows: expected a count >= 0");
            const int threads = threads_arg(num_threads);
            std::atomic<std::int64_t> ran{0};
            py::gil_scoped_release release;
            sifternet::for_each_row(
                n_rows, {threads, 1, 0, 1},
                [&] {
                    if (failing_row < 0) throw std::runtime_error("scratch failed");
                    return sifternet::ThreadScratch<std::int64_t>(16);
                },
                [&](sifternet::ThreadScratch<std::int64_t>& scratch, std::int64_t row) {
                    scratch.data()[row % 16] += row;  // touches the scratch (for ASan)
                    if (row == failing_row) {
                        throw std::runtime_error("row " + std::to_string(row) + " failed");
                    }
                    ++ran;
                });
            return ran.load();
        },
        py::arg("n_rows"), py::arg("failing_row"), py::arg("num_threads"),
        "Test hook of the kernel's row loop (tests only): raises RuntimeError from a row.");
    m.def("has_openmp", &sifternet::has_openmp, "Whether the kernel was built with OpenMP.");
    m.def("max_threads", &sifternet::max_threads, "OpenMP's default thread count.");
#ifdef VERSION_INFO
#define SIFTERNET_STR(x) #x
#define SIFTERNET_XSTR(x) SIFTERNET_STR(x)
    m.attr("__version__") = SIFTERNET_XSTR(VERSION_INFO);
#endif
}
