// int8_tile.hpp: the single-threaded tile kernels of the int8 convolution family
// (kernels/int8/int8_conv.hpp) and the plain struct they read: u8 activation codes times s8
// weights, summed exactly into int32. Included by the ISA translation units, so: declarations and a
// POD only, no inline code, no containers.
// Not here: packing, threading, validation, dispatch (int8_conv.cpp, int8_registry.cpp).
#pragma once

#include <cstddef>
#include <cstdint>

namespace bitgrad::kernels {

// Layouts the tiles read (prepared by int8_conv.cpp):
//   input    the padded NHWC copy: uint8 [batch, height + 2 pad, width + 2 pad, Cp], Cp =
//            in_channels rounded up to a multiple of 4, the spatial border holding pad_code and
//            channels >= in_channels holding 0. For one output pixel the receptive field is
//            `runs` (= kernel) contiguous byte runs, one per kernel row, each kernel * Cp bytes
//            long; run r starts at pixels[p] + run_offsets[r].
//   weights  "VNNI order": output channels in groups of 16 (the last padded with zero weights);
//            a block of `groups` groups is [run][step][group][16 channels][4 bytes], step s of
//            run r holding the 4 consecutive bytes of that run's K at 4 s (kernel column
//            j = 4 s / Cp, channel 4 s % Cp + 0..3), zero for padded channels.
//   output   int32 acc, pixel p's channel c of the block at out[p * out_stride + c].
struct Int8Tile {
  const uint8_t* const* pixels;       // [nr] receptive-field start of each pixel of the tile
  const std::ptrdiff_t* run_offsets;  // [runs] byte offset of each kernel row from the field start
  int64_t runs;                       // kernel rows (= kernel)
  int64_t run_steps;                  // 4-byte steps per run (= kernel * Cp / 4)
  const int8_t* weights;              // this block: [runs][run_steps][groups][16][4]
  int64_t groups;                     // 16-channel groups in this block: 1..MR of the tile function
  int32_t* out;                       // accumulator of pixel 0, channel 0 of the block
  int64_t out_stride;                 // int32 entries between consecutive pixels (out_channels)
  int64_t pixels_valid;               // pixels to store, 1..NR; pixels[p] readable for all p < NR
  int64_t channels_valid;             // channels to store, 1..16 * groups
  // AVX2 tile only: steps its int16 accumulators may sum before they are widened to int32. Any
  // flush_steps steps of one int16 lane (a sum of 2 products per step) stay within +-32767
  // (int8_conv.cpp derives it from act_bits and the weights), so the int16 sums, exact modulo
  // 2^16, are exact when widened.
  int64_t flush_steps;
};

// out[p * out_stride + c] = sum over runs r, steps s, bytes j of
//     pixels[p][run_offsets[r] + 4 s + j]
//   * weights[((r * run_steps + s) * groups + c / 16) * 64 + c % 16 * 4 + j]
// for p < pixels_valid, c < channels_valid (other outputs untouched). NR x (16 MR) is the tile; a
// function handles any groups <= MR. Exact for any codes and weights (int32 wraps only when the
// true sum does not fit, which ConvSpec::validate excludes), except the AVX2 tile, which is exact
// when no pair sum a[2i] w[2i] + a[2i+1] w[2i+1] leaves int16 (vpmaddubsw saturates;
// int8_conv.cpp rejects such layers) and flush_steps respects its bound. No allocation, no
// exceptions; preconditions asserted.
void conv_u8s8__ref(const Int8Tile& tile);           // any nr (pixels_valid rows), any groups
void conv_u8s8__avx2_5x16(const Int8Tile& tile);     // NR 5,  MR 1: vpmaddubsw + vpaddw, ymm
void conv_u8s8__avx512_12x16(const Int8Tile& tile);  // NR 12, MR 1: vpdpbusd, zmm
void conv_u8s8__avx512_12x32(const Int8Tile& tile);  // NR 12, MR 2
void conv_u8s8__avx512_8x48(const Int8Tile& tile);   // NR 8,  MR 3
void conv_u8s8__avx512_6x64(const Int8Tile& tile);   // NR 6,  MR 4

}  // namespace bitgrad::kernels
