// int8_max.cpp: Int8MaxQuantizer (the official first_conv / last_fc weight quantizer of the APoT
// CIFAR code, ALGORITHMS.md §1.4) with an identity (STE) backward.
#include "quant/int8_max.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "core/error.hpp"
#include "core/tensor_ops.hpp"
#include "quant/apot_math.hpp"

namespace bitgrad::quant {

namespace {

// Codes of -2^24 and below would no longer be exact in float32.
constexpr float kLowestCode = -16777216.0f;

// The tensor's maximum, checked (every element finite, max > 0, lowest code above kLowestCode).
float checked_max(const Tensor& w) {
  check_lazy(w.numel() >= 1,
             [&] { return std::string("Int8MaxQuantizer: expected a non-empty weight tensor"); });
  float lo = w.span()[0];
  float hi = lo;
  bool finite = true;
  for (float v : w.span()) {
    finite = finite && std::isfinite(v);
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  check_lazy(finite, [&] {
    return "Int8MaxQuantizer: expected finite weights, got a non-finite value in " +
           w.shape().to_string();
  });
  check_lazy(hi > 0.0f, [&] {
    return "Int8MaxQuantizer: expected a weight tensor with a positive maximum (scale = max/127), "
           "got max " +
           std::to_string(hi);
  });
  check_lazy(lo / hi * 127.0f > kLowestCode, [&] {
    return "Int8MaxQuantizer: expected min/max*127 above -2^24, got min " + std::to_string(lo) +
           ", max " + std::to_string(hi);
  });
  return hi;
}

}  // namespace

Int8MaxQuantizer::Int8MaxQuantizer() : TensorQuantizer("Int8MaxQuantizer") {}

void Int8MaxQuantizer::set_estimator(const Estimator& estimator) {
  check_lazy(estimator.kind == EstimatorKind::kSte, [&] {
    const char* names[] = {"ste", "ewgs", "dsq", "daq"};
    return std::string(
               "Int8MaxQuantizer: supports only the ste estimator (the official 8-bit first/last "
               "layers), got ") +
           names[static_cast<int>(estimator.kind)];
  });
  estimator_ = estimator;
}

Variable Int8MaxQuantizer::fake_quant(const Variable& x) {
  const Tensor w = x.value().contiguous();
  const float max = checked_max(w);
  const float scale = apot::int8max_scale(max);
  Tensor out = core::map(
      w, [max, scale](float v) { return scale * static_cast<float>(apot::int8max_code(v, max)); });
  return autograd::make_node(
      std::move(out), {x}, "int8max",
      [](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> { return {g}; });
}

Encoded Int8MaxQuantizer::encode(const Tensor& x) const {
  const Tensor w = x.contiguous();
  const float max = checked_max(w);
  Encoded enc;
  int32_t lowest = -127;
  for (float v : w.span()) {
    enc.codes.push_back(apot::int8max_code(v, max));
    lowest = std::min(lowest, enc.codes.back());
  }
  enc.map.scale = {apot::int8max_scale(max)};
  enc.map.zero_point = {0};
  for (int32_t c = lowest; c <= 127; ++c) enc.map.levels.push_back(c);
  return enc;
}

core::Json Int8MaxQuantizer::describe() const {
  core::Json out = core::Json::object();
  out.set("kind", "int8max");
  out.set("bits", 8);
  out.set("role", "weight");
  out.set("granularity", "tensor");
  out.set("estimator", "ste");
  out.set("scale", "max/127");
  return out;
}

}  // namespace bitgrad::quant
