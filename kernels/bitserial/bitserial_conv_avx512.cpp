// bitserial_conv_avx512.cpp: the AVX-512 bit-serial tile (KERNELS.md §5.4, broadcast layout). Per
// K-step of 32 K positions: one zmm per (16-channel group, weight plane) holds the same 32 K-bits
// of 16 output channels; each pixel's activation-plane word is broadcast, ANDed, counted with
// VPOPCNTW and weighted into the int32 lane of its channel by VPDPWSSD with a per-lane int16
// constant 2^i * coef_o[j] (words rather than bytes so that any coefficient of a 4-level
// decomposition fits; same port cost as VPOPCNTB + VPDPBUSD). No horizontal sums: lane = output
// channel. Compiled with the AVX-512 tier's flags; includes only <immintrin.h>, <cstdint>,
// <cstddef> and the tile header, and keeps everything but the entry point in an anonymous
// namespace.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels/bitserial/bitserial_tile.hpp"

namespace bitgrad::kernels {
namespace {

// Compile-time loops: unroll<N>(f) calls f(Index<0>{}) .. f(Index<N-1>{}), so register arrays are
// only ever indexed by constants and stay in registers.
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

// Register blocking: MR groups of 16 channels x NR pixels of int32 accumulators, plus MR * AP * WP
// coefficient vectors and MR * WP weight vectors, within 32 zmm. Each accumulator takes AP * WP
// dependent VPDPWSSD (latency ~5) per K-step, so 8+ accumulators keep the ports busy. Groups left
// over (one group, or an odd count) run 1 x kNR1 blocks; the three-plane, two-activation-plane case
// (12 coefficient vectors per group) runs 1 x kNR1 blocks throughout.
template <int AP, int WP>
struct Blocking {
  static constexpr int kMR = (AP * WP >= 6) ? 1 : 2;
  static constexpr int kNR = 8;
  static constexpr int kNR1 = 8;
  static_assert(kMR * kNR + kMR * AP * WP + kMR * WP + 2 <= 32, "accumulators would spill");
  static_assert(kNR1 + AP * WP + WP + 2 <= 32, "accumulators would spill");
  static_assert(kBitserialTilePixels % kNR == 0 && kBitserialTilePixels % kNR1 == 0,
                "the caller's pixel tile splits into whole blocks");
};

// One register block: groups g0 .. g0+MR-1, pixels base[0..NR) (the caller repeats the last pixel
// when fewer than NR are valid; only `valid` pixels are stored). Not inlined: one call per block,
// and each instantiation's registers are allocated on their own (checked: no stack traffic in the K
// loop).
template <int MR, int NR, int AP, int WP>
[[gnu::noinline]] void block(const BitserialTileArgs& a, int64_t g0, const int64_t* base, int valid,
                             int32_t* out) {
  __m512i coef[MR][AP * WP];
  const uint32_t* w[MR];
  unroll<MR>([&](auto G) {
    constexpr int g = decltype(G)::value;
    w[g] = a.weights + (g0 + g) * a.ksteps * WP * 16;
    unroll<AP * WP>([&](auto Q) {
      constexpr int q = decltype(Q)::value;
      coef[g][q] = _mm512_loadu_si512(a.pair_coef + ((g0 + g) * AP * WP + q) * 16);
    });
  });
  const uint32_t* px[NR];
  unroll<NR>([&](auto P) { px[P.value] = a.act + base[P.value]; });
  __m512i acc[NR][MR];
  unroll<NR>(
      [&](auto P) { unroll<MR>([&](auto G) { acc[P.value][G.value] = _mm512_setzero_si512(); }); });

  for (int64_t s = 0; s < a.ksteps; ++s) {
    const int64_t off = a.kstep_offset[s];
    __m512i wv[MR][WP];
    unroll<MR>([&](auto G) {
      unroll<WP>([&](auto J) {
        wv[G.value][J.value] = _mm512_loadu_si512(w[G.value] + (s * WP + J.value) * 16);
      });
    });
    unroll<NR>([&](auto P) {
      constexpr int p = decltype(P)::value;
      unroll<AP>([&](auto I) {
        constexpr int i = decltype(I)::value;
        const __m512i x = _mm512_set1_epi32(static_cast<int>(px[p][off + i]));
        unroll<MR>([&](auto G) {
          constexpr int g = decltype(G)::value;
          unroll<WP>([&](auto J) {
            constexpr int j = decltype(J)::value;
            const __m512i count = _mm512_popcnt_epi16(_mm512_and_si512(x, wv[g][j]));
            acc[p][g] = _mm512_dpwssd_epi32(acc[p][g], count, coef[g][i * WP + j]);
          });
        });
      });
    });
  }

  unroll<MR>([&](auto G) {
    constexpr int g = decltype(G)::value;
    const int64_t first = (g0 + g) * 16;
    const int64_t lanes = a.out_channels - first < 16 ? a.out_channels - first : 16;
    const __mmask16 mask = static_cast<__mmask16>(lanes >= 16 ? 0xFFFFu : (1u << lanes) - 1u);
    const __m512i alpha =
        a.alpha != nullptr ? _mm512_loadu_si512(a.alpha + first) : _mm512_setzero_si512();
    unroll<NR>([&](auto P) {
      constexpr int p = decltype(P)::value;
      if (p >= valid) return;
      // Always through an add (of 0 without a sum term): storing the VPDPWSSD accumulators directly
      // makes GCC 12 copy every accumulator twice per K-step in the loop above.
      const __m512i bias = a.alpha != nullptr
                               ? _mm512_mullo_epi32(alpha, _mm512_set1_epi32(a.act_sum[p]))
                               : _mm512_setzero_si512();
      const __m512i v = _mm512_add_epi32(acc[p][g], bias);
      _mm512_mask_storeu_epi32(out + p * a.out_channels + first, mask, v);
    });
  });
}

// Runs block<MR, NR> over groups [g_begin, g_end) (a multiple of MR) x all pixels of the tile,
// groups outermost so that a group's weights stay in L1 across the tile's pixel blocks.
template <int MR, int NR, int AP, int WP>
void blocks(const BitserialTileArgs& a, int64_t g_begin, int64_t g_end) {
  for (int64_t g = g_begin; g < g_end; g += MR)
    for (int p0 = 0; p0 < a.pixels; p0 += NR) {
      const int valid = a.pixels - p0 < NR ? a.pixels - p0 : NR;
      int64_t base[NR];
      for (int p = 0; p < NR; ++p) base[p] = a.pixel_base[p0 + (p < valid ? p : valid - 1)];
      BitserialTileArgs sub = a;
      sub.act_sum = a.act_sum != nullptr ? a.act_sum + p0 : nullptr;
      block<MR, NR, AP, WP>(sub, g, base, valid, a.out + p0 * a.out_channels);
    }
}

template <int AP, int WP>
void tile(const BitserialTileArgs& a) {
  using B = Blocking<AP, WP>;
  int64_t paired = a.group_begin;
  if constexpr (B::kMR > 1) {
    paired += (a.group_end - a.group_begin) / B::kMR * B::kMR;
    blocks<B::kMR, B::kNR, AP, WP>(a, a.group_begin, paired);
  }
  blocks<1, B::kNR1, AP, WP>(a, paired, a.group_end);
}

}  // namespace

void bitserial_tile__avx512(const BitserialTileArgs& a) {
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
