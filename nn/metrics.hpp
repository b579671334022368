// metrics.hpp: classification metrics accumulated over batches of logits: top-1 and top-5 accuracy,
// per-class accuracy and the confusion matrix. Pure bookkeeping on Tensors (no gradients).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/tensor.hpp"

namespace bitgrad::nn {

class ClassificationMetrics {
 public:
  explicit ClassificationMetrics(int64_t classes);

  // logits [N, classes], labels N values in [0, classes); throws Error on shape or label mismatch.
  // Ties in the logits go to the lower class index (as argmax does).
  void add(const core::Tensor& logits, std::span<const int64_t> labels);

  int64_t count() const { return count_; }
  int64_t classes() const { return classes_; }
  // Percentages in [0, 100]; 0 when nothing was added.
  double top1() const;
  double top5() const;  // top-min(5, classes)
  // Per class: correct / seen of that class, in percent (0 for a class never seen).
  std::vector<double> per_class() const;
  // confusion()[true * classes + predicted] = count.
  const std::vector<int64_t>& confusion() const { return confusion_; }

 private:
  int64_t classes_;
  int64_t count_ = 0;
  int64_t top1_ = 0;
  int64_t top5_ = 0;
  std::vector<int64_t> confusion_;
};

}  // namespace bitgrad::nn
