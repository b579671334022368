// dataset_test.cpp: load_dataset() by name (each reader, defaults, errors), Dataset::validate(),
// channel_stats() on hand examples, and the real Fashion-MNIST training set (skipped with a warning
// when the Debian package is absent), whose measured statistics must match the published constants.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "datasets/dataset.hpp"
#include "datasets/loader.hpp"
#include "datasets/transforms.hpp"
#include "test_util.hpp"
#include "tests/datasets/dataset_files.hpp"

namespace bitgrad::test {
namespace {

namespace fs = std::filesystem;
using datasets::Dataset;
using datasets::Split;

// A hand-made valid set: 2 images of 1x1x2, 3 classes.
Dataset tiny_set() {
  Dataset d;
  d.name = "tiny";
  d.count = 2;
  d.channels = 1;
  d.height = 1;
  d.width = 2;
  d.classes = 3;
  d.pixels = {0, 255, 255, 255};
  d.labels = {2, 0};
  d.class_names = {"a", "b", "c"};
  d.mean = {0.5f};
  d.stddev = {0.5f};
  return d;
}

TEST_CASE("dataset: split names", "[datasets]") {
  CHECK(datasets::parse_split("train") == Split::kTrain);
  CHECK(datasets::parse_split("test") == Split::kTest);
  CHECK(datasets::split_name(Split::kTrain) == "train");
  CHECK(datasets::split_name(Split::kTest) == "test");
  CHECK_THAT(error_message([] { datasets::parse_split("val"); }),
             Catch::Contains("unknown split 'val'") && Catch::Contains("train, test"));
}

TEST_CASE("dataset: validate() rejects inconsistent sets", "[datasets]") {
  tiny_set().validate();
  Dataset d = tiny_set();
  d.pixels.pop_back();
  CHECK_THAT(error_message([&] { d.validate(); }), Catch::Contains("dataset 'tiny'") &&
                                                       Catch::Contains("expected 4 pixel bytes") &&
                                                       Catch::Contains("found 3"));
  d = tiny_set();
  d.labels[1] = 3;
  CHECK_THAT(error_message([&] { d.validate(); }),
             Catch::Contains("label 3 of item 1 is not in [0, 3)"));
  d = tiny_set();
  d.labels.push_back(0);
  CHECK_THAT(error_message([&] { d.validate(); }), Catch::Contains("expected 2 labels, found 3"));
  d = tiny_set();
  d.class_names.pop_back();
  CHECK_THAT(error_message([&] { d.validate(); }),
             Catch::Contains("expected 3 class names, found 2"));
  d = tiny_set();
  d.stddev = {0.0f};
  CHECK_THAT(error_message([&] { d.validate(); }), Catch::Contains("stddev > 0"));
  d = tiny_set();
  d.mean = {0.1f, 0.2f};
  CHECK_THAT(error_message([&] { d.validate(); }),
             Catch::Contains("expected 1 values in mean and stddev, found 2 and 1"));
  d = tiny_set();
  d.classes = 0;
  CHECK_THAT(error_message([&] { d.validate(); }), Catch::Contains("0 classes"));
}

TEST_CASE("dataset: channel_stats on hand examples", "[datasets]") {
  // Pixels 0, 255, 255, 255: mean 3/4, variance 3/4 - 9/16 = 3/16.
  const datasets::ChannelStats s = datasets::channel_stats(tiny_set());
  REQUIRE(s.mean.size() == 1);
  CHECK(s.mean[0] == Approx(0.75).epsilon(1e-6));
  CHECK(s.stddev[0] == Approx(std::sqrt(3.0 / 16.0)).epsilon(1e-6));

  // Two channels of 2 pixels, two images: channel 0 all 51 (0.2, stddev 0); channel 1 0 and 255.
  Dataset d = tiny_set();
  d.channels = 2;
  d.height = 1;
  d.width = 2;
  d.pixels = {51, 51, 0, 255, 51, 51, 255, 0};
  const datasets::ChannelStats t = datasets::channel_stats(d);
  REQUIRE(t.mean.size() == 2);
  CHECK(t.mean[0] == Approx(0.2).epsilon(1e-6));
  CHECK(t.stddev[0] == Approx(0.0).margin(1e-6));
  CHECK(t.mean[1] == Approx(0.5).epsilon(1e-6));
  CHECK(t.stddev[1] == Approx(0.5).epsilon(1e-6));
}

TEST_CASE("dataset: load_dataset names and errors", "[datasets]") {
  TempDir dir;
  const std::string d = dir.path().string();

  SECTION("unknown names list the valid ones") {
    const std::string msg =
        error_message([&] { datasets::load_dataset("imagenet", d, Split::kTrain); });
    CHECK_THAT(msg, Catch::Contains("unknown data set 'imagenet'"));
    for (const std::string_view name : datasets::kDatasetNames) {
      CHECK_THAT(msg, Catch::Contains(std::string(name)));
    }
  }
  SECTION("sets without a default directory ask for --data") {
    for (const std::string name : {"mnist", "cifar10", "cifar100", "cifar100-coarse"}) {
      CHECK_THAT(
          error_message([&] { datasets::load_dataset(name, "", Split::kTest); }),
          Catch::Contains(name + " has no default directory") && Catch::Contains("--data DIR"));
    }
  }
  SECTION("cifar10, cifar100 and cifar100-coarse") {
    write_bytes(dir.file("test_batch.bin"), cifar_records({{7}}, {0}));
    write_bytes(dir.file("test.bin"), cifar_records({{2, 70}, {3, 80}}, {0, 1}));
    const Dataset c10 = datasets::load_dataset("cifar10", d, Split::kTest);
    CHECK(c10.name == "cifar10");
    CHECK(c10.labels == std::vector<int64_t>{7});
    const Dataset fine = datasets::load_dataset("cifar100", d, Split::kTest);
    CHECK(fine.name == "cifar100");
    CHECK(fine.labels == std::vector<int64_t>{70, 80});
    const Dataset coarse = datasets::load_dataset("cifar100-coarse", d, Split::kTest);
    CHECK(coarse.name == "cifar100-coarse");
    CHECK(coarse.labels == std::vector<int64_t>{2, 3});
    // The reader's own error comes through.
    CHECK_THAT(error_message([&] { datasets::load_dataset("cifar10", d, Split::kTrain); }),
               Catch::Contains("missing file 'data_batch_1.bin'"));
  }
  SECTION("mnist and fashion-mnist from a given directory") {
    std::vector<uint8_t> px(2 * 28 * 28);
    for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i);
    write_bytes(dir.file("t10k-images-idx3-ubyte"), idx_file({2, 28, 28}, px));
    write_bytes(dir.file("t10k-labels-idx1-ubyte"), idx_file({2}, {3, 8}));
    for (const std::string name : {"mnist", "fashion-mnist"}) {
      const Dataset set = datasets::load_dataset(name, d, Split::kTest);
      set.validate();
      CHECK(set.name == name);
      CHECK(set.count == 2);
      CHECK(set.channels == 1);
      CHECK(set.height == 28);
      CHECK(set.width == 28);
      CHECK(set.classes == 10);
      CHECK(set.pixels == px);
      CHECK(set.labels == std::vector<int64_t>{3, 8});
    }
    const Dataset mnist = datasets::load_dataset("mnist", d, Split::kTest);
    CHECK(mnist.class_names[3] == "3");
    CHECK(mnist.mean == std::vector<float>{0.1307f});
    CHECK(mnist.stddev == std::vector<float>{0.3081f});
    const Dataset fashion = datasets::load_dataset("fashion-mnist", d, Split::kTest);
    CHECK(fashion.class_names.front() == "T-shirt/top");
    CHECK(fashion.class_names.back() == "Ankle boot");
    CHECK(fashion.mean == std::vector<float>{0.2860f});
    CHECK(fashion.stddev == std::vector<float>{0.3530f});
    CHECK_THAT(error_message([&] { datasets::load_dataset("mnist", d, Split::kTrain); }),
               Catch::Contains("no train images file"));
  }
  SECTION("synthetic ignores the directory") {
    const Dataset train = datasets::load_dataset("synthetic", "", Split::kTrain);
    const Dataset test = datasets::load_dataset("synthetic", "/nonexistent", Split::kTest);
    train.validate();
    test.validate();
    CHECK(train.name == "synthetic");
    CHECK(train.count == 1024);
    CHECK(test.count == 256);
    CHECK(train.channels == 3);
    CHECK(train.height == 32);
    CHECK(train.width == 32);
    CHECK(train.classes == 10);
  }
}

TEST_CASE("dataset: every name has a default augmentation", "[datasets]") {
  for (const std::string_view name : datasets::kDatasetNames) {
    CHECK_NOTHROW(datasets::default_augment(std::string(name)));
  }
}

TEST_CASE("dataset: the real Fashion-MNIST training set", "[datasets]") {
  if (!fs::is_directory(std::string(datasets::kFashionMnistDefaultDir))) {
    WARN("skipped: " << datasets::kFashionMnistDefaultDir
                     << " is absent (install the Debian package dataset-fashion-mnist)");
    return;
  }
  const Dataset train = datasets::load_dataset("fashion-mnist", "", Split::kTrain);
  train.validate();
  REQUIRE(train.count == 60000);
  CHECK(train.channels == 1);
  CHECK(train.height == 28);
  CHECK(train.width == 28);
  std::vector<int> per_class(10, 0);
  for (const int64_t l : train.labels) ++per_class[static_cast<size_t>(l)];
  CHECK(per_class == std::vector<int>(10, 6000));
  // The published constants are these statistics, rounded to 4 digits.
  const datasets::ChannelStats s = datasets::channel_stats(train);
  CHECK(s.mean[0] == Approx(train.mean[0]).margin(1e-4));
  CHECK(s.stddev[0] == Approx(train.stddev[0]).margin(1e-4));

  // One augmented epoch through the loader visits every image once and yields normalised values.
  datasets::LoaderOptions options;
  options.batch_size = 500;
  options.seed = 3;
  options.augment = datasets::default_augment(train.name);
  datasets::Loader loader(train, options);
  CHECK(loader.batches_per_epoch() == 120);
  loader.start_epoch(0);
  std::vector<char> seen(60000, 0);
  double sum = 0.0;
  int64_t values = 0;
  while (std::optional<datasets::Batch> b = loader.next()) {
    for (const int64_t i : b->indices) ++seen[static_cast<size_t>(i)];
    for (const float v : b->images.span()) sum += v;
    values += b->images.numel();
  }
  CHECK(std::count(seen.begin(), seen.end(), 1) == 60000);
  // Normalised data has mean near 0 (padding adds some black, pulling it slightly negative).
  CHECK(sum / static_cast<double>(values) == Approx(0.0).margin(0.1));
}

}  // namespace
}  // namespace bitgrad::test
