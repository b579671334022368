// transforms.cpp: crop + flip + normalise fused into one pass over the output pixels.
#include "datasets/transforms.hpp"

#include <cassert>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "datasets/dataset.hpp"
#include "datasets/derive_seed.hpp"

namespace bitgrad::datasets {

namespace {
constexpr uint64_t kAugmentStream = 0x4155'474d;  // "AUGM"
}  // namespace

Augment default_augment(const std::string& dataset_name) {
  const std::string& n = dataset_name;
  if (n == "cifar10" || n == "cifar100" || n == "cifar100-coarse") return {4, true};
  if (n == "fashion-mnist") return {2, true};
  if (n == "mnist") return {2, false};
  if (n == "synthetic") return {};
  std::string valid;
  for (const std::string_view name : kDatasetNames) {
    valid += (valid.empty() ? "" : ", ") + std::string(name);
  }
  throw Error("default_augment: unknown data set '" + n + "', expected one of: " + valid);
}

CropFlip draw_crop_flip(const Augment& augment, uint64_t seed, int64_t epoch, int64_t index) {
  CropFlip t;
  t.padding = augment.crop_padding;
  t.dy = t.dx = augment.crop_padding;
  if (augment.crop_padding <= 0 && !augment.flip) return t;
  core::Rng rng(derive_seed(
      seed, {kAugmentStream, static_cast<uint64_t>(epoch), static_cast<uint64_t>(index)}));
  if (augment.crop_padding > 0) {
    const auto span = static_cast<uint64_t>(2 * augment.crop_padding + 1);
    t.dy = static_cast<int64_t>(rng.below(span));
    t.dx = static_cast<int64_t>(rng.below(span));
  }
  if (augment.flip) t.flip = (rng.next_u64() >> 63) != 0;
  return t;
}

void transform_image(std::span<const uint8_t> src, int64_t channels, int64_t height, int64_t width,
                     const CropFlip& transform, std::span<const float> mean,
                     std::span<const float> stddev, std::span<float> dst) {
  const auto size = static_cast<size_t>(channels * height * width);
  assert(src.size() == size && dst.size() == size);
  assert(mean.size() == static_cast<size_t>(channels) && stddev.size() == mean.size());
  (void)size;
  const int64_t oy = transform.dy - transform.padding;  // source row of output row 0
  const int64_t ox = transform.dx - transform.padding;
  for (int64_t c = 0; c < channels; ++c) {
    const float m = mean[static_cast<size_t>(c)];
    const float s = stddev[static_cast<size_t>(c)];
    const float zero = (0.0f / 255.0f - m) / s;
    const uint8_t* plane = src.data() + c * height * width;
    float* out = dst.data() + c * height * width;
    for (int64_t y = 0; y < height; ++y) {
      const int64_t sy = y + oy;
      float* row = out + y * width;
      if (sy < 0 || sy >= height) {
        for (int64_t x = 0; x < width; ++x) row[x] = zero;
        continue;
      }
      const uint8_t* src_row = plane + sy * width;
      for (int64_t x = 0; x < width; ++x) {
        const int64_t sx = (transform.flip ? width - 1 - x : x) + ox;
        row[x] =
            (sx < 0 || sx >= width) ? zero : (static_cast<float>(src_row[sx]) / 255.0f - m) / s;
      }
    }
  }
}

}  // namespace bitgrad::datasets
