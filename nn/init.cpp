// init.cpp: the initialisers; each draws a fresh tensor from the Rng and copies it into the value.
#include "nn/init.hpp"

#include <cmath>
#include <string>

#include "core/error.hpp"

namespace bitgrad::nn {

namespace {
int64_t receptive_field(const core::Shape& w) {
  int64_t r = 1;
  for (int i = 2; i < w.rank(); ++i) r *= w[i];
  return r;
}

void check_weight(const core::Shape& w, const char* who) {
  check_lazy(w.rank() >= 2, [&] {
    return std::string(who) + ": expected a weight of rank >= 2 ([out, in, ...]), got " +
           w.to_string();
  });
}

int64_t fan(const core::Shape& w, FanMode mode) {
  return mode == FanMode::kFanIn ? fan_in(w) : fan_out(w);
}

// Overwrites v's elements, keeping its storage (other handles to the value see the change).
void assign(Variable& v, const core::Tensor& values) {
  core::Tensor target = v.value();
  target.copy_(values);
}
}  // namespace

int64_t fan_in(const core::Shape& weight) {
  check_weight(weight, "fan_in");
  return weight[1] * receptive_field(weight);
}

int64_t fan_out(const core::Shape& weight) {
  check_weight(weight, "fan_out");
  return weight[0] * receptive_field(weight);
}

float leaky_relu_gain(float negative_slope) {
  return std::sqrt(2.0f / (1.0f + negative_slope * negative_slope));
}

void kaiming_normal_(Variable& weight, FanMode mode, core::Rng& rng, float negative_slope) {
  const float stddev =
      leaky_relu_gain(negative_slope) / std::sqrt(static_cast<float>(fan(weight.shape(), mode)));
  assign(weight, rng.normal_tensor(weight.shape(), 0.0f, stddev));
}

void kaiming_uniform_(Variable& weight, FanMode mode, core::Rng& rng, float negative_slope) {
  const float bound = leaky_relu_gain(negative_slope) *
                      std::sqrt(3.0f / static_cast<float>(fan(weight.shape(), mode)));
  assign(weight, rng.uniform_tensor(weight.shape(), -bound, bound));
}

void uniform_(Variable& v, float lo, float hi, core::Rng& rng) {
  assign(v, rng.uniform_tensor(v.shape(), lo, hi));
}

void normal_(Variable& v, float mean, float stddev, core::Rng& rng) {
  assign(v, rng.normal_tensor(v.shape(), mean, stddev));
}

void constant_(Variable& v, float value) { assign(v, core::Tensor::full(v.shape(), value)); }

void default_init_(Variable& weight, Variable* bias, core::Rng& rng) {
  // kaiming_uniform_(a = sqrt(5)): gain sqrt(2 / 6), bound = gain * sqrt(3 / fan_in) =
  // 1/sqrt(fan_in).
  kaiming_uniform_(weight, FanMode::kFanIn, rng, std::sqrt(5.0f));
  if (bias != nullptr && bias->defined()) {
    const float bound = 1.0f / std::sqrt(static_cast<float>(fan_in(weight.shape())));
    uniform_(*bias, -bound, bound, rng);
  }
}

}  // namespace bitgrad::nn
