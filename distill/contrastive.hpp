// contrastive.hpp: contrastive_loss, an in-batch InfoNCE loss between student and teacher
// embeddings (the contrastive variant of VA-QKD's distillation; SEEDS.md §1 leaves its form to us).
// Not here: CRD's memory bank of negatives and its learned projection heads (Tian et al., ICLR
// 2020); this form draws its negatives from the batch only. Any projection to a common D is the
// caller's.
#pragma once

#include "autograd/variable.hpp"

namespace bitgrad::distill {

// student_emb s [B, D] (differentiable), teacher_emb t [B, D] (a Tensor: no gradient), tau > 0.
// Rows are L2-normalised (F.normalize, eps 1e-12): ŝ_b = s_b / max(‖s_b‖, 1e-12), likewise t̂_b.
// Then
//   logits = ŝ t̂ᵀ / tau                                  [B, B] (cosine similarities / tau)
//   L = (1/B) Σ_b −log softmax(logits_b)_b
//     = (1/B) Σ_b [ −ŝ_b·t̂_b / tau + log Σ_j exp(ŝ_b·t̂_j / tau) ],
// cross-entropy with the diagonal as the targets: the teacher embedding of the same sample is the
// positive, the other B − 1 teacher embeddings in the batch are the negatives (one direction only,
// student → teacher). In PyTorch: F.cross_entropy(F.normalize(s) @ F.normalize(t).T / tau,
// torch.arange(B)). With B = 1 the loss is 0. Gradient by autograd through the normalisation,
// matmul and cross_entropy. Throws bitgrad::Error when s is not [B, D] with B, D >= 1, when t's
// shape differs, or when tau is not positive and finite.
autograd::Variable contrastive_loss(const autograd::Variable& student_emb,
                                    const core::Tensor& teacher_emb, float tau);

}  // namespace bitgrad::distill
