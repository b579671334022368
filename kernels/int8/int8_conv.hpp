// int8_conv.hpp: the int8 family's convolution (issue 5 item 4): activation codes as u8 bytes times
// integer weights as s8 bytes, summed exactly in int32 by u8 x s8 dot products (AVX-512 VNNI
// vpdpbusd; AVX2 vpmaddubsw + vpmaddwd; a scalar reference), on the integer codes every bitgrad
// quantizer produces (2-bit to 8-bit activations, any int8 weights: ternary, APoT lattices, int8
// first/last layers). The QConv here packs the weights once (VNNI order, int8_tile.hpp), copies the
// input into a padded NHWC buffer per call, and runs the tile kernels over (pixel tiles x
// output-channel blocks) with oneTBB.
// Not here: the tile kernels (int8_conv_{ref,avx2,avx512}.cpp), the registry rows
// (int8_registry.cpp), epilogues (kernels/epilogue/).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "kernels/conv.hpp"
#include "kernels/int8/int8_tile.hpp"

namespace bitgrad::kernels {

// Which tile kernels an int8 QConv runs.
enum class Int8Isa : int {
  kRef = 0,     // conv_u8s8__ref, 4 pixels x 32 channels (exercises multi-group blocks and tails)
  kAvx2 = 1,    // conv_u8s8__avx2_5x16
  kAvx512 = 2,  // conv_u8s8__avx512_{6x64, 8x48, 12x32, 12x16}, chosen by out_channels
};

// Why the int8 kernels of `isa` cannot run this layer, or "" when they can. Every valid layer runs
// on kRef and kAvx512 (u8 x s8 -> int32 is exact). kAvx2 sums pairs of products in int16 with
// saturation (vpmaddubsw), so it rejects a layer when some pair of adjacent input channels
// (c, c + 1), c even, of one output channel and tap could leave int16 with codes up to
// 2^act_bits - 1:
//   (2^act_bits - 1) * (max(w_c, 0) + max(w_c+1, 0)) > 32767, or the same with the negative parts
//   below -32768.
// So act_bits <= 7 always passes; 8-bit codes pass when no such pair exceeds 128 in total
// magnitude. Also reports an invalid spec or a weight count that does not match it.
std::string int8_conv_rejects(Int8Isa isa, const ConvSpec& spec, std::span<const int8_t> weights);

// Packs the weights (OHWI int8, spec.weight_elements() of them) for `isa`. Precondition:
// int8_conv_rejects(isa, spec, weights) is empty (checked: bitgrad::Error otherwise). `name` is the
// registry row's name, returned by kernel_name(); it must outlive the QConv (registry names are
// static).
//   packed weights  blocks of up to MR groups of 16 output channels, [run][step][group][16][4] s8
//                   (int8_tile.hpp), Cout padded to 16 and Cin to 4 with zero weights;
//   packed input    the padded NHWC copy: [batch][height + 2 pad][width + 2 pad][Cp] u8,
//                   Cp = Cin rounded up to 4; border pixels hold pad_code in channels < Cin;
//                   channels >= Cin hold 0 (pack_input, threaded over image rows above 256 KiB).
// run() tiles the out_pixels() output pixels, in NHWC order, into groups of NR (the last padded by
// repeating its final pixel, whose results are not stored) and the channels into blocks; tiles may
// span output rows and images. Layers below ~1M MACs run on the calling thread.
std::unique_ptr<QConv> make_int8_conv(Int8Isa isa, std::string_view name, const ConvSpec& spec,
                                      std::span<const int8_t> weights);

}  // namespace bitgrad::kernels
