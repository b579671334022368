// export.hpp: turns a trained QAT CIFAR ResNet (quant/policy.hpp's quantize_model + its weights) into
// the packed model of kernels/runtime/packed_model.hpp, so that the packed runtime's accumulators and
// codes equal the QAT model's eval-mode ones bit for bit. Nothing is re-derived algebraically:
//   - integer weights, scales and input zero points come from each layer's own
//     QuantizedLayer::integer_operands (the function the QAT eval forward uses);
//   - conv1 -> BN -> ReLU -> conv2's input quantizer becomes integer thresholds on conv1's
//     accumulators, found by evaluating that chain (core/eval_epilogue.hpp's functions and the
//     quantizer's own encode) at every reachable integer accumulator of every channel
//     (kernels::derive_thresholds, which also checks each value by brute force);
//   - an activation quantizer fed floats (stem output, block outputs) becomes per-tensor float
//     thresholds found by binary search over the ordered float32 bit patterns with the quantizer's own
//     encode, then checked at each threshold, its predecessor and a dense sample;
//   - batch norm stays float (eval coefficients exactly as autograd's batch_norm computes them), run
//     by the same core functions in both models.
// Supported: ResNet-(6n+2) with option-A shortcuts whose trunk convolutions all have quantized inputs
// (every method of quant/policy.hpp at 2-4 bits except PoT 4-bit, whose integer sums exceed 2^24);
// stem and classifier float or fake-quantized weights (edge fp / int8 / same).
// Not here: the file format and runtime (kernels/runtime/), the CLI (apps/).
#pragma once

#include <cstdint>
#include <string>

#include "kernels/runtime/packed_model.hpp"
#include "nn/resnet_cifar.hpp"
#include "quant/policy.hpp"

namespace bitgrad::quant {

// The packed form of `model` for height x width inputs. Switches the model to eval mode. Throws
// bitgrad::Error naming the layer when a part has no packed form: an option-B shortcut, a trunk
// convolution without an input quantizer or without an integer form, codes outside 0..255, an
// epilogue that is not monotone in the accumulator, a stem or classifier with an input quantizer or
// output scale. `policy` is recorded in PackedResNet::source.
kernels::PackedResNet export_resnet(nn::ResNetCifar& model, const QuantPolicy& policy, int64_t height,
                                    int64_t width);

// The float thresholds of a per-tensor activation quantizer (exposed for tests): code(x) ==
// quantizer.encode(x) for every finite float x. Throws bitgrad::Error when the quantizer is per channel,
// has more than 256 codes, codes outside 0..255, or is not monotone where checked.
kernels::FloatQuantizer float_thresholds(const TensorQuantizer& quantizer, const std::string& name);

}  // namespace bitgrad::quant
