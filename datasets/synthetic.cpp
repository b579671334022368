// synthetic.cpp: prototypes from one seeded stream, items from another, so the splits share
// classes.
#include "datasets/synthetic.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "datasets/derive_seed.hpp"

namespace bitgrad::datasets {

namespace {
constexpr uint64_t kPrototypeStream = 0x5052'4f54;  // "PROT"
constexpr uint64_t kItemStream = 0x4954'454d;       // "ITEM"
constexpr int64_t kGrid = 4;
}  // namespace

Dataset make_synthetic(const SyntheticOptions& options) {
  const SyntheticOptions& o = options;
  check_lazy(o.count >= 0 && o.channels > 0 && o.height > 0 && o.width > 0 && o.classes > 0, [&] {
    return "make_synthetic: expected count >= 0 and positive channels, height, width and classes, "
           "found count " +
           std::to_string(o.count) + ", [" + std::to_string(o.channels) + ", " +
           std::to_string(o.height) + ", " + std::to_string(o.width) + "], " +
           std::to_string(o.classes) + " classes";
  });
  check_lazy(o.noise >= 0.0f && std::isfinite(o.noise), [&] {
    return "make_synthetic: expected noise >= 0, found " + std::to_string(o.noise);
  });

  const int64_t grid_y = std::min(kGrid, o.height);
  const int64_t grid_x = std::min(kGrid, o.width);
  const int64_t cells = o.channels * grid_y * grid_x;
  std::vector<float> prototypes(static_cast<size_t>(o.classes * cells));
  core::Rng proto_rng(derive_seed(o.seed, {kPrototypeStream}));
  for (float& level : prototypes) level = proto_rng.uniform(0.2f, 0.8f);

  Dataset set;
  set.name = "synthetic";
  set.count = o.count;
  set.channels = o.channels;
  set.height = o.height;
  set.width = o.width;
  set.classes = o.classes;
  for (int64_t k = 0; k < o.classes; ++k) set.class_names.push_back("class_" + std::to_string(k));

  core::Rng item_rng(derive_seed(o.seed, {kItemStream, static_cast<uint64_t>(o.split)}));
  set.labels.resize(static_cast<size_t>(o.count));
  for (int64_t i = 0; i < o.count; ++i) set.labels[static_cast<size_t>(i)] = i % o.classes;
  const std::vector<int64_t> order = item_rng.permutation(o.count);
  std::vector<int64_t> shuffled(set.labels.size());
  for (size_t i = 0; i < order.size(); ++i) {
    shuffled[i] = set.labels[static_cast<size_t>(order[i])];
  }
  set.labels = std::move(shuffled);

  set.pixels.resize(static_cast<size_t>(o.count * set.image_size()));
  uint8_t* out = set.pixels.data();
  for (int64_t i = 0; i < o.count; ++i) {
    const float* proto = prototypes.data() + set.labels[static_cast<size_t>(i)] * cells;
    for (int64_t c = 0; c < o.channels; ++c) {
      for (int64_t y = 0; y < o.height; ++y) {
        const int64_t cy = y * grid_y / o.height;
        for (int64_t x = 0; x < o.width; ++x) {
          const int64_t cx = x * grid_x / o.width;
          const float level = proto[(c * grid_y + cy) * grid_x + cx];
          const float v = std::round(255.0f * (level + o.noise * item_rng.normal()));
          *out++ = static_cast<uint8_t>(std::clamp(v, 0.0f, 255.0f));
        }
      }
    }
  }

  ChannelStats stats = channel_stats(set);
  set.mean = std::move(stats.mean);
  set.stddev = std::move(stats.stddev);
  // A constant channel (noise 0 and one level) would give stddev 0; keep normalisation finite.
  for (float& s : set.stddev) s = std::max(s, 1e-3f);
  return set;
}

}  // namespace bitgrad::datasets
