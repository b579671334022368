// conv.hpp: gradient-free 2-D convolution in float32 (a direct convolution on register-blocked
// kernels, oneTBB over the batch): the forward and both backward passes, and an inference forward
// fused with batch norm, residual addition and ReLU. autograd::conv2d wraps the first three into
// one differentiable op; benchmarks time them one by one; the deploy path's FP32 baseline calls the
// forward.
// Layouts: x [N, C, H, W], weight [O, C, kh, kw], bias [O], out [N, O, Ho, Wo], all contiguous
// row-major; Ho = (H + 2*padding - dilation*(kh-1) - 1)/stride + 1 (likewise Wo).
// Not here: grouped or transposed convolution, asymmetric padding.
#pragma once

#include <span>

#include "core/tensor.hpp"

namespace bitgrad::core {

struct Conv2dOptions {
  int stride = 1;
  int padding = 0;  // zeros on all four sides
  int dilation = 1;
};

// Output shape, after checking shapes and options; throws Error naming both shapes on mismatch.
Shape conv2d_output_shape(const Shape& x, const Shape& weight, const Conv2dOptions& options);
// bias may be undefined (no bias).
Tensor conv2d_forward(const Tensor& x, const Tensor& weight, const Tensor& bias,
                      const Conv2dOptions& options);
// Inference epilogue of conv2d_forward_fused, per output channel o:
//   v = conv(x) + bias;  v = (v - mean[o]) * scale[o] + offset[o];  v = v + residual;  v = max(v,
//   0)
// (the residual and ReLU steps optional): an eval-mode batch_norm, add and relu after the
// convolution, through the same core::batch_norm_row (core/eval_epilogue.hpp) as autograd's
// batch_norm, so the results equal the unfused ops exactly. Applied while each image's output is
// still in cache.
struct Conv2dEpilogue {
  std::span<const float> mean, scale, offset;  // [O] each
  Tensor residual;                             // [N, O, Ho, Wo], or undefined
  bool relu = false;
};
// conv2d_forward followed by the epilogue. Throws Error as conv2d_forward does, or when the
// epilogue's vectors are not [O] or the residual's shape differs from the output's.
Tensor conv2d_forward_fused(const Tensor& x, const Tensor& weight, const Tensor& bias,
                            const Conv2dEpilogue& epilogue, const Conv2dOptions& options);
// dx [N, C, H, W] from grad_out [N, O, Ho, Wo]: col2im(W^T g).
Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& weight, const Shape& x_shape,
                             const Conv2dOptions& options);
// dW [O, C, kh, kw] = sum_n g_n im2col(x_n)^T.
Tensor conv2d_backward_weight(const Tensor& grad_out, const Tensor& x, const Shape& weight_shape,
                              const Conv2dOptions& options);
// db [O] = sum of grad_out over N, Ho, Wo.
Tensor conv2d_backward_bias(const Tensor& grad_out);

}  // namespace bitgrad::core
