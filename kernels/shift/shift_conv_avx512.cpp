// shift_conv_avx512.cpp: the shift-add APoT convolution tile for AVX-512 BW: 32 output channels as
// the int16 lanes of one zmm, 8 pixels. Per input element: one vpbroadcastd of the code (both
// halves of the packed uint32), then per power-of-two term one vpsllvw by the lanes' exponents and
// a masked vpaddw / vpsubw by the lanes' signs; no multiplies. The int16 partial sums are widened
// into the int32 output every flush_steps elements (exact: shift_tile.hpp). Variable shifts issue
// on port 0 only, so this is the "multiply-free" variant, not the fast path (KERNELS.md §0.3,
// §5.5). Built with this tier's flags.
// Not here: decomposition, packing, threading (shift_conv.cpp).
#include <immintrin.h>

#include <cassert>
#include <cstddef>
#include <cstdint>

#include "kernels/shift/shift_tile.hpp"

namespace bitgrad::kernels {
namespace {

constexpr int kNr = 8;

// Accumulators are scalarised by g++ (every index a compile-time constant after the recursive
// templates are inlined); checked in the asm: no zmm stack traffic in the step loop.
struct Acc {
  __m512i v[kNr];
};

template <int P = 0>
inline void zero(Acc& acc) {
  if constexpr (P < kNr) {
    acc.v[P] = _mm512_setzero_si512();
    zero<P + 1>(acc);
  }
}

// One input element for every pixel. kTerms 0: weights in {-1, 0, 1}, no shift.
template <int kTerms, int P = 0>
inline void step(Acc& acc, const uint32_t* const (&a)[kNr], std::ptrdiff_t k, const __m512i (&e)[2],
                 const __mmask32 (&plus)[2], const __mmask32 (&minus)[2]) {
  if constexpr (P < kNr) {
    const __m512i x = _mm512_set1_epi32(static_cast<int>(a[P][k]));
    if constexpr (kTerms == 0) {
      acc.v[P] = _mm512_mask_add_epi16(acc.v[P], plus[0], acc.v[P], x);
      acc.v[P] = _mm512_mask_sub_epi16(acc.v[P], minus[0], acc.v[P], x);
    } else {
      const __m512i s0 = _mm512_sllv_epi16(x, e[0]);
      acc.v[P] = _mm512_mask_add_epi16(acc.v[P], plus[0], acc.v[P], s0);
      acc.v[P] = _mm512_mask_sub_epi16(acc.v[P], minus[0], acc.v[P], s0);
      if constexpr (kTerms == 2) {
        const __m512i s1 = _mm512_sllv_epi16(x, e[1]);
        acc.v[P] = _mm512_mask_add_epi16(acc.v[P], plus[1], acc.v[P], s1);
        acc.v[P] = _mm512_mask_sub_epi16(acc.v[P], minus[1], acc.v[P], s1);
      }
    }
    step<kTerms, P + 1>(acc, a, k, e, plus, minus);
  }
}

// Widens each pixel's 32 int16 partial sums into its int32 outputs (stored on the first flush,
// added afterwards) and clears them. Always inlined: as a call it would pin the accumulators to
// memory.
template <int P = 0>
[[gnu::always_inline]] inline void flush(Acc& acc, const ShiftTile& t, bool first,
                                         __mmask16 lo_mask, __mmask16 hi_mask) {
  if constexpr (P < kNr) {
    if (P < t.pixels_valid) {
      int32_t* out = t.out + P * t.out_stride;
      __m512i lo = _mm512_cvtepi16_epi32(_mm512_castsi512_si256(acc.v[P]));
      __m512i hi = _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(acc.v[P], 1));
      if (!first) {
        lo = _mm512_add_epi32(lo, _mm512_maskz_loadu_epi32(lo_mask, out));
        hi = _mm512_add_epi32(hi, _mm512_maskz_loadu_epi32(hi_mask, out + 16));
      }
      _mm512_mask_storeu_epi32(out, lo_mask, lo);
      _mm512_mask_storeu_epi32(out + 16, hi_mask, hi);
    }
    acc.v[P] = _mm512_setzero_si512();
    flush<P + 1>(acc, t, first, lo_mask, hi_mask);
  }
}

template <int kTerms>
void tile(const ShiftTile& t) {
  constexpr int kT = kTerms == 0 ? 1 : kTerms;
  const int64_t cv = t.channels_valid;
  const auto lo_mask = static_cast<__mmask16>(cv >= 16 ? 0xffffu : (1u << cv) - 1u);
  const auto hi_mask =
      static_cast<__mmask16>(cv >= 32 ? 0xffffu : (cv > 16 ? (1u << (cv - 16)) - 1u : 0u));
  Acc acc;
  zero(acc);
  const int16_t* shifts = t.shifts;
  const uint32_t* masks = t.masks;
  bool first = true;
  int64_t left = t.flush_steps;
  for (int64_t r = 0; r < t.runs; ++r) {
    const uint32_t* a[kNr];
    for (int p = 0; p < kNr; ++p) a[p] = t.pixels[p] + t.run_offsets[r];
    for (std::ptrdiff_t k = 0; k < t.run_steps; ++k) {
      __m512i e[2];
      __mmask32 plus[2], minus[2];
      for (int j = 0; j < kT; ++j) {
        if constexpr (kTerms > 0) e[j] = _mm512_loadu_si512(shifts + 32 * j);
        plus[j] = _cvtu32_mask32(masks[2 * j]);
        minus[j] = _cvtu32_mask32(masks[2 * j + 1]);
      }
      step<kTerms>(acc, a, k, e, plus, minus);
      if constexpr (kTerms > 0) shifts += 32 * kT;
      masks += 2 * kT;
      if (--left == 0) {
        flush(acc, t, first, lo_mask, hi_mask);
        first = false;
        left = t.flush_steps;
      }
    }
  }
  if (left != t.flush_steps) flush(acc, t, first, lo_mask, hi_mask);
}

}  // namespace

void conv_apot__avx512_8x32(const ShiftTile& t) {
  assert(t.pixels_valid >= 1 && t.pixels_valid <= kNr && t.channels_valid >= 1 &&
         t.channels_valid <= 32);
  assert(t.run_steps >= 1 && t.runs >= 1 && t.flush_steps >= 1 &&
         (t.terms == 0 || t.shifts != nullptr));
  switch (t.terms) {
    case 0:
      tile<0>(t);
      break;
    case 1:
      tile<1>(t);
      break;
    default:
      tile<2>(t);
      break;
  }
}

}  // namespace bitgrad::kernels
