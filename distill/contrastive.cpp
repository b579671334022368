// contrastive.cpp: in-batch InfoNCE from autograd ops (normalise, matmul against the fixed teacher
// matrix, cross_entropy with targets 0..B-1).
#include "distill/contrastive.hpp"

#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "autograd/ops.hpp"
#include "core/error.hpp"
#include "distill/l2_normalize.hpp"

namespace bitgrad::distill {

autograd::Variable contrastive_loss(const autograd::Variable& student_emb,
                                    const core::Tensor& teacher_emb, float tau) {
  const core::Shape& s = student_emb.shape();
  check_lazy(s.rank() == 2 && s[0] >= 1 && s[1] >= 1, [&] {
    return "contrastive_loss: expected student embeddings [B, D] with B, D >= 1, got " +
           s.to_string();
  });
  check_lazy(teacher_emb.shape() == s, [&] {
    return "contrastive_loss: expected teacher embeddings " + s.to_string() +
           " (the student's shape), got " + teacher_emb.shape().to_string();
  });
  check_lazy(tau > 0.0f && std::isfinite(tau), [&] {
    return "contrastive_loss: expected a temperature tau > 0 (finite), got " + std::to_string(tau);
  });
  const autograd::Variable s_hat = l2_normalize_rows(student_emb);
  const core::Tensor t_hat = l2_normalize_rows(autograd::Variable(teacher_emb, false)).value();
  const autograd::Variable t_hat_transposed(t_hat.transpose(0, 1).contiguous(), false);  // [D, B]
  const autograd::Variable logits =
      autograd::scale(autograd::matmul(s_hat, t_hat_transposed), 1.0f / tau);
  std::vector<int64_t> targets(static_cast<size_t>(s[0]));
  std::iota(targets.begin(), targets.end(), int64_t{0});
  return autograd::cross_entropy(logits, targets, autograd::Reduction::kMean);
}

}  // namespace bitgrad::distill
