// resnet_cifar.cpp: BasicBlock and ResNetCifar (akamaster/pytorch_resnet_cifar10 layout and names;
// ALGORITHMS.md section 9).
#include "nn/resnet_cifar.hpp"

#include <string>

#include "autograd/ops.hpp"
#include "autograd/ops/batch_norm_relu.hpp"
#include "core/conv.hpp"
#include "core/error.hpp"
#include "nn/init.hpp"

namespace bitgrad::nn {

namespace {
Conv2dConfig conv3x3(int64_t in, int64_t out, int stride) {
  return {.in_channels = in,
          .out_channels = out,
          .kernel = 3,
          .stride = stride,
          .padding = 1,
          .dilation = 1,
          .bias = false};
}

const ResNetCifarConfig& validated(const ResNetCifarConfig& c) {
  check_lazy(c.depth >= 8 && (c.depth - 2) % 6 == 0, [&] {
    return "resnet_cifar: depth must be 6n+2 with n >= 1 (8, 20, 32, 44, 56, 110, ...), got " +
           std::to_string(c.depth);
  });
  check_lazy(c.num_classes > 0 && c.in_channels > 0, [&] {
    return "resnet_cifar: expected positive num_classes and in_channels, got " +
           std::to_string(c.num_classes) + " and " + std::to_string(c.in_channels);
  });
  return c;
}
}  // namespace

BasicBlock::BasicBlock(int64_t in_planes, int64_t planes, int stride, Shortcut shortcut,
                       core::Rng& rng)
    : Module("BasicBlock"),
      in_planes_(in_planes),
      planes_(planes),
      kind_(shortcut),
      changes_shape_(stride != 1 || in_planes != planes),
      conv1_(conv3x3(in_planes, planes, stride), rng),
      bn1_(planes),
      conv2_(conv3x3(planes, planes, 1), rng),
      bn2_(planes) {
  register_module("conv1", conv1_);
  register_module("bn1", bn1_);
  register_module("conv2", conv2_);
  register_module("bn2", bn2_);
  if (!changes_shape_) return;
  if (kind_ == Shortcut::kA) {
    // Option A can only express "halve H and W, double the channels" (planes/4 zeros each side).
    check_lazy(stride == 2 && in_planes + 2 * (planes / 4) == planes, [&] {
      return "BasicBlock: option-A shortcut needs stride 2 and planes = 2 * in_planes, got "
             "stride " +
             std::to_string(stride) + ", " + std::to_string(in_planes) + " -> " +
             std::to_string(planes);
    });
    return;
  }
  shortcut_conv_ = &shortcut_.emplace_back<Conv2d>(Conv2dConfig{.in_channels = in_planes,
                                                                .out_channels = planes,
                                                                .kernel = 1,
                                                                .stride = stride,
                                                                .padding = 0,
                                                                .dilation = 1,
                                                                .bias = false},
                                                   rng);
  shortcut_bn_ = &shortcut_.emplace_back<BatchNorm2d>(planes);
  register_module("shortcut", shortcut_);
  add_load_alias("downsample.", "shortcut.");
}

namespace {
// relu(bn(conv(x)) + residual) (residual may be undefined). BN -> (add) -> ReLU always run as one
// fused op (nn/batch_norm.hpp); for inference without a graph (eval mode, grad mode off, no
// recorded BN statistics, a float convolution) the whole chain runs inside the convolution's pass
// (core::conv2d_forward_fused), with the same results.
Variable conv_bn_relu(const Conv2d& conv, BatchNorm2d& bn, const Variable& x,
                      const Variable& residual = Variable()) {
  if (autograd::grad_enabled() || bn.is_training() || bn.records_input_stats() || conv.quantizer())
    return bn.forward_relu(conv.forward(x), residual);
  const autograd::BatchNormAffine affine = autograd::batch_norm_eval_affine(
      bn.weight().value(), bn.bias().value(), bn.running_mean(), bn.running_var(), bn.config().eps);
  core::Conv2dEpilogue epilogue{affine.mean, affine.scale, affine.offset,
                                residual.defined() ? residual.value() : Tensor(), true};
  return Variable(core::conv2d_forward_fused(x.value(), conv.weight().value(),
                                             conv.bias().defined() ? conv.bias().value() : Tensor(),
                                             epilogue, conv.options()));
}
}  // namespace

// The BN -> add -> ReLU tail runs unfused where a tap needs the pre-addition value.
Variable BasicBlock::forward(const Variable& x, FeatureTaps* taps, std::string_view prefix) {
  Variable out = conv_bn_relu(conv1_, bn1_, x);
  Variable residual = x;
  if (changes_shape_) {
    if (kind_ == Shortcut::kA) {
      const int64_t pad = planes_ / 4;
      residual = autograd::slice(autograd::slice(x, 2, 0, x.dim(2), 2), 3, 0, x.dim(3), 2);
      residual = autograd::pad_channels(residual, pad, planes_ - in_planes_ - pad);
    } else {
      residual = shortcut_.forward(x);
    }
  }
  const std::string pre_add = std::string(prefix) + ".pre_add";
  if (taps == nullptr || !taps->wants(pre_add)) {
    out = conv_bn_relu(conv2_, bn2_, out, residual);
    if (taps != nullptr) taps->add(std::string(prefix) + ".out", out);
    return out;
  }
  out = bn2_.forward(conv2_.forward(out));
  taps->add(pre_add, out);
  out = autograd::relu(out + residual);
  taps->add(std::string(prefix) + ".out", out);
  return out;
}

ResNetCifar::ResNetCifar(const ResNetCifarConfig& config, core::Rng& rng)
    : Module("ResNetCifar"),
      config_(validated(config)),
      conv1_(conv3x3(config.in_channels, 16, 1), rng),
      bn1_(16),
      linear_({.in_features = 64, .out_features = config.num_classes, .bias = true}, rng) {
  register_module("conv1", conv1_);
  register_module("bn1", bn1_);
  const int n = blocks_per_stage();
  int64_t in_planes = 16;
  for (int s = 0; s < 3; ++s) {
    const int64_t planes = int64_t{16} << s;
    for (int b = 0; b < n; ++b) {
      const int stride = (s > 0 && b == 0) ? 2 : 1;
      blocks_[s].push_back(
          &stages_[s].emplace_back<BasicBlock>(in_planes, planes, stride, config.shortcut, rng));
      in_planes = planes;
    }
    register_module("layer" + std::to_string(s + 1), stages_[s]);
  }
  register_module("linear", linear_);
  add_load_alias("fc.", "linear.");
  // akamaster's _weights_init, with He et al.'s fan_out mode: every conv, in module order.
  for (const NamedModule& m : named_modules())
    if (auto* conv = dynamic_cast<Conv2d*>(m.module))
      kaiming_normal_(conv->weight(), FanMode::kFanOut, rng);
}

Variable ResNetCifar::forward(const Variable& x, FeatureTaps* taps) {
  check_lazy(x.defined() && x.rank() == 4 && x.dim(1) == config_.in_channels && x.dim(2) >= 4 &&
                 x.dim(3) >= 4,
             [&] {
               return "ResNetCifar: expected input [N, " + std::to_string(config_.in_channels) +
                      ", H, W] with H, W >= 4, got " +
                      (x.defined() ? x.shape().to_string() : std::string("<undefined>"));
             });
  Variable out = conv_bn_relu(conv1_, bn1_, x);
  if (taps != nullptr) taps->add("stem", out);
  for (int s = 0; s < 3; ++s)
    for (size_t b = 0; b < blocks_[s].size(); ++b)
      out = blocks_[s][b]->forward(out, taps,
                                   "layer" + std::to_string(s + 1) + "." + std::to_string(b));
  Variable pooled = autograd::global_avg_pool2d(out);
  if (taps != nullptr) taps->add("pool", pooled);
  return linear_.forward(pooled);
}

BasicBlock& ResNetCifar::block(int stage, int index) {
  check_lazy(stage >= 1 && stage <= 3 && index >= 0 && index < blocks_per_stage(), [&] {
    return "ResNetCifar::block: expected stage in 1..3 and index in [0, " +
           std::to_string(blocks_per_stage()) + "), got " + std::to_string(stage) + ", " +
           std::to_string(index);
  });
  return *blocks_[stage - 1][static_cast<size_t>(index)];
}

ResNetCifar resnet_cifar(int depth, int64_t num_classes, int64_t in_channels, Shortcut shortcut,
                         core::Rng& rng) {
  return ResNetCifar(ResNetCifarConfig{depth, num_classes, in_channels, shortcut}, rng);
}

}  // namespace bitgrad::nn
