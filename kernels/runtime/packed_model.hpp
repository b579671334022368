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
// "format_version" = "1", "model" (compact JSON, below) and "source" (free text: the checkpoint it
// came from). The block structure (names, geometry, downsampling) is implied by depth, height,
// width and in_channels and not stored. Every per-layer quantity is concatenated over the layers in
// network order (layer1.0.conv1, layer1.0.conv2, layer1.1.conv1, ...; "blocks" below are in the
// same order), so every slice follows from the metadata; a file has exactly these tensors:
//   stem.weight          F32 [16, C, 3, 3]
//   stem.bn              F32 [3, 16]        rows bn_mean, bn_scale, bn_offset
//   codes.thresholds     F32 [sum (L - 1)]  the float quantizers: stem.codes, then the out codes
//   codes.levels         U8  [sum L]        of every block but the last, L = code_levels[i] each
//   trunk.weights        U8  [sum bytes]    per conv, ceil(O * K * K * I * weight_bits / 8) bytes
//                                           starting on a byte boundary: OHWI level indices,
//                                           weight_bits bits each, least significant bit first
//   trunk.weight_levels  U8  [sum rows * 2^weight_bits]  per conv a table [rows, 2^weight_bits]
//                                           of int8 values (two's complement bytes). A row is
//                                           distinct weight values ascending, unused entries
//                                           repeating the last; weight = row[index]. rows = 1:
//                                           the layer's values, for every channel (written when
//                                           the layer has at most 2^weight_bits); rows = O: row
//                                           o holds channel o's values
//   trunk.thresholds     I32 [sum O * (2^out_bits - 1)] over conv1s, channel-major; or, when
//                        every threshold fits int16 ("threshold_bytes" = 2), U8 [that sum, 2]:
//                        little-endian int16 values
//   trunk.descending     U8  [ceil(sum O / 8)] over conv1s: one bit per channel (1: descending),
//                        least significant bit first
//   trunk.out_levels     U8  [sum 2^out_bits] over conv1s
//   trunk.tail           F32 [sum O over conv2s, 4]  rows scale, bn_mean, bn_scale, bn_offset
//   trunk.bias           F32 [sum O over conv2s with bias[b] = 1]  (absent when there are none)
//   trunk.acc_offset     I32 [sum O over convs with acc_offset[k] = 1]  (absent when none)
//   fc.weight            F32 [classes, 64]
//   fc.bias              F32 [classes]
// "model": {"depth", "in_channels", "num_classes", "height", "width", then arrays with one entry
// per conv: "act_bits", "pad_code", "weight_bits", "level_rows", "acc_offset" (0/1: stored, only
// when not all zero); one per block: "out_bits" (conv1's thresholds), "bias" (0/1: conv2 has one),
// "code_levels" (L of stem.codes, then of each block's out codes but the last); "threshold_bytes"
// (2 or 4) and "source" (the quantization policy and provenance, free form)}. E.g. ResNet-8:
// {"depth":8,"in_channels":3,"num_classes":10,"height":32,"width":32,"act_bits":[2,2,2,2,2,2],
//  "pad_code":[0,0,0,0,0,0],"weight_bits":[2,2,2,2,2,2],"level_rows":[1,1,1,1,1,1],
//  "acc_offset":[0,0,0,0,0,0],"out_bits":[2,2,2],"bias":[0,0,0],"code_levels":[4,4,4],
//  "threshold_bytes":2,"source":{...}}
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
  int weight_bits = 2;         // bits per stored level index, 1..8 (<= 2^bits values per channel)
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
// extra tensor, a wrong dtype or shape, a weight level table that is not in canonical form,
// inconsistent metadata.
PackedResNet from_safetensors(const core::SafetensorsFile& file, const std::string& origin);
PackedResNet load_packed(const std::string& path);

}  // namespace bitgrad::kernels
