// shape.cpp: Shape construction, validation and printing.
#include "core/shape.hpp"

#include "core/error.hpp"

namespace bitgrad::core {

Shape::Shape(std::initializer_list<int64_t> dims)
    : Shape(std::span<const int64_t>(dims.begin(), dims.size())) {}

Shape::Shape(std::span<const int64_t> dims) {
  check_lazy(dims.size() <= static_cast<size_t>(kMaxRank), [&] {
    return "Shape: expected at most " + std::to_string(kMaxRank) + " dimensions, got " +
           std::to_string(dims.size());
  });
  rank_ = static_cast<int>(dims.size());
  for (int i = 0; i < rank_; ++i) {
    check_lazy(dims[static_cast<size_t>(i)] >= 0, [&] {
      return "Shape: expected non-negative dimensions, got " +
             std::to_string(dims[static_cast<size_t>(i)]) + " at axis " + std::to_string(i);
    });
    dims_[static_cast<size_t>(i)] = dims[static_cast<size_t>(i)];
  }
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < rank_; ++i) n *= dims_[static_cast<size_t>(i)];
  return n;
}

int Shape::axis(int i) const {
  const int a = i < 0 ? i + rank_ : i;
  check_lazy(a >= 0 && a < rank_, [&] {
    return "Shape: axis " + std::to_string(i) + " out of range for rank " + std::to_string(rank_) +
           " shape " + to_string();
  });
  return a;
}

std::string Shape::to_string() const {
  std::string s = "[";
  for (int i = 0; i < rank_; ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(dims_[static_cast<size_t>(i)]);
  }
  return s + "]";
}

bool operator==(const Shape& a, const Shape& b) {
  if (a.rank_ != b.rank_) return false;
  for (int i = 0; i < a.rank_; ++i)
    if (a.dims_[static_cast<size_t>(i)] != b.dims_[static_cast<size_t>(i)]) return false;
  return true;
}

std::array<int64_t, kMaxRank> contiguous_strides(const Shape& shape) {
  std::array<int64_t, kMaxRank> strides{};
  int64_t s = 1;
  for (int i = shape.rank() - 1; i >= 0; --i) {
    strides[static_cast<size_t>(i)] = s;
    s *= shape[i];
  }
  return strides;
}

}  // namespace bitgrad::core
