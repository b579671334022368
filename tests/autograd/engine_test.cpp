// engine_test.cpp: the reverse-mode engine (autograd/backward.cpp) through the public API: fan-out
// accumulation, accumulation across passes, NoGradGuard, custom ops built with make_node, detach,
// one-shot graphs, shape-error messages, and a chain deep enough to break a recursive engine.
#include <catch2/catch.hpp>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "autograd/ops.hpp"
#include "core/error.hpp"
#include "core/tensor_ops.hpp"
#include "test_util.hpp"

namespace bitgrad::autograd {
namespace {

using test::error_message;

Variable leaf(const Shape& shape, std::initializer_list<float> v, bool requires_grad = true) {
  return Variable(Tensor::from(shape, v), requires_grad);
}

void check_values(const Tensor& t, const std::vector<float>& expected) {
  REQUIRE(t.defined());
  const std::vector<float> got = t.to_vector();
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == Approx(expected[i]).margin(1e-6));
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// A straight-through sign: forward sign(x), backward passes g where |x| <= 1 (the clipped STE).
// `calls` counts how often its backward runs.
Variable ste_sign(const Variable& x, std::shared_ptr<int> calls) {
  Tensor y = core::map(x.value(), [](float v) { return v >= 0.0f ? 1.0f : -1.0f; });
  return make_node(std::move(y), {x}, "ste_sign",
                   [vx = x.value(), calls](const Tensor& g,
                                           const std::vector<bool>& needs) -> std::vector<Tensor> {
                     ++*calls;
                     REQUIRE(needs.size() == 1);
                     return {core::zip(g, vx, "ste_sign", [](float gv, float xv) {
                       return std::fabs(xv) <= 1.0f ? gv : 0.0f;
                     })};
                   });
}

}  // namespace

TEST_CASE("engine: a value used twice gets both contributions (x*x + x -> 2x + 1)", "[grad]") {
  const Variable x = leaf({3}, {-1.5f, 0.0f, 2.0f});
  const Variable y = x * x + x;
  y.backward(Tensor::ones({3}));
  check_values(x.grad(), {-2.0f, 1.0f, 5.0f});

  // A diamond: both branches read the same intermediate.
  const Variable a = leaf({2}, {1.0f, 3.0f});
  const Variable h = a * 2.0f;
  sum(h * h + h).backward();  // d/da = (2h + 1) * 2
  check_values(a.grad(), {(2 * 2.0f + 1) * 2, (2 * 6.0f + 1) * 2});
}

TEST_CASE("engine: gradients accumulate across backward calls until zero_grad", "[grad]") {
  Variable x = leaf({2}, {1.0f, -2.0f});
  CHECK_FALSE(x.grad().defined());
  sum(x * 3.0f).backward();
  check_values(x.grad(), {3, 3});
  sum(x * x).backward();  // a new graph over the same leaf
  check_values(x.grad(), {3 + 2 * 1.0f, 3 + 2 * -2.0f});
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
  sum(x).backward();
  check_values(x.grad(), {1, 1});

  // backward() on a leaf seeds its own gradient.
  Variable s = leaf({}, {5.0f});
  s.backward();
  s.backward();
  check_values(s.grad(), {2});
}

TEST_CASE("engine: inputs without requires_grad get no gradient", "[grad]") {
  const Variable x = leaf({2}, {1, 2});
  const Variable c = leaf({2}, {3, 4}, false);
  sum(x * c).backward();
  check_values(x.grad(), {3, 4});
  CHECK_FALSE(c.grad().defined());
  const Variable d = c * c;
  CHECK_FALSE(d.requires_grad());
  CHECK(d.node() == nullptr);
}

TEST_CASE("engine: NoGradGuard builds no graph and restores grad mode", "[grad]") {
  const Variable x = leaf({2}, {1, 2});
  CHECK(grad_enabled());
  {
    NoGradGuard guard;
    CHECK_FALSE(grad_enabled());
    const Variable y = x * x + x;
    CHECK_FALSE(y.requires_grad());
    CHECK(y.node() == nullptr);
    check_values(y.value(), {2, 6});
    {
      NoGradGuard nested;
      CHECK_FALSE(grad_enabled());
    }
    CHECK_FALSE(grad_enabled());  // the inner guard restores the outer state, not "on"
  }
  CHECK(grad_enabled());
  const Variable z = x * x;
  CHECK(z.requires_grad());
  REQUIRE(z.node() != nullptr);
  CHECK(z.node()->name == "mul");
}

TEST_CASE("engine: a custom make_node op gets its own backward called", "[grad]") {
  auto calls = std::make_shared<int>(0);
  const Variable x = leaf({5}, {-2.0f, -0.5f, 0.0f, 0.7f, 1.5f});
  const Variable y = ste_sign(x, calls);
  check_values(y.value(), {-1, -1, 1, 1, 1});
  REQUIRE(y.node() != nullptr);
  CHECK(y.node()->name == "ste_sign");
  y.backward(Tensor::from({5}, {1, 2, 3, 4, 5}));
  CHECK(*calls == 1);
  check_values(x.grad(), {0, 2, 3, 4, 0});

  // Inside a larger graph, composed with built-in ops.
  const Variable w = leaf({2}, {0.5f, -3.0f});
  sum(ste_sign(w * 2.0f, calls) * w).backward();
  CHECK(*calls == 2);
  // d/dw [sign(2w) w] with the STE: sign(2w) + w * 2 * [|2w| <= 1]
  check_values(w.grad(), {1 + 0.5f * 2, -1 + 0.0f});
}

TEST_CASE("engine: detach stops gradients", "[grad]") {
  const Variable x = leaf({2}, {2, 3});
  const Variable d = x.detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.is_leaf());
  CHECK(d.value().shares_storage_with(x.value()));
  sum(x * d).backward();
  check_values(x.grad(), {2, 3});  // only the non-detached path

  const Variable y = leaf({1}, {1});
  const Variable through = (y * 2.0f).detach() * y;
  through.backward(Tensor::ones({1}));
  check_values(y.grad(), {2});
}

TEST_CASE("engine: a graph is used once; a second backward raises Error", "[grad]") {
  const Variable x = leaf({2}, {1, 2});
  const Variable loss = sum(x * x);
  loss.backward();
  check_values(x.grad(), {2, 4});
  const std::string msg = error_message([&] { loss.backward(); });
  CHECK(contains(msg, "already used"));
  check_values(x.grad(), {2, 4});  // unchanged by the failed pass
}

TEST_CASE("engine: backward argument errors", "[grad]") {
  const Variable x = leaf({2}, {1, 2});
  const Variable y = x * x;
  CHECK(contains(error_message([&] { y.backward(); }), "[2]"));
  CHECK(contains(error_message([&] { y.backward(Tensor::ones({3})); }), "[3]"));
  // A custom op that returns a gradient of the wrong shape is reported with its name.
  const Variable bad =
      make_node(x.value().clone(), {x}, "bad_op",
                [](const Tensor&, const std::vector<bool>&) -> std::vector<Tensor> {
                  return {Tensor::ones({5})};
                });
  const std::string msg = error_message([&] { bad.backward(Tensor::ones({2})); });
  CHECK(contains(msg, "bad_op"));
  CHECK(contains(msg, "[5]"));
  CHECK(contains(msg, "[2]"));
}

TEST_CASE("engine: shape errors name the op and both shapes", "[grad]") {
  const Variable a = leaf({2, 3}, {1, 2, 3, 4, 5, 6});
  const Variable b = leaf({4}, {1, 2, 3, 4});
  const Variable m = leaf({3, 2}, {1, 2, 3, 4, 5, 6});
  const Variable k = leaf({2, 2}, {1, 2, 3, 4});
  struct Case {
    std::string op;
    std::string other_shape;
    std::function<void()> call;
  };
  const std::vector<Case> cases{
      {"add", "[4]", [&] { (void)add(a, b); }},
      {"sub", "[4]", [&] { (void)sub(a, b); }},
      {"mul", "[4]", [&] { (void)mul(a, b); }},
      {"div", "[4]", [&] { (void)div(a, b); }},
      {"matmul", "[2, 2]", [&] { (void)matmul(a, k); }},
      {"linear", "[3, 2]", [&] { (void)linear(a, m, Variable()); }},
      {"concat", "[3, 2]",
       [&] {
         (void)concat({a, m}, 0);
       }},
      {"mse", "[3, 2]", [&] { (void)mse(a, m); }},
      {"where", "[4]",
       [&] {
         (void)where(Tensor::ones({2, 3}), a, b);
       }},
  };
  for (const Case& c : cases) {
    INFO(c.op);
    const std::string msg = error_message(c.call);
    CHECK(contains(msg, c.op));
    CHECK(contains(msg, "[2, 3]"));
    CHECK(contains(msg, c.other_shape));
  }
  const std::string bias_msg = error_message([&] { (void)linear(a, a, b); });
  CHECK(contains(bias_msg, "linear"));
  CHECK(contains(bias_msg, "[4]"));
  CHECK(contains(error_message([&] { (void)reshape(a, {4, 2}); }), "[2, 3]"));
  CHECK(contains(error_message([&] { (void)pad_channels(a, 1, 1); }), "pad_channels"));
  CHECK(contains(error_message([&] { (void)softmax(a, 2); }), "softmax"));
}

TEST_CASE("engine: a chain of 10,000 ops neither overflows the stack nor loses gradient",
          "[grad]") {
  const Variable x = leaf({2}, {0.5f, -1.0f});
  Variable y = x;
  for (int i = 0; i < 10000; ++i) y = (i % 2 == 0) ? add_scalar(y, 1.0f) : scale(y, 1.0f);
  check_values(y.value(), {5000.5f, 4999.0f});
  y.backward(Tensor::ones({2}));
  check_values(x.grad(), {1, 1});

  // Freeing a deep graph that never ran backward must not recurse either.
  {
    Variable z = x;
    for (int i = 0; i < 10000; ++i) z = add_scalar(z, 1.0f);
    CHECK(z.value().at({0}) == 10000.5f);
    CHECK(z.node() != nullptr);
  }
}

}  // namespace bitgrad::autograd
