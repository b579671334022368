// linear.hpp: Linear, a fully connected layer y = x W^T + b holding weight [out, in] and an optional
// bias [out], calling autograd::linear. Initialised like PyTorch's nn.Linear (nn/init.hpp).
// Not here: inputs of rank other than 2 (flatten first).
#pragma once

#include <cstdint>
#include <memory>

#include "autograd/ops.hpp"
#include "core/rng.hpp"
#include "nn/layer_quantizer.hpp"
#include "nn/module.hpp"

namespace bitgrad::nn {

struct LinearConfig {
  int64_t in_features = 0;
  int64_t out_features = 0;
  bool bias = true;
};

// Parameters: "weight" [out, in] (ParamKind::kWeight), "bias" [out] (kBias) when config.bias.
class Linear final : public Module {
 public:
  Linear(const LinearConfig& config, core::Rng& rng);

  // x [N, in] -> [N, out]; throws Error when x is not [N, in].
  Variable forward(const Variable& x) const;

  const LinearConfig& config() const { return config_; }
  Variable& weight() { return weight_; }
  const Variable& weight() const { return weight_; }
  Variable& bias() { return bias_; }  // undefined without bias
  const Variable& bias() const { return bias_; }

  // Attaches the quantizer that makes this layer its QAT twin (nn/layer_quantizer.hpp), registered
  // as child "quant". Throws Error when `quantizer` is null or one is already attached.
  void set_quantizer(std::unique_ptr<LayerQuantizer> quantizer);
  // The attached quantizer, or null for a float layer.
  LayerQuantizer* quantizer() const { return quantizer_.get(); }

 private:
  LinearConfig config_;
  Variable weight_;
  Variable bias_;
  std::unique_ptr<LayerQuantizer> quantizer_;
};

}  // namespace bitgrad::nn
