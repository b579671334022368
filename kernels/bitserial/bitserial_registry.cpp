// bitserial_registry.cpp: the bitserial family's rows of the kernel table (kernels/registry.hpp), slowest first.
// (Being filled in: issue 5.)
#include <span>

#include "kernels/conv.hpp"

namespace bitgrad::kernels {

std::span<const ConvKernelRow> bitserial_rows() { return {}; }

}  // namespace bitgrad::kernels
