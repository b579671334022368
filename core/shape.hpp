// shape.hpp: Shape, the dimensions of a tensor (rank 0 to 6), with value semantics.
// Row-major throughout bitgrad: the last dimension is contiguous. Not here: strides (see tensor.hpp).
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <vector>

namespace bitgrad::core {

inline constexpr int kMaxRank = 6;

class Shape {
 public:
  Shape() = default;  // rank 0: a scalar with one element
  Shape(std::initializer_list<int64_t> dims);
  explicit Shape(std::span<const int64_t> dims);
  explicit Shape(const std::vector<int64_t>& dims) : Shape(std::span<const int64_t>(dims)) {}

  int rank() const { return rank_; }
  int64_t numel() const;
  // Dimension i; negative i counts from the end (-1 is the last). Throws Error when out of range.
  int64_t operator[](int i) const { return dims_[static_cast<size_t>(axis(i))]; }
  int64_t& operator[](int i) { return dims_[static_cast<size_t>(axis(i))]; }
  // Normalises a possibly negative axis into [0, rank); throws Error when out of range.
  int axis(int i) const;
  std::span<const int64_t> dims() const { return {dims_.data(), static_cast<size_t>(rank_)}; }
  std::vector<int64_t> to_vector() const { return {dims_.begin(), dims_.begin() + rank_}; }

  // "[2, 3, 4]"
  std::string to_string() const;
  friend bool operator==(const Shape& a, const Shape& b);

 private:
  std::array<int64_t, kMaxRank> dims_{};
  int rank_ = 0;
};

// Row-major (contiguous) strides of a shape, in elements.
std::array<int64_t, kMaxRank> contiguous_strides(const Shape& shape);

}  // namespace bitgrad::core
