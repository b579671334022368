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

namespace {
// One variant per combination of the optional steps, so each inner loop is branch-free and vectorises
// over channels.
template <bool kBias, bool kBn, bool kResidual, bool kRelu>
void tail_loop(const int32_t* acc, const float* residual, int64_t pixels, int64_t channels,
               const ChannelTail& tail, float* y) {
  const float* scale = tail.scale;
  const float* bias = tail.bias;
  const float* mean = tail.mean;
  const float* bn_scale = tail.bn_scale;
  const float* offset = tail.offset;
  for (int64_t p = 0; p < pixels; ++p) {
    const int32_t* a = acc + p * channels;
    const float* r = kResidual ? residual + p * channels : nullptr;
    float* out = y + p * channels;
    for (int64_t c = 0; c < channels; ++c) {
      float v = static_cast<float>(a[c]) * scale[c];
      if constexpr (kBias) v = v + bias[c];
      if constexpr (kBn) v = (v - mean[c]) * bn_scale[c] + offset[c];
      if constexpr (kResidual) v = v + r[c];
      if constexpr (kRelu) v = relu(v);
      out[c] = v;
    }
  }
}

template <bool kBias, bool kBn, bool kResidual>
void tail_relu(const int32_t* acc, const float* residual, int64_t pixels, int64_t channels,
               const ChannelTail& tail, float* y) {
  if (tail.relu)
    tail_loop<kBias, kBn, kResidual, true>(acc, residual, pixels, channels, tail, y);
  else
    tail_loop<kBias, kBn, kResidual, false>(acc, residual, pixels, channels, tail, y);
}

template <bool kBias, bool kBn>
void tail_residual(const int32_t* acc, const float* residual, int64_t pixels, int64_t channels,
                   const ChannelTail& tail, float* y) {
  if (residual != nullptr)
    tail_relu<kBias, kBn, true>(acc, residual, pixels, channels, tail, y);
  else
    tail_relu<kBias, kBn, false>(acc, residual, pixels, channels, tail, y);
}

template <bool kBias>
void tail_bn(const int32_t* acc, const float* residual, int64_t pixels, int64_t channels,
             const ChannelTail& tail, float* y) {
  if (tail.mean != nullptr)
    tail_residual<kBias, true>(acc, residual, pixels, channels, tail, y);
  else
    tail_residual<kBias, false>(acc, residual, pixels, channels, tail, y);
}
}  // namespace

void quantized_tail_nhwc(const int32_t* acc, const float* residual, int64_t pixels, int64_t channels,
                         const ChannelTail& tail, float* y) {
  if (tail.bias != nullptr)
    tail_bn<true>(acc, residual, pixels, channels, tail, y);
  else
    tail_bn<false>(acc, residual, pixels, channels, tail, y);
}

namespace {
// steps[k] = levels[k + 1] - levels[k]: the code is levels[0] + the steps of the thresholds passed.
template <int kSteps>
void float_codes_fixed(const float* x, int64_t n, const float* t, const uint8_t* levels, uint8_t* codes) {
  float tk[kSteps];
  uint8_t step[kSteps];
  for (int k = 0; k < kSteps; ++k) {
    tk[k] = t[k];
    step[k] = static_cast<uint8_t>(levels[k + 1] - levels[k]);
  }
  const uint8_t base = levels[0];
  for (int64_t i = 0; i < n; ++i) {
    uint8_t c = base;
    for (int k = 0; k < kSteps; ++k) c = static_cast<uint8_t>(c + (x[i] >= tk[k] ? step[k] : 0));
    codes[i] = c;
  }
}

template <int kSteps>
void index_codes_fixed(uint8_t* codes, int64_t n, const uint8_t* levels) {
  uint8_t step[kSteps];
  for (int k = 0; k < kSteps; ++k) step[k] = static_cast<uint8_t>(levels[k + 1] - levels[k]);
  const uint8_t base = levels[0];
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t index = codes[i];
    uint8_t c = base;
    for (int k = 0; k < kSteps; ++k) c = static_cast<uint8_t>(c + (index > k ? step[k] : 0));
    codes[i] = c;
  }
}
}  // namespace

void float_level_codes(const float* x, int64_t n, const float* thresholds, const uint8_t* levels, int count,
                       uint8_t* codes) {
  switch (count) {
    case 2: float_codes_fixed<1>(x, n, thresholds, levels, codes); return;
    case 4: float_codes_fixed<3>(x, n, thresholds, levels, codes); return;
    case 8: float_codes_fixed<7>(x, n, thresholds, levels, codes); return;
    case 16: float_codes_fixed<15>(x, n, thresholds, levels, codes); return;
    default:
      for (int64_t i = 0; i < n; ++i) {
        int passed = 0;
        for (int k = 0; k + 1 < count; ++k) passed += x[i] >= thresholds[k] ? 1 : 0;
        codes[i] = levels[passed];
      }
  }
}

void index_level_codes(uint8_t* codes, int64_t n, const uint8_t* levels, int count) {
  switch (count) {
    case 2: index_codes_fixed<1>(codes, n, levels); return;
    case 4: index_codes_fixed<3>(codes, n, levels); return;
    case 8: index_codes_fixed<7>(codes, n, levels); return;
    case 16: index_codes_fixed<15>(codes, n, levels); return;
    default:
      for (int64_t i = 0; i < n; ++i) codes[i] = levels[codes[i]];
  }
}

}  // namespace bitgrad::core
