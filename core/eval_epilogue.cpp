// eval_epilogue.cpp: see eval_epilogue.hpp. Built with -ffp-contract=off (core/CMakeLists.txt): no
// multiply-add here may become a fused multiply-add, whatever -march says.
#include "core/eval_epilogue.hpp"

namespace bitgrad::core {

namespace {
inline float relu(float v) { return v > 0.0f ? v : 0.0f; }
}  // namespace

void scale_shift_row(const float* x, int64_t n, float scale, const float* bias, float* y) {
  if (bias == nullptr) {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale;
    return;
  }
  const float b = *bias;
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale + b;
}

void batch_norm_row(const float* x, const float* residual, int64_t n, BatchNormCoefficients bn,
                    bool relu_on, float* y) {
  const float mean = bn.mean, scale = bn.scale, offset = bn.offset;
  if (residual == nullptr && !relu_on) {
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - mean) * scale + offset;
  } else if (residual == nullptr) {
    for (int64_t i = 0; i < n; ++i) y[i] = relu((x[i] - mean) * scale + offset);
  } else if (!relu_on) {
    for (int64_t i = 0; i < n; ++i) y[i] = ((x[i] - mean) * scale + offset) + residual[i];
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = relu(((x[i] - mean) * scale + offset) + residual[i]);
  }
}

void quantized_tail_nhwc(const int32_t* acc, const float* residual, int64_t pixels, int64_t channels,
                         const ChannelTail& tail, float* y) {
  const bool bn = tail.mean != nullptr;
  for (int64_t p = 0; p < pixels; ++p) {
    const int32_t* a = acc + p * channels;
    const float* r = residual != nullptr ? residual + p * channels : nullptr;
    float* out = y + p * channels;
    for (int64_t c = 0; c < channels; ++c) {
      float v = static_cast<float>(a[c]) * tail.scale[c];
      if (tail.bias != nullptr) v = v + tail.bias[c];
      if (bn) v = (v - tail.mean[c]) * tail.bn_scale[c] + tail.offset[c];
      if (r != nullptr) v = v + r[c];
      if (tail.relu) v = relu(v);
      out[c] = v;
    }
  }
}

}  // namespace bitgrad::core
