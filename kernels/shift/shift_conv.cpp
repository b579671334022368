// shift_conv.cpp: the shift family's QConv: power-of-two decomposition of the weights, packing of
// the per-lane exponents and sign masks, the padded NHWC uint32 input copy, the int16 flush
// interval, and the oneTBB loop over (pixel tiles x 32-channel groups) that calls the tiles of
// shift_tile.hpp.
#include "kernels/shift/shift_conv.hpp"

#include <tbb/blocked_range.h>
#include <tbb/blocked_range2d.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

#include <algorithm>
#include <cstdlib>
#include <new>
#include <vector>

#include "core/error.hpp"
#include "kernels/aligned.hpp"
#include "kernels/pixel_tiles.hpp"
#include "kernels/shift/shift_tile.hpp"

namespace bitgrad::kernels {
namespace {

// As in int8_conv.cpp: smaller layers run on the calling thread.
constexpr int64_t kSerialMacs = int64_t{1} << 20;
constexpr int64_t kSerialPackBytes = int64_t{1} << 18;


struct TileShape {
  void (*fn)(const ShiftTile&);
  int nr;
};

TileShape tile_shape(ShiftIsa isa) {
  if (isa == ShiftIsa::kRef) return {conv_apot__ref, 4};
  return {conv_apot__avx512_8x32, 8};
}

Tier isa_tier(ShiftIsa isa) { return isa == ShiftIsa::kRef ? Tier::kScalar : Tier::kAvx512; }

std::string weight_reason(const ConvSpec& s, std::span<const int8_t> weights) {
  const int64_t taps = s.kernel * s.kernel;
  for (std::size_t i = 0; i < weights.size(); ++i) {
    if (power_terms(weights[i])) continue;
    const auto idx = static_cast<int64_t>(i);
    const int64_t o = idx / (taps * s.in_channels), tap = idx / s.in_channels % taps,
                  c = idx % s.in_channels;
    return "weight " + std::to_string(weights[i]) + " (output channel " + std::to_string(o) +
           ", tap (" + std::to_string(tap / s.kernel) + "," + std::to_string(tap % s.kernel) +
           "), input channel " + std::to_string(c) +
           ") is not a sum of at most two signed powers of two; the shift kernels "
           "take APoT lattice weights such as +-{0, 1, 2, 3, 4, 6, 8, 10} (the int8 family runs "
           "any weights)";
  }
  return "";
}

class ShiftConv final : public QConv {
 public:
  ShiftConv(ShiftIsa isa, std::string_view name, const ConvSpec& spec,
            std::span<const int8_t> weights)
      : spec_(spec), name_(name) {
    const TileShape shape = tile_shape(isa);
    fn_ = shape.fn;
    nr_ = shape.nr;
    const int64_t k = spec.kernel, c_in = spec.in_channels;
    hp_ = spec.height + 2 * spec.pad;
    wp_ = spec.width + 2 * spec.pad;
    run_steps_ = k * c_in;
    for (int64_t i = 0; i < k; ++i)
      run_offsets_.push_back(static_cast<std::ptrdiff_t>(i * wp_ * c_in));

    std::vector<PowerTerms> terms(weights.size());
    int max_terms = 0, max_abs = 1;
    bool ternary = true;
    for (std::size_t i = 0; i < weights.size(); ++i) {
      terms[i] = *power_terms(weights[i]);
      max_terms = std::max(max_terms, terms[i].count);
      max_abs = std::max(max_abs, std::abs(int{weights[i]}));
      ternary = ternary && weights[i] >= -1 && weights[i] <= 1;
    }
    terms_ = ternary ? 0 : max_terms;
    const int64_t t_count = std::max(terms_, 1);
    // Any flush_steps products of one lane sum to at most flush_steps * max_code * max|w| <= 32767.
    const int64_t max_code = (int64_t{1} << spec.act_bits) - 1;
    flush_steps_ = std::max<int64_t>(1, 32767 / (max_code * max_abs));

    const int64_t steps = k * run_steps_;
    groups_ = (spec.out_channels + 31) / 32;
    if (terms_ > 0) shifts_.assign(static_cast<std::size_t>(groups_ * steps * t_count * 32), 0);
    masks_.assign(static_cast<std::size_t>(groups_ * steps * t_count * 2), 0);
    for (int64_t g = 0; g < groups_; ++g)
      for (int64_t lane = 0; lane < 32; ++lane) {
        const int64_t o = 32 * g + lane;
        if (o >= spec.out_channels) break;
        for (int64_t step = 0; step < steps; ++step) {
          // step = (kernel row i) * run_steps + (kernel column j) * Cin + c, the OHWI order of o's
          // weights.
          const PowerTerms& pt = terms[static_cast<std::size_t>(o * steps + step)];
          for (int t = 0; t < pt.count; ++t) {
            const int64_t at = (g * steps + step) * t_count + t;
            if (terms_ > 0)
              shifts_[static_cast<std::size_t>(at * 32 + lane)] =
                  static_cast<int16_t>(pt.exponent[t]);
            masks_[static_cast<std::size_t>(at * 2 + (pt.sign[t] > 0 ? 0 : 1))] |= uint32_t{1}
                                                                                   << lane;
          }
        }
      }
  }

  const ConvSpec& spec() const override { return spec_; }
  std::string_view kernel_name() const override { return name_; }
  std::size_t packed_weight_bytes() const override {
    return shifts_.size() * sizeof(int16_t) + masks_.size() * sizeof(uint32_t);
  }
  std::size_t packed_input_bytes() const override {
    return static_cast<std::size_t>(spec_.batch * hp_ * wp_ * spec_.in_channels) * sizeof(uint32_t);
  }

  void pack_input(const uint8_t* codes, std::byte* packed) const override {
    uint32_t* out = reinterpret_cast<uint32_t*>(packed);
    const int64_t rows = spec_.batch * hp_, c_in = spec_.in_channels, pad = spec_.pad;
    const uint32_t border = spec_.pad_code * 0x10001u;
    auto pack_rows = [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        const int64_t n = row / hp_, y = row % hp_ - pad;
        uint32_t* dst = out + row * wp_ * c_in;
        const bool inside_row = y >= 0 && y < spec_.height;
        for (int64_t x = -pad; x < spec_.width + pad; ++x) {
          if (inside_row && x >= 0 && x < spec_.width) {
            const uint8_t* src = codes + ((n * spec_.height + y) * spec_.width + x) * c_in;
            for (int64_t c = 0; c < c_in; ++c) *dst++ = src[c] * 0x10001u;
          } else {
            dst = std::fill_n(dst, c_in, border);
          }
        }
      }
    };
    if (static_cast<int64_t>(packed_input_bytes()) < kSerialPackBytes) {
      pack_rows(0, rows);
      return;
    }
    tbb::parallel_for(
        tbb::blocked_range<int64_t>(0, rows),
        [&](const tbb::blocked_range<int64_t>& r) { pack_rows(r.begin(), r.end()); },
        tbb::static_partitioner());
  }

  void run(const std::byte* packed, int32_t* acc) const override {
    const auto* in = reinterpret_cast<const uint32_t*>(packed);
    const int64_t tiles = (spec_.out_pixels() + nr_ - 1) / nr_;
    auto body = [&](int64_t t0, int64_t t1, int64_t g0, int64_t g1) {
      for (int64_t g = g0; g < g1; ++g) {
        OutputCursor cursor = output_cursor(spec_, t0 * nr_);
        for (int64_t t = t0; t < t1; ++t) run_tile(in, acc, t, cursor, g);
      }
    };
    if (spec_.macs() < kSerialMacs) {
      body(0, tiles, 0, groups_);
      return;
    }
    tbb::parallel_for(
        tbb::blocked_range2d<int64_t>(0, tiles, 0, groups_),
        [&](const tbb::blocked_range2d<int64_t>& r) {
          body(r.rows().begin(), r.rows().end(), r.cols().begin(), r.cols().end());
        },
        tbb::static_partitioner());
  }

 private:
  static constexpr int kMaxNr = 8;

  // Runs one tile: its NR receptive fields from the cursor (left on the next tile's first pixel).
  void run_tile(const uint32_t* in, int32_t* acc, int64_t tile, OutputCursor& c, int64_t group) const {
    const int64_t first = tile * nr_;
    const int64_t valid = std::min<int64_t>(nr_, spec_.out_pixels() - first);
    const uint32_t* pixels[kMaxNr];
    gather_fields(spec_, in, hp_, wp_, spec_.in_channels, first, nr_, c, pixels);
    const int64_t t_count = std::max(terms_, 1);
    const int64_t group_steps = spec_.kernel * run_steps_ * t_count;
    ShiftTile t;
    t.pixels = pixels;
    t.run_offsets = run_offsets_.data();
    t.runs = spec_.kernel;
    t.run_steps = run_steps_;
    t.shifts = terms_ > 0 ? shifts_.data() + group * group_steps * 32 : nullptr;
    t.masks = masks_.data() + group * group_steps * 2;
    t.terms = terms_;
    t.flush_steps = flush_steps_;
    t.out = acc + first * spec_.out_channels + 32 * group;
    t.out_stride = spec_.out_channels;
    t.pixels_valid = valid;
    t.channels_valid = std::min<int64_t>(32, spec_.out_channels - 32 * group);
    fn_(t);
  }

  ConvSpec spec_;
  std::string_view name_;
  void (*fn_)(const ShiftTile&) = nullptr;
  int64_t nr_ = 1;
  int64_t hp_ = 1, wp_ = 1, run_steps_ = 1, groups_ = 1, flush_steps_ = 1;
  int terms_ = 0;
  std::vector<std::ptrdiff_t> run_offsets_;
  AlignedVector<int16_t> shifts_;  // [group][step][T][32]
  std::vector<uint32_t> masks_;                      // [group][step][T][2]
};

}  // namespace

std::optional<PowerTerms> power_terms(int w) {
  PowerTerms pt;
  if (w == 0) return pt;
  for (int e = 0; e <= 7; ++e)
    for (int s : {1, -1})
      if (w == s * (1 << e)) {
        pt.count = 1;
        pt.sign[0] = s;
        pt.exponent[0] = e;
        return pt;
      }
  for (int e0 = 1; e0 <= 7; ++e0)
    for (int e1 = 0; e1 < e0; ++e1)
      for (int s0 : {1, -1})
        for (int s1 : {1, -1})
          if (w == s0 * (1 << e0) + s1 * (1 << e1)) {
            pt.count = 2;
            pt.sign[0] = s0;
            pt.sign[1] = s1;
            pt.exponent[0] = e0;
            pt.exponent[1] = e1;
            return pt;
          }
  return std::nullopt;
}

std::string shift_conv_rejects(ShiftIsa /*isa*/, const ConvSpec& spec,
                               std::span<const int8_t> weights) {
  if (std::string problem = conv_problem(spec, weights); !problem.empty()) return problem;
  return weight_reason(spec, weights);
}

std::unique_ptr<QConv> make_shift_conv(ShiftIsa isa, std::string_view name, const ConvSpec& spec,
                                       std::span<const int8_t> weights) {
  const std::string why = shift_conv_rejects(isa, spec, weights);
  check_lazy(why.empty(),
             [&] { return std::string(name) + " cannot run " + spec.describe() + ": " + why; });
  check_lazy(isa_tier(isa) <= cpu_tier(), [&] {
    return std::string(name) + " needs the " + std::string(tier_name(isa_tier(isa))) +
           " tier; this CPU has " + std::string(tier_name(cpu_tier()));
  });
  return std::make_unique<ShiftConv>(isa, name, spec, weights);
}

}  // namespace bitgrad::kernels
