// hessian_test.cpp: Hutchinson trace estimates (quant/hessian.hpp) against exact traces: a quadratic
// with a known dense Hessian (central differences are exact there, only the sampling error remains)
// and a separable non-quadratic function whose Hessian is diagonal and known in closed form.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "core/tensor.hpp"
#include "quant/hessian.hpp"

namespace bitgrad::quant {
namespace {

using core::Shape;
using core::Tensor;

TEST_CASE("Hutchinson: trace of a dense quadratic within 5% of the exact trace", "[quant][hessian]") {
  constexpr int64_t n = 64;
  core::Rng rng(11);
  // A = D + E: diagonal in [1, 3], symmetric off-diagonal N(0, 0.05^2); F(x) = x^T A x / 2, grad = A x.
  std::vector<double> a(n * n, 0.0);
  double exact = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    a[i * n + i] = 1.0 + 2.0 * rng.uniform();
    exact += a[i * n + i];
    for (int64_t j = 0; j < i; ++j) a[i * n + j] = a[j * n + i] = 0.05 * rng.normal();
  }
  const auto grad = [&](const Tensor& x) {
    Tensor g(Shape{n});
    for (int64_t i = 0; i < n; ++i) {
      double s = 0.0;
      for (int64_t j = 0; j < n; ++j) s += a[i * n + j] * x.at({j});
      g.set({i}, static_cast<float>(s));
    }
    return g;
  };
  const Tensor x = rng.normal_tensor(Shape{n}, 0.0f, 1.0f);
  core::Rng probe_rng(5);
  const TraceEstimate est = hutchinson_trace(grad, x, probe_rng, HutchinsonOptions{});
  INFO("exact " << exact << ", estimate " << est.trace << " after " << est.probes << " probes");
  CHECK(std::fabs(est.trace - exact) < 0.05 * exact);
  CHECK(est.probes >= 2);
  CHECK(est.probes <= 50);
}

TEST_CASE("Hutchinson: trace of sum(log cosh(x)) equals sum(1 - tanh^2(x)) to 5%", "[quant][hessian]") {
  constexpr int64_t n = 500;
  core::Rng rng(3);
  const Tensor x = rng.normal_tensor(Shape{n}, 0.0f, 1.0f);
  double exact = 0.0;
  for (float v : x.span()) exact += 1.0 - std::tanh(v) * std::tanh(v);
  const auto grad = [](const Tensor& at) {
    Tensor g(at.shape());
    for (int64_t i = 0; i < at.numel(); ++i) g.span()[static_cast<size_t>(i)] = std::tanh(at.span()[static_cast<size_t>(i)]);
    return g;
  };
  core::Rng probe_rng(9);
  HutchinsonOptions options;
  options.epsilon = 1e-2f;
  const TraceEstimate est = hutchinson_trace(grad, x, probe_rng, options);
  INFO("exact " << exact << ", estimate " << est.trace);
  // A diagonal Hessian: v^T H v = trace for every Rademacher v, so only the difference error remains.
  CHECK(std::fabs(est.trace - exact) < 0.05 * exact);
}

TEST_CASE("Hutchinson: bad options and gradient shapes are errors", "[quant][hessian]") {
  core::Rng rng(1);
  const Tensor x = Tensor::zeros(Shape{4});
  HutchinsonOptions bad;
  bad.max_probes = 0;
  CHECK_THROWS_AS(hutchinson_trace([](const Tensor& t) { return t; }, x, rng, bad), Error);
  CHECK_THROWS_AS(hutchinson_trace([](const Tensor&) { return Tensor::zeros(Shape{3}); }, x, rng, {}), Error);
}

}  // namespace
}  // namespace bitgrad::quant
