// quantizer.cpp: QuantizedLayer, the composition of weight, input and output-scale quantization.
#include "quant/quantizer.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <utility>

#include "autograd/ops.hpp"
#include "core/error.hpp"
#include "core/tensor_ops.hpp"
#include "quant/blocks.hpp"

namespace bitgrad::quant {

TensorQuantizer::TensorQuantizer(std::string type_name)
    : nn::Module(std::move(type_name)), ewgs_delta_(Tensor::zeros(core::Shape{1})) {
  register_buffer("ewgs_delta", ewgs_delta_);
}

void TensorQuantizer::set_ewgs_delta(float delta) {
  check_lazy(std::isfinite(delta) && delta >= 0.0f, [&] {
    return type_name() + ": expected an EWGS delta >= 0, got " + std::to_string(delta);
  });
  Estimator e = estimator_;
  e.ewgs_delta = delta;
  set_estimator(e);
  ewgs_delta_.fill_(delta);
}

void TensorQuantizer::load_estimator_state() {
  const float delta = ewgs_delta_.span()[0];
  check_lazy(std::isfinite(delta) && delta >= 0.0f, [&] {
    return type_name() + ": the loaded ewgs_delta is " + std::to_string(delta) + ", expected a value >= 0";
  });
  if (delta == estimator_.ewgs_delta) return;
  Estimator e = estimator_;
  e.ewgs_delta = delta;
  set_estimator(e);
}

QuantizedLayer::QuantizedLayer(std::unique_ptr<TensorQuantizer> weight,
                               std::unique_ptr<TensorQuantizer> input, bool with_output_scale)
    : nn::LayerQuantizer("QuantizedLayer"), weight_(std::move(weight)), input_(std::move(input)) {
  check(weight_ != nullptr, "QuantizedLayer: expected a weight quantizer, got null");
  if (with_output_scale) {
    output_scale_ = Variable(Tensor::full(core::Shape{1}, 1.0f), true);
    register_parameter("output_scale", output_scale_, nn::ParamKind::kBias);
  }
  register_module("weight", *weight_);
  if (input_) register_module("input", *input_);
}

namespace {
// |s| * y as one op (s of shape [1]): dy = |s| g, ds = sign(s) * sum(g * y), sign(0) = 0 as torch.abs.
// One pass each way, where a broadcasting mul would reduce ds through the generic sum_to.
Variable scale_by_abs(const Variable& y, const Variable& s) {
  const float sv = s.value().contiguous().span()[0];
  const float a = std::fabs(sv);
  const Tensor yv = y.value().contiguous();
  return autograd::make_node(core::mul_scalar(yv, a), {y, s}, "scale_by_abs",
                             [yv, sv, a](const Tensor& g, const std::vector<bool>& needs) {
                               const Tensor gc = g.contiguous();
                               Tensor dy, ds;
                               if (needs[0]) dy = core::mul_scalar(gc, a);
                               if (needs[1]) {
                                 const float sign = sv > 0.0f ? 1.0f : (sv < 0.0f ? -1.0f : 0.0f);
                                 ds = Tensor::full(core::Shape{1}, static_cast<float>(sign * dot(gc.data(), yv.data(), yv.numel())));
                               }
                               return std::vector<Tensor>{dy, ds};
                             });
}

// y + perturbation, recording dL/dy into the slot on the way back (the identity for the gradient).
Variable probe(const Variable& y, QuantizedLayer::ProbeSlot& slot) {
  Tensor value = slot.perturbation.defined() ? core::add(y.value(), slot.perturbation) : y.value();
  return autograd::make_node(std::move(value), {y}, "hessian_probe",
                             [&slot](const Tensor& g, const std::vector<bool>&) {
                               slot.grad = g.clone();
                               return std::vector<Tensor>{g};
                             });
}
}  // namespace

Variable QuantizedLayer::quantize_input(const Variable& x) {
  if (!input_) return x;
  if (calibrating_) input_->calibrate(x.value());
  const Variable y = input_->fake_quant(x);
  return input_probe_ != nullptr ? probe(y, *input_probe_) : y;
}

Variable QuantizedLayer::quantize_weight(const Variable& weight) {
  if (calibrating_) weight_->calibrate(weight.value());
  const Variable y = weight_->fake_quant(weight);
  return weight_probe_ != nullptr ? probe(y, *weight_probe_) : y;
}

// EWGS and DAQ apply the output scale as |s| (ALGORITHMS.md §2.1, §7.2) and initialise it as
// mean|conv(a, W)| / mean|conv(a_q, W_q)| on the calibration batch.
Variable QuantizedLayer::scale_output(const Variable& y, const FloatOutput& float_output) {
  if (!output_scale_.defined()) return y;
  if (calibrating_) {
    const Tensor reference = float_output().value();
    const double quantized = core::mean_abs(y.value());
    const double ratio = quantized > 0.0 ? core::mean_abs(reference) / quantized : 1.0;
    Tensor value = output_scale_.value();  // a handle: fills the parameter in place
    value.fill_(static_cast<float>(ratio));
  }
  return scale_by_abs(y, output_scale_);
}

std::optional<nn::LayerQuantizer::IntegerOperands> QuantizedLayer::integer_operands(
    const Tensor& x, const Tensor& weight) const {
  if (!input_ || calibrating_ || input_probe_ != nullptr || weight_probe_ != nullptr) return std::nullopt;
  const Encoded in = input_->encode(x);
  const Encoded w = weight_->encode(weight);
  const int64_t out_channels = weight.dim(0);
  const int64_t fan_in = weight.numel() / out_channels;
  if (in.map.scale.size() != 1 || in.map.zero_point.size() != 1) return std::nullopt;
  const bool per_channel = w.map.scale.size() != 1;
  if (per_channel && static_cast<int64_t>(w.map.scale.size()) != out_channels) return std::nullopt;
  if (w.map.zero_point.size() != 1 && static_cast<int64_t>(w.map.zero_point.size()) != out_channels)
    return std::nullopt;
  auto max_abs_level = [](const CodeMap& map) {
    int64_t m = 0;
    for (size_t z = 0; z < map.zero_point.size(); ++z)
      for (const int32_t level : map.levels)
        m = std::max<int64_t>(m, std::abs(int64_t{level} - map.zero_point[z]));
    return m;
  };
  if (max_abs_level(in.map) * max_abs_level(w.map) * fan_in >= (int64_t{1} << 24)) return std::nullopt;

  IntegerOperands ops;
  ops.input = Tensor::empty(x.shape());
  ops.weight = Tensor::empty(weight.shape());
  const int32_t zp_in = in.map.zero_point[0];
  float* input = ops.input.data();
  parallel_blocks(static_cast<int64_t>(in.codes.size()), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) input[i] = static_cast<float>(in.codes[static_cast<size_t>(i)] - zp_in);
  });
  float* weight_out = ops.weight.data();
  for (int64_t o = 0; o < out_channels; ++o) {
    const int32_t zp = w.map.zero_point.size() == 1 ? w.map.zero_point[0] : w.map.zero_point[static_cast<size_t>(o)];
    for (int64_t i = o * fan_in; i < (o + 1) * fan_in; ++i)
      weight_out[i] = static_cast<float>(w.codes[static_cast<size_t>(i)] - zp);
  }
  ops.output_factor = output_scale_.defined() ? std::fabs(output_scale_.value().item()) : 1.0f;
  ops.scale.resize(static_cast<size_t>(out_channels));
  for (int64_t o = 0; o < out_channels; ++o) {
    const float s_w = w.map.scale[per_channel ? static_cast<size_t>(o) : 0];
    ops.scale[static_cast<size_t>(o)] = in.map.scale[0] * s_w * ops.output_factor;
  }
  return ops;
}

core::Json QuantizedLayer::describe() const {
  core::Json out = core::Json::object();
  out.set("weight", weight_->describe());
  out.set("input", input_ ? input_->describe() : core::Json());
  out.set("output_scale", output_scale_.defined());
  return out;
}

}  // namespace bitgrad::quant
