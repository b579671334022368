// threshold_test.cpp: the threshold epilogue (kernels/epilogue/threshold.hpp): the reference on a
// hand example, every tile row the CPU runs against the reference (random and tied thresholds,
// descending channels, channel tails, int32 extremes, every out_bits), and the derivation of
// thresholds from a float epilogue (round trip over the whole accumulator range, negative scales,
// exact .5 ties, saturation, non-monotone and out-of-range epilogues rejected with the channel and
// accumulator named).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "kernels/epilogue/threshold.hpp"

using namespace bitgrad::kernels;

namespace {

constexpr int32_t kMin = std::numeric_limits<int32_t>::min();
constexpr int32_t kMax = std::numeric_limits<int32_t>::max();

// Every row the CPU supports runs `acc` and must equal the reference exactly.
void check_all_rows(const Thresholds& t, const std::vector<int32_t>& acc) {
  const int64_t pixels = static_cast<int64_t>(acc.size()) / t.channels;
  std::vector<uint8_t> want(acc.size());
  threshold_codes__ref(t, acc, want);
  const ThresholdEpilogue epilogue(t);
  for (const ThresholdKernelRow& row : threshold_kernels()) {
    if (row.tier > cpu_tier()) {
      WARN(row.name << " skipped: this CPU has no " << tier_name(row.tier) << " ("
                    << cpu_feature_summary() << ")");
      continue;
    }
    std::vector<uint8_t> got(acc.size(), 0xee);
    epilogue.run(row, acc.data(), pixels, got.data());
    INFO(row.name << ": channels " << t.channels << ", pixels " << pixels << ", out_bits "
                  << t.out_bits);
    const auto bad = std::mismatch(want.begin(), want.end(), got.begin());
    if (bad.first != want.end()) {
      const auto i = bad.first - want.begin();
      FAIL_CHECK("first difference at pixel " << i / t.channels << " channel " << i % t.channels
                                              << ": acc " << acc[static_cast<std::size_t>(i)]
                                              << ", want " << int{*bad.first} << ", got "
                                              << int{*bad.second});
    }
  }
  std::vector<uint8_t> dispatched(acc.size());
  epilogue.run(acc.data(), pixels, dispatched.data());
  CHECK(dispatched == want);
}

// Random thresholds (sorted or not, sometimes equal, sometimes at the int32 extremes) and
// accumulators that hit the thresholds and their neighbours (ties), plus the extremes and uniform
// noise.
void random_case(std::mt19937& rng, int64_t channels, int64_t pixels, int out_bits) {
  Thresholds t;
  t.channels = channels;
  t.out_bits = out_bits;
  const int count = t.count();
  std::uniform_int_distribution<int32_t> small(-40, 40);
  std::uniform_int_distribution<int32_t> any(kMin, kMax);
  std::uniform_int_distribution<int> pick(0, 99);
  for (int64_t c = 0; c < channels; ++c) {
    t.descending.push_back(static_cast<uint8_t>(pick(rng) < 50));
    std::vector<int32_t> v;
    for (int k = 0; k < count; ++k) {
      const int r = pick(rng);
      v.push_back(r < 5 ? kMin : r < 10 ? kMax : r < 15 ? any(rng) : small(rng));
    }
    if (pick(rng) < 70) std::sort(v.begin(), v.end());
    if (t.descending.back() != 0 && pick(rng) < 70) std::reverse(v.begin(), v.end());
    t.values.insert(t.values.end(), v.begin(), v.end());
  }
  std::vector<int32_t> acc(static_cast<std::size_t>(pixels * channels));
  for (std::size_t i = 0; i < acc.size(); ++i) {
    const auto c = static_cast<std::size_t>(i % static_cast<std::size_t>(channels));
    const int r = pick(rng);
    const int32_t near =
        t.values[c * static_cast<std::size_t>(count) + static_cast<std::size_t>(pick(rng) % count)];
    if (r < 40) {
      const int64_t d =
          static_cast<int64_t>(pick(rng) % 3) - 1;  // the threshold, or one either side
      acc[i] = static_cast<int32_t>(std::clamp<int64_t>(int64_t{near} + d, kMin, kMax));
    } else if (r < 45) {
      acc[i] = kMin;
    } else if (r < 50) {
      acc[i] = kMax;
    } else if (r < 60) {
      acc[i] = any(rng);
    } else {
      acc[i] = small(rng);
    }
  }
  check_all_rows(t, acc);
}

// A BN-folded float epilogue as a trainer evaluates it: round half to even, clamp to the code
// range.
struct FloatEpilogue {
  std::vector<float> scale, bias;  // per channel: v = acc * scale + bias
  float next_scale = 1.0f;         // the next layer's activation scale
  int levels = 4;
  uint8_t operator()(int64_t c, int32_t acc) const {
    const auto i = static_cast<std::size_t>(c);
    const float v = (static_cast<float>(acc) * scale[i] + bias[i]) / next_scale;
    const float q = std::nearbyint(v);
    return static_cast<uint8_t>(std::clamp(q, 0.0f, static_cast<float>(levels - 1)));
  }
};

}  // namespace

TEST_CASE("threshold_codes__ref counts passed thresholds, <= for descending channels",
          "[kernel][threshold]") {
  Thresholds t;
  t.channels = 2;
  t.out_bits = 2;
  t.values = {-1, 0, 5, /* channel 1, descending */ 5, 0, -1};
  t.descending = {0, 1};
  const std::vector<int32_t> acc = {-2, -2, -1, -1, 0, 0, 4, 4, 5, 5, kMin, kMax};
  std::vector<uint8_t> codes(acc.size());
  threshold_codes__ref(t, acc, codes);
  // channel 0: #{t <= a}; channel 1: #{t >= a}
  CHECK(codes == std::vector<uint8_t>{0, 3, 1, 3, 2, 2, 2, 1, 3, 1, 0, 0});
  check_all_rows(t, acc);
}

TEST_CASE("Thresholds are checked: sizes, out_bits, direction flags", "[kernel][threshold]") {
  Thresholds t;
  t.channels = 3;
  t.out_bits = 2;
  t.values.assign(9, 0);
  t.descending.assign(3, 0);
  CHECK_NOTHROW(t.validate());
  Thresholds bad = t;
  bad.out_bits = 9;
  CHECK_THROWS_WITH(bad.validate(), Catch::Contains("out_bits in 1..8, got 9"));
  bad = t;
  bad.values.pop_back();
  CHECK_THROWS_WITH(bad.validate(), Catch::Contains("3 x 3 values, got 8"));
  bad = t;
  bad.descending[2] = 2;
  CHECK_THROWS_WITH(ThresholdEpilogue(bad), Catch::Contains("channel 2 is 2, expected 0 or 1"));
  std::vector<int32_t> acc(7);
  std::vector<uint8_t> codes(7);
  CHECK_THROWS_WITH(threshold_codes__ref(t, acc, codes),
                    Catch::Contains("multiple of 3 accumulators"));
}

TEST_CASE("Every threshold tile equals the reference: tails, ties, descending, int32 extremes",
          "[kernel][threshold]") {
  std::mt19937 rng(20260105);
  for (int out_bits : {1, 2, 3, 4, 5, 8})
    for (int64_t channels : {1, 3, 7, 8, 15, 16, 17, 31, 32, 33, 64, 100})
      random_case(rng, channels, out_bits == 8 ? 3 : 9, out_bits);
  // Enough outputs for several oneTBB tasks (the threaded path), 2-bit outputs as in W2A2 networks.
  random_case(rng, 64, 2048, 2);
  random_case(rng, 17, 5000, 2);
}

TEST_CASE("Tile selection honours the tier ceiling and lists the reference first",
          "[kernel][threshold]") {
  const auto rows = threshold_kernels();
  REQUIRE(!rows.empty());
  CHECK(rows.front().tier == Tier::kScalar);
  CHECK(std::string(rows.front().name).find("__ref") != std::string::npos);
  CHECK(select_threshold().tier <= max_tier());
  for (const ThresholdKernelRow& row : rows)
    if (row.tier <= max_tier()) CHECK(row.tier <= select_threshold().tier);
}

TEST_CASE(
    "derive_thresholds reproduces a float epilogue on the whole range (negative scales, .5 ties)",
    "[kernel][threshold]") {
  // Channel 0: v = (-0.25 acc + 0.5) / 0.5 = 1 - acc/2: every odd acc is an exact .5 tie (half to
  // even). Channel 1: positive scale, ties at acc = 4j + 2. Channel 2: scale 0 (constant code 1).
  // Channel 3: negative scale whose codes saturate at 3 over part of the range. Channel 4: never
  // leaves 0 (every threshold outside the range). Channels 5..: random scales and biases of both
  // signs.
  FloatEpilogue f;
  f.next_scale = 0.5f;
  f.scale = {-0.25f, 0.125f, 0.0f, -0.75f, 1e-4f};
  f.bias = {0.5f, 0.0f, 0.5f, 0.0f, -20.0f};
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> s(-0.2f, 0.2f);
  std::uniform_real_distribution<float> b(-1.5f, 2.5f);
  for (int c = 0; c < 12; ++c) {
    f.scale.push_back(s(rng));
    f.bias.push_back(b(rng));
  }
  const auto channels = static_cast<int64_t>(f.scale.size());
  const int32_t lo = -300, hi = 300;
  const Thresholds t = derive_thresholds(channels, 2, lo, hi, f);
  CHECK(t.descending[0] == 1);
  CHECK(t.descending[1] == 0);
  CHECK(t.descending[3] == 1);
  // Ties on channel 0: acc -1 -> 1.5 -> 2, acc -3 -> 2.5 -> 2, acc 1 -> 0.5 -> 0, acc -5 -> 3.5
  // -> 3.
  CHECK(f(0, -1) == 2);
  CHECK(f(0, -3) == 2);
  CHECK(f(0, 1) == 0);
  CHECK(f(0, -5) == 3);
  CHECK(t.values[0] == 0);   // code >= 1 up to acc 0 (1.0); acc 1 is the tie 0.5 -> 0
  CHECK(t.values[1] == -1);  // code >= 2 up to acc -1 (the tie 1.5 -> 2), not 0 (1.0 -> 1)
  CHECK(t.values[2] == -4);  // code 3 up to acc -4 (3.0); acc -3 is the tie 2.5 -> 2
  // Every accumulator of the range, every channel, every tile: the codes equal the float epilogue.
  const int64_t pixels = hi - lo + 1;
  std::vector<int32_t> acc(static_cast<std::size_t>(pixels * channels));
  for (int64_t p = 0; p < pixels; ++p)
    for (int64_t c = 0; c < channels; ++c)
      acc[static_cast<std::size_t>(p * channels + c)] = static_cast<int32_t>(lo + p);
  std::vector<uint8_t> want(acc.size());
  for (std::size_t i = 0; i < acc.size(); ++i)
    want[i] = f(static_cast<int64_t>(i) % channels, acc[i]);
  std::vector<uint8_t> ref(acc.size());
  threshold_codes__ref(t, acc, ref);
  CHECK(ref == want);
  check_all_rows(t, acc);
  // Thresholds come out sorted in their direction.
  for (int64_t c = 0; c < channels; ++c) {
    const int32_t* v = &t.values[static_cast<std::size_t>(c * 3)];
    if (t.descending[static_cast<std::size_t>(c)] != 0)
      CHECK(std::is_sorted(v, v + 3, std::greater<>()));
    else
      CHECK(std::is_sorted(v, v + 3));
  }
  // Channel 4 never passes a threshold inside the range; channel 2 always passes exactly one.
  CHECK(t.values[12] == hi + 1);
  CHECK(t.values[6] == lo);
  CHECK(t.values[7] == hi + 1);
}

TEST_CASE("derive_thresholds: 1- and 4-bit outputs, ranges near the int32 limits",
          "[kernel][threshold]") {
  for (int out_bits : {1, 3, 4}) {
    FloatEpilogue f;
    f.levels = 1 << out_bits;
    f.scale = {0.01f, -0.013f, 0.02f};
    f.bias = {3.0f, 4.0f, -1.0f};
    const Thresholds t = derive_thresholds(3, out_bits, -1000, 1000, f);
    std::vector<int32_t> acc;
    for (int32_t a = -1000; a <= 1000; ++a) acc.insert(acc.end(), {a, a, a});
    std::vector<uint8_t> codes(acc.size());
    threshold_codes__ref(t, acc, codes);
    for (std::size_t i = 0; i < acc.size(); ++i)
      REQUIRE(int{codes[i]} == int{f(static_cast<int64_t>(i % 3), acc[i])});
    check_all_rows(t, acc);
  }
  // A step function at the bottom of the int32 range (direction ascending, thresholds in range).
  auto step = [](int64_t, int32_t a) -> uint8_t { return a >= kMin + 10 ? 1 : 0; };
  const Thresholds t = derive_thresholds(1, 1, kMin + 1, kMin + 100, step);
  CHECK(t.values[0] == kMin + 10);
}

TEST_CASE(
    "derive_thresholds rejects non-monotone and out-of-range epilogues, naming channel and acc",
    "[kernel][threshold]") {
  auto bump = [](int64_t c, int32_t a) -> uint8_t { return c == 1 && a == 7 ? 2 : 1; };
  CHECK_THROWS_WITH(derive_thresholds(3, 2, -10, 10, bump),
                    Catch::Contains("channel 1, accumulator 7") && Catch::Contains("not monotone"));
  // Monotone in the wrong places: goes up then down; the endpoints are equal.
  auto tent = [](int64_t, int32_t a) -> uint8_t {
    return static_cast<uint8_t>(3 - std::min(3, std::abs(a)));
  };
  CHECK_THROWS_WITH(derive_thresholds(1, 2, -5, 5, tent),
                    Catch::Contains("channel 0, accumulator"));
  auto big = [](int64_t, int32_t a) -> uint8_t { return a > 3 ? 4 : 0; };
  CHECK_THROWS_WITH(derive_thresholds(2, 2, 0, 10, big),
                    Catch::Contains("channel 0, accumulator 10") && Catch::Contains("code 4"));
  auto zero = [](int64_t, int32_t) -> uint8_t { return 0; };
  CHECK_THROWS_WITH(derive_thresholds(1, 2, 5, 4, zero), Catch::Contains("acc_min <= acc_max"));
  CHECK_THROWS_WITH(derive_thresholds(1, 2, kMin, 0, zero), Catch::Contains("INT32_MIN < acc_min"));
  CHECK_THROWS_WITH(derive_thresholds(1, 9, 0, 1, zero), Catch::Contains("out_bits in 1..8"));
}
