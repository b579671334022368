// optim_test.cpp: SGD against torch.optim.SGD's update rule, computed by hand.
#include <catch2/catch.hpp>

#include "core/error.hpp"
#include "nn/optim.hpp"
#include "nn/resnet_cifar.hpp"

namespace bitgrad::nn {
namespace {

using autograd::Variable;
using core::Shape;
using core::Tensor;

// One parameter w = 1 with a constant gradient 0.5, two steps.
std::pair<float, float> two_steps(const SgdOptions& options, float group_decay) {
  Variable w(Tensor::full(Shape{1}, 1.0f), true);
  Sgd sgd({ParamGroup{{w}, group_decay, 1.0f}}, options);
  std::pair<float, float> out;
  for (int step = 0; step < 2; ++step) {
    sgd.zero_grad();
    w.mutable_grad() = Tensor::full(Shape{1}, 0.5f);
    sgd.step();
    (step == 0 ? out.first : out.second) = w.value().item();
  }
  return out;
}

TEST_CASE("Sgd: plain, momentum, Nesterov and weight decay follow torch.optim.SGD") {
  // Plain: w -= lr * g.
  auto [a1, a2] = two_steps(SgdOptions{0.1f, 0.0f, 0.0f, false}, 0.0f);
  CHECK(a1 == Approx(0.95f));
  CHECK(a2 == Approx(0.90f));
  // Momentum 0.9, decay 0.1: d1 = 0.5 + 0.1 = 0.6, b1 = 0.6, w1 = 0.94;
  // d2 = 0.5 + 0.094 = 0.594, b2 = 0.54 + 0.594 = 1.134, w2 = 0.94 - 0.1134 = 0.8266.
  auto [b1, b2] = two_steps(SgdOptions{0.1f, 0.9f, 0.0f, false}, 0.1f);
  CHECK(b1 == Approx(0.94f));
  CHECK(b2 == Approx(0.8266f));
  // Nesterov: update = d + mu * b. Step 1: 0.6 + 0.54 = 1.14, w1 = 0.886;
  // d2 = 0.5 + 0.0886 = 0.5886, b2 = 0.54 + 0.5886 = 1.1286, update 0.5886 + 1.01574, w2 = 0.725566.
  auto [c1, c2] = two_steps(SgdOptions{0.1f, 0.9f, 0.0f, true}, 0.1f);
  CHECK(c1 == Approx(0.886f));
  CHECK(c2 == Approx(0.725566f));
}

TEST_CASE("Sgd: parameters without a gradient are left alone; bad options are refused") {
  Variable w(Tensor::full(Shape{2}, 3.0f), true);
  Sgd sgd({w}, SgdOptions{0.1f, 0.9f, 0.0f, false});
  sgd.step();
  CHECK(w.value().at({0}) == 3.0f);
  CHECK_THROWS_AS(Sgd({w}, SgdOptions{0.1f, 0.0f, 0.0f, true}), bitgrad::Error);
  CHECK_THROWS_AS(Sgd({w}, SgdOptions{-1.0f, 0.0f, 0.0f, false}), bitgrad::Error);
}

TEST_CASE("decay_groups: weights decay, BN parameters and biases do not") {
  core::Rng rng(3);
  ResNetCifar model(ResNetCifarConfig{8, 10, 1, Shortcut::kA}, rng);
  const std::vector<ParamGroup> groups = decay_groups(model, 5e-4f);
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].weight_decay == 5e-4f);
  CHECK(groups[1].weight_decay == 0.0f);
  // ResNet-8: conv1 + 2 convs per block x 3 blocks + linear weight = 8 decayed tensors.
  CHECK(groups[0].params.size() == 8);
  CHECK(groups[0].params.size() + groups[1].params.size() == model.parameters().size());
}

}  // namespace
}  // namespace bitgrad::nn
