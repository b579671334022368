// bitserial_conv.hpp: a convolution layer prepared for the bit-serial W2A2 kernels (AND + popcount
// on bit-planes, exact int32 accumulators): weight prepacking in the cheapest plane encoding, input
// packing (bit-planes of a spatially padded image, plus the im2col panel for narrow layers), and
// oneTBB threading over (pixel tiles x output-channel groups) around the single-threaded tile
// functions of bitserial_tile.hpp. Equals conv_codes__ref exactly (int32) for every layer it
// accepts. Not here: the tile arithmetic (bitserial_conv_{ref,avx2,avx512}.cpp), the registry rows
// (bitserial_registry.cpp), epilogues turning accumulators into the next layer's codes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/bitserial/bitplane.hpp"
#include "kernels/bitserial/bitserial_tile.hpp"
#include "kernels/conv.hpp"

namespace bitgrad::kernels {

using BitserialTileFn = void (*)(const BitserialTileArgs&);
// pack_bit_row or an ISA twin (bitserial_tile.hpp).
using BitRowPackFn = void (*)(const uint8_t*, int64_t, int64_t, int, uint8_t*, int64_t);

// "" when the bit-serial kernels run this layer, else why not: an invalid spec, a weight count that
// does not match it, act_bits > 2, or an output channel with more than 4 distinct weight values.
std::string bitserial_rejects(const ConvSpec& spec, std::span<const int8_t> weights);

// One layer prepared for one bit-serial tile function.
//
// Input format (pack_input, one buffer of packed_input_bytes(), regions 64-byte aligned):
//   image   the input, spatially padded by spec.pad on every side with pad pixels holding pad_code
//   on
//           every channel: [batch, height + 2 pad, width + 2 pad] pixels in pack_act_pixels layout
//           (act_pixel_words(C, act_bits) words each; channel padding bits 0);
//           (C = 8 or 16 with a 3x3 kernel, bit_rows_supported: the padded rows in bit-row form
//           instead, bitplane.hpp, planes of one row contiguous, 8 bytes of slack);
//   panel   im2col mode only: per output pixel one pack_panel_row of all kernel * kernel taps;
//   sums    only when some output channel has alpha != 0: the code sum of each padded pixel, then
//   of
//           each output pixel's window (pad taps count pad_code per channel).
// The K layout: im2col panel (K = kernel^2 * C bits padded once to a multiple of 32) when that
// saves K-steps over per-tap 32-channel chunks (C not a multiple of 32 and kernel > 1, KERNELS.md
// §5.3), per-tap chunks read in place from the padded image otherwise. Weights: pack_weight_planes
// in the same KLayout, the cheapest encoding plan_weight_planes finds, plus the per-lane plane-pair
// coefficients and alphas (bitserial_tile.hpp); packed_weight_bytes() counts all three.
//
// Threading: pack_input runs its row and pixel loops on oneTBB, run() a 2-D range of (pixel tiles
// of kBitserialTilePixels x 16-channel groups) with tbb::static_partitioner (serially below ~2M
// MACs, where waking threads costs more than it saves). Both are safe to call concurrently on
// different buffers.
class BitserialConv final : public QConv {
 public:
  // Precondition: bitserial_rejects(spec, weights) is empty (checked; bitgrad::Error otherwise).
  // pack_row packs the bit rows of narrow layers (bit_rows_supported).
  BitserialConv(const ConvSpec& spec, std::span<const int8_t> weights, std::string_view kernel_name,
                BitserialTileFn tile, BitRowPackFn pack_row = &pack_bit_row);

  const ConvSpec& spec() const override { return spec_; }
  std::string_view kernel_name() const override { return name_; }
  std::size_t packed_weight_bytes() const override;
  std::size_t packed_input_bytes() const override { return input_bytes_; }
  void pack_input(const uint8_t* codes, std::byte* packed) const override;
  void run(const std::byte* packed, int32_t* acc) const override;

  // What preparation chose (for tests, benchmarks and docs).
  const WeightPlanes& weight_planes() const { return plan_; }
  const KLayout& k_layout() const { return klayout_; }
  bool uses_panel() const { return panel_; }
  // K / (ksteps * 32): the share of the K positions the kernel computes that are real (1.0 = no
  // padding work; C = 16, 3x3 is 0.9 with the panel, 0.5 with per-tap chunks).
  double kstep_efficiency() const;

 private:
  struct Aligned {
    void operator()(void* p) const;
  };
  template <typename T>
  using Buffer = std::unique_ptr<T[], Aligned>;
  template <typename T>
  static Buffer<T> allocate(int64_t count);

  void run_block(const std::byte* packed, int32_t* acc, int64_t tile_begin, int64_t tile_end,
                 int64_t group_begin, int64_t group_end) const;

  ConvSpec spec_;
  std::string name_;
  BitserialTileFn tile_;
  BitRowPackFn pack_row_;
  WeightPlanes plan_;
  KLayout klayout_;
  bool panel_ = false;
  bool bit_rows_ = false;        // panel built from bit rows (bitplane.hpp) instead of the image
  int64_t row_plane_bytes_ = 0;  // bit rows: bytes of one plane of one padded row
  int64_t padded_h_ = 0, padded_w_ = 0, pixel_words_ = 0, panel_row_words_ = 0, groups_ = 0;
  std::vector<int64_t>
      tap_offsets_;  // [taps] word offset of tap (i, j) from a window's first pixel
  std::vector<int32_t> kstep_offset_;  // [ksteps] word offset of each K-step from a pixel base
  std::vector<uint32_t> pad_pixel_;    // a padding pixel: pad_code on every channel
  Buffer<uint32_t> weights_;           // pack_weight_planes layout
  int64_t weight_words_ = 0;
  Buffer<int32_t> pair_coef_;  // [groups][act_bits * planes][16], int16 pairs (bitserial_tile.hpp)
  Buffer<int32_t> alpha_;      // [groups][16], null when every alpha is 0
  std::size_t image_offset_ = 0, panel_offset_ = 0, pixel_sum_offset_ = 0, window_sum_offset_ = 0;
  std::size_t input_bytes_ = 0;
};

}  // namespace bitgrad::kernels
