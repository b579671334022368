// bitserial_registry.cpp: the bitserial family's rows of the kernel table (kernels/registry.hpp),
// slowest first: the scalar reference tile, AVX2 (PSHUFB nibble popcount), AVX-512 (VPOPCNTW +
// VPDPWSSD). All rows share one layer preparation (BitserialConv) and differ only in the tile
// function (and the AVX-512 row also packs narrow layers' bit rows with AVX-512). Names end in the
// main register block, output channels x pixels.
#include <array>
#include <memory>
#include <span>

#include "kernels/bitserial/bitserial_conv.hpp"
#include "kernels/conv.hpp"

namespace bitgrad::kernels {
namespace {

template <BitserialTileFn kTile, BitRowPackFn kPackRow = &pack_bit_row>
std::unique_ptr<QConv> prepare(std::string_view name, const ConvSpec& spec,
                               std::span<const int8_t> weights) {
  return std::make_unique<BitserialConv>(spec, weights, name, kTile, kPackRow);
}

constexpr std::string_view kRef = "conv_w2a2_bitserial__ref";
constexpr std::string_view kAvx2 = "conv_w2a2_bitserial__avx2_16x1";
constexpr std::string_view kAvx512 = "conv_w2a2_bitserial__avx512_32x8";

constexpr std::array<ConvKernelRow, 3> kRows = {{
    {kRef, Family::kBitserial, Tier::kScalar, &bitserial_rejects,
     [](const ConvSpec& s, std::span<const int8_t> w) {
       return prepare<&bitserial_tile__ref>(kRef, s, w);
     }},
    {kAvx2, Family::kBitserial, Tier::kAvx2, &bitserial_rejects,
     [](const ConvSpec& s, std::span<const int8_t> w) {
       return prepare<&bitserial_tile__avx2>(kAvx2, s, w);
     }},
    {kAvx512, Family::kBitserial, Tier::kAvx512, &bitserial_rejects,
     [](const ConvSpec& s, std::span<const int8_t> w) {
       return prepare<&bitserial_tile__avx512, &pack_bit_row__avx512>(kAvx512, s, w);
     }},
}};

}  // namespace

std::span<const ConvKernelRow> bitserial_rows() { return kRows; }

}  // namespace bitgrad::kernels
