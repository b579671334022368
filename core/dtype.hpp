// dtype.hpp: element types that can be stored in files (safetensors). In memory, Tensor is always
// float32; other dtypes exist only at the file boundary and are converted on load.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace bitgrad::core {

enum class DType { kF32, kF16, kI32, kI64, kU8 };

// Size of one element in bytes.
size_t dtype_size(DType dtype);
// The safetensors spelling: "F32", "F16", "I32", "I64", "U8".
std::string_view dtype_name(DType dtype);
// Parses a safetensors spelling; nullopt for anything else.
std::optional<DType> dtype_from_name(std::string_view name);

}  // namespace bitgrad::core
