// bitplane_avx512.cpp: the AVX-512 twin of pack_bit_row (bitplane.hpp): 64 activation codes per
// VPTESTMB give 64 bits of one plane at once (the scalar version gathers 8 codes per multiply).
// Compiled with the AVX-512 tier's flags; includes only <immintrin.h>, <cstdint>, <cstddef> and the
// tile header, and keeps everything but the entry point in an anonymous namespace.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels/bitserial/bitserial_tile.hpp"

namespace bitgrad::kernels {
namespace {

// 8 bytes of a plane from the low bits of a 64-bit mask.
void store_bits(uint8_t* out, __mmask64 bits) {
  _mm_storeu_si64(out, _mm_cvtsi64_si128(static_cast<long long>(bits)));
}

}  // namespace

void pack_bit_row__avx512(const uint8_t* codes, int64_t pixels, int64_t channels, int act_bits,
                          uint8_t* out, int64_t plane_bytes) {
  const int64_t n = pixels * channels;  // codes, a multiple of 8
  const __m512i bit0 = _mm512_set1_epi8(1);
  const __m512i bit1 = _mm512_set1_epi8(2);
  uint8_t* plane1 = out + plane_bytes;
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m512i v = _mm512_loadu_si512(codes + i);
    store_bits(out + i / 8, _mm512_test_epi8_mask(v, bit0));
    if (act_bits == 2) store_bits(plane1 + i / 8, _mm512_test_epi8_mask(v, bit1));
  }
  if (i < n) {
    const int64_t rest = n - i;  // 8 .. 56
    const __mmask64 load = (uint64_t{1} << rest) - 1;
    const __m512i v = _mm512_maskz_loadu_epi8(load, codes + i);
    const uint64_t m0 = _mm512_test_epi8_mask(v, bit0);
    const uint64_t m1 = _mm512_test_epi8_mask(v, bit1);
    for (int64_t b = 0; b < rest / 8; ++b) {
      out[i / 8 + b] = static_cast<uint8_t>(m0 >> (8 * b));
      if (act_bits == 2) plane1[i / 8 + b] = static_cast<uint8_t>(m1 >> (8 * b));
    }
  }
}

}  // namespace bitgrad::kernels
