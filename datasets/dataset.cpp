// dataset.cpp: Dataset checks and statistics, and the name -> reader table of load_dataset().
#include "datasets/dataset.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>

#include "core/error.hpp"
#include "datasets/cifar.hpp"
#include "datasets/idx.hpp"
#include "datasets/synthetic.hpp"

namespace bitgrad::datasets {

Split parse_split(const std::string& name) {
  if (name == "train") return Split::kTrain;
  if (name == "test") return Split::kTest;
  throw Error("unknown split '" + name + "', expected one of: train, test");
}

std::string_view split_name(Split split) { return split == Split::kTrain ? "train" : "test"; }

std::span<const uint8_t> Dataset::image(int64_t i) const {
  assert(i >= 0 && i < count);
  const auto size = static_cast<size_t>(image_size());
  return {pixels.data() + static_cast<size_t>(i) * size, size};
}

void Dataset::validate() const {
  const std::string who = "dataset '" + name + "': ";
  check_lazy(count >= 0 && channels > 0 && height > 0 && width > 0 && classes > 0, [&] {
    return who +
           "expected count >= 0 and positive channels, height, width and classes, found count " +
           std::to_string(count) + ", [" + std::to_string(channels) + ", " +
           std::to_string(height) + ", " + std::to_string(width) + "], " + std::to_string(classes) +
           " classes";
  });
  check_lazy(pixels.size() == static_cast<size_t>(count * image_size()), [&] {
    return who + "expected " + std::to_string(count * image_size()) + " pixel bytes (" +
           std::to_string(count) + " images of " + std::to_string(image_size()) + "), found " +
           std::to_string(pixels.size());
  });
  check_lazy(labels.size() == static_cast<size_t>(count), [&] {
    return who + "expected " + std::to_string(count) + " labels, found " +
           std::to_string(labels.size());
  });
  for (size_t i = 0; i < labels.size(); ++i) {
    check_lazy(labels[i] >= 0 && labels[i] < classes, [&] {
      return who + "label " + std::to_string(labels[i]) + " of item " + std::to_string(i) +
             " is not in [0, " + std::to_string(classes) + ")";
    });
  }
  check_lazy(class_names.size() == static_cast<size_t>(classes), [&] {
    return who + "expected " + std::to_string(classes) + " class names, found " +
           std::to_string(class_names.size());
  });
  check_lazy(mean.size() == static_cast<size_t>(channels) &&
                 stddev.size() == static_cast<size_t>(channels),
             [&] {
               return who + "expected " + std::to_string(channels) +
                      " values in mean and stddev, found " + std::to_string(mean.size()) + " and " +
                      std::to_string(stddev.size());
             });
  for (size_t c = 0; c < stddev.size(); ++c) {
    check_lazy(stddev[c] > 0.0f && std::isfinite(stddev[c]) && std::isfinite(mean[c]), [&] {
      return who + "channel " + std::to_string(c) + " has mean " + std::to_string(mean[c]) +
             " and stddev " + std::to_string(stddev[c]) + ", expected finite values and stddev > 0";
    });
  }
}

ChannelStats channel_stats(const Dataset& dataset) {
  const auto channels = static_cast<size_t>(dataset.channels);
  const auto plane = static_cast<size_t>(dataset.height * dataset.width);
  std::vector<double> sum(channels, 0.0);
  std::vector<double> sum_sq(channels, 0.0);
  for (int64_t i = 0; i < dataset.count; ++i) {
    const std::span<const uint8_t> img = dataset.image(i);
    for (size_t c = 0; c < channels; ++c) {
      // Integer sums per plane are exact; doubles only accumulate across images.
      uint64_t s = 0;
      uint64_t s2 = 0;
      for (size_t k = 0; k < plane; ++k) {
        const uint64_t v = img[c * plane + k];
        s += v;
        s2 += v * v;
      }
      sum[c] += static_cast<double>(s);
      sum_sq[c] += static_cast<double>(s2);
    }
  }
  ChannelStats stats;
  const double n = static_cast<double>(dataset.count) * static_cast<double>(plane);
  for (size_t c = 0; c < channels; ++c) {
    const double m = n > 0 ? sum[c] / n / 255.0 : 0.0;
    const double var = n > 0 ? sum_sq[c] / n / (255.0 * 255.0) - m * m : 0.0;
    stats.mean.push_back(static_cast<float>(m));
    stats.stddev.push_back(static_cast<float>(std::sqrt(std::max(var, 0.0))));
  }
  return stats;
}

Dataset load_dataset(const std::string& name, const std::string& dir, Split split) {
  auto need_dir = [&] {
    check_lazy(!dir.empty(), [&] {
      return "load_dataset: " + name +
             " has no default directory; pass the directory holding its files (--data DIR)";
    });
  };
  if (name == "fashion-mnist") {
    return load_fashion_mnist(dir.empty() ? std::string(kFashionMnistDefaultDir) : dir, split);
  }
  if (name == "mnist") {
    need_dir();
    return load_mnist(dir, split);
  }
  if (name == "cifar10") {
    need_dir();
    return load_cifar10(dir, split);
  }
  if (name == "cifar100" || name == "cifar100-coarse") {
    need_dir();
    return load_cifar100(dir, split,
                         name == "cifar100" ? Cifar100Labels::kFine : Cifar100Labels::kCoarse);
  }
  if (name == "synthetic") {
    SyntheticOptions options;
    options.count = split == Split::kTrain ? 1024 : 256;
    options.split = split;
    return make_synthetic(options);
  }
  std::string valid;
  for (const std::string_view n : kDatasetNames)
    valid += (valid.empty() ? "" : ", ") + std::string(n);
  throw Error("load_dataset: unknown data set '" + name + "', expected one of: " + valid);
}

}  // namespace bitgrad::datasets
