// safetensors.hpp: reading and writing the safetensors format (the checkpoint format of bitgrad and
// of PyTorch/Hugging Face): 8-byte little-endian header length N, N bytes of JSON header
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__":
// {"key": "string value"}}, then the raw little-endian data. Supported dtypes: F32, F16, I32, I64, U8.
// Reading validates everything (header length, JSON, dtypes, shapes, offsets in bounds, no overlap,
// no gaps, sizes = numel * dtype size) and throws bitgrad::Error naming the file and the fault; it
// never crashes on a malformed file. Writing goes to "<path>.tmp.<pid>.<n>" and renames, so a failed write never
// leaves a half-written file.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.hpp"
#include "core/tensor.hpp"

namespace bitgrad::core {

// One stored tensor: its dtype, shape and raw little-endian bytes.
struct StoredTensor {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;  // numel * dtype_size(dtype) bytes

  // Converts to a float32 Tensor (F16 -> F32 exactly; integers -> nearest float).
  Tensor to_tensor() const;
  // F32 copy of a Tensor (any layout).
  static StoredTensor from_tensor(const Tensor& t);
  // Typed stores for integer data (labels, counters such as BN's num_batches_tracked).
  static StoredTensor from_i64(std::vector<int64_t> shape, std::span<const int64_t> values);
  static StoredTensor from_i32(std::vector<int64_t> shape, std::span<const int32_t> values);
  static StoredTensor from_u8(std::vector<int64_t> shape, std::span<const uint8_t> values);
  // Float32 -> F16 (round to nearest even) store, for compact fixtures.
  static StoredTensor from_tensor_f16(const Tensor& t);
};

struct SafetensorsFile {
  std::map<std::string, std::string> metadata;  // "__metadata__": string keys to string values
  std::map<std::string, StoredTensor> tensors;  // by name

  // The named tensor as float32; throws Error listing the missing name when absent.
  Tensor tensor(const std::string& name) const;
  bool contains(const std::string& name) const { return tensors.count(name) != 0; }
};

// Parses a whole file image. `origin` (a path) is used in error messages.
SafetensorsFile parse_safetensors(std::span<const uint8_t> bytes, std::string_view origin);
// Reads and parses; throws Error when the file is missing, unreadable or malformed.
SafetensorsFile read_safetensors(const std::string& path);
// The file image (header padded with spaces to a multiple of 8 bytes, as the reference writer does).
std::vector<uint8_t> serialize_safetensors(const SafetensorsFile& file);
// Writes atomically (temporary file + rename); throws Error when the directory is not writable.
void write_safetensors(const std::string& path, const SafetensorsFile& file);

}  // namespace bitgrad::core
