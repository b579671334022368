// shift_conv.hpp: the shift family's convolution (issue 5 item 3): APoT weights, integers that
// are sums of at most two signed powers of two (quant/apot_math.hpp's lattices: 2-bit ternary
// {-1, 0, 1}, 3-bit +-{0, 1, 2, 4}, 4-bit +-{0, 1, 2, 3, 4, 6, 8, 10}, 5-bit +-{.., 9, 12, 16,
// 18, 24, 32, 33, 36, 48}, and any other int8 such as 7 = 8 - 1), times unsigned activation codes
// (act_bits <= 8), computed with shifts and adds only: sum a * w = sum over terms of +-(a << e).
// Exactly conv_codes__ref's numbers. On this CPU the variable shift issues on one port, so this
// runs slower than the int8 family on the same weights (KERNELS.md §0.3); it is the multiply-free
// variant, kept next to int8 for comparison.
// Not here: the tile kernels (shift_conv_{ref,avx512}.cpp), the registry rows (shift_registry.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "kernels/conv.hpp"

namespace bitgrad::kernels {

// w = sign[0] * 2^exponent[0] + sign[1] * 2^exponent[1] over the first `count` terms (0, 1 or 2),
// signs +-1, exponents 0..7 and different from each other, exponent[0] > exponent[1].
struct PowerTerms {
  int count = 0;
  int sign[2] = {0, 0};
  int exponent[2] = {0, 0};
};

// The fewest-term decomposition of an int8 value, or nullopt when it needs three or more (11 = 8 +
// 2 + 1, 13, 19, 21, 22, 23, ...: the values whose non-adjacent form has more than two non-zero
// digits). Zero has no terms; +-2^e one; when two terms are needed the pair is unique up to order.
std::optional<PowerTerms> power_terms(int w);

// Which tile kernels a shift QConv runs.
enum class ShiftIsa : int {
  kRef = 0,     // conv_apot__ref, 4 pixels x 32 channels
  kAvx512 = 1,  // conv_apot__avx512_8x32
};

// Why the shift kernels cannot run this layer, or "" when they can: a weight that is not a sum of
// at most two signed powers of two (named with its output channel, tap and input channel), an
// invalid spec, or a weight count that does not match it. Both ISAs accept the same layers.
std::string shift_conv_rejects(ShiftIsa isa, const ConvSpec& spec, std::span<const int8_t> weights);

// Decomposes and packs the weights for `isa` (layout in shift_tile.hpp): per group of 32 output
// channels (Cout padded with zero weights), per input element (kernel row, column, channel), each
// lane's exponents and sign masks; layers whose weights are all in {-1, 0, 1} use the shift-free
// ternary form, layers whose weights are all single powers of two the one-term form. Precondition:
// shift_conv_rejects is empty (checked: bitgrad::Error otherwise). `name` is the registry row's
// name, returned by kernel_name(); it must outlive the QConv.
//   packed input  the padded NHWC copy, one uint32 per code (code | code << 16), border = pad_code.
// run() tiles the output pixels (NHWC order, tiles may cross rows and images) by NR and the
// channels by 32, with oneTBB over both; layers below ~1M MACs run on the calling thread.
std::unique_ptr<QConv> make_shift_conv(ShiftIsa isa, std::string_view name, const ConvSpec& spec,
                                       std::span<const int8_t> weights);

}  // namespace bitgrad::kernels
