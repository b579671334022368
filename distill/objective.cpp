// objective.cpp: logit_distill_loss (distill/objective.hpp).
#include "distill/objective.hpp"

#include "autograd/ops.hpp"
#include "distill/anchor.hpp"
#include "distill/kd.hpp"

namespace bitgrad::distill {

autograd::Variable logit_distill_loss(const autograd::Variable& student_logits, const core::Tensor& teacher_logits,
                                      std::span<const int64_t> labels, const LogitDistillConfig& config) {
  autograd::Variable loss =
      autograd::scale(autograd::cross_entropy(student_logits, labels), config.ce) +
      autograd::scale(kd_loss(student_logits, teacher_logits, config.temperature), config.kd);
  if (config.anchor > 0.0f)
    loss = loss + autograd::scale(kd_loss(student_logits, virtual_anchor(teacher_logits, config.anchor_bits),
                                          config.temperature),
                                  config.anchor);
  return loss;
}

}  // namespace bitgrad::distill
