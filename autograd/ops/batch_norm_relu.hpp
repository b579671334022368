// batch_norm_relu.hpp: relu(batch_norm(x) + residual) as one differentiable op, for the BN -> (add)
// -> ReLU pattern of residual networks (nn/batch_norm.hpp's forward_relu, nn/resnet_cifar.cpp), and
// the eval-mode affine map of batch_norm for fusing it into a convolution at inference. Implemented
// beside batch_norm in autograd/ops/norm.cpp. Not in autograd/ops.hpp: it is a fusion of existing
// ops (same values and gradients bit for bit), not a new primitive, and has no gradcheck row of its
// own (tests/nn compare it with the unfused ops).
#pragma once

#include <vector>

#include "autograd/ops.hpp"

namespace bitgrad::autograd {

// y = relu(batch_norm(x, gamma, beta, running_mean, running_var, options) + residual), residual
// [same shape as x] or undefined (no addition). Running statistics are updated as batch_norm does.
// The same float operations as batch_norm, add and relu applied in sequence, so values and
// gradients match them exactly, with two (four with a residual) fewer passes over memory forward
// and one fewer backward; the intermediate batch_norm output is never stored. Backward: gm = g * (y
// > 0) is the residual's gradient and batch_norm's output gradient. Throws Error as batch_norm
// does, or when residual's shape differs.
Variable batch_norm_relu(const Variable& x, const Variable& gamma, const Variable& beta,
                         Tensor& running_mean, Tensor& running_var, const BatchNormOptions& options,
                         const Variable& residual = Variable());

// The per-channel affine map of eval-mode batch_norm, y = (x - mean) * scale + offset, computed
// with exactly batch_norm's arithmetic (so that core::conv2d_forward_fused's epilogue reproduces it
// bit for bit). gamma and beta may be undefined (1 and 0); all defined vectors must be [C].
struct BatchNormAffine {
  std::vector<float> mean, scale, offset;
};
BatchNormAffine batch_norm_eval_affine(const Tensor& gamma, const Tensor& beta,
                                       const Tensor& running_mean, const Tensor& running_var,
                                       float eps);

}  // namespace bitgrad::autograd
