// conv_ref_test.cpp: the int64 reference convolution on codes (the definition every kernel is tested
// against), ConvSpec checks, tier/family names and the registry's invariants.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <vector>

#include "core/error.hpp"
#include "kernels/registry.hpp"

using namespace bitgrad::kernels;

TEST_CASE("conv_codes__ref matches a hand-computed 3x3 convolution with padding code", "[kernel]") {
  ConvSpec s;
  s.height = 2; s.width = 2; s.in_channels = 2; s.out_channels = 1; s.kernel = 3; s.pad = 1;
  s.act_bits = 2; s.pad_code = 1;
  // a[y, x, c]: channel 0 = {0,1,2,3}, channel 1 = 3 everywhere
  std::vector<uint8_t> a = {0, 3, 1, 3, 2, 3, 3, 3};
  std::vector<int8_t> w(18);
  for (int t = 0; t < 9; ++t) { w[t * 2] = static_cast<int8_t>(t - 4); w[t * 2 + 1] = 1; }
  std::vector<int64_t> out(4);
  conv_codes__ref(s, a, w, out);
  // Output (0,0): taps (i,j) read pixel (i-1, j-1); out-of-image taps read code 1 on both channels.
  auto expect = [&](int y, int x) {
    int64_t sum = 0;
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) {
        const int iy = y - 1 + i, ix = x - 1 + j;
        const bool in = iy >= 0 && iy < 2 && ix >= 0 && ix < 2;
        const int a0 = in ? a[(iy * 2 + ix) * 2] : 1, a1 = in ? a[(iy * 2 + ix) * 2 + 1] : 1;
        sum += a0 * (i * 3 + j - 4) + a1;
      }
    return sum;
  };
  CHECK(out[0] == expect(0, 0));
  CHECK(out[1] == expect(0, 1));
  CHECK(out[2] == expect(1, 0));
  CHECK(out[3] == expect(1, 1));
  // Spot value at (0,0): channel 0 reads pad code 1 at taps 0,1,2,3,6 (weights -4,-3,-2,-1,2) and codes
  // 0,1,2,3 at taps 4,5,7,8 (weights 0,1,3,4); channel 1 reads 1 at 5 padded taps and 3 at 4 pixels.
  CHECK(out[0] == (-4 - 3 - 2 - 1 + 2) + (0 + 1 + 6 + 12) + 5 * 1 + 4 * 3);
}

TEST_CASE("ConvSpec::validate and conv_codes__ref reject bad layers and codes", "[kernel]") {
  ConvSpec s;
  s.height = 4; s.width = 4; s.in_channels = 3; s.out_channels = 2; s.kernel = 3; s.pad = 1;
  CHECK_NOTHROW(s.validate());
  ConvSpec bad = s; bad.act_bits = 9;
  CHECK_THROWS_WITH(bad.validate(), Catch::Contains("act_bits in 1..8"));
  bad = s; bad.pad_code = 4;
  CHECK_THROWS_WITH(bad.validate(), Catch::Contains("pad_code 4 is not a 2-bit code"));
  bad = s; bad.pad = 3;
  CHECK_THROWS_WITH(bad.validate(), Catch::Contains("pad < kernel"));
  bad = s; bad.out_channels = 0;
  CHECK_THROWS_WITH(bad.validate(), Catch::Contains("out_channels > 0"));
  std::vector<uint8_t> a(static_cast<std::size_t>(s.input_elements()), 1);
  std::vector<int8_t> w(static_cast<std::size_t>(s.weight_elements()), 1);
  std::vector<int64_t> out(static_cast<std::size_t>(s.output_elements()));
  a[5] = 4;
  CHECK_THROWS_WITH(conv_codes__ref(s, a, w, out), Catch::Contains("activation code 4 at index 5"));
  a[5] = 0;
  w.pop_back();
  CHECK_THROWS_WITH(conv_codes__ref(s, a, w, out), Catch::Contains("weights, got"));
}

TEST_CASE("Tier and family names round-trip; unknown names are one-line errors", "[kernel]") {
  for (Tier t : {Tier::kScalar, Tier::kAvx2, Tier::kAvx512}) CHECK(parse_tier(tier_name(t)) == t);
  for (Family f : {Family::kBitserial, Family::kInt8, Family::kShift})
    CHECK(parse_family(family_name(f)) == f);
  CHECK_THROWS_WITH(parse_tier("sse9"), Catch::Contains("expected one of scalar, avx2, avx512"));
  CHECK_THROWS_WITH(parse_family("lut"), Catch::Contains("expected one of bitserial, int8, shift"));
  CHECK(max_tier() <= cpu_tier());
  INFO("cpu: " << cpu_feature_summary());
  CHECK_FALSE(cpu_feature_summary().empty());
}

TEST_CASE("Registry rows have unique names, and each family starts with a scalar reference", "[kernel]") {
  std::set<std::string_view> names;
  for (const ConvKernelRow& row : conv_kernels()) {
    CHECK(names.insert(row.name).second);
    CHECK(row.rejects != nullptr);
    CHECK(row.prepare != nullptr);
  }
  for (Family f : {Family::kBitserial, Family::kInt8, Family::kShift}) {
    const ConvKernelRow* first = nullptr;
    Tier last = Tier::kScalar;
    for (const ConvKernelRow& row : conv_kernels()) {
      if (row.family != f) continue;
      if (first == nullptr) first = &row;
      CHECK(row.tier >= last);  // slowest first
      last = row.tier;
    }
    if (first != nullptr) CHECK(first->tier == Tier::kScalar);
  }
}

TEST_CASE("Dispatch honours BITGRAD_KERNEL_TIER: each family picks its fastest row at or below it",
          "[kernel]") {
  // ctest runs this binary twice: as is, and with BITGRAD_KERNEL_TIER=scalar (tests/CMakeLists.txt).
  const char* forced = std::getenv("BITGRAD_KERNEL_TIER");
  INFO("BITGRAD_KERNEL_TIER=" << (forced ? forced : "<unset>") << ", cpu " << cpu_feature_summary());
  CHECK(max_tier() == (forced != nullptr && *forced != '\0' ? parse_tier(forced) : cpu_tier()));
  ConvSpec s;
  s.height = 6; s.width = 5; s.in_channels = 16; s.out_channels = 16; s.kernel = 3; s.pad = 1;
  std::vector<int8_t> w(static_cast<std::size_t>(s.weight_elements()));
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<int8_t>(static_cast<int>(i % 3) - 1);
  for (Family f : {Family::kBitserial, Family::kInt8, Family::kShift}) {
    Tier best = Tier::kScalar;
    bool any = false;
    for (const ConvKernelRow& row : conv_kernels())
      if (row.family == f && row.tier <= max_tier() && row.rejects(s, w).empty()) {
        best = std::max(best, row.tier);
        any = true;
      }
    if (!any) continue;
    const ConvKernelRow& chosen = select_conv(f, s, w);
    INFO(family_name(f) << " chose " << chosen.name);
    CHECK(chosen.tier == best);
    CHECK(chosen.tier <= max_tier());
  }
}
