// conv.cpp: autograd::conv2d, the differentiable wrapper over core/conv.hpp's forward and backward
// passes. Not here: the convolution arithmetic itself (core/conv.cpp).
#include "autograd/ops.hpp"
#include "core/conv.hpp"

namespace bitgrad::autograd {

Variable conv2d(const Variable& x, const Variable& weight, const Variable& bias,
                const Conv2dOptions& options) {
  const bool has_bias = bias.defined();
  Tensor out = core::conv2d_forward(x.value(), weight.value(), has_bias ? bias.value() : Tensor(),
                                    options);
  std::vector<Variable> inputs{x, weight};
  if (has_bias) inputs.push_back(bias);
  // dx needs only the weight and dW only x: keep each only when the other side needs its gradient.
  const Tensor saved_x = weight.requires_grad() ? x.value() : Tensor();
  const Tensor saved_w = x.requires_grad() ? weight.value() : Tensor();
  const Shape x_shape = x.shape();
  const Shape w_shape = weight.shape();
  return make_node(std::move(out), inputs, "conv2d",
                   [saved_x, saved_w, x_shape, w_shape, options](
                       const Tensor& g, const std::vector<bool>& needs) {
                     std::vector<Tensor> grads(needs.size());
                     if (needs[0]) grads[0] = core::conv2d_backward_input(g, saved_w, x_shape, options);
                     if (needs[1]) grads[1] = core::conv2d_backward_weight(g, saved_x, w_shape, options);
                     if (needs.size() > 2 && needs[2]) grads[2] = core::conv2d_backward_bias(g);
                     return grads;
                   });
}

}  // namespace bitgrad::autograd
