// safetensors.cpp: validating safetensors reader, writer (layout matching the reference Rust
// writer) and the dtype conversions of StoredTensor, including float32 <-> float16.
#include "core/safetensors.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <tuple>
#include <utility>

#include "core/error.hpp"
#include "core/file_io.hpp"
#include "core/json.hpp"

namespace bitgrad::core {

namespace {

// A header longer than this is certainly corrupt (real headers are kilobytes); refusing it early
// avoids allocating whatever a damaged length field claims.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr std::string_view kMetadataKey = "__metadata__";

// Explicit little-endian loads/stores, correct on any host byte order.
template <typename U>
U load_le(const uint8_t* p) {
  U v = 0;
  for (size_t i = 0; i < sizeof(U); ++i) v = static_cast<U>(v | (static_cast<U>(p[i]) << (8 * i)));
  return v;
}

template <typename U>
void store_le(uint8_t* p, U v) {
  for (size_t i = 0; i < sizeof(U); ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

// IEEE 754 binary32 -> binary16, round to nearest, ties to even. Overflow gives +-inf; NaN stays a
// (quiet) NaN with the top payload bits kept.
uint16_t f32_to_f16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const auto sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t exp = (x >> 23) & 0xFFu;
  uint32_t mant = x & 0x7FFFFFu;
  if (exp == 0xFF) {
    if (mant == 0) return static_cast<uint16_t>(sign | 0x7C00u);
    return static_cast<uint16_t>(sign | 0x7C00u | 0x0200u | (mant >> 13));
  }
  const int e = static_cast<int>(exp) - 127 + 15;
  if (e >= 31) return static_cast<uint16_t>(sign | 0x7C00u);
  if (e <= 0) {
    // Half subnormal: value = m * 2^-24 with m = M >> (14 - e), M the 24-bit significand.
    if (e < -10) return sign;  // below half the smallest subnormal: rounds to zero
    mant |= 0x800000u;
    const auto shift = static_cast<uint32_t>(14 - e);
    uint32_t m = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    // Round to nearest even; a carry into bit 10 correctly gives the smallest normal.
    if (rem > half || (rem == half && (m & 1u))) ++m;
    return static_cast<uint16_t>(sign | m);
  }
  auto h = static_cast<uint16_t>(sign | (static_cast<uint32_t>(e) << 10) | (mant >> 13));
  const uint32_t rem = mant & 0x1FFFu;
  // A carry out of the mantissa bumps the exponent, and 0x7BFF + 1 is correctly +inf.
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return h;
}

// IEEE 754 binary16 -> binary32, exact.
float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  const uint32_t mant = h & 0x3FFu;
  if (exp == 0) {
    const float magnitude = std::ldexp(static_cast<float>(mant), -24);  // zero or subnormal
    return std::bit_cast<float>(std::bit_cast<uint32_t>(magnitude) | sign);
  }
  if (exp == 31) return std::bit_cast<float>(sign | 0x7F800000u | (mant << 13));
  return std::bit_cast<float>(sign | ((exp - 15 + 127) << 23) | (mant << 13));
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

// numel * element_size in bytes, or nullopt for negative dimensions or uint64 overflow.
std::optional<uint64_t> byte_size(const std::vector<int64_t>& shape, size_t element_size) {
  uint64_t n = element_size;
  bool zero = false;
  bool overflow = false;
  for (const int64_t d : shape) {
    if (d < 0) return std::nullopt;
    if (d == 0) zero = true;
    const auto ud = static_cast<uint64_t>(d);
    if (overflow || ud == 0) continue;
    if (n > std::numeric_limits<uint64_t>::max() / ud) {
      overflow = true;
    } else {
      n *= ud;
    }
  }
  if (zero) return 0;  // [0, huge, huge] is a valid empty tensor
  if (overflow) return std::nullopt;
  return n;
}

void check_consistent(const StoredTensor& t, std::string_view where) {
  const auto need = byte_size(t.shape, dtype_size(t.dtype));
  check_lazy(need.has_value() && *need == t.bytes.size(), [&] {
    return std::string(where) + ": dtype " + std::string(dtype_name(t.dtype)) + " and shape " +
           shape_string(t.shape) + " need " +
           (need ? std::to_string(*need) : "an invalid number of") + " bytes, found " +
           std::to_string(t.bytes.size());
  });
}

template <typename T, typename U>
StoredTensor from_integers(DType dtype, std::vector<int64_t> shape, std::span<const T> values,
                           std::string_view fn) {
  StoredTensor out;
  out.dtype = dtype;
  out.shape = std::move(shape);
  const auto need = byte_size(out.shape, 1);
  check_lazy(need.has_value() && *need == values.size(), [&] {
    return "StoredTensor::" + std::string(fn) + ": shape " + shape_string(out.shape) + " needs " +
           (need ? std::to_string(*need) : "a non-negative number of") + " values, got " +
           std::to_string(values.size());
  });
  out.bytes.resize(values.size() * sizeof(T));
  for (size_t i = 0; i < values.size(); ++i) {
    store_le<U>(out.bytes.data() + i * sizeof(T), static_cast<U>(values[i]));
  }
  return out;
}

// Data order of the reference writer: dtype descending in its enum order (U8 < F16 < I32 < F32 <
// I64 for ours, which also keeps every tensor naturally aligned), then name.
int writer_rank(DType d) {
  switch (d) {
    case DType::kU8: return 0;
    case DType::kF16: return 1;
    case DType::kI32: return 2;
    case DType::kF32: return 3;
    case DType::kI64: return 4;
  }
  return 0;
}

// A non-negative int64 from a header number, or nullopt.
std::optional<uint64_t> non_negative_integer(const Json& v) {
  if (!v.is_integer()) return std::nullopt;
  const int64_t i = v.as_int64();
  if (i < 0) return std::nullopt;
  return static_cast<uint64_t>(i);
}

[[noreturn]] void fail_with(const std::string& where, const std::string& what) {
  throw Error(where + what);
}

struct Entry {
  std::string name;
  uint64_t begin = 0;
  uint64_t end = 0;
};

}  // namespace

Tensor StoredTensor::to_tensor() const {
  check_consistent(*this, "StoredTensor::to_tensor");
  Tensor t{Shape(shape)};
  float* out = t.data();
  const uint8_t* in = bytes.data();
  const auto n = static_cast<size_t>(t.numel());
  switch (dtype) {
    case DType::kF32:
      for (size_t i = 0; i < n; ++i) out[i] = std::bit_cast<float>(load_le<uint32_t>(in + 4 * i));
      break;
    case DType::kF16:
      for (size_t i = 0; i < n; ++i) out[i] = f16_to_f32(load_le<uint16_t>(in + 2 * i));
      break;
    case DType::kI32:
      for (size_t i = 0; i < n; ++i) {
        out[i] = static_cast<float>(static_cast<int32_t>(load_le<uint32_t>(in + 4 * i)));
      }
      break;
    case DType::kI64:
      for (size_t i = 0; i < n; ++i) {
        out[i] = static_cast<float>(static_cast<int64_t>(load_le<uint64_t>(in + 8 * i)));
      }
      break;
    case DType::kU8:
      for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(in[i]);
      break;
  }
  return t;
}

StoredTensor StoredTensor::from_tensor(const Tensor& t) {
  const std::vector<float> values = t.to_vector();
  StoredTensor out;
  out.dtype = DType::kF32;
  out.shape = t.shape().to_vector();
  out.bytes.resize(values.size() * 4);
  for (size_t i = 0; i < values.size(); ++i) {
    store_le<uint32_t>(out.bytes.data() + 4 * i, std::bit_cast<uint32_t>(values[i]));
  }
  return out;
}

StoredTensor StoredTensor::from_tensor_f16(const Tensor& t) {
  const std::vector<float> values = t.to_vector();
  StoredTensor out;
  out.dtype = DType::kF16;
  out.shape = t.shape().to_vector();
  out.bytes.resize(values.size() * 2);
  for (size_t i = 0; i < values.size(); ++i) {
    store_le<uint16_t>(out.bytes.data() + 2 * i, f32_to_f16(values[i]));
  }
  return out;
}

StoredTensor StoredTensor::from_i64(std::vector<int64_t> shape, std::span<const int64_t> values) {
  return from_integers<int64_t, uint64_t>(DType::kI64, std::move(shape), values, "from_i64");
}

StoredTensor StoredTensor::from_i32(std::vector<int64_t> shape, std::span<const int32_t> values) {
  return from_integers<int32_t, uint32_t>(DType::kI32, std::move(shape), values, "from_i32");
}

StoredTensor StoredTensor::from_u8(std::vector<int64_t> shape, std::span<const uint8_t> values) {
  return from_integers<uint8_t, uint8_t>(DType::kU8, std::move(shape), values, "from_u8");
}

Tensor SafetensorsFile::tensor(const std::string& name) const {
  const auto it = tensors.find(name);
  if (it == tensors.end()) {
    std::string have;
    size_t listed = 0;
    for (const auto& [key, value] : tensors) {
      if (listed == 10) {
        have += ", ...";
        break;
      }
      have += (listed++ == 0 ? "" : ", ") + key;
    }
    throw Error("safetensors: no tensor named '" + name + "' (" + std::to_string(tensors.size()) +
                " tensors: " + (have.empty() ? "none" : have) + ")");
  }
  return it->second.to_tensor();
}

SafetensorsFile parse_safetensors(std::span<const uint8_t> bytes, std::string_view origin) {
  const std::string where = "safetensors '" + std::string(origin) + "': ";

  if (bytes.size() < 8) {
    fail_with(where, "file is " + std::to_string(bytes.size()) +
                         " bytes, shorter than the 8-byte header length field");
  }
  const uint64_t header_len = load_le<uint64_t>(bytes.data());
  if (header_len > kMaxHeaderBytes) {
    fail_with(where, "header length " + std::to_string(header_len) + " exceeds the limit of " +
                         std::to_string(kMaxHeaderBytes) +
                         " bytes (corrupt or not a safetensors file)");
  }
  if (header_len > bytes.size() - 8) {
    fail_with(where, "header length " + std::to_string(header_len) +
                         " runs past the end of the file (" + std::to_string(bytes.size()) +
                         " bytes)");
  }
  const std::string_view header_text(reinterpret_cast<const char*>(bytes.data() + 8),
                                     static_cast<size_t>(header_len));
  Json header;
  try {
    header = Json::parse(header_text);
  } catch (const Error& e) {
    fail_with(where, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) {
    fail_with(where,
              "header must be a JSON object, found " + std::string(Json::type_name(header.type())));
  }

  const std::span<const uint8_t> data = bytes.subspan(8 + static_cast<size_t>(header_len));
  SafetensorsFile file;
  std::vector<Entry> entries;
  for (const auto& [name, value] : header.as_object()) {
    if (name == kMetadataKey) {
      if (!value.is_object()) {
        fail_with(where, "\"__metadata__\" must be an object of strings, found " +
                             std::string(Json::type_name(value.type())));
      }
      for (const auto& [key, text] : value.as_object()) {
        if (!text.is_string()) {
          fail_with(where, "\"__metadata__\" value of '" + key + "' must be a string, found " +
                               std::string(Json::type_name(text.type())));
        }
        file.metadata.emplace(key, text.as_string());
      }
      continue;
    }
    const std::string tensor = "tensor '" + name + "': ";
    if (!value.is_object()) {
      fail_with(where, tensor + "entry must be an object, found " +
                           std::string(Json::type_name(value.type())));
    }
    for (const char* field : {"dtype", "shape", "data_offsets"}) {
      if (!value.contains(field)) fail_with(where, tensor + "missing \"" + field + "\"");
    }

    StoredTensor stored;
    const Json& dtype = value["dtype"];
    if (!dtype.is_string()) {
      fail_with(where, tensor + "\"dtype\" must be a string, found " +
                           std::string(Json::type_name(dtype.type())));
    }
    const auto parsed_dtype = dtype_from_name(dtype.as_string());
    if (!parsed_dtype) {
      fail_with(where, tensor + "unknown dtype '" + dtype.as_string() +
                           "' (supported: F32, F16, I32, I64, U8)");
    }
    stored.dtype = *parsed_dtype;

    const Json& shape = value["shape"];
    if (!shape.is_array()) {
      fail_with(where, tensor + "\"shape\" must be an array, found " +
                           std::string(Json::type_name(shape.type())));
    }
    for (size_t i = 0; i < shape.size(); ++i) {
      const auto d = non_negative_integer(shape.at(i));
      if (!d || *d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        fail_with(where, tensor + "shape entry " + std::to_string(i) + " is " + shape.at(i).dump() +
                             ", expected a non-negative integer");
      }
      stored.shape.push_back(static_cast<int64_t>(*d));
    }

    const Json& offsets = value["data_offsets"];
    std::optional<uint64_t> begin, end;
    if (offsets.is_array() && offsets.size() == 2) {
      begin = non_negative_integer(offsets.at(0));
      end = non_negative_integer(offsets.at(1));
    }
    if (!begin || !end) {
      fail_with(where,
                tensor + "\"data_offsets\" must be two non-negative integers [begin, end], found " +
                    offsets.dump());
    }
    if (*begin > *end) {
      fail_with(where, tensor + "\"data_offsets\" " + offsets.dump() + " has begin > end");
    }
    if (*end > data.size()) {
      fail_with(where, tensor + "\"data_offsets\" " + offsets.dump() +
                           " end past the data section of " + std::to_string(data.size()) +
                           " bytes");
    }
    const auto need = byte_size(stored.shape, dtype_size(stored.dtype));
    if (!need || *need != *end - *begin) {
      fail_with(where, tensor + "\"data_offsets\" " + offsets.dump() + " span " +
                           std::to_string(*end - *begin) + " bytes but dtype " + dtype.as_string() +
                           " and shape " + shape_string(stored.shape) + " need " +
                           (need ? std::to_string(*need) : "more than 2^64") + " bytes");
    }
    stored.bytes.assign(data.begin() + static_cast<std::ptrdiff_t>(*begin),
                        data.begin() + static_cast<std::ptrdiff_t>(*end));
    entries.push_back({name, *begin, *end});
    file.tensors.emplace(name, std::move(stored));  // names are unique: the JSON parser checks
  }

  // The data section must be covered exactly: sorted by offset, each tensor starts where the
  // previous one ended, and the last one ends at the end of the file.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  uint64_t cursor = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : entries) {
    if (e.begin < cursor) {
      fail_with(where, "tensors '" + previous->name + "' [" + std::to_string(previous->begin) +
                           ", " + std::to_string(previous->end) + ") and '" + e.name + "' [" +
                           std::to_string(e.begin) + ", " + std::to_string(e.end) +
                           ") overlap in the data section");
    }
    if (e.begin > cursor) {
      fail_with(where, "gap in the data section: bytes [" + std::to_string(cursor) + ", " +
                           std::to_string(e.begin) + ") before tensor '" + e.name +
                           "' belong to no tensor");
    }
    cursor = e.end;
    previous = &e;
  }
  if (cursor != data.size()) {
    fail_with(where, "data section has " + std::to_string(data.size() - cursor) +
                         " trailing bytes not covered by any tensor (covered " +
                         std::to_string(cursor) + " of " + std::to_string(data.size()) + ")");
  }
  return file;
}

SafetensorsFile read_safetensors(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file(path);
  return parse_safetensors(bytes, path);
}

std::vector<uint8_t> serialize_safetensors(const SafetensorsFile& file) {
  std::vector<std::pair<const std::string*, const StoredTensor*>> order;
  for (const auto& [name, stored] : file.tensors) {
    check_lazy(name != kMetadataKey, [] {
      return std::string("serialize_safetensors: a tensor cannot be named \"__metadata__\"");
    });
    check_consistent(stored, "serialize_safetensors: tensor '" + name + "'");
    order.emplace_back(&name, &stored);
  }
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return writer_rank(a.second->dtype) > writer_rank(b.second->dtype);  // names already sorted
  });

  Json header = Json::object();
  if (!file.metadata.empty()) {
    Json meta = Json::object();
    for (const auto& [key, value] : file.metadata) meta.set(key, value);
    header.set(std::string(kMetadataKey), std::move(meta));
  }
  uint64_t offset = 0;
  for (const auto& [name, stored] : order) {
    Json shape = Json::array();
    for (const int64_t d : stored->shape) shape.push_back(d);
    const uint64_t end = offset + stored->bytes.size();
    header.set(*name, Json::object()
                          .set("dtype", dtype_name(stored->dtype))
                          .set("shape", std::move(shape))
                          .set("data_offsets", Json::array({Json(offset), Json(end)})));
    offset = end;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-byte aligned

  std::vector<uint8_t> out(8 + text.size() + offset);
  store_le<uint64_t>(out.data(), text.size());
  std::memcpy(out.data() + 8, text.data(), text.size());
  uint8_t* dst = out.data() + 8 + text.size();
  for (const auto& [name, stored] : order) {
    if (!stored->bytes.empty()) std::memcpy(dst, stored->bytes.data(), stored->bytes.size());
    dst += stored->bytes.size();
  }
  return out;
}

void write_safetensors(const std::string& path, const SafetensorsFile& file) {
  write_file_atomic(path, serialize_safetensors(file));
}

}  // namespace bitgrad::core
