// policy_test.cpp: quant::quantize_model turns an unmodified nn model into its QAT twin: which layers
// get quantizers and of what kind (trunk, first/last-layer rule, option-B shortcuts), that the layer
// really computes op(Qa(x), Qw(w)), that quantizer state travels through state dicts, calibration,
// the JSON form of a policy, and the errors for bad policies.
#include <catch2/catch.hpp>

#include <cmath>
#include <set>
#include <string>

#include "autograd/ops.hpp"
#include "core/rng.hpp"
#include "core/tensor_ops.hpp"
#include "nn/resnet_cifar.hpp"
#include "nn/state_dict.hpp"
#include "quant/policy.hpp"
#include "test_util.hpp"

namespace bitgrad::quant {
namespace {

using autograd::Variable;
using core::Shape;
using core::Tensor;

QuantPolicy policy(QuantMethod method, int wbits = 2, int abits = 2) {
  QuantPolicy p;
  p.method = method;
  p.weight_bits = wbits;
  p.act_bits = abits;
  p.edge = default_edge(method);
  return p;
}

std::set<std::string> kinds(const std::vector<QuantizedLayerInfo>& layers, bool edge, bool input) {
  std::set<std::string> out;
  for (const QuantizedLayerInfo& l : layers) {
    if (l.edge != edge) continue;
    TensorQuantizer* q = input ? l.layer->input() : &l.layer->weight();
    out.insert(q != nullptr ? q->describe()["kind"].as_string() : "none");
  }
  return out;
}

TEST_CASE("Policy: APoT W2A2 on ResNet-20 (A): 18 trunk convs, int8 stem and classifier", "[quant][policy]") {
  core::Rng rng(1);
  nn::ResNetCifar model(nn::ResNetCifarConfig{20, 10, 1, nn::Shortcut::kA}, rng);
  const int64_t float_params = model.num_parameters();
  const std::vector<QuantizedLayerInfo> layers = quantize_model(model, policy(QuantMethod::kApot));
  REQUIRE(layers.size() == 20);
  CHECK(layers.front().name == "conv1");
  CHECK(layers.back().name == "linear");
  CHECK(layers.front().edge);
  CHECK(layers.back().edge);
  CHECK(kinds(layers, false, false) == std::set<std::string>{"apot"});
  CHECK(kinds(layers, false, true) == std::set<std::string>{"apot"});
  CHECK(kinds(layers, true, false) == std::set<std::string>{"int8max"});
  CHECK(kinds(layers, true, true) == std::set<std::string>{"none"});  // the image and the pooled features
  // Two learnable alphas per trunk conv (weight and input), as in the APoT code (40 for 20 convs with B).
  CHECK(model.num_parameters() == float_params + 2 * 18);
  // Every quantizer parameter is reachable by name and undecayed.
  int quant_params = 0;
  for (const nn::NamedParameter& p : model.named_parameters())
    if (p.name.find(".quant.") != std::string::npos) {
      ++quant_params;
      CHECK_FALSE(nn::decays(p.kind));
    }
  CHECK(quant_params == 36);
  CHECK_THROWS_AS(quantize_model(model, policy(QuantMethod::kApot)), Error);  // already quantized
}

TEST_CASE("Policy: option-B shortcuts are quantized like the trunk", "[quant][policy]") {
  core::Rng rng(2);
  nn::ResNetCifar model(nn::ResNetCifarConfig{20, 10, 3, nn::Shortcut::kB}, rng);
  const std::vector<QuantizedLayerInfo> layers = quantize_model(model, policy(QuantMethod::kApot, 3, 3));
  REQUIRE(layers.size() == 22);
  int shortcuts = 0;
  for (const QuantizedLayerInfo& l : layers)
    if (l.name.find("shortcut.0") != std::string::npos) {
      ++shortcuts;
      CHECK_FALSE(l.edge);
      CHECK(l.layer->input() != nullptr);
      CHECK(l.layer->weight().bits() == 3);
    }
  CHECK(shortcuts == 2);
}

TEST_CASE("Policy: learned interval keeps the edges float and adds the output scale", "[quant][policy]") {
  core::Rng rng(3);
  nn::ResNetCifar model(nn::ResNetCifarConfig{20, 10, 1, nn::Shortcut::kA}, rng);
  const std::vector<QuantizedLayerInfo> layers = quantize_model(model, policy(QuantMethod::kLint));
  REQUIRE(layers.size() == 18);
  for (const QuantizedLayerInfo& l : layers) {
    CHECK_FALSE(l.edge);
    CHECK(l.layer->output_scale() != nullptr);
  }
  CHECK(model.conv1().quantizer() == nullptr);
  CHECK(model.linear().quantizer() == nullptr);
}

TEST_CASE("Policy: min-max quantizes the edges at the trunk's bits (GDFQ)", "[quant][policy]") {
  core::Rng rng(4);
  nn::ResNetCifar model(nn::ResNetCifarConfig{8, 10, 1, nn::Shortcut::kA}, rng);
  const std::vector<QuantizedLayerInfo> layers = quantize_model(model, policy(QuantMethod::kMinMax, 4, 4));
  REQUIRE(layers.size() == 8);
  CHECK(kinds(layers, true, false) == std::set<std::string>{"minmax"});
  for (const QuantizedLayerInfo& l : layers) CHECK(l.layer->weight().bits() == 4);
}

TEST_CASE("Policy: a quantized conv computes conv(Qa(x), Qw(w))", "[quant][policy]") {
  core::Rng rng(5);
  nn::ResNetCifar model(nn::ResNetCifarConfig{8, 10, 1, nn::Shortcut::kA}, rng);
  quantize_model(model, policy(QuantMethod::kApot));
  nn::Conv2d& conv = model.block(1, 0).conv1();
  auto* layer = dynamic_cast<QuantizedLayer*>(conv.quantizer());
  REQUIRE(layer != nullptr);
  model.eval();  // with gradients on: the fake-quant path (integer_eval_test.cpp covers the other)
  const Tensor x = core::Rng(6).uniform_tensor(Shape{2, 16, 6, 6}, 0.0f, 12.0f);  // some above alpha = 8
  const Tensor y = conv.forward(Variable(x)).value();
  const Tensor qx = layer->input()->fake_quant(Variable(x)).value();
  const Tensor qw = layer->weight().fake_quant(conv.weight()).value();
  const Tensor expected = autograd::conv2d(Variable(qx), Variable(qw), Variable(), conv.options()).value();
  CHECK(core::max_abs_diff(y, expected) == 0.0f);
  // And the encoded codes reproduce the fake-quantized input exactly through the code map.
  const Encoded e = layer->input()->encode(x);
  REQUIRE(e.codes.size() == static_cast<size_t>(x.numel()));
  bool exact = true;
  for (size_t i = 0; i < e.codes.size(); ++i) {
    const float v = e.map.scale[0] * static_cast<float>(e.codes[i] - e.map.zero_point[0]);
    exact = exact && v == qx.span()[i];
  }
  CHECK(exact);
}

TEST_CASE("Policy: quantizer parameters and buffers round-trip through a state dict", "[quant][policy]") {
  for (QuantMethod method : {QuantMethod::kApot, QuantMethod::kLint, QuantMethod::kMinMax, QuantMethod::kLsq,
                             QuantMethod::kPact}) {
    core::Rng rng(7);
    nn::ResNetCifar a(nn::ResNetCifarConfig{8, 10, 1, nn::Shortcut::kA}, rng);
    quantize_model(a, policy(method));
    const Tensor batch = core::Rng(8).normal_tensor(Shape{8, 1, 12, 12}, 0.0f, 1.0f);
    a.train();
    calibrate(a, [&] { a.forward(Variable(batch)); });
    {
      autograd::NoGradGuard no_grad;
      a.forward(Variable(batch));  // one more training forward: EMA ranges, BN statistics move
    }
    a.eval();
    core::Rng other(99);
    nn::ResNetCifar b(nn::ResNetCifarConfig{8, 10, 1, nn::Shortcut::kA}, other);
    quantize_model(b, policy(method));
    nn::load_state_dict(b, nn::state_dict(a), /*strict=*/true);
    b.eval();
    autograd::NoGradGuard no_grad;
    const Tensor ya = a.forward(Variable(batch)).value();
    const Tensor yb = b.forward(Variable(batch)).value();
    INFO(to_string(method));
    CHECK(core::max_abs_diff(ya, yb) == 0.0f);
    bool finite = true;
    for (float v : ya.span()) finite = finite && std::isfinite(v);
    CHECK(finite);
  }
}

TEST_CASE("Policy: calibration sets the learned-interval output scales from data", "[quant][policy]") {
  core::Rng rng(9);
  nn::ResNetCifar model(nn::ResNetCifarConfig{8, 10, 1, nn::Shortcut::kA}, rng);
  const std::vector<QuantizedLayerInfo> layers = quantize_model(model, policy(QuantMethod::kLint));
  const Tensor batch = core::Rng(10).normal_tensor(Shape{16, 1, 12, 12}, 0.0f, 1.0f);
  model.train();
  calibrate(model, [&] { model.forward(Variable(batch)); });
  for (const QuantizedLayerInfo& l : layers) {
    const float s = l.layer->output_scale()->value().span()[0];
    INFO(l.name << " s = " << s);
    CHECK(std::isfinite(s));
    CHECK(s > 0.0f);
    CHECK(s != 1.0f);  // moved from its initial value
  }
}

TEST_CASE("Policy: the output scale |s| * y and its gradients", "[quant][policy][grad]") {
  core::Rng rng(12);
  nn::ResNetCifar model(nn::ResNetCifarConfig{8, 10, 1, nn::Shortcut::kA}, rng);
  const std::vector<QuantizedLayerInfo> layers = quantize_model(model, policy(QuantMethod::kLint));
  QuantizedLayer& layer = *layers.front().layer;
  Variable& s = *layer.output_scale();
  for (float value : {-0.7f, 1.3f}) {
    Tensor sv = s.value();
    sv.fill_(value);
    s.zero_grad();
    const Variable y(rng.normal_tensor(Shape{2, 3, 5, 5}, 0.0f, 1.0f), true);
    const Tensor r = rng.normal_tensor(Shape{2, 3, 5, 5}, 0.0f, 1.0f);
    const Variable out = layer.scale_output(y, [] { return Variable(); });
    autograd::sum(autograd::mul(out, Variable(r))).backward();
    double expected_ds = 0.0;
    bool dy_ok = true, out_ok = true;
    for (int64_t i = 0; i < r.numel(); ++i) {
      const auto k = static_cast<size_t>(i);
      expected_ds += static_cast<double>(r.span()[k]) * y.value().span()[k];
      dy_ok = dy_ok && y.grad().span()[k] == std::fabs(value) * r.span()[k];
      out_ok = out_ok && out.value().span()[k] == std::fabs(value) * y.value().span()[k];
    }
    expected_ds *= value > 0 ? 1.0 : -1.0;
    CHECK(out_ok);
    CHECK(dy_ok);
    CHECK(s.grad().span()[0] == Approx(expected_ds).epsilon(1e-6));
  }
}

TEST_CASE("Policy: names, JSON and errors", "[quant][policy]") {
  QuantPolicy p = policy(QuantMethod::kLint, 3, 4);
  p.estimator.kind = EstimatorKind::kEwgs;
  p.estimator.ewgs_delta = 0.25f;
  const QuantPolicy back = policy_from_json(core::Json::parse(to_json(p).dump()));
  CHECK(back.method == p.method);
  CHECK(back.weight_bits == 3);
  CHECK(back.act_bits == 4);
  CHECK(back.edge == p.edge);
  CHECK(back.estimator.kind == EstimatorKind::kEwgs);
  CHECK(back.estimator.ewgs_delta == 0.25f);
  for (QuantMethod m : {QuantMethod::kMinMax, QuantMethod::kLsq, QuantMethod::kPact, QuantMethod::kLint,
                        QuantMethod::kPot, QuantMethod::kApot})
    CHECK(parse_method(to_string(m)) == m);
  CHECK_THAT(test::error_message([] { parse_method("apot2"); }),
             Catch::Contains("minmax|lsq|pact|lint|pot|apot") && Catch::Contains("apot2"));
  CHECK_THAT(test::error_message([] { validate(policy(QuantMethod::kApot, 5, 2)); }),
             Catch::Contains("--wbits") && Catch::Contains("5"));
  CHECK_THAT(test::error_message([] { validate(policy(QuantMethod::kLsq, 2, 9)); }),
             Catch::Contains("--abits") && Catch::Contains("9"));
  QuantPolicy bad_delta = policy(QuantMethod::kLint);
  bad_delta.estimator.ewgs_delta = std::nanf("");
  CHECK_THROWS_AS(validate(bad_delta), Error);
  core::Rng rng(1);
  nn::Linear lonely(nn::LinearConfig{4, 2, true}, rng);
  CHECK_NOTHROW(quantize_model(lonely, policy(QuantMethod::kApot)));  // the classifier alone: an edge
}

}  // namespace
}  // namespace bitgrad::quant
