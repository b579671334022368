// norm_pool_test.cpp: batch_norm's statistics and running-stat updates against hand computation,
// eval mode, shape errors; pooling/upsampling output shapes and hand-computed examples. (Gradients
// are checked by the gradcheck table, gradcheck_rows_nn.cpp.)
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "autograd/ops.hpp"
#include "core/error.hpp"

namespace bitgrad::autograd {
namespace {

using Catch::Matchers::Contains;

void check_values(const Tensor& t, const std::vector<float>& want, float tol = 1e-5f) {
  REQUIRE(t.numel() == static_cast<int64_t>(want.size()));
  const std::vector<float> got = t.to_vector();
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("element " << i);
    CHECK(got[i] == Approx(want[i]).margin(tol));
  }
}

TEST_CASE("batch_norm training normalises with batch statistics and updates running stats",
          "[norm]") {
  // x [2, 2, 1, 2]: channel 0 holds {1, 3, 5, 7} (mean 4, biased var 5, unbiased 20/3),
  // channel 1 holds {2, 2, 4, 8} (mean 4, biased var 6, unbiased 8).
  const Variable x(Tensor::from(Shape{2, 2, 1, 2}, {1, 3, 2, 2, 5, 7, 4, 8}), true);
  const Variable gamma(Tensor::from(Shape{2}, {2.0f, 0.5f}), true);
  const Variable beta(Tensor::from(Shape{2}, {1.0f, -1.0f}), true);
  Tensor running_mean = Tensor::zeros(Shape{2});
  Tensor running_var = Tensor::ones(Shape{2});
  const Variable y = batch_norm(x, gamma, beta, running_mean, running_var, {});

  check_values(running_mean, {0.1f * 4.0f, 0.1f * 4.0f});
  check_values(running_var, {0.9f + 0.1f * 20.0f / 3.0f, 0.9f + 0.1f * 8.0f});
  const float s0 = 2.0f / std::sqrt(5.0f + 1e-5f), s1 = 0.5f / std::sqrt(6.0f + 1e-5f);
  check_values(y.value(), {-3 * s0 + 1, -1 * s0 + 1, -2 * s1 - 1, -2 * s1 - 1,  //
                           1 * s0 + 1, 3 * s0 + 1, 0 * s1 - 1, 4 * s1 - 1});

  // A second step moves the running statistics again from where the first left them.
  batch_norm(x, gamma, beta, running_mean, running_var, {});
  check_values(running_mean, {0.9f * 0.4f + 0.4f, 0.9f * 0.4f + 0.4f});

  // Backward: dbeta = sum(g), dgamma = sum(g * xhat), and sum(dx) = 0 per channel in training.
  y.backward(Tensor::ones(y.shape()));
  check_values(beta.grad(), {4.0f, 4.0f});
  check_values(gamma.grad(), {0.0f, 0.0f}, 1e-4f);
  check_values(x.grad(), std::vector<float>(8, 0.0f), 1e-4f);
}

TEST_CASE("batch_norm on [N, C] uses the same statistics per column", "[norm]") {
  // Column 0: {1, 2, 3, 6} mean 3, biased var 3.5, unbiased 14/3; column 1: all 5 (var 0).
  const Variable x(Tensor::from(Shape{4, 2}, {1, 5, 2, 5, 3, 5, 6, 5}));
  const Variable gamma(Tensor::ones(Shape{2}));
  const Variable beta(Tensor::zeros(Shape{2}));
  Tensor running_mean = Tensor::zeros(Shape{2});
  Tensor running_var = Tensor::ones(Shape{2});
  const Variable y = batch_norm(x, gamma, beta, running_mean, running_var, {});
  check_values(running_mean, {0.3f, 0.5f});
  check_values(running_var, {0.9f + 0.1f * 14.0f / 3.0f, 0.9f});
  const float is = 1.0f / std::sqrt(3.5f + 1e-5f);
  check_values(y.value(), {-2 * is, 0, -1 * is, 0, 0, 0, 3 * is, 0});
}

TEST_CASE("batch_norm in eval mode uses and keeps the running statistics", "[norm]") {
  const Variable x(Tensor::from(Shape{1, 2, 1, 2}, {3, 5, 0, 1}), true);
  const Variable gamma(Tensor::from(Shape{2}, {2.0f, 1.0f}), true);
  const Variable beta(Tensor::from(Shape{2}, {0.5f, 0.0f}), true);
  Tensor running_mean = Tensor::from(Shape{2}, {1.0f, -1.0f});
  Tensor running_var = Tensor::from(Shape{2}, {4.0f, 0.25f});
  BatchNormOptions opt;
  opt.training = false;
  opt.eps = 0.0f;
  const Variable y = batch_norm(x, gamma, beta, running_mean, running_var, opt);
  check_values(y.value(), {2 * (3 - 1) / 2.0f + 0.5f, 2 * (5 - 1) / 2.0f + 0.5f, (0 + 1) / 0.5f,
                           (1 + 1) / 0.5f});
  check_values(running_mean, {1.0f, -1.0f});
  check_values(running_var, {4.0f, 0.25f});
  // Eval backward is the affine map: dx = g * gamma / sqrt(running_var).
  y.backward(Tensor::ones(y.shape()));
  check_values(x.grad(), {1.0f, 1.0f, 2.0f, 2.0f});
  check_values(gamma.grad(), {(2.0f + 4.0f) / 2.0f, (1.0f + 2.0f) / 0.5f});
}

TEST_CASE("batch_norm rejects bad shapes", "[norm]") {
  const Variable gamma(Tensor::ones(Shape{3}));
  const Variable beta(Tensor::zeros(Shape{3}));
  Tensor rm = Tensor::zeros(Shape{3});
  Tensor rv = Tensor::ones(Shape{3});
  CHECK_THROWS_WITH(batch_norm(Variable(Tensor(Shape{2, 3, 4})), gamma, beta, rm, rv, {}),
                    Contains("[2, 3, 4]"));
  CHECK_THROWS_WITH(batch_norm(Variable(Tensor(Shape{2, 4, 2, 2})), gamma, beta, rm, rv, {}),
                    Contains("gamma") && Contains("[2, 4, 2, 2]"));
  Tensor rm_bad = Tensor::zeros(Shape{2});
  CHECK_THROWS_WITH(batch_norm(Variable(Tensor(Shape{2, 3, 2, 2})), gamma, beta, rm_bad, rv, {}),
                    Contains("running_mean"));
  CHECK_THROWS_WITH(batch_norm(Variable(Tensor(Shape{1, 3})), gamma, beta, rm, rv, {}),
                    Contains("more than one value per channel"));
}

TEST_CASE("pooling and upsampling produce the documented shapes", "[pool]") {
  const Variable x(Tensor(Shape{2, 3, 7, 7}));
  CHECK(avg_pool2d(x, 3, 2, 1).shape() == Shape{2, 3, 4, 4});
  CHECK(avg_pool2d(x, 2, 2).shape() == Shape{2, 3, 3, 3});
  CHECK(max_pool2d(x, 3, 1, 1).shape() == Shape{2, 3, 7, 7});
  CHECK(max_pool2d(Variable(Tensor(Shape{1, 1, 5, 4})), 2, 2).shape() == Shape{1, 1, 2, 2});
  CHECK(global_avg_pool2d(x).shape() == Shape{2, 3});
  CHECK(upsample_nearest2d(x, 2).shape() == Shape{2, 3, 14, 14});

  CHECK_THROWS_WITH(avg_pool2d(Variable(Tensor(Shape{3, 7, 7})), 2, 2), Contains("[3, 7, 7]"));
  CHECK_THROWS_AS(max_pool2d(x, 0, 1), Error);
  CHECK_THROWS_AS(max_pool2d(x, 2, 2, 2), Error);  // padding > kernel/2
  CHECK_THROWS_AS(avg_pool2d(x, 8, 1), Error);     // window larger than the input
  CHECK_THROWS_AS(upsample_nearest2d(x, 0), Error);
  CHECK_THROWS_AS(global_avg_pool2d(Variable(Tensor(Shape{2, 3}))), Error);
}

TEST_CASE("max and average pooling match hand-computed values", "[pool]") {
  std::vector<float> v(16);
  for (int i = 0; i < 16; ++i) v[static_cast<size_t>(i)] = static_cast<float>(i);
  const Variable x(Tensor::from(Shape{1, 1, 4, 4}, v), true);
  check_values(max_pool2d(x, 2, 2).value(), {5, 7, 13, 15});
  check_values(avg_pool2d(x, 2, 2).value(), {2.5f, 4.5f, 10.5f, 12.5f});
  check_values(global_avg_pool2d(x).value(), {7.5f});

  // count_include_pad: every 3x3 window over the padded 2x2 input divides by 9.
  const Variable small(Tensor::from(Shape{1, 1, 2, 2}, {1, 2, 3, 4}));
  check_values(avg_pool2d(small, 3, 1, 1).value(), {10 / 9.0f, 10 / 9.0f, 10 / 9.0f, 10 / 9.0f});
  // Max pooling pads with -inf, not zero: a negative input stays negative at the border.
  const Variable neg(Tensor::from(Shape{1, 1, 2, 2}, {-4, -3, -2, -1}));
  check_values(max_pool2d(neg, 2, 1, 1).value(), {-4, -3, -3, -2, -1, -1, -2, -1, -1});

  // The gradient of a tied window goes to its first maximum only.
  const Variable ties(Tensor::ones(Shape{1, 1, 2, 2}), true);
  max_pool2d(ties, 2, 2).backward(Tensor::ones(Shape{1, 1, 1, 1}));
  check_values(ties.grad(), {1, 0, 0, 0});

  const Variable up(Tensor::from(Shape{1, 1, 2, 2}, {1, 2, 3, 4}), true);
  const Variable y = upsample_nearest2d(up, 2);
  check_values(y.value(), {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4});
  std::vector<float> g(16);
  for (int i = 0; i < 16; ++i) g[static_cast<size_t>(i)] = static_cast<float>(i);
  y.backward(Tensor::from(Shape{1, 1, 4, 4}, g));
  check_values(up.grad(), {0 + 1 + 4 + 5, 2 + 3 + 6 + 7, 8 + 9 + 12 + 13, 10 + 11 + 14 + 15});
}

}  // namespace
}  // namespace bitgrad::autograd
