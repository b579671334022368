// channel_attention.hpp: channel_attention_loss, the channel-wise attention (feature-alignment)
// loss of HAST and of the BAG data-free paper (ALGORITHMS.md §6.1; SEEDS.md §3's l_CA), for one
// layer. Not here: the sum over layers and the weight λ (HAST: λ Σ_l over the 9 ResUnit body
// outputs of a ResNet-20), which the caller applies; the unused spatial variant (see feature.hpp's
// attention transfer).
#pragma once

#include "autograd/variable.hpp"

namespace bitgrad::distill {

// student F_s [B, C, H, W] (differentiable), teacher F_t [B, C, H', W'] (a Tensor: no gradient; B
// and C must match, the spatial size may differ since it is averaged away). Per sample,
//   A(F)_b = v_b / max(‖v_b‖_2, 1e-12),   v_b = [ (1/(H·W)) Σ_{h,w} F²_{b,c,h,w} ]_{c=1..C}
// (the channel vector of spatial means of F², L2-normalised over channels: F.normalize(p=2, dim=1,
// eps=1e-12)), and
//   L = (1/(B·C)) Σ_{b,c} ( A(F_s)_{b,c} − A(F_t)_{b,c} )²,
// a scalar. In PyTorch: (A(s) − A(t)).pow(2).mean() with A(x) = F.normalize(x.pow(2).mean([2, 3])).
// Gradient by autograd through pow, mean, the normalisation and the mean.
// Throws bitgrad::Error when either input is not 4-D or is empty, or when B or C differ.
autograd::Variable channel_attention_loss(const autograd::Variable& student,
                                          const core::Tensor& teacher);

}  // namespace bitgrad::distill
