// conv.hpp: gradient-free 2-D convolution in float32 (im2col + Eigen GEMM, oneTBB over the batch):
// the forward and both backward passes. autograd::conv2d wraps these three into one differentiable
// op; benchmarks time them one by one; the deploy path's FP32 baseline calls the forward.
// Layouts: x [N, C, H, W], weight [O, C, kh, kw], bias [O], out [N, O, Ho, Wo], all contiguous
// row-major; Ho = (H + 2*padding - dilation*(kh-1) - 1)/stride + 1 (likewise Wo).
// Not here: grouped or transposed convolution, asymmetric padding.
#pragma once

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
// dx [N, C, H, W] from grad_out [N, O, Ho, Wo]: col2im(W^T g).
Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& weight, const Shape& x_shape,
                             const Conv2dOptions& options);
// dW [O, C, kh, kw] = sum_n g_n im2col(x_n)^T.
Tensor conv2d_backward_weight(const Tensor& grad_out, const Tensor& x, const Shape& weight_shape,
                              const Conv2dOptions& options);
// db [O] = sum of grad_out over N, Ho, Wo.
Tensor conv2d_backward_bias(const Tensor& grad_out);

}  // namespace bitgrad::core
