// threshold_tile.hpp: the single-threaded tile kernels of the threshold epilogue
// (kernels/epilogue/threshold.hpp) and the plain struct they read. Included by the ISA translation
// units, so: declarations and a POD only, no inline code, no containers.
// Not here: threading, validation, dispatch (threshold.cpp).
#pragma once

#include <cstdint>

namespace bitgrad::kernels {

// One layer's prepared thresholds (ThresholdEpilogue owns the memory).
struct ThresholdTile {
  const int32_t*
      thresholds;       // [count][stride]: threshold k of channel c at k * stride + c, XOR flip[c]
  const int32_t* flip;  // [stride]: 0 for ascending channels, -1 (all bits set) for descending
  int64_t channels;     // C: one acc row and one code row hold C entries
  int64_t stride;       // C rounded up to a multiple of 32; lanes c >= C are readable, unused
  int count;            // thresholds per channel, 1..255
};

// For p < pixels and c < C (acc and codes NHWC, dense [pixels, C]):
//   codes[p * C + c] = #{k < count : (acc[p * C + c] ^ flip[c]) >= thresholds[k * stride + c]}
// which is threshold_codes__ref's definition (~a >= ~t is a <= t). Reads acc only inside its rows.
// No allocation, no exceptions; preconditions asserted.
void threshold_s32u8__ref(const ThresholdTile& tile, const int32_t* acc, uint8_t* codes,
                          int64_t pixels);
void threshold_s32u8__avx2_c8(const ThresholdTile& tile, const int32_t* acc, uint8_t* codes,
                              int64_t pixels);
void threshold_s32u8__avx512_c16(const ThresholdTile& tile, const int32_t* acc, uint8_t* codes,
                                 int64_t pixels);

}  // namespace bitgrad::kernels
