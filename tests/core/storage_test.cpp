// storage_test.cpp: Storage's buffer recycling and Tensor::empty (core/tensor.hpp): recycled
// buffers come back zeroed for zero-filled tensors, empty() gives the right shape, layout and
// alignment, handles in flight keep their data when others are dropped, and storage_unshared()
// tracks handles.
#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "core/tensor.hpp"

namespace bitgrad::core {
namespace {

TEST_CASE("Tensor: a recycled large buffer comes back zeroed for zero-filled tensors", "[core]") {
  const Shape big{64, 1024};  // 256 KiB: large enough to be recycled
  for (int round = 0; round < 3; ++round) {
    {
      Tensor dirty = Tensor::empty(big);
      for (float& v : dirty.span()) v = 7.0f;
    }  // freed into the cache
    const Tensor zeros(big);
    bool all_zero = true;
    for (float v : zeros.span()) all_zero = all_zero && v == 0.0f;
    CHECK(all_zero);
  }
}

TEST_CASE("Tensor: empty() is contiguous, aligned and independent of live tensors", "[core]") {
  for (const Shape& s : {Shape{}, Shape{0}, Shape{3, 5}, Shape{16, 16, 33}, Shape{128, 16, 8, 8}}) {
    Tensor a = Tensor::full(s, 1.5f);
    Tensor b = Tensor::empty(s);
    REQUIRE(b.shape() == s);
    CHECK(b.is_contiguous());
    CHECK(reinterpret_cast<uintptr_t>(b.data()) % 64 == 0);
    CHECK_FALSE(b.shares_storage_with(a));
    for (float& v : b.span()) v = -2.0f;
    bool kept = true;
    for (float v : a.span()) kept = kept && v == 1.5f;
    CHECK(kept);
  }
}

TEST_CASE("Tensor: storage_unshared counts handles and views", "[core]") {
  Tensor a = Tensor::zeros(Shape{4, 4});
  CHECK(a.storage_unshared());
  {
    const Tensor view = a.slice(0, 1, 3);
    CHECK_FALSE(a.storage_unshared());
    CHECK_FALSE(view.storage_unshared());
  }
  CHECK(a.storage_unshared());
  CHECK_FALSE(Tensor().storage_unshared());
}

}  // namespace
}  // namespace bitgrad::core
