// bitserial_conv.cpp: BitserialConv: weight prepack, input packing (padded bit-plane image, im2col
// panel, window code sums) and the oneTBB loops around the tile functions.
#include "kernels/bitserial/bitserial_conv.hpp"

#include <tbb/blocked_range.h>
#include <tbb/blocked_range2d.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

#include <algorithm>
#include <cassert>
#include <new>

#include "core/error.hpp"

namespace bitgrad::kernels {
namespace {

// Below these sizes one thread is faster than waking others (a few microseconds of work).
constexpr int64_t kParallelMacs = int64_t{1} << 21;
constexpr int64_t kParallelPackCodes = int64_t{1} << 13;  // stage 1: activation codes to pack
constexpr int64_t kParallelPanelWords = int64_t{1}
                                        << 13;  // stage 2: panel words / window sums to write

std::size_t align64(std::size_t bytes) { return (bytes + 63) / 64 * 64; }

}  // namespace

std::string bitserial_rejects(const ConvSpec& spec, std::span<const int8_t> weights) {
  if (std::string problem = conv_problem(spec, weights); !problem.empty()) return problem;
  if (spec.act_bits > 2)
    return "activation codes of " + std::to_string(spec.act_bits) +
           " bits; the bit-serial kernels take act_bits 1 or 2 (use the int8 family)";
  return weight_planes_problem(weights, spec.out_channels);
}

void BitserialConv::Aligned::operator()(void* p) const {
  ::operator delete[](p, std::align_val_t{64});
}

template <typename T>
BitserialConv::Buffer<T> BitserialConv::allocate(int64_t count) {
  void* p = ::operator new[](static_cast<std::size_t>(std::max<int64_t>(count, 1)) * sizeof(T),
                             std::align_val_t{64});
  return Buffer<T>(static_cast<T*>(p));
}

BitserialConv::BitserialConv(const ConvSpec& spec, std::span<const int8_t> weights,
                             std::string_view kernel_name, BitserialTileFn tile,
                             BitRowPackFn pack_row)
    : spec_(spec), name_(kernel_name), tile_(tile), pack_row_(pack_row) {
  const std::string why = bitserial_rejects(spec, weights);
  check(why.empty(), std::string(kernel_name) + " cannot run " + spec.describe() + ": " + why);
  const int64_t c = spec.in_channels, k = spec.kernel, taps = k * k, ap = spec.act_bits;
  plan_ = plan_weight_planes(weights, spec.out_channels);
  padded_h_ = spec.height + 2 * spec.pad;
  padded_w_ = spec.width + 2 * spec.pad;
  pixel_words_ = act_pixel_words(c, spec.act_bits);
  panel_ = taps * act_chunks(c) > (taps * c + 31) / 32;
  klayout_ = KLayout{taps, c, panel_ ? taps : 1};
  const int64_t ksteps = klayout_.ksteps();
  groups_ = weight_groups(spec.out_channels);

  tap_offsets_.resize(static_cast<std::size_t>(taps));
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j)
      tap_offsets_[static_cast<std::size_t>(i * k + j)] = (i * padded_w_ + j) * pixel_words_;
  kstep_offset_.resize(static_cast<std::size_t>(ksteps));
  for (int64_t s = 0; s < ksteps; ++s) {
    const int64_t chunks = act_chunks(c);
    kstep_offset_[static_cast<std::size_t>(s)] = static_cast<int32_t>(
        panel_ ? s * ap : tap_offsets_[static_cast<std::size_t>(s / chunks)] + (s % chunks) * ap);
  }
  panel_row_words_ = panel_ ? ksteps * ap : 0;
  bit_rows_ = panel_ && bit_rows_supported(c, k);
  row_plane_bytes_ = bit_rows_ ? padded_w_ * c / 8 : 0;
  pad_pixel_.resize(static_cast<std::size_t>(pixel_words_));
  fill_act_pixel(spec.pad_code, c, spec.act_bits, pad_pixel_);

  const int planes = plan_.planes;
  if (planes > 0) {
    weight_words_ = packed_weight_words(plan_, klayout_);
    weights_ = allocate<uint32_t>(weight_words_);
    pack_weight_planes(
        weights, plan_, klayout_,
        std::span<uint32_t>(weights_.get(), static_cast<std::size_t>(weight_words_)));
    const int64_t pairs = ap * planes;
    pair_coef_ = allocate<int32_t>(groups_ * pairs * 16);
    std::fill(pair_coef_.get(), pair_coef_.get() + groups_ * pairs * 16, 0);
    for (int64_t o = 0; o < spec.out_channels; ++o)
      for (int64_t i = 0; i < ap; ++i)
        for (int64_t j = 0; j < planes; ++j) {
          // 2^i * coef as int16 in both halves (bitserial_tile.hpp); |coef| <= 510 so it fits.
          const int32_t c =
              (1 << i) * plan_.coef[static_cast<std::size_t>(o * kMaxWeightPlanes + j)];
          assert(c >= -32768 && c <= 32767);
          const uint32_t half = static_cast<uint32_t>(c) & 0xFFFFu;
          pair_coef_[static_cast<std::size_t>(((o / 16) * pairs + i * planes + j) * 16 + o % 16)] =
              static_cast<int32_t>(half | (half << 16));
        }
  }
  if (plan_.uses_act_sum()) {
    alpha_ = allocate<int32_t>(groups_ * 16);
    std::fill(alpha_.get(), alpha_.get() + groups_ * 16, 0);
    std::copy(plan_.alpha.begin(), plan_.alpha.end(), alpha_.get());
  }

  // The input buffer's regions.
  const int64_t padded_pixels = spec.batch * padded_h_ * padded_w_;
  std::size_t offset = 0;
  image_offset_ = offset;
  offset += align64(
      std::max(static_cast<std::size_t>(padded_pixels * pixel_words_) * sizeof(uint32_t),
               static_cast<std::size_t>(spec.batch * padded_h_ * ap * row_plane_bytes_ + 8)));
  panel_offset_ = offset;
  if (panel_)
    offset +=
        align64(static_cast<std::size_t>(spec.out_pixels() * panel_row_words_) * sizeof(uint32_t));
  pixel_sum_offset_ = offset;
  window_sum_offset_ = offset;
  if (alpha_) {
    offset += align64(static_cast<std::size_t>(padded_pixels) * sizeof(int32_t));
    window_sum_offset_ = offset;
    offset += align64(static_cast<std::size_t>(spec.out_pixels()) * sizeof(int32_t));
  }
  input_bytes_ = std::max<std::size_t>(offset, 64);
}

std::size_t BitserialConv::packed_weight_bytes() const {
  const std::size_t coef =
      plan_.planes > 0 ? static_cast<std::size_t>(groups_ * spec_.act_bits * plan_.planes * 16) : 0;
  const std::size_t alpha = alpha_ ? static_cast<std::size_t>(groups_ * 16) : 0;
  return static_cast<std::size_t>(weight_words_) * sizeof(uint32_t) +
         (coef + alpha) * sizeof(int32_t);
}

double BitserialConv::kstep_efficiency() const {
  return static_cast<double>(spec_.depth()) / static_cast<double>(klayout_.ksteps() * 32);
}

void BitserialConv::pack_input(const uint8_t* codes, std::byte* packed) const {
  const ConvSpec& s = spec_;
  const int64_t c = s.in_channels, pad = s.pad, pw = pixel_words_;
  uint32_t* image = reinterpret_cast<uint32_t*>(packed + image_offset_);
  int32_t* pixel_sum = alpha_ ? reinterpret_cast<int32_t*>(packed + pixel_sum_offset_) : nullptr;
  const int32_t pad_sum = static_cast<int32_t>(s.pad_code * c);

  // Stage 1: one padded image row per iteration.
  const int64_t rows = s.batch * padded_h_;
  auto pack_rows = [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r / padded_h_, y = r % padded_h_ - pad;
      uint32_t* dst = image + r * padded_w_ * pw;
      int32_t* sum = pixel_sum != nullptr ? pixel_sum + r * padded_w_ : nullptr;
      const bool inside = y >= 0 && y < s.height;
      if (bit_rows_) {
        uint8_t* bits = reinterpret_cast<uint8_t*>(image) + r * s.act_bits * row_plane_bytes_;
        if (!inside) {
          fill_bit_row(s.pad_code, padded_w_, c, s.act_bits, bits, row_plane_bytes_);
          if (sum != nullptr) std::fill(sum, sum + padded_w_, pad_sum);
          continue;
        }
        const int64_t pad_bytes = pad * c / 8;
        fill_bit_row(s.pad_code, pad, c, s.act_bits, bits, row_plane_bytes_);
        fill_bit_row(s.pad_code, pad, c, s.act_bits, bits + pad_bytes + s.width * c / 8,
                     row_plane_bytes_);
        pack_row_(codes + ((n * s.height + y) * s.width) * c, s.width, c, s.act_bits,
                  bits + pad_bytes, row_plane_bytes_);
        if (sum != nullptr) {
          const uint8_t* src = codes + ((n * s.height + y) * s.width) * c;
          std::fill(sum, sum + pad, pad_sum);
          std::fill(sum + pad + s.width, sum + padded_w_, pad_sum);
          for (int64_t x = 0; x < s.width; ++x) {
            int32_t total = 0;
            for (int64_t ch = 0; ch < c; ++ch) total += src[x * c + ch];
            sum[pad + x] = total;
          }
        }
        continue;
      }
      for (int64_t xp = 0; xp < padded_w_; ++xp) {
        const int64_t x = xp - pad;
        if (inside && x >= 0 && x < s.width) continue;
        std::copy(pad_pixel_.begin(), pad_pixel_.end(), dst + xp * pw);
        if (sum != nullptr) sum[xp] = pad_sum;
      }
      if (!inside) continue;
      const uint8_t* src = codes + ((n * s.height + y) * s.width) * c;
      pack_act_pixels(std::span<const uint8_t>(src, static_cast<std::size_t>(s.width * c)), c,
                      s.act_bits,
                      std::span<uint32_t>(dst + pad * pw, static_cast<std::size_t>(s.width * pw)));
      if (sum != nullptr)
        for (int64_t x = 0; x < s.width; ++x) {
          int32_t total = 0;
          for (int64_t ch = 0; ch < c; ++ch) total += src[x * c + ch];
          sum[pad + x] = total;
        }
    }
  };
  // Bit rows cost ~0.1 ns per code: below 64K codes one thread beats waking others.
  if (s.input_elements() < (bit_rows_ ? kParallelPackCodes * 8 : kParallelPackCodes)) {
    pack_rows(0, rows);
  } else {
    tbb::parallel_for(
        tbb::blocked_range<int64_t>(0, rows),
        [&](const tbb::blocked_range<int64_t>& r) { pack_rows(r.begin(), r.end()); },
        tbb::static_partitioner());
  }
  if (!panel_ && pixel_sum == nullptr) return;

  // Stage 2: per output pixel, the panel row and the window sum.
  uint32_t* panel = panel_ ? reinterpret_cast<uint32_t*>(packed + panel_offset_) : nullptr;
  int32_t* window_sum =
      pixel_sum != nullptr ? reinterpret_cast<int32_t*>(packed + window_sum_offset_) : nullptr;
  const int64_t oh = s.out_height(), ow = s.out_width(), k = s.kernel;
  if (bit_rows_) {
    // The panel one output row at a time from the bit rows; the window sums (if any) below.
    auto pack_out_rows = [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t n = r / oh, y = r % oh;
        const uint8_t* rows[3];  // bit_rows_supported: kernel 3
        for (int64_t i = 0; i < 3; ++i)
          rows[i] = reinterpret_cast<const uint8_t*>(image) +
                    (n * padded_h_ + y * s.stride + i) * s.act_bits * row_plane_bytes_;
        pack_panel_rows_bits(rows, row_plane_bytes_, ow, s.stride, c, k, s.act_bits,
                             panel + r * ow * panel_row_words_);
      }
    };
    if (s.out_pixels() * panel_row_words_ < kParallelPanelWords * 4) {
      pack_out_rows(0, s.batch * oh);
    } else {
      tbb::parallel_for(
          tbb::blocked_range<int64_t>(0, s.batch * oh),
          [&](const tbb::blocked_range<int64_t>& r) { pack_out_rows(r.begin(), r.end()); },
          tbb::static_partitioner());
    }
    if (window_sum == nullptr) return;
    panel = nullptr;
  }
  auto pack_pixels = [&](int64_t m0, int64_t m1) {
    int64_t n = m0 / (oh * ow), y = m0 / ow % oh, x = m0 % ow;
    for (int64_t m = m0; m < m1; ++m) {
      const int64_t first =
          (n * padded_h_ + y * s.stride) * padded_w_ + x * s.stride;  // padded pixel index
      if (panel != nullptr) {
        pack_panel_row(image + first * pw, tap_offsets_, c, s.act_bits,
                       panel + m * panel_row_words_);
      }
      if (window_sum != nullptr) {
        int32_t total = 0;
        for (int64_t i = 0; i < k; ++i)
          for (int64_t j = 0; j < k; ++j) total += pixel_sum[first + i * padded_w_ + j];
        window_sum[m] = total;
      }
      if (++x == ow) {
        x = 0;
        if (++y == oh) {
          y = 0;
          ++n;
        }
      }
    }
  };
  const int64_t m_total = s.out_pixels();
  if (m_total * std::max<int64_t>(panel_row_words_, k * k) < kParallelPanelWords) {
    pack_pixels(0, m_total);
  } else {
    tbb::parallel_for(
        tbb::blocked_range<int64_t>(0, m_total, 256),
        [&](const tbb::blocked_range<int64_t>& r) { pack_pixels(r.begin(), r.end()); },
        tbb::static_partitioner());
  }
}

void BitserialConv::run_block(const std::byte* packed, int32_t* acc, int64_t tile_begin,
                              int64_t tile_end, int64_t group_begin, int64_t group_end) const {
  const ConvSpec& s = spec_;
  const int64_t m_total = s.out_pixels(), oh = s.out_height(), ow = s.out_width();
  const uint32_t* act = reinterpret_cast<const uint32_t*>(packed);
  const int64_t image_word = static_cast<int64_t>(image_offset_ / sizeof(uint32_t));
  const int64_t panel_word = static_cast<int64_t>(panel_offset_ / sizeof(uint32_t));
  const int32_t* window_sum =
      alpha_ ? reinterpret_cast<const int32_t*>(packed + window_sum_offset_) : nullptr;

  BitserialTileArgs args;
  args.act = act;
  args.kstep_offset = kstep_offset_.data();
  args.ksteps = klayout_.ksteps();
  args.act_planes = s.act_bits;
  args.weight_planes = plan_.planes;
  args.weights = weights_.get();
  args.pair_coef = pair_coef_.get();
  args.alpha = alpha_.get();
  args.group_begin = group_begin;
  args.group_end = group_end;
  args.out_channels = s.out_channels;

  int64_t base[kBitserialTilePixels];
  for (int64_t t = tile_begin; t < tile_end; ++t) {
    const int64_t m0 = t * kBitserialTilePixels;
    const int pixels = static_cast<int>(std::min<int64_t>(kBitserialTilePixels, m_total - m0));
    if (panel_) {
      for (int p = 0; p < pixels; ++p) base[p] = panel_word + (m0 + p) * panel_row_words_;
    } else {
      int64_t n = m0 / (oh * ow), y = m0 / ow % oh, x = m0 % ow;
      for (int p = 0; p < pixels; ++p) {
        base[p] =
            image_word + ((n * padded_h_ + y * s.stride) * padded_w_ + x * s.stride) * pixel_words_;
        if (++x == ow) {
          x = 0;
          if (++y == oh) {
            y = 0;
            ++n;
          }
        }
      }
    }
    int32_t* out = acc + m0 * s.out_channels;
    if (plan_.planes == 0) {
      // Every channel constant: acc = alpha * (window code sum); no bit products at all.
      for (int p = 0; p < pixels; ++p)
        for (int64_t o = group_begin * 16; o < std::min(group_end * 16, s.out_channels); ++o)
          out[p * s.out_channels + o] =
              window_sum != nullptr
                  ? static_cast<int32_t>(
                        static_cast<uint32_t>(plan_.alpha[static_cast<std::size_t>(o)]) *
                        static_cast<uint32_t>(window_sum[m0 + p]))
                  : 0;
      continue;
    }
    args.pixel_base = base;
    args.pixels = pixels;
    args.act_sum = window_sum != nullptr ? window_sum + m0 : nullptr;
    args.out = out;
    tile_(args);
  }
}

void BitserialConv::run(const std::byte* packed, int32_t* acc) const {
  const int64_t tiles = (spec_.out_pixels() + kBitserialTilePixels - 1) / kBitserialTilePixels;
  if (spec_.macs() < kParallelMacs) {
    run_block(packed, acc, 0, tiles, 0, groups_);
    return;
  }
  tbb::parallel_for(
      tbb::blocked_range2d<int64_t>(0, tiles, 1, 0, groups_, 2),
      [&](const tbb::blocked_range2d<int64_t>& r) {
        run_block(packed, acc, r.rows().begin(), r.rows().end(), r.cols().begin(), r.cols().end());
      },
      tbb::static_partitioner());
}

}  // namespace bitgrad::kernels
