// conv2d.hpp: Conv2d, a 2-D convolution layer holding weight [O, C, k, k] and an optional bias [O],
// calling autograd::conv2d. Initialised like PyTorch's nn.Conv2d (see nn/init.hpp default_init_).
// Not here: grouped, transposed or asymmetric convolution.
#pragma once

#include <cstdint>
#include <memory>

#include "autograd/ops.hpp"
#include "core/rng.hpp"
#include "nn/layer_quantizer.hpp"
#include "nn/module.hpp"

namespace bitgrad::nn {

struct Conv2dConfig {
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  int kernel = 3;  // square kernel
  int stride = 1;
  int padding = 0;  // zeros on all sides
  int dilation = 1;
  bool bias = true;
};

// Parameters: "weight" [O, C, k, k] (ParamKind::kWeight), "bias" [O] (kBias) when config.bias.
class Conv2d final : public Module {
 public:
  // Throws Error for non-positive channels, kernel, stride or dilation, or negative padding.
  Conv2d(const Conv2dConfig& config, core::Rng& rng);

  // x [N, C, H, W] -> [N, O, Ho, Wo], Ho = (H + 2p - d(k-1) - 1)/s + 1. Throws Error on a channel
  // mismatch (naming both shapes).
  Variable forward(const Variable& x) const;

  const Conv2dConfig& config() const { return config_; }
  autograd::Conv2dOptions options() const;
  Variable& weight() { return weight_; }
  const Variable& weight() const { return weight_; }
  // Undefined when the layer has no bias.
  Variable& bias() { return bias_; }
  const Variable& bias() const { return bias_; }

  // Attaches the quantizer that makes this layer its QAT twin (nn/layer_quantizer.hpp), registered
  // as child "quant". Throws Error when `quantizer` is null or one is already attached.
  void set_quantizer(std::unique_ptr<LayerQuantizer> quantizer);
  // The attached quantizer, or null for a float layer.
  LayerQuantizer* quantizer() const { return quantizer_.get(); }

 private:
  Conv2dConfig config_;
  Variable weight_;
  Variable bias_;
  std::unique_ptr<LayerQuantizer> quantizer_;
};

}  // namespace bitgrad::nn
