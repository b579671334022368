// eval_epilogue.hpp: the float arithmetic between a layer's result and the next layer's input in eval
// mode -- a quantized layer's channel rescale, batch norm with running statistics, the residual add
// and ReLU -- as one compiled copy that the QAT model (autograd batch_norm, core::scale_channels,
// core::conv2d_forward_fused) and the packed runtime (kernels/runtime) both call. This file's
// translation unit is built with -ffp-contract=off, so every element's result is one fixed sequence
// of IEEE-rounded float32 operations, the same in vector and scalar code, in any layout (NCHW rows or
// NHWC pixels), at any position: the packed model reproduces the training model's floats bit for bit
// (DESIGN.md §3.1), and the exporter can evaluate the same chain at every integer accumulator value to
// derive thresholds (kernels/epilogue/threshold.hpp).
// Not here: the batch statistics of training (autograd/ops/norm.cpp), activation quantizers (quant/).
#pragma once

#include <cstdint>

namespace bitgrad::core {

// y[i] = x[i] * scale, or x[i] * scale + *bias when bias is non-null. x and y may alias.
void scale_shift_row(const float* x, int64_t n, float scale, const float* bias, float* y);

// Batch norm with fixed statistics, then optionally the residual add and ReLU:
//   v = (x[i] - mean) * scale + offset;  v = v + residual[i] (when non-null);  v = max(v, 0) (relu)
// with max(v, 0) written as v > 0 ? v : 0 (so -0 and NaN become +0). x and y may alias.
struct BatchNormCoefficients {
  float mean = 0.0f, scale = 1.0f, offset = 0.0f;
};
void batch_norm_row(const float* x, const float* residual, int64_t n, BatchNormCoefficients bn,
                    bool relu, float* y);

// The whole tail of a quantized convolution in the packed runtime's NHWC layout: for pixel p and
// channel c (index p * channels + c),
//   t = float(acc) * scale[c] (+ bias[c]);  v = (t - mean[c]) * bn_scale[c] + offset[c];
//   v = v + residual (when non-null);  v = max(v, 0) (when relu)
// which is scale_shift_row followed by batch_norm_row, element for element the same bits.
// acc values must be exact in float32 (|acc| < 2^24). bias may be null; mean/bn_scale/offset may all
// be null (no batch norm).
struct ChannelTail {
  const float* scale = nullptr;
  const float* bias = nullptr;
  const float* mean = nullptr;
  const float* bn_scale = nullptr;
  const float* offset = nullptr;
  bool relu = false;
};
void quantized_tail_nhwc(const int32_t* acc, const float* residual, int64_t pixels, int64_t channels,
                         const ChannelTail& tail, float* y);

// The code of each x[i] for a per-tensor activation quantizer given as ascending float thresholds
// (kernels/runtime/packed_model.hpp FloatQuantizer): levels[#{k : x[i] >= thresholds[k]}], NaN
// passing none. `count` levels (ascending codes), count - 1 thresholds. Computed as levels[0] plus the
// level steps of the thresholds passed, branch-free, so the loop vectorises whatever the levels.
void float_level_codes(const float* x, int64_t n, const float* thresholds, const uint8_t* levels, int count,
                       uint8_t* codes);
// In place: codes[i] = levels[codes[i]] for level indices codes[i] < count (the same step sum).
void index_level_codes(uint8_t* codes, int64_t n, const uint8_t* levels, int count);

}  // namespace bitgrad::core
