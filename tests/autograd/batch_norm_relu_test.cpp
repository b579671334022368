// batch_norm_relu_test.cpp: the fused relu(batch_norm(x) + residual)
// (autograd/ops/batch_norm_relu.hpp) against batch_norm, add and relu applied one by one: identical
// values, gradients of every input and running statistics, bit for bit, in training and eval mode,
// with and without a residual; and its shape check.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "autograd/ops.hpp"
#include "autograd/ops/batch_norm_relu.hpp"
#include "core/rng.hpp"
#include "core/tensor_ops.hpp"
#include "test_util.hpp"

namespace bitgrad::autograd {
namespace {

struct Run {
  Tensor y, dx, dgamma, dbeta, dres, running_mean, running_var;
};

// One forward and backward pass from fresh leaves built from the same values.
Run run(bool fused, bool training, bool with_residual, const Tensor& x0, const Tensor& r0,
        const Tensor& gamma0, const Tensor& beta0, const Tensor& g) {
  Variable x(x0.clone(), true), r(r0.clone(), true);
  Variable gamma(gamma0.clone(), true), beta(beta0.clone(), true);
  Run out;
  out.running_mean = core::Tensor::full(Shape{x0.dim(1)}, 0.25f);
  out.running_var = core::Tensor::full(Shape{x0.dim(1)}, 1.5f);
  BatchNormOptions opt;
  opt.training = training;
  Variable y;
  if (fused) {
    y = batch_norm_relu(x, gamma, beta, out.running_mean, out.running_var, opt,
                        with_residual ? r : Variable());
  } else {
    Variable b = batch_norm(x, gamma, beta, out.running_mean, out.running_var, opt);
    y = relu(with_residual ? add(b, r) : b);
  }
  y.backward(g);
  out.y = y.value();
  out.dx = x.grad();
  out.dgamma = gamma.grad();
  out.dbeta = beta.grad();
  out.dres = r.grad();
  return out;
}

void check_identical(const Tensor& a, const Tensor& b, const std::string& what) {
  INFO(what);
  REQUIRE(a.defined() == b.defined());
  if (!a.defined()) return;
  REQUIRE(a.shape() == b.shape());
  CHECK(core::max_abs_diff(a, b) == 0.0f);
}

TEST_CASE("batch_norm_relu equals batch_norm, add and relu bit for bit", "[norm]") {
  core::Rng rng(5);
  const Shape xs{6, 3, 5, 7};
  const Tensor x = rng.uniform_tensor(xs, -2.0f, 3.0f);
  const Tensor r = rng.uniform_tensor(xs, -1.0f, 1.0f);
  const Tensor gamma = rng.uniform_tensor(Shape{3}, 0.5f, 1.5f);
  const Tensor beta = rng.uniform_tensor(Shape{3}, -0.5f, 0.5f);
  const Tensor g = rng.uniform_tensor(xs, -1.0f, 1.0f);
  for (bool training : {true, false})
    for (bool with_residual : {false, true}) {
      INFO("training " << training << " residual " << with_residual);
      const Run f = run(true, training, with_residual, x, r, gamma, beta, g);
      const Run u = run(false, training, with_residual, x, r, gamma, beta, g);
      check_identical(f.y, u.y, "y");
      check_identical(f.dx, u.dx, "dx");
      check_identical(f.dgamma, u.dgamma, "dgamma");
      check_identical(f.dbeta, u.dbeta, "dbeta");
      check_identical(f.dres, u.dres, "dresidual");
      check_identical(f.running_mean, u.running_mean, "running_mean");
      check_identical(f.running_var, u.running_var, "running_var");
      // The ReLU really clipped something, so the mask was exercised.
      CHECK(core::max_abs_diff(f.y, core::Tensor(xs)) > 0.0f);
      const std::vector<float> v = f.y.to_vector();
      CHECK(std::count(v.begin(), v.end(), 0.0f) > 0);
    }
}

TEST_CASE("batch_norm_relu rejects a residual of another shape", "[norm]") {
  Variable x(Tensor(Shape{2, 3, 4, 4}), true);
  Tensor rm = Tensor::zeros(Shape{3}), rv = Tensor::ones(Shape{3});
  const Variable r(Tensor(Shape{2, 3, 4, 5}));
  CHECK_THROWS_WITH(
      batch_norm_relu(x, Variable(), Variable(), rm, rv, {}, r),
      Catch::Matchers::Contains("batch_norm_relu: expected a residual of shape [2, 3, 4, 4]"));
}

}  // namespace
}  // namespace bitgrad::autograd
