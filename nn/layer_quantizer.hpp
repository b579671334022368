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

 protected:
  using Module::Module;
};

}  // namespace bitgrad::nn
