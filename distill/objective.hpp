// objective.hpp: the student's loss of logit distillation, KD and VA-QKD (SEEDS.md §1):
//   L = ce · CE(z_S, labels) + kd · KD(z_S, z_T) + anchor · KD(z_S, Q(z_T, b))
// with KD = kd_loss at temperature T (T² · batchmean KL, distill/kd.hpp) and Q the virtual anchor
// (distill/anchor.hpp); the anchor term only when `anchor` > 0 (VA-QKD), so KD is the same call with
// anchor = 0. The teacher logits are a Tensor (no gradient). Used by `bitgrad distill` and the
// step-cost benchmark. Not here: running the teacher, feature or contrastive variants.
#pragma once

#include <cstdint>
#include <span>

#include "autograd/variable.hpp"

namespace bitgrad::distill {

struct LogitDistillConfig {
  float ce = 1.0f;           // weight of the cross-entropy on the labels
  float kd = 1.0f;           // weight of KD(teacher)
  float anchor = 0.0f;       // weight of KD(virtual anchor); 0: plain KD (no anchor computed)
  float temperature = 4.0f;  // T > 0
  int anchor_bits = 2;       // b in 1..8
};

// student_logits [B, C], teacher_logits [B, C], labels [B]. Throws bitgrad::Error as its parts do.
autograd::Variable logit_distill_loss(const autograd::Variable& student_logits, const core::Tensor& teacher_logits,
                                      std::span<const int64_t> labels, const LogitDistillConfig& config);

}  // namespace bitgrad::distill
