// bitplane_test.cpp: bit-plane packing (kernels/bitserial/bitplane.hpp): LCE-style one-hot
// bit-order tests for activations, panels and weights, pack/unpack round trips, exact channel
// padding, and the weight encoding chosen for every kind of weight set (signed, odd-symmetric,
// ternary, binary, any 3- or 4-level set per channel, constant channels).
#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <random>
#include <set>
#include <vector>

#include "core/error.hpp"
#include "kernels/bitserial/bitplane.hpp"
#include "kernels/bitserial/bitserial_tile.hpp"
#include "kernels/cpu.hpp"

using namespace bitgrad::kernels;

namespace {

int total_bits(const std::vector<uint32_t>& words) {
  int n = 0;
  for (uint32_t w : words) n += std::popcount(w);
  return n;
}

// Weights [out_channels, depth] where channel o draws uniformly from levels[o].
std::vector<int8_t> draw(std::mt19937& rng, int64_t depth,
                         const std::vector<std::vector<int>>& levels) {
  std::vector<int8_t> w;
  for (const auto& set : levels) {
    std::uniform_int_distribution<size_t> pick(0, set.size() - 1);
    for (int64_t k = 0; k < depth; ++k) w.push_back(static_cast<int8_t>(set[pick(rng)]));
  }
  return w;
}

// Every weight decodes to itself through its plane bits, and pack/unpack is the identity for the
// per-tap and the panel K layouts.
void check_round_trip(const std::vector<int8_t>& w, int64_t out_channels, int64_t taps,
                      int64_t channels) {
  const WeightPlanes plan = plan_weight_planes(w, out_channels);
  const int64_t depth = taps * channels;
  for (int64_t o = 0; o < out_channels; ++o)
    for (int64_t k = 0; k < depth; ++k) {
      const int8_t v = w[static_cast<size_t>(o * depth + k)];
      REQUIRE(plan.value_of(o, plan.bits_of(o, v)) == v);
      REQUIRE(plan.bits_of(o, v) < (1 << plan.planes));
    }
  for (int64_t per_segment : {int64_t{1}, taps}) {
    const KLayout k{taps, channels, per_segment};
    std::vector<uint32_t> packed(
        static_cast<size_t>(std::max<int64_t>(packed_weight_words(plan, k), 1)));
    pack_weight_planes(w, plan, k, packed);
    std::vector<int8_t> back(w.size());
    unpack_weight_planes(packed, plan, k, back);
    REQUIRE(back == w);
  }
}

}  // namespace

TEST_CASE("Activation packing: one code lands on exactly the documented bits",
          "[kernel][bitplane]") {
  for (int act_bits : {1, 2}) {
    for (int64_t channels : {1, 3, 16, 31, 32, 33, 40, 64, 100}) {
      const int64_t pw = act_pixel_words(channels, act_bits);
      CHECK(pw == (channels + 31) / 32 * act_bits);
      for (int64_t c : std::set<int64_t>{0, channels / 2, channels - 1}) {
        for (int code = 1; code < (1 << act_bits); ++code) {
          std::vector<uint8_t> codes(static_cast<size_t>(channels), 0);
          codes[static_cast<size_t>(c)] = static_cast<uint8_t>(code);
          std::vector<uint32_t> words(static_cast<size_t>(pw), 0);
          pack_act_pixels(codes, channels, act_bits, words);
          INFO("C " << channels << " channel " << c << " code " << code << " act_bits "
                    << act_bits);
          CHECK(total_bits(words) == std::popcount(static_cast<unsigned>(code)));
          for (int i = 0; i < act_bits; ++i) {
            // bitplane.hpp: word (q, i) at q * act_bits + i, channel 32q + b at bit b.
            const uint32_t word = words[static_cast<size_t>((c / 32) * act_bits + i)];
            CHECK(((word >> (c % 32)) & 1u) == static_cast<uint32_t>((code >> i) & 1));
          }
        }
      }
    }
  }
  // The example in the header: C = 40, channel 35 with code 2 sets bit 3 of word 3 only.
  std::vector<uint8_t> codes(40, 0);
  codes[35] = 2;
  std::vector<uint32_t> words(4, 0);
  pack_act_pixels(codes, 40, 2, words);
  CHECK(words == std::vector<uint32_t>{0, 0, 0, 1u << 3});
}

TEST_CASE("Activation packing round-trips and leaves the channel padding zero",
          "[kernel][bitplane]") {
  std::mt19937 rng(11);
  for (int act_bits : {1, 2}) {
    std::uniform_int_distribution<int> code((0), (1 << act_bits) - 1);
    for (int64_t channels : {1, 3, 7, 8, 9, 16, 17, 31, 32, 33, 64, 100}) {
      const int64_t pixels = 5, pw = act_pixel_words(channels, act_bits);
      std::vector<uint8_t> codes(static_cast<size_t>(pixels * channels));
      for (auto& x : codes) x = static_cast<uint8_t>(code(rng));
      std::vector<uint32_t> words(static_cast<size_t>(pixels * pw), 0xDEADBEEFu);
      pack_act_pixels(codes, channels, act_bits, words);
      std::vector<uint8_t> back(codes.size());
      unpack_act_pixels(words, channels, act_bits, back);
      CHECK(back == codes);
      const int64_t tail = channels % 32;
      if (tail != 0) {
        for (int64_t p = 0; p < pixels; ++p)
          for (int i = 0; i < act_bits; ++i)
            CHECK((words[static_cast<size_t>(p * pw + (pw / act_bits - 1) * act_bits + i)] >>
                   tail) == 0u);
      }
    }
  }
}

TEST_CASE("A padding pixel holds the pad code on real channels and zero bits beyond",
          "[kernel][bitplane]") {
  std::vector<uint32_t> words(4);
  fill_act_pixel(3, 40, 2, words);
  CHECK(words == std::vector<uint32_t>{~0u, ~0u, 0xFFu, 0xFFu});
  fill_act_pixel(2, 40, 2, words);
  CHECK(words == std::vector<uint32_t>{0u, ~0u, 0u, 0xFFu});
  fill_act_pixel(0, 40, 2, words);
  CHECK(words == std::vector<uint32_t>{0u, 0u, 0u, 0u});
  std::vector<uint32_t> one(1);
  fill_act_pixel(1, 16, 1, one);
  CHECK(one[0] == 0xFFFFu);
}

TEST_CASE("KLayout: per-tap chunks and the im2col panel map every (tap, channel) to its own bit",
          "[kernel][bitplane]") {
  for (int64_t channels : {1, 3, 16, 17, 32, 33, 48, 100}) {
    for (int64_t taps : {1, 9}) {
      for (int64_t per_segment : {int64_t{1}, taps}) {
        const KLayout k{taps, channels, per_segment};
        INFO("C " << channels << " taps " << taps << " per segment " << per_segment);
        if (per_segment == 1) CHECK(k.ksteps() == taps * ((channels + 31) / 32));
        if (per_segment == taps) CHECK(k.ksteps() == (taps * channels + 31) / 32);
        std::set<int64_t> seen;
        for (int64_t t = 0; t < taps; ++t)
          for (int64_t c = 0; c < channels; ++c) {
            const int64_t s = k.kstep_of(t, c);
            CHECK(s < k.ksteps());
            CHECK(seen.insert(s * 32 + k.bit_of(t, c)).second);
          }
      }
    }
  }
  // C = 16, 3x3 panel: 144 bits in 5 K-steps (not 9); tap 2's channel 0 is bit 0 of K-step 1.
  const KLayout panel{9, 16, 9};
  CHECK(panel.ksteps() == 5);
  CHECK(panel.kstep_of(2, 0) == 1);
  CHECK(panel.bit_of(2, 0) == 0);
  CHECK(panel.kstep_of(8, 15) == 4);
  CHECK(panel.bit_of(8, 15) == 15);
}

TEST_CASE("Panel rows concatenate the taps' channel bits, padded once", "[kernel][bitplane]") {
  std::mt19937 rng(5);
  for (int act_bits : {1, 2}) {
    std::uniform_int_distribution<int> code(0, (1 << act_bits) - 1);
    for (int64_t channels : {1, 3, 16, 17, 31, 33, 48, 100}) {
      // A 3x4 image; the taps of a 3x3 window at (0, 0) are pixels (i, j) = offsets (i * 4 + j) *
      // pw.
      const int64_t pw = act_pixel_words(channels, act_bits), width = 4;
      std::vector<uint8_t> codes(static_cast<size_t>(3 * width * channels));
      for (auto& x : codes) x = static_cast<uint8_t>(code(rng));
      std::vector<uint32_t> image(static_cast<size_t>(3 * width * pw));
      pack_act_pixels(codes, channels, act_bits, image);
      std::vector<int64_t> offsets;
      for (int64_t i = 0; i < 3; ++i)
        for (int64_t j = 0; j < 3; ++j) offsets.push_back((i * width + j) * pw);
      const KLayout k{9, channels, 9};
      std::vector<uint32_t> row(static_cast<size_t>(k.ksteps() * act_bits), 0xFFFFFFFFu);
      pack_panel_row(image.data(), offsets, channels, act_bits, row.data());
      int expected_bits = 0;
      for (int64_t t = 0; t < 9; ++t)
        for (int64_t c = 0; c < channels; ++c) {
          const int v = codes[static_cast<size_t>(((t / 3) * width + t % 3) * channels + c)];
          expected_bits += std::popcount(static_cast<unsigned>(v));
          for (int i = 0; i < act_bits; ++i) {
            const uint32_t word = row[static_cast<size_t>(k.kstep_of(t, c) * act_bits + i)];
            REQUIRE(((word >> k.bit_of(t, c)) & 1u) == static_cast<uint32_t>((v >> i) & 1));
          }
        }
      INFO("C " << channels << " act_bits " << act_bits);
      CHECK(total_bits(row) == expected_bits);  // nothing but the codes' bits: the padding is 0
    }
  }
}

TEST_CASE("Bit-row panel rows equal the image route's panel rows", "[kernel][bitplane]") {
  std::mt19937 rng(6);
  for (int act_bits : {1, 2}) {
    std::uniform_int_distribution<int> code(0, 255);  // high bits must be ignored
    for (int64_t channels : {8, 16}) {
      REQUIRE(bit_rows_supported(channels, 3));
      const int64_t width = 7, height = 3, pw = act_pixel_words(channels, act_bits);
      std::vector<uint8_t> codes(static_cast<size_t>(height * width * channels));
      for (auto& x : codes) x = static_cast<uint8_t>(code(rng));
      std::vector<uint8_t> masked(codes);
      for (auto& x : masked) x = static_cast<uint8_t>(x & ((1 << act_bits) - 1));
      std::vector<uint32_t> image(static_cast<size_t>(height * width * pw));
      pack_act_pixels(masked, channels, act_bits, image);
      // Bit rows: row r's planes at r * act_bits * plane_bytes, 8 bytes of slack.
      const int64_t plane_bytes = width * channels / 8 + 1;  // a stride longer than the row
      std::vector<uint8_t> bits(static_cast<size_t>(height * act_bits * plane_bytes + 8), 0xA5);
      for (int64_t r = 0; r < height; ++r)
        pack_bit_row(codes.data() + r * width * channels, width, channels, act_bits,
                     bits.data() + r * act_bits * plane_bytes, plane_bytes);
      const uint8_t* rows[3];
      for (int64_t r = 0; r < 3; ++r) rows[r] = bits.data() + r * act_bits * plane_bytes;
      const KLayout k{9, channels, 9};
      const int64_t words = k.ksteps() * act_bits;
      for (int64_t stride : {1, 2}) {
        const int64_t count = (width - 3) / stride + 1;
        std::vector<uint32_t> want(static_cast<size_t>(count * words), 0x5A5A5A5Au);
        std::vector<uint32_t> got(want.size(), 0x12345678u);
        for (int64_t x = 0; x < count; ++x) {
          std::vector<int64_t> offsets;
          for (int64_t i = 0; i < 3; ++i)
            for (int64_t j = 0; j < 3; ++j) offsets.push_back((i * width + x * stride + j) * pw);
          pack_panel_row(image.data(), offsets, channels, act_bits, want.data() + x * words);
        }
        pack_panel_rows_bits(rows, plane_bytes, count, stride, channels, 3, act_bits, got.data());
        INFO("C " << channels << " act_bits " << act_bits << " stride " << stride);
        CHECK(got == want);
      }
      // Pad rows: every channel of every pixel holds the code.
      for (uint8_t pad : {uint8_t{0}, uint8_t{1}, uint8_t{2}, uint8_t{3}}) {
        std::vector<uint8_t> row(static_cast<size_t>(act_bits * plane_bytes), 0x3C);
        fill_bit_row(pad, width, channels, act_bits, row.data(), plane_bytes);
        for (int i = 0; i < act_bits; ++i)
          for (int64_t b = 0; b < width * channels / 8; ++b)
            CHECK(row[static_cast<size_t>(i * plane_bytes + b)] == ((pad >> i) & 1 ? 0xFF : 0x00));
      }
    }
  }
  CHECK_FALSE(bit_rows_supported(17, 3));
  CHECK_FALSE(bit_rows_supported(16, 1));
}

TEST_CASE("The AVX-512 bit-row packer equals the scalar one", "[kernel][bitplane]") {
  if (cpu_tier() < Tier::kAvx512) {
    WARN("no AVX-512 on this CPU: pack_bit_row__avx512 not tested");
    return;
  }
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> code(0, 255);  // high bits must be ignored
  for (int act_bits : {1, 2})
    for (int64_t channels : {8, 16})
      for (int64_t pixels : {1, 3, 4, 5, 8, 9, 32, 33, 56}) {
        const int64_t bytes = pixels * channels / 8, plane_bytes = bytes + 3;
        std::vector<uint8_t> codes(static_cast<size_t>(pixels * channels));
        for (auto& x : codes) x = static_cast<uint8_t>(code(rng));
        std::vector<uint8_t> want(static_cast<size_t>(2 * plane_bytes), 0xA5);
        std::vector<uint8_t> got(want);
        pack_bit_row(codes.data(), pixels, channels, act_bits, want.data(), plane_bytes);
        pack_bit_row__avx512(codes.data(), pixels, channels, act_bits, got.data(), plane_bytes);
        INFO("C " << channels << " act_bits " << act_bits << " pixels " << pixels);
        CHECK(got == want);  // including the untouched bytes between and after the planes
      }
}

TEST_CASE("Weight planes: the named encodings get their documented planes and coefficients",
          "[kernel][bitplane]") {
  std::mt19937 rng(7);
  const int64_t depth = 3 * 3 * 17;
  struct Named {
    std::vector<int> levels;
    WeightEncoding encoding;
    int32_t alpha, coef0, coef1;
  };
  const std::vector<Named> named = {
      {{-2, -1, 0, 1}, WeightEncoding::kSigned, 0, 1, -2},
      {{-3, -1, 1, 3}, WeightEncoding::kOddSymmetric, -3, 2, 4},
      {{-1, 0, 1}, WeightEncoding::kTernary, 0, 1, -1},
  };
  for (const Named& n : named) {
    const std::vector<int8_t> w = draw(rng, depth, {n.levels, n.levels, n.levels});
    const WeightPlanes plan = plan_weight_planes(w, 3);
    INFO(weight_encoding_name(n.encoding));
    CHECK(plan.encoding == n.encoding);
    CHECK(plan.planes == 2);
    CHECK(plan.uses_act_sum() == (n.alpha != 0));
    for (int64_t o = 0; o < 3; ++o) {
      CHECK(plan.alpha[static_cast<size_t>(o)] == n.alpha);
      CHECK(plan.coef[static_cast<size_t>(o * kMaxWeightPlanes)] == n.coef0);
      CHECK(plan.coef[static_cast<size_t>(o * kMaxWeightPlanes + 1)] == n.coef1);
    }
    check_round_trip(w, 3, 9, 17);
  }
  // Two's-complement planes for signed weights: -2 = 0b10, -1 = 0b11, 1 = 0b01; ternary P/N.
  const WeightPlanes signed_plan = plan_weight_planes(std::vector<int8_t>{-2, -1, 0, 1}, 1);
  CHECK(signed_plan.bits_of(0, -2) == 2);
  CHECK(signed_plan.bits_of(0, -1) == 3);
  CHECK(signed_plan.bits_of(0, 1) == 1);
  CHECK(signed_plan.bits_of(0, 0) == 0);
  const WeightPlanes ternary = plan_weight_planes(std::vector<int8_t>{-1, 0, 1, 1}, 1);
  CHECK(ternary.bits_of(0, 1) == 1);
  CHECK(ternary.bits_of(0, -1) == 2);
  const WeightPlanes odd = plan_weight_planes(std::vector<int8_t>{-3, -1, 1, 3}, 1);
  CHECK(odd.bits_of(0, -3) == 0);
  CHECK(odd.bits_of(0, 3) == 3);
}

TEST_CASE("Weight planes: any set of up to 4 levels per channel, with the fewest planes",
          "[kernel][bitplane]") {
  std::mt19937 rng(9);
  const int64_t depth = 9 * 5;
  struct Case {
    const char* what;
    std::vector<std::vector<int>> levels;  // per output channel
    WeightEncoding encoding;
    int planes;
    bool act_sum;
  };
  const std::vector<Case> cases = {
      {"all-equal channels", {{5}, {-7}, {0}}, WeightEncoding::kConstant, 0, true},
      {"all zero", {{0}, {0}}, WeightEncoding::kConstant, 0, false},
      {"binary {0, x}", {{0, 4}, {-9, 0}}, WeightEncoding::kBinary, 1, false},
      {"binary without zero", {{-1, 1}, {2, 7}}, WeightEncoding::kBinary, 1, true},
      {"3 levels per channel",
       {{0, 4, 9}, {-5, 1, 2}, {-128, 0, 127}},
       WeightEncoding::kTwoPlane,
       2,
       true},
      {"4 levels pairing into equal sums",
       {{-6, -2, 2, 6}, {0, 3, 5, 8}, {-2, -1, 0, 1}},
       WeightEncoding::kTwoPlane,
       2,
       true},
      {"APoT-like 4 levels", {{0, 1, 2, 4}, {-4, -1, 0, 2}}, WeightEncoding::kThreePlane, 3, false},
      {"4 levels, extreme values",
       {{-128, -1, 3, 127}, {-128, 127, 0, 1}},
       WeightEncoding::kThreePlane,
       3,
       true},
      {"mixed per channel",
       {{1}, {0, 5}, {-1, 0, 1}, {-3, 0, 2, 10}},
       WeightEncoding::kThreePlane,
       3,
       true},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    const int64_t out = static_cast<int64_t>(c.levels.size());
    std::vector<int8_t> w = draw(rng, depth, c.levels);
    // Make sure every level occurs in its channel.
    for (int64_t o = 0; o < out; ++o)
      for (size_t l = 0; l < c.levels[static_cast<size_t>(o)].size(); ++l)
        w[static_cast<size_t>(o * depth) + l] =
            static_cast<int8_t>(c.levels[static_cast<size_t>(o)][l]);
    const WeightPlanes plan = plan_weight_planes(w, out);
    CHECK(plan.encoding == c.encoding);
    CHECK(plan.planes == c.planes);
    CHECK(plan.uses_act_sum() == c.act_sum);
    check_round_trip(w, out, 9, 5);
  }
  // A channel whose only levels include 0 never needs the sum term (0 sits at plane bits 00).
  const WeightPlanes z = plan_weight_planes(std::vector<int8_t>{0, 1, 2, 4, 0, 0, 0, 0}, 2);
  CHECK(z.alpha[0] == 0);
  CHECK(z.alpha[1] == 0);
  CHECK(z.bits_of(0, 0) == 0);
}

TEST_CASE("Weight packing: one weight lands on exactly the documented bit", "[kernel][bitplane]") {
  // Channel 0 spans {-2..1} so the layer is kSigned; channel `o` is all 0 but one weight w.
  const int64_t taps = 9, channels = 20, out = 19, depth = taps * channels;
  for (int8_t v : {int8_t{1}, int8_t{-2}, int8_t{-1}}) {
    for (int64_t per_segment : {int64_t{1}, taps}) {
      for (int64_t o : {int64_t{1}, int64_t{16}, int64_t{18}}) {
        for (int64_t t : {int64_t{0}, int64_t{4}, int64_t{8}}) {
          for (int64_t c : {int64_t{0}, int64_t{13}, int64_t{19}}) {
            std::vector<int8_t> w(static_cast<size_t>(out * depth), 0);
            w[0] = -2;
            w[1] = -1;
            w[2] = 1;
            w[static_cast<size_t>(o * depth + t * channels + c)] = v;
            const WeightPlanes plan = plan_weight_planes(w, out);
            REQUIRE(plan.encoding == WeightEncoding::kSigned);
            const KLayout k{taps, channels, per_segment};
            std::vector<uint32_t> packed(static_cast<size_t>(packed_weight_words(plan, k)));
            pack_weight_planes(w, plan, k, packed);
            // Ignore channel 0's lane; everything else must be exactly v's plane bits.
            const int64_t g = o / 16, lane = o % 16, s = k.kstep_of(t, c);
            const uint8_t bits = static_cast<uint8_t>(v & 3);
            int others = 0;
            for (size_t idx = 0; idx < packed.size(); ++idx)
              if (idx % 16 != 0 || idx / 16 / static_cast<size_t>(k.ksteps() * 2) != 0)
                others += std::popcount(packed[idx]);
            INFO("v " << int{v} << " o " << o << " t " << t << " c " << c << " per segment "
                      << per_segment);
            CHECK(others == std::popcount(static_cast<unsigned>(bits)));
            for (int j = 0; j < 2; ++j) {
              const uint32_t word =
                  packed[static_cast<size_t>(((g * k.ksteps() + s) * 2 + j) * 16 + lane)];
              CHECK(((word >> k.bit_of(t, c)) & 1u) == static_cast<uint32_t>((bits >> j) & 1));
            }
          }
        }
      }
    }
  }
}

TEST_CASE("Weight planes reject a channel with more than 4 values, saying which",
          "[kernel][bitplane]") {
  std::vector<int8_t> w = {0, 1, 2, 3, 0, 1, 2, 3, -1, 0, 1, 2, 3, 0, 0, 0};
  CHECK(weight_planes_problem(std::span<const int8_t>(w.data(), 8), 2).empty());
  const std::string why = weight_planes_problem(w, 2);
  CHECK_THAT(why,
             Catch::Contains("output channel 1") && Catch::Contains("more than 4 distinct values"));
  CHECK_THROWS_WITH(plan_weight_planes(w, 2), Catch::Contains("output channel 1"));
  CHECK_THAT(weight_planes_problem(w, 3), Catch::Contains("do not split into 3"));
}
