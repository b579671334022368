// cpu.cpp: run-time ISA detection for kernel dispatch. Uses GCC/Clang's __builtin_cpu_supports, which
// reads cpuid once at start-up and also checks XGETBV, so a feature is reported only when the OS saves
// the registers it needs.
#include "kernels/cpu.hpp"

#include <cstdlib>

#include "core/error.hpp"

namespace bitgrad::kernels {
namespace {

bool has_avx2() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("popcnt");
}

bool has_avx512() {
  return has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vpopcntdq") &&
         __builtin_cpu_supports("avx512bitalg");
}

Tier detect() {
  __builtin_cpu_init();
  if (has_avx512()) return Tier::kAvx512;
  if (has_avx2()) return Tier::kAvx2;
  return Tier::kScalar;
}

Tier from_environment() {
  const char* forced = std::getenv("BITGRAD_KERNEL_TIER");
  if (forced == nullptr || *forced == '\0') return cpu_tier();
  const Tier tier = parse_tier(forced);
  check_lazy(tier <= cpu_tier(), [&] {
    return "BITGRAD_KERNEL_TIER=" + std::string(forced) + " asks for a tier this CPU cannot run " +
           "(it supports up to " + std::string(tier_name(cpu_tier())) + "; features: " +
           cpu_feature_summary() + ")";
  });
  return tier;
}

}  // namespace

std::string_view tier_name(Tier tier) {
  switch (tier) {
    case Tier::kScalar: return "scalar";
    case Tier::kAvx2: return "avx2";
    case Tier::kAvx512: return "avx512";
  }
  return "unknown";
}

Tier parse_tier(std::string_view name) {
  for (Tier t : {Tier::kScalar, Tier::kAvx2, Tier::kAvx512}) {
    if (name == tier_name(t)) return t;
  }
  check(false, "kernel tier: expected one of scalar, avx2, avx512, got '" + std::string(name) + "'");
  return Tier::kScalar;
}

Tier cpu_tier() {
  static const Tier tier = detect();
  return tier;
}

std::string cpu_feature_summary() {
  __builtin_cpu_init();
  std::string out;
  auto add = [&](bool has, const char* name) {
    if (!has) return;
    if (!out.empty()) out += ' ';
    out += name;
  };
  add(__builtin_cpu_supports("avx2"), "avx2");
  add(__builtin_cpu_supports("fma"), "fma");
  add(__builtin_cpu_supports("bmi2"), "bmi2");
  add(__builtin_cpu_supports("avx512f"), "avx512f");
  add(__builtin_cpu_supports("avx512bw"), "avx512bw");
  add(__builtin_cpu_supports("avx512vl"), "avx512vl");
  add(__builtin_cpu_supports("avx512dq"), "avx512dq");
  add(__builtin_cpu_supports("avx512vnni"), "avx512vnni");
  add(__builtin_cpu_supports("avx512vpopcntdq"), "avx512vpopcntdq");
  add(__builtin_cpu_supports("avx512bitalg"), "avx512bitalg");
  return out.empty() ? std::string("baseline x86-64") : out;
}

Tier max_tier() {
  static const Tier tier = from_environment();
  return tier;
}

}  // namespace bitgrad::kernels
