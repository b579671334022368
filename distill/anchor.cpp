// anchor.cpp: virtual_anchor and feature_anchor (distill/anchor.hpp).
#include "distill/anchor.hpp"

#include <cmath>
#include <string>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "core/error.hpp"

namespace bitgrad::distill {

namespace {

// The nearest of the levels lo + k·step, k = 0..top (ties to the lower level: ceil(u - 0.5)).
int nearest_level(float x, float lo, double step, int top) {
  const int level = static_cast<int>(std::ceil((static_cast<double>(x) - lo) / step - 0.5));
  return level < 0 ? 0 : level > top ? top : level;
}

}  // namespace

core::Tensor virtual_anchor(const core::Tensor& teacher_logits, int bits) {
  check_lazy(teacher_logits.rank() == 2 && teacher_logits.dim(0) >= 1 && teacher_logits.dim(1) >= 2,
             [&] {
               return "virtual_anchor: expected teacher logits [B, C] with B >= 1, C >= 2, got " +
                      teacher_logits.shape().to_string();
             });
  check_lazy(bits >= 1 && bits <= 8, [&] {
    return "virtual_anchor: expected anchor bits in 1..8, got " + std::to_string(bits);
  });
  const core::Tensor t = teacher_logits.contiguous();
  const int64_t rows = t.dim(0), classes = t.dim(1);
  core::Tensor out = core::Tensor::empty(t.shape());
  const int top = (1 << bits) - 1;
  for (int64_t b = 0; b < rows; ++b) {
    const float* z = t.data() + b * classes;
    float* a = out.data() + b * classes;
    int64_t arg = 0;
    float lo = z[0], hi = z[0];
    for (int64_t c = 0; c < classes; ++c) {
      check_lazy(std::isfinite(z[c]), [&] {
        return "virtual_anchor: expected finite teacher logits, got " + std::to_string(z[c]) +
               " at row " + std::to_string(b) + ", class " + std::to_string(c);
      });
      if (z[c] > hi) {
        hi = z[c];
        arg = c;
      }
      if (z[c] < lo) lo = z[c];
    }
    if (hi == lo) {
      for (int64_t c = 0; c < classes; ++c) a[c] = z[c];
      continue;
    }
    const double step = (static_cast<double>(hi) - lo) / top;
    for (int64_t c = 0; c < classes; ++c) {
      int level = nearest_level(z[c], lo, step, top);
      if (c != arg && level == top) level = top - 1;
      if (c == arg) level = top;
      a[c] = static_cast<float>(lo + level * step);
    }
  }
  return out;
}

core::Tensor feature_anchor(const core::Tensor& features, int bits) {
  check_lazy(features.rank() >= 2 && features.numel() > 0, [&] {
    return "feature_anchor: expected features [B, D] or [B, C, ...] with no empty dimension, got " +
           features.shape().to_string();
  });
  check_lazy(bits >= 1 && bits <= 8, [&] {
    return "feature_anchor: expected anchor bits in 1..8, got " + std::to_string(bits);
  });
  const core::Tensor t = features.contiguous();
  const int64_t groups = t.rank() == 2 ? t.dim(0) : t.dim(0) * t.dim(1);
  const int64_t size = t.numel() / groups;
  core::Tensor out = core::Tensor::empty(t.shape());
  const int top = (1 << bits) - 1;
  // Groups in parallel when the tensor is large (a training batch's feature maps); each group
  // serially.
  const auto quantize_groups = [&](int64_t first, int64_t last) {
    for (int64_t g = first; g < last; ++g) {
      const float* x = t.data() + g * size;
      float* a = out.data() + g * size;
      float lo = x[0], hi = x[0];
      for (int64_t i = 0; i < size; ++i) {
        check_lazy(std::isfinite(x[i]), [&] {
          return "feature_anchor: expected finite features, got " + std::to_string(x[i]) +
                 " in group " + std::to_string(g) + " at position " + std::to_string(i);
        });
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
      }
      if (hi == lo) {
        for (int64_t i = 0; i < size; ++i) a[i] = x[i];
        continue;
      }
      const double step = (static_cast<double>(hi) - lo) / top;
      for (int64_t i = 0; i < size; ++i)
        a[i] = static_cast<float>(lo + nearest_level(x[i], lo, step, top) * step);
    }
  };
  if (t.numel() < (int64_t{1} << 16)) {
    quantize_groups(0, groups);
  } else {
    tbb::parallel_for(
        tbb::blocked_range<int64_t>(0, groups),
        [&](const tbb::blocked_range<int64_t>& r) { quantize_groups(r.begin(), r.end()); });
  }
  return out;
}

}  // namespace bitgrad::distill
