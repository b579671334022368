// kd.cpp: kd_loss. The math is autograd::kl_div (autograd/ops/loss.cpp, already golden-tested in
// tests/nn/golden_test.cpp); this file adds the distillation-facing argument checks and messages.
#include "distill/kd.hpp"

#include <cmath>
#include <string>

#include "autograd/ops.hpp"
#include "core/error.hpp"

namespace bitgrad::distill {

autograd::Variable kd_loss(const autograd::Variable& student_logits,
                           const core::Tensor& teacher_logits, float temperature) {
  const core::Shape& s = student_logits.shape();
  check_lazy(s.rank() == 2 && s[0] >= 1 && s[1] >= 1, [&] {
    return "kd_loss: expected student logits [B, C] with B, C >= 1, got " + s.to_string();
  });
  check_lazy(teacher_logits.shape() == s, [&] {
    return "kd_loss: expected teacher logits " + s.to_string() + " (the student's shape), got " +
           teacher_logits.shape().to_string();
  });
  check_lazy(temperature > 0.0f && std::isfinite(temperature), [&] {
    return "kd_loss: expected a temperature T > 0 (finite), got " + std::to_string(temperature);
  });
  return autograd::kl_div(student_logits, teacher_logits, temperature);
}

}  // namespace bitgrad::distill
