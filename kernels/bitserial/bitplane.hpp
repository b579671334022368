// bitplane.hpp: bit-plane packing for the bit-serial kernels: unsigned activation codes (1 or 2
// bits) into planes along the channel axis, the im2col panel of one output pixel, and integer
// weights in any encoding with at most 4 distinct values per output channel (KERNELS.md §5.2), with
// unpack functions that invert every packing. The bit order below is the contract the tile
// functions (bitserial_tile.hpp) and the one-hot tests (tests/kernels/bitplane_test.cpp) rely on.
// Not here: threading, buffers and the convolution itself (bitserial_conv.hpp), any SIMD code.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace bitgrad::kernels {

// -------------------------------------------------------------------------------------------------
// Activations. A code a < 2^act_bits (act_bits = 1 or 2) is a = sum_i 2^i * a_i; plane i holds the
// bits a_i. One pixel of C channels packs into chunks = ceil(C / 32) chunks of act_bits words:
//   word index  q * act_bits + i   = plane i of channels 32q .. 32q+31,
//   bit b (LSB = bit 0) of it      = bit i of the code of channel 32q + b,
//   bits of channels >= C          = 0 (exact channel padding: zero bits AND to zero with
//   anything).
// Example, C = 40, act_bits = 2: words [q0 plane0, q0 plane1, q1 plane0, q1 plane1]; channel 35
// with code 2 sets bit 3 of word 3 only.
// -------------------------------------------------------------------------------------------------

// ceil(channels / 32): 32-channel chunks per pixel.
int64_t act_chunks(int64_t channels);
// Words per packed pixel: act_chunks(channels) * act_bits.
int64_t act_pixel_words(int64_t channels, int act_bits);

// Packs codes [pixels, channels] (NHWC rows; pixels = codes.size() / channels) into
// out[pixels * act_pixel_words] in the layout above. Codes must be < 2^act_bits (higher bits are
// ignored, as the kernels would ignore them; callers check). Single-threaded.
void pack_act_pixels(std::span<const uint8_t> codes, int64_t channels, int act_bits,
                     std::span<uint32_t> out);
// One pixel whose every channel holds `code` (a padding pixel with the activation zero point), in
// out[act_pixel_words]; the channel padding bits stay 0.
void fill_act_pixel(uint8_t code, int64_t channels, int act_bits, std::span<uint32_t> out);
// The inverse of pack_act_pixels: codes [pixels, channels] from the packed words.
void unpack_act_pixels(std::span<const uint32_t> packed, int64_t channels, int act_bits,
                       std::span<uint8_t> codes);

// -------------------------------------------------------------------------------------------------
// The K axis of one output pixel: `taps` receptive-field taps (t = i * kernel + j for tap row i and
// column j, as in OHWI weights) of `channels` channels each, K = taps * channels. The taps are cut
// into segments of taps_per_segment consecutive taps (the last segment may hold fewer); within a
// segment, tap t's channel c sits at stream bit r = (t - first tap of the segment) * channels + c,
// and the stream is cut into 32-bit K-steps (bit r in K-step r / 32, bit r % 32), the segment's
// last K-step padded with zero bits. Two layouts of the kernels:
//   per-tap chunks  taps_per_segment = 1:     each tap is its own act_chunks(C) K-steps (C % 32 ==
//   0
//                                             wastes nothing; the activations are read in place);
//   im2col panel    taps_per_segment = taps:  K bits contiguous, padded once to a multiple of 32
//                                             (KERNELS.md §5.3: C = 16, 3x3 is 5 K-steps, not 9).
// -------------------------------------------------------------------------------------------------
struct KLayout {
  int64_t taps = 1;
  int64_t channels = 1;
  int64_t taps_per_segment = 1;

  int64_t segments() const { return (taps + taps_per_segment - 1) / taps_per_segment; }
  int64_t full_segment_ksteps() const { return (taps_per_segment * channels + 31) / 32; }
  // K-steps in all, every segment's padding included.
  int64_t ksteps() const;
  // The K-step and bit of (tap, channel).
  int64_t kstep_of(int64_t tap, int64_t channel) const;
  int bit_of(int64_t tap, int64_t channel) const;
};

// One output pixel's im2col panel row: for the taps t of `tap_offsets` (one segment holding all
// taps), reads the packed pixel at pixel + tap_offsets[t] (words, pack_act_pixels layout) and
// writes out[ceil(taps * channels / 32) * act_bits]: word index s * act_bits + i = plane i of
// K-step s of the KLayout{taps, channels, taps} stream. Padding bits are 0. Single-threaded, no
// allocation.
void pack_panel_row(const uint32_t* pixel, std::span<const int64_t> tap_offsets, int64_t channels,
                    int act_bits, uint32_t* out);

// -------------------------------------------------------------------------------------------------
// Bit rows: the narrow-layer route to the panel (pack_input on C = 8 or 16, where going through
// pack_act_pixels and pack_panel_row costs more than the convolution). One image row of `pixels`
// pixels of C channels (C % 8 == 0) becomes act_bits byte strings of pixels * C / 8 bytes, plane i
// at out + i * plane_bytes (plane_bytes >= pixels * C / 8): bit b of byte q = bit i of the code of
// channel (8q + b) % C of pixel (8q + b) / C, i.e. a pixel's channels are C consecutive bits and
// the pixels follow each other without chunk padding. The kernel-row taps of one output pixel are
// then k * C consecutive bits of a bit row, byte aligned, so a panel row is k loads and shifts
// (pack_panel_rows_bits).
// -------------------------------------------------------------------------------------------------

// True when pack_panel_rows_bits takes (channels, kernel): channels 8 or 16 with kernel 3 (the
// instantiated cases; any kernel * channels <= 64 would work the same way).
bool bit_rows_supported(int64_t channels, int64_t kernel);
// Packs codes [pixels, channels] of one row into the bit-row form above. Codes >= 2^act_bits:
// higher bits ignored. Precondition: channels % 8 == 0.
void pack_bit_row(const uint8_t* codes, int64_t pixels, int64_t channels, int act_bits,
                  uint8_t* out, int64_t plane_bytes);
// A bit row of `pixels` pad pixels holding `code` on every channel.
void fill_bit_row(uint8_t code, int64_t pixels, int64_t channels, int act_bits, uint8_t* out,
                  int64_t plane_bytes);
// The panel rows of `count` consecutive output pixels of one output row (the pack_panel_row layout
// and result, K = kernel^2 * channels, rows of ceil(K / 32) * act_bits words one after another
// from out) from the bit rows of their `kernel` input rows: rows[r] is the bit row (plane 0; plane
// i at rows[r] + i * plane_bytes) of kernel row r, and output pixel x's window starts at pixel
// x * stride of each. Reads up to 8 bytes from each window start (callers leave 8 bytes of slack
// after the last row). Precondition: bit_rows_supported(channels, kernel).
void pack_panel_rows_bits(const uint8_t* const* rows, int64_t plane_bytes, int64_t count,
                          int64_t stride, int64_t channels, int64_t kernel, int act_bits,
                          uint32_t* out);

// -------------------------------------------------------------------------------------------------
// Weights. Each output channel o takes at most 4 distinct integer values (its levels). Each level
// is given plane bits b_j (j < planes, at most 3) and the channel coefficients alpha_o, coef_o[j]
// with
//   w = alpha_o + sum_j coef_o[j] * b_j          for every level w of channel o,
// so the convolution is acc = alpha_o * sum(a) + sum_j coef_o[j] * sum(a * b_j): one AND + popcount
// per (activation plane, weight plane) pair, weighted by 2^i * coef_o[j], plus alpha_o times the
// window's code sum when alpha_o != 0. The chosen encoding is the cheapest: fewest planes first
// (plane pairs are the work), then no sum(a) term. Encodings (the weight values of the layer
// decide):
//   kConstant      0 planes: w = alpha_o (every weight of a channel equal);
//   kBinary        1 plane:  2 levels {x, y}: alpha = x (0 when 0 is a level), b0 = [w == y];
//   kTernary       {-1, 0, 1}: planes P = [w == 1], N = [w == -1], coef (1, -1), alpha 0;
//   kSigned        {-2, -1, 0, 1}: two's-complement planes b0 = w & 1, b1 = (w >> 1) & 1,
//                  coef (1, -2), alpha 0 (no correction term);
//   kOddSymmetric  {-3, -1, 1, 3} = 2c - 3: b0, b1 the bits of c = (w + 3) / 2, coef (2, 4),
//                  alpha -3 (the sum(a) term);
//   kTwoPlane      any 3 levels, or 4 levels pairing into equal sums (v00 + v11 = v01 + v10):
//                  w = alpha + beta * b0 + gamma * b1 per channel (alpha 0 when 0 is a level);
//   kThreePlane    any 4 levels: w = alpha + beta * b0 + gamma * b1 + delta * (b0 & b1), planes b0,
//                  b1 and b0 & b1 (KERNELS.md §5.2: 6 plane pairs instead of 4).
// The named encodings are used when every weight of the layer fits them; otherwise kBinary /
// kTwoPlane / kThreePlane per the most demanding channel, each channel with its own coefficients
// (a channel needing fewer planes gets zero coefficients for the others).
// -------------------------------------------------------------------------------------------------
enum class WeightEncoding : int {
  kConstant = 0,
  kBinary = 1,
  kTernary = 2,
  kSigned = 3,
  kOddSymmetric = 4,
  kTwoPlane = 5,
  kThreePlane = 6,
};
// "constant", "binary", "ternary", "signed", "odd-symmetric", "two-plane", "three-plane".
std::string_view weight_encoding_name(WeightEncoding encoding);

inline constexpr int kMaxWeightPlanes = 3;
inline constexpr int kMaxWeightLevels = 4;

// The per-channel plane decomposition of one layer's weights.
struct WeightPlanes {
  WeightEncoding encoding = WeightEncoding::kConstant;
  int planes = 0;  // 0 .. kMaxWeightPlanes, the same for every channel
  int64_t out_channels = 0;
  std::vector<int32_t> alpha;  // [out_channels]
  std::vector<int32_t> coef;   // [out_channels, kMaxWeightPlanes]; 0 for j >= planes
  std::vector<int8_t> levels;  // [out_channels, kMaxWeightLevels]; slots >= level_count unused
  std::vector<uint8_t>
      level_bits;  // [out_channels, kMaxWeightLevels]; bit j = plane j of the level
  std::vector<uint8_t> level_count;  // [out_channels], 1 .. 4

  // True when some channel has alpha != 0 (the kernel then needs each window's code sum).
  bool uses_act_sum() const;
  // Plane bits of value w in channel o. Precondition: w is one of o's levels.
  uint8_t bits_of(int64_t o, int8_t w) const;
  // alpha_o + sum_j coef_o[j] * bit j of bits: the value the planes encode.
  int32_t value_of(int64_t o, uint8_t bits) const;
};

// "" when every output channel of weights [out_channels, depth] takes at most 4 distinct values,
// else why not (e.g. "weights of output channel 3 take 5 distinct values (-3 -1 0 1 2); the
// bit-serial kernels take at most 4"). Cheap: one pass.
std::string weight_planes_problem(std::span<const int8_t> weights, int64_t out_channels);
// The cheapest decomposition (above) of weights [out_channels, depth]. Throws bitgrad::Error with
// weight_planes_problem's message when a channel has more than 4 distinct values, or when the sizes
// do not divide.
WeightPlanes plan_weight_planes(std::span<const int8_t> weights, int64_t out_channels);

// Output channels are packed in groups of 16 (one 512-bit vector of 16 uint32 lanes = one group).
inline constexpr int64_t kWeightGroupLanes = 16;
int64_t weight_groups(int64_t out_channels);  // ceil(out_channels / 16)
// Words of packed weights: weight_groups * k.ksteps() * plan.planes * 16.
int64_t packed_weight_words(const WeightPlanes& plan, const KLayout& k);

// Packs OHWI weights [out_channels, k.taps * k.channels] into the broadcast layout
//   out[((g * ksteps + s) * planes + j) * 16 + lane]   (uint32),
// group g, K-step s, plane j, lane = o - 16 g: bit r of that word is plane j of the weight at the
// K position (tap, channel) with k.kstep_of(tap, channel) == s and k.bit_of(...) == r. K padding
// bits and the lanes of channels >= out_channels are 0. Precondition: plan was made from weights.
void pack_weight_planes(std::span<const int8_t> weights, const WeightPlanes& plan, const KLayout& k,
                        std::span<uint32_t> out);
// The inverse: OHWI weights [out_channels, k.taps * k.channels] decoded from the planes
// (w = alpha_o + sum_j coef_o[j] * b_j).
void unpack_weight_planes(std::span<const uint32_t> packed, const WeightPlanes& plan,
                          const KLayout& k, std::span<int8_t> weights);

}  // namespace bitgrad::kernels
