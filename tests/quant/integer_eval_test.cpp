// integer_eval_test.cpp: the QAT model's eval-mode integer path (nn/layer_quantizer.hpp
// IntegerOperands): with gradients off, a quantized layer computes op(codes - zp) exactly and scales
// once per output channel. It must agree with the fake-quant path to float rounding, its operands must
// be integers on the quantizers' level sets, and layers without an integer form keep the float path.
#include <catch2/catch.hpp>

#include <cmath>

#include "autograd/ops.hpp"
#include "core/rng.hpp"
#include "core/tensor_ops.hpp"
#include "nn/conv2d.hpp"
#include "nn/resnet_cifar.hpp"
#include "quant/policy.hpp"

namespace bitgrad::quant {
namespace {

using autograd::Variable;
using core::Shape;
using core::Tensor;

Tensor random_normal(core::Rng& rng, const Shape& shape, float shift = 0.0f) {
  Tensor x = Tensor::empty(shape);
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = rng.normal() + shift;
  return x;
}

double relative_l2(const Tensor& a, const Tensor& b) {
  double num = 0.0, den = 0.0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    num += std::pow(double{a.data()[i]} - b.data()[i], 2);
    den += std::pow(double{a.data()[i]}, 2);
  }
  return std::sqrt(num / den);
}

QuantPolicy policy(QuantMethod method, int bits, EdgeLayers edge) {
  QuantPolicy p;
  p.method = method;
  p.weight_bits = bits;
  p.act_bits = bits;
  p.edge = edge;
  return p;
}

const QuantMethod kMethods[] = {QuantMethod::kMinMax, QuantMethod::kLint, QuantMethod::kLsq,
                                QuantMethod::kPact,   QuantMethod::kPot,  QuantMethod::kApot};

TEST_CASE("Integer eval path: one quantized conv equals its fake-quant forward to float rounding",
          "[quant][parity]") {
  for (QuantMethod method : kMethods) {
    for (int bits : {2, 3, 4}) {
      INFO(to_string(method) << " W" << bits << "A" << bits);
      core::Rng rng(3);
      nn::ResNetCifar model(nn::ResNetCifarConfig{8, 10, 1, nn::Shortcut::kA}, rng);
      quantize_model(model, policy(method, bits, default_edge(method)));
      const Tensor images = random_normal(rng, Shape{8, 1, 12, 12});
      calibrate(model, [&] { model.forward(Variable(images)); });
      model.eval();
      nn::Conv2d& conv = model.block(1, 0).conv1();  // 16 -> 32, stride 2
      auto* layer = dynamic_cast<QuantizedLayer*>(conv.quantizer());
      REQUIRE(layer != nullptr);
      REQUIRE(layer->input() != nullptr);
      const Tensor x = random_normal(rng, Shape{2, 16, 6, 5}, 0.5f);
      const auto ops = layer->integer_operands(x, conv.weight().value());
      if (method == QuantMethod::kPot && bits == 4) {
        // PoT 4-bit levels 2^-1 .. 2^-15 need codes up to 2^14 on each side: sums past 2^24, no form.
        CHECK_FALSE(ops.has_value());
        continue;
      }
      REQUIRE(ops.has_value());
      for (const Tensor* t : {&ops->input, &ops->weight})
        for (int64_t i = 0; i < t->numel(); ++i) REQUIRE(t->data()[i] == std::nearbyint(t->data()[i]));
      const Tensor fake = conv.forward(Variable(x)).value();  // gradients on: the fake-quant path
      Tensor integer;
      {
        autograd::NoGradGuard no_grad;
        integer = conv.forward(Variable(x)).value();
      }
      REQUIRE(fake.shape() == integer.shape());
      CHECK(relative_l2(fake, integer) < 1e-6);
      CHECK(core::max_abs_diff(fake, integer) <= 1e-5f * (1.0f + std::fabs(fake.data()[0])) * 100.0f);
    }
  }
}

TEST_CASE("Integer eval path: QAT ResNet-20 predictions agree with the fake-quant forward",
          "[quant][parity]") {
  for (QuantMethod method : kMethods) {
    INFO(to_string(method));
    core::Rng rng(7);
    nn::ResNetCifar model(nn::ResNetCifarConfig{20, 10, 1, nn::Shortcut::kA}, rng);
    quantize_model(model, policy(method, 2, default_edge(method)));
    const Tensor calib = random_normal(rng, Shape{16, 1, 12, 12});
    calibrate(model, [&] { model.forward(Variable(calib)); });
    model.eval();
    const Tensor x = random_normal(rng, Shape{8, 1, 12, 12});
    const Tensor fake = model.forward(Variable(x)).value();
    Tensor integer;
    {
      autograd::NoGradGuard no_grad;
      integer = model.forward(Variable(x)).value();
    }
    // One ulp in a conv output can move an activation code at a rounding tie, so compare in bulk.
    CHECK(relative_l2(fake, integer) < 1e-3);
  }
}

TEST_CASE("Integer eval path: no integer form without an input quantizer or while calibrating",
          "[quant][parity]") {
  core::Rng rng(5);
  nn::ResNetCifar model(nn::ResNetCifarConfig{8, 10, 1, nn::Shortcut::kA}, rng);
  const std::vector<QuantizedLayerInfo> layers =
      quantize_model(model, policy(QuantMethod::kApot, 2, EdgeLayers::kInt8));
  const QuantizedLayerInfo& stem = layers.front();  // int8 weights, float image input
  REQUIRE(stem.layer->input() == nullptr);
  const Tensor x = random_normal(rng, Shape{1, 1, 8, 8});
  const Tensor w = random_normal(rng, Shape{16, 1, 3, 3});
  CHECK_FALSE(stem.layer->integer_operands(x, w).has_value());
  const QuantizedLayerInfo& trunk = layers[1];
  const Tensor a = random_normal(rng, Shape{1, 16, 8, 8}, 1.0f);
  const Tensor wt = random_normal(rng, Shape{16, 16, 3, 3});
  CHECK(trunk.layer->integer_operands(a, wt).has_value());
  trunk.layer->set_calibrating(true);
  CHECK_FALSE(trunk.layer->integer_operands(a, wt).has_value());
  trunk.layer->set_calibrating(false);
}

}  // namespace
}  // namespace bitgrad::quant
