// anchor_test.cpp: the virtual anchor of VA-QKD (distill/anchor.hpp): it keeps the teacher's arg-max,
// takes at most 2^b distinct values per sample, lies on the sample's uniform grid, and carries no
// gradient (it is a Tensor, and kd_loss against it sends gradient to the student only).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include "autograd/ops.hpp"
#include "core/rng.hpp"
#include "distill/anchor.hpp"
#include "distill/kd.hpp"
#include "distill/objective.hpp"

namespace bitgrad::distill {
namespace {

using core::Shape;
using core::Tensor;

int64_t argmax_row(const float* z, int64_t n) { return std::max_element(z, z + n) - z; }

TEST_CASE("Virtual anchor: teacher's arg-max kept, at most 2^b values per sample, on the grid", "[distill]") {
  core::Rng rng(5);
  for (int bits : {1, 2, 3, 4}) {
    INFO("bits " << bits);
    Tensor t = rng.normal_tensor(Shape{64, 10}, 0.0f, 4.0f);
    // Near-ties with the maximum, which plain rounding would send to the top level too.
    t.data()[0] = 5.0f;
    t.data()[1] = 4.999f;
    const Tensor a = virtual_anchor(t, bits);
    REQUIRE(a.shape() == t.shape());
    for (int64_t b = 0; b < 64; ++b) {
      const float* z = t.data() + b * 10;
      const float* v = a.data() + b * 10;
      CHECK(argmax_row(v, 10) == argmax_row(z, 10));
      const std::set<float> distinct(v, v + 10);
      CHECK(distinct.size() <= static_cast<size_t>(1) << bits);
      const float lo = *std::min_element(z, z + 10), hi = *std::max_element(z, z + 10);
      CHECK(*std::min_element(v, v + 10) >= lo - 1e-5f);
      CHECK(*std::max_element(v, v + 10) == Approx(hi));
      const double step = (static_cast<double>(hi) - lo) / ((1 << bits) - 1);
      for (int64_t c = 0; c < 10; ++c) {
        const double level = (v[c] - lo) / step;
        CHECK(std::fabs(level - std::round(level)) < 1e-3);
        CHECK(std::fabs(v[c] - z[c]) <= step + 1e-5);  // nearest level, or one below the top
      }
    }
  }
}

TEST_CASE("Virtual anchor: constant rows, shapes and bad input", "[distill]") {
  Tensor same = Tensor::full(Shape{2, 4}, 1.5f);
  const Tensor a = virtual_anchor(same, 2);
  for (int64_t i = 0; i < a.numel(); ++i) CHECK(a.data()[i] == 1.5f);
  CHECK_THROWS_WITH(virtual_anchor(Tensor::zeros(Shape{4}), 2), Catch::Contains("expected teacher logits [B, C]"));
  CHECK_THROWS_WITH(virtual_anchor(Tensor::zeros(Shape{2, 3}), 0), Catch::Contains("anchor bits in 1..8"));
  Tensor bad = Tensor::zeros(Shape{1, 3});
  bad.data()[1] = std::nanf("");
  CHECK_THROWS_WITH(virtual_anchor(bad, 2), Catch::Contains("finite"));
}

TEST_CASE("Virtual anchor as a KD target: gradient reaches the student only", "[distill]") {
  core::Rng rng(9);
  const Tensor s = rng.normal_tensor(Shape{3, 5}), t = rng.normal_tensor(Shape{3, 5}, 0.0f, 3.0f);
  autograd::Variable student(s, true);
  const Tensor anchor = virtual_anchor(t, 2);
  const autograd::Variable loss = kd_loss(student, anchor, 4.0f);
  loss.backward();
  REQUIRE(student.grad().defined());
  double norm = 0.0;
  for (int64_t i = 0; i < s.numel(); ++i) norm += std::fabs(student.grad().data()[i]);
  CHECK(norm > 0.0);
  CHECK(std::isfinite(loss.item()));
}

TEST_CASE("distill_loss (logit) is CE + KD (+ anchor KD) with their weights", "[distill]") {
  core::Rng rng(3);
  const Tensor s = rng.normal_tensor(Shape{4, 6}), t = rng.normal_tensor(Shape{4, 6}, 0.0f, 2.0f);
  const std::vector<int64_t> labels = {0, 5, 2, 3};
  const autograd::Variable student(s, false);
  const float ce = autograd::cross_entropy(student, labels).item();
  const float kd = kd_loss(student, t, 3.0f).item();
  const float ak = kd_loss(student, virtual_anchor(t, 2), 3.0f).item();
  DistillConfig c;
  c.temperature = 3.0f;
  c.ce = 0.5f;
  c.kd = 2.0f;
  CHECK(distill_loss(student, {}, t, {}, labels, c).item() == Approx(0.5f * ce + 2.0f * kd).epsilon(1e-5));
  c.anchor = 1.5f;
  CHECK(distill_loss(student, {}, t, {}, labels, c).item() ==
        Approx(0.5f * ce + 2.0f * kd + 1.5f * ak).epsilon(1e-5));
}

}  // namespace
}  // namespace bitgrad::distill
