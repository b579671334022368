// metrics.cpp: top-k counting and the confusion matrix.
#include "nn/metrics.hpp"

#include <algorithm>
#include <string>

#include "core/error.hpp"

namespace bitgrad::nn {

ClassificationMetrics::ClassificationMetrics(int64_t classes)
    : classes_(classes), confusion_(static_cast<size_t>(classes * classes), 0) {
  check_lazy(classes >= 1, [&] {
    return "ClassificationMetrics: expected at least 1 class, got " + std::to_string(classes);
  });
}

void ClassificationMetrics::add(const core::Tensor& logits, std::span<const int64_t> labels) {
  check_lazy(logits.rank() == 2 && logits.dim(1) == classes_ &&
                 logits.dim(0) == static_cast<int64_t>(labels.size()),
             [&] {
               return "ClassificationMetrics: expected logits [" + std::to_string(labels.size()) +
                      ", " + std::to_string(classes_) + "], got " + logits.shape().to_string();
             });
  const core::Tensor c = logits.contiguous();
  const int64_t k = std::min<int64_t>(5, classes_);
  for (size_t i = 0; i < labels.size(); ++i) {
    const int64_t label = labels[i];
    check_lazy(label >= 0 && label < classes_, [&] {
      return "ClassificationMetrics: label " + std::to_string(label) + " at index " +
             std::to_string(i) + " is outside [0, " + std::to_string(classes_) + ")";
    });
    const float* row = c.data() + static_cast<int64_t>(i) * classes_;
    int64_t best = 0;
    for (int64_t j = 1; j < classes_; ++j)
      if (row[j] > row[best]) best = j;
    // The label is in the top k when fewer than k classes beat it (ties broken by index, as argmax).
    int64_t better = 0;
    for (int64_t j = 0; j < classes_; ++j)
      if (row[j] > row[label] || (row[j] == row[label] && j < label)) ++better;
    ++count_;
    top1_ += best == label;
    top5_ += better < k;
    ++confusion_[static_cast<size_t>(label * classes_ + best)];
  }
}

double ClassificationMetrics::top1() const {
  return count_ ? 100.0 * static_cast<double>(top1_) / static_cast<double>(count_) : 0.0;
}

double ClassificationMetrics::top5() const {
  return count_ ? 100.0 * static_cast<double>(top5_) / static_cast<double>(count_) : 0.0;
}

std::vector<double> ClassificationMetrics::per_class() const {
  std::vector<double> out(static_cast<size_t>(classes_), 0.0);
  for (int64_t t = 0; t < classes_; ++t) {
    int64_t seen = 0;
    for (int64_t p = 0; p < classes_; ++p) seen += confusion_[static_cast<size_t>(t * classes_ + p)];
    if (seen > 0)
      out[static_cast<size_t>(t)] =
          100.0 * static_cast<double>(confusion_[static_cast<size_t>(t * classes_ + t)]) /
          static_cast<double>(seen);
  }
  return out;
}

}  // namespace bitgrad::nn
