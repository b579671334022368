// resnet_fused_test.cpp: ResNetCifar's fused paths (nn/resnet_cifar.cpp) give the same numbers as
// the plain ops, bit for bit: eval-mode inference without a graph (convolution with the batch-norm,
// add and ReLU epilogue) against the same forward with grad mode on (fused BN -> add -> ReLU op
// only) and with feature taps (unfused tail), for both shortcut kinds and input shapes; training
// forward and gradients against the tapped (unfused) forward.
#include <catch2/catch.hpp>

#include <vector>

#include "autograd/ops.hpp"
#include "core/rng.hpp"
#include "core/tensor_ops.hpp"
#include "nn/feature_taps.hpp"
#include "nn/resnet_cifar.hpp"

namespace bitgrad::nn {
namespace {

// Gives every BN layer non-trivial running statistics and affine parameters.
void randomise_batch_norms(ResNetCifar& model, core::Rng& rng) {
  for (const NamedModule& m : model.named_modules())
    if (auto* bn = dynamic_cast<BatchNorm2d*>(m.module)) {
      const core::Shape c{bn->num_features()};
      bn->running_mean() = rng.uniform_tensor(c, -0.5f, 0.5f);
      bn->running_var() = rng.uniform_tensor(c, 0.5f, 2.0f);
      bn->weight().set_value(rng.uniform_tensor(c, 0.5f, 1.5f));
      bn->bias().set_value(rng.uniform_tensor(c, -0.3f, 0.3f));
    }
}

TEST_CASE("resnet_cifar: eval inference without a graph equals the unfused forward", "[nn]") {
  for (Shortcut shortcut : {Shortcut::kA, Shortcut::kB})
    for (int64_t channels : {1, 3}) {
      core::Rng rng(21);
      ResNetCifar model(
          {.depth = 8, .num_classes = 10, .in_channels = channels, .shortcut = shortcut}, rng);
      randomise_batch_norms(model, rng);
      model.eval();
      const Variable x(rng.uniform_tensor(core::Shape{3, channels, 12, 12}, -1.0f, 1.0f));
      const Tensor with_grad = model.forward(x).value();
      FeatureTaps taps;
      Tensor fused, tapped;
      {
        const autograd::NoGradGuard no_grad;
        fused = model.forward(x).value();
        tapped = model.forward(x, &taps).value();
      }
      INFO("shortcut " << (shortcut == Shortcut::kA ? "A" : "B") << " channels " << channels);
      CHECK(core::max_abs_diff(fused, with_grad) == 0.0f);
      CHECK(core::max_abs_diff(fused, tapped) == 0.0f);
      CHECK(core::max_abs_diff(fused, core::Tensor(fused.shape())) > 0.0f);
    }
}

TEST_CASE("resnet_cifar: the fused training forward and gradients equal the unfused ones", "[nn]") {
  core::Rng rng(22);
  ResNetCifar model({.depth = 8, .num_classes = 10, .in_channels = 3, .shortcut = Shortcut::kA},
                    rng);
  model.train();
  const Variable x(rng.uniform_tensor(core::Shape{4, 3, 10, 10}, -1.0f, 1.0f));
  const std::vector<int64_t> targets = {1, 7, 3, 3};
  std::vector<std::vector<Tensor>> grads(2);
  std::vector<Tensor> losses(2);
  for (int tapped = 0; tapped < 2; ++tapped) {
    FeatureTaps taps;
    for (const Variable& p : model.parameters()) Variable(p).zero_grad();
    const Variable loss =
        autograd::cross_entropy(model.forward(x, tapped ? &taps : nullptr), targets);
    loss.backward();
    losses[static_cast<size_t>(tapped)] = loss.value();
    for (const Variable& p : model.parameters())
      grads[static_cast<size_t>(tapped)].push_back(p.grad());
  }
  CHECK(core::max_abs_diff(losses[0], losses[1]) == 0.0f);
  REQUIRE(grads[0].size() == grads[1].size());
  for (size_t i = 0; i < grads[0].size(); ++i) {
    INFO("parameter " << i);
    CHECK(core::max_abs_diff(grads[0][i], grads[1][i]) == 0.0f);
  }
}

}  // namespace
}  // namespace bitgrad::nn
