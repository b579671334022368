// metrics_test.cpp: top-1/top-5, per-class accuracy and the confusion matrix on hand-made logits.
#include <catch2/catch.hpp>

#include "nn/metrics.hpp"
#include "test_util.hpp"

namespace bitgrad::nn {
namespace {

using core::Shape;
using core::Tensor;

TEST_CASE("ClassificationMetrics: top-1, top-5, per class and confusion") {
  // 7 classes, 3 samples.
  const Tensor logits = Tensor::from(Shape{3, 7}, {
      0.9f, 0.1f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f,    // predicts 0, label 0: top-1 hit
      0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f,    // predicts 6, label 2: rank 5 -> top-5 hit
      0.7f, 0.6f, 0.5f, 0.4f, 0.3f, 0.2f, 0.1f});  // predicts 0, label 6: rank 7 -> miss
  const std::vector<int64_t> labels{0, 2, 6};
  ClassificationMetrics m(7);
  m.add(logits, labels);
  CHECK(m.count() == 3);
  CHECK(m.top1() == Approx(100.0 / 3));
  CHECK(m.top5() == Approx(200.0 / 3));
  const std::vector<double> pc = m.per_class();
  CHECK(pc[0] == 100.0);
  CHECK(pc[2] == 0.0);
  CHECK(pc[6] == 0.0);
  CHECK(pc[1] == 0.0);  // never seen
  CHECK(m.confusion()[2 * 7 + 6] == 1);
  CHECK(m.confusion()[6 * 7 + 0] == 1);
}

TEST_CASE("ClassificationMetrics: ties go to the lower index; bad input is refused") {
  ClassificationMetrics m(3);
  const std::vector<int64_t> labels{1};
  m.add(Tensor::from(Shape{1, 3}, {0.5f, 0.5f, 0.1f}), labels);
  CHECK(m.top1() == 0.0);  // argmax is class 0
  CHECK(m.top5() == 100.0);
  const std::vector<int64_t> bad{3};
  CHECK(test::error_message([&] { m.add(Tensor::from(Shape{1, 3}, {0, 0, 0}), bad); })
            .find("label 3") != std::string::npos);
  CHECK(test::error_message([&] { m.add(Tensor(Shape{2, 3}), labels); }).find("[2, 3]") !=
        std::string::npos);
}

}  // namespace
}  // namespace bitgrad::nn
