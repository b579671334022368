// objective_test.cpp: the feature and contrastive variants of distill_loss (distill/objective.hpp)
// compose their parts with the configured weights, feature_anchor quantizes each group to its own
// uniform 2^b grid, the tap names follow the model's depth, and a filtered FeatureTaps keeps
// exactly the wanted features without changing the model's output.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "autograd/ops.hpp"
#include "core/rng.hpp"
#include "distill/anchor.hpp"
#include "distill/contrastive.hpp"
#include "distill/feature.hpp"
#include "distill/objective.hpp"
#include "nn/resnet_cifar.hpp"
#include "student_gradcheck.hpp"

namespace bitgrad::distill {
namespace {

using autograd::Variable;
using core::Shape;
using core::Tensor;

TEST_CASE("feature_anchor: per (sample, channel) a uniform 2^b grid over the group's range",
          "[distill]") {
  core::Rng rng(11);
  const Tensor f = rng.normal_tensor(Shape{3, 4, 5, 6}, 0.0f, 2.0f);
  for (int bits : {1, 2, 3}) {
    INFO("bits " << bits);
    const Tensor a = feature_anchor(f, bits);
    REQUIRE(a.shape() == f.shape());
    const int levels = 1 << bits;
    for (int64_t g = 0; g < 12; ++g) {
      const float* x = f.data() + g * 30;
      const float* v = a.data() + g * 30;
      const float lo = *std::min_element(x, x + 30), hi = *std::max_element(x, x + 30);
      const float step = (hi - lo) / static_cast<float>(levels - 1);
      CHECK(std::set<float>(v, v + 30).size() <= static_cast<size_t>(levels));
      CHECK(*std::min_element(v, v + 30) == Approx(lo));
      CHECK(*std::max_element(v, v + 30) == Approx(hi));
      for (int i = 0; i < 30; ++i) CHECK(std::abs(v[i] - x[i]) <= 0.5f * step * 1.0001f);
    }
  }
  // A [B, D] embedding: one group per row.
  Tensor e = Tensor::zeros(Shape{2, 4});
  const float row[] = {0.0f, 1.0f, 2.0f, 3.0f};
  std::copy(row, row + 4, e.data());
  std::fill(e.data() + 4, e.data() + 8, 7.0f);  // all equal: kept
  const Tensor ea = feature_anchor(e, 1);
  CHECK(std::vector<float>(ea.data(), ea.data() + 8) ==
        std::vector<float>{0.0f, 0.0f, 3.0f, 3.0f, 7.0f, 7.0f, 7.0f, 7.0f});
  CHECK_THROWS_WITH(feature_anchor(Tensor::zeros(Shape{5}), 2),
                    Catch::Contains("expected features [B, D]"));
  CHECK_THROWS_WITH(feature_anchor(e, 0), Catch::Contains("anchor bits in 1..8"));
}

TEST_CASE("distill_loss: feature and contrastive variants are CE + D(teacher) + D(anchor)",
          "[distill]") {
  core::Rng rng(12);
  const Tensor zs = rng.normal_tensor(Shape{4, 6}, 0.0f, 1.0f),
               zt = rng.normal_tensor(Shape{4, 6}, 0.0f, 2.0f);
  const std::vector<int64_t> labels = {1, 0, 5, 3};
  const Variable logits(zs, false);
  const float ce = autograd::cross_entropy(logits, labels).item();

  std::vector<Variable> fs;
  std::vector<Tensor> ft;
  for (int64_t c : {2, 3, 4}) {
    fs.emplace_back(rng.normal_tensor(Shape{4, c, 3, 3}, 0.0f, 1.0f), false);
    ft.push_back(rng.normal_tensor(Shape{4, c, 3, 3}, 0.0f, 1.0f));
  }
  DistillConfig c;
  c.loss = DistillLoss::kFeature;
  c.ce = 0.5f;
  c.kd = 2.0f;
  float mse = 0.0f, mse_anchor = 0.0f;
  for (size_t l = 0; l < 3; ++l) {
    mse += feature_mse_loss(fs[l], ft[l]).item() / 3.0f;
    mse_anchor += feature_mse_loss(fs[l], feature_anchor(ft[l], 2)).item() / 3.0f;
  }
  CHECK(distill_loss(logits, fs, zt, ft, labels, c).item() ==
        Approx(0.5f * ce + 2.0f * mse).epsilon(1e-5));
  c.anchor = 1.5f;
  CHECK(distill_loss(logits, fs, zt, ft, labels, c).item() ==
        Approx(0.5f * ce + 2.0f * mse + 1.5f * mse_anchor).epsilon(1e-5));

  const std::vector<Variable> es = {Variable(rng.normal_tensor(Shape{4, 8}, 0.0f, 1.0f), false)};
  const std::vector<Tensor> et = {rng.normal_tensor(Shape{4, 8}, 0.0f, 1.0f)};
  c.loss = DistillLoss::kContrastive;
  c.tau = 0.2f;
  const float nce = contrastive_loss(es[0], et[0], 0.2f).item();
  const float nce_anchor = contrastive_loss(es[0], feature_anchor(et[0], 2), 0.2f).item();
  CHECK(distill_loss(logits, es, zt, et, labels, c).item() ==
        Approx(0.5f * ce + 2.0f * nce + 1.5f * nce_anchor).epsilon(1e-5));

  // The gradient reaches the student's features (and only through the distance terms and CE).
  const Variable f0(fs[0].value(), true);
  const std::vector<Variable> fs_grad = {f0, fs[1], fs[2]};
  c.loss = DistillLoss::kFeature;
  distill_loss(logits, fs_grad, zt, ft, labels, c).backward();
  REQUIRE(f0.grad().defined());
  double norm = 0.0;
  for (int64_t i = 0; i < f0.grad().numel(); ++i) norm += std::abs(f0.grad().data()[i]);
  CHECK(norm > 0.0);

  CHECK_THROWS_WITH(distill_loss(logits, es, zt, ft, labels, c),
                    Catch::Contains("expected 3 student and teacher features"));
  CHECK_THROWS_WITH(parse_distill_loss("fitnet"),
                    Catch::Contains("expected logit, feature or contrastive"));
}

TEST_CASE("distill_loss: finite-difference gradients of every variant, with and without the anchor",
          "[distill][grad]") {
  core::Rng rng(14);
  const std::vector<int64_t> labels = {2, 0, 4};
  const Tensor zt = rng.normal_tensor(Shape{3, 5}, 0.0f, 3.0f);
  for (const float anchor : {0.0f, 1.0f}) {
    DistillConfig c;
    c.anchor = anchor;
    c.ce = 0.7f;
    c.kd = 1.3f;
    INFO("anchor " << anchor);
    c.loss = DistillLoss::kLogit;
    test::gradcheck("logit", rng.normal_tensor(Shape{3, 5}, 0.0f, 2.0f),
                    [&](const Variable& z) { return distill_loss(z, {}, zt, {}, labels, c); });
    const Variable z(rng.normal_tensor(Shape{3, 5}, 0.0f, 2.0f), false);
    c.loss = DistillLoss::kFeature;
    const std::vector<Tensor> ft = {rng.normal_tensor(Shape{3, 2, 2, 2}, 0.0f, 1.0f),
                                    rng.normal_tensor(Shape{3, 2, 2, 2}, 0.0f, 1.0f),
                                    rng.normal_tensor(Shape{3, 1, 2, 2}, 0.0f, 1.0f)};
    const Variable f1(rng.normal_tensor(Shape{3, 2, 2, 2}, 0.0f, 1.0f), false);
    const Variable f2(rng.normal_tensor(Shape{3, 1, 2, 2}, 0.0f, 1.0f), false);
    test::gradcheck("feature", rng.normal_tensor(Shape{3, 2, 2, 2}, 0.0f, 1.0f),
                    [&](const Variable& f0) {
                      return distill_loss(z, std::vector<Variable>{f0, f1, f2}, zt, ft, labels, c);
                    });
    c.loss = DistillLoss::kContrastive;
    const std::vector<Tensor> et = {rng.normal_tensor(Shape{3, 6}, 0.0f, 1.0f)};
    test::gradcheck("contrastive", rng.normal_tensor(Shape{3, 6}, 0.0f, 1.0f),
                    [&](const Variable& e) {
                      return distill_loss(z, std::vector<Variable>{e}, zt, et, labels, c);
                    });
  }
}

TEST_CASE("distill_tap_names follow the depth, filtered taps keep the wanted features only",
          "[distill]") {
  core::Rng rng(13);
  nn::ResNetCifar r20(
      {.depth = 20, .num_classes = 10, .in_channels = 1, .shortcut = nn::Shortcut::kA}, rng);
  nn::ResNetCifar r32(
      {.depth = 32, .num_classes = 10, .in_channels = 1, .shortcut = nn::Shortcut::kA}, rng);
  CHECK(distill_tap_names(DistillLoss::kLogit, r20).empty());
  CHECK(distill_tap_names(DistillLoss::kFeature, r20) ==
        std::vector<std::string>{"layer1.2.out", "layer2.2.out", "layer3.2.out"});
  CHECK(distill_tap_names(DistillLoss::kFeature, r32) ==
        std::vector<std::string>{"layer1.4.out", "layer2.4.out", "layer3.4.out"});
  CHECK(distill_tap_names(DistillLoss::kContrastive, r32) == std::vector<std::string>{"pool"});

  r20.eval();
  const Variable x(rng.normal_tensor(Shape{2, 1, 12, 12}, 0.0f, 1.0f));
  const Tensor plain = r20.forward(x).value();
  for (const std::vector<std::string>& wanted :
       {std::vector<std::string>{"layer2.2.out", "pool"},
        std::vector<std::string>{"layer1.0.pre_add"}, std::vector<std::string>{}}) {
    nn::FeatureTaps taps(wanted);
    const Tensor out = r20.forward(x, &taps).value();
    CHECK(taps.names() == wanted);
    for (int64_t i = 0; i < out.numel(); ++i)
      CHECK(out.data()[i] == Approx(plain.data()[i]).margin(1e-5));
  }
  nn::FeatureTaps all;
  r20.forward(x, &all);
  nn::FeatureTaps some({"layer2.2.out"});
  r20.forward(x, &some);
  const Tensor a = all.at("layer2.2.out").value(), b = some.at("layer2.2.out").value();
  for (int64_t i = 0; i < a.numel(); ++i) CHECK(a.data()[i] == Approx(b.data()[i]).margin(1e-5));
}

}  // namespace
}  // namespace bitgrad::distill
