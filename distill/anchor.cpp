// anchor.cpp: virtual_anchor (distill/anchor.hpp).
#include "distill/anchor.hpp"

#include <cmath>
#include <string>

#include "core/error.hpp"

namespace bitgrad::distill {

core::Tensor virtual_anchor(const core::Tensor& teacher_logits, int bits) {
  check_lazy(teacher_logits.rank() == 2 && teacher_logits.dim(0) >= 1 && teacher_logits.dim(1) >= 2, [&] {
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
        return "virtual_anchor: expected finite teacher logits, got " + std::to_string(z[c]) + " at row " +
               std::to_string(b) + ", class " + std::to_string(c);
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
      // Nearest level, ties down: ceil(u - 0.5).
      int level = static_cast<int>(std::ceil((static_cast<double>(z[c]) - lo) / step - 0.5));
      level = level < 0 ? 0 : level > top ? top : level;
      if (c != arg && level == top) level = top - 1;
      if (c == arg) level = top;
      a[c] = static_cast<float>(lo + level * step);
    }
  }
  return out;
}

}  // namespace bitgrad::distill
