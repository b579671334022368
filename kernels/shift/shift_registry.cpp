// shift_registry.cpp: the shift family's rows of the kernel table (kernels/registry.hpp), slowest
// first: the scalar reference and the AVX-512 BW tile (vpsllvw + masked adds). Both accept exactly
// the layers whose weights are sums of at most two signed powers of two. Thin wrappers over
// shift_conv.hpp.
#include <span>

#include "kernels/conv.hpp"
#include "kernels/shift/shift_conv.hpp"

namespace bitgrad::kernels {
namespace {

constexpr std::string_view kRefName = "conv_wapota8_shift__ref";
constexpr std::string_view kAvx512Name = "conv_wapota8_shift__avx512_8x32";

template <ShiftIsa kIsa>
std::string rejects(const ConvSpec& spec, std::span<const int8_t> weights) {
  return shift_conv_rejects(kIsa, spec, weights);
}

template <ShiftIsa kIsa>
std::unique_ptr<QConv> prepare(const ConvSpec& spec, std::span<const int8_t> weights) {
  return make_shift_conv(kIsa, kIsa == ShiftIsa::kRef ? kRefName : kAvx512Name, spec, weights);
}

constexpr ConvKernelRow kRows[] = {
    {kRefName, Family::kShift, Tier::kScalar, rejects<ShiftIsa::kRef>, prepare<ShiftIsa::kRef>},
    {kAvx512Name, Family::kShift, Tier::kAvx512, rejects<ShiftIsa::kAvx512>,
     prepare<ShiftIsa::kAvx512>},
};

}  // namespace

std::span<const ConvKernelRow> shift_rows() { return kRows; }

}  // namespace bitgrad::kernels
