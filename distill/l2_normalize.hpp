// l2_normalize.hpp: l2_normalize_rows, PyTorch's F.normalize(x, p=2, dim=1, eps) for a [N, D]
// Variable, composed from autograd ops. Shared by the attention, channel-attention and contrastive
// losses. Not here: other norms or axes (reshape to [N, D] first).
#pragma once

#include "autograd/variable.hpp"

namespace bitgrad::distill {

// x [N, D] -> y [N, D], y[n, :] = x[n, :] / max(||x[n, :]||_2, eps)   (F.normalize's definition).
// Built as x / sqrt(clamp(sum_d x^2, eps^2, FLT_MAX)): the same forward, and the same gradient as
// PyTorch's, including at a zero row (the clamp passes no gradient below eps^2, so dx = g / eps
// rather than NaN). Differentiable in x; a Variable without grad gives a plain value (teacher
// side). Throws bitgrad::Error when x is not 2-D, or eps is not positive and finite.
autograd::Variable l2_normalize_rows(const autograd::Variable& x, float eps = 1e-12f);

}  // namespace bitgrad::distill
