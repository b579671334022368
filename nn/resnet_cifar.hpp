// resnet_cifar.hpp: the CIFAR ResNet family of He et al. 2016 (ResNet-20/32/44/56/110, depth 6n+2)
// with option A (parameter-free) or option B (1x1 conv + BN) shortcuts, any input channel count and
// class count, parameter names as akamaster/pytorch_resnet_cifar10 ("conv1.weight",
// "layer1.0.bn2.running_var", "layer2.0.shortcut.0.weight", "linear.bias"; docs/models.md has the full
// mapping). forward() can report named intermediate features (FeatureTaps) for distillation.
// Not here: the EWGS/DAQ variant's BN1d before the classifier, quantized layers (quant/).
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/rng.hpp"
#include "nn/batch_norm.hpp"
#include "nn/conv2d.hpp"
#include "nn/feature_taps.hpp"
#include "nn/linear.hpp"
#include "nn/module.hpp"
#include "nn/sequential.hpp"

namespace bitgrad::nn {

// How a block whose shape changes (stride 2, planes doubled) maps its input onto the residual sum.
enum class Shortcut {
  kA,  // x[:, :, ::2, ::2] then planes/4 zero channels on each side (no parameters; He et al. CIFAR)
  kB,  // "shortcut.0" = 1x1 conv (stride 2, no bias), "shortcut.1" = BatchNorm2d
};

// conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut (identity when the shape is unchanged), then ReLU.
// Children: conv1, bn1, conv2, bn2 and, for option B when the shape changes, shortcut (a Sequential
// "0" = Conv2d, "1" = BatchNorm2d). Loading also accepts "downsample." for "shortcut.".
class BasicBlock final : public Module {
 public:
  BasicBlock(int64_t in_planes, int64_t planes, int stride, Shortcut shortcut, core::Rng& rng);

  // x [N, in_planes, H, W] -> [N, planes, ceil(H/stride), ceil(W/stride)]. With taps, adds
  // "<prefix>.pre_add" (residual branch after bn2, before the add) and "<prefix>.out" (after the
  // add and the ReLU); the fused BN -> add -> ReLU tail runs unless the taps want the ".pre_add".
  Variable forward(const Variable& x, FeatureTaps* taps = nullptr, std::string_view prefix = "");

  Conv2d& conv1() { return conv1_; }
  BatchNorm2d& bn1() { return bn1_; }
  Conv2d& conv2() { return conv2_; }
  BatchNorm2d& bn2() { return bn2_; }
  // Option B projection; null for an identity or option-A shortcut.
  Conv2d* shortcut_conv() { return shortcut_conv_; }
  BatchNorm2d* shortcut_bn() { return shortcut_bn_; }
  // True when the input is sliced/padded (A) or projected (B) rather than passed through.
  bool changes_shape() const { return changes_shape_; }

 private:
  int64_t in_planes_;
  int64_t planes_;
  Shortcut kind_;
  bool changes_shape_;
  Conv2d conv1_;
  BatchNorm2d bn1_;
  Conv2d conv2_;
  BatchNorm2d bn2_;
  Sequential shortcut_;  // registered only for option B when the shape changes
  Conv2d* shortcut_conv_ = nullptr;
  BatchNorm2d* shortcut_bn_ = nullptr;
};

struct ResNetCifarConfig {
  int depth = 20;            // 6n + 2 with n >= 1: 8, 14, 20, 32, 44, 56, 110, ...
  int64_t num_classes = 10;
  int64_t in_channels = 3;   // 3 for CIFAR, 1 for (Fashion-)MNIST
  Shortcut shortcut = Shortcut::kA;
};

// Stem conv1 (3x3, in_channels -> 16, no bias) + bn1 + ReLU; layer1..layer3 of n BasicBlocks with 16,
// 32, 64 planes (the first block of layer2 and layer3 has stride 2); global average pool; "linear"
// (64 -> classes, with bias). Loading also accepts "fc." for "linear.".
// Initialisation (from the Rng, in module order): every conv Kaiming-normal (fan_out, ReLU gain),
// BN gamma 1 / beta 0 / running stats 0 and 1, linear as PyTorch's default.
// Feature taps, in this order: "stem" [N, 16, H, W] (after the stem ReLU); for each block S.B
// (S = 1..3, B = 0..n-1) "layerS.B.pre_add" and "layerS.B.out"; "pool" [N, 64] (input of linear).
class ResNetCifar final : public Module {
 public:
  // Throws Error when depth is not 6n + 2 (n >= 1) or a count is not positive.
  ResNetCifar(const ResNetCifarConfig& config, core::Rng& rng);

  // x [N, in_channels, H, W] (H, W >= 4) -> logits [N, num_classes]. Fills `taps` when non-null.
  Variable forward(const Variable& x, FeatureTaps* taps = nullptr);

  const ResNetCifarConfig& config() const { return config_; }
  int blocks_per_stage() const { return (config_.depth - 2) / 6; }
  Conv2d& conv1() { return conv1_; }
  BatchNorm2d& bn1() { return bn1_; }
  // stage in 1..3 (as in "layer1"), index in [0, blocks_per_stage()); throws Error otherwise.
  BasicBlock& block(int stage, int index);
  Linear& linear() { return linear_; }

 private:
  ResNetCifarConfig config_;
  Conv2d conv1_;
  BatchNorm2d bn1_;
  std::array<Sequential, 3> stages_;           // "layer1".."layer3", owning the blocks
  std::array<std::vector<BasicBlock*>, 3> blocks_;  // typed views of the stages' children
  Linear linear_;
};

// ResNetCifar({depth, num_classes, in_channels, shortcut}, rng), returned in place (C++17 elision).
ResNetCifar resnet_cifar(int depth, int64_t num_classes, int64_t in_channels, Shortcut shortcut,
                         core::Rng& rng);

}  // namespace bitgrad::nn
