// threshold_avx512.cpp: the threshold epilogue tile for AVX-512 (F/BW/VL): 16 channels per zmm, one
// vpcmpd into a k-mask per threshold and a masked byte increment of the 16 codes (no int32 -> byte
// narrowing needed), masked loads/stores for the channel tail. Built with this tier's flags only.
#include <immintrin.h>

#include <cassert>
#include <cstdint>

#include "kernels/epilogue/threshold_tile.hpp"

namespace bitgrad::kernels {
namespace {

// 16 codes from 16 (flipped) accumulators x; thr points at threshold 0 of the 16 channels, the next
// threshold `stride` entries further. kCount > 0 unrolls the threshold loop.
template <int kCount>
__m128i codes16(const int32_t* thr, int64_t stride, int count, __m512i x) {
  if (kCount > 0) count = kCount;
  const __m128i one = _mm_set1_epi8(1);
  __m128i n = _mm_setzero_si128();
  for (int k = 0; k < count; ++k, thr += stride)
    n = _mm_mask_add_epi8(n, _mm512_cmpge_epi32_mask(x, _mm512_loadu_si512(thr)), n, one);
  return n;
}

// The tile's fields are copied to locals: the byte stores to `codes` may alias anything, so reading
// them through `t` would reload them after every store.
template <int kCount>
void rows(const ThresholdTile& t, const int32_t* acc, uint8_t* codes, int64_t pixels) {
  const int32_t* const thresholds = t.thresholds;
  const int32_t* const flip = t.flip;
  const int64_t channels = t.channels, stride = t.stride;
  const int count = t.count;
  const int64_t full = channels / 16 * 16;
  const auto tail = static_cast<__mmask16>((1u << (channels - full)) - 1u);
  for (int64_t p = 0; p < pixels; ++p) {
    const int32_t* a = acc + p * channels;
    uint8_t* out = codes + p * channels;
    for (int64_t c = 0; c < full; c += 16) {
      const __m512i x = _mm512_xor_si512(_mm512_loadu_si512(a + c), _mm512_loadu_si512(flip + c));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + c),
                       codes16<kCount>(thresholds + c, stride, count, x));
    }
    if (tail != 0) {
      const __m512i x = _mm512_xor_si512(_mm512_maskz_loadu_epi32(tail, a + full),
                                         _mm512_loadu_si512(flip + full));
      _mm_mask_storeu_epi8(out + full, tail, codes16<kCount>(thresholds + full, stride, count, x));
    }
  }
}

}  // namespace

void threshold_s32u8__avx512_c16(const ThresholdTile& tile, const int32_t* acc, uint8_t* codes,
                                 int64_t pixels) {
  assert(tile.count >= 1 && tile.count <= 255 && tile.channels >= 1 &&
         tile.stride >= tile.channels && tile.stride % 16 == 0);
  switch (tile.count) {
    case 1:
      rows<1>(tile, acc, codes, pixels);
      break;
    case 3:
      rows<3>(tile, acc, codes, pixels);
      break;
    case 7:
      rows<7>(tile, acc, codes, pixels);
      break;
    case 15:
      rows<15>(tile, acc, codes, pixels);
      break;
    default:
      rows<0>(tile, acc, codes, pixels);
      break;
  }
}

}  // namespace bitgrad::kernels
