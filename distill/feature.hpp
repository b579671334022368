// feature.hpp: feature-map alignment losses between a student's and a teacher's intermediate
// features (read by name from nn::FeatureTaps): FitNet-style mean squared error and attention
// transfer (Zagoruyko & Komodakis, ICLR 2017). Not here: the regressor / adapter that FitNets put
// on the student side when shapes differ (the caller applies one first), the choice of layers, the
// loss weights (the caller sums layers, applies λ).
#pragma once

#include "autograd/variable.hpp"

namespace bitgrad::distill {

// FitNet hint loss. student [B, ...] (differentiable), teacher the same shape (a Tensor: no
// gradient).
//   L = (1/N) Σ_i (s_i − t_i)²   over all N = numel elements (F.mse_loss, reduction='mean').
//   dL/ds = (2/N)(s − t).
// Throws bitgrad::Error when the shapes differ, or the input is a scalar (rank 0) or empty.
autograd::Variable feature_mse_loss(const autograd::Variable& student, const core::Tensor& teacher);

// Attention transfer. student [B, C, H, W] (differentiable), teacher [B, C', H, W] (a Tensor; C'
// may differ from C, B, H and W must match). Per sample, the spatial attention map is
//   Q(F)_b = [ (1/C) Σ_c F²_{b,c,h,w} ]_{h,w}      (flattened to H·W positions)
//   a(F)_b = Q(F)_b / max(‖Q(F)_b‖_2, 1e-12)      (F.normalize over the H·W positions)
// and
//   L = (1/B) Σ_b Σ_{h,w} ( a(F_s)_b − a(F_t)_b )²,
// i.e. the squared L2 distance between the normalised maps, summed over positions and averaged over
// the batch. In PyTorch: (at(s) − at(t)).pow(2).sum(1).mean() with
// at(x) = F.normalize(x.pow(2).mean(1).view(x.size(0), -1)).
// The constant: the official code's at_loss takes .mean() over positions as well, so it equals this
// L divided by H·W; the paper writes β/2 · Σ ‖a_s − a_t‖_2 (a norm, not squared) with β = 1000. We
// keep no β and no 1/2: the caller's weight carries the constant.
// Gradient by autograd through pow, mean, the normalisation and the sum.
// Throws bitgrad::Error when either input is not 4-D, when B, H or W differ, or when an input is
// empty.
autograd::Variable attention_transfer_loss(const autograd::Variable& student,
                                           const core::Tensor& teacher);

}  // namespace bitgrad::distill
