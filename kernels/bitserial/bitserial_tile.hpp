// bitserial_tile.hpp: the bit-serial tile functions (one per ISA tier) and the plain data they
// read. A tile computes the exact int32 accumulators of up to kBitserialTilePixels output pixels
// for a range of 16-channel output groups, from bit-planes packed as bitplane.hpp documents.
// Also the AVX-512 twin of the bit-row packer (bitplane.hpp), for the same ISA translation-unit
// rule. Included by the ISA translation units, so: PODs and declarations only, no inline code, no
// standard containers. Not here: packing (bitplane.hpp), threading and buffers
// (bitserial_conv.hpp).
#pragma once

#include <cstddef>
#include <cstdint>

namespace bitgrad::kernels {

// Largest pixel count one tile call takes (the caller's pixel tile; a tile splits it in its own
// register blocks).
inline constexpr int kBitserialTilePixels = 24;

// One tile call. For output pixel p < pixels and output channel o in groups [group_begin,
// group_end):
//   out[p * out_channels + o] = alpha[o] * act_sum[p]
//       + sum over K-steps s, activation planes i, weight planes j of
//         c(g, i, j, lane) * popcount(A(p, s, i) & W(g, s, j)[lane])
// with g = o / 16, lane = o % 16, A(p, s, i) = act[pixel_base[p] + kstep_offset[s] + i] (the word
// of activation plane i of K-step s of pixel p), W(g, s, j) = weights[((g * ksteps + s) *
// weight_planes
// + j) * 16 ...] (16 lanes) and c(g, i, j, lane) = 2^i * coef_o[j], the plane pair's weight, stored
// as the int16 value in both 16-bit halves of pair_coef[g][i * weight_planes + j][lane] (the
// operand VPDPWSSD / VPMADDWD take as is; |2^i * coef| <= 1020 always fits). Lanes of channels >=
// out_channels are not written. All int32 arithmetic wraps (the true sum fits int32,
// ConvSpec::validate), so the order of the partial sums does not matter.
struct BitserialTileArgs {
  const uint32_t* act = nullptr;          // packed activations (image or im2col panel)
  const int64_t* pixel_base = nullptr;    // [pixels] word offset of each pixel's K-step 0
  const int32_t* kstep_offset = nullptr;  // [ksteps] word offset of K-step s from a pixel base
  int64_t ksteps = 0;
  int pixels = 0;                      // 1 .. kBitserialTilePixels
  int act_planes = 2;                  // 1 or 2 (activation plane i has weight 2^i)
  int weight_planes = 2;               // 1 .. 3
  const uint32_t* weights = nullptr;   // [groups][ksteps][weight_planes][16]
  const int32_t* pair_coef = nullptr;  // [groups][act_planes * weight_planes][16], int16 pairs
  const int32_t* alpha = nullptr;      // [groups][16], or nullptr when every alpha is 0
  const int32_t* act_sum = nullptr;    // [pixels] code sum of each pixel's window, or nullptr
  int64_t group_begin = 0;
  int64_t group_end = 0;
  int64_t out_channels = 0;
  int32_t* out = nullptr;  // pixel p's accumulators at out + p * out_channels
};

// Scalar twin: plain loops and std::popcount-equivalent bit counting; defines the tile's meaning.
void bitserial_tile__ref(const BitserialTileArgs& args);
// AVX2: 8 channels per ymm, PSHUFB nibble popcount, VPMADDUBSW + VPMADDWD weighting; blocks of 16
// channels x 1 pixel.
void bitserial_tile__avx2(const BitserialTileArgs& args);
// AVX-512 (VPOPCNTW + VPDPWSSD): 16 channels per zmm, broadcast activation words; blocks of 32
// channels x 8 pixels (16 x 8 for a leftover group and for three weight planes with 2-bit
// activations).
void bitserial_tile__avx512(const BitserialTileArgs& args);

// Packing twins (bitplane.hpp has the scalar definitions and the layout): pack_bit_row with
// VPTESTMB, 64 codes per instruction and plane. Same arguments and result as pack_bit_row.
void pack_bit_row__avx512(const uint8_t* codes, int64_t pixels, int64_t channels, int act_bits,
                          uint8_t* out, int64_t plane_bytes);

}  // namespace bitgrad::kernels
