// aligned.hpp: 64-byte-aligned std::vector storage for packed kernel data. The tiles load whole
// 64-byte (zmm) rows of packed weights, and an unaligned 64-byte load splits across two cache lines.
// For the kernels' baseline translation units only (ISA units include nothing but their tile headers).
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace bitgrad::kernels {

template <typename T>
struct Aligned64Allocator {
  using value_type = T;
  Aligned64Allocator() = default;
  template <typename U>
  explicit Aligned64Allocator(const Aligned64Allocator<U>& /*other*/) {}
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new (n * sizeof(T), std::align_val_t{64}));
  }
  void deallocate(T* p, std::size_t /*n*/) { ::operator delete (p, std::align_val_t{64}); }
  friend bool operator==(const Aligned64Allocator&, const Aligned64Allocator&) { return true; }
};

template <typename T>
using AlignedVector = std::vector<T, Aligned64Allocator<T>>;

}  // namespace bitgrad::kernels
