// safetensors_test.cpp: safetensors round trips (all dtypes, metadata, empty and scalar tensors),
// the exact byte layout of the writer, float16 rounding, every class of malformed file, truncation
// and byte corruption at every position, and atomic writes (file_io.hpp).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.hpp"
#include "core/error.hpp"
#include "core/file_io.hpp"
#include "core/safetensors.hpp"
#include "core/tensor.hpp"
#include "test_util.hpp"

namespace bitgrad::test {
namespace {

namespace fs = std::filesystem;
using core::DType;
using core::SafetensorsFile;
using core::StoredTensor;
using core::Tensor;


std::vector<uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

// A file image: 8-byte little-endian length of `header`, the header, then `data`.
std::vector<uint8_t> make_file(const std::string& header, const std::vector<uint8_t>& data) {
  // Byte by byte: GCC 12 reports a false -Warray-bounds for vector::insert after a sized ctor.
  std::vector<uint8_t> out;
  out.reserve(8 + header.size() + data.size());
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(n >> (8 * i)));
  for (const char c : header) out.push_back(static_cast<uint8_t>(c));
  for (const uint8_t b : data) out.push_back(b);
  return out;
}

std::vector<uint16_t> f16_bits(const StoredTensor& t) {
  REQUIRE(t.dtype == DType::kF16);
  std::vector<uint16_t> out(t.bytes.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<uint16_t>(t.bytes[2 * i] | (t.bytes[2 * i + 1] << 8));
  }
  return out;
}

uint16_t to_f16(float v) { return f16_bits(StoredTensor::from_tensor_f16(Tensor::scalar(v)))[0]; }

float from_f16(uint16_t h) {
  StoredTensor t;
  t.dtype = DType::kF16;
  t.bytes = {static_cast<uint8_t>(h & 0xFF), static_cast<uint8_t>(h >> 8)};
  return t.to_tensor().item();
}

bool same_bits(float a, float b) {
  return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b);
}

// A file exercising every dtype, metadata, an empty tensor and a scalar.
SafetensorsFile sample_file() {
  SafetensorsFile f;
  f.metadata["arch"] = "resnet20";
  f.metadata["note"] = "caf\xC3\xA9 \"quoted\"\n";
  f.tensors["conv1.weight"] =
      StoredTensor::from_tensor(Tensor::from({2, 3}, {1.5f, -2.0f, 0.0f, -0.0f, 1e-40f, 3.25e7f}));
  f.tensors["half"] =
      StoredTensor::from_tensor_f16(Tensor::from({4}, {1.0f, -0.5f, 65504.0f, 0.1f}));
  const std::vector<int32_t> i32 = {-7, 0, std::numeric_limits<int32_t>::max()};
  f.tensors["i32"] = StoredTensor::from_i32({3}, i32);
  const std::vector<int64_t> i64 = {std::numeric_limits<int64_t>::min(), int64_t{1} << 40};
  f.tensors["bn.num_batches_tracked"] = StoredTensor::from_i64({1, 2}, i64);
  const std::vector<uint8_t> u8 = {0, 1, 254, 255};
  f.tensors["packed"] = StoredTensor::from_u8({2, 2}, u8);
  f.tensors["empty"] = StoredTensor::from_tensor(Tensor(core::Shape{0, 3}));
  f.tensors["scalar"] = StoredTensor::from_tensor(Tensor::scalar(3.5f));
  return f;
}

void require_same(const SafetensorsFile& a, const SafetensorsFile& b) {
  REQUIRE(a.metadata == b.metadata);
  REQUIRE(a.tensors.size() == b.tensors.size());
  for (const auto& [name, t] : a.tensors) {
    INFO("tensor " << name);
    REQUIRE(b.contains(name));
    const StoredTensor& u = b.tensors.at(name);
    CHECK(u.dtype == t.dtype);
    CHECK(u.shape == t.shape);
    CHECK(u.bytes == t.bytes);
  }
}

TEST_CASE("dtype: sizes and names", "[safetensors]") {
  CHECK(core::dtype_size(DType::kF32) == 4);
  CHECK(core::dtype_size(DType::kF16) == 2);
  CHECK(core::dtype_size(DType::kI32) == 4);
  CHECK(core::dtype_size(DType::kI64) == 8);
  CHECK(core::dtype_size(DType::kU8) == 1);
  for (const DType d : {DType::kF32, DType::kF16, DType::kI32, DType::kI64, DType::kU8}) {
    CHECK(core::dtype_from_name(core::dtype_name(d)) == d);
  }
  CHECK_FALSE(core::dtype_from_name("BF16").has_value());
  CHECK_FALSE(core::dtype_from_name("f32").has_value());
}

TEST_CASE("safetensors: round trip of every dtype, metadata, empty and scalar tensors",
          "[safetensors]") {
  const SafetensorsFile f = sample_file();
  const std::vector<uint8_t> image = core::serialize_safetensors(f);
  const SafetensorsFile g = core::parse_safetensors(image, "memory");
  require_same(f, g);
  // Serialization is deterministic.
  CHECK(core::serialize_safetensors(g) == image);

  // Conversions to float32.
  const Tensor w = g.tensor("conv1.weight");
  CHECK(w.shape() == core::Shape{2, 3});
  const std::vector<float> wv = w.to_vector();
  const std::vector<float> expect_w = {1.5f, -2.0f, 0.0f, -0.0f, 1e-40f, 3.25e7f};
  for (size_t i = 0; i < wv.size(); ++i) CHECK(same_bits(wv[i], expect_w[i]));
  CHECK(g.tensor("half").to_vector() ==
        std::vector<float>{1.0f, -0.5f, 65504.0f, 0.0999755859375f});
  CHECK(g.tensor("i32").to_vector() == std::vector<float>{-7.0f, 0.0f, 2147483648.0f});
  const Tensor i64 = g.tensor("bn.num_batches_tracked");
  CHECK(i64.shape() == core::Shape{1, 2});
  CHECK(i64.to_vector() == std::vector<float>{-9223372036854775808.0f, 1099511627776.0f});
  CHECK(g.tensor("packed").to_vector() == std::vector<float>{0.0f, 1.0f, 254.0f, 255.0f});
  CHECK(g.tensor("empty").shape() == core::Shape{0, 3});
  CHECK(g.tensor("empty").numel() == 0);
  const Tensor s = g.tensor("scalar");
  CHECK(s.rank() == 0);
  CHECK(s.item() == 3.5f);

  // Through the file system.
  TempDir dir;
  core::write_safetensors(dir.file("model.safetensors"), f);
  require_same(f, core::read_safetensors(dir.file("model.safetensors")));
  CHECK(dir.listing() == std::vector<std::string>{"model.safetensors"});
}

TEST_CASE("safetensors: from_tensor copies any layout as F32", "[safetensors]") {
  const Tensor t = Tensor::from({2, 3}, {1, 2, 3, 4, 5, 6}).transpose(0, 1);
  const StoredTensor st = StoredTensor::from_tensor(t);
  CHECK(st.shape == std::vector<int64_t>{3, 2});
  CHECK(st.to_tensor().to_vector() == std::vector<float>{1, 4, 2, 5, 3, 6});
  // Little-endian bytes: 1.0f is 00 00 80 3F.
  CHECK(std::vector<uint8_t>(st.bytes.begin(), st.bytes.begin() + 4) ==
        std::vector<uint8_t>{0x00, 0x00, 0x80, 0x3F});
  const std::vector<int64_t> three = {1, 2, 3};
  REQUIRE_THROWS_WITH(StoredTensor::from_i64({2, 2}, three),
                      Catch::Contains("shape [2, 2] needs 4 values, got 3"));
  StoredTensor bad = st;
  bad.bytes.pop_back();
  REQUIRE_THROWS_WITH(bad.to_tensor(), Catch::Contains("need 24 bytes, found 23"));
  SafetensorsFile f;
  f.tensors["bad"] = bad;
  REQUIRE_THROWS_WITH(core::serialize_safetensors(f), Catch::Contains("tensor 'bad'"));
}

TEST_CASE("safetensors: exact byte layout of the writer", "[safetensors]") {
  SafetensorsFile f;
  f.metadata["k"] = "v";
  f.tensors["b"] = StoredTensor::from_tensor(Tensor::from({2}, {1.0f, -2.0f}));
  const std::vector<uint8_t> u8 = {1, 2, 3};
  f.tensors["a"] = StoredTensor::from_u8({3}, u8);
  const std::vector<int64_t> i64 = {5};
  f.tensors["c"] = StoredTensor::from_i64({1}, i64);
  const std::vector<int32_t> i32 = {-1};
  f.tensors["d"] = StoredTensor::from_i32({}, i32);

  // As the reference writer does: "__metadata__" first, then data ordered by dtype (I64, F32, I32,
  // F16, U8) and name, header padded with spaces to a multiple of 8 bytes.
  std::string header = R"({"__metadata__":{"k":"v"},)"
                       R"("c":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},)"
                       R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},)"
                       R"("d":{"dtype":"I32","shape":[],"data_offsets":[16,20]},)"
                       R"("a":{"dtype":"U8","shape":[3],"data_offsets":[20,23]}})";
  while (header.size() % 8 != 0) header += ' ';
  const std::vector<uint8_t> data = {
      5, 0, 0, 0, 0, 0, 0, 0,           // c: int64 5
      0, 0, 0x80, 0x3F, 0, 0, 0, 0xC0,  // b: 1.0f, -2.0f
      0xFF, 0xFF, 0xFF, 0xFF,           // d: int32 -1
      1, 2, 3,                          // a
  };
  const std::vector<uint8_t> expected = make_file(header, data);
  CHECK(core::serialize_safetensors(f) == expected);
  CHECK((8 + header.size()) % 8 == 0);

  // The reference writer's smallest outputs: no tensors, with and without metadata.
  CHECK(core::serialize_safetensors({}) == make_file("{}      ", {}));
  SafetensorsFile meta_only;
  meta_only.metadata["framework"] = "pt";
  CHECK(core::serialize_safetensors(meta_only) ==
        make_file(R"({"__metadata__":{"framework":"pt"}}     )", {}));

  // A file laid out differently (no padding, names out of order, no metadata) reads the same.
  const std::string other = R"({"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},)"
                            R"("b":{"shape":[2],"data_offsets":[3,11],"dtype":"F32"}})";
  const std::vector<uint8_t> other_data = {1, 2, 3, 0, 0, 0x80, 0x3F, 0, 0, 0, 0xC0};
  const SafetensorsFile g = core::parse_safetensors(make_file(other, other_data), "other");
  CHECK(g.metadata.empty());
  CHECK(g.tensor("b").to_vector() == std::vector<float>{1.0f, -2.0f});
  CHECK(g.tensors.at("a").bytes == u8);
}

TEST_CASE("safetensors: float16 conversion rounds to nearest even", "[safetensors]") {
  CHECK(to_f16(0.0f) == 0x0000);
  CHECK(to_f16(-0.0f) == 0x8000);
  CHECK(to_f16(1.0f) == 0x3C00);
  CHECK(to_f16(-2.0f) == 0xC000);
  CHECK(to_f16(0.5f) == 0x3800);
  CHECK(to_f16(65504.0f) == 0x7BFF);   // largest finite
  CHECK(to_f16(65519.99f) == 0x7BFF);  // below the midpoint to 65536
  CHECK(to_f16(65520.0f) == 0x7C00);   // the midpoint rounds to even: infinity
  CHECK(to_f16(1e6f) == 0x7C00);
  CHECK(to_f16(-std::numeric_limits<float>::infinity()) == 0xFC00);
  CHECK(to_f16(std::ldexp(1.0f, -14)) == 0x0400);            // smallest normal
  CHECK(to_f16(1023.0f * std::ldexp(1.0f, -24)) == 0x03FF);  // largest subnormal
  CHECK(to_f16(1023.5f * std::ldexp(1.0f, -24)) == 0x0400);  // tie rounds up into the normals
  CHECK(to_f16(std::ldexp(1.0f, -24)) == 0x0001);            // smallest subnormal
  CHECK(to_f16(std::ldexp(1.0f, -25)) == 0x0000);            // tie: to even (zero)
  CHECK(to_f16(-std::ldexp(1.0f, -25)) == 0x8000);
  CHECK(to_f16(std::ldexp(1.5f, -25)) == 0x0001);         // above the tie
  CHECK(to_f16(std::ldexp(3.0f, -25)) == 0x0002);         // 1.5 ulp: tie to even
  CHECK(to_f16(1.0f + std::ldexp(1.0f, -11)) == 0x3C00);  // tie to even (down)
  CHECK(to_f16(1.0f + std::ldexp(3.0f, -11)) == 0x3C02);  // tie to even (up)
  CHECK(to_f16(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)) == 0x3C01);
  CHECK(to_f16(1e-40f) == 0x0000);  // float subnormal
  const uint16_t nan = to_f16(std::numeric_limits<float>::quiet_NaN());
  CHECK((nan & 0x7C00) == 0x7C00);
  CHECK((nan & 0x03FF) != 0);

  CHECK(from_f16(0x0001) == std::ldexp(1.0f, -24));
  CHECK(from_f16(0x03FF) == 1023.0f * std::ldexp(1.0f, -24));
  CHECK(from_f16(0x7BFF) == 65504.0f);
  CHECK(from_f16(0x3555) == 0.333251953125f);
  CHECK(same_bits(from_f16(0x8000), -0.0f));
  CHECK(from_f16(0xFC00) == -std::numeric_limits<float>::infinity());
  CHECK(std::isnan(from_f16(0x7E00)));

  // Every half value survives half -> float -> half; NaNs stay NaNs with sign and payload kept.
  StoredTensor all;
  all.dtype = DType::kF16;
  all.shape = {65536};
  for (uint32_t h = 0; h < 65536; ++h) {
    all.bytes.push_back(static_cast<uint8_t>(h & 0xFF));
    all.bytes.push_back(static_cast<uint8_t>(h >> 8));
  }
  const std::vector<uint16_t> back = f16_bits(StoredTensor::from_tensor_f16(all.to_tensor()));
  int mismatches = 0;
  for (uint32_t h = 0; h < 65536; ++h) {
    const bool is_nan = (h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0;
    const uint16_t expect = is_nan ? static_cast<uint16_t>(h | 0x0200) : static_cast<uint16_t>(h);
    if (back[h] != expect) ++mismatches;
  }
  CHECK(mismatches == 0);
}

// parse_safetensors must throw Error mentioning the file and `fragment`.
void require_bad(const std::vector<uint8_t>& image, const std::string& fragment) {
  REQUIRE_THROWS_WITH(core::parse_safetensors(image, "bad.st"),
                      Catch::Contains("safetensors 'bad.st'") && Catch::Contains(fragment));
}

void require_bad(const std::string& header, size_t data_bytes, const std::string& fragment) {
  INFO("header: " << header);
  require_bad(make_file(header, std::vector<uint8_t>(data_bytes, 0)), fragment);
}

TEST_CASE("safetensors: malformed files raise Error naming the fault", "[safetensors]") {
  const std::string a4 = R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})";
  // Sanity: the building block is valid.
  REQUIRE_NOTHROW(
      core::parse_safetensors(make_file("{" + a4 + "}", std::vector<uint8_t>(4)), "ok"));

  SECTION("file and header length") {
    require_bad(std::vector<uint8_t>{}, "file is 0 bytes, shorter than the 8-byte");
    require_bad(std::vector<uint8_t>{1, 2, 3}, "file is 3 bytes");
    std::vector<uint8_t> huge = make_file("{}", {});
    const uint8_t length_200m[4] = {0x00, 0xC2, 0xEB, 0x0B};  // 200,000,000 little-endian
    std::memcpy(huge.data(), length_200m, 4);
    require_bad(huge, "header length 200000000 exceeds the limit");
    std::vector<uint8_t> all_ones(16, 0xFF);
    require_bad(all_ones, "exceeds the limit");
    std::vector<uint8_t> past = make_file("{}", {});
    past[0] = 3;
    require_bad(past, "header length 3 runs past the end of the file (10 bytes)");
  }
  SECTION("header JSON") {
    require_bad("{\"a\":", 0, "header is not valid JSON");
    require_bad("", 0, "header is not valid JSON");
    require_bad("{} x", 0, "header is not valid JSON");
    require_bad("[1]", 0, "header must be a JSON object, found array");
    require_bad("\"x\"", 0, "header must be a JSON object, found string");
    require_bad("{" + a4 + "," + a4 + "}", 4, "duplicate key 'a'");
  }
  SECTION("entries") {
    require_bad(R"({"a":1})", 0, "tensor 'a': entry must be an object, found number");
    require_bad(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", 4, "tensor 'a': missing \"dtype\"");
    require_bad(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", 4,
                "tensor 'a': missing \"shape\"");
    require_bad(R"({"a":{"dtype":"F32","shape":[1]}})", 4, "tensor 'a': missing \"data_offsets\"");
    require_bad(R"({"a":{"dtype":7,"shape":[1],"data_offsets":[0,4]}})", 4,
                "\"dtype\" must be a string, found number");
    require_bad(R"({"a":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]}})", 2,
                "tensor 'a': unknown dtype 'BF16'");
  }
  SECTION("shapes") {
    require_bad(R"({"a":{"dtype":"F32","shape":4,"data_offsets":[0,16]}})", 16,
                "\"shape\" must be an array, found number");
    require_bad(R"({"a":{"dtype":"F32","shape":[1,-1],"data_offsets":[0,4]}})", 4,
                "shape entry 1 is -1, expected a non-negative integer");
    require_bad(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4,
                "shape entry 0 is 1.5, expected a non-negative integer");
    require_bad(R"({"a":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}})", 8,
                "shape entry 0 is \"2\"");
    require_bad(R"({"a":{"dtype":"U8","shape":[4294967296,4294967296,2],"data_offsets":[0,4]}})", 4,
                "need more than 2^64 bytes");
  }
  SECTION("offsets") {
    for (const char* offsets :
         {"[0]", "[0,4,8]", "[-1,3]", "[0.5,4]", "\"0,4\"", "[0,\"4\"]", "null"}) {
      require_bad(
          std::string(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":)") + offsets + "}}", 4,
          "\"data_offsets\" must be two non-negative integers");
    }
    require_bad(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", 4, "has begin > end");
    require_bad(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4,
                "end past the data section of 4 bytes");
    require_bad(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 4,
                "span 4 bytes but dtype F32 and shape [2] need 8 bytes");
    require_bad(R"({"a":{"dtype":"I64","shape":[],"data_offsets":[0,4]}})", 4,
                "span 4 bytes but dtype I64 and shape [] need 8 bytes");
  }
  SECTION("coverage of the data section") {
    require_bad(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                R"("b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})",
                6, "tensors 'a' [0, 4) and 'b' [2, 6) overlap");
    require_bad(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                R"("b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                4, "overlap");
    require_bad(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                12, "gap in the data section: bytes [4, 8) before tensor 'b'");
    require_bad(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8,
                "gap in the data section: bytes [0, 4)");
    require_bad("{" + a4 + "}", 6, "data section has 2 trailing bytes not covered by any tensor");
    require_bad("{}", 3, "data section has 3 trailing bytes");
  }
  SECTION("metadata") {
    require_bad(R"({"__metadata__":"x"})", 0,
                "\"__metadata__\" must be an object of strings, found string");
    require_bad(R"({"__metadata__":{"k":1}})", 0, "\"__metadata__\" value of 'k' must be a string");
    require_bad(R"({"__metadata__":{"k":"v","k":"w"}})", 0, "duplicate key 'k'");
    // Valid forms: empty file with metadata only, and empty tensors anywhere.
    const SafetensorsFile m =
        core::parse_safetensors(make_file(R"({"__metadata__":{"k":"v"}})", {}), "m");
    CHECK(m.metadata.at("k") == "v");
    CHECK(m.tensors.empty());
    const SafetensorsFile e = core::parse_safetensors(
        make_file(R"({"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},)" + a4 + "}",
                  std::vector<uint8_t>(4)),
        "e");
    CHECK(e.tensors.at("e").bytes.empty());
  }
}

TEST_CASE("safetensors: every truncation and single-byte corruption fails cleanly",
          "[safetensors]") {
  const std::vector<uint8_t> image = core::serialize_safetensors(sample_file());
  REQUIRE(image.size() > 100);
  for (size_t n = 0; n < image.size(); ++n) {
    INFO("truncated to " << n << " of " << image.size() << " bytes");
    REQUIRE_THROWS_AS(core::parse_safetensors(std::span(image.data(), n), "cut"), Error);
  }
  // Corrupting any byte must either still parse or throw Error; never crash or throw anything else.
  int parsed = 0, rejected = 0;
  for (size_t i = 0; i < image.size(); ++i) {
    for (const uint8_t v : {uint8_t{0x00}, uint8_t{0xFF}, uint8_t{'"'}, uint8_t{'9'}}) {
      std::vector<uint8_t> bad = image;
      bad[i] = v;
      try {
        core::parse_safetensors(bad, "fuzz");
        ++parsed;
      } catch (const Error&) {
        ++rejected;
      }
    }
  }
  CHECK(rejected > 0);
  CHECK(parsed > 0);  // data bytes may take any value
}

TEST_CASE("safetensors: missing files and tensors are reported by name", "[safetensors]") {
  TempDir dir;
  REQUIRE_THROWS_WITH(core::read_safetensors(dir.file("absent.safetensors")),
                      Catch::Contains("cannot open '" + dir.file("absent.safetensors") +
                                      "': No such file or directory"));
  REQUIRE_THROWS_WITH(core::read_file(dir.path().string()), Catch::Contains("cannot read"));
  const SafetensorsFile f = sample_file();
  REQUIRE_THROWS_WITH(f.tensor("fc.weight"), Catch::Contains("no tensor named 'fc.weight'") &&
                                                 Catch::Contains("conv1.weight"));
  CHECK_FALSE(f.contains("fc.weight"));
  CHECK(f.contains("half"));
}

TEST_CASE("file_io: atomic writes replace or leave nothing", "[safetensors]") {
  TempDir dir;
  const std::string path = dir.file("ckpt.safetensors");

  SECTION("a new file is created and an existing one replaced") {
    core::write_file_atomic(path, bytes_of("first version, longer"));
    CHECK(core::read_file(path) == bytes_of("first version, longer"));
    core::write_file_atomic(path, bytes_of("second"));
    CHECK(core::read_file(path) == bytes_of("second"));
    core::write_file_atomic(path, {});
    CHECK(core::read_file(path).empty());
    CHECK(dir.listing() == std::vector<std::string>{"ckpt.safetensors"});  // no temporaries left

    SafetensorsFile f = sample_file();
    core::write_safetensors(path, f);
    f.tensors.erase("half");
    core::write_safetensors(path, f);
    require_same(f, core::read_safetensors(path));
    CHECK(dir.listing() == std::vector<std::string>{"ckpt.safetensors"});
  }
  SECTION("writing into a missing directory throws and creates nothing") {
    const std::string missing = dir.file("no/such/dir/ckpt.safetensors");
    REQUIRE_THROWS_WITH(core::write_safetensors(missing, sample_file()),
                        Catch::Contains("cannot write '" + missing + "'") &&
                            Catch::Contains("No such file or directory"));
    CHECK_FALSE(fs::exists(dir.path() / "no"));
    CHECK(dir.listing().empty());
  }
  SECTION("a failed rename removes the temporary and keeps the target") {
    // The target is a non-empty directory: the data is written, then rename() fails.
    fs::create_directories(dir.path() / "target" / "inside");
    REQUIRE_THROWS_WITH(core::write_file_atomic(dir.file("target"), bytes_of("data")),
                        Catch::Contains("rename failed"));
    CHECK(dir.listing() == std::vector<std::string>{"target"});
    CHECK(fs::is_directory(dir.path() / "target" / "inside"));
  }
}

}  // namespace
}  // namespace bitgrad::test
