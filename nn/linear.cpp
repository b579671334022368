// linear.cpp: Linear construction (PyTorch default init) and forward.
#include "nn/linear.hpp"

#include <string>
#include <utility>

#include "core/conv.hpp"
#include "core/error.hpp"
#include "core/tensor_ops.hpp"
#include "nn/init.hpp"

namespace bitgrad::nn {

Linear::Linear(const LinearConfig& config, core::Rng& rng) : Module("Linear"), config_(config) {
  check_lazy(config.in_features > 0 && config.out_features > 0, [&] {
    return "Linear: expected positive in/out features, got in=" +
           std::to_string(config.in_features) + " out=" + std::to_string(config.out_features);
  });
  weight_ = Variable(Tensor(core::Shape{config.out_features, config.in_features}), true);
  if (config.bias) bias_ = Variable(Tensor(core::Shape{config.out_features}), true);
  default_init_(weight_, &bias_, rng);
  register_parameter("weight", weight_, ParamKind::kWeight);
  if (config.bias) register_parameter("bias", bias_, ParamKind::kBias);
}

Variable Linear::forward(const Variable& x) const {
  check_lazy(x.rank() == 2 && x.dim(1) == config_.in_features, [&] {
    return "Linear: expected input [N, " + std::to_string(config_.in_features) + "], got " +
           x.shape().to_string();
  });
  if (!quantizer_) return autograd::linear(x, weight_, bias_);
  if (!is_training() && !autograd::grad_enabled()) {
    if (auto ops = quantizer_->integer_operands(x.value(), weight_.value())) {
      const Tensor acc = core::matmul(ops->input, ops->weight, false, true);
      record_integer_trace(this, ops->input, acc);
      return Variable(core::scale_channels(acc, ops->scale, scaled_bias(bias_, ops->output_factor)));
    }
  }
  const Variable qx = quantizer_->quantize_input(x);  // input before weight: the documented order
  const Variable qw = quantizer_->quantize_weight(weight_);
  const Variable y = autograd::linear(qx, qw, bias_);
  return quantizer_->scale_output(y, [&] {
    autograd::NoGradGuard no_grad;
    return autograd::linear(x, weight_, bias_);
  });
}

void Linear::set_quantizer(std::unique_ptr<LayerQuantizer> quantizer) {
  check(quantizer != nullptr, "Linear::set_quantizer: expected a quantizer, got null");
  check_lazy(!quantizer_, [&] {
    return "Linear::set_quantizer: expected a layer without a quantizer, this one already has " +
           quantizer_->type_name();
  });
  quantizer_ = std::move(quantizer);
  register_module("quant", *quantizer_);
}

}  // namespace bitgrad::nn
