// engine_ownership_test.cpp: the engine's in-place gradient accumulation (autograd/backward.cpp)
// never writes into a tensor that someone else still holds: the caller's grad_output, a tensor an
// op hands to several inputs, or a leaf's earlier gradient; and it still sums every contribution.
#include <catch2/catch.hpp>

#include <vector>

#include "autograd/ops.hpp"
#include "core/tensor_ops.hpp"

namespace bitgrad::autograd {
namespace {

Tensor values(std::initializer_list<float> v) {
  return Tensor::from(Shape{static_cast<int64_t>(v.size())}, v);
}

void check_values(const Tensor& t, const std::vector<float>& expected) {
  REQUIRE(t.defined());
  const std::vector<float> got = t.to_vector();
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == expected[i]);
}

TEST_CASE("engine: accumulation leaves the caller's grad_output untouched", "[grad]") {
  // add hands grad_output itself to both inputs: p + p, and q + q for a non-leaf q.
  Variable p(values({1.0f, 2.0f, 3.0f}), true);
  const Tensor g = values({0.5f, -1.0f, 2.0f});
  add(p, p).backward(g);
  check_values(g, {0.5f, -1.0f, 2.0f});
  check_values(p.grad(), {1.0f, -2.0f, 4.0f});

  Variable r(values({1.0f, 2.0f, 3.0f}), true);
  const Variable q = scale(r, 3.0f);
  add(q, q).backward(g);
  check_values(g, {0.5f, -1.0f, 2.0f});
  check_values(r.grad(), {3.0f, -6.0f, 12.0f});
}

TEST_CASE("engine: a shared gradient is not changed by a later accumulation into another input",
          "[grad]") {
  // y = a + b with b = 2a: add gives the same tensor to a (a leaf) and to b (a node). a later gets
  // b's contribution too: a.grad = g + 2g, while the tensor handed out must stay g.
  Variable a(values({1.0f, -1.0f}), true);
  const Variable b = scale(a, 2.0f);
  const Tensor g = values({1.0f, 10.0f});
  add(a, b).backward(g);
  check_values(a.grad(), {3.0f, 30.0f});
  check_values(g, {1.0f, 10.0f});
}

TEST_CASE("engine: a leaf's gradient owns its buffer across passes", "[grad]") {
  Variable p(values({1.0f, 2.0f}), true);
  const Variable y = relu(p);
  Tensor kept;
  {
    const Variable z = scale(p, 1.0f);
    z.backward(values({1.0f, 1.0f}));
    kept = p.grad();  // a handle to the leaf's gradient, held by the caller
  }
  scale(p, 2.0f).backward(values({1.0f, 1.0f}));
  check_values(p.grad(), {3.0f, 3.0f});
  // The first pass's gradient was taken over without a copy; the second pass added in place, which
  // the caller sees through the shared handle, as with any accumulated gradient.
  CHECK(kept.shares_storage_with(p.grad()));
  check_values(y.value(), {1.0f, 2.0f});
}

}  // namespace
}  // namespace bitgrad::autograd
