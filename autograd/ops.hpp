// ops.hpp: every differentiable op in bitgrad, as free functions on Variables.
// Each op's backward sits beside its forward in autograd/ops/<family>.cpp and is built with
// make_node() (variable.hpp), the same mechanism custom ops use. Backward formulas are computed with
// gradient-free core ops, so gradients of gradients are NOT supported (no double backward).
// Shape errors throw bitgrad::Error naming the op and the shapes involved.
// Shapes in comments: N batch, C channels, H/W spatial, K classes.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "autograd/variable.hpp"
#include "core/conv.hpp"

namespace bitgrad::autograd {

// ---- element-wise (ops/elementwise.cpp) --------------------------------------------------------
// Binary ops broadcast like NumPy; backward sums each gradient back to its input's shape.
Variable add(const Variable& a, const Variable& b);  // da = g, db = g
Variable sub(const Variable& a, const Variable& b);  // da = g, db = -g
Variable mul(const Variable& a, const Variable& b);  // da = g*b, db = g*a
Variable div(const Variable& a, const Variable& b);  // da = g/b, db = -g*a/b^2
Variable add_scalar(const Variable& x, float s);     // x + s
Variable scale(const Variable& x, float s);          // x * s
Variable neg(const Variable& x);                     // -x
Variable exp(const Variable& x);                     // dx = g*exp(x)
Variable log(const Variable& x);                     // dx = g/x
Variable sqrt(const Variable& x);                    // dx = g/(2 sqrt(x))
Variable pow(const Variable& x, float exponent);     // dx = g*p*x^(p-1)
Variable abs(const Variable& x);                     // dx = g*sign(x) (0 at 0)
Variable sign(const Variable& x);                    // -1, 0, +1; dx = 0 (use an STE for more)
// Clamp to [lo, hi]; dx = g where lo <= x <= hi, else 0 (PyTorch's convention at the bounds).
Variable clamp(const Variable& x, float lo, float hi);
// out = cond != 0 ? a : b (cond is data, not differentiable; all three broadcast together).
Variable where(const Tensor& cond, const Variable& a, const Variable& b);
Variable relu(const Variable& x);                           // dx = g*(x > 0)
Variable leaky_relu(const Variable& x, float slope = 0.01f);  // dx = g*(x > 0 ? 1 : slope)
Variable tanh(const Variable& x);                           // dx = g*(1 - y^2)
Variable sigmoid(const Variable& x);                        // dx = g*y*(1 - y)

inline Variable operator+(const Variable& a, const Variable& b) { return add(a, b); }
inline Variable operator-(const Variable& a, const Variable& b) { return sub(a, b); }
inline Variable operator*(const Variable& a, const Variable& b) { return mul(a, b); }
inline Variable operator/(const Variable& a, const Variable& b) { return div(a, b); }
inline Variable operator-(const Variable& x) { return neg(x); }
inline Variable operator*(const Variable& x, float s) { return scale(x, s); }
inline Variable operator*(float s, const Variable& x) { return scale(x, s); }
inline Variable operator+(const Variable& x, float s) { return add_scalar(x, s); }

// ---- reductions (ops/reduce.cpp) ----------------------------------------------------------------
// Over `axes` (negative allowed; empty = all axes). keepdim keeps reduced axes with size 1.
Variable sum(const Variable& x, std::vector<int> axes = {}, bool keepdim = false);
Variable mean(const Variable& x, std::vector<int> axes = {}, bool keepdim = false);
// Maximum along one axis; the gradient goes to the first maximal element (like PyTorch's max(dim)).
Variable max(const Variable& x, int axis, bool keepdim = false);

// ---- linear algebra (ops/linalg.cpp) ------------------------------------------------------------
// a [M, K] x b [K, N] -> [M, N]. da = g b^T, db = a^T g.
Variable matmul(const Variable& a, const Variable& b);
// x [N, in], weight [out, in], bias [out] or undefined -> x weight^T + bias, [N, out].
Variable linear(const Variable& x, const Variable& weight, const Variable& bias);

// ---- shape (ops/shape.cpp) ----------------------------------------------------------------------
Variable reshape(const Variable& x, std::vector<int64_t> dims);  // one dim may be -1
Variable flatten(const Variable& x, int start_axis = 1);         // [N, ...] -> [N, prod(...)]
Variable concat(const std::vector<Variable>& xs, int axis);      // shapes equal except on `axis`
// x[..., start:end:step, ...] on one axis (Python slicing, step >= 1); dx scatters g back, zeros
// elsewhere. Option-A shortcuts use slice(slice(x, 2, 0, H, 2), 3, 0, W, 2).
Variable slice(const Variable& x, int axis, int64_t start, int64_t end, int64_t step = 1);
// x [N, C, H, W] -> [N, before + C + after, H, W] with zero channels (option-A shortcut padding).
Variable pad_channels(const Variable& x, int64_t before, int64_t after);

// ---- convolution (ops/conv.cpp) -----------------------------------------------------------------
using Conv2dOptions = core::Conv2dOptions;  // stride, padding (all sides), dilation
// x [N, C, H, W], weight [O, C, kh, kw], bias [O] or undefined -> [N, O, Ho, Wo] with
// Ho = (H + 2p - d(kh-1) - 1)/s + 1. Computed by core/conv.hpp (direct convolution kernels, oneTBB).
// dx = col2im(W^T g), dW = sum_n g_n col_n^T, db = sum of g over N, H, W.
Variable conv2d(const Variable& x, const Variable& weight, const Variable& bias,
                const Conv2dOptions& options = {});

// ---- normalisation (ops/norm.cpp) ---------------------------------------------------------------
struct BatchNormOptions {
  bool training = true;   // batch statistics (and update running stats) vs running statistics
  float momentum = 0.1f;  // running = (1 - momentum) running + momentum batch (PyTorch convention)
  float eps = 1e-5f;
};
// x [N, C] or [N, C, H, W]; gamma, beta [C]; running_mean, running_var [C] are updated in place when
// training (running_var with the unbiased batch variance, as PyTorch does). Normalises with the
// biased batch variance in training, the running statistics in eval. Undefined gamma/beta mean 1 and 0
// (no affine); undefined running statistics in training mean "do not track". Training needs more than
// one value per channel (N*H*W > 1), else Error.
Variable batch_norm(const Variable& x, const Variable& gamma, const Variable& beta,
                    Tensor& running_mean, Tensor& running_var, const BatchNormOptions& options);

// ---- pooling and resampling (ops/pool.cpp) --------------------------------------------------------
// x [N, C, H, W]. avg_pool2d counts padded zeros in the divisor (PyTorch count_include_pad=true).
// Both windowed pools need padding <= kernel/2 (PyTorch's rule), else Error.
Variable avg_pool2d(const Variable& x, int kernel, int stride, int padding = 0);
// Padding is -inf; the gradient goes to the first maximal element of each window.
Variable max_pool2d(const Variable& x, int kernel, int stride, int padding = 0);
// [N, C, H, W] -> [N, C], the mean over H and W.
Variable global_avg_pool2d(const Variable& x);
// [N, C, H, W] -> [N, C, H*scale, W*scale], nearest neighbour; dx sums each scale x scale block.
Variable upsample_nearest2d(const Variable& x, int scale);

// ---- softmax and losses (ops/loss.cpp) ------------------------------------------------------------
enum class Reduction { kMean, kSum, kNone };

Variable softmax(const Variable& x, int axis = -1);
Variable log_softmax(const Variable& x, int axis = -1);  // stable: subtracts the max
// logits [N, K], targets N class indices in [0, K) -> mean (or sum, or [N]) of -log softmax[target].
Variable cross_entropy(const Variable& logits, std::span<const int64_t> targets,
                       Reduction reduction = Reduction::kMean);
// Hinton's distillation term: T^2 * (1/N) * sum_n KL(softmax(t_n/T) || softmax(s_n/T)).
// student_logits [N, K] (differentiable), teacher_logits [N, K] (a Tensor: the teacher is detached).
// Batch-mean over N (PyTorch reduction='batchmean'), multiplied by T^2 so that the gradient scale does
// not shrink with T: d/ds = (T/N) (softmax(s/T) - softmax(t/T)).
Variable kl_div(const Variable& student_logits, const Tensor& teacher_logits, float temperature);
// Mean squared error over all elements: mean((a - b)^2). Both sides may require grad.
Variable mse(const Variable& a, const Variable& b);

}  // namespace bitgrad::autograd
