// conv2d.cpp: Conv2d construction (shape checks, PyTorch default init) and forward.
#include "nn/conv2d.hpp"

#include <string>
#include <utility>

#include "core/conv.hpp"
#include "core/error.hpp"
#include "core/tensor_ops.hpp"
#include "nn/init.hpp"

namespace bitgrad::nn {

Conv2d::Conv2d(const Conv2dConfig& config, core::Rng& rng) : Module("Conv2d"), config_(config) {
  check_lazy(
      config.in_channels > 0 && config.out_channels > 0 && config.kernel > 0 && config.stride > 0 &&
          config.dilation > 0 && config.padding >= 0,
      [&] {
        return "Conv2d: expected positive channels, kernel, stride, dilation and padding >= 0, "
               "got in=" +
               std::to_string(config.in_channels) + " out=" + std::to_string(config.out_channels) +
               " kernel=" + std::to_string(config.kernel) +
               " stride=" + std::to_string(config.stride) +
               " padding=" + std::to_string(config.padding) +
               " dilation=" + std::to_string(config.dilation);
      });
  weight_ = Variable(
      Tensor(core::Shape{config.out_channels, config.in_channels, config.kernel, config.kernel}),
      true);
  if (config.bias) bias_ = Variable(Tensor(core::Shape{config.out_channels}), true);
  default_init_(weight_, &bias_, rng);
  register_parameter("weight", weight_, ParamKind::kWeight);
  if (config.bias) register_parameter("bias", bias_, ParamKind::kBias);
}

autograd::Conv2dOptions Conv2d::options() const {
  autograd::Conv2dOptions o;
  o.stride = config_.stride;
  o.padding = config_.padding;
  o.dilation = config_.dilation;
  return o;
}

Variable Conv2d::forward(const Variable& x) const {
  check_lazy(x.rank() == 4 && x.dim(1) == config_.in_channels, [&] {
    return "Conv2d: expected input [N, " + std::to_string(config_.in_channels) + ", H, W], got " +
           x.shape().to_string() + " (weight " + weight_.shape().to_string() + ")";
  });
  if (!quantizer_) return autograd::conv2d(x, weight_, bias_, options());
  if (!is_training() && !autograd::grad_enabled()) {
    if (auto ops = quantizer_->integer_operands(x.value(), weight_.value())) {
      const Tensor acc = core::conv2d_forward(ops->input, ops->weight, Tensor(), options());
      record_integer_trace(this, ops->input, acc);
      return Variable(core::scale_channels(acc, ops->scale, scaled_bias(bias_, ops->output_factor)));
    }
  }
  const Variable qx = quantizer_->quantize_input(x);  // input before weight: the documented order
  const Variable qw = quantizer_->quantize_weight(weight_);
  const Variable y = autograd::conv2d(qx, qw, bias_, options());
  return quantizer_->scale_output(y, [&] {
    autograd::NoGradGuard no_grad;
    return autograd::conv2d(x, weight_, bias_, options());
  });
}

void Conv2d::set_quantizer(std::unique_ptr<LayerQuantizer> quantizer) {
  check(quantizer != nullptr, "Conv2d::set_quantizer: expected a quantizer, got null");
  check_lazy(!quantizer_, [&] {
    return "Conv2d::set_quantizer: expected a layer without a quantizer, this one already has " +
           quantizer_->type_name();
  });
  quantizer_ = std::move(quantizer);
  register_module("quant", *quantizer_);
}

}  // namespace bitgrad::nn
