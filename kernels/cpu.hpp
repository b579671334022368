// cpu.hpp: which kernel ISA tiers this CPU can run, detected once at run time (cpuid + OS support), and
// the BITGRAD_KERNEL_TIER override used by tests and A/B benchmarks.
// Not here: the kernels themselves or the choice among kernels of one tier (kernels/registry.hpp).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace bitgrad::kernels {

// Kernel ISA tiers, ordered: a CPU that runs a tier runs every lower one.
//   kScalar  plain C++ for the baseline x86-64 (the reference twins live here);
//   kAvx2    AVX2 + FMA + BMI2 + POPCNT;
//   kAvx512  AVX-512 F/BW/VL/DQ + VNNI + VPOPCNTDQ + BITALG (Ice Lake, Sapphire Rapids and later;
//            Skylake-X-class AVX-512 without VNNI/VPOPCNTDQ runs the AVX2 tier).
enum class Tier : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

std::string_view tier_name(Tier tier);  // "scalar", "avx2", "avx512"
// Parses a tier name as tier_name() spells it; throws bitgrad::Error naming the accepted names.
Tier parse_tier(std::string_view name);

// The highest tier this CPU and OS support (features and the XSAVE state for ymm/zmm), detected once.
Tier cpu_tier();
// One line listing the detected features that matter to the kernels, e.g.
// "avx2 fma bmi2 avx512f avx512bw avx512vl avx512dq avx512vnni avx512vpopcntdq avx512bitalg".
std::string cpu_feature_summary();

// The tier kernels are chosen at: BITGRAD_KERNEL_TIER from the environment if set (read once; an
// unknown name or a tier this CPU lacks throws bitgrad::Error), else cpu_tier(). Selection treats it
// as a ceiling: a kernel family picks its fastest row whose tier is <= this (kernels/registry.hpp).
Tier max_tier();

}  // namespace bitgrad::kernels
