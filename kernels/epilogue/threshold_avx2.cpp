// threshold_avx2.cpp: the threshold epilogue tile for AVX2: 8 channels per ymm. Each vpcmpgtd
// (t > x, i.e. threshold not passed) adds -1 to a count that starts at `count`; the 8 int32 codes
// are narrowed with two unsigned packs. The channel tail uses a masked load and a short byte copy.
#include <immintrin.h>

#include <cassert>
#include <cstdint>

#include "kernels/epilogue/threshold_tile.hpp"

namespace bitgrad::kernels {
namespace {

// 8 codes from 8 (flipped) accumulators x; thr points at threshold 0 of the 8 channels, the next
// threshold `stride` entries further. kCount > 0 unrolls the threshold loop.
template <int kCount>
__m128i codes8(const int32_t* thr, int64_t stride, int count, __m256i x) {
  if (kCount > 0) count = kCount;
  __m256i n = _mm256_set1_epi32(count);
  for (int k = 0; k < count; ++k, thr += stride)
    n = _mm256_add_epi32(
        n, _mm256_cmpgt_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(thr)), x));
  const __m128i words = _mm_packus_epi32(_mm256_castsi256_si128(n), _mm256_extracti128_si256(n, 1));
  return _mm_packus_epi16(words, words);  // bytes 0..7 = the 8 codes
}

__m256i load8(const int32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// The tile's fields are copied to locals: the byte stores to `codes` may alias anything, so reading
// them through `t` would reload them after every store.
template <int kCount>
void rows(const ThresholdTile& t, const int32_t* acc, uint8_t* codes, int64_t pixels) {
  const int32_t* const thresholds = t.thresholds;
  const int32_t* const flip = t.flip;
  const int64_t channels = t.channels, stride = t.stride;
  const int count = t.count;
  const int64_t full = channels / 8 * 8;
  const int rest = static_cast<int>(channels - full);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32(rest), lane);
  for (int64_t p = 0; p < pixels; ++p) {
    const int32_t* a = acc + p * channels;
    uint8_t* out = codes + p * channels;
    for (int64_t c = 0; c < full; c += 8) {
      const __m256i x = _mm256_xor_si256(load8(a + c), load8(flip + c));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(out + c),
                       codes8<kCount>(thresholds + c, stride, count, x));
    }
    if (rest != 0) {
      const __m256i x = _mm256_xor_si256(_mm256_maskload_epi32(a + full, tail), load8(flip + full));
      const auto bytes = static_cast<uint64_t>(
          _mm_cvtsi128_si64(codes8<kCount>(thresholds + full, stride, count, x)));
      for (int i = 0; i < rest; ++i) out[full + i] = static_cast<uint8_t>(bytes >> (8 * i));
    }
  }
}

}  // namespace

void threshold_s32u8__avx2_c8(const ThresholdTile& tile, const int32_t* acc, uint8_t* codes,
                              int64_t pixels) {
  assert(tile.count >= 1 && tile.count <= 255 && tile.channels >= 1 &&
         tile.stride >= tile.channels && tile.stride % 8 == 0);
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
