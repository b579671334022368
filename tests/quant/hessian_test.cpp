// hessian_test.cpp: Hutchinson trace estimates (quant/hessian.hpp) against exact traces: a quadratic
// with a known dense Hessian (central differences are exact there, only the sampling error remains)
// and a separable non-quadratic function whose Hessian is diagonal and known in closed form; and
// update_ewgs_deltas on quantized models: exact traces of a two-layer linear network (the loss is
// quadratic in the probed quantizer outputs), and no side effects on a ResNet's BN statistics.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "core/tensor.hpp"
#include "core/tensor_ops.hpp"
#include "autograd/ops.hpp"
#include "nn/linear.hpp"
#include "nn/resnet_cifar.hpp"
#include "nn/sequential.hpp"
#include "quant/hessian.hpp"
#include "quant/policy.hpp"

namespace bitgrad::quant {
namespace {

using core::Shape;
using autograd::Variable;
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

QuantPolicy lint_ewgs() {
  QuantPolicy p;
  p.method = QuantMethod::kLint;
  p.edge = EdgeLayers::kFloat;
  p.estimator.kind = EstimatorKind::kEwgs;
  return p;
}

double frobenius2(const Tensor& t) {
  double s = 0.0;
  for (float v : t.contiguous().span()) s += static_cast<double>(v) * v;
  return s;
}

TEST_CASE("EWGS delta: exact traces of a two-layer linear network", "[quant][hessian]") {
  // y = W2 (|s| (W1q xq + b1)) + b2, L = mse(y, t) = sum (y - t)^2 / (N * 3). The second Linear is the
  // classifier (an edge layer: float), so L is quadratic in W1q and in xq and central differences are
  // exact: tr d2L/dW1q2 = 2/(3N) s^2 |W2|^2 sum_b |xq_b|^2 and tr d2L/dxq2 = 2/3 s^2 |W2 W1q|^2.
  constexpr int64_t n = 16;
  core::Rng rng(21);
  nn::Sequential model;
  auto& first = model.emplace_back<nn::Linear>(nn::LinearConfig{8, 6, true}, rng);
  auto& second = model.emplace_back<nn::Linear>(nn::LinearConfig{6, 3, true}, rng);
  const std::vector<QuantizedLayerInfo> layers = quantize_model(model, lint_ewgs());
  REQUIRE(layers.size() == 1);
  const Tensor x = rng.uniform_tensor(Shape{n, 8}, 0.0f, 2.0f);
  const Tensor target = rng.normal_tensor(Shape{n, 3}, 0.0f, 1.0f);
  model.train();
  calibrate(model, [&] { model.forward(Variable(x)); });
  const auto loss = [&](int) { return autograd::mse(model.forward(Variable(x)), Variable(target)); };

  QuantizedLayer& q = *layers[0].layer;
  const float s = std::fabs(q.output_scale()->value().span()[0]);
  Tensor w1q, xq;
  {
    autograd::NoGradGuard no_grad;
    w1q = q.weight().fake_quant(first.weight()).value();
    xq = q.input()->fake_quant(Variable(x)).value();
  }
  const double w2 = frobenius2(second.weight().value());
  const double exact_w = 2.0 / (3.0 * n) * s * s * w2 * frobenius2(xq);
  const Tensor w2w1 = core::matmul(second.weight().value(), w1q, false, false);
  const double exact_x = 2.0 / 3.0 * s * s * frobenius2(w2w1);

  // One quantizer probed at a time (the other switched to the STE), so that each estimate carries
  // only its own sampling error; update_ewgs_deltas probes all EWGS quantizers at once otherwise.
  HutchinsonOptions options;
  options.max_probes = 1000;
  options.tolerance = 0.0;  // use every probe
  const auto estimate = [&](TensorQuantizer& probed, TensorQuantizer& other) {
    Estimator ste = other.estimator();
    ste.kind = EstimatorKind::kSte;
    other.set_estimator(ste);
    core::Rng probe_rng(4);
    const std::vector<EwgsDelta> d = update_ewgs_deltas(model, 1, loss, probe_rng, options);
    Estimator ewgs = other.estimator();
    ewgs.kind = EstimatorKind::kEwgs;
    other.set_estimator(ewgs);
    REQUIRE(d.size() == 1);
    CHECK(d[0].probes == 1000);
    CHECK(probed.estimator().ewgs_delta == d[0].delta);
    return d[0];
  };
  const EwgsDelta dw = estimate(q.weight(), *q.input());
  const EwgsDelta dx = estimate(*q.input(), q.weight());
  CHECK(dw.name == "0.quant.weight");
  CHECK(dx.name == "0.quant.input");
  // trace_per_element is in EWGS's normalised units: lint weights unit 2, inputs unit 1.
  const double est_w = dw.trace_per_element * static_cast<double>(w1q.numel()) / 4.0;
  const double est_x = dx.trace_per_element * static_cast<double>(xq.numel());
  INFO("weights: exact " << exact_w << ", estimate " << est_w << "; inputs: exact " << exact_x << ", estimate " << est_x);
  CHECK(std::fabs(est_w - exact_w) < 0.05 * exact_w);
  CHECK(std::fabs(est_x - exact_x) < 0.05 * exact_x);
  // Both at once: every EWGS quantizer gets a delta, set on it and in its buffer.
  core::Rng probe_rng(4);
  HutchinsonOptions quick;
  quick.max_probes = 20;
  const std::vector<EwgsDelta> deltas = update_ewgs_deltas(model, 1, loss, probe_rng, quick);
  REQUIRE(deltas.size() == 2);
  // delta is set on the quantizers and in their buffers.
  CHECK(q.weight().estimator().ewgs_delta == deltas[0].delta);
  CHECK(q.input()->estimator().ewgs_delta == deltas[1].delta);
  for (const nn::NamedBuffer& b : model.named_buffers())
    if (b.name == "0.quant.weight.ewgs_delta") CHECK(b.tensor->span()[0] == deltas[0].delta);
}

TEST_CASE("EWGS delta: a ResNet's BN statistics are untouched and every quantizer gets one", "[quant][hessian]") {
  core::Rng rng(5);
  nn::ResNetCifar model(nn::ResNetCifarConfig{8, 10, 1, nn::Shortcut::kA}, rng);
  quantize_model(model, lint_ewgs());
  const Tensor x = rng.normal_tensor(Shape{8, 1, 12, 12}, 0.0f, 1.0f);
  const std::vector<int64_t> labels{0, 1, 2, 3, 4, 5, 6, 7};
  model.train();
  calibrate(model, [&] { model.forward(Variable(x)); });
  std::vector<Tensor> before;
  for (const nn::NamedBuffer& b : model.named_buffers()) before.push_back(b.tensor->clone());
  const int64_t batches_tracked = *model.named_counters().front().value;
  HutchinsonOptions options;
  options.max_probes = 4;
  core::Rng probe_rng(2);
  const std::vector<EwgsDelta> deltas = update_ewgs_deltas(
      model, 2, [&](int) { return autograd::cross_entropy(model.forward(Variable(x)), labels); }, probe_rng, options);
  REQUIRE(deltas.size() == 12);  // 6 block convs, weight and input each
  for (const EwgsDelta& d : deltas) {
    INFO(d.name << " delta " << d.delta);
    CHECK(std::isfinite(d.delta));
    CHECK(d.delta >= 0.0f);
    CHECK(d.probes >= 1);
  }
  const std::vector<nn::NamedBuffer> after = model.named_buffers();
  size_t same = 0;
  for (size_t i = 0; i < after.size(); ++i)
    if (after[i].name.find("ewgs_delta") == std::string::npos)
      same += core::max_abs_diff(*after[i].tensor, before[i]) == 0.0f ? 1 : 0;
  CHECK(same == after.size() - 12);
  CHECK(*model.named_counters().front().value == batches_tracked);
  for (const nn::NamedParameter& p : model.named_parameters()) CHECK_FALSE(p.variable.grad().defined());
}

}  // namespace
}  // namespace bitgrad::quant
