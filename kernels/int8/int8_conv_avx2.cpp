// int8_conv_avx2.cpp: the int8 convolution tile for AVX2 (no VNNI): per 4-byte step, one
// vpbroadcastd of 4 u8 activation codes per pixel, vpmaddubsw with the s8 weights of 8 channels
// (int16 sums of 2 products, saturating: int8_conv.cpp only sends layers where they fit) and
// vpaddw into int16 accumulators; every flush_steps steps (while int16 sums stay exact), vpmaddwd
// with ones widens them to int32 sums of 4 products and adds them to the outputs. NR = 5 pixels x
// 16 channels (2 ymm) = 10 int16 accumulators in registers (with 6 pixels g++ 12 spills one of
// the 12 and runs ~5% slower). Built with this tier's flags only.
// Not here: packing, threading (int8_conv.cpp).
#include <immintrin.h>

#include <cassert>
#include <cstddef>
#include <cstdint>

#include "kernels/int8/int8_tile.hpp"

namespace bitgrad::kernels {
namespace {

constexpr int kNr = 5;

inline int load4(const uint8_t* p) {
  int v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

// int16 partial sums, [pixel][low / high 8 channels of the group]; every access goes through the
// recursive templates below so that g++ keeps them in registers (see int8_conv_avx512.cpp).
struct Acc {
  __m256i v[kNr][2];
};

template <int I = 0>
inline void zero(Acc& acc) {
  if constexpr (I < 2 * kNr) {
    acc.v[I / 2][I % 2] = _mm256_setzero_si256();
    zero<I + 1>(acc);
  }
}

template <int P = 0>
inline void step(Acc& acc, const uint8_t* const (&a)[kNr], std::ptrdiff_t k, __m256i w_lo,
                 __m256i w_hi) {
  if constexpr (P < kNr) {
    const __m256i b = _mm256_set1_epi32(load4(a[P] + k));
    acc.v[P][0] = _mm256_add_epi16(acc.v[P][0], _mm256_maddubs_epi16(b, w_lo));
    acc.v[P][1] = _mm256_add_epi16(acc.v[P][1], _mm256_maddubs_epi16(b, w_hi));
    step<P + 1>(acc, a, k, w_lo, w_hi);
  }
}

// Widens each pixel's int16 sums into its int32 outputs (stored on the first flush, added
// afterwards) and clears them. Always inlined: as a call it would pin the accumulators to memory.
template <int P = 0>
[[gnu::always_inline]] inline void flush(Acc& acc, const Int8Tile& t, bool first) {
  if constexpr (P < kNr) {
    if (P < t.pixels_valid) {
      const __m256i ones = _mm256_set1_epi16(1);
      __m256i lo = _mm256_madd_epi16(acc.v[P][0], ones);
      __m256i hi = _mm256_madd_epi16(acc.v[P][1], ones);
      int32_t* out = t.out + P * t.out_stride;
      if (t.channels_valid == 16) {
        auto* out_lo = reinterpret_cast<__m256i*>(out);
        auto* out_hi = reinterpret_cast<__m256i*>(out + 8);
        if (!first) {
          lo = _mm256_add_epi32(lo, _mm256_loadu_si256(out_lo));
          hi = _mm256_add_epi32(hi, _mm256_loadu_si256(out_hi));
        }
        _mm256_storeu_si256(out_lo, lo);
        _mm256_storeu_si256(out_hi, hi);
      } else {
        alignas(32) int32_t lanes[16];
        _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), lo);
        _mm256_store_si256(reinterpret_cast<__m256i*>(lanes + 8), hi);
        for (int64_t c = 0; c < t.channels_valid; ++c)
          out[c] = first ? lanes[c] : out[c] + lanes[c];
      }
    }
    acc.v[P][0] = _mm256_setzero_si256();
    acc.v[P][1] = _mm256_setzero_si256();
    flush<P + 1>(acc, t, first);
  }
}

}  // namespace

void conv_u8s8__avx2_5x16(const Int8Tile& t) {
  assert(t.groups == 1 && t.pixels_valid >= 1 && t.pixels_valid <= kNr);
  assert(t.channels_valid >= 1 && t.channels_valid <= 16 && t.run_steps >= 1 && t.flush_steps >= 1);
  Acc acc;
  zero(acc);
  const int8_t* w = t.weights;
  bool first = true;
  int64_t left = t.flush_steps;
  for (int64_t r = 0; r < t.runs; ++r) {
    const uint8_t* a[kNr];
    for (int p = 0; p < kNr; ++p) a[p] = t.pixels[p] + t.run_offsets[r];
    const std::ptrdiff_t bytes = 4 * t.run_steps;
    for (std::ptrdiff_t k = 0; k < bytes; k += 4) {
      const __m256i w_lo = _mm256_load_si256(reinterpret_cast<const __m256i*>(w));
      const __m256i w_hi = _mm256_load_si256(reinterpret_cast<const __m256i*>(w + 32));
      step(acc, a, k, w_lo, w_hi);
      w += 64;
      if (--left == 0) {
        flush(acc, t, first);
        first = false;
        left = t.flush_steps;
      }
    }
  }
  if (left != t.flush_steps) flush(acc, t, first);
}

}  // namespace bitgrad::kernels
