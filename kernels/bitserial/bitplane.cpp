// bitplane.cpp: activation and weight bit-plane packing (layouts documented in bitplane.hpp).
// Portable scalar code for the baseline ISA; the eight-codes-at-a-time gather is a multiply trick,
// not an intrinsic.
#include "kernels/bitserial/bitplane.hpp"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cstddef>
#include <cstring>

#include "core/error.hpp"

namespace bitgrad::kernels {
namespace {

// Bit `plane` of each of the 8 bytes of v, byte k -> bit k of the result. The multiplier puts byte
// k's bit (at 8k) at bit 56 + k; the partial products never collide, so no carries disturb the top
// byte.
uint32_t gather8(uint64_t v, int plane) {
  const uint64_t x = (v >> plane) & 0x0101010101010101ull;
  return static_cast<uint32_t>((x * 0x0102040810204080ull) >> 56);
}

// Up to 8 codes as the bytes of one little-endian word (missing bytes 0).
uint64_t load8(const uint8_t* p, int64_t n) {
  uint64_t v = 0;
  std::memcpy(&v, p, static_cast<size_t>(std::min<int64_t>(n, 8)));
  return v;
}

// Insertion sort of a handful of values (std::sort on these tiny arrays trips GCC 12's
// -Warray-bounds).
void sort_small(int8_t* v, int n) {
  for (int i = 1; i < n; ++i)
    for (int j = i; j > 0 && v[j - 1] > v[j]; --j) std::swap(v[j - 1], v[j]);
}

// Sorted distinct values of one channel's weights, at most 5 kept (5 means "too many").
int distinct_levels(const int8_t* w, int64_t depth, int8_t* out) {
  int n = 0;
  for (int64_t k = 0; k < depth; ++k) {
    const int8_t v = w[k];
    bool seen = false;
    for (int l = 0; l < n; ++l) seen = seen || out[l] == v;
    if (seen) continue;
    out[n++] = v;
    if (n > kMaxWeightLevels) break;
  }
  sort_small(out, n);
  return n;
}

// One channel's decomposition w = alpha + sum_j coef[j] * b_j (bitplane.hpp), generic form.
struct ChannelPlan {
  int planes = 0;
  int32_t alpha = 0;
  int32_t coef[kMaxWeightPlanes] = {0, 0, 0};
  int8_t value[kMaxWeightLevels] = {0, 0, 0, 0};  // value of index 00, 01, 10, 11 (b0 = low bit)
  uint8_t bits[kMaxWeightLevels] = {0, 1, 2, 3};  // plane bits of each index
  int used = 0;                                   // indices 0 .. used-1 hold the levels
};

ChannelPlan plan_channel(const int8_t* v, int n) {
  ChannelPlan p;
  const int zero = static_cast<int>(std::find(v, v + n, int8_t{0}) - v);  // n when 0 is no level
  p.used = n;
  if (n == 1) {
    p.value[0] = v[0];
    p.alpha = v[0];
    return p;
  }
  if (n == 2) {
    p.planes = 1;
    const int base = zero < n ? zero : 0;
    p.value[0] = v[base];
    p.value[1] = v[1 - base];
    p.alpha = v[base];
    p.coef[0] = v[1 - base] - v[base];
    return p;
  }
  // Indices 00, 01, 10, 11 get values; put 0 at 00 when it is a level (then alpha = 0).
  int order[4] = {0, 1, 2, 3};
  const bool pairable = n == 3 || v[0] + v[3] == v[1] + v[2];
  if (n == 3) {
    if (zero < n) std::swap(order[0], order[zero]);
  } else if (pairable) {
    // Pairs {v0, v3} and {v1, v2} have equal sums: one pair on the diagonal 00/11, the other on
    // 01/10.
    if (zero == 1 || zero == 2) {
      order[0] = zero;
      order[3] = 3 - zero;
      order[1] = 0;
      order[2] = 3;
    } else {
      order[0] = zero == 3 ? 3 : 0;
      order[3] = 3 - order[0];
      order[1] = 1;
      order[2] = 2;
    }
  } else if (zero < n) {
    std::swap(order[0], order[zero]);
  }
  for (int i = 0; i < n; ++i) p.value[i] = v[order[i]];
  p.alpha = p.value[0];
  p.coef[0] = p.value[1] - p.value[0];
  p.coef[1] = p.value[2] - p.value[0];
  p.planes = 2;
  if (!pairable) {
    p.planes = 3;
    p.coef[2] = p.value[3] - p.value[2] - p.value[1] + p.value[0];
    p.bits[3] = 7;  // b0, b1 and b0 & b1
  }
  return p;
}

bool all_in(std::span<const int8_t> w, std::initializer_list<int> allowed) {
  return std::all_of(w.begin(), w.end(), [&](int8_t x) {
    return std::find(allowed.begin(), allowed.end(), int{x}) != allowed.end();
  });
}

}  // namespace

int64_t act_chunks(int64_t channels) { return (channels + 31) / 32; }
int64_t act_pixel_words(int64_t channels, int act_bits) { return act_chunks(channels) * act_bits; }

void pack_act_pixels(std::span<const uint8_t> codes, int64_t channels, int act_bits,
                     std::span<uint32_t> out) {
  assert(channels > 0 && (act_bits == 1 || act_bits == 2));
  const int64_t pixels = static_cast<int64_t>(codes.size()) / channels;
  const int64_t chunks = act_chunks(channels), pw = chunks * act_bits;
  assert(static_cast<int64_t>(out.size()) >= pixels * pw);
  for (int64_t p = 0; p < pixels; ++p) {
    const uint8_t* src = codes.data() + p * channels;
    uint32_t* dst = out.data() + p * pw;
    for (int64_t q = 0; q < chunks; ++q) {
      uint32_t plane0 = 0, plane1 = 0;
      for (int64_t c = 32 * q; c < std::min(channels, 32 * q + 32); c += 8) {
        uint64_t v;
        if (channels - c >= 8) {
          std::memcpy(&v, src + c, 8);
        } else {
          v = load8(src + c,
                    channels - c);  // bytes beyond the channel count read as 0: zero padding
        }
        const int shift = static_cast<int>(c - 32 * q);
        plane0 |= gather8(v, 0) << shift;
        plane1 |= gather8(v, 1) << shift;
      }
      dst[q * act_bits] = plane0;
      if (act_bits == 2) dst[q * act_bits + 1] = plane1;
    }
  }
}

void fill_act_pixel(uint8_t code, int64_t channels, int act_bits, std::span<uint32_t> out) {
  const int64_t chunks = act_chunks(channels);
  assert(static_cast<int64_t>(out.size()) >= chunks * act_bits);
  for (int64_t q = 0; q < chunks; ++q) {
    const int64_t valid = std::min<int64_t>(32, channels - 32 * q);
    const uint32_t mask = valid == 32 ? ~0u : (1u << valid) - 1u;
    for (int i = 0; i < act_bits; ++i)
      out[static_cast<size_t>(q * act_bits + i)] = (code >> i) & 1 ? mask : 0u;
  }
}

void unpack_act_pixels(std::span<const uint32_t> packed, int64_t channels, int act_bits,
                       std::span<uint8_t> codes) {
  const int64_t pixels = static_cast<int64_t>(codes.size()) / channels;
  const int64_t pw = act_pixel_words(channels, act_bits);
  assert(static_cast<int64_t>(packed.size()) >= pixels * pw);
  for (int64_t p = 0; p < pixels; ++p)
    for (int64_t c = 0; c < channels; ++c) {
      uint8_t code = 0;
      for (int i = 0; i < act_bits; ++i)
        code |= static_cast<uint8_t>(
            ((packed[static_cast<size_t>(p * pw + (c / 32) * act_bits + i)] >> (c % 32)) & 1u)
            << i);
      codes[static_cast<size_t>(p * channels + c)] = code;
    }
}

int64_t KLayout::ksteps() const {
  const int64_t last_taps = taps - (segments() - 1) * taps_per_segment;
  return (segments() - 1) * full_segment_ksteps() + (last_taps * channels + 31) / 32;
}

int64_t KLayout::kstep_of(int64_t tap, int64_t channel) const {
  return (tap / taps_per_segment) * full_segment_ksteps() +
         ((tap % taps_per_segment) * channels + channel) / 32;
}

int KLayout::bit_of(int64_t tap, int64_t channel) const {
  return static_cast<int>(((tap % taps_per_segment) * channels + channel) % 32);
}

namespace {

// One bit writer per activation plane, both fed tap by tap: word s of plane i goes to out[s * AP +
// i]. Between appends fill < 32; each append adds at most 32 bits (a source word's padding bits are
// 0).
template <int AP>
void panel_row(const uint32_t* pixel, std::span<const int64_t> tap_offsets, int64_t channels,
               uint32_t* out) {
  const int64_t chunks = act_chunks(channels);
  uint64_t acc[AP] = {};
  int fill = 0;
  for (const int64_t offset : tap_offsets) {
    const uint32_t* src = pixel + offset;
    for (int64_t q = 0; q < chunks; ++q) {
      for (int i = 0; i < AP; ++i) acc[i] |= uint64_t{src[q * AP + i]} << fill;
      fill += chunks == 1 ? static_cast<int>(channels)
                          : static_cast<int>(std::min<int64_t>(32, channels - 32 * q));
      if (fill >= 32) {
        for (int i = 0; i < AP; ++i) {
          out[i] = static_cast<uint32_t>(acc[i]);
          acc[i] >>= 32;
        }
        out += AP;
        fill -= 32;
      }
    }
  }
  if (fill > 0)
    for (int i = 0; i < AP; ++i) out[i] = static_cast<uint32_t>(acc[i]);
}

}  // namespace

// ---- bit rows (narrow layers) -------------------------------------------------------------------

namespace {

// One plane of one panel row from K bit rows: each kernel row's taps are L = C * K consecutive bits
// (one 8-byte load, masked), appended to a 32-bit word writer in pieces of at most 32 bits. Every
// count is a compile-time constant, so the writer unrolls into shifts and ORs.
template <int C, int K, int AP>
[[gnu::always_inline]] inline void panel_bits(const uint8_t* const* rows, int64_t plane_bytes,
                                              int64_t first_pixel, uint32_t* out) {
  constexpr int kL = C * K;
  static_assert(kL <= 64 && C % 8 == 0, "one load per kernel row");
  constexpr uint64_t kMask = kL == 64 ? ~uint64_t{0} : (uint64_t{1} << kL) - 1;
  const int64_t byte = first_pixel * C / 8;
  for (int i = 0; i < AP; ++i) {
    uint64_t acc = 0;
    int fill = 0, s = 0;
    for (int r = 0; r < K; ++r) {
      uint64_t v;
      std::memcpy(&v, rows[r] + i * plane_bytes + byte, 8);
      v &= kMask;
      for (int done = 0; done < kL; done += 32) {
        const int n = kL - done < 32 ? kL - done : 32;
        acc |= ((v >> done) & 0xFFFFFFFFu) << fill;
        fill += n;
        if (fill >= 32) {
          out[s * AP + i] = static_cast<uint32_t>(acc);
          acc >>= 32;
          fill -= 32;
          ++s;
        }
      }
    }
    if (fill > 0) out[s * AP + i] = static_cast<uint32_t>(acc);
  }
}

}  // namespace

bool bit_rows_supported(int64_t channels, int64_t kernel) {
  return (channels == 8 || channels == 16) && kernel == 3;
}

void pack_bit_row(const uint8_t* codes, int64_t pixels, int64_t channels, int act_bits,
                  uint8_t* out, int64_t plane_bytes) {
  assert(channels % 8 == 0 && (act_bits == 1 || act_bits == 2));
  const int64_t bytes = pixels * channels / 8;
  assert(plane_bytes >= bytes);
  uint8_t* plane1 = out + plane_bytes;
  for (int64_t q = 0; q < bytes; ++q) {
    uint64_t v;
    std::memcpy(&v, codes + 8 * q, 8);
    out[q] = static_cast<uint8_t>(gather8(v, 0));
    if (act_bits == 2) plane1[q] = static_cast<uint8_t>(gather8(v, 1));
  }
}

void fill_bit_row(uint8_t code, int64_t pixels, int64_t channels, int act_bits, uint8_t* out,
                  int64_t plane_bytes) {
  assert(channels % 8 == 0);
  const int64_t bytes = pixels * channels / 8;
  for (int i = 0; i < act_bits; ++i)
    std::memset(out + i * plane_bytes, (code >> i) & 1 ? 0xFF : 0x00,
                static_cast<std::size_t>(bytes));
}

template <int C, int K, int AP>
void panel_rows_bits(const uint8_t* const* rows, int64_t plane_bytes, int64_t count, int64_t stride,
                     uint32_t* out) {
  constexpr int64_t kWords = (K * K * C + 31) / 32 * AP;
  const uint8_t* r[K];
  for (int i = 0; i < K; ++i) r[i] = rows[i];
  for (int64_t x = 0; x < count; ++x)
    panel_bits<C, K, AP>(r, plane_bytes, x * stride, out + x * kWords);
}

void pack_panel_rows_bits(const uint8_t* const* rows, int64_t plane_bytes, int64_t count,
                          int64_t stride, int64_t channels, int64_t kernel, int act_bits,
                          uint32_t* out) {
  assert(bit_rows_supported(channels, kernel));
  (void)kernel;
  if (channels == 16)
    act_bits == 2 ? panel_rows_bits<16, 3, 2>(rows, plane_bytes, count, stride, out)
                  : panel_rows_bits<16, 3, 1>(rows, plane_bytes, count, stride, out);
  else
    act_bits == 2 ? panel_rows_bits<8, 3, 2>(rows, plane_bytes, count, stride, out)
                  : panel_rows_bits<8, 3, 1>(rows, plane_bytes, count, stride, out);
}

// C = 16 (the first stage of CIFAR ResNets): tap t fills half t % 2 of word t / 2; no bit writer
// chain.
template <int AP>
void panel_row16(const uint32_t* pixel, std::span<const int64_t> tap_offsets, uint32_t* out) {
  const size_t taps = tap_offsets.size();
  for (size_t t = 0; t < taps; t += 2) {
    const uint32_t* lo = pixel + tap_offsets[t];
    const uint32_t* hi = t + 1 < taps ? pixel + tap_offsets[t + 1] : nullptr;
    for (int i = 0; i < AP; ++i)
      out[(t / 2) * AP + static_cast<size_t>(i)] = lo[i] | (hi != nullptr ? hi[i] << 16 : 0u);
  }
}

void pack_panel_row(const uint32_t* pixel, std::span<const int64_t> tap_offsets, int64_t channels,
                    int act_bits, uint32_t* out) {
  if (channels == 16 && act_bits == 2) {
    panel_row16<2>(pixel, tap_offsets, out);
  } else if (channels == 16) {
    panel_row16<1>(pixel, tap_offsets, out);
  } else if (act_bits == 2) {
    panel_row<2>(pixel, tap_offsets, channels, out);
  } else {
    panel_row<1>(pixel, tap_offsets, channels, out);
  }
}

std::string_view weight_encoding_name(WeightEncoding encoding) {
  switch (encoding) {
    case WeightEncoding::kConstant:
      return "constant";
    case WeightEncoding::kBinary:
      return "binary";
    case WeightEncoding::kTernary:
      return "ternary";
    case WeightEncoding::kSigned:
      return "signed";
    case WeightEncoding::kOddSymmetric:
      return "odd-symmetric";
    case WeightEncoding::kTwoPlane:
      return "two-plane";
    case WeightEncoding::kThreePlane:
      return "three-plane";
  }
  return "unknown";
}

bool WeightPlanes::uses_act_sum() const {
  return std::any_of(alpha.begin(), alpha.end(), [](int32_t a) { return a != 0; });
}

uint8_t WeightPlanes::bits_of(int64_t o, int8_t w) const {
  const size_t base = static_cast<size_t>(o * kMaxWeightLevels);
  for (int l = 0; l < level_count[static_cast<size_t>(o)]; ++l)
    if (levels[base + static_cast<size_t>(l)] == w)
      return level_bits[base + static_cast<size_t>(l)];
  assert(false && "weight value is not a level of its channel");
  return 0;
}

int32_t WeightPlanes::value_of(int64_t o, uint8_t bits) const {
  int32_t v = alpha[static_cast<size_t>(o)];
  for (int j = 0; j < kMaxWeightPlanes; ++j)
    if ((bits >> j) & 1) v += coef[static_cast<size_t>(o * kMaxWeightPlanes + j)];
  return v;
}

std::string weight_planes_problem(std::span<const int8_t> weights, int64_t out_channels) {
  if (out_channels <= 0 || weights.empty() ||
      static_cast<int64_t>(weights.size()) % out_channels != 0)
    return std::to_string(weights.size()) + " weights do not split into " +
           std::to_string(out_channels) + " output channels";
  const int64_t depth = static_cast<int64_t>(weights.size()) / out_channels;
  for (int64_t o = 0; o < out_channels; ++o) {
    int8_t levels[kMaxWeightLevels + 1];
    const int n = distinct_levels(weights.data() + o * depth, depth, levels);
    if (n > kMaxWeightLevels) {
      std::string seen;
      for (int l = 0; l < n; ++l) seen += (l ? " " : "") + std::to_string(levels[l]);
      return "weights of output channel " + std::to_string(o) +
             " take more than 4 distinct values (" + seen +
             ", ...); the bit-serial kernels take at most 4 per channel";
    }
  }
  return "";
}

WeightPlanes plan_weight_planes(std::span<const int8_t> weights, int64_t out_channels) {
  const std::string problem = weight_planes_problem(weights, out_channels);
  check(problem.empty(), "bit-plane weights: " + problem);
  const int64_t depth = static_cast<int64_t>(weights.size()) / out_channels;
  std::vector<ChannelPlan> channels(static_cast<size_t>(out_channels));
  int planes = 0;
  for (int64_t o = 0; o < out_channels; ++o) {
    int8_t levels[kMaxWeightLevels + 1];
    const int n = distinct_levels(weights.data() + o * depth, depth, levels);
    channels[static_cast<size_t>(o)] = plan_channel(levels, n);
    planes = std::max(planes, channels[static_cast<size_t>(o)].planes);
  }

  WeightPlanes plan;
  plan.out_channels = out_channels;
  plan.planes = planes;
  plan.encoding = planes == 0   ? WeightEncoding::kConstant
                  : planes == 1 ? WeightEncoding::kBinary
                  : planes == 2 ? WeightEncoding::kTwoPlane
                                : WeightEncoding::kThreePlane;
  plan.alpha.assign(static_cast<size_t>(out_channels), 0);
  plan.coef.assign(static_cast<size_t>(out_channels * kMaxWeightPlanes), 0);
  plan.levels.assign(static_cast<size_t>(out_channels * kMaxWeightLevels), 0);
  plan.level_bits.assign(static_cast<size_t>(out_channels * kMaxWeightLevels), 0);
  plan.level_count.assign(static_cast<size_t>(out_channels), 0);

  // The named two-plane encodings, when the whole layer fits one (same plane count as the generic).
  int32_t named_alpha = 0, named_coef0 = 0, named_coef1 = 0;
  uint8_t (*named_bits)(int8_t) = nullptr;
  if (planes == 2 && all_in(weights, {-1, 0, 1})) {
    plan.encoding = WeightEncoding::kTernary;
    named_coef0 = 1;
    named_coef1 = -1;
    named_bits = [](int8_t w) -> uint8_t { return w == 1 ? 1 : w == -1 ? 2 : 0; };
  } else if (planes == 2 && all_in(weights, {-2, -1, 0, 1})) {
    plan.encoding = WeightEncoding::kSigned;
    named_coef0 = 1;
    named_coef1 = -2;
    named_bits = [](int8_t w) -> uint8_t { return static_cast<uint8_t>(w & 3); };
  } else if (planes == 2 && all_in(weights, {-3, -1, 1, 3})) {
    plan.encoding = WeightEncoding::kOddSymmetric;
    named_alpha = -3;
    named_coef0 = 2;
    named_coef1 = 4;
    named_bits = [](int8_t w) -> uint8_t { return static_cast<uint8_t>((w + 3) / 2); };
  }

  for (int64_t o = 0; o < out_channels; ++o) {
    const ChannelPlan& c = channels[static_cast<size_t>(o)];
    const size_t lv = static_cast<size_t>(o * kMaxWeightLevels),
                 cf = static_cast<size_t>(o * kMaxWeightPlanes);
    plan.level_count[static_cast<size_t>(o)] = static_cast<uint8_t>(c.used);
    if (named_bits != nullptr) {
      plan.alpha[static_cast<size_t>(o)] = named_alpha;
      plan.coef[cf] = named_coef0;
      plan.coef[cf + 1] = named_coef1;
      int8_t sorted[kMaxWeightLevels];
      std::copy(c.value, c.value + c.used, sorted);
      sort_small(sorted, c.used);
      for (int l = 0; l < c.used; ++l) {
        plan.levels[lv + static_cast<size_t>(l)] = sorted[l];
        plan.level_bits[lv + static_cast<size_t>(l)] = named_bits(sorted[l]);
      }
    } else {
      plan.alpha[static_cast<size_t>(o)] = c.alpha;
      for (int j = 0; j < kMaxWeightPlanes; ++j) plan.coef[cf + static_cast<size_t>(j)] = c.coef[j];
      for (int l = 0; l < c.used; ++l) {
        plan.levels[lv + static_cast<size_t>(l)] = c.value[l];
        plan.level_bits[lv + static_cast<size_t>(l)] = c.bits[l];
      }
    }
    for (int l = 0; l < c.used; ++l)
      assert(plan.value_of(o, plan.level_bits[lv + static_cast<size_t>(l)]) ==
             plan.levels[lv + static_cast<size_t>(l)]);
  }
  return plan;
}

int64_t weight_groups(int64_t out_channels) {
  return (out_channels + kWeightGroupLanes - 1) / kWeightGroupLanes;
}

int64_t packed_weight_words(const WeightPlanes& plan, const KLayout& k) {
  return weight_groups(plan.out_channels) * k.ksteps() * plan.planes * kWeightGroupLanes;
}

void pack_weight_planes(std::span<const int8_t> weights, const WeightPlanes& plan, const KLayout& k,
                        std::span<uint32_t> out) {
  const int64_t depth = k.taps * k.channels, ksteps = k.ksteps(), planes = plan.planes;
  assert(static_cast<int64_t>(weights.size()) == plan.out_channels * depth);
  assert(static_cast<int64_t>(out.size()) >= packed_weight_words(plan, k));
  std::fill(out.begin(), out.begin() + packed_weight_words(plan, k), 0u);
  for (int64_t o = 0; o < plan.out_channels; ++o) {
    const int64_t g = o / kWeightGroupLanes, lane = o % kWeightGroupLanes;
    for (int64_t t = 0; t < k.taps; ++t)
      for (int64_t c = 0; c < k.channels; ++c) {
        const uint8_t bits =
            plan.bits_of(o, weights[static_cast<size_t>(o * depth + t * k.channels + c)]);
        const int64_t s = k.kstep_of(t, c);
        const uint32_t bit = 1u << k.bit_of(t, c);
        for (int64_t j = 0; j < planes; ++j)
          if ((bits >> j) & 1)
            out[static_cast<size_t>(((g * ksteps + s) * planes + j) * kWeightGroupLanes + lane)] |=
                bit;
      }
  }
}

void unpack_weight_planes(std::span<const uint32_t> packed, const WeightPlanes& plan,
                          const KLayout& k, std::span<int8_t> weights) {
  const int64_t depth = k.taps * k.channels, ksteps = k.ksteps(), planes = plan.planes;
  assert(static_cast<int64_t>(weights.size()) == plan.out_channels * depth);
  for (int64_t o = 0; o < plan.out_channels; ++o) {
    const int64_t g = o / kWeightGroupLanes, lane = o % kWeightGroupLanes;
    for (int64_t t = 0; t < k.taps; ++t)
      for (int64_t c = 0; c < k.channels; ++c) {
        const int64_t s = k.kstep_of(t, c);
        const int r = k.bit_of(t, c);
        uint8_t bits = 0;
        for (int64_t j = 0; j < planes; ++j)
          bits |= static_cast<uint8_t>(
              ((packed[static_cast<size_t>(((g * ksteps + s) * planes + j) * kWeightGroupLanes +
                                           lane)] >>
                r) &
               1u)
              << j);
        weights[static_cast<size_t>(o * depth + t * k.channels + c)] =
            static_cast<int8_t>(plan.value_of(o, bits));
      }
  }
}

}  // namespace bitgrad::kernels
