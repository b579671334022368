// shift_test.cpp: the shift-add APoT family (kernels/shift/): the power-of-two decomposition of
// every int8 value, acceptance of every APoT weight lattice of quant/apot_math.hpp, every shift row
// of the registry against conv_codes__ref exactly (randomized layers with 2/3/4/5-bit APoT weights
// and any two-term int8 weights, tails, strides, padding, GEMM shapes, int16 flushes at their
// bound, int32 accumulators at their bound, the threaded path), and the rejection of weights that
// need three terms. Rows this CPU cannot run are skipped with a WARN.
#include <catch2/catch.hpp>

#include <cstddef>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "kernels/conv.hpp"
#include "kernels/registry.hpp"
#include "kernels/shift/shift_conv.hpp"
#include "kernel_test_util.hpp"
#include "quant/apot_math.hpp"

using namespace bitgrad::kernels;
using namespace bitgrad::kernels::testing;

namespace {

// The signed integer weight levels of b-bit APoT weights: +- the magnitude codes of quant's grid.
std::vector<int> apot_levels(int bits) {
  std::vector<int> levels;
  for (int32_t code : bitgrad::quant::apot::weight_grid(bits, true).codes) {
    levels.push_back(code);
    if (code != 0) levels.push_back(-code);
  }
  return levels;
}

// Every int8 value with at most two power-of-two terms.
std::vector<int> two_term_levels() {
  std::vector<int> levels;
  for (int w = -128; w <= 127; ++w)
    if (power_terms(w)) levels.push_back(w);
  return levels;
}

std::vector<int8_t> random_weights(const ConvSpec& s, std::mt19937& rng,
                                   const std::vector<int>& levels) {
  std::uniform_int_distribution<std::size_t> pick(0, levels.size() - 1);
  std::vector<int8_t> w(static_cast<std::size_t>(s.weight_elements()));
  for (auto& v : w) v = static_cast<int8_t>(levels[pick(rng)]);
  return w;
}

}  // namespace

TEST_CASE("power_terms decomposes exactly the int8 values with at most two signed powers of two",
          "[kernel][shift]") {
  int representable = 0;
  for (int w = -128; w <= 127; ++w) {
    INFO("w = " << w);
    // Brute force over every pair of signed powers of two up to 2^8.
    bool two = false;
    for (int e0 = 0; e0 <= 8; ++e0)
      for (int e1 = 0; e1 <= 8; ++e1)
        for (int s0 = -1; s0 <= 1; ++s0)
          for (int s1 = -1; s1 <= 1; ++s1) two = two || w == s0 * (1 << e0) + s1 * (1 << e1);
    const std::optional<PowerTerms> pt = power_terms(w);
    REQUIRE(pt.has_value() == two);
    if (!pt) continue;
    ++representable;
    int sum = 0;
    for (int t = 0; t < pt->count; ++t) {
      CHECK((pt->sign[t] == 1 || pt->sign[t] == -1));
      CHECK((pt->exponent[t] >= 0 && pt->exponent[t] <= 7));
      sum += pt->sign[t] * (1 << pt->exponent[t]);
    }
    CHECK(sum == w);
    const bool power_of_two = w != 0 && ((w > 0 ? w : -w) & ((w > 0 ? w : -w) - 1)) == 0;
    CHECK(pt->count == (w == 0 ? 0 : (power_of_two ? 1 : 2)));
    if (pt->count == 2) CHECK(pt->exponent[0] > pt->exponent[1]);
  }
  CHECK_FALSE(power_terms(11).has_value());
  CHECK_FALSE(power_terms(-85).has_value());
  CHECK(power_terms(7)->sign[1] == -1);  // 7 = 8 - 1
  CHECK(representable == 88);            // of the 256 int8 values
}

TEST_CASE("every APoT weight lattice of quant/apot_math.hpp fits the shift kernels",
          "[kernel][shift]") {
  for (int bits = 2; bits <= 5; ++bits) {
    INFO("APoT " << bits << "-bit weights");
    for (int level : apot_levels(bits)) {
      INFO("level " << level);
      CHECK(power_terms(level).has_value());
    }
  }
}

TEST_CASE("shift rows equal conv_codes__ref on randomized APoT layers", "[kernel][shift]") {
  std::mt19937 rng(20240506);
  const int64_t couts[] = {1, 15, 17, 33, 31, 64, 80};
  const std::vector<ConvSpec> layers = random_layers(rng, couts);
  // Weight sets: APoT 2-bit (ternary: the shift-free form), 3-bit (single powers: one term), 4- and
  // 5-bit (two terms), and every two-term int8 value (exponents up to 7, signs mixed as in 7 = 8 -
  // 1).
  const std::vector<std::vector<int>> level_sets = {apot_levels(2), apot_levels(3), apot_levels(4),
                                                    apot_levels(5), two_term_levels()};
  for (const ConvKernelRow* row : family_rows(Family::kShift)) {
    if (!runnable(*row)) continue;
    std::size_t n = 0;
    for (const ConvSpec& s : layers)
      for (const std::vector<int>& levels : level_sets) {
        if (++n % 2 == 0 && &levels != &level_sets.back())
          continue;  // half the pairs keep the test fast
        expect_exact(*row, s, random_codes(s, rng), random_weights(s, rng, levels));
      }
  }
}

TEST_CASE("shift rows are exact at the int16 flush bound and at the int32 bound",
          "[kernel][shift]") {
  // 2-bit codes at 3 with APoT 4-bit weights at +-10: 32767 / 30 = 1092 steps per flush, each
  // lane's int16 partial reaching +-32760; K = 3 * 3 * 300 = 2700 steps, so two full flushes and a
  // partial one.
  const ConvSpec s16 = layer(1, 2, 2, 300, 40, 3, 1, 1, 2, 3);
  std::vector<int8_t> w16(static_cast<std::size_t>(s16.weight_elements()));
  for (std::size_t i = 0; i < w16.size(); ++i)
    w16[i] = static_cast<int8_t>(i / static_cast<std::size_t>(s16.depth()) % 2 ? -10 : 10);
  const std::vector<uint8_t> a16(static_cast<std::size_t>(s16.input_elements()), 3);
  // 8-bit codes at 255 with weights -128 = -2^7 and 127 = 2^7 - 2^0: a flush every step,
  // accumulators about +-2.05e9 (depth 63000, ConvSpec::validate's limit).
  const ConvSpec s32 = layer(1, 1, 1, 7000, 33, 3, 1, 1, 8, 255);
  std::vector<int8_t> w32(static_cast<std::size_t>(s32.weight_elements()));
  for (int64_t o = 0; o < s32.out_channels; ++o)
    for (int64_t e = 0; e < s32.depth(); ++e)
      w32[static_cast<std::size_t>(o * s32.depth() + e)] =
          static_cast<int8_t>(o % 3 == 0 ? -128 : (o % 3 == 1 ? 127 : (e % 2 ? 96 : -128)));
  const std::vector<uint8_t> a32(static_cast<std::size_t>(s32.input_elements()), 255);
  std::vector<int64_t> want(static_cast<std::size_t>(s32.output_elements()));
  conv_codes__ref(s32, a32, w32, want);
  CHECK(want[0] == -int64_t{63000} * 255 * 128);
  for (const ConvKernelRow* row : family_rows(Family::kShift)) {
    if (!runnable(*row)) continue;
    expect_exact(*row, s16, a16, w16);
    expect_exact(*row, s32, a32, w32);
  }
}

TEST_CASE("shift rows reject weights that need three powers of two, saying which",
          "[kernel][shift]") {
  const ConvSpec s = layer(1, 4, 4, 6, 5, 3, 1, 1, 2, 0);
  std::vector<int8_t> w(static_cast<std::size_t>(s.weight_elements()), 6);
  for (const ConvKernelRow* row : family_rows(Family::kShift)) CHECK(row->rejects(s, w).empty());
  // Output channel 3, tap (2,1), input channel 4.
  w[static_cast<std::size_t>(3 * s.depth() + (2 * 3 + 1) * s.in_channels + 4)] = 11;
  for (const ConvKernelRow* row : family_rows(Family::kShift)) {
    const std::string why = row->rejects(s, w);
    CHECK_THAT(why, Catch::Contains("weight 11 (output channel 3, tap (2,1), input channel 4)") &&
                        Catch::Contains("not a sum of at most two signed powers of two"));
    if (runnable(*row)) CHECK_THROWS_WITH(row->prepare(s, w), Catch::Contains("weight 11"));
  }
  CHECK_THROWS_WITH(select_conv(Family::kShift, s, w),
                    Catch::Contains("no shift kernel runs") && Catch::Contains("weight 11"));
  // The int8 family runs the same layer.
  CHECK(select_conv(Family::kInt8, s, w).family == Family::kInt8);
  const std::vector<int8_t> short_weights(3, 1);
  for (const ConvKernelRow* row : family_rows(Family::kShift))
    CHECK_THAT(row->rejects(s, short_weights), Catch::Contains("expected 270 weights, got 3"));
}

TEST_CASE("shift rows are exact on layers large enough to run threaded", "[kernel][shift]") {
  std::mt19937 rng(12);
  const ConvSpec layers[] = {layer(1, 16, 16, 32, 64, 3, 1, 1, 2, 0),  // 4.7 M MACs
                             layer(2, 9, 9, 40, 70, 3, 2, 1, 4, 1)};   // groups of 32 + 32 + 6
  for (const ConvKernelRow* row : family_rows(Family::kShift)) {
    if (!runnable(*row)) continue;
    for (const ConvSpec& s : layers)
      expect_exact(*row, s, random_codes(s, rng), random_weights(s, rng, apot_levels(4)));
  }
}
