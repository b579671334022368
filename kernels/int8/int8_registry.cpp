// int8_registry.cpp: the int8 family's rows of the kernel table (kernels/registry.hpp), slowest
// first: the scalar reference, AVX2 (vpmaddubsw; rejects layers whose int16 pair sums could
// saturate), AVX-512 VNNI (vpdpbusd; any layer). Each row is a thin wrapper over
// kernels/int8/int8_conv.hpp.
#include <span>

#include "kernels/conv.hpp"
#include "kernels/int8/int8_conv.hpp"

namespace bitgrad::kernels {
namespace {

template <Int8Isa kIsa>
std::string rejects(const ConvSpec& spec, std::span<const int8_t> weights) {
  return int8_conv_rejects(kIsa, spec, weights);
}

constexpr std::string_view kRefName = "conv_w8a8_int8__ref";
constexpr std::string_view kAvx2Name = "conv_w8a8_int8__avx2_5x16";
constexpr std::string_view kAvx512Name = "conv_w8a8_int8__avx512_6x64";

template <Int8Isa kIsa>
std::unique_ptr<QConv> prepare(const ConvSpec& spec, std::span<const int8_t> weights) {
  const std::string_view name =
      kIsa == Int8Isa::kRef ? kRefName : (kIsa == Int8Isa::kAvx2 ? kAvx2Name : kAvx512Name);
  return make_int8_conv(kIsa, name, spec, weights);
}

// The AVX-512 row's tile adapts to out_channels: 6x64 for >= 49 channels, 8x48, 12x32, 12x16 below.
constexpr ConvKernelRow kRows[] = {
    {kRefName, Family::kInt8, Tier::kScalar, rejects<Int8Isa::kRef>, prepare<Int8Isa::kRef>},
    {kAvx2Name, Family::kInt8, Tier::kAvx2, rejects<Int8Isa::kAvx2>, prepare<Int8Isa::kAvx2>},
    {kAvx512Name, Family::kInt8, Tier::kAvx512, rejects<Int8Isa::kAvx512>,
     prepare<Int8Isa::kAvx512>},
};

}  // namespace

std::span<const ConvKernelRow> int8_rows() { return kRows; }

}  // namespace bitgrad::kernels
