// bitserial_test.cpp: every bit-serial registry row against conv_codes__ref, exactly, on randomized
// layers: channel counts off multiples of 32, output-channel tails, 3x3 and 1x1, stride 1 and 2,
// pad 0 and 1, tiny padding-heavy images, batch > 1, non-zero pad codes, GEMM shapes, 1-bit
// activations, every weight encoding, and extreme codes that put the accumulators at their bounds.
// Rows the CPU cannot run are skipped with a warning. Also: what each row rejects, and what
// preparation chose.
#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "kernels/bitserial/bitserial_conv.hpp"
#include "kernels/registry.hpp"

using namespace bitgrad::kernels;

namespace {

using WeightGen = std::function<int8_t(std::mt19937&, int64_t /*out channel*/)>;

struct Layer {
  std::string what;
  ConvSpec spec;
  std::vector<uint8_t> act;
  std::vector<int8_t> weights;
};

ConvSpec make_spec(int64_t batch, int64_t h, int64_t w, int64_t c, int64_t o, int64_t k,
                   int64_t stride, int64_t pad, int act_bits = 2, uint8_t pad_code = 0) {
  ConvSpec s;
  s.batch = batch;
  s.height = h;
  s.width = w;
  s.in_channels = c;
  s.out_channels = o;
  s.kernel = k;
  s.stride = stride;
  s.pad = pad;
  s.act_bits = act_bits;
  s.pad_code = pad_code;
  return s;
}

Layer random_layer(std::mt19937& rng, std::string what, const ConvSpec& spec,
                   const WeightGen& gen) {
  Layer l{std::move(what), spec, {}, {}};
  std::uniform_int_distribution<int> code(0, (1 << spec.act_bits) - 1);
  l.act.resize(static_cast<size_t>(spec.input_elements()));
  for (auto& a : l.act) a = static_cast<uint8_t>(code(rng));
  l.weights.resize(static_cast<size_t>(spec.weight_elements()));
  const int64_t depth = spec.depth();
  for (int64_t o = 0; o < spec.out_channels; ++o)
    for (int64_t k = 0; k < depth; ++k) l.weights[static_cast<size_t>(o * depth + k)] = gen(rng, o);
  return l;
}

WeightGen from_set(std::vector<int> set) {
  return [set](std::mt19937& rng, int64_t) {
    return static_cast<int8_t>(set[std::uniform_int_distribution<size_t>(0, set.size() - 1)(rng)]);
  };
}

// Each output channel its own random set of `levels` distinct values in [-128, 127] (seeded per
// channel).
WeightGen per_channel_sets(int levels, uint32_t seed) {
  auto sets = std::make_shared<std::vector<std::vector<int>>>();
  return [sets, levels, seed](std::mt19937& rng, int64_t o) {
    while (static_cast<int64_t>(sets->size()) <= o) {
      std::mt19937 r(seed + static_cast<uint32_t>(sets->size()));
      std::vector<int> set;
      while (static_cast<int>(set.size()) < levels) {
        const int v = std::uniform_int_distribution<int>(-128, 127)(r);
        if (std::find(set.begin(), set.end(), v) == set.end()) set.push_back(v);
      }
      sets->push_back(set);
    }
    const auto& set = (*sets)[static_cast<size_t>(o)];
    return static_cast<int8_t>(set[std::uniform_int_distribution<size_t>(0, set.size() - 1)(rng)]);
  };
}

const WeightGen kSigned = from_set({-2, -1, 0, 1});
const WeightGen kOdd = from_set({-3, -1, 1, 3});
const WeightGen kTernary = from_set({-1, 0, 1});

// The layers every row must get exactly right.
std::vector<Layer> test_layers() {
  std::mt19937 rng(2024);
  std::vector<Layer> layers;
  auto add = [&](const std::string& what, const ConvSpec& s, const WeightGen& gen) {
    layers.push_back(random_layer(
        rng, what + " (" + s.describe() + ", pad code " + std::to_string(s.pad_code) + ")", s,
        gen));
  };
  // Channel counts around and off multiples of 32, 3x3 pad 1 and 1x1, signed weights.
  for (int64_t c : {1, 3, 16, 17, 31, 32, 33, 64, 100}) {
    add("channels", make_spec(1, 5, 6, c, 17, 3, 1, 1), kSigned);
    add("channels 1x1", make_spec(1, 3, 4, c, 15, 1, 1, 0), kSigned);
  }
  // Output-channel tails and group counts.
  for (int64_t o : {1, 15, 16, 17, 33, 48, 64})
    add("out channels", make_spec(1, 4, 4, 32, o, 3, 1, 1), kOdd);
  // Stride 2, pad 0 / 1, odd sizes.
  add("stride 2 pad 1", make_spec(2, 7, 9, 16, 20, 3, 2, 1), kSigned);
  add("stride 2 pad 0", make_spec(1, 8, 7, 64, 16, 3, 2, 0), kTernary);
  add("stride 2 1x1 shortcut", make_spec(2, 8, 8, 16, 32, 1, 2, 0), kSigned);
  add("stride 2 1x1 shortcut, C 32", make_spec(1, 6, 6, 32, 33, 1, 2, 0), kOdd);
  add("pad 0 3x3", make_spec(1, 5, 5, 33, 18, 3, 1, 0), kSigned);
  // Padding-heavy tiny images, with every pad code.
  for (uint8_t pad_code : {uint8_t{0}, uint8_t{1}, uint8_t{2}, uint8_t{3}}) {
    add("1x1 image", make_spec(3, 1, 1, 17, 19, 3, 1, 1, 2, pad_code), kSigned);
    add("2x3 image", make_spec(2, 2, 3, 64, 17, 3, 1, 1, 2, pad_code), kOdd);
    add("2x3 image, stride 2", make_spec(1, 2, 3, 16, 16, 3, 2, 1, 2, pad_code), kTernary);
    add("2x3 image, generic weights", make_spec(1, 2, 3, 33, 20, 3, 1, 1, 2, pad_code),
        per_channel_sets(4, 7 + pad_code));
  }
  // Batch > 1 and a pixel count that is not a multiple of any tile.
  add("batch 3", make_spec(3, 5, 7, 32, 32, 3, 1, 1, 2, 1), kSigned);
  // GEMM shapes: 1x1 convolutions on 1x1 images, batch = rows.
  add("GEMM", make_spec(37, 1, 1, 100, 33, 1, 1, 0), kSigned);
  add("GEMM narrow", make_spec(5, 1, 1, 3, 1, 1, 1, 0), kOdd);
  add("GEMV", make_spec(1, 1, 1, 256, 64, 1, 1, 0), per_channel_sets(4, 99));
  // Every weight encoding.
  add("odd-symmetric", make_spec(1, 6, 5, 16, 32, 3, 1, 1, 2, 2), kOdd);
  add("ternary", make_spec(1, 6, 5, 48, 17, 3, 1, 1), kTernary);
  add("binary {0, 1}", make_spec(1, 5, 5, 32, 16, 3, 1, 1), from_set({0, 1}));
  add("binary {-1, 1}", make_spec(1, 5, 5, 20, 16, 3, 1, 1, 2, 3), from_set({-1, 1}));
  add("3 levels per channel", make_spec(1, 5, 5, 40, 24, 3, 1, 1), per_channel_sets(3, 11));
  add("4 levels per channel", make_spec(1, 5, 5, 40, 24, 3, 1, 1, 2, 1), per_channel_sets(4, 13));
  add("4 levels per channel, C 16", make_spec(2, 4, 4, 16, 40, 3, 1, 1), per_channel_sets(4, 17));
  add("2 levels per channel", make_spec(1, 5, 5, 64, 16, 3, 1, 1), per_channel_sets(2, 19));
  add("APoT-like {0, 1, 2, 4}", make_spec(1, 5, 5, 32, 32, 3, 1, 1), from_set({0, 1, 2, 4}));
  add("all-equal weights", make_spec(1, 4, 4, 33, 17, 3, 1, 1, 2, 2),
      [](std::mt19937&, int64_t o) { return static_cast<int8_t>(o - 8); });
  add("all-zero weights", make_spec(1, 3, 3, 16, 16, 3, 1, 1, 2, 3),
      [](std::mt19937&, int64_t) { return int8_t{0}; });
  // 1-bit activations.
  add("1-bit activations", make_spec(1, 5, 6, 17, 17, 3, 1, 1, 1, 1), kSigned);
  add("1-bit activations, C 64", make_spec(2, 4, 4, 64, 16, 3, 2, 1, 1, 0),
      per_channel_sets(4, 23));
  // A layer big enough for the threaded paths (more than 2M MACs; pack_input over 16K words).
  add("threaded", make_spec(2, 20, 20, 64, 64, 3, 1, 1, 2, 1), kSigned);
  add("threaded panel", make_spec(4, 24, 24, 16, 16, 3, 1, 1), kOdd);
  // Narrow layers whose panel is built from bit rows (C = 8 or 16, 3x3): 1-bit activations,
  // stride 2 with pad 0, every pad code.
  add("bit rows, C 8", make_spec(2, 5, 7, 8, 17, 3, 1, 1, 2, 3), kOdd);
  add("bit rows, C 8, 1-bit", make_spec(1, 6, 5, 8, 16, 3, 2, 1, 1, 1), kSigned);
  add("bit rows, C 16, 1-bit", make_spec(1, 5, 6, 16, 33, 3, 1, 1, 1, 1), kTernary);
  add("bit rows, C 16, stride 2 pad 0", make_spec(2, 9, 8, 16, 16, 3, 2, 0), kSigned);
  add("threaded bit rows", make_spec(4, 32, 32, 16, 16, 3, 1, 1, 2, 2), kSigned);  // 64K codes
  add("bit rows, C 16, pad code 1", make_spec(1, 4, 9, 16, 15, 3, 1, 1, 2, 1),
      per_channel_sets(4, 29));
  return layers;
}

// Accumulators at their bounds: all-max codes (and pad code) against weights at their extremes.
// weight(o, k) gives output channel o's k-th weight.
std::vector<Layer> extreme_layers() {
  std::vector<Layer> layers;
  auto add = [&](const std::string& what, const ConvSpec& s,
                 const std::function<int8_t(int64_t, int64_t)>& weight) {
    Layer l{what + " (" + s.describe() + ")", s, {}, {}};
    l.act.assign(static_cast<size_t>(s.input_elements()),
                 static_cast<uint8_t>((1 << s.act_bits) - 1));
    for (int64_t o = 0; o < s.out_channels; ++o)
      for (int64_t k = 0; k < s.depth(); ++k) l.weights.push_back(weight(o, k));
    layers.push_back(std::move(l));
  };
  auto cycle = [](std::vector<int> v) {
    return [v](int64_t k) { return static_cast<int8_t>(v[static_cast<size_t>(k) % v.size()]); };
  };
  const ConvSpec big = make_spec(1, 3, 3, 512, 17, 3, 1, 1, 2, 3);
  // Even channels all -2 (the most negative signed sum), odd ones span {-2..1}: a kSigned layer.
  add("max codes x -2", big, [&](int64_t o, int64_t k) {
    return o % 2 == 0 ? int8_t{-2} : cycle({-2, -1, 0, 1})(k);
  });
  add("max codes x +-3", big, [&](int64_t o, int64_t k) {
    return o % 3 == 0 ? int8_t{3} : o % 3 == 1 ? int8_t{-3} : cycle({-3, -1, 1, 3})(k);
  });
  // Generic three-plane layer with constant extreme channels (alpha alone) and extreme 4-level
  // ones.
  add("max codes x extreme levels", big, [&](int64_t o, int64_t k) {
    return o % 4 == 0   ? int8_t{-128}
           : o % 4 == 1 ? int8_t{127}
           : o % 4 == 2 ? cycle({-128, 127, -127, 126})(k)
                        : cycle({-128, 127, -1, 3})(k);
  });
  const ConvSpec narrow = make_spec(2, 3, 3, 17, 33, 3, 1, 1, 2, 3);
  add("max codes x -2, panel", narrow, [&](int64_t o, int64_t k) {
    return o % 2 == 0 ? int8_t{-2} : cycle({-2, -1, 0, 1})(k);
  });
  add("max codes x extreme levels, panel", narrow, [&](int64_t o, int64_t k) {
    return o % 2 == 0 ? int8_t{127} : cycle({-128, 127, -127, 126})(k + o);
  });
  const ConvSpec one_bit = make_spec(1, 3, 3, 512, 16, 3, 1, 1, 1, 1);
  add("max 1-bit codes x -128", one_bit, [&](int64_t o, int64_t k) {
    return o == 0 ? int8_t{-128} : cycle({-128, 0, 1, 2})(k);
  });
  return layers;
}

std::vector<int32_t> run_row(const ConvKernelRow& row, const Layer& l) {
  const std::unique_ptr<QConv> conv = row.prepare(l.spec, l.weights);
  REQUIRE(conv->kernel_name() == row.name);
  std::vector<std::byte> packed(conv->packed_input_bytes() + 64);
  std::byte* aligned = packed.data() + (64 - reinterpret_cast<uintptr_t>(packed.data()) % 64) % 64;
  conv->pack_input(l.act.data(), aligned);
  std::vector<int32_t> acc(static_cast<size_t>(l.spec.output_elements()), -12345);
  conv->run(aligned, acc.data());
  return acc;
}

void check_row(const ConvKernelRow& row, const std::vector<Layer>& layers) {
  for (const Layer& l : layers) {
    std::vector<int64_t> expected(static_cast<size_t>(l.spec.output_elements()));
    conv_codes__ref(l.spec, l.act, l.weights, expected);
    INFO(row.name << ": " << l.what);
    REQUIRE(row.rejects(l.spec, l.weights).empty());
    const std::vector<int32_t> got = run_row(row, l);
    size_t mismatches = 0, first = 0;
    for (size_t i = 0; i < got.size(); ++i)
      if (int64_t{got[i]} != expected[i] && mismatches++ == 0) first = i;
    INFO("first mismatch at " << first << ": got " << got[first] << ", expected "
                              << expected[first]);
    CHECK(mismatches == 0);
  }
}

std::vector<const ConvKernelRow*> bitserial_rows_under_test() {
  std::vector<const ConvKernelRow*> rows;
  for (const ConvKernelRow& row : conv_kernels())
    if (row.family == Family::kBitserial) rows.push_back(&row);
  return rows;
}

}  // namespace

TEST_CASE("The bit-serial family has a scalar reference, an AVX2 and an AVX-512 row",
          "[kernel][bitserial]") {
  const auto rows = bitserial_rows_under_test();
  REQUIRE(rows.size() >= 3);
  CHECK(rows.front()->tier == Tier::kScalar);
  CHECK(rows.front()->name == "conv_w2a2_bitserial__ref");
  CHECK(rows.back()->tier == Tier::kAvx512);
}

TEST_CASE("Every bit-serial row equals conv_codes__ref exactly on randomized layers",
          "[kernel][bitserial]") {
  const std::vector<Layer> layers = test_layers();
  for (const ConvKernelRow* row : bitserial_rows_under_test()) {
    if (!cpu_supports(*row)) {
      WARN("skipping " << row->name << ": this CPU lacks tier " << tier_name(row->tier) << " ("
                       << cpu_feature_summary() << ")");
      continue;
    }
    check_row(*row, layers);
  }
}

TEST_CASE("Every bit-serial row is exact with the accumulators at their bounds",
          "[kernel][bitserial]") {
  const std::vector<Layer> layers = extreme_layers();
  for (const ConvKernelRow* row : bitserial_rows_under_test()) {
    if (!cpu_supports(*row)) {
      WARN("skipping " << row->name << ": this CPU lacks tier " << tier_name(row->tier));
      continue;
    }
    check_row(*row, layers);
  }
  // The bound is reached: 9 * 512 taps of code 3 times -2.
  std::vector<int64_t> out(static_cast<size_t>(layers[0].spec.output_elements()));
  conv_codes__ref(layers[0].spec, layers[0].act, layers[0].weights, out);
  CHECK(out[4 * 17] == -2 * 3 * 9 * 512);
}

TEST_CASE("Bit-serial rows explain the layers they cannot run", "[kernel][bitserial]") {
  ConvSpec s = make_spec(1, 4, 4, 8, 2, 3, 1, 1, 3);
  std::vector<int8_t> w(static_cast<size_t>(s.weight_elements()), 1);
  for (const ConvKernelRow* row : bitserial_rows_under_test()) {
    INFO(row->name);
    CHECK_THAT(row->rejects(s, w), Catch::Contains("act_bits 1 or 2"));
    CHECK_THROWS_WITH(row->prepare(s, w), Catch::Contains("act_bits 1 or 2"));
    s.act_bits = 2;
    w[s.depth() + 5] = 2;
    w[s.depth() + 6] = 3;
    w[s.depth() + 7] = -1;
    w[s.depth() + 8] = 0;
    CHECK_THAT(row->rejects(s, w),
               Catch::Contains("output channel 1") && Catch::Contains("at most 4"));
    CHECK_THROWS_WITH(row->prepare(s, w), Catch::Contains("output channel 1"));
    w.pop_back();
    CHECK_THAT(row->rejects(s, w), Catch::Contains("weights, got"));
    w.push_back(1);
    ConvSpec bad = s;
    bad.pad = 3;
    CHECK_THAT(row->rejects(bad, w), Catch::Contains("pad < kernel"));
    s.act_bits = 3;
    w.assign(w.size(), 1);
  }
  // Dispatch: the family's fastest row this CPU supports accepts a W2A2 layer.
  ConvSpec ok = make_spec(1, 4, 4, 16, 16, 3, 1, 1);
  std::vector<int8_t> wk(static_cast<size_t>(ok.weight_elements()), -1);
  const ConvKernelRow& chosen = select_conv(Family::kBitserial, ok, wk);
  CHECK(chosen.tier == max_tier());
}

TEST_CASE("Bit-serial preparation: panel for narrow layers, cheapest encoding, sizes",
          "[kernel][bitserial]") {
  const ConvKernelRow& ref = find_conv("conv_w2a2_bitserial__ref");
  std::mt19937 rng(3);
  auto prepared = [&](const ConvSpec& s, const WeightGen& gen) {
    const Layer l = random_layer(rng, "", s, gen);
    auto conv = ref.prepare(s, l.weights);
    const auto* bs = dynamic_cast<const BitserialConv*>(conv.get());
    REQUIRE(bs != nullptr);
    return std::make_pair(std::move(conv), bs);
  };
  {
    // CIFAR 16@32x32: K = 144 bits -> 5 K-steps (90% useful), not 9 per-tap chunks (50%).
    auto [conv, bs] = prepared(make_spec(1, 32, 32, 16, 16, 3, 1, 1), kSigned);
    CHECK(bs->uses_panel());
    CHECK(bs->k_layout().ksteps() == 5);
    CHECK(bs->kstep_efficiency() == Approx(0.9));
    CHECK(bs->weight_planes().encoding == WeightEncoding::kSigned);
    CHECK(conv->packed_weight_bytes() ==
          5 * 2 * 16 * 4 + 2 * 2 * 16 * 4);  // planes + pair coefficients
  }
  for (int64_t c : {32, 64}) {
    auto [conv, bs] = prepared(make_spec(1, 8, 8, c, 16, 3, 1, 1), kOdd);
    CHECK_FALSE(bs->uses_panel());
    CHECK(bs->kstep_efficiency() == Approx(1.0));
    CHECK(bs->weight_planes().encoding == WeightEncoding::kOddSymmetric);
  }
  {
    auto [conv, bs] = prepared(make_spec(1, 8, 8, 16, 16, 1, 1, 0), kTernary);
    CHECK_FALSE(bs->uses_panel());  // 1x1: nothing to gain
    CHECK(bs->weight_planes().encoding == WeightEncoding::kTernary);
  }
  {
    auto [conv, bs] = prepared(make_spec(1, 8, 8, 48, 16, 3, 1, 1), per_channel_sets(4, 5));
    CHECK(bs->uses_panel());  // 432 bits: 14 K-steps instead of 18
    CHECK(bs->k_layout().ksteps() == 14);
    CHECK(bs->weight_planes().planes == 3);
  }
}
