// tensor_ops.hpp: gradient-free math on Tensors used by autograd ops, nn and the deploy path.
// Inputs may be any layout unless stated; outputs are new contiguous tensors. Broadcasting follows
// NumPy/PyTorch: shapes align at the trailing axis, a dimension of 1 (or a missing one) stretches.
// Not here: anything that records gradients (autograd/ops.hpp) or packed integer kernels (kernels/).
#pragma once

#include <span>
#include <string_view>

#include "core/tensor.hpp"

namespace bitgrad::core {

// The broadcast result shape of a and b; throws Error naming `op` and both shapes when incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b, std::string_view op);

// Element-wise with broadcasting.
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add_scalar(const Tensor& a, float s);
Tensor mul_scalar(const Tensor& a, float s);
// out[n, c, ...] = x[n, c, ...] * scale[c] (+ bias[c] when bias is non-empty), x [N, C, ...]
// contiguous, in float32, through core::scale_shift_row (core/eval_epilogue.hpp). Where an exact
// integer accumulator becomes the float output of a quantized layer in the QAT model's eval path
// (DESIGN.md §3.1); the packed runtime computes the same elements with quantized_tail_nhwc, which
// gives the same bits.
Tensor scale_channels(const Tensor& x, std::span<const float> scale, std::span<const float> bias = {});

// Sums t over the axes that were broadcast to reach t.shape() from `target` (the reduction that a
// broadcasting op's backward needs). Throws Error when target does not broadcast to t.shape().
Tensor sum_to(const Tensor& t, const Shape& target);
// Broadcasts t to `target` (a contiguous copy).
Tensor broadcast_to(const Tensor& t, const Shape& target);
// Sum over `axes` (negative allowed, empty = all); keepdim keeps reduced axes as size 1.
Tensor sum(const Tensor& t, std::span<const int> axes, bool keepdim);
// Sum of all elements, accumulated in double.
double sum_all(const Tensor& t);
// Mean of |x| over all elements, accumulated in double (0 for an empty tensor).
double mean_abs(const Tensor& t);

// In place: dst += alpha * src (same shape; dst contiguous).
void axpy_(Tensor& dst, float alpha, const Tensor& src);
// In place: dst *= s.
void scale_(Tensor& dst, float s);

// Matrix product of 2-D tensors: op(a) [M, K] x op(b) [K, N] -> [M, N], where op transposes when the
// flag is set (float32 Eigen GEMM). Throws Error on shape mismatch.
Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_a = false, bool transpose_b = false);

// f applied to every element: out[i] = f(x[i]).
template <typename F>
Tensor map(const Tensor& x, F f) {
  const Tensor c = x.contiguous();
  Tensor out = Tensor::empty(c.shape());
  const float* p = c.data();
  float* o = out.data();
  const int64_t n = c.numel();
  for (int64_t i = 0; i < n; ++i) o[i] = f(p[i]);
  return out;
}

// f applied pairwise to two tensors of the same shape (no broadcasting): out[i] = f(a[i], b[i]).
Tensor zip_check(const Tensor& a, const Tensor& b, std::string_view op);  // returns a.contiguous()
template <typename F>
Tensor zip(const Tensor& a, const Tensor& b, std::string_view op, F f) {
  const Tensor ca = zip_check(a, b, op);
  const Tensor cb = b.contiguous();
  Tensor out = Tensor::empty(ca.shape());
  const float* pa = ca.data();
  const float* pb = cb.data();
  float* o = out.data();
  const int64_t n = ca.numel();
  for (int64_t i = 0; i < n; ++i) o[i] = f(pa[i], pb[i]);
  return out;
}

// Largest |a - b| over elements of same-shape tensors (tests and parity checks).
float max_abs_diff(const Tensor& a, const Tensor& b);
// True when no element is NaN or infinite.
bool all_finite(const Tensor& t);

}  // namespace bitgrad::core
