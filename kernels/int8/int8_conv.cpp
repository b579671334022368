// int8_conv.cpp: the int8 family's QConv: weight prepack in VNNI order, the padded NHWC input copy,
// the AVX2 saturation check, and the oneTBB loop over (pixel tiles x channel blocks) that calls the
// single-threaded tile kernels of int8_tile.hpp.
// Why a padded copy and per-tile pixel pointers (not im2col): the copy costs one pass over the
// input (a 64@56x56 layer: 0.2 MB against 115 M MACs), a kernel row of the receptive field is then
// one contiguous run of kernel * Cp bytes (3 runs per 3x3 tap set, not 9), and tiles of NR
// consecutive output pixels may cross rows and images at no cost, so no tile is wasted on short
// rows.
#include "kernels/int8/int8_conv.hpp"

#include <tbb/blocked_range.h>
#include <tbb/blocked_range2d.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <vector>

#include "core/error.hpp"
#include "kernels/aligned.hpp"
#include "kernels/pixel_tiles.hpp"

namespace bitgrad::kernels {
namespace {

// Layers with fewer MACs run on the calling thread: waking a worker costs a few microseconds, about
// what ~1M MACs take on one core.
constexpr int64_t kSerialMacs = int64_t{1} << 20;
// Likewise for pack_input: copying 256 KiB takes about as long as a thread wake-up.
constexpr int64_t kSerialPackBytes = int64_t{1} << 18;


struct TileShape {
  void (*fn)(const Int8Tile&);
  int nr;  // pixels per tile
  int mr;  // 16-channel groups per block
};

TileShape tile_shape(Int8Isa isa, int64_t groups) {
  switch (isa) {
    case Int8Isa::kRef:
      return {conv_u8s8__ref, 4, 2};
    case Int8Isa::kAvx2:
      return {conv_u8s8__avx2_5x16, 5, 1};
    case Int8Isa::kAvx512:
      break;
  }
  if (groups >= 4) return {conv_u8s8__avx512_6x64, 6, 4};
  if (groups == 3) return {conv_u8s8__avx512_8x48, 8, 3};
  if (groups == 2) return {conv_u8s8__avx512_12x32, 12, 2};
  return {conv_u8s8__avx512_12x16, 12, 1};
}

Tier isa_tier(Int8Isa isa) {
  switch (isa) {
    case Int8Isa::kRef:
      return Tier::kScalar;
    case Int8Isa::kAvx2:
      return Tier::kAvx2;
    case Int8Isa::kAvx512:
      return Tier::kAvx512;
  }
  return Tier::kAvx512;
}

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// The largest magnitude a vpmaddubsw pair sum a[c] w[c] + a[c+1] w[c+1] (c even, same output
// channel and tap) can reach with codes up to 2^act_bits - 1; with `where` set, the first pair that
// leaves int16, as a message.
int64_t pair_bound(const ConvSpec& s, std::span<const int8_t> weights, std::string* where) {
  const int64_t max_code = (int64_t{1} << s.act_bits) - 1;
  const int64_t c_in = s.in_channels, taps = s.kernel * s.kernel;
  int64_t bound = 0;
  for (int64_t o = 0; o < s.out_channels; ++o)
    for (int64_t tap = 0; tap < taps; ++tap)
      for (int64_t c = 0; c < c_in; c += 2) {
        const int8_t* w = &weights[static_cast<std::size_t>((o * taps + tap) * c_in + c)];
        const int64_t w0 = w[0], w1 = c + 1 < c_in ? w[1] : 0;
        const int64_t pos = max_code * (std::max<int64_t>(w0, 0) + std::max<int64_t>(w1, 0));
        const int64_t neg = max_code * (std::min<int64_t>(w0, 0) + std::min<int64_t>(w1, 0));
        bound = std::max({bound, pos, -neg});
        if (where == nullptr || (pos <= 32767 && neg >= -32768)) continue;
        *where = "vpmaddubsw would saturate: output channel " + std::to_string(o) + ", tap (" +
                 std::to_string(tap / s.kernel) + "," + std::to_string(tap % s.kernel) +
                 "), input channels " + std::to_string(c) + "," + std::to_string(c + 1) +
                 " have weights " + std::to_string(w0) + "," + std::to_string(w1) + ", and " +
                 std::to_string(s.act_bits) + "-bit codes up to " + std::to_string(max_code) +
                 " give a pair sum of " + std::to_string(pos > 32767 ? pos : neg) +
                 ", outside int16 (the avx512 row, or act_bits <= 7, has no such limit)";
        return bound;
      }
  return bound;
}

class Int8Conv final : public QConv {
 public:
  Int8Conv(Int8Isa isa, std::string_view name, const ConvSpec& spec,
           std::span<const int8_t> weights)
      : spec_(spec), name_(name) {
    const int64_t k = spec.kernel, c_in = spec.in_channels;
    cp_ = round_up(c_in, 4);
    hp_ = spec.height + 2 * spec.pad;
    wp_ = spec.width + 2 * spec.pad;
    run_steps_ = k * cp_ / 4;
    for (int64_t i = 0; i < k; ++i)
      run_offsets_.push_back(static_cast<std::ptrdiff_t>(i * wp_ * cp_));
    const int64_t groups = (spec.out_channels + 15) / 16;
    const TileShape shape = tile_shape(isa, groups);
    fn_ = shape.fn;
    nr_ = shape.nr;
    // AVX2: int16 sums of `flush_steps_` pair sums stay within +-32767 (at least one step: a single
    // pair sum fits int16, or the layer was rejected). The other tiles ignore it.
    const int64_t bound = isa == Int8Isa::kAvx2 ? pair_bound(spec, weights, nullptr) : 0;
    flush_steps_ = bound == 0 ? int64_t{1} << 40 : std::max<int64_t>(1, 32767 / bound);
    // Blocks of mr groups, the last one narrower; VNNI order within each (int8_tile.hpp).
    const int64_t steps = k * run_steps_;
    for (int64_t g0 = 0; g0 < groups; g0 += shape.mr) {
      Block b;
      b.channel0 = 16 * g0;
      b.groups = std::min<int64_t>(shape.mr, groups - g0);
      b.channels = std::min<int64_t>(16 * b.groups, spec.out_channels - b.channel0);
      b.offset = static_cast<int64_t>(weights_.size());
      weights_.resize(weights_.size() + static_cast<std::size_t>(steps * b.groups * 64), 0);
      int8_t* dst = weights_.data() + b.offset;
      for (int64_t i = 0; i < k; ++i)
        for (int64_t s = 0; s < run_steps_; ++s)
          for (int64_t g = 0; g < b.groups; ++g)
            for (int64_t lane = 0; lane < 16; ++lane)
              for (int64_t j = 0; j < 4; ++j, ++dst) {
                const int64_t o = b.channel0 + 16 * g + lane;
                const int64_t col = 4 * s / cp_, c = 4 * s % cp_ + j;
                if (o < spec.out_channels && c < c_in)
                  *dst = weights[static_cast<std::size_t>(((o * k + i) * k + col) * c_in + c)];
              }
      blocks_.push_back(b);
    }
  }

  const ConvSpec& spec() const override { return spec_; }
  std::string_view kernel_name() const override { return name_; }
  std::size_t packed_weight_bytes() const override { return weights_.size(); }
  std::size_t packed_input_bytes() const override {
    return static_cast<std::size_t>(round_up(spec_.batch * hp_ * wp_ * cp_, 64));
  }

  void pack_input(const uint8_t* codes, std::byte* packed) const override {
    uint8_t* out = reinterpret_cast<uint8_t*>(packed);
    const int64_t rows = spec_.batch * hp_;
    const int64_t c_in = spec_.in_channels, pad = spec_.pad;
    const int64_t width = spec_.width;
    // One border pixel: pad_code in the real channels, 0 in the padding channels.
    auto fill = [&](uint8_t* dst, int64_t pixels) {
      for (int64_t x = 0; x < pixels; ++x, dst += cp_) {
        std::memset(dst, spec_.pad_code, static_cast<std::size_t>(c_in));
        std::memset(dst + c_in, 0, static_cast<std::size_t>(cp_ - c_in));
      }
    };
    auto pack_rows = [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        const int64_t n = row / hp_, y = row % hp_ - pad;
        uint8_t* dst = out + row * wp_ * cp_;
        if (y < 0 || y >= spec_.height) {
          fill(dst, wp_);
          continue;
        }
        fill(dst, pad);
        dst += pad * cp_;
        const uint8_t* src = codes + (n * spec_.height + y) * width * c_in;
        if (cp_ == c_in) {
          std::memcpy(dst, src, static_cast<std::size_t>(width * c_in));
        } else {
          for (int64_t x = 0; x < width; ++x) {
            std::memcpy(dst + x * cp_, src + x * c_in, static_cast<std::size_t>(c_in));
            std::memset(dst + x * cp_ + c_in, 0, static_cast<std::size_t>(cp_ - c_in));
          }
        }
        fill(dst + width * cp_, pad);
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
    const auto* in = reinterpret_cast<const uint8_t*>(packed);
    const int64_t pixels = spec_.out_pixels();
    const int64_t tiles = (pixels + nr_ - 1) / nr_;
    const int64_t nblocks = static_cast<int64_t>(blocks_.size());
    auto body = [&](int64_t t0, int64_t t1, int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        OutputCursor cursor = output_cursor(spec_, t0 * nr_);
        for (int64_t t = t0; t < t1; ++t)
          run_tile(in, acc, t, cursor, blocks_[static_cast<std::size_t>(b)]);
      }
    };
    if (spec_.macs() < kSerialMacs) {
      body(0, tiles, 0, nblocks);
      return;
    }
    // Split the channel blocks, not the pixel tiles, when they divide evenly among the threads:
    // each thread then runs every tile (no imbalance from a short last tile or an odd tile count,
    // 33 tiles on 256@14x14) and streams only its own blocks' weights.
    const auto threads = static_cast<int64_t>(
        tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism));
    const int64_t tile_grain = nblocks % std::max<int64_t>(threads, 1) == 0 ? tiles : 1;
    tbb::parallel_for(
        tbb::blocked_range2d<int64_t>(0, tiles, tile_grain, 0, nblocks, 1),
        [&](const tbb::blocked_range2d<int64_t>& r) {
          body(r.rows().begin(), r.rows().end(), r.cols().begin(), r.cols().end());
        },
        tbb::static_partitioner());
  }

 private:
  struct Block {
    int64_t channel0 = 0;  // first output channel
    int64_t groups = 0;    // 16-channel groups
    int64_t channels = 0;  // real output channels (the last block may be short)
    int64_t offset = 0;    // into weights_
  };

  static constexpr int kMaxNr = 12;

  // Runs one tile: its NR receptive fields from the cursor (left on the next tile's first pixel).
  void run_tile(const uint8_t* in, int32_t* acc, int64_t tile, OutputCursor& c, const Block& b) const {
    const int64_t first = tile * nr_;
    const int64_t valid = std::min<int64_t>(nr_, spec_.out_pixels() - first);
    const uint8_t* pixels[kMaxNr];
    gather_fields(spec_, in, hp_, wp_, cp_, first, nr_, c, pixels);
    Int8Tile t;
    t.pixels = pixels;
    t.run_offsets = run_offsets_.data();
    t.runs = spec_.kernel;
    t.run_steps = run_steps_;
    t.weights = weights_.data() + b.offset;
    t.groups = b.groups;
    t.out = acc + first * spec_.out_channels + b.channel0;
    t.out_stride = spec_.out_channels;
    t.pixels_valid = valid;
    t.channels_valid = b.channels;
    t.flush_steps = flush_steps_;
    fn_(t);
  }

  ConvSpec spec_;
  std::string_view name_;
  void (*fn_)(const Int8Tile&) = nullptr;
  int64_t nr_ = 1;
  int64_t cp_ = 4, hp_ = 1, wp_ = 1, run_steps_ = 1, flush_steps_ = 1;
  std::vector<std::ptrdiff_t> run_offsets_;
  std::vector<Block> blocks_;
  AlignedVector<int8_t> weights_;
};

}  // namespace

std::string int8_conv_rejects(Int8Isa isa, const ConvSpec& spec, std::span<const int8_t> weights) {
  if (std::string problem = conv_problem(spec, weights); !problem.empty()) return problem;
  std::string why;
  if (isa == Int8Isa::kAvx2) pair_bound(spec, weights, &why);
  return why;
}

std::unique_ptr<QConv> make_int8_conv(Int8Isa isa, std::string_view name, const ConvSpec& spec,
                                      std::span<const int8_t> weights) {
  const std::string why = int8_conv_rejects(isa, spec, weights);
  check_lazy(why.empty(),
             [&] { return std::string(name) + " cannot run " + spec.describe() + ": " + why; });
  check_lazy(isa_tier(isa) <= cpu_tier(), [&] {
    return std::string(name) + " needs the " + std::string(tier_name(isa_tier(isa))) +
           " tier; this CPU has " + std::string(tier_name(cpu_tier()));
  });
  return std::make_unique<Int8Conv>(isa, name, spec, weights);
}

}  // namespace bitgrad::kernels
