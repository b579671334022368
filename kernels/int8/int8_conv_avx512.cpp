// int8_conv_avx512.cpp: the int8 convolution tiles for AVX-512 VNNI (KERNELS.md §5.5): per 4-byte
// step, one vpbroadcastd of 4 u8 activation codes per pixel times one zmm of s8 weights per 16
// output channels (VNNI order) into vpdpbusd, NR pixels x MR groups of int32 accumulators held in
// registers for the whole receptive field. Built with this tier's flags only.
// Not here: packing, threading (int8_conv.cpp).
#include <immintrin.h>

#include <cassert>
#include <cstddef>
#include <cstdint>

#include "kernels/int8/int8_tile.hpp"

namespace bitgrad::kernels {
namespace {

// 4 activation codes as one int32 (a vpbroadcastd from memory once inlined into _mm512_set1_epi32;
// _mm512_broadcastd_epi32 trips g++ 12's -Wuninitialized inside its own header).
inline int load4(const uint8_t* p) {
  int v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

// The accumulators: g++ 12 kept a __m512i[6][4] array on the stack in KERNELS.md's probe. Here
// every access is through the recursive templates below (zero, step, store), so every index is a
// compile-time constant before scalar replacement runs and the array lives in registers (checked
// in the asm: no zmm stack traffic). Loops over the array with runtime-looking indices, even fully
// unrollable ones, made g++ keep a stack copy.
template <int NR, int MR>
struct Acc {
  __m512i v[NR][MR];
};

template <int NR, int MR, int I = 0>
inline void zero(Acc<NR, MR>& acc) {
  if constexpr (I < NR * MR) {
    acc.v[I / MR][I % MR] = _mm512_setzero_si512();
    zero<NR, MR, I + 1>(acc);
  }
}

template <int NR, int MR, int P = 0>
[[gnu::always_inline]] inline void step(Acc<NR, MR>& acc, const uint8_t* const (&a)[NR],
                                        std::ptrdiff_t k, __m512i w0, __m512i w1, __m512i w2,
                                        __m512i w3) {
  if constexpr (P < NR) {
    const __m512i b = _mm512_set1_epi32(load4(a[P] + k));
    acc.v[P][0] = _mm512_dpbusd_epi32(acc.v[P][0], b, w0);
    if constexpr (MR > 1) acc.v[P][1] = _mm512_dpbusd_epi32(acc.v[P][1], b, w1);
    if constexpr (MR > 2) acc.v[P][2] = _mm512_dpbusd_epi32(acc.v[P][2], b, w2);
    if constexpr (MR > 3) acc.v[P][3] = _mm512_dpbusd_epi32(acc.v[P][3], b, w3);
    step<NR, MR, P + 1>(acc, a, k, w0, w1, w2, w3);
  }
}

// One 4-byte step: MR weight vectors (named values, not an array: g++ 12 stored an array of them
// to the stack in the unrolled loop), then NR broadcasts x MR vpdpbusd.
template <int NR, int MR>
[[gnu::always_inline]] inline void kstep(Acc<NR, MR>& acc, const uint8_t* const (&a)[NR],
                                         std::ptrdiff_t k, const int8_t* w) {
  const __m512i w0 = _mm512_loadu_si512(w);
  const __m512i w1 = MR > 1 ? _mm512_loadu_si512(w + 64) : w0;
  const __m512i w2 = MR > 2 ? _mm512_loadu_si512(w + 128) : w0;
  const __m512i w3 = MR > 3 ? _mm512_loadu_si512(w + 192) : w0;
  step<NR, MR>(acc, a, k, w0, w1, w2, w3);
}

template <int NR, int MR, int P, int G = 0>
inline void store_group(const Acc<NR, MR>& acc, int32_t* out, int64_t full, __mmask16 tail) {
  if constexpr (G < MR) {
    if (G < full) {
      _mm512_storeu_si512(out + 16 * G, acc.v[P][G]);
    } else if (G == full && tail != 0) {
      _mm512_mask_storeu_epi32(out + 16 * G, tail, acc.v[P][G]);
    }
    store_group<NR, MR, P, G + 1>(acc, out, full, tail);
  }
}

// Stores pixel P's groups (masked for the channel tail), then the next pixel; unrolled so that the
// accumulators go straight from registers to memory.
template <int NR, int MR, int P = 0>
inline void store(const Acc<NR, MR>& acc, const Int8Tile& t) {
  if constexpr (P < NR) {
    if (P >= t.pixels_valid) return;
    int32_t* out = t.out + P * t.out_stride;
    const int64_t full = t.channels_valid / 16;
    const auto tail = static_cast<__mmask16>((1u << (t.channels_valid % 16)) - 1u);
    store_group<NR, MR, P>(acc, out, full, tail);
    store<NR, MR, P + 1>(acc, t);
  }
}

template <int NR, int MR>
void tile(const Int8Tile& t) {
  Acc<NR, MR> acc;
  zero<NR, MR>(acc);
  const int8_t* w = t.weights;
  for (int64_t r = 0; r < t.runs; ++r) {
    const uint8_t* a[NR];
    for (int p = 0; p < NR; ++p) a[p] = t.pixels[p] + t.run_offsets[r];
    const std::ptrdiff_t bytes = 4 * t.run_steps;
    // Four steps per iteration: one loop branch and pointer update per 4 * NR * MR vpdpbusd
    // (measured ~10% faster on an L1-resident tile than one step per iteration).
    std::ptrdiff_t k = 0;
    for (; k + 16 <= bytes; k += 16, w += 256 * MR) {
      kstep<NR, MR>(acc, a, k, w);
      kstep<NR, MR>(acc, a, k + 4, w + 64 * MR);
      kstep<NR, MR>(acc, a, k + 8, w + 128 * MR);
      kstep<NR, MR>(acc, a, k + 12, w + 192 * MR);
    }
    for (; k < bytes; k += 4, w += 64 * MR) kstep<NR, MR>(acc, a, k, w);
  }
  store<NR, MR>(acc, t);
}

template <int NR, int MR>
void dispatch(const Int8Tile& t) {
  assert(t.groups >= 1 && t.groups <= MR && t.pixels_valid >= 1 && t.pixels_valid <= NR);
  assert(t.channels_valid >= 1 && t.channels_valid <= 16 * t.groups && t.run_steps >= 1);
  switch (t.groups) {
    case 1:
      tile<NR, 1>(t);
      break;
    case 2:
      if constexpr (MR >= 2) tile<NR, 2>(t);
      break;
    case 3:
      if constexpr (MR >= 3) tile<NR, 3>(t);
      break;
    default:
      if constexpr (MR >= 4) tile<NR, 4>(t);
      break;
  }
}

}  // namespace

void conv_u8s8__avx512_12x16(const Int8Tile& tile) { dispatch<12, 1>(tile); }
void conv_u8s8__avx512_12x32(const Int8Tile& tile) { dispatch<12, 2>(tile); }
void conv_u8s8__avx512_8x48(const Int8Tile& tile) { dispatch<8, 3>(tile); }
void conv_u8s8__avx512_6x64(const Int8Tile& tile) { dispatch<6, 4>(tile); }

}  // namespace bitgrad::kernels
