// bitserial_conv_avx2.cpp: the AVX2 bit-serial tile. Same broadcast layout as the AVX-512 tile, 8
// output channels per ymm: AND, PSHUFB nibble popcount (Muła et al.), the two activation planes
// summed in bytes with a doubled-count table for plane 1, then VPMADDUBSW (bytes -> words) and
// VPMADDWD by the per-lane int16 coefficient coef_o[j]. AVX2 has no vector popcount. Scalar POPCNT
// on the 32-bit words of this layout is one port-1 instruction per 32 bit-products (at most ~8
// MAC/cycle for W2A2; a scalar tile measured 3.3), the nibble table ~9 vector uops per 256 on 3
// ports (bound ~21 MAC/cycle, KERNELS.md §2.2; this tile measured 18-20), so the table wins.
// Compiled with the AVX2 tier's flags; includes only <immintrin.h>, <cstdint>, <cstddef> and the
// tile header, and keeps everything but the entry point in an anonymous namespace.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels/bitserial/bitserial_tile.hpp"

namespace bitgrad::kernels {
namespace {

template <int I>
struct Index {
  static constexpr int value = I;
};

template <int N, typename F>
[[gnu::always_inline]] inline void unroll(F&& f) {
  if constexpr (N > 0) {
    unroll<N - 1>(f);
    f(Index<N - 1>{});
  }
}

// One 16-channel group (two ymm halves) x kNR pixels. The tile is bound by the ~9 vector ALU uops
// per 256 plane-pair bit-products (3 ports), not by loads, so register blocking buys nothing here:
// 2 and 3 pixels measured the same speed but make GCC 12 spill accumulators (4 constants + ~8
// temporaries already use most of the 16 ymm); 1 pixel keeps both accumulators in registers.
constexpr int kNR = 1;
static_assert(kBitserialTilePixels % kNR == 0, "the caller's pixel tile splits into whole blocks");

// The popcount of each byte of x, looked up nibble by nibble in `table` (table2 doubles the counts).
[[gnu::always_inline]] inline __m256i count_bytes(__m256i x, __m256i table, __m256i low4) {
  const __m256i lo = _mm256_shuffle_epi8(table, _mm256_and_si256(x, low4));
  const __m256i hi = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(x, 4), low4));
  return _mm256_add_epi8(lo, hi);
}

template <int AP, int WP>
[[gnu::noinline]] void block(const BitserialTileArgs& a, int64_t g, const int64_t* base, int valid,
                             int32_t* out) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i table1 = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1,
                                          2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i table2 = _mm256_add_epi8(table1, table1);  // plane 1 weighs 2
  const __m256i ones = _mm256_set1_epi8(1);
  // coef_o[j] = pair_coef[g][0 * WP + j] (int16 pairs); plane 1's 2 * coef_o[j] is in table2.
  const int32_t* coef16 = a.pair_coef + g * AP * WP * 16;
  const uint32_t* w = a.weights + g * a.ksteps * WP * 16;
  const uint32_t* px[kNR];
  for (int p = 0; p < kNR; ++p) px[p] = a.act + base[p];
  __m256i acc[kNR][2];
  unroll<kNR>([&](auto P) { acc[P.value][0] = acc[P.value][1] = _mm256_setzero_si256(); });

  for (int64_t s = 0; s < a.ksteps; ++s) {
    const int64_t off = a.kstep_offset[s];
    unroll<kNR>([&](auto P) {
      constexpr int p = decltype(P)::value;
      const __m256i x0 = _mm256_set1_epi32(static_cast<int>(px[p][off]));
      const __m256i x1 = AP == 2 ? _mm256_set1_epi32(static_cast<int>(px[p][off + AP - 1])) : x0;
      unroll<2>([&](auto H) {
        constexpr int h = decltype(H)::value;
        unroll<WP>([&](auto J) {
          constexpr int j = decltype(J)::value;
          const __m256i wj =
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + (s * WP + j) * 16 + h * 8));
          __m256i bytes = count_bytes(_mm256_and_si256(x0, wj), table1, low4);
          if constexpr (AP == 2)
            bytes = _mm256_add_epi8(bytes, count_bytes(_mm256_and_si256(x1, wj), table2, low4));
          const __m256i words = _mm256_maddubs_epi16(bytes, ones);  // <= 48 per word
          const __m256i c =
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(coef16 + j * 16 + h * 8));
          acc[p][h] = _mm256_add_epi32(acc[p][h], _mm256_madd_epi16(words, c));
        });
      });
    });
  }

  unroll<2>([&](auto H) {
    constexpr int h = decltype(H)::value;
    const int64_t first = g * 16 + h * 8;
    const int64_t lanes = a.out_channels - first;
    if (lanes <= 0) return;
    const __m256i mask =
        _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(lanes < 8 ? lanes : 8)),
                           _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const __m256i alpha =
        a.alpha != nullptr ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.alpha + first))
                           : _mm256_setzero_si256();
    unroll<kNR>([&](auto P) {
      constexpr int p = decltype(P)::value;
      if (p >= valid) return;
      // Through an add (of 0 without a sum term), as in the AVX-512 tile: GCC 12 otherwise copies
      // the accumulators around in the K loop.
      const __m256i bias = a.alpha != nullptr
                               ? _mm256_mullo_epi32(alpha, _mm256_set1_epi32(a.act_sum[p]))
                               : _mm256_setzero_si256();
      _mm256_maskstore_epi32(out + p * a.out_channels + first, mask,
                             _mm256_add_epi32(acc[p][h], bias));
    });
  });
}

template <int AP, int WP>
void tile(const BitserialTileArgs& a) {
  for (int p0 = 0; p0 < a.pixels; p0 += kNR) {
    const int valid = a.pixels - p0 < kNR ? a.pixels - p0 : kNR;
    int64_t base[kNR];
    for (int p = 0; p < kNR; ++p) base[p] = a.pixel_base[p0 + (p < valid ? p : valid - 1)];
    BitserialTileArgs sub = a;
    sub.act_sum = a.act_sum != nullptr ? a.act_sum + p0 : nullptr;
    for (int64_t g = a.group_begin; g < a.group_end; ++g)
      block<AP, WP>(sub, g, base, valid, a.out + p0 * a.out_channels);
  }
}

}  // namespace

void bitserial_tile__avx2(const BitserialTileArgs& a) {
  switch (a.act_planes * 4 + a.weight_planes) {
    case 1 * 4 + 1:
      tile<1, 1>(a);
      break;
    case 1 * 4 + 2:
      tile<1, 2>(a);
      break;
    case 1 * 4 + 3:
      tile<1, 3>(a);
      break;
    case 2 * 4 + 1:
      tile<2, 1>(a);
      break;
    case 2 * 4 + 2:
      tile<2, 2>(a);
      break;
    case 2 * 4 + 3:
      tile<2, 3>(a);
      break;
    default:
      break;  // precondition: 1 <= act_planes <= 2, 1 <= weight_planes <= 3
  }
}

}  // namespace bitgrad::kernels
