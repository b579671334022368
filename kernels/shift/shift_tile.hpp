// shift_tile.hpp: the single-threaded tile kernels of the shift-add (multiply-free) APoT
// convolution (kernels/shift/shift_conv.hpp) and the plain struct they read. Included by the ISA
// translation units, so: declarations and a POD only, no inline code, no containers.
// Not here: decomposition of the weights into powers of two, packing, threading (shift_conv.cpp).
#pragma once

#include <cstddef>
#include <cstdint>

namespace bitgrad::kernels {

// Layouts the tiles read (prepared by shift_conv.cpp):
//   input    the padded NHWC copy of the codes, one uint32 per code holding the code in both 16-bit
//            halves (a | a << 16, so one vpbroadcastd fills 32 int16 lanes with it): uint32 [batch,
//            height + 2 pad, width + 2 pad, Cin], border pixels holding pad_code. For one output
//            pixel the receptive field is `runs` (= kernel) runs of run_steps = kernel * Cin
//            consecutive elements; run r starts at pixels[p] + run_offsets[r]. A step is one input
//            element.
//   weights  each weight is written w = sum over its terms t of sign_t * 2^e_t, at most two terms
//            (APoT lattice values: 3 = 2 + 1, 6 = 4 + 2, 10 = 8 + 2, 7 = 8 - 1, -12 = -8 - 4...).
//            For a group of 32 output channels (lane l = channel l of the group), per step s:
//              shifts[(s * T + t) * 32 + l]   int16 e_t of lane l (0 when lane l has no term t),
//              masks[(s * T + t) * 2 + 0]     bit l set when lane l's term t is +2^e_t,
//              masks[(s * T + t) * 2 + 1]     bit l set when it is -2^e_t,
//            with T = max(terms, 1). terms == 0 is the ternary form: every weight in {-1, 0, 1},
//            one term of exponent 0 and no shifts array at all (shifts may be null).
//   output   int32 acc, pixel p's channel c of the group at out[p * out_stride + c].
struct ShiftTile {
  const uint32_t* const* pixels;      // [nr] receptive-field start of each pixel of the tile
  const std::ptrdiff_t* run_offsets;  // [runs] element offset of each kernel row from the start
  int64_t runs;                       // kernel rows (= kernel)
  int64_t run_steps;                  // elements per run (= kernel * Cin)
  const int16_t* shifts;              // [runs * run_steps][T][32], null for terms == 0
  const uint32_t* masks;              // [runs * run_steps][T][2]
  int terms;                          // 0 (ternary, no shifts), 1 or 2
  // Steps the int16 lanes may sum before they are widened into the int32 output: any flush_steps
  // consecutive products of one lane sum to at most 32767 in magnitude (shift_conv.cpp derives it
  // from act_bits and the largest |w|), so the int16 partial sums, exact modulo 2^16, are exact
  // once flushed.
  int64_t flush_steps;
  int32_t* out;            // accumulator of pixel 0, channel 0 of the group
  int64_t out_stride;      // int32 entries between consecutive pixels (out_channels)
  int64_t pixels_valid;    // pixels to store, 1..NR; pixels[p] readable for all p < NR
  int64_t channels_valid;  // channels to store, 1..32
};

// out[p * out_stride + c] = sum over runs r, steps s (element x = pixels[p][run_offsets[r] + s],
// code a = x & 0xffff) and terms t of: +(a << e) when lane c's plus mask bit is set, -(a << e) when
// its minus bit is, e = lane c's shift (0 for terms == 0); for p < pixels_valid and
// c < channels_valid. Shifts and adds only, no multiplies. No allocation, no exceptions;
// preconditions asserted.
// conv_apot__ref: any nr (pixels_valid rows). conv_apot__avx512_8x32: NR 8 pixels x 32 channels,
// vpsllvw + masked vpaddw / vpsubw on int16 lanes.
void conv_apot__ref(const ShiftTile& tile);
void conv_apot__avx512_8x32(const ShiftTile& tile);

}  // namespace bitgrad::kernels
