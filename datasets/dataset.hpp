// dataset.hpp: Dataset, the one in-memory form of every image classification set (u8 pixels,
// integer labels, class names, normalisation constants), and load_dataset(), which picks a reader
// by name. Not here: the file formats (cifar.hpp, idx.hpp, synthetic.hpp), augmentation
// (transforms.hpp) or batching (loader.hpp).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace bitgrad::datasets {

// Which part of a data set to load.
enum class Split { kTrain, kTest };

// "train" -> kTrain, "test" -> kTest; anything else throws Error listing the two valid names.
Split parse_split(const std::string& name);
// "train" or "test".
std::string_view split_name(Split split);

// A whole split in memory. Pixels stay u8 (CIFAR-10's 50,000 training images are 150 MB as u8, 600
// MB as float); the Loader converts each batch to normalised float. A plain value type: copying it
// copies the pixels, so pass it by reference.
struct Dataset {
  std::string name;  // the load_dataset() name: "cifar10", "fashion-mnist", "synthetic", ...
  int64_t count = 0;
  int64_t channels = 0;
  int64_t height = 0;
  int64_t width = 0;
  int64_t classes = 0;
  std::vector<uint8_t> pixels;           // [count, channels, height, width], row-major, 0..255
  std::vector<int64_t> labels;           // [count], each in [0, classes)
  std::vector<std::string> class_names;  // [classes]
  // Per-channel normalisation constants in [0, 1] pixel units ([channels] each): the Loader feeds
  // the model (pixel / 255 - mean[c]) / stddev[c]. The published constants of the set (see
  // docs/datasets.md), not recomputed on load.
  std::vector<float> mean;
  std::vector<float> stddev;

  // Bytes per image: channels * height * width.
  int64_t image_size() const { return channels * height * width; }
  // The pixels of image i ([channels, height, width]); i must be in [0, count) (asserted).
  std::span<const uint8_t> image(int64_t i) const;
  // Throws Error (naming the data set) unless every field agrees with the others: non-negative
  // sizes, pixels.size() == count * image_size(), labels.size() == count with every label in [0,
  // classes), class_names.size() == classes, mean and stddev of size channels with every stddev >
  // 0. The readers return valid sets; call this on sets built by hand.
  void validate() const;
};

// Per-channel mean and standard deviation (population, over all pixels of all images) in [0, 1]
// pixel units, computed in double precision. Used for synthetic data and to confirm published
// constants.
struct ChannelStats {
  std::vector<float> mean;
  std::vector<float> stddev;
};
ChannelStats channel_stats(const Dataset& dataset);

// The names load_dataset() accepts.
inline constexpr std::array<std::string_view, 6> kDatasetNames = {
    "fashion-mnist", "mnist", "cifar10", "cifar100", "cifar100-coarse", "synthetic"};

// Where fashion-mnist is looked for when `dir` is empty: Debian's package dataset-fashion-mnist.
inline constexpr std::string_view kFashionMnistDefaultDir = "/usr/share/datasets/fashion-mnist";

// Loads split `split` of data set `name` from `dir`:
//   "fashion-mnist"   IDX files (gzipped or raw); empty dir = kFashionMnistDefaultDir
//   "mnist"           IDX files; no default directory
//   "cifar10"         CIFAR-10 binary version; no default directory
//   "cifar100"        CIFAR-100 binary version, fine labels (100 classes); no default directory
//   "cifar100-coarse" the same files with the coarse labels (20 superclasses)
//   "synthetic"       make_synthetic() with its default options (dir is ignored): 1024 training or
//                     256 test images, 3x32x32, 10 classes, seed 0
// Throws Error for an unknown name (listing the valid ones), for an empty dir where there is no
// default (asking for --data DIR), and for whatever the reader reports (missing or corrupt files).
Dataset load_dataset(const std::string& name, const std::string& dir, Split split);

}  // namespace bitgrad::datasets
