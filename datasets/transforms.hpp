// transforms.hpp: the training augmentations of the CIFAR recipe (He et al. 2016: random crop from
// the image zero-padded by P, random horizontal flip) and per-channel normalisation, applied to one
// u8 image while it is converted to float. The random choices are drawn from (seed, epoch, item
// index) alone, so an augmented batch does not depend on thread count or timing.
// Not here: other augmentations (cutout, colour jitter, mixup), resizing.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace bitgrad::datasets {

// Which augmentations the Loader applies. {} (the default) applies none.
struct Augment {
  int64_t crop_padding = 0;  // P: crop an HxW window from the image zero-padded by P on each side
  bool flip = false;         // mirror left-right with probability 1/2
};

// The training augmentation of each load_dataset() name:
//   cifar10, cifar100, cifar100-coarse: pad 4 + flip (the standard CIFAR ResNet recipe);
//   fashion-mnist: pad 2 + flip (garments are close to mirror-symmetric; shifts of up to 2 pixels
//                  on 28x28);
//   mnist: pad 2, no flip (a mirrored digit is another glyph);
//   synthetic: none (its class patterns are tied to position).
// Throws Error for an unknown name, listing the valid ones.
Augment default_augment(const std::string& dataset_name);

// The concrete transform of one image. The output pixel (c, y, x) is the input pixel
// (c, y + dy - padding, x' + dx - padding) with x' = flip ? W - 1 - x : x, or 0 (black, before
// normalisation) when that falls outside the image: a crop at offset (dy, dx) of the image padded
// by `padding` zeros on each side, followed by a horizontal flip of the crop. dy and dx lie in [0,
// 2 * padding]; dy = dx = padding with flip = false is the identity.
struct CropFlip {
  int64_t padding = 0;
  int64_t dy = 0;
  int64_t dx = 0;
  bool flip = false;
};

// The transform for item `index` in epoch `epoch` of a Loader seeded with `seed`: dy and dx uniform
// in [0, 2 * crop_padding] and flip with probability 1/2 (when augment.flip), from a core::Rng
// seeded by derive_seed(seed, {augment stream, epoch, index}). A pure function of its arguments.
CropFlip draw_crop_flip(const Augment& augment, uint64_t seed, int64_t epoch, int64_t index);

// Writes dst[c, y, x] = (t(src)[c, y, x] / 255 - mean[c]) / stddev[c] for one image, where t is
// `transform`. src and dst hold channels * height * width values ([C, H, W], row-major); mean and
// stddev hold `channels` values. Asserts the sizes (an internal contract of the Loader); no Error.
// Single-threaded, no allocation; dst must not overlap src.
void transform_image(std::span<const uint8_t> src, int64_t channels, int64_t height, int64_t width,
                     const CropFlip& transform, std::span<const float> mean,
                     std::span<const float> stddev, std::span<float> dst);

}  // namespace bitgrad::datasets
