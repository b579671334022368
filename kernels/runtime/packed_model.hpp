// packed_model.hpp: the deployable form of a quantized CIFAR ResNet (the .bgpk file, DESIGN.md §3.4)
// and its on-disk format. A PackedResNet holds everything the packed runtime (kernels/runtime/
// packed_runtime.hpp) needs and nothing it does not: integer weight values of every quantized
// convolution, the float stem and classifier as the training model used them, the per-channel float
// coefficients of the residual tails, and the thresholds that turn accumulators or floats into the
// next layer's activation codes. quant/export.hpp builds it from a trained QAT model.
//
// Network (ResNet-20/32/56..., option-A shortcuts), per image, with N the batch:
//   stem:   s = relu(bn(conv3x3(image, stem_weight)))            float, core::conv2d_forward and
//                                                               core::batch_norm_row
//   codes:  c = stem_codes(s)                                   FloatQuantizer, NHWC uint8
//   block:  acc1 = conv(c, conv1) + conv1.acc_offset            int32 (kernels/registry.hpp)
//           c2   = conv1.out_levels[thresholds(acc1)]           integer threshold epilogue
//           acc2 = conv(c2, conv2) + conv2.acc_offset
//           out  = quantized_tail_nhwc(acc2, conv2 tail, residual = block input, ReLU)   float
//                  (residual: the input itself, or option A: every second row and column, planes/4
//                  zero channels on each side, when the block halves the size and doubles planes)
//           c    = block.out_codes(out)                         (for the next block's conv1)
//   head:   p = mean over pixels of the last block's out (double sum in row-major pixel order)
//           logits = p * fc_weight^T + fc_bias                  core::matmul
// Every float step is a core function the QAT model's eval forward also runs, so the packed model's
// accumulators and codes equal the QAT model's bit for bit (docs/deploy.md).
//
// File (.bgpk): a safetensors container. __metadata__ keys: "format" = "bitgrad.packed",
// "format_version" = "1", "model" = the JSON of everything but the tensors (to_json below), and
// "source" (free text: the checkpoint it came from). Tensors, for a quantized conv named L (e.g.
// "layer1.0.conv1"):
//   L.weight         U8  [bytes]  unsigned weight codes u in OHWI order, weight_bits bits each,
//                                 packed least significant bit first (value = u + weight_offset[o])
//   L.weight_offset  I32 [O]
//   L.acc_offset     I32 [O]      (omitted when all zero)
//   conv1 only:  L.thresholds I32 [O, 2^out_bits - 1], L.descending U8 [O], L.out_levels U8 [2^out_bits]
//   conv2 only:  L.scale F32 [O], L.bias F32 [O] (omitted when the conv has no bias), L.bn_mean,
//                L.bn_scale, L.bn_offset F32 [O]
// plus stem.weight F32 [16, C, 3, 3], stem.bn_mean/bn_scale/bn_offset F32 [16],
// stem.codes.thresholds F32 [L-1], stem.codes.levels U8 [L], layerS.B.out.thresholds / .levels
// likewise for every block but the last, fc.weight F32 [classes, 64], fc.bias F32 [classes].
// Not here: running the model (packed_runtime.hpp), building it from a QAT model (quant/export.hpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/json.hpp"
#include "core/safetensors.hpp"
#include "core/tensor.hpp"
#include "kernels/conv.hpp"
#include "kernels/epilogue/threshold.hpp"

namespace bitgrad::kernels {

inline constexpr const char* kPackedFormat = "bitgrad.packed";
inline constexpr int kPackedFormatVersion = 1;

// A per-tensor activation quantizer as thresholds on floats: the code of x is
// levels[#{k : x >= thresholds[k]}] (NaN passes none). thresholds ascending, size levels.size() - 1;
// levels ascending codes < 256.
struct FloatQuantizer {
  std::vector<float> thresholds;
  std::vector<uint8_t> levels;
  uint8_t code(float x) const;
};

// One quantized convolution of the trunk (3x3, no bias in the ResNets, but bias is supported).
struct PackedConv {
  std::string name;            // "layer2.0.conv1"
  ConvSpec spec;               // geometry for one image (spec.batch = 1), act_bits, pad_code
  int weight_bits = 2;         // bits per stored code u, 1..8
  std::vector<int8_t> weights; // OHWI integer values (code - zero point), spec.weight_elements()
  std::vector<int32_t> acc_offset;  // [O] added to the kernel's accumulators (-pad_code * sum of the
                                    // channel's weights when the input zero point is not 0), or empty
  // conv1 of a block: the epilogue to the next codes.
  Thresholds thresholds;            // channels = O; index = #passed thresholds
  std::vector<uint8_t> out_levels;  // [2^thresholds.out_bits]: index -> code (identity for uniform)
  // conv2 of a block: the float tail (core::ChannelTail), each [O] (bias may be empty).
  std::vector<float> scale, bias, bn_mean, bn_scale, bn_offset;

  bool has_thresholds() const { return thresholds.channels > 0; }
};

struct PackedBlock {
  PackedConv conv1, conv2;
  bool downsample = false;     // option A shortcut: stride-2 subsampling and zero channels
  FloatQuantizer out_codes;    // codes of this block's output for the next block's conv1 (empty
                               // levels for the last block)
};

struct PackedResNet {
  int depth = 20;
  int64_t in_channels = 1, num_classes = 10, height = 28, width = 28;
  core::Json source = core::Json::object();  // quantization policy and provenance (free form)
  core::Tensor stem_weight;                  // [16, in_channels, 3, 3]
  std::vector<float> stem_bn_mean, stem_bn_scale, stem_bn_offset;  // [16]
  FloatQuantizer stem_codes;                 // codes of the stem output for layer1.0.conv1
  std::vector<PackedBlock> blocks;           // 3 stages of (depth - 2) / 6 blocks, in order
  core::Tensor fc_weight;                    // [num_classes, 64]
  std::vector<float> fc_bias;                // [num_classes]

  // Throws bitgrad::Error naming the first inconsistency (shapes, sizes, codes out of range,
  // unsorted thresholds, a block structure that is not ResNet-(6n+2) with 16/32/64 planes).
  void validate() const;
  // Bytes of the weights as stored (packed codes), and MACs of one image (all layers).
  int64_t packed_weight_bytes() const;
  int64_t macs_per_image() const;
};

// The file image / file. Saving validates first and writes atomically (temporary file + rename).
core::SafetensorsFile to_safetensors(const PackedResNet& model, const std::string& source_note);
void save_packed(const std::string& path, const PackedResNet& model, const std::string& source_note);
// Reads and validates. Throws bitgrad::Error with one line naming the file and what was expected and
// found: not a safetensors file, wrong "format" or unsupported "format_version", a missing or
// extra tensor, a wrong dtype or shape, a packed weight that decodes to a value outside
// [-128, 127], inconsistent metadata.
PackedResNet from_safetensors(const core::SafetensorsFile& file, const std::string& origin);
PackedResNet load_packed(const std::string& path);

}  // namespace bitgrad::kernels
