// int8_registry.cpp: the int8 family's rows of the kernel table (kernels/registry.hpp), slowest first.
// (Being filled in: issue 5.)
#include <span>

#include "kernels/conv.hpp"

namespace bitgrad::kernels {

std::span<const ConvKernelRow> int8_rows() { return {}; }

}  // namespace bitgrad::kernels
