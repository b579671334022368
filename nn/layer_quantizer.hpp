// layer_quantizer.hpp: LayerQuantizer, the seam through which quant/ turns a Conv2d or Linear into
// its quantization-aware twin without editing model code. A layer with a quantizer attached computes
//   y = scale_output(op(quantize_input(x), quantize_weight(weight)) + bias)
// where op is the layer's convolution or matrix product; every other layer, and the model's own
// forward, are unchanged. The quantizer is a Module registered as the layer's child "quant", so its
// learnable parameters (clipping thresholds, steps, output scales) and buffers (EMA ranges, EWGS
// scaling factors) appear in named_parameters() / state dicts as "<layer>.quant.<name>" and reach the
// optimizer like any other parameter.
// Not here: the quantizers themselves and the policy choosing which layers get one (quant/).
#pragma once

#include <functional>
#include <optional>
#include <vector>

#include "autograd/variable.hpp"
#include "nn/module.hpp"

namespace bitgrad::nn {

// Implemented in quant/. Calls come from the owning layer's forward, in the order input, weight,
// output; the methods may update the quantizer's state (running ranges) in training mode.
class LayerQuantizer : public Module {
 public:
  // The layer input after (fake) quantization; return x unchanged when inputs stay float.
  virtual Variable quantize_input(const Variable& x) = 0;
  // The weight after (fake) quantization.
  virtual Variable quantize_weight(const Variable& weight) = 0;
  // The layer output (after bias) mapped once more, e.g. EWGS's learnable output scale |s|; the
  // identity by default. `float_output` computes the layer's float output op(x, weight) + bias on
  // demand (no graph), for data-dependent initialisation (EWGS sets s from the ratio of the two).
  using FloatOutput = std::function<Variable()>;
  virtual Variable scale_output(const Variable& y, const FloatOutput& float_output) {
    (void)float_output;
    return y;
  }

  // The eval-mode integer form of the layer (DESIGN.md §3.1), or nullopt when it has none (inputs
  // left float, or the quantizer is calibrating or probed). With it, the layer computes
  //   y[n, o, ...] = op(input, weight)[n, o, ...] * scale[o] + bias[o] * output_factor
  // through core::scale_channels, where input and weight hold code - zero_point of every element as
  // float32 integers, so op's sums are exact (integers below 2^24) in any summation order, and scale[o]
  // is the float product s_in * s_w[o] * output_factor. It equals the fake-quant forward up to float
  // rounding, and the packed runtime reproduces it bit for bit from the same integer sums. Layers use
  // it in eval mode with gradients off (with gradients on, e.g. Grad-CAM, they keep the
  // differentiable fake-quant path).
  struct IntegerOperands {
    Tensor input;
    Tensor weight;
    std::vector<float> scale;   // [O]
    float output_factor = 1.0f; // what multiplies the bias (EWGS's |s|, else 1)
  };
  virtual std::optional<IntegerOperands> integer_operands(const Tensor& x, const Tensor& weight) const {
    (void)x;
    (void)weight;
    return std::nullopt;
  }

 protected:
  using Module::Module;
};

// bias[o] * factor for each o as IntegerOperands' layers add it (empty when the layer has no bias).
std::vector<float> scaled_bias(const Variable& bias, float factor);

// What a quantized layer's eval-mode integer path computed: its input as code - zero point and its
// integer sums op(input, weight) before scale_channels, both float32 holding integers, in the layer's
// own layout ([N, C, H, W] / [N, O, Ho, Wo] for convolutions). `bitgrad verify` and the parity tests
// compare them with the packed runtime's (kernels/runtime/packed_runtime.hpp LayerTrace).
struct IntegerTraceEntry {
  const Module* layer = nullptr;  // the Conv2d or Linear
  Tensor input;
  Tensor acc;
};
// While an IntegerTraceScope lives, every integer-path forward on this thread appends an entry to
// its sink (in execution order). Scopes do not nest (the inner one wins until it ends).
class IntegerTraceScope {
 public:
  explicit IntegerTraceScope(std::vector<IntegerTraceEntry>& sink);
  ~IntegerTraceScope();
  IntegerTraceScope(const IntegerTraceScope&) = delete;
  IntegerTraceScope& operator=(const IntegerTraceScope&) = delete;

 private:
  std::vector<IntegerTraceEntry>* previous_;
};
// Called by Conv2d / Linear after their integer sums; does nothing without a scope.
void record_integer_trace(const Module* layer, const Tensor& input, const Tensor& acc);

}  // namespace bitgrad::nn
