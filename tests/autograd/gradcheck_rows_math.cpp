// gradcheck_rows_math.cpp: the gradient-check rows for autograd/ops/{elementwise, reduce, linalg,
// shape, loss}.cpp (run by gradcheck_test.cpp), plus direct tests of those ops' forward values,
// which a gradient check cannot see (it only checks that backward agrees with forward), and of
// sign, whose gradient is zero.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "autograd/gradcheck.hpp"
#include "core/error.hpp"
#include "core/tensor_ops.hpp"
#include "test_util.hpp"

namespace bitgrad::test {

namespace {

using autograd::Reduction;
using autograd::Variable;
using core::Shape;
using core::Tensor;
using Inputs = std::vector<Variable>;
using Prepare = std::function<void(std::vector<Tensor>&, core::Rng&)>;

// Moves every input value at least `margin` away from each kink (finite differences across a kink
// are meaningless).
Prepare away_from(std::vector<float> kinks, float margin = 0.05f) {
  return [kinks, margin](std::vector<Tensor>& xs, core::Rng&) {
    for (Tensor& x : xs)
      for (float& v : x.span())
        for (float k : kinks)
          if (std::fabs(v - k) < margin) v = v < k ? k - margin : k + margin;
  };
}

// Makes all values of every input distinct and at least `gap` apart (a shuffled ramp), so that max
// has no ties for eps to flip.
Prepare distinct(float gap = 0.05f) {
  return [gap](std::vector<Tensor>& xs, core::Rng& rng) {
    for (Tensor& x : xs) {
      const std::vector<int64_t> perm = rng.permutation(x.numel());
      for (int64_t i = 0; i < x.numel(); ++i)
        x.data()[i] = gap * static_cast<float>(perm[static_cast<size_t>(i)] - x.numel() / 2);
    }
  };
}

// Keeps input `k` away from zero (divisors): |v| in [0.5, 1.5].
Prepare nonzero(size_t k) {
  return [k](std::vector<Tensor>& xs, core::Rng&) {
    for (float& v : xs[k].span()) v = (v < 0.0f ? -1.0f : 1.0f) * (0.5f + std::fabs(v));
  };
}

// A fixed 0/1 mask tensor: element i is 1 when bit (i % 8) of `bits` is set.
Tensor mask(const Shape& shape, unsigned bits) {
  Tensor t(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = (bits >> (i % 8)) & 1u ? 1.0f : 0.0f;
  return t;
}

void add_elementwise_rows(std::vector<GradcheckRow>& rows) {
  using namespace autograd;
  auto binary = [&](const std::string& name, Shape a, Shape b, auto op) {
    rows.push_back({.name = name + " " + a.to_string() + " " + b.to_string(),
                    .input_shapes = {a, b},
                    .f = [op](const Inputs& v) { return op(v[0], v[1]); }});
  };
  auto add_op = [](const Variable& a, const Variable& b) { return add(a, b); };
  auto sub_op = [](const Variable& a, const Variable& b) { return sub(a, b); };
  auto mul_op = [](const Variable& a, const Variable& b) { return mul(a, b); };
  binary("add", {2, 3}, {2, 3}, add_op);
  binary("add", {2, 3, 4}, {3, 1}, add_op);
  binary("add", {2, 3, 4}, {1, 4}, add_op);
  binary("add", {2, 3, 4}, {}, add_op);
  binary("add", {}, {2, 3}, add_op);
  binary("add", {4}, {3, 1}, add_op);
  binary("sub", {2, 3}, {2, 3}, sub_op);
  binary("sub", {2, 3, 4}, {3, 1}, sub_op);
  binary("sub", {1, 4}, {2, 3, 4}, sub_op);
  binary("sub", {2, 3, 4}, {}, sub_op);
  binary("mul", {2, 3}, {2, 3}, mul_op);
  binary("mul", {2, 3, 4}, {3, 1}, mul_op);
  binary("mul", {2, 3, 4}, {4}, mul_op);
  binary("mul", {}, {2, 3, 4}, mul_op);
  binary("mul", {2, 1, 4}, {3, 1}, mul_op);
  for (auto [a, b] : std::vector<std::pair<Shape, Shape>>{{{2, 3}, {2, 3}},
                                                          {{2, 3, 4}, {3, 1}},
                                                          {{2, 3, 4}, {1, 4}},
                                                          {{3, 1}, {2, 3, 4}},
                                                          {{2, 3}, {}}}) {
    rows.push_back({.name = "div " + a.to_string() + " " + b.to_string(),
                    .input_shapes = {a, b},
                    .f = [](const Inputs& v) { return div(v[0], v[1]); },
                    .prepare = nonzero(1)});
  }
  rows.push_back({.name = "operators a+b*c-a/c",
                  .input_shapes = {{2, 3}, {2, 3}, {3}},
                  .f = [](const Inputs& v) { return v[0] + v[1] * v[2] - v[0] / v[2]; },
                  .prepare = nonzero(2)});

  // A variable used twice, and longer chains.
  rows.push_back({.name = "mul(x, x)", .input_shapes = {{2, 3}}, .f = [](const Inputs& v) {
                    return mul(v[0], v[0]);
                  }});
  rows.push_back({.name = "x + x*y", .input_shapes = {{2, 3}, {2, 3}}, .f = [](const Inputs& v) {
                    return v[0] + v[0] * v[1];
                  }});
  rows.push_back({.name = "x + x*y broadcast y",
                  .input_shapes = {{2, 3}, {3}},
                  .f = [](const Inputs& v) { return v[0] + v[0] * v[1]; }});
  rows.push_back({.name = "chain tanh((x+y)*x) * sigmoid(y)",
                  .input_shapes = {{3, 2}, {3, 2}},
                  .f = [](const Inputs& v) { return tanh((v[0] + v[1]) * v[0]) * sigmoid(v[1]); }});
  rows.push_back({.name = "chain sum(exp(x) * y, 1) / 3",
                  .input_shapes = {{2, 4}, {2, 4}},
                  .f = [](const Inputs& v) { return sum(exp(v[0]) * v[1], {1}) * (1.0f / 3.0f); }});
  rows.push_back({.name = "chain linear -> relu -> mean",
                  .input_shapes = {{4, 3}, {5, 3}, {5}},
                  .f = [](const Inputs& v) { return mean(relu(linear(v[0], v[1], v[2])), {0}); },
                  .prepare =
                      [](std::vector<Tensor>& xs, core::Rng&) {
                        // Keep pre-activations away from 0 by using a large positive bias on half.
                        for (int64_t j = 0; j < 5; ++j) xs[2].data()[j] = j % 2 ? 3.0f : -3.0f;
                      }});

  // Scalar ops.
  rows.push_back({.name = "add_scalar", .input_shapes = {{2, 3}}, .f = [](const Inputs& v) {
                    return add_scalar(v[0], 2.5f);
                  }});
  rows.push_back({.name = "x + 1.5f", .input_shapes = {{4}}, .f = [](const Inputs& v) {
                    return v[0] + 1.5f;
                  }});
  rows.push_back({.name = "scale", .input_shapes = {{2, 3}}, .f = [](const Inputs& v) {
                    return scale(v[0], -3.0f);
                  }});
  rows.push_back({.name = "2 * x * 0.5", .input_shapes = {{3}}, .f = [](const Inputs& v) {
                    return 2.0f * v[0] * 0.5f;
                  }});
  rows.push_back(
      {.name = "neg", .input_shapes = {{2, 3}}, .f = [](const Inputs& v) { return neg(v[0]); }});
  rows.push_back({.name = "-x", .input_shapes = {{3}}, .f = [](const Inputs& v) { return -v[0]; }});

  // Unary math on safe ranges.
  rows.push_back({.name = "exp",
                  .input_shapes = {{2, 3}},
                  .f = [](const Inputs& v) { return exp(v[0]); },
                  .lo = -2.0f,
                  .hi = 2.0f});
  rows.push_back({.name = "log",
                  .input_shapes = {{2, 3}},
                  .f = [](const Inputs& v) { return log(v[0]); },
                  .lo = 0.5f,
                  .hi = 3.0f});
  rows.push_back({.name = "sqrt",
                  .input_shapes = {{2, 3}},
                  .f = [](const Inputs& v) { return sqrt(v[0]); },
                  .lo = 0.3f,
                  .hi = 3.0f});
  rows.push_back({.name = "pow 3", .input_shapes = {{2, 3}}, .f = [](const Inputs& v) {
                    return pow(v[0], 3.0f);
                  }});
  rows.push_back({.name = "pow 0.5",
                  .input_shapes = {{2, 3}},
                  .f = [](const Inputs& v) { return pow(v[0], 0.5f); },
                  .lo = 0.3f,
                  .hi = 2.0f});
  rows.push_back({.name = "pow -1.5",
                  .input_shapes = {{2, 3}},
                  .f = [](const Inputs& v) { return pow(v[0], -1.5f); },
                  .lo = 0.5f,
                  .hi = 2.0f});
  rows.push_back({.name = "abs",
                  .input_shapes = {{3, 4}},
                  .f = [](const Inputs& v) { return abs(v[0]); },
                  .prepare = away_from({0.0f})});
  rows.push_back({.name = "sign (zero gradient)",
                  .input_shapes = {{3, 4}},
                  .f = [](const Inputs& v) { return sign(v[0]); },
                  .prepare = away_from({0.0f})});
  rows.push_back({.name = "sign(x) * x",
                  .input_shapes = {{3, 4}},
                  .f = [](const Inputs& v) { return sign(v[0]) * v[0]; },
                  .prepare = away_from({0.0f})});
  rows.push_back({.name = "clamp [-0.5, 0.4]",
                  .input_shapes = {{3, 4}},
                  .f = [](const Inputs& v) { return clamp(v[0], -0.5f, 0.4f); },
                  .prepare = away_from({-0.5f, 0.4f})});
  rows.push_back({.name = "where mask [2, 3], a [2, 3], b [3]",
                  .input_shapes = {{2, 3}, {3}},
                  .f = [](const Inputs& v) {
                    return where(mask({2, 3}, 0b101101u), v[0], v[1]);
                  }});
  rows.push_back({.name = "where mask [3, 1], a [1, 4], b []",
                  .input_shapes = {{1, 4}, {}},
                  .f = [](const Inputs& v) {
                    return where(mask({3, 1}, 0b101u), v[0], v[1]);
                  }});
  rows.push_back(
      {.name = "where(mask, x, x * x)", .input_shapes = {{2, 4}}, .f = [](const Inputs& v) {
         return where(mask({2, 4}, 0b01100101u), v[0], v[0] * v[0]);
       }});

  // Activations.
  rows.push_back({.name = "relu",
                  .input_shapes = {{3, 4}},
                  .f = [](const Inputs& v) { return relu(v[0]); },
                  .prepare = away_from({0.0f})});
  rows.push_back({.name = "leaky_relu 0.1",
                  .input_shapes = {{3, 4}},
                  .f = [](const Inputs& v) { return leaky_relu(v[0], 0.1f); },
                  .prepare = away_from({0.0f})});
  rows.push_back({.name = "leaky_relu default",
                  .input_shapes = {{6}},
                  .f = [](const Inputs& v) { return leaky_relu(v[0]); },
                  .prepare = away_from({0.0f})});
  rows.push_back({.name = "tanh",
                  .input_shapes = {{2, 3}},
                  .f = [](const Inputs& v) { return tanh(v[0]); },
                  .lo = -2.0f,
                  .hi = 2.0f});
  rows.push_back({.name = "sigmoid",
                  .input_shapes = {{2, 3}},
                  .f = [](const Inputs& v) { return sigmoid(v[0]); },
                  .lo = -3.0f,
                  .hi = 3.0f});
}

void add_reduce_rows(std::vector<GradcheckRow>& rows) {
  using namespace autograd;
  const std::vector<std::vector<int>> axis_sets{{}, {0}, {1}, {-1}, {0, 2}, {1, 2}, {0, 1, 2}};
  for (const auto& axes : axis_sets) {
    for (bool keepdim : {false, true}) {
      std::string tag = "[";
      for (size_t i = 0; i < axes.size(); ++i) {
        if (i > 0) tag += ',';
        tag += std::to_string(axes[i]);
      }
      tag += keepdim ? "] keepdim" : "]";
      rows.push_back({.name = "sum " + tag,
                      .input_shapes = {{2, 3, 4}},
                      .f = [axes, keepdim](const Inputs& v) { return sum(v[0], axes, keepdim); }});
      rows.push_back({.name = "mean " + tag,
                      .input_shapes = {{2, 3, 4}},
                      .f = [axes, keepdim](const Inputs& v) { return mean(v[0], axes, keepdim); }});
    }
  }
  rows.push_back({.name = "sum of a scalar", .input_shapes = {{}}, .f = [](const Inputs& v) {
                    return sum(v[0]);
                  }});
  rows.push_back({.name = "mean [0] of [5]", .input_shapes = {{5}}, .f = [](const Inputs& v) {
                    return mean(v[0], {0});
                  }});
  for (int axis : {0, 1, 2, -1}) {
    for (bool keepdim : {false, true}) {
      rows.push_back({.name = "max axis " + std::to_string(axis) + (keepdim ? " keepdim" : ""),
                      .input_shapes = {{2, 3, 4}},
                      .f = [axis, keepdim](const Inputs& v) { return max(v[0], axis, keepdim); },
                      .prepare = distinct()});
    }
  }
  rows.push_back({.name = "max of x * x",
                  .input_shapes = {{3, 4}},
                  .f = [](const Inputs& v) { return max(v[0] * v[0], 1); },
                  .prepare =
                      [](std::vector<Tensor>& xs, core::Rng& rng) {
                        distinct()(xs, rng);
                        for (float& x : xs[0].span())
                          x += 0.02f;  // no +-a pairs with equal squares
                      }});
}

void add_linalg_rows(std::vector<GradcheckRow>& rows) {
  using namespace autograd;
  rows.push_back({.name = "matmul [3, 4] x [4, 2]",
                  .input_shapes = {{3, 4}, {4, 2}},
                  .f = [](const Inputs& v) { return matmul(v[0], v[1]); }});
  rows.push_back({.name = "matmul [1, 5] x [5, 1]",
                  .input_shapes = {{1, 5}, {5, 1}},
                  .f = [](const Inputs& v) { return matmul(v[0], v[1]); }});
  rows.push_back({.name = "matmul(x, x)", .input_shapes = {{3, 3}}, .f = [](const Inputs& v) {
                    return matmul(v[0], v[0]);
                  }});
  rows.push_back({.name = "linear with bias",
                  .input_shapes = {{4, 3}, {2, 3}, {2}},
                  .f = [](const Inputs& v) { return linear(v[0], v[1], v[2]); }});
  rows.push_back({.name = "linear without bias",
                  .input_shapes = {{4, 3}, {2, 3}},
                  .f = [](const Inputs& v) { return linear(v[0], v[1], Variable()); }});
}

void add_shape_rows(std::vector<GradcheckRow>& rows) {
  using namespace autograd;
  rows.push_back({.name = "reshape [2, 3, 4] -> [4, -1]",
                  .input_shapes = {{2, 3, 4}},
                  .f = [](const Inputs& v) {
                    return reshape(v[0], {4, -1});
                  }});
  rows.push_back({.name = "reshape then mul by x", .input_shapes = {{6}}, .f = [](const Inputs& v) {
                    return reshape(v[0], {2, 3}) * reshape(v[0], {2, 3});
                  }});
  rows.push_back({.name = "flatten [2, 3, 2, 2] from 1",
                  .input_shapes = {{2, 3, 2, 2}},
                  .f = [](const Inputs& v) { return flatten(v[0]); }});
  rows.push_back({.name = "flatten [2, 3, 2, 2] from 2",
                  .input_shapes = {{2, 3, 2, 2}},
                  .f = [](const Inputs& v) { return flatten(v[0], 2); }});
  rows.push_back(
      {.name = "concat axis 0", .input_shapes = {{2, 3}, {1, 3}}, .f = [](const Inputs& v) {
         return concat({v[0], v[1]}, 0);
       }});
  rows.push_back({.name = "concat axis 1 of three",
                  .input_shapes = {{2, 3}, {2, 2}, {2, 1}},
                  .f = [](const Inputs& v) {
                    return concat({v[0], v[1], v[2]}, 1);
                  }});
  rows.push_back({.name = "concat axis -1 of [2, 2, 3]",
                  .input_shapes = {{2, 2, 3}, {2, 2, 1}},
                  .f = [](const Inputs& v) {
                    return concat({v[0], v[1]}, -1);
                  }});
  rows.push_back({.name = "concat {x, y, x} axis 0",
                  .input_shapes = {{2, 2}, {1, 2}},
                  .f = [](const Inputs& v) {
                    return concat({v[0], v[1], v[0]}, 0);
                  }});
  rows.push_back({.name = "slice axis 1 step 2",
                  .input_shapes = {{2, 5, 3}},
                  .f = [](const Inputs& v) { return slice(v[0], 1, 0, 5, 2); }});
  rows.push_back({.name = "slice axis -1 [1:4]",
                  .input_shapes = {{3, 5}},
                  .f = [](const Inputs& v) { return slice(v[0], -1, 1, 4); }});
  rows.push_back({.name = "slice negative start step 3",
                  .input_shapes = {{8}},
                  .f = [](const Inputs& v) { return slice(v[0], 0, -7, 8, 3); }});
  rows.push_back({.name = "slice option-A downsample",
                  .input_shapes = {{2, 2, 4, 4}},
                  .f = [](const Inputs& v) { return slice(slice(v[0], 2, 0, 4, 2), 3, 0, 4, 2); }});
  rows.push_back({.name = "pad_channels 1, 2",
                  .input_shapes = {{2, 2, 2, 3}},
                  .f = [](const Inputs& v) { return pad_channels(v[0], 1, 2); }});
  rows.push_back({.name = "pad_channels 0, 1 of a slice",
                  .input_shapes = {{1, 2, 4, 4}},
                  .f = [](const Inputs& v) {
                    return pad_channels(slice(slice(v[0], 2, 0, 4, 2), 3, 0, 4, 2), 0, 1);
                  }});
}

void add_loss_rows(std::vector<GradcheckRow>& rows) {
  using namespace autograd;
  for (int axis : {-1, 0}) {
    rows.push_back({.name = "softmax [3, 4] axis " + std::to_string(axis),
                    .input_shapes = {{3, 4}},
                    .f = [axis](const Inputs& v) { return softmax(v[0], axis); },
                    .lo = -2.0f,
                    .hi = 2.0f});
    rows.push_back({.name = "log_softmax [3, 4] axis " + std::to_string(axis),
                    .input_shapes = {{3, 4}},
                    .f = [axis](const Inputs& v) { return log_softmax(v[0], axis); },
                    .lo = -2.0f,
                    .hi = 2.0f});
  }
  rows.push_back({.name = "softmax [2, 3, 2] axis 1",
                  .input_shapes = {{2, 3, 2}},
                  .f = [](const Inputs& v) { return softmax(v[0], 1); },
                  .lo = -2.0f,
                  .hi = 2.0f});
  rows.push_back({.name = "log_softmax [2, 3, 2] axis 1",
                  .input_shapes = {{2, 3, 2}},
                  .f = [](const Inputs& v) { return log_softmax(v[0], 1); },
                  .lo = -2.0f,
                  .hi = 2.0f});
  const std::vector<int64_t> targets{0, 4, 2, 2};
  for (auto [reduction, label] :
       {std::pair{Reduction::kMean, "mean"}, std::pair{Reduction::kSum, "sum"},
        std::pair{Reduction::kNone, "none"}}) {
    rows.push_back({.name = std::string("cross_entropy ") + label,
                    .input_shapes = {{4, 5}},
                    .f = [targets, reduction](
                             const Inputs& v) { return cross_entropy(v[0], targets, reduction); },
                    .lo = -2.0f,
                    .hi = 2.0f});
  }
  const Tensor teacher = core::Rng(99).uniform_tensor({3, 5}, -3.0f, 3.0f);
  for (float t : {1.0f, 4.0f}) {
    rows.push_back({.name = "kl_div T=" + std::to_string(static_cast<int>(t)),
                    .input_shapes = {{3, 5}},
                    .f = [teacher, t](const Inputs& v) { return kl_div(v[0], teacher, t); },
                    .lo = -3.0f,
                    .hi = 3.0f});
  }
  rows.push_back({.name = "kl_div T=2 of scaled logits",
                  .input_shapes = {{2, 4}},
                  .f = [teacher](const Inputs& v) {
                    return kl_div(v[0] * 2.0f, teacher.slice(0, 0, 2).slice(1, 0, 4), 2.0f);
                  }});
  rows.push_back({.name = "mse", .input_shapes = {{2, 3}, {2, 3}}, .f = [](const Inputs& v) {
                    return mse(v[0], v[1]);
                  }});
  rows.push_back({.name = "mse(x, x * y)", .input_shapes = {{4}, {4}}, .f = [](const Inputs& v) {
                    return mse(v[0], v[0] * v[1]);
                  }});
}

}  // namespace

std::vector<GradcheckRow> gradcheck_rows_math() {
  std::vector<GradcheckRow> rows;
  add_elementwise_rows(rows);
  add_reduce_rows(rows);
  add_linalg_rows(rows);
  add_shape_rows(rows);
  add_loss_rows(rows);
  return rows;
}

// ---- forward values -----------------------------------------------------------------------------

namespace {

using autograd::Variable;

Variable leaf(const Shape& shape, std::initializer_list<float> v, bool requires_grad = true) {
  return Variable(Tensor::from(shape, v), requires_grad);
}

void check_close(const Tensor& t, const std::vector<float>& expected, float tol = 1e-5f) {
  const std::vector<float> got = t.to_vector();
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == Approx(expected[i]).margin(tol));
}

}  // namespace

TEST_CASE("math ops: element-wise forward values", "[grad]") {
  using namespace autograd;
  const Variable a = leaf({2, 2}, {1, -2, 3, -4});
  const Variable b = leaf({2}, {10, 20});
  check_close((a + b).value(), {11, 18, 13, 16});
  check_close((a - b).value(), {-9, -22, -7, -24});
  check_close((a * b).value(), {10, -40, 30, -80});
  check_close((a / b).value(), {0.1f, -0.1f, 0.3f, -0.2f});
  check_close(add_scalar(a, 1).value(), {2, -1, 4, -3});
  check_close(scale(a, 2).value(), {2, -4, 6, -8});
  check_close(neg(a).value(), {-1, 2, -3, 4});
  check_close(abs(a).value(), {1, 2, 3, 4});
  check_close(sign(leaf({3}, {-0.5f, 0, 2})).value(), {-1, 0, 1});
  check_close(clamp(a, -2, 2).value(), {1, -2, 2, -2});
  check_close(relu(a).value(), {1, 0, 3, 0});
  check_close(leaky_relu(a, 0.5f).value(), {1, -1, 3, -2});
  check_close(exp(leaf({2}, {0, 1})).value(), {1, std::exp(1.0f)});
  check_close(log(leaf({2}, {1, std::exp(2.0f)})).value(), {0, 2});
  check_close(sqrt(leaf({2}, {4, 9})).value(), {2, 3});
  check_close(pow(leaf({2}, {2, 3}), 3).value(), {8, 27});
  check_close(tanh(leaf({2}, {0, 1})).value(), {0, std::tanh(1.0f)});
  check_close(sigmoid(leaf({3}, {0, 200, -200})).value(), {0.5f, 1, 0});
  const Tensor cond = Tensor::from({2, 1}, {1, 0});
  check_close(where(cond, a, b).value(), {1, -2, 10, 20});
}

TEST_CASE("math ops: sign has a zero gradient; abs and clamp follow PyTorch at the kinks",
          "[grad]") {
  using namespace autograd;
  const Variable x = leaf({4}, {-1.5f, -0.2f, 0.3f, 2.0f});
  sum(sign(x) * 3.0f).backward();
  REQUIRE(x.grad().defined());
  check_close(x.grad(), {0, 0, 0, 0});

  const Variable z = leaf({3}, {-1, 0, 1});
  sum(abs(z)).backward();
  check_close(z.grad(), {-1, 0, 1});

  const Variable c = leaf({5}, {-2, -1, 0, 1, 2});
  sum(clamp(c, -1, 1)).backward();
  check_close(c.grad(), {0, 1, 1, 1, 0});  // the bounds themselves pass the gradient

  const Variable r = leaf({3}, {-1, 0, 1});
  sum(relu(r)).backward();
  check_close(r.grad(), {0, 0, 1});
}

TEST_CASE("math ops: large tensors take the parallel path with the same results", "[grad]") {
  using namespace autograd;
  const int64_t n = 300007;  // above the parallel threshold, not a multiple of the grain
  const Tensor xa = core::Rng(5).uniform_tensor({n}, -1, 1);
  const Tensor xb = core::Rng(6).uniform_tensor({n}, -1, 1);
  const Variable a(xa, true), b(xb, true);
  const Variable y = relu(a + b) * b;
  const Tensor r = core::Rng(7).uniform_tensor({n}, -1, 1);
  y.backward(r);
  const float* pa = xa.data();
  const float* pb = xb.data();
  const float* pr = r.data();
  int64_t bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float s = pa[i] + pb[i];
    const float expect_y = (s > 0 ? s : 0.0f) * pb[i];
    const float expect_da = s > 0 ? pr[i] * pb[i] : 0.0f;
    const float expect_db = (s > 0 ? pr[i] * pb[i] : 0.0f) + pr[i] * (s > 0 ? s : 0.0f);
    bad += y.value().data()[i] != expect_y;
    bad += std::fabs(a.grad().data()[i] - expect_da) > 1e-6f;
    bad += std::fabs(b.grad().data()[i] - expect_db) > 1e-6f;
  }
  CHECK(bad == 0);
}

TEST_CASE("math ops: reductions and max forward values", "[grad]") {
  using namespace autograd;
  const Variable x = leaf({2, 3}, {1, 5, 3, 7, 2, 7});
  check_close(sum(x).value(), {25});
  CHECK(sum(x).rank() == 0);
  check_close(sum(x, {0}).value(), {8, 7, 10});
  CHECK(sum(x, {1}, true).shape() == Shape{2, 1});
  check_close(mean(x, {1}).value(), {3, 16.0f / 3.0f});
  check_close(mean(x).value(), {25.0f / 6.0f});
  const Variable m = max(x, 1);
  check_close(m.value(), {5, 7});
  CHECK(max(x, 0, true).shape() == Shape{1, 3});
  check_close(max(x, 0).value(), {7, 5, 7});
  // Ties: the gradient goes to the first maximal element.
  m.backward(Tensor::from({2}, {1, 10}));
  check_close(x.grad(), {0, 1, 0, 10, 0, 0});
  CHECK_THROWS_AS(sum(x, {2}), Error);
  CHECK_THROWS_AS(max(x, -3), Error);
}

TEST_CASE("math ops: linear, matmul and shape op forward values", "[grad]") {
  using namespace autograd;
  const Variable x = leaf({2, 3}, {1, 2, 3, 4, 5, 6});
  const Variable w = leaf({2, 3}, {1, 0, -1, 2, 1, 0});
  const Variable bias = leaf({2}, {0.5f, -1});
  check_close(linear(x, w, bias).value(), {-1.5f, 3, -1.5f, 12});
  check_close(linear(x, w, Variable()).value(), {-2, 4, -2, 13});
  check_close(matmul(x, leaf({3, 1}, {1, 1, 1})).value(), {6, 15});

  check_close(reshape(x, {3, -1}).value(), {1, 2, 3, 4, 5, 6});
  CHECK(reshape(x, {3, -1}).shape() == Shape{3, 2});
  CHECK(flatten(leaf({2, 1, 2}, {1, 2, 3, 4})).shape() == Shape{2, 2});
  const Variable c0 = concat({x, leaf({1, 3}, {7, 8, 9})}, 0);
  CHECK(c0.shape() == Shape{3, 3});
  check_close(c0.value(), {1, 2, 3, 4, 5, 6, 7, 8, 9});
  const Variable c1 = concat({x, leaf({2, 1}, {7, 8})}, 1);
  check_close(c1.value(), {1, 2, 3, 7, 4, 5, 6, 8});
  check_close(slice(x, 1, 0, 3, 2).value(), {1, 3, 4, 6});
  check_close(slice(x, 0, 1, 2).value(), {4, 5, 6});
  const Variable p = pad_channels(leaf({1, 1, 1, 2}, {1, 2}), 1, 1);
  CHECK(p.shape() == Shape{1, 3, 1, 2});
  check_close(p.value(), {0, 0, 1, 2, 0, 0});
}

TEST_CASE("math ops: softmax family is stable and matches hand values", "[grad]") {
  using namespace autograd;
  const Variable x = leaf({2, 3}, {1, 2, 3, 1000, 1000, 1000});
  const float e1 = std::exp(1.0f), e2 = std::exp(2.0f), e3 = std::exp(3.0f);
  const float z = e1 + e2 + e3;
  check_close(softmax(x).value(), {e1 / z, e2 / z, e3 / z, 1 / 3.0f, 1 / 3.0f, 1 / 3.0f});
  check_close(log_softmax(x).value(),
              {1 - std::log(z), 2 - std::log(z), 3 - std::log(z), -std::log(3.0f), -std::log(3.0f),
               -std::log(3.0f)},
              1e-4f);
  check_close(softmax(x, 0).value(), {0, 0, 0, 1, 1, 1});
  CHECK(core::all_finite(log_softmax(leaf({2}, {-1e30f, 1e30f})).value()));
}

TEST_CASE("math ops: cross_entropy values, reductions and bad targets", "[grad]") {
  using namespace autograd;
  const Variable logits = leaf({2, 3}, {1, 2, 3, 0, 0, 0});
  const std::vector<int64_t> t{2, 0};
  const float l0 = -(3 - std::log(std::exp(1.0f) + std::exp(2.0f) + std::exp(3.0f)));
  const float l1 = std::log(3.0f);
  check_close(cross_entropy(logits, t, Reduction::kNone).value(), {l0, l1});
  check_close(cross_entropy(logits, t, Reduction::kSum).value(), {l0 + l1});
  check_close(cross_entropy(logits, t).value(), {(l0 + l1) / 2});

  const std::vector<int64_t> bad{0, 3};
  const std::string msg = error_message([&] { (void)cross_entropy(logits, bad); });
  CHECK(msg.find("cross_entropy") != std::string::npos);
  CHECK(msg.find("target 3") != std::string::npos);
  CHECK(msg.find("K = 3") != std::string::npos);
  const std::vector<int64_t> negative{-1, 0};
  CHECK(error_message([&] { (void)cross_entropy(logits, negative); }).find("target -1") !=
        std::string::npos);
  const std::vector<int64_t> short_targets{0};
  CHECK_THROWS_AS(cross_entropy(logits, short_targets), Error);
  CHECK_THROWS_AS(cross_entropy(leaf({3}, {1, 2, 3}), t), Error);
}

TEST_CASE("math ops: kl_div follows the T^2 batchmean convention", "[grad]") {
  using namespace autograd;
  const Tensor teacher = Tensor::from({2, 3}, {2, 0, -1, 0.5f, 0.5f, 3});
  const Variable same(teacher.clone(), true);
  CHECK(kl_div(same, teacher, 4.0f).item() == Approx(0.0f).margin(1e-6));

  Variable s = leaf({2, 3}, {0, 1, 0, -2, 1, 1});
  for (float temp : {1.0f, 4.0f}) {
    double expected = 0.0;
    std::vector<float> grad;
    for (int64_t n = 0; n < 2; ++n) {
      double zp = 0, zq = 0;
      for (int64_t k = 0; k < 3; ++k) {
        zp += std::exp(teacher.at({n, k}) / temp);
        zq += std::exp(s.value().at({n, k}) / temp);
      }
      for (int64_t k = 0; k < 3; ++k) {
        const double p = std::exp(teacher.at({n, k}) / temp) / zp;
        const double q = std::exp(s.value().at({n, k}) / temp) / zq;
        expected += p * std::log(p / q);
        grad.push_back(static_cast<float>(temp / 2.0 * (q - p)));
      }
    }
    expected *= static_cast<double>(temp) * temp / 2.0;
    const Variable loss = kl_div(s, teacher, temp);
    CHECK(loss.item() == Approx(expected).epsilon(1e-4));
    s.zero_grad();
    loss.backward();
    check_close(s.grad(), grad, 1e-5f);
  }
  CHECK_THROWS_AS(kl_div(s, teacher, 0.0f), Error);
  const std::string msg = error_message([&] { (void)kl_div(s, Tensor::zeros({2, 4}), 1.0f); });
  CHECK(msg.find("[2, 3]") != std::string::npos);
  CHECK(msg.find("[2, 4]") != std::string::npos);
}

TEST_CASE("math ops: mse value and gradients on both sides", "[grad]") {
  using namespace autograd;
  const Variable a = leaf({2}, {1, 2});
  const Variable b = leaf({2}, {3, -1});
  const Variable loss = mse(a, b);
  CHECK(loss.item() == Approx((4.0 + 9.0) / 2.0));
  loss.backward();
  check_close(a.grad(), {-2, 3});
  check_close(b.grad(), {2, -3});
}

}  // namespace bitgrad::test
