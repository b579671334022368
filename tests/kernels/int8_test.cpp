// int8_test.cpp: every int8 row of the kernel registry (kernels/int8/) against conv_codes__ref,
// exactly: randomized shapes (channel counts off multiples of 4/16/32, output-channel tails, 3x3
// and 1x1, stride 1 and 2, pad 0/1, tiny padding-heavy images, batch > 1, non-zero pad codes, GEMM
// shapes), accumulators at their int32 bounds for VNNI, the AVX2 row's int16 saturation bound, its
// rejections, and a layer large enough for the threaded path. Rows this CPU cannot run are skipped
// with a WARN.
#include <catch2/catch.hpp>

#include <cstddef>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "kernels/conv.hpp"
#include "kernels/registry.hpp"
#include "kernel_test_util.hpp"

using namespace bitgrad::kernels;
using namespace bitgrad::kernels::testing;

namespace {

std::vector<int8_t> random_weights(const ConvSpec& s, std::mt19937& rng, int lo, int hi) {
  std::uniform_int_distribution<int> value(lo, hi);
  std::vector<int8_t> w(static_cast<std::size_t>(s.weight_elements()));
  for (auto& v : w) v = static_cast<int8_t>(value(rng));
  return w;
}

// The randomized layer set (kernel_test_util.hpp) plus a 64-channel GEMM at 8 bits.
std::vector<ConvSpec> int8_layers() {
  std::mt19937 rng(20240505);
  const int64_t couts[] = {1, 15, 17, 33, 16, 64, 80};
  std::vector<ConvSpec> layers = testing::random_layers(rng, couts);
  layers.push_back(layer(13, 1, 1, 64, 64, 1, 1, 0, 8, 0));
  return layers;
}

}  // namespace

TEST_CASE("int8 rows equal conv_codes__ref on randomized layers", "[kernel][int8]") {
  std::mt19937 rng(7);
  const std::vector<ConvSpec> layers = int8_layers();
  for (const ConvKernelRow* row : family_rows(Family::kInt8)) {
    if (!runnable(*row)) continue;
    for (const ConvSpec& s : layers) {
      const std::vector<uint8_t> a = random_codes(s, rng);
      // 8-bit codes with full-range int8 weights saturate vpmaddubsw; the AVX2 row gets weights
      // that fit.
      const bool avx2 = row->tier == Tier::kAvx2;
      const std::vector<int8_t> w = s.act_bits == 8 && avx2 ? random_weights(s, rng, -64, 64)
                                                            : random_weights(s, rng, -128, 127);
      expect_exact(*row, s, a, w);
    }
  }
}

TEST_CASE("int8 rows are exact with accumulators at their int32 bounds", "[kernel][int8]") {
  // depth 3*3*7000 = 63000: 63000 * 255 * 128 = 2.056e9, just inside int32 (ConvSpec::validate).
  const ConvSpec s = layer(1, 1, 1, 7000, 17, 3, 1, 1, 8, 255);
  const std::vector<uint8_t> a(static_cast<std::size_t>(s.input_elements()), 255);
  std::vector<int8_t> w(static_cast<std::size_t>(s.weight_elements()));
  // Output channel o: all -128, all +127, or alternating, so accumulators reach about +-2.05e9.
  for (int64_t o = 0; o < s.out_channels; ++o)
    for (int64_t e = 0; e < s.depth(); ++e)
      w[static_cast<std::size_t>(o * s.depth() + e)] =
          static_cast<int8_t>(o % 3 == 0 ? -128 : (o % 3 == 1 ? 127 : (e % 2 ? 127 : -128)));
  const std::vector<int64_t> want = reference(s, a, w);
  CHECK(want[0] == -int64_t{63000} * 255 * 128);
  for (const ConvKernelRow* row : family_rows(Family::kInt8)) {
    if (!runnable(*row)) continue;
    if (row->tier == Tier::kAvx2) {
      CHECK_THAT(row->rejects(s, w), Catch::Contains("vpmaddubsw would saturate"));
      continue;
    }
    expect_exact(*row, s, a, w);
  }
}

TEST_CASE("int8 AVX2 row: exact at the int16 pair-sum bound, rejects one step beyond",
          "[kernel][int8]") {
  const ConvKernelRow& row = find_conv("conv_w8a8_int8__avx2_5x16");
  // 8-bit codes at 255: pairs (64, 64) reach 32640 and (-128, 0) reach -32640, inside int16.
  ConvSpec s = layer(2, 3, 4, 6, 20, 3, 1, 1, 8, 255);
  const std::vector<uint8_t> a(static_cast<std::size_t>(s.input_elements()), 255);
  std::vector<int8_t> w(static_cast<std::size_t>(s.weight_elements()));
  for (std::size_t i = 0; i < w.size(); ++i)
    w[i] = static_cast<int8_t>((i / 2) % 2 ? 64 : (i % 2 ? 0 : -128));
  CHECK(row.rejects(s, w).empty());
  if (runnable(row)) expect_exact(row, s, a, w);
  // One more in a single pair: 255 * (64 + 65) = 32895 > 32767.
  std::vector<int8_t> over = w;
  over[static_cast<std::size_t>(5 * s.depth() + 2 * s.in_channels + 2)] = 64;
  over[static_cast<std::size_t>(5 * s.depth() + 2 * s.in_channels + 3)] = 65;
  const std::string why = row.rejects(s, over);
  CHECK_THAT(why, Catch::Contains("vpmaddubsw would saturate") &&
                      Catch::Contains("output channel 5") && Catch::Contains("tap (0,2)") &&
                      Catch::Contains("input channels 2,3") && Catch::Contains("32895"));
  std::vector<int8_t> under = w;
  under[static_cast<std::size_t>(5)] = -1;  // pairs with w[4] = -128: 255 * -129 = -32895
  CHECK_THAT(row.rejects(s, under), Catch::Contains("-32895"));
  // int16 accumulation across steps: 2-bit codes at 3, weights at 127 / -128 give pair sums of 762
  // / -768, so 32767 / 768 = 42 steps per widening; K = 3 * 3 * 100 / 4 = 225 steps: 5 full
  // flushes and a partial one, each int16 sum within 800 of the bound; channel tail of 20 = 16 + 4.
  const ConvSpec s2 = layer(1, 3, 3, 100, 20, 3, 1, 1, 2, 3);
  const std::vector<uint8_t> a2(static_cast<std::size_t>(s2.input_elements()), 3);
  std::vector<int8_t> w2(static_cast<std::size_t>(s2.weight_elements()));
  for (std::size_t i = 0; i < w2.size(); ++i)
    w2[i] = static_cast<int8_t>(i / static_cast<std::size_t>(s2.depth()) % 2 ? -128 : 127);
  if (runnable(row)) expect_exact(row, s2, a2, w2);
  // 7-bit codes never saturate: 127 * (127 + 127) = 32258, 127 * -256 = -32512.
  s.act_bits = 7;
  s.pad_code = 127;
  const std::vector<uint8_t> a7(static_cast<std::size_t>(s.input_elements()), 127);
  std::vector<int8_t> extreme(w.size());
  for (std::size_t i = 0; i < extreme.size(); ++i)
    extreme[i] = static_cast<int8_t>((i / 2) % 2 ? 127 : -128);
  CHECK(row.rejects(s, extreme).empty());
  if (runnable(row)) expect_exact(row, s, a7, extreme);
}

TEST_CASE("int8 rows explain rejections of malformed layers; selection picks a row that accepts",
          "[kernel][int8]") {
  ConvSpec s = layer(1, 4, 4, 8, 8, 3, 1, 1, 2, 0);
  const std::vector<int8_t> short_weights(10, 1);
  for (const ConvKernelRow* row : family_rows(Family::kInt8))
    CHECK_THAT(row->rejects(s, short_weights), Catch::Contains("expected 576 weights, got 10"));
  ConvSpec bad = s;
  bad.act_bits = 9;
  const std::vector<int8_t> w(static_cast<std::size_t>(s.weight_elements()), 1);
  for (const ConvKernelRow* row : family_rows(Family::kInt8))
    CHECK_THAT(row->rejects(bad, w), Catch::Contains("act_bits in 1..8"));
  const ConvKernelRow& best = select_conv(Family::kInt8, s, w);
  CHECK(best.family == Family::kInt8);
  CHECK(best.tier <= max_tier());
  CHECK(best.rejects(s, w).empty());
  const std::unique_ptr<QConv> conv = make_conv(Family::kInt8, s, w);
  CHECK(conv->kernel_name() == best.name);
}

TEST_CASE("int8 rows are exact on layers large enough to run threaded", "[kernel][int8]") {
  std::mt19937 rng(11);
  const ConvSpec layers[] = {
      layer(1, 20, 20, 32, 64, 3, 1, 1, 2, 0),  // 7.4 M MACs, one 64-channel block
      layer(2, 9, 9, 40, 100, 3, 2, 1, 4, 1)};  // blocks of 64 + 36 channels
  for (const ConvKernelRow* row : family_rows(Family::kInt8)) {
    if (!runnable(*row)) continue;
    for (const ConvSpec& s : layers)
      expect_exact(*row, s, random_codes(s, rng), random_weights(s, rng, -128, 127));
  }
}
