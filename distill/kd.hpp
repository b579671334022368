// kd.hpp: kd_loss, Hinton's knowledge-distillation term with temperature (ALGORITHMS.md §4), the
// soft-target part of KD, QKD and VA-QKD (where the teacher side may be a virtual anchor).
// Not here: the cross-entropy on the hard labels or the weighting of terms (the caller adds them),
// the element-mean variant (÷ B·C) some repositories use by mistake (ALGORITHMS.md §4's table).
#pragma once

#include "autograd/variable.hpp"

namespace bitgrad::distill {

// student_logits s [B, C] (differentiable), teacher_logits t [B, C] (a Tensor: stop-gradient by
// type), temperature T > 0. With p = softmax(t/T) and q = softmax(s/T) along C (stable log-softmax:
// the row maximum is subtracted),
//   L = T^2 · (1/B) · Σ_b KL(p_b ‖ q_b),   KL(p ‖ q) = Σ_c p_c (log p_c − log q_c),
// a scalar: "batchmean" (sum over classes, mean over the batch), the CRD/SQAKD DistillKL form,
// equal to F.kl_div(F.log_softmax(s/T, 1), F.softmax(t/T, 1), reduction='batchmean') * T * T. Terms
// with p_c == 0 contribute 0. Gradient: dL/ds = (T/B) (q − p); the T² factor keeps its magnitude
// roughly independent of T (Hinton et al. 2015). Identical logits give L = 0 and ds = 0. Computed
// by autograd::kl_div (one node whose backward is the saved (T/B)(q − p)). Throws bitgrad::Error
// when s is not [B, C] with B, C >= 1, when t's shape differs from s's, or when T is not positive
// and finite.
autograd::Variable kd_loss(const autograd::Variable& student_logits,
                           const core::Tensor& teacher_logits, float temperature);

}  // namespace bitgrad::distill
