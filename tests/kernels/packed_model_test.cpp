// packed_model_test.cpp: the .bgpk format (kernels/runtime/packed_model.hpp): FloatQuantizer::code,
// round trips of random but valid ResNet-8/14/20 models (2-bit weights with per-channel or shared
// level tables, odd learned-interval levels, 3-bit APoT-like and 4-bit weights, int16 and int32
// thresholds) through the file image and through a file, bit-exact; the bit order of the level
// indices; the size and MAC counts (a ResNet-32 W2A2 file below 135,000 bytes); and every kind of
// bad input (wrong format or version, bad metadata, missing / extra / mistyped / misshapen tensors,
// truncated or missing files, unsorted thresholds, non-canonical level tables, wrong structure)
// rejected with a message naming the fault.
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
  // Empty: each channel draws from 2^weight_bits consecutive values starting at a random base (so
  // channels differ). Else channel o draws from the first size - o % 3 of these (so rows are
  // padded) when vary, from all of them (one shared level row per layer) otherwise.
  std::vector<int8_t> weight_values = {};
  bool vary = false;
};

const Variant kW2A2{};
// Learned-interval 2-bit weights: odd values, span 7 but 4 levels.
const Variant kOddW2{2, 2, {0, 1, 2, 3}, {-3, -1, 1, 3}};
// 3-bit APoT-like weights, some channels using fewer of them (sharing the layer's level row);
// 4-bit codes of which 8 are used.
const Variant kW3Apot{3, 4, {0, 1, 2, 3, 4, 6, 8, 12}, {-16, -4, -2, -1, 0, 1, 2, 8}, true};
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
    const auto used = static_cast<int>(v.weight_values.size() - (v.vary ? o % 3 : 0));
    std::uniform_int_distribution<int> pick(0, used - 1);
    for (int64_t k = 0; k < spec.depth(); ++k)
      c.weights.push_back(v.weight_values.empty()
                              ? static_cast<int8_t>(b + code(rng))
                              : v.weight_values[static_cast<size_t>(pick(rng))]);
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

core::Json model_meta(const core::SafetensorsFile& f) {
  return core::Json::parse(f.metadata.at("model"));
}

std::vector<int64_t> ints(const core::Json& array) {
  std::vector<int64_t> v;
  for (size_t i = 0; i < array.size(); ++i) v.push_back(array.at(i).as_int64());
  return v;
}

core::Json ints_json(const std::vector<int64_t>& v) {
  core::Json a = core::Json::array();
  for (int64_t x : v) a.push_back(x);
  return a;
}

// f with metadata "model".key replaced.
core::SafetensorsFile with_meta(core::SafetensorsFile f, const std::string& key, core::Json value) {
  core::Json j = model_meta(f);
  j.set(key, std::move(value));
  f.metadata["model"] = j.dump();
  return f;
}

core::StoredTensor f32_stored(std::vector<int64_t> shape, const std::vector<float>& values) {
  core::StoredTensor t;
  t.dtype = core::DType::kF32;
  t.shape = std::move(shape);
  for (float x : values)
    for (int b = 0; b < 4; ++b)
      t.bytes.push_back(static_cast<uint8_t>(std::bit_cast<uint32_t>(x) >> (8 * b)));
  return t;
}

std::vector<float> f32_of(const core::StoredTensor& t) {
  std::vector<float> v(t.bytes.size() / 4);
  for (size_t i = 0; i < v.size(); ++i) {
    uint32_t bits = 0;
    for (size_t b = 4; b-- > 0;) bits = (bits << 8) | t.bytes[4 * i + b];
    v[i] = std::bit_cast<float>(bits);
  }
  return v;
}

// A ResNet-`depth` W2A2 on 32x32x3 as the exporter writes one with learned-interval weights: odd
// levels, input zero points 0 (no acc_offset), no conv bias, thresholds within int16.
PackedResNet exported_like(int depth, uint32_t seed) {
  PackedResNet m = make_model(depth, kOddW2, seed, 3, 32);
  m.source = core::Json::parse(  // what quant/export.cpp writes
      R"({"policy":{"method":"lsq","weight_bits":2,"act_bits":2,"edge":"float","estimator":"ste",)"
      R"("ewgs_delta":0.0010000000474974513,"dsq_alpha":0.20000000298023224,"daq_sigma":1,)"
      R"("daq_temperature":1}})");
  for (PackedBlock& b : m.blocks) {
    b.conv1.acc_offset.clear();
    b.conv2.acc_offset.clear();
    b.conv2.bias.clear();
  }
  return m;
}

// One line per tensor, then the header.
std::string size_breakdown(const core::SafetensorsFile& f, size_t file_bytes) {
  std::string s;
  size_t data = 0;
  for (const auto& [name, t] : f.tensors) {
    s += "\n  " + name + " " + std::string(core::dtype_name(t.dtype)) + " [";
    for (size_t i = 0; i < t.shape.size(); ++i) s += (i ? ", " : "") + std::to_string(t.shape[i]);
    s += "]: " + std::to_string(t.bytes.size()) + " bytes";
    data += t.bytes.size();
  }
  return s + "\n  header (8 + JSON): " + std::to_string(file_bytes - data) +
         " bytes, of which metadata 'model' " + std::to_string(f.metadata.at("model").size());
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
  CHECK(make_model(8, kW3Apot, 1).packed_weight_bytes() == 73728 * 3 / 8);

  // ResNet-20 / -32 W2A2 on 32x32x3 as exported: 267264 / 460800 weights of 2 bits.
  const PackedResNet r20 = exported_like(20, 2), r32 = exported_like(32, 2);
  CHECK(r20.packed_weight_bytes() == 66816);
  CHECK(r32.packed_weight_bytes() == 115200);
  for (const PackedResNet* r : {&r20, &r32}) {
    const core::SafetensorsFile f = to_safetensors(
        *r, "runs/qat/resnet" + std::to_string(r->depth) + "-w2a2-lsq/model.safetensors");
    const size_t file_bytes = core::serialize_safetensors(f).size();
    CHECK(f.tensors.size() == 12);  // no trunk.bias, no trunk.acc_offset
    CHECK(model_meta(f)["threshold_bytes"].as_int64() == 2);
    CHECK(ints(model_meta(f)["level_rows"]) == std::vector<int64_t>(r->blocks.size() * 2, 1));
    if (r->depth == 32) CHECK(file_bytes < 135000);
    WARN("ResNet-" << r->depth << " W2A2 .bgpk: " << file_bytes << " bytes"
                   << size_breakdown(f, file_bytes));
  }
}

TEST_CASE("packed model: round trip through the file image is exact", "[kernel][packed]") {
  struct Case {
    int depth;
    Variant variant;
    int64_t level_rows;  // of layer1.0.conv1: 1 when the layer has at most 2^weight_bits values
  };
  for (const Case& c : {Case{8, kW2A2, 16}, Case{20, kW2A2, 16}, Case{8, kOddW2, 1},
                        Case{14, kW3Apot, 1}, Case{8, kW4Apot, 16}}) {
    INFO("depth " << c.depth << ", weight_bits " << c.variant.weight_bits);
    const PackedResNet m = make_model(c.depth, c.variant, 7);
    REQUIRE_NOTHROW(m.validate());
    const core::SafetensorsFile f = to_safetensors(m, "from test.safetensors");
    CHECK(f.metadata.at("format") == "bitgrad.packed");
    CHECK(f.metadata.at("format_version") == "1");
    CHECK(f.metadata.at("source") == "from test.safetensors");
    std::vector<std::string> names;
    for (const auto& [name, t] : f.tensors) names.push_back(name);
    CHECK(names == std::vector<std::string>{"codes.levels", "codes.thresholds", "fc.bias",
                                            "fc.weight", "stem.bn", "stem.weight",
                                            "trunk.acc_offset", "trunk.bias", "trunk.descending",
                                            "trunk.out_levels", "trunk.tail", "trunk.thresholds",
                                            "trunk.weight_levels", "trunk.weights"});
    const core::Json j = model_meta(f);
    CHECK(j["level_rows"].at(0).as_int64() == c.level_rows);
    CHECK(j["threshold_bytes"].as_int64() == 2);
    CHECK(f.tensors.at("trunk.thresholds").dtype == core::DType::kU8);
    CHECK(j["source"] == m.source);
    const auto blocks = static_cast<size_t>(c.depth - 2) / 2;
    CHECK(j["weight_bits"].size() == 2 * blocks);
    CHECK(j["code_levels"].size() == blocks);
    const PackedResNet back = through_bytes(f);
    check_same(m, back);
  }
}

TEST_CASE("packed model: thresholds beyond int16 are stored as I32", "[kernel][packed]") {
  PackedResNet m = make_model(8, kW2A2, 9);
  Thresholds& t = m.blocks[1].conv1.thresholds;
  REQUIRE(t.descending[0] == 0);
  t.values[0] = -32768;  // channel 0 ascends: the int16 extremes still fit
  t.values[2] = 32767;
  core::SafetensorsFile f = to_safetensors(m, "");
  CHECK(model_meta(f)["threshold_bytes"].as_int64() == 2);
  check_same(m, through_bytes(f));
  t.values[2] = 32768;
  f = to_safetensors(m, "");
  CHECK(model_meta(f)["threshold_bytes"].as_int64() == 4);
  CHECK(f.tensors.at("trunk.thresholds").dtype == core::DType::kI32);
  CHECK(f.tensors.at("trunk.thresholds").shape == std::vector<int64_t>{112 * 3});
  check_same(m, through_bytes(f));
}

TEST_CASE("packed model: level indices are packed LSB first into per-channel level rows",
          "[kernel][packed]") {
  PackedResNet m = make_model(8, kW2A2, 3);
  PackedConv& c = m.blocks[0].conv1;
  const int64_t depth = c.spec.depth();
  // channel 0: values -3, -2, -1, 0, then -3; channel 1 all 5; channel 2 alternates -1, 1.
  for (int64_t k = 0; k < depth; ++k) {
    c.weights[static_cast<size_t>(k)] = static_cast<int8_t>(k < 4 ? k - 3 : -3);
    c.weights[static_cast<size_t>(depth + k)] = 5;
    c.weights[static_cast<size_t>(2 * depth + k)] = static_cast<int8_t>(k % 2 ? 1 : -1);
  }
  const core::SafetensorsFile f = to_safetensors(m, "");
  const std::vector<uint8_t>& w = f.tensors.at("trunk.weights").bytes;
  CHECK(w.size() == 73728 / 4);
  CHECK(w[0] == 0b11100100);  // indices 0, 1, 2, 3 from the lowest bits up
  CHECK(w[1] == 0);
  CHECK(w[36] == 0);           // channel 1 starts at 144 * 2 / 8 bytes: index 0 only
  CHECK(w[72] == 0b01000100);  // channel 2: indices 0, 1, 0, 1
  const std::vector<uint8_t>& levels = f.tensors.at("trunk.weight_levels").bytes;
  CHECK(std::vector<uint8_t>(levels.begin(), levels.begin() + 12) ==
        std::vector<uint8_t>{0xfd, 0xfe, 0xff, 0x00, 5, 5, 5, 5, 0xff, 1, 1, 1});
  // layer1.0.conv2 starts on the next byte after conv1's 576, its table after conv1's 16 rows.
  const PackedConv& c2 = m.blocks[0].conv2;
  std::vector<int8_t> row(c2.weights.begin(), c2.weights.begin() + depth);
  std::sort(row.begin(), row.end());
  row.erase(std::unique(row.begin(), row.end()), row.end());
  REQUIRE(row.size() == 4);
  uint8_t first = 0;
  for (int k = 0; k < 4; ++k)
    first |= static_cast<uint8_t>(
        (std::lower_bound(row.begin(), row.end(), c2.weights[static_cast<size_t>(k)]) - row.begin())
        << (2 * k));
  CHECK(w[576] == first);
  CHECK(static_cast<int8_t>(levels[16 * 4]) == row[0]);
  CHECK(static_cast<int8_t>(levels[16 * 4 + 3]) == row[3]);
  check_same(m, through_bytes(f));

  // Odd levels: one row for the layer, also for a channel that uses only two of them.
  PackedResNet odd = make_model(8, kOddW2, 3);
  for (int64_t k = 0; k < depth; ++k)
    odd.blocks[0].conv1.weights[static_cast<size_t>(k)] = static_cast<int8_t>(k % 2 ? 1 : -1);
  const core::SafetensorsFile g = to_safetensors(odd, "");
  CHECK(ints(model_meta(g)["level_rows"]) == std::vector<int64_t>{1, 1, 1, 1, 1, 1});
  CHECK(g.tensors.at("trunk.weight_levels").bytes ==
        std::vector<uint8_t>{0xfd, 0xff, 1, 3, 0xfd, 0xff, 1, 3, 0xfd, 0xff, 1, 3,
                             0xfd, 0xff, 1, 3, 0xfd, 0xff, 1, 3, 0xfd, 0xff, 1, 3});
  CHECK(g.tensors.at("trunk.weights").bytes[0] == 0b10011001);  // indices 1, 2, 1, 2
  check_same(odd, through_bytes(g));
}

TEST_CASE("packed model: all-zero acc_offsets and absent biases are not stored",
          "[kernel][packed]") {
  PackedResNet m = make_model(8, kW2A2, 4);
  m.blocks[0].conv1.acc_offset.assign(16, 0);
  core::SafetensorsFile f = to_safetensors(m, "");
  // conv1 of layer2.0 and layer3.0 (32 + 64), conv2 of layer3.0 (64).
  CHECK(ints(model_meta(f)["acc_offset"]) == std::vector<int64_t>{0, 0, 1, 0, 1, 1});
  CHECK(f.tensors.at("trunk.acc_offset").shape == std::vector<int64_t>{160});
  CHECK(ints(model_meta(f)["bias"]) == std::vector<int64_t>{0, 1, 0});
  PackedResNet back = through_bytes(f);
  CHECK(back.blocks[0].conv1.acc_offset.empty());
  m.blocks[0].conv1.acc_offset.clear();
  check_same(m, back);

  for (PackedBlock& b : m.blocks) {
    b.conv1.acc_offset.clear();
    b.conv2.acc_offset.clear();
    b.conv2.bias.clear();
  }
  f = to_safetensors(m, "");
  CHECK_FALSE(f.contains("trunk.acc_offset"));
  CHECK_FALSE(f.contains("trunk.bias"));
  check_same(m, through_bytes(f));
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
  REQUIRE_NOTHROW(load(good));

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
    // Another depth implies other array lengths.
    CHECK_THROWS_WITH(load(with_meta(good, "depth", 14)),
                      Contains("packed model 'f.bgpk': metadata 'model'.act_bits: expected an "
                               "array of 12 integers (one per conv), got 6 values"));
    CHECK_THROWS_WITH(load(with_meta(good, "depth", 21)),
                      Contains("metadata 'model'.depth: expected 6n+2 with n >= 1"));
    CHECK_THROWS_WITH(load(with_meta(good, "height", 0)),
                      Contains("metadata 'model'.height: expected an integer in 1.."));
    CHECK_THROWS_WITH(load(with_meta(good, "code_levels", "four")),
                      Contains("metadata 'model'.code_levels: expected an array of 3 integers "
                               "(stem, then every block but the last), got \"four\""));
    CHECK_THROWS_WITH(load(with_meta(good, "code_levels", ints_json({4, 4, 300}))),
                      Contains("metadata 'model'.code_levels[2]: expected an integer in 1..256, "
                               "got 300"));
    CHECK_THROWS_WITH(load(with_meta(good, "level_rows", ints_json({16, 5, 32, 32, 64, 64}))),
                      Contains("metadata 'model'.level_rows[1]: expected 1 or 16 (the output "
                               "channels of layer1.0.conv2), got 5"));
    CHECK_THROWS_WITH(load(with_meta(good, "threshold_bytes", 3)),
                      Contains("metadata 'model'.threshold_bytes: expected 2 or 4, got 3"));
    CHECK_THROWS_WITH(load(with_meta(good, "acc_offset", ints_json({1, 0, 1, 0, 1, 2}))),
                      Contains("metadata 'model'.acc_offset[5]: expected an integer in 0..1"));
    core::Json j = model_meta(good);
    core::Json::Object members = j.as_object();
    std::erase_if(members, [](const core::Json::Member& kv) { return kv.first == "weight_bits"; });
    core::Json without = core::Json::object();
    for (auto& [key, value] : members) without.set(key, value);
    f = good;
    f.metadata["model"] = without.dump();
    CHECK_THROWS_WITH(load(f), Contains("metadata 'model': missing 'weight_bits'"));
  }
  SECTION("metadata that does not match the tensors") {
    CHECK_THROWS_WITH(
        load(with_meta(good, "level_rows", ints_json({1, 16, 32, 32, 64, 64}))),
        Contains("trunk.weight_levels: expected U8 [" + std::to_string(112 * 2 * 4 - 15 * 4) +
                 "], file has U8 [" + std::to_string(112 * 2 * 4) + "]"));
    CHECK_THROWS_WITH(load(with_meta(good, "bias", ints_json({1, 1, 0}))),
                      Contains("trunk.bias: expected F32 [48], file has F32 [32]"));
    CHECK_THROWS_WITH(load(with_meta(good, "bias", ints_json({0, 0, 0}))),
                      Contains("1 unexpected tensor for a depth-8 packed ResNet with this 'model' "
                               "metadata: [trunk.bias]"));
    CHECK_THROWS_WITH(load(with_meta(good, "threshold_bytes", 4)),
                      Contains("trunk.thresholds: expected I32 [336], file has U8 [336, 2]"));
    CHECK_THROWS_WITH(load(with_meta(good, "weight_bits", ints_json({3, 2, 2, 2, 2, 2}))),
                      Contains("trunk.weights: expected U8 [18720], file has U8 [18432]"));
    CHECK_THROWS_WITH(load(with_meta(good, "out_bits", ints_json({2, 3, 2}))),
                      Contains("trunk.thresholds: expected U8 [464, 2], file has U8 [336, 2]"));
  }
  SECTION("missing tensors") {
    for (const char* name :
         {"stem.weight", "stem.bn", "codes.thresholds", "codes.levels", "trunk.weights",
          "trunk.weight_levels", "trunk.thresholds", "trunk.descending", "trunk.out_levels",
          "trunk.tail", "trunk.bias", "trunk.acc_offset", "fc.weight", "fc.bias"}) {
      INFO(name);
      core::SafetensorsFile f = good;
      REQUIRE(f.tensors.erase(name) == 1);
      CHECK_THROWS_WITH(load(f), Contains("1 missing tensor: [" + std::string(name) + "]"));
    }
  }
  SECTION("extra tensor") {
    core::SafetensorsFile f = good;
    f.tensors["layer1.0.conv1.weight"] = good.tensors.at("trunk.out_levels");
    CHECK_THROWS_WITH(load(f), Contains("1 unexpected tensor for a depth-8 packed ResNet with "
                                        "this 'model' metadata: [layer1.0.conv1.weight]"));
  }
  SECTION("wrong dtype") {
    core::SafetensorsFile f = good;
    f.tensors["trunk.tail"] = core::StoredTensor::from_i32({112, 4}, std::vector<int32_t>(448));
    CHECK_THROWS_WITH(
        load(f), Contains("f.bgpk': trunk.tail: expected F32 [112, 4], file has I32 [112, 4]"));
    f = good;
    f.tensors["trunk.acc_offset"] = f32_stored({176}, std::vector<float>(176));
    CHECK_THROWS_WITH(load(f),
                      Contains("trunk.acc_offset: expected I32 [176], file has F32 [176]"));
  }
  SECTION("wrong shape") {
    core::SafetensorsFile f = good;
    f.tensors["trunk.weights"].shape = {18431};
    f.tensors["trunk.weights"].bytes.resize(18431);
    CHECK_THROWS_WITH(load(f), Contains("trunk.weights: expected U8 [18432], file has U8 [18431]"));
    f = good;
    f.tensors["stem.bn"].shape = {16, 3};
    CHECK_THROWS_WITH(load(f), Contains("stem.bn: expected F32 [3, 16], file has F32 [16, 3]"));
    f = good;
    f.tensors["codes.levels"] = core::StoredTensor::from_u8({11}, std::vector<uint8_t>(11));
    CHECK_THROWS_WITH(load(f), Contains("codes.levels: expected U8 [12], file has U8 [11]"));
  }
  SECTION("truncated image") {
    const std::vector<uint8_t> bytes = core::serialize_safetensors(good);
    const std::vector<uint8_t> cut(bytes.begin(), bytes.end() - 100);
    CHECK_THROWS_WITH(core::parse_safetensors(cut, "cut.bgpk"), Contains("cut.bgpk"));
  }
  SECTION("unsorted thresholds") {
    core::SafetensorsFile f = good;
    REQUIRE(m.blocks[0].conv1.thresholds.descending[0] == 0);
    f.tensors["trunk.thresholds"].bytes[0] = 0xe8;  // channel 0 of layer1.0.conv1: int16 1000
    f.tensors["trunk.thresholds"].bytes[1] = 0x03;
    CHECK_THROWS_WITH(load(f),
                      Contains("packed model 'f.bgpk': layer1.0.conv1: expected the thresholds "
                               "of channel 0 in ascending order, got "));
    f = good;  // stem.codes, then layer1.0.out, layer2.0.out
    std::vector<float> q = f32_of(good.tensors.at("codes.thresholds"));
    std::swap(q[0], q[2]);
    f.tensors["codes.thresholds"] = f32_stored({9}, q);
    CHECK_THROWS_WITH(load(f), Contains("stem.codes: expected ascending thresholds"));
    q = f32_of(good.tensors.at("codes.thresholds"));
    q[4] = std::numeric_limits<float>::quiet_NaN();
    f.tensors["codes.thresholds"] = f32_stored({9}, q);
    CHECK_THROWS_WITH(load(f), Contains("layer1.0.out: expected thresholds that are not NaN"));
  }
  SECTION("level tables that are not canonical") {
    core::SafetensorsFile f = good;  // per-channel rows
    std::vector<uint8_t>& levels = f.tensors["trunk.weight_levels"].bytes;
    levels[16 * 4 + 4 + 1] = levels[16 * 4 + 4];  // layer1.0.conv2, channel 1: a repeat, then more
    CHECK_THROWS_WITH(load(f), Contains("packed model 'f.bgpk': trunk.weight_levels: "
                                        "layer1.0.conv2 channel 1: expected distinct ascending "
                                        "values, unused entries repeating the last, got ["));
    const core::SafetensorsFile odd = to_safetensors(make_model(8, kOddW2, 6), "");
    f = odd;  // one row per conv
    std::swap(f.tensors["trunk.weight_levels"].bytes[4], f.tensors["trunk.weight_levels"].bytes[5]);
    CHECK_THROWS_WITH(load(f), Contains("trunk.weight_levels: layer1.0.conv2 (one row for every "
                                        "channel): expected distinct ascending values, unused "
                                        "entries repeating the last, got [-1, -3, 1, 3]"));
  }
  SECTION("out of range codes and flags") {
    core::SafetensorsFile f = good;
    std::vector<uint8_t> out_levels = good.tensors.at("trunk.out_levels").bytes;
    out_levels[3] = 4;
    f.tensors["trunk.out_levels"] = core::StoredTensor::from_u8({12}, out_levels);
    CHECK_THROWS_WITH(load(f),
                      Contains("layer1.0.conv1: expected out_levels < 2^2 (layer1.0.conv2 reads "
                               "2-bit codes), got 4"));
    f = good;
    f.tensors["trunk.descending"].bytes[0] ^= 1;  // layer1.0.conv1, channel 0 ascends
    CHECK_THROWS_WITH(load(f), Contains("packed model 'f.bgpk': layer1.0.conv1: expected the "
                                        "thresholds of channel 0 in descending order"));
    f = good;
    f.tensors["codes.levels"].bytes[3] = 4;  // the last stem level
    CHECK_THROWS_WITH(load(f), Contains("stem.codes: expected levels < 2^2"));
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
                    Contains("layer1.0.conv1: expected at most 2^2 distinct weight values in each "
                             "output channel (weight_bits indices), channel 0 has 5"));
  m = good;  // a span of 7 is fine: 4 levels
  for (size_t k = 0; k < 4; ++k) m.blocks[0].conv1.weights[k] = static_cast<int8_t>(-3 + 2 * k);
  for (size_t k = 4; k < m.blocks[0].conv1.weights.size(); ++k) m.blocks[0].conv1.weights[k] = 1;
  CHECK_NOTHROW(m.validate());
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
