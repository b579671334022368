// threshold.hpp: the per-channel threshold epilogue (KERNELS.md §5.1, §5.4). A layer's int32
// accumulators become the next layer's unsigned codes by counting, per output channel, how many of
// that channel's integer thresholds each accumulator passes; and the derivation of those thresholds
// from the training model's own float epilogue (scales, bias, folded batch norm, next quantizer),
// evaluated at integer accumulator values, never algebraically, so deploy codes equal training
// codes bit for bit. Not here: float scales or batch-norm folding (the exporter builds the epilogue
// and hands it in as a callback), bit-plane packing of the codes (the consumer kernel's
// QConv::pack_input), fusion into the convolution tiles.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "kernels/cpu.hpp"

namespace bitgrad::kernels {

// One layer's thresholds: `count()` = 2^out_bits - 1 int32 thresholds per output channel, plus a
// direction per channel. For an accumulator a of channel c (t_k = values[c * count() + k]):
//   code = #{k : a >= t_k}   when descending[c] == 0 (the epilogue grows with a: positive scale),
//   code = #{k : a <= t_k}   when descending[c] == 1 (it shrinks with a: negative effective scale).
// The definition does not need sorted thresholds; derive_thresholds() returns sorted ones
// (ascending for direction 0, descending for direction 1). Every int32 value is a valid threshold:
// a >= INT32_MIN always passes, a <= INT32_MAX always passes.
struct Thresholds {
  int64_t channels = 0;
  int out_bits = 2;                 // 1..8: output codes lie in [0, 2^out_bits)
  std::vector<int32_t> values;      // [channels, count()], channel-major
  std::vector<uint8_t> descending;  // [channels], each 0 or 1

  int count() const { return (1 << out_bits) - 1; }
  // Throws bitgrad::Error: channels < 1, out_bits outside 1..8, wrong vector sizes, a flag not 0/1.
  void validate() const;
};

// The definition: codes[p * C + c] for every pixel p < acc.size() / C and channel c < C, NHWC
// [pixels, C] in and out (C = t.channels). Checks t and the sizes (bitgrad::Error).
// Single-threaded, obvious code; every tile kernel equals it exactly.
void threshold_codes__ref(const Thresholds& t, std::span<const int32_t> acc,
                          std::span<uint8_t> codes);

// A row of the epilogue's kernel table: one tile function (kernels/epilogue/threshold_tile.hpp) and
// the ISA tier it needs. Rows are listed slowest first: the scalar reference, AVX2, AVX-512.
struct ThresholdTile;
struct ThresholdKernelRow {
  std::string_view name;  // e.g. "threshold_s32u8__avx512_c16"
  Tier tier;
  void (*tile)(const ThresholdTile& tile, const int32_t* acc, uint8_t* codes, int64_t pixels);
};
std::span<const ThresholdKernelRow> threshold_kernels();
// The fastest row whose tier is <= max_tier() (BITGRAD_KERNEL_TIER or the CPU's best).
const ThresholdKernelRow& select_threshold();

// One layer's thresholds laid out for the tile kernels: level-major [count][C rounded up to 32],
// the direction folded in (descending channels store ~t and compare ~a >= ~t, which is a <= t for
// every int32 pair, no overflow). Immutable after construction; run() may be called from several
// threads at once on different buffers.
class ThresholdEpilogue {
 public:
  // Validates t (bitgrad::Error as Thresholds::validate).
  explicit ThresholdEpilogue(const Thresholds& t);

  int64_t channels() const { return channels_; }
  int out_bits() const { return out_bits_; }

  // codes [pixels, C] uint8 from acc [pixels, C] int32, both NHWC and dense: exactly
  // threshold_codes__ref. Threaded with oneTBB over blocks of pixels (static partitioner; layers
  // with few outputs run on the calling thread). The first form uses select_threshold(); the second
  // the given row (tests and benchmarks), whose tier the CPU must support (assert).
  void run(const int32_t* acc, int64_t pixels, uint8_t* codes) const;
  void run(const ThresholdKernelRow& row, const int32_t* acc, int64_t pixels, uint8_t* codes) const;

 private:
  int64_t channels_ = 0;
  int64_t stride_ = 0;
  int out_bits_ = 0;
  std::vector<int32_t> thresholds_;  // [count][stride_], t ^ flip
  std::vector<int32_t> flip_;        // [stride_]: 0 ascending, -1 descending (and padding lanes)
};

// Derives the thresholds that reproduce a monotone epilogue f exactly on [acc_min, acc_max]:
// f(channel, acc) is the training model's code for accumulator `acc` of output channel `channel`,
// computed exactly as the reference computes it (same dtype, same operation order, same rounding).
// Per channel the direction is descending when f(acc_max) < f(acc_min); each threshold is found by
// binary search (never passed inside the range: acc_max + 1, or acc_min - 1 when descending; always
// passed: acc_min, or acc_max). Then every accumulator of the range is checked by brute force: f
// must equal the thresholds' code at each one. Outside [acc_min, acc_max] the thresholds extend the
// nearest in-range codes (choose the range to cover every reachable accumulator of the layer).
// Throws bitgrad::Error when channels < 1, out_bits outside 1..8, acc_min > acc_max, acc_min ==
// INT32_MIN or acc_max == INT32_MAX (the "never passed" thresholds must be representable), or when
// f returns a code >= 2^out_bits or is not monotone on the range (not representable by thresholds);
// the message names the channel and the accumulator value. Calls f about (acc_max - acc_min + 1) +
// 35 * (2^out_bits - 1) times per channel (the brute-force pass plus the binary searches),
// single-threaded (f need not be thread-safe).
Thresholds derive_thresholds(int64_t channels, int out_bits, int32_t acc_min, int32_t acc_max,
                             const std::function<uint8_t(int64_t channel, int32_t acc)>& f);

}  // namespace bitgrad::kernels
