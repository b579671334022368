// init.hpp: parameter initialisers (Kaiming normal / uniform, PyTorch's default Conv2d / Linear init,
// constants), each drawing from an explicit core::Rng so that a seed fixes the model.
// They overwrite the values of a Variable in place (its storage is kept, its gradient untouched).
// Not here: data-dependent initialisation (quantizer scales live in quant/).
#pragma once

#include <cstdint>

#include "autograd/variable.hpp"
#include "core/rng.hpp"

namespace bitgrad::nn {

using autograd::Variable;

enum class FanMode { kFanIn, kFanOut };

// For a weight [O, I, k...] (conv) or [O, I] (linear): fan_in = I * prod(k), fan_out = O * prod(k).
// Throws Error for rank < 2.
int64_t fan_in(const core::Shape& weight);
int64_t fan_out(const core::Shape& weight);
// PyTorch's calculate_gain('leaky_relu', slope) = sqrt(2 / (1 + slope^2)); slope 0 is ReLU's sqrt(2).
float leaky_relu_gain(float negative_slope = 0.0f);

// N(0, std^2) with std = gain / sqrt(fan), gain = leaky_relu_gain(negative_slope) (ReLU by default).
// The ResNet convs use kaiming_normal_(w, FanMode::kFanOut, rng).
void kaiming_normal_(Variable& weight, FanMode mode, core::Rng& rng, float negative_slope = 0.0f);
// U(-bound, bound) with bound = gain * sqrt(3 / fan).
void kaiming_uniform_(Variable& weight, FanMode mode, core::Rng& rng, float negative_slope = 0.0f);
void uniform_(Variable& v, float lo, float hi, core::Rng& rng);
void normal_(Variable& v, float mean, float stddev, core::Rng& rng);
void constant_(Variable& v, float value);
inline void zeros_(Variable& v) { constant_(v, 0.0f); }
inline void ones_(Variable& v) { constant_(v, 1.0f); }

// PyTorch's reset_parameters() of nn.Conv2d and nn.Linear: the weight from kaiming_uniform_ with
// a = sqrt(5) on fan_in (which is U(-1/sqrt(fan_in), 1/sqrt(fan_in))), then, when `bias` is non-null
// and defined, the bias from the same U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Weight drawn first.
void default_init_(Variable& weight, Variable* bias, core::Rng& rng);

}  // namespace bitgrad::nn
