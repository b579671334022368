// packed_model_test.cpp: the .bgpk format (kernels/runtime/packed_model.hpp): FloatQuantizer::code,
// round trips of random but valid ResNet-8/20 models (2-bit, and 4-bit weights with APoT-like
// non-consecutive levels) through the file image and through a file, bit-exact; the size and MAC
// counts; and every kind of bad input (wrong format or version, missing / extra / mistyped /
// misshapen tensors, truncated or missing files, unsorted thresholds, weights decoding out of
// range, wrong structure) rejected with a message naming the fault.
#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/safetensors.hpp"
#include "kernels/runtime/packed_model.hpp"
#include "test_util.hpp"

using namespace bitgrad;
using namespace bitgrad::kernels;
using Catch::Contains;

namespace {

struct Variant {
  int weight_bits = 2;
  int act_bits = 2;
  std::vector<uint8_t> levels = {0, 1, 2, 3};  // codes of every quantizer, 2^out_bits of them
};

const Variant kW2A2{};
// 4-bit weights, 4-bit activation codes of which an APoT-like quantizer uses 8.
const Variant kW4Apot{4, 4, {0, 1, 2, 3, 4, 6, 8, 12}};

int log2_size(size_t n) { return std::countr_zero(n); }

std::vector<float> random_floats(std::mt19937& rng, size_t n) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

core::Tensor random_tensor(std::mt19937& rng, const core::Shape& shape) {
  const std::vector<float> v = random_floats(rng, static_cast<size_t>(shape.numel()));
  return core::Tensor::from(shape, v);
}

FloatQuantizer random_codes(std::mt19937& rng, const std::vector<uint8_t>& levels) {
  FloatQuantizer q;
  q.levels = levels;
  q.thresholds = random_floats(rng, levels.size() - 1);
  std::sort(q.thresholds.begin(), q.thresholds.end());
  return q;
}

PackedConv random_conv(std::mt19937& rng, const std::string& name, const ConvSpec& spec,
                       const Variant& v) {
  PackedConv c;
  c.name = name;
  c.spec = spec;
  c.weight_bits = v.weight_bits;
  const int span = 1 << v.weight_bits;
  std::uniform_int_distribution<int> base(-span / 2 - 1, -span / 2 + 1), code(0, span - 1);
  for (int64_t o = 0; o < spec.out_channels; ++o) {
    const int b = base(rng);
    for (int64_t k = 0; k < spec.depth(); ++k)
      c.weights.push_back(static_cast<int8_t>(b + code(rng)));
  }
  return c;
}

// A consistent ResNet-`depth` on in_channels x 8 x 8 images, 10 classes.
PackedResNet make_model(int depth, const Variant& v, uint32_t seed, int64_t in_channels = 1,
                        int64_t size = 8) {
  std::mt19937 rng(seed);
  PackedResNet m;
  m.depth = depth;
  m.in_channels = in_channels;
  m.num_classes = 10;
  m.height = m.width = size;
  m.source = core::Json::object().set("quantizer", "test").set("seed", seed);
  m.stem_weight = random_tensor(rng, {16, in_channels, 3, 3});
  m.stem_bn_mean = random_floats(rng, 16);
  m.stem_bn_scale = random_floats(rng, 16);
  m.stem_bn_offset = random_floats(rng, 16);
  m.stem_codes = random_codes(rng, v.levels);
  const int n = (depth - 2) / 6;
  const int out_bits = log2_size(v.levels.size());
  int64_t h = size, w = size, in = 16;
  std::uniform_int_distribution<int32_t> threshold(-500, 500), offset(-100, 100);
  for (int stage = 0; stage < 3; ++stage) {
    const int64_t planes = 16 << stage;
    for (int b = 0; b < n; ++b) {
      PackedBlock block;
      block.downsample = stage > 0 && b == 0;
      const std::string name = "layer" + std::to_string(stage + 1) + "." + std::to_string(b);
      ConvSpec s1;
      s1.height = h;
      s1.width = w;
      s1.in_channels = in;
      s1.out_channels = planes;
      s1.kernel = 3;
      s1.stride = block.downsample ? 2 : 1;
      s1.pad = 1;
      s1.act_bits = v.act_bits;
      block.conv1 = random_conv(rng, name + ".conv1", s1, v);
      h = s1.out_height();
      w = s1.out_width();
      ConvSpec s2 = s1;
      s2.height = h;
      s2.width = w;
      s2.in_channels = planes;
      s2.stride = 1;
      block.conv2 = random_conv(rng, name + ".conv2", s2, v);

      Thresholds& t = block.conv1.thresholds;
      t.channels = planes;
      t.out_bits = out_bits;
      for (int64_t c = 0; c < planes; ++c) {
        std::vector<int32_t> values(static_cast<size_t>(t.count()));
        for (int32_t& x : values) x = threshold(rng);
        std::sort(values.begin(), values.end());
        const bool descending = c % 3 == 1;
        if (descending) std::reverse(values.begin(), values.end());
        t.values.insert(t.values.end(), values.begin(), values.end());
        t.descending.push_back(descending ? 1 : 0);
      }
      block.conv1.out_levels = v.levels;
      if (b % 2 == 0)
        for (int64_t c = 0; c < planes; ++c) block.conv1.acc_offset.push_back(offset(rng) | 1);

      PackedConv& c2 = block.conv2;
      c2.scale = random_floats(rng, static_cast<size_t>(planes));
      if (stage == 1) c2.bias = random_floats(rng, static_cast<size_t>(planes));
      c2.bn_mean = random_floats(rng, static_cast<size_t>(planes));
      c2.bn_scale = random_floats(rng, static_cast<size_t>(planes));
      c2.bn_offset = random_floats(rng, static_cast<size_t>(planes));
      // Values whose bits a careless conversion would change.
      c2.scale[0] = -0.0f;
      c2.bn_offset[1] = 1e-40f;  // subnormal
      c2.bn_mean[2] = std::numeric_limits<float>::infinity();
      if (stage == 2 && b == 0) c2.acc_offset.assign(static_cast<size_t>(planes), -7);

      if (!(stage == 2 && b == n - 1)) block.out_codes = random_codes(rng, v.levels);
      m.blocks.push_back(std::move(block));
      in = planes;
    }
  }
  m.blocks.front().out_codes.thresholds.back() = std::numeric_limits<float>::infinity();
  m.fc_weight = random_tensor(rng, {10, 64});
  m.fc_bias = random_floats(rng, 10);
  return m;
}

std::vector<uint32_t> bits_of(const std::vector<float>& v) {
  std::vector<uint32_t> b;
  for (float x : v) b.push_back(std::bit_cast<uint32_t>(x));
  return b;
}

void check_same_conv(const PackedConv& a, const PackedConv& b) {
  INFO(a.name);
  CHECK(a.name == b.name);
  CHECK(a.spec.describe() == b.spec.describe());
  CHECK(a.spec.pad_code == b.spec.pad_code);
  CHECK(a.weight_bits == b.weight_bits);
  CHECK(a.weights == b.weights);
  CHECK(a.acc_offset == b.acc_offset);
  CHECK(a.thresholds.channels == b.thresholds.channels);
  if (a.has_thresholds()) CHECK(a.thresholds.out_bits == b.thresholds.out_bits);
  CHECK(a.thresholds.values == b.thresholds.values);
  CHECK(a.thresholds.descending == b.thresholds.descending);
  CHECK(a.out_levels == b.out_levels);
  CHECK(bits_of(a.scale) == bits_of(b.scale));
  CHECK(bits_of(a.bias) == bits_of(b.bias));
  CHECK(bits_of(a.bn_mean) == bits_of(b.bn_mean));
  CHECK(bits_of(a.bn_scale) == bits_of(b.bn_scale));
  CHECK(bits_of(a.bn_offset) == bits_of(b.bn_offset));
}

void check_same_codes(const FloatQuantizer& a, const FloatQuantizer& b) {
  CHECK(bits_of(a.thresholds) == bits_of(b.thresholds));
  CHECK(a.levels == b.levels);
}

void check_same(const PackedResNet& a, const PackedResNet& b) {
  CHECK(a.depth == b.depth);
  CHECK(a.in_channels == b.in_channels);
  CHECK(a.num_classes == b.num_classes);
  CHECK(a.height == b.height);
  CHECK(a.width == b.width);
  CHECK(a.source == b.source);
  CHECK(a.stem_weight.shape() == b.stem_weight.shape());
  CHECK(bits_of(a.stem_weight.to_vector()) == bits_of(b.stem_weight.to_vector()));
  CHECK(bits_of(a.stem_bn_mean) == bits_of(b.stem_bn_mean));
  CHECK(bits_of(a.stem_bn_scale) == bits_of(b.stem_bn_scale));
  CHECK(bits_of(a.stem_bn_offset) == bits_of(b.stem_bn_offset));
  check_same_codes(a.stem_codes, b.stem_codes);
  REQUIRE(a.blocks.size() == b.blocks.size());
  for (size_t i = 0; i < a.blocks.size(); ++i) {
    CHECK(a.blocks[i].downsample == b.blocks[i].downsample);
    check_same_conv(a.blocks[i].conv1, b.blocks[i].conv1);
    check_same_conv(a.blocks[i].conv2, b.blocks[i].conv2);
    check_same_codes(a.blocks[i].out_codes, b.blocks[i].out_codes);
  }
  CHECK(a.fc_weight.shape() == b.fc_weight.shape());
  CHECK(bits_of(a.fc_weight.to_vector()) == bits_of(b.fc_weight.to_vector()));
  CHECK(bits_of(a.fc_bias) == bits_of(b.fc_bias));
}

// The model through its serialized file image.
PackedResNet through_bytes(const core::SafetensorsFile& f, const std::string& origin = "mem.bgpk") {
  const std::vector<uint8_t> bytes = core::serialize_safetensors(f);
  return from_safetensors(core::parse_safetensors(bytes, origin), origin);
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

TEST_CASE("packed model: FloatQuantizer::code counts passed thresholds, NaN passes none",
          "[kernel][packed]") {
  const FloatQuantizer q{{-1.0f, 0.0f, 0.0f, 2.5f}, {0, 1, 3, 5, 9}};
  CHECK(q.code(-std::numeric_limits<float>::infinity()) == 0);
  CHECK(q.code(-1.5f) == 0);
  CHECK(q.code(-1.0f) == 1);
  CHECK(q.code(-0.0f) == 5);  // -0 >= 0: passes both equal thresholds
  CHECK(q.code(std::nextafter(0.0f, -1.0f)) == 1);
  CHECK(q.code(2.4999998f) == 5);
  CHECK(q.code(2.5f) == 9);
  CHECK(q.code(std::numeric_limits<float>::infinity()) == 9);
  CHECK(q.code(std::numeric_limits<float>::quiet_NaN()) == 0);
  const FloatQuantizer one{{}, {7}};
  CHECK(one.code(3.0f) == 7);
}

TEST_CASE("packed model: sizes and MAC counts", "[kernel][packed]") {
  const PackedResNet m = make_model(8, kW2A2, 1);
  REQUIRE_NOTHROW(m.validate());
  // conv weights 16*16*9 * 2 + 32*16*9 + 32*32*9 + 64*32*9 + 64*64*9 = 73728, 2 bits each.
  CHECK(m.packed_weight_bytes() == 73728 / 4);
  // stem 8*8*16*9, layer1 2 * 64*16*144, layer2 16*32*144 + 16*32*288, layer3 4*64*288 + 4*64*576,
  // fc.
  CHECK(m.macs_per_image() == 9216 + 2 * 147456 + 73728 + 147456 + 73728 + 147456 + 640);
  CHECK(make_model(8, kW4Apot, 1).packed_weight_bytes() == 73728 / 2);

  // ResNet-32 W2A2 on 32x32x3: 460800 weights = 115200 bytes; the whole file stays small.
  const PackedResNet r32 = make_model(32, kW2A2, 2, 3, 32);
  CHECK(r32.packed_weight_bytes() == 115200);
  const size_t file_bytes = core::serialize_safetensors(to_safetensors(r32, "resnet32")).size();
  CHECK(file_bytes < 180000);
  WARN("ResNet-32 W2A2 .bgpk: " << file_bytes << " bytes, packed weights "
                                << r32.packed_weight_bytes());
}

TEST_CASE("packed model: round trip through the file image is exact", "[kernel][packed]") {
  struct Case {
    int depth;
    Variant variant;
  };
  for (const Case& c : {Case{8, kW2A2}, Case{20, kW2A2}, Case{8, kW4Apot}, Case{14, kW4Apot}}) {
    INFO("depth " << c.depth << ", weight_bits " << c.variant.weight_bits);
    const PackedResNet m = make_model(c.depth, c.variant, 7);
    REQUIRE_NOTHROW(m.validate());
    const core::SafetensorsFile f = to_safetensors(m, "from test.safetensors");
    CHECK(f.metadata.at("format") == "bitgrad.packed");
    CHECK(f.metadata.at("format_version") == "1");
    CHECK(f.metadata.at("source") == "from test.safetensors");
    CHECK(f.tensors.at("layer1.0.conv1.weight").dtype == core::DType::kU8);
    CHECK(f.contains("layer1.0.conv1.acc_offset"));
    CHECK_FALSE(f.contains("layer1.0.conv2.acc_offset"));
    CHECK(f.contains("layer2.0.conv2.bias"));
    CHECK_FALSE(f.contains("layer1.0.conv2.bias"));
    const std::string last = "layer3." + std::to_string((c.depth - 2) / 6 - 1);
    CHECK_FALSE(f.contains(last + ".out.levels"));
    CHECK(f.contains("layer1.0.out.levels"));
    const PackedResNet back = through_bytes(f);
    check_same(m, back);
  }
}

TEST_CASE("packed model: weight codes are packed LSB first with per-channel offsets",
          "[kernel][packed]") {
  PackedResNet m = make_model(8, kW2A2, 3);
  PackedConv& c = m.blocks[0].conv1;
  const int64_t depth = c.spec.depth();
  // channel 0: values -3, -2, -1, 0, then -3; channel 1 all 5 (span 0).
  for (int64_t k = 0; k < depth; ++k) {
    c.weights[static_cast<size_t>(k)] = static_cast<int8_t>(k < 4 ? k - 3 : -3);
    c.weights[static_cast<size_t>(depth + k)] = 5;
  }
  const core::SafetensorsFile f = to_safetensors(m, "");
  const core::StoredTensor& w = f.tensors.at("layer1.0.conv1.weight");
  CHECK(w.shape == std::vector<int64_t>{16 * 144 / 4});
  CHECK(w.bytes[0] == 0b11100100);  // codes 0, 1, 2, 3 from the lowest bits up
  CHECK(w.bytes[1] == 0);
  const core::StoredTensor& offset = f.tensors.at("layer1.0.conv1.weight_offset");
  CHECK(offset.bytes[0] == 0xfd);  // -3, little-endian I32
  CHECK(offset.bytes[4] == 5);
  check_same(m, through_bytes(f));
}

TEST_CASE("packed model: all-zero acc_offset is omitted and loads as empty", "[kernel][packed]") {
  PackedResNet m = make_model(8, kW2A2, 4);
  m.blocks[0].conv1.acc_offset.assign(16, 0);
  const core::SafetensorsFile f = to_safetensors(m, "");
  CHECK_FALSE(f.contains("layer1.0.conv1.acc_offset"));
  CHECK(through_bytes(f).blocks[0].conv1.acc_offset.empty());
}

TEST_CASE("packed model: save_packed / load_packed through a file", "[kernel][packed]") {
  test::TempDir dir;
  const std::string path = dir.file("model.bgpk");
  const PackedResNet m = make_model(20, kW2A2, 5);
  save_packed(path, m, "student.safetensors");
  CHECK(dir.listing() == std::vector<std::string>{"model.bgpk"});  // no temporary left behind
  check_same(m, load_packed(path));
  CHECK(core::read_safetensors(path).metadata.at("source") == "student.safetensors");

  // An invalid model is not written at all.
  PackedResNet bad = m;
  bad.fc_bias.pop_back();
  const std::string bad_path = dir.file("bad.bgpk");
  CHECK_THROWS_WITH(save_packed(bad_path, bad, ""), Contains("packed model: fc.bias"));
  CHECK(dir.listing() == std::vector<std::string>{"model.bgpk"});

  // Truncated and missing files name the file.
  const std::vector<uint8_t> bytes = core::serialize_safetensors(to_safetensors(m, ""));
  const std::string cut = dir.file("cut.bgpk");
  write_bytes(cut, std::vector<uint8_t>(bytes.begin(),
                                        bytes.begin() + static_cast<long>(bytes.size() / 2)));
  CHECK_THROWS_WITH(load_packed(cut), Contains("cut.bgpk"));
  write_bytes(cut, std::vector<uint8_t>(bytes.begin(), bytes.begin() + 5));
  CHECK_THROWS_WITH(load_packed(cut), Contains("cut.bgpk"));
  CHECK_THROWS_WITH(load_packed(dir.file("absent.bgpk")), Contains("absent.bgpk"));
  write_bytes(cut, {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '!'});
  CHECK_THROWS_WITH(load_packed(cut), Contains("cut.bgpk"));
}

TEST_CASE("packed model: corrupt file images are rejected with the fault named",
          "[kernel][packed]") {
  const PackedResNet m = make_model(8, kW2A2, 6);
  const core::SafetensorsFile good = to_safetensors(m, "note");
  auto load = [](const core::SafetensorsFile& f) { return from_safetensors(f, "f.bgpk"); };

  SECTION("format") {
    core::SafetensorsFile f = good;
    f.metadata["format"] = "bitgrad.checkpoint";
    CHECK_THROWS_WITH(load(f), Contains("packed model 'f.bgpk': expected format 'bitgrad.packed', "
                                        "got 'bitgrad.checkpoint'"));
    f.metadata.erase("format");
    CHECK_THROWS_WITH(load(f), Contains("not a packed model?"));
  }
  SECTION("version") {
    core::SafetensorsFile f = good;
    f.metadata["format_version"] = "2";
    CHECK_THROWS_WITH(load(f), Contains("packed model 'f.bgpk': format_version 2 is not supported "
                                        "(this build reads version 1)"));
  }
  SECTION("metadata") {
    core::SafetensorsFile f = good;
    f.metadata.erase("model");
    CHECK_THROWS_WITH(load(f), Contains("no 'model' metadata"));
    f.metadata["model"] = "{\"depth\": 8,";
    CHECK_THROWS_WITH(load(f), Contains("f.bgpk': metadata 'model': JSON parse error"));
    core::Json j = core::Json::parse(good.metadata.at("model"));
    j.set("depth", 14);
    f.metadata["model"] = j.dump();
    CHECK_THROWS_WITH(load(f), Contains("expected 3 stages of 2 blocks"));
    j = core::Json::parse(good.metadata.at("model"));
    j.set("stem_levels", "four");
    f.metadata["model"] = j.dump();
    CHECK_THROWS_WITH(load(f),
                      Contains("metadata 'model'.stem_levels: expected an integer in 1..256"));
  }
  SECTION("missing tensors") {
    for (const char* name :
         {"layer1.0.conv1.weight", "layer2.0.conv2.weight_offset", "layer1.0.conv1.thresholds",
          "layer3.0.conv1.descending", "layer1.0.conv1.out_levels", "layer1.0.conv2.scale",
          "layer2.0.conv2.bn_offset", "stem.weight", "stem.bn_scale", "stem.codes.levels",
          "layer1.0.out.thresholds", "fc.weight", "fc.bias"}) {
      INFO(name);
      core::SafetensorsFile f = good;
      REQUIRE(f.tensors.erase(name) == 1);
      CHECK_THROWS_WITH(load(f), Contains("1 missing tensor: [" + std::string(name) + "]"));
    }
  }
  SECTION("extra tensor") {
    core::SafetensorsFile f = good;
    f.tensors["layer3.1.conv1.weight"] = good.tensors.at("layer3.0.conv2.weight");
    CHECK_THROWS_WITH(load(f), Contains("1 unexpected tensor for a depth-8 packed ResNet: "
                                        "[layer3.1.conv1.weight]"));
    f = good;  // the last block has no output codes
    f.tensors["layer3.0.out.levels"] = good.tensors.at("stem.codes.levels");
    CHECK_THROWS_WITH(load(f), Contains("[layer3.0.out.levels]"));
  }
  SECTION("wrong dtype") {
    core::SafetensorsFile f = good;
    f.tensors["layer1.0.conv2.scale"] =
        core::StoredTensor::from_i32({16}, std::vector<int32_t>(16));
    CHECK_THROWS_WITH(load(f),
                      Contains("layer1.0.conv2.scale: expected F32 [16], file has I32 [16]"));
  }
  SECTION("wrong shape") {
    core::SafetensorsFile f = good;
    f.tensors["layer1.0.conv1.thresholds"] =
        core::StoredTensor::from_i32({16, 2}, std::vector<int32_t>(32));
    CHECK_THROWS_WITH(load(f), Contains("layer1.0.conv1.thresholds: expected I32 [16, 3], file has "
                                        "I32 [16, 2]"));
    f = good;
    f.tensors["layer1.0.conv1.weight"].shape = {575};
    f.tensors["layer1.0.conv1.weight"].bytes.resize(575);
    CHECK_THROWS_WITH(load(f),
                      Contains("layer1.0.conv1.weight: expected U8 [576], file has U8 [575]"));
    f = good;  // the optional tensors are checked too
    f.tensors["layer1.0.conv2.bias"] = core::StoredTensor::from_i32({16}, std::vector<int32_t>(16));
    CHECK_THROWS_WITH(load(f),
                      Contains("layer1.0.conv2.bias: expected F32 [16], file has I32 [16]"));
  }
  SECTION("truncated image") {
    const std::vector<uint8_t> bytes = core::serialize_safetensors(good);
    const std::vector<uint8_t> cut(bytes.begin(), bytes.end() - 100);
    CHECK_THROWS_WITH(core::parse_safetensors(cut, "cut.bgpk"), Contains("cut.bgpk"));
  }
  SECTION("unsorted thresholds") {
    core::SafetensorsFile f = good;
    std::vector<int32_t> t = m.blocks[0].conv1.thresholds.values;
    t[0] = 1000;  // channel 0 ascends
    REQUIRE(m.blocks[0].conv1.thresholds.descending[0] == 0);
    f.tensors["layer1.0.conv1.thresholds"] = core::StoredTensor::from_i32({16, 3}, t);
    CHECK_THROWS_WITH(load(f),
                      Contains("packed model 'f.bgpk': layer1.0.conv1: expected the thresholds "
                               "of channel 0 in ascending order"));
    f = good;
    std::vector<float> q = m.stem_codes.thresholds;
    std::swap(q[0], q[2]);
    core::StoredTensor st;
    st.dtype = core::DType::kF32;
    st.shape = {3};
    for (float x : q)
      for (int b = 0; b < 4; ++b)
        st.bytes.push_back(static_cast<uint8_t>(std::bit_cast<uint32_t>(x) >> (8 * b)));
    f.tensors["stem.codes.thresholds"] = st;
    CHECK_THROWS_WITH(load(f), Contains("stem.codes: expected ascending thresholds"));
  }
  SECTION("weights decoding outside [-128, 127]") {
    core::SafetensorsFile f = good;
    std::vector<int32_t> offset(16, -1);
    offset[3] = 127;
    f.tensors["layer1.0.conv2.weight_offset"] = core::StoredTensor::from_i32({16}, offset);
    CHECK_THROWS_WITH(load(f), Contains("layer1.0.conv2.weight: channel 3"));
    CHECK_THROWS_WITH(load(f), Contains("outside [-128, 127]"));
  }
  SECTION("out of range codes and flags") {
    core::SafetensorsFile f = good;
    f.tensors["layer1.0.conv1.out_levels"] =
        core::StoredTensor::from_u8({4}, std::vector<uint8_t>{0, 1, 2, 4});
    CHECK_THROWS_WITH(load(f),
                      Contains("layer1.0.conv1: expected out_levels < 2^2 (layer1.0.conv2 reads "
                               "2-bit codes), got 4"));
    f = good;
    f.tensors["layer2.0.conv1.descending"] =
        core::StoredTensor::from_u8({32}, std::vector<uint8_t>(32, 2));
    CHECK_THROWS_WITH(load(f), Contains("packed model 'f.bgpk': layer2.0.conv1: "));
  }
}

TEST_CASE("packed model: validate catches inconsistent models", "[kernel][packed]") {
  const PackedResNet good = make_model(20, kW2A2, 8);
  REQUIRE_NOTHROW(good.validate());

  PackedResNet m = good;
  m.stem_weight = core::Tensor({16, 3, 3, 3});
  CHECK_THROWS_WITH(m.validate(), Contains("packed model: stem.weight: expected [16, 1, 3, 3], got "
                                           "[16, 3, 3, 3]"));
  m = good;
  m.stem_weight = core::Tensor();
  CHECK_THROWS_WITH(m.validate(), Contains("got an undefined tensor"));

  m = good;
  m.blocks.pop_back();
  CHECK_THROWS_WITH(m.validate(),
                    Contains("packed model: expected 3 stages of 3 blocks (9 blocks for "
                             "depth 20), got 8 blocks"));
  m = good;
  m.depth = 21;
  CHECK_THROWS_WITH(m.validate(), Contains("expected depth 6n+2"));

  m = good;
  m.blocks[3].downsample = false;
  CHECK_THROWS_WITH(m.validate(), Contains("layer2.0: expected downsample true"));

  m = good;
  m.blocks[3].conv1.spec.stride = 1;
  CHECK_THROWS_WITH(m.validate(), Contains("layer2.0.conv1: expected conv 3x3/s2/p1 16->32 @ 8x8"));

  m = good;
  m.blocks[4].conv2.spec.height = 8;
  CHECK_THROWS_WITH(m.validate(), Contains("layer2.1.conv2: expected conv 3x3/s1/p1 32->32 @ 4x4"));

  m = good;
  m.blocks[1].conv1.name = "layer1.1.conv";
  CHECK_THROWS_WITH(m.validate(),
                    Contains("expected a conv named 'layer1.1.conv1', got 'layer1.1.conv'"));

  m = good;
  m.blocks[0].conv1.weights[5] = 40;
  CHECK_THROWS_WITH(m.validate(),
                    Contains("layer1.0.conv1: expected the weights of each output channel "
                             "to span fewer than 2^2 values, channel 0"));
  m = good;
  m.blocks[0].conv1.weights.pop_back();
  CHECK_THROWS_WITH(m.validate(), Contains("layer1.0.conv1: expected 2304 weights"));

  m = good;
  m.blocks[0].conv2.thresholds = m.blocks[0].conv1.thresholds;
  CHECK_THROWS_WITH(m.validate(), Contains("layer1.0.conv2: expected no thresholds"));

  m = good;
  m.blocks[0].conv1.scale = {1.0f};
  CHECK_THROWS_WITH(m.validate(), Contains("layer1.0.conv1: expected no float tail"));

  m = good;
  m.blocks[0].conv2.bn_scale.pop_back();
  CHECK_THROWS_WITH(m.validate(),
                    Contains("packed model: layer1.0.conv2.bn_scale: expected 16 values, got 15"));

  m = good;
  m.blocks[0].conv2.acc_offset = {1, 2};
  CHECK_THROWS_WITH(m.validate(),
                    Contains("layer1.0.conv2: expected acc_offset empty or of 16 values"));

  m = good;
  m.blocks[0].out_codes.thresholds[1] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(m.validate(), Contains("layer1.0.out: expected thresholds that are not NaN"));

  m = good;
  m.stem_codes.levels.back() = 4;
  CHECK_THROWS_WITH(m.validate(),
                    Contains("stem.codes: expected levels < 2^2 (layer1.0.conv1 reads "
                             "2-bit codes), got 4"));
  m = good;
  m.stem_codes.levels.pop_back();
  CHECK_THROWS_WITH(m.validate(),
                    Contains("stem.codes: expected 2 thresholds (levels - 1), got 3"));

  m = good;
  m.blocks.back().out_codes = m.blocks.front().out_codes;
  CHECK_THROWS_WITH(m.validate(),
                    Contains("layer3.2.out: expected no output codes for the last block"));

  m = good;
  m.blocks[2].conv1.spec.act_bits = 9;
  CHECK_THROWS_WITH(m.validate(), Contains("layer1.2.conv1: "));

  m = good;
  m.fc_weight = core::Tensor({10, 32});
  CHECK_THROWS_WITH(m.validate(),
                    Contains("packed model: fc.weight: expected [10, 64], got [10, 32]"));
}
