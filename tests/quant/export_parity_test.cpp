// export_parity_test.cpp: a QAT ResNet exported to the packed form (quant/export.hpp) and run by the
// packed runtime (kernels/runtime/packed_runtime.hpp) computes, for every quantized convolution, the
// same input codes and the same integer accumulators as the QAT model in eval mode, bit for bit, and
// the same logits; for every quantizer family and bit width with a packed form, every kernel family
// that can run it, and the scalar tier. Models are small (ResNet-8, 12x12 images) with batch-norm
// statistics and quantizer ranges moved away from their initial values, and some negative BN scales
// (descending thresholds).
#include <catch2/catch.hpp>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "autograd/ops.hpp"
#include "core/rng.hpp"
#include "core/safetensors.hpp"
#include "kernels/runtime/packed_runtime.hpp"
#include "nn/layer_quantizer.hpp"
#include "nn/resnet_cifar.hpp"
#include "quant/export.hpp"
#include "quant/policy.hpp"

namespace bitgrad::quant {
namespace {

using autograd::Variable;
using core::Shape;
using core::Tensor;

Tensor random_images(core::Rng& rng, int64_t n, int64_t h, int64_t w, int64_t channels = 1) {
  Tensor x = Tensor::empty(Shape{n, channels, h, w});
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = rng.normal() * 0.8f + 0.2f;
  return x;
}

QuantPolicy make_policy(QuantMethod method, int bits) {
  QuantPolicy p;
  p.method = method;
  p.weight_bits = bits;
  p.act_bits = bits;
  p.edge = default_edge(method);
  return p;
}

// A ResNet-8 QAT model with calibrated quantizers, BN running statistics from a few train-mode
// passes, and random BN affine parameters (a quarter of the gammas negative).
std::unique_ptr<nn::ResNetCifar> make_model(const QuantPolicy& policy, core::Rng& rng, int64_t h, int64_t w,
                                            int depth = 8, int64_t channels = 1) {
  auto owner =
      std::make_unique<nn::ResNetCifar>(nn::ResNetCifarConfig{depth, 10, channels, nn::Shortcut::kA}, rng);
  nn::ResNetCifar& model = *owner;
  quantize_model(model, policy);
  for (const nn::NamedModule& m : model.named_modules())
    if (auto* bn = dynamic_cast<nn::BatchNorm2d*>(m.module)) {
      Tensor g = Tensor::empty(bn->weight().shape()), b = Tensor::empty(bn->bias().shape());
      for (int64_t c = 0; c < g.numel(); ++c) {
        g.data()[c] = (rng.uniform() < 0.25f ? -1.0f : 1.0f) * (0.5f + rng.uniform());
        b.data()[c] = 0.3f * rng.normal();
      }
      bn->weight().set_value(g);
      bn->bias().set_value(b);
    }
  const Tensor calib = random_images(rng, 16, h, w, channels);
  calibrate(model, [&] { model.forward(Variable(calib)); });
  model.train();
  {
    autograd::NoGradGuard no_grad;
    for (int i = 0; i < 3; ++i) model.forward(Variable(random_images(rng, 16, h, w, channels)));
  }
  model.eval();
  return owner;
}

// NCHW float integers -> the NHWC layout of the runtime.
int64_t nhwc_index(const Shape& nchw, int64_t i) {
  const int64_t c = nchw[1], h = nchw[2], w = nchw[3];
  const int64_t x = i % w, y = (i / w) % h, ch = (i / (w * h)) % c, n = i / (w * h * c);
  return ((n * h + y) * w + x) * c + ch;
}

// Runs both models on the same images and checks every quantized layer's codes and accumulators and
// the logits.
void check_parity(nn::ResNetCifar& model, const kernels::PackedResNet& packed,
                  const kernels::RuntimeOptions& options, const Tensor& images) {
  std::vector<nn::IntegerTraceEntry> qat_trace;
  Tensor qat_logits;
  {
    autograd::NoGradGuard no_grad;
    nn::IntegerTraceScope scope(qat_trace);
    qat_logits = model.forward(Variable(images)).value();
  }
  kernels::PackedRuntime runtime(packed, options);
  std::vector<kernels::LayerTrace> trace;
  const Tensor logits = runtime.forward(images, &trace);
  REQUIRE(qat_trace.size() == trace.size());
  REQUIRE(trace.size() == 2 * packed.blocks.size());
  for (size_t l = 0; l < trace.size(); ++l) {
    INFO("layer " << trace[l].name << " kernel " << runtime.kernel_names(images.dim(0))[l]);
    const Tensor& qin = qat_trace[l].input;
    const Tensor& qacc = qat_trace[l].acc;
    REQUIRE(static_cast<size_t>(qin.numel()) == trace[l].input_codes.size());
    REQUIRE(static_cast<size_t>(qacc.numel()) == trace[l].acc.size());
    const int zp = trace[l].spec.pad_code;
    int64_t code_mismatch = 0, acc_mismatch = 0;
    for (int64_t i = 0; i < qin.numel(); ++i)
      code_mismatch += static_cast<float>(trace[l].input_codes[static_cast<size_t>(nhwc_index(qin.shape(), i))] - zp) !=
                       qin.data()[i];
    for (int64_t i = 0; i < qacc.numel(); ++i)
      acc_mismatch += static_cast<float>(trace[l].acc[static_cast<size_t>(nhwc_index(qacc.shape(), i))]) !=
                      qacc.data()[i];
    CHECK(code_mismatch == 0);
    CHECK(acc_mismatch == 0);
  }
  REQUIRE(logits.shape() == qat_logits.shape());
  int64_t logit_mismatch = 0;
  for (int64_t i = 0; i < logits.numel(); ++i) logit_mismatch += logits.data()[i] != qat_logits.data()[i];
  CHECK(logit_mismatch == 0);
}

TEST_CASE("Packed ResNet-8 equals the QAT model bit for bit: every method at W2A2", "[quant][parity]") {
  for (QuantMethod method : {QuantMethod::kMinMax, QuantMethod::kLint, QuantMethod::kLsq, QuantMethod::kPact,
                             QuantMethod::kApot, QuantMethod::kPot}) {
    INFO(to_string(method) << " W2A2");
    core::Rng rng(11);
    const QuantPolicy policy = make_policy(method, 2);
    const auto owner = make_model(policy, rng, 12, 12);
    nn::ResNetCifar& model = *owner;
    const kernels::PackedResNet packed = export_resnet(model, policy, 12, 12);
    const Tensor images = random_images(rng, 5, 12, 12);
    // APoT and PoT activations at 2 bits are codes {0, 1, 2, 4} (scale alpha / 4): 3-bit codes, which
    // the bit-serial kernels (1- or 2-bit activations) do not take; they run on the int8 kernels.
    const bool two_bit_codes = method != QuantMethod::kApot && method != QuantMethod::kPot;
    for (kernels::Family family : {kernels::Family::kBitserial, kernels::Family::kInt8}) {
      INFO("family " << kernels::family_name(family));
      if (family == kernels::Family::kBitserial && !two_bit_codes) {
        kernels::RuntimeOptions bitserial_only;
        bitserial_only.family = family;
        CHECK_THROWS_WITH(kernels::PackedRuntime(packed, bitserial_only).kernel_names(1),
                          Catch::Contains("the bit-serial kernels take act_bits 1 or 2"));
        continue;
      }
      kernels::RuntimeOptions options;
      options.family = family;
      check_parity(model, packed, options, images);
      options.tier = kernels::Tier::kScalar;
      check_parity(model, packed, options, images);
    }
    // Batch 1 (a plan of its own, other kernel tiles).
    check_parity(model, packed, {}, random_images(rng, 1, 12, 12));
  }
}

TEST_CASE("Packed ResNet-8 equals the QAT model bit for bit at 3 and 4 bits (int8 kernels)", "[quant][parity]") {
  for (QuantMethod method : {QuantMethod::kApot, QuantMethod::kLsq, QuantMethod::kMinMax}) {
    for (int bits : {3, 4}) {
      INFO(to_string(method) << " W" << bits << "A" << bits);
      core::Rng rng(5);
      const QuantPolicy policy = make_policy(method, bits);
      const auto owner = make_model(policy, rng, 12, 12);
      nn::ResNetCifar& model = *owner;
      const kernels::PackedResNet packed = export_resnet(model, policy, 12, 12);
      check_parity(model, packed, {}, random_images(rng, 3, 12, 12));
    }
  }
}

TEST_CASE("Packed ResNet-32 on CIFAR-sized input: bit-exact, and its file size", "[quant][parity]") {
  // The VA-QKD paper's ResNet-32 W2A2 is 0.11 MB: its 2-bit weights. Ours stores those (115,200 bytes)
  // plus what exact parity needs (float BN tails, thresholds, float stem and classifier).
  for (QuantMethod method : {QuantMethod::kLint, QuantMethod::kApot}) {
    INFO(to_string(method));
    core::Rng rng(4);
    const QuantPolicy policy = make_policy(method, 2);
    const auto owner = make_model(policy, rng, 32, 32, 32, 3);
    nn::ResNetCifar& model = *owner;
    const kernels::PackedResNet packed = export_resnet(model, policy, 32, 32);
    CHECK(packed.packed_weight_bytes() == 115200);
    const size_t bytes = core::serialize_safetensors(kernels::to_safetensors(packed, "test")).size();
    WARN("ResNet-32 W2A2 (" << to_string(method) << ") .bgpk: " << bytes << " bytes");
    CHECK(bytes < 136000);
    check_parity(model, packed, {}, random_images(rng, 2, 32, 32, 3));
  }
}

TEST_CASE("Float thresholds reproduce an activation quantizer's encode", "[quant][parity]") {
  for (QuantMethod method : {QuantMethod::kMinMax, QuantMethod::kLint, QuantMethod::kLsq, QuantMethod::kPact,
                             QuantMethod::kApot}) {
    INFO(to_string(method));
    core::Rng rng(2);
    const QuantPolicy policy = make_policy(method, 3);
    const auto owner = make_model(policy, rng, 8, 8);
    nn::ResNetCifar& model = *owner;
    auto* layer = dynamic_cast<QuantizedLayer*>(model.block(2, 0).conv1().quantizer());
    REQUIRE(layer != nullptr);
    const kernels::FloatQuantizer fq = float_thresholds(*layer->input(), "test");
    Tensor x = Tensor::empty(Shape{20000});
    for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = rng.normal() * 3.0f;
    const Encoded e = layer->input()->encode(x);
    int64_t mismatch = 0;
    for (int64_t i = 0; i < x.numel(); ++i) mismatch += fq.code(x.data()[i]) != e.codes[static_cast<size_t>(i)];
    CHECK(mismatch == 0);
  }
}

TEST_CASE("Export rejects models without a packed form, naming the part", "[quant][parity]") {
  core::Rng rng(1);
  SECTION("option-B shortcuts") {
    nn::ResNetCifar model(nn::ResNetCifarConfig{8, 10, 1, nn::Shortcut::kB}, rng);
    const QuantPolicy policy = make_policy(QuantMethod::kApot, 2);
    quantize_model(model, policy);
    CHECK_THROWS_WITH(export_resnet(model, policy, 8, 8), Catch::Contains("option-A"));
  }
  SECTION("a float model") {
    nn::ResNetCifar model(nn::ResNetCifarConfig{8, 10, 1, nn::Shortcut::kA}, rng);
    CHECK_THROWS_WITH(export_resnet(model, make_policy(QuantMethod::kApot, 2), 8, 8),
                      Catch::Contains("layer1.0.conv1: expected a quantized convolution"));
  }
  SECTION("PoT 4-bit has no integer form") {
    const QuantPolicy policy = make_policy(QuantMethod::kPot, 4);
    const auto owner = make_model(policy, rng, 8, 8);
    nn::ResNetCifar& model = *owner;
    CHECK_THROWS_WITH(export_resnet(model, policy, 8, 8), Catch::Contains("no integer form"));
  }
}

}  // namespace
}  // namespace bitgrad::quant
