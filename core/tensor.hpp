// tensor.hpp: Tensor, a float32 n-d array (rank 0..6) with shared, 64-byte-aligned storage.
// A Tensor is a value-semantic *handle*: copies share storage (like a shared_ptr); clone() copies data.
// Views (reshape of a contiguous tensor, transpose, slice) share storage and carry strides + offset.
// Kernels and most ops require is_contiguous(); call contiguous() first. No gradients live here
// (see autograd/variable.hpp), so the deploy path can use Tensor alone.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/shape.hpp"

namespace bitgrad::core {

// Owns one 64-byte-aligned float buffer. Shared by all Tensors viewing it.
// Buffers of 64 KiB and more are recycled: a freed buffer goes to a process-wide, thread-safe cache
// bucketed by size (at most 1 GiB in total), and the next Storage of the same rounded size reuses
// it. A training step allocates the same large activations every step; fresh pages from the OS
// would cost a page fault per 4 KiB on first touch. Memory in the cache is not returned to the OS
// before exit.
class Storage {
 public:
  explicit Storage(int64_t size, bool zero_fill = true);  // zero_fill false: contents unspecified
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  float* data() { return data_; }
  const float* data() const { return data_; }
  int64_t size() const { return size_; }

 private:
  float* data_ = nullptr;
  int64_t size_ = 0;
};

// Bytes held by tensor storage, process-wide (rounded allocation sizes): `live` in Storage objects
// that exist now, `peak_live` the most ever live at once (since start or the last reset), `cached`
// freed large buffers kept for reuse. live + cached is what tensors hold from the OS allocator.
struct StorageStats {
  int64_t live_bytes = 0;
  int64_t peak_live_bytes = 0;
  int64_t cached_bytes = 0;
};
StorageStats storage_stats();
void reset_peak_storage_bytes();  // peak_live := live

class Tensor {
 public:
  using Strides = std::array<int64_t, kMaxRank>;

  Tensor() = default;  // undefined: defined() is false, no storage
  explicit Tensor(const Shape& shape);  // zero-filled, contiguous

  static Tensor zeros(const Shape& shape) { return Tensor(shape); }
  // Contiguous, contents unspecified (not zeroed): only for outputs that are fully overwritten.
  static Tensor empty(const Shape& shape);
  static Tensor ones(const Shape& shape) { return full(shape, 1.0f); }
  static Tensor full(const Shape& shape, float value);
  static Tensor scalar(float value) { return full(Shape{}, value); }
  // Copies values (row-major) into a new tensor; throws Error when values.size() != shape.numel().
  static Tensor from(const Shape& shape, std::span<const float> values);
  static Tensor from(const Shape& shape, std::initializer_list<float> values);
  // A tensor with the same shape as `like`, zero-filled and contiguous.
  static Tensor zeros_like(const Tensor& like) { return Tensor(like.shape()); }

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  int64_t dim(int i) const { return shape_[i]; }
  int64_t numel() const { return shape_.numel(); }
  const Strides& strides() const { return strides_; }
  int64_t offset() const { return offset_; }
  bool is_contiguous() const;
  // True when both handles view the same storage (not necessarily the same elements).
  bool shares_storage_with(const Tensor& other) const { return storage_ == other.storage_; }
  // True when this handle is the only one viewing its storage (so in-place writes are invisible to
  // anyone else). Only meaningful while no other thread copies or drops handles to the storage.
  bool storage_unshared() const { return storage_ != nullptr && storage_.use_count() == 1; }

  // Pointer to element 0 of this view. Element (i0, i1, ...) is at data()[sum(ik * strides()[k])].
  float* data();
  const float* data() const;
  // Contiguous views only: the elements as a span (asserts is_contiguous()).
  std::span<float> span();
  std::span<const float> span() const;

  // Element access with bounds checks (slow; for tests and small tensors).
  float at(std::initializer_list<int64_t> index) const;
  void set(std::initializer_list<int64_t> index, float value);
  // The value of a one-element tensor; throws Error otherwise.
  float item() const;

  // Deep copy into new contiguous storage.
  Tensor clone() const;
  // This tensor if contiguous, else a contiguous copy.
  Tensor contiguous() const;
  // Same elements, new shape; one dimension may be -1 (inferred). A view without copying when
  // contiguous, else a contiguous copy. Throws Error when the element counts differ.
  Tensor reshape(std::initializer_list<int64_t> dims) const;
  Tensor reshape(std::span<const int64_t> dims) const;
  Tensor reshape(const Shape& shape) const { return reshape(shape.dims()); }
  // View with axes a and b swapped.
  Tensor transpose(int a, int b) const;
  // View of [start, end) with step along axis (start/end clamped like Python slicing, step >= 1).
  Tensor slice(int axis, int64_t start, int64_t end, int64_t step = 1) const;

  // In-place: set every element of this view.
  void fill_(float value);
  // In-place: copy src (same shape) into this view.
  void copy_(const Tensor& src);

  // Values as a flat row-major vector (any layout).
  std::vector<float> to_vector() const;
  // Short human-readable form: shape and up to `max_values` leading values.
  std::string to_string(int max_values = 8) const;

 private:
  std::shared_ptr<Storage> storage_;
  Shape shape_;
  Strides strides_{};
  int64_t offset_ = 0;
};

}  // namespace bitgrad::core
