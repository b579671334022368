// layer_quantizer.cpp: the bias of a layer on its integer eval path (nn/layer_quantizer.hpp).
#include "nn/layer_quantizer.hpp"

namespace bitgrad::nn {

std::vector<float> scaled_bias(const Variable& bias, float factor) {
  std::vector<float> out;
  if (!bias.defined()) return out;
  const Tensor b = bias.value().contiguous();
  out.reserve(static_cast<size_t>(b.numel()));
  for (int64_t i = 0; i < b.numel(); ++i) out.push_back(b.data()[i] * factor);
  return out;
}

}  // namespace bitgrad::nn
