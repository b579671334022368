// registry.hpp: the one table of integer convolution kernels (every family, every ISA tier), and the
// dispatch built on it. Tests iterate the table to check each row against conv_codes__ref; benchmarks
// iterate it to time each row; the runtime asks select_conv() for the fastest row this CPU can run.
// Adding a kernel = one .cpp and one row in its family's *_registry.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "kernels/conv.hpp"

namespace bitgrad::kernels {

// All rows, family by family, each family's rows from slowest (the scalar reference) to fastest.
std::span<const ConvKernelRow> conv_kernels();

// True when this CPU can run the row (its tier <= cpu_tier()); independent of BITGRAD_KERNEL_TIER.
bool cpu_supports(const ConvKernelRow& row);

// The fastest row of `family` whose tier is <= max_tier() (BITGRAD_KERNEL_TIER or the CPU's best) and
// which accepts this layer. Throws bitgrad::Error listing each row's reason when none does.
const ConvKernelRow& select_conv(Family family, const ConvSpec& spec, std::span<const int8_t> weights);

// select_conv(...).prepare(spec, weights), after spec.validate().
std::unique_ptr<QConv> make_conv(Family family, const ConvSpec& spec, std::span<const int8_t> weights);

// The row called `name`; throws bitgrad::Error listing the known names when there is none.
const ConvKernelRow& find_conv(std::string_view name);

}  // namespace bitgrad::kernels
