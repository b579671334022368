// synthetic.hpp: a small, deterministic, learnable image classification set for tests and smoke
// runs (no files needed). Each class has a fixed random blocky prototype image; each item is its
// class's prototype plus Gaussian pixel noise, so a classifier can learn it quickly but not
// trivially. Not here: anything meant to resemble real images.
#pragma once

#include <cstdint>

#include "datasets/dataset.hpp"

namespace bitgrad::datasets {

struct SyntheticOptions {
  int64_t count = 1024;  // images
  int64_t channels = 3;
  int64_t height = 32;
  int64_t width = 32;
  int64_t classes = 10;
  // The class prototypes depend on `seed` only, so the kTrain and kTest splits of one seed share
  // them (a model trained on one generalises to the other); the items (labels, noise) depend on
  // (seed, split) and never coincide between the splits.
  uint64_t seed = 0;
  Split split = Split::kTrain;
  // Standard deviation of the per-pixel noise, in [0, 1] pixel units.
  float noise = 0.2f;
};

// Dataset "synthetic", a pure function of the options. The prototype of class k is a 4x4 grid of
// cells per channel (fewer when the image is smaller than 4 pixels), each cell one random level in
// [0.2, 0.8]; pixel = clamp(round(255 * (prototype + noise * N(0, 1))), 0, 255). Labels are
// balanced (item i of the unshuffled list has label i % classes) in a random order. Class names
// "class_0", "class_1", ...; mean and stddev are the measured channel_stats() of the generated
// pixels (stddev at least 1e-3, so that a noise-free set still normalises). Throws Error for count
// < 0, non-positive channels, height, width or classes, or noise < 0 (or not finite).
Dataset make_synthetic(const SyntheticOptions& options);

}  // namespace bitgrad::datasets
