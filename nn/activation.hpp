// activation.hpp: parameter-free layers as modules (ReLU, LeakyReLU, Tanh, Sigmoid, Flatten, max /
// average / global average pooling), so they can sit in a Sequential. Each forward is one call to the
// functional op of the same name in autograd/ops.hpp; shapes and errors are that op's.
// Not here: in-place variants (no op in bitgrad modifies its input).
#pragma once

#include "autograd/ops.hpp"
#include "nn/module.hpp"

namespace bitgrad::nn {

class ReLU final : public Module {
 public:
  ReLU() : Module("ReLU") {}
  Variable forward(const Variable& x) const { return autograd::relu(x); }
};

class LeakyReLU final : public Module {
 public:
  explicit LeakyReLU(float negative_slope = 0.01f)
      : Module("LeakyReLU"), negative_slope_(negative_slope) {}
  Variable forward(const Variable& x) const { return autograd::leaky_relu(x, negative_slope_); }
  float negative_slope() const { return negative_slope_; }

 private:
  float negative_slope_;
};

class Tanh final : public Module {
 public:
  Tanh() : Module("Tanh") {}
  Variable forward(const Variable& x) const { return autograd::tanh(x); }
};

class Sigmoid final : public Module {
 public:
  Sigmoid() : Module("Sigmoid") {}
  Variable forward(const Variable& x) const { return autograd::sigmoid(x); }
};

// [N, d1, d2, ...] -> [N, d1 * d2 * ...] (start_axis 1 by default).
class Flatten final : public Module {
 public:
  explicit Flatten(int start_axis = 1) : Module("Flatten"), start_axis_(start_axis) {}
  Variable forward(const Variable& x) const { return autograd::flatten(x, start_axis_); }

 private:
  int start_axis_;
};

// [N, C, H, W] -> [N, C, Ho, Wo]; padding is -inf.
class MaxPool2d final : public Module {
 public:
  MaxPool2d(int kernel, int stride, int padding = 0)
      : Module("MaxPool2d"), kernel_(kernel), stride_(stride), padding_(padding) {}
  Variable forward(const Variable& x) const {
    return autograd::max_pool2d(x, kernel_, stride_, padding_);
  }

 private:
  int kernel_, stride_, padding_;
};

// [N, C, H, W] -> [N, C, Ho, Wo]; padded zeros count in the divisor (count_include_pad = true).
class AvgPool2d final : public Module {
 public:
  AvgPool2d(int kernel, int stride, int padding = 0)
      : Module("AvgPool2d"), kernel_(kernel), stride_(stride), padding_(padding) {}
  Variable forward(const Variable& x) const {
    return autograd::avg_pool2d(x, kernel_, stride_, padding_);
  }

 private:
  int kernel_, stride_, padding_;
};

// [N, C, H, W] -> [N, C], the mean over H and W.
class GlobalAvgPool2d final : public Module {
 public:
  GlobalAvgPool2d() : Module("GlobalAvgPool2d") {}
  Variable forward(const Variable& x) const { return autograd::global_avg_pool2d(x); }
};

}  // namespace bitgrad::nn
