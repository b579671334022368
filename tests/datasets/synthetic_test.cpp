// synthetic_test.cpp: make_synthetic() is a pure function of its options, shares class prototypes
// between its splits, is learnable (a nearest-class-mean classifier fitted on the training split
// classifies the test split), has balanced labels, follows its size options and rejects bad ones.
#include <catch2/catch.hpp>

#include <algorithm>
#include <vector>

#include "datasets/synthetic.hpp"
#include "test_util.hpp"

namespace bitgrad::test {
namespace {

using datasets::Dataset;
using datasets::Split;
using datasets::SyntheticOptions;

SyntheticOptions small(uint64_t seed, Split split, int64_t count = 200) {
  SyntheticOptions o;
  o.count = count;
  o.channels = 2;
  o.height = 8;
  o.width = 8;
  o.classes = 5;
  o.seed = seed;
  o.split = split;
  return o;
}

// Per-class mean images of `set`, as floats.
std::vector<std::vector<double>> class_means(const Dataset& set) {
  const auto size = static_cast<size_t>(set.image_size());
  std::vector<std::vector<double>> means(static_cast<size_t>(set.classes),
                                         std::vector<double>(size, 0.0));
  std::vector<int> counts(static_cast<size_t>(set.classes), 0);
  for (int64_t i = 0; i < set.count; ++i) {
    const auto label = static_cast<size_t>(set.labels[static_cast<size_t>(i)]);
    const auto img = set.image(i);
    for (size_t k = 0; k < size; ++k) means[label][k] += img[k];
    ++counts[label];
  }
  for (size_t c = 0; c < means.size(); ++c) {
    for (double& v : means[c]) v /= counts[c];
  }
  return means;
}

// Fraction of `set` whose nearest class mean (squared distance) is its label.
double nearest_mean_accuracy(const std::vector<std::vector<double>>& means, const Dataset& set) {
  int correct = 0;
  for (int64_t i = 0; i < set.count; ++i) {
    const auto img = set.image(i);
    size_t best = 0;
    double best_d = 1e300;
    for (size_t c = 0; c < means.size(); ++c) {
      double d = 0.0;
      for (size_t k = 0; k < img.size(); ++k) d += (img[k] - means[c][k]) * (img[k] - means[c][k]);
      if (d < best_d) {
        best_d = d;
        best = c;
      }
    }
    correct += static_cast<int64_t>(best) == set.labels[static_cast<size_t>(i)];
  }
  return static_cast<double>(correct) / static_cast<double>(set.count);
}

TEST_CASE("synthetic: deterministic from its options", "[datasets]") {
  const Dataset a = datasets::make_synthetic(small(7, Split::kTrain));
  const Dataset b = datasets::make_synthetic(small(7, Split::kTrain));
  a.validate();
  CHECK(a.pixels == b.pixels);
  CHECK(a.labels == b.labels);
  CHECK(a.mean == b.mean);
  CHECK(a.stddev == b.stddev);
  CHECK(a.name == "synthetic");
  CHECK(a.class_names ==
        std::vector<std::string>{"class_0", "class_1", "class_2", "class_3", "class_4"});

  const Dataset other_seed = datasets::make_synthetic(small(8, Split::kTrain));
  CHECK(other_seed.pixels != a.pixels);
  const Dataset test = datasets::make_synthetic(small(7, Split::kTest));
  CHECK(test.pixels != a.pixels);
}

TEST_CASE("synthetic: learnable, with prototypes shared by the splits of one seed", "[datasets]") {
  const Dataset train = datasets::make_synthetic(small(3, Split::kTrain, 300));
  const Dataset test = datasets::make_synthetic(small(3, Split::kTest, 100));
  const auto means = class_means(train);
  CHECK(nearest_mean_accuracy(means, test) > 0.95);
  // Another seed's classes are unrelated: the same classifier is near chance (1/5) there.
  const Dataset unrelated = datasets::make_synthetic(small(4, Split::kTest, 100));
  CHECK(nearest_mean_accuracy(means, unrelated) < 0.6);
}

TEST_CASE("synthetic: balanced labels, sizes and statistics", "[datasets]") {
  SyntheticOptions o;
  o.count = 23;
  o.channels = 1;
  o.height = 3;
  o.width = 5;
  o.classes = 4;
  o.noise = 0.0f;
  const Dataset set = datasets::make_synthetic(o);
  set.validate();
  CHECK(set.pixels.size() == 23u * 15u);
  std::vector<int> per_class(4, 0);
  for (const int64_t l : set.labels) ++per_class[static_cast<size_t>(l)];
  CHECK(per_class == std::vector<int>{6, 6, 6, 5});
  // Without noise every image equals its class prototype: items of one class are identical, and
  // levels lie in [0.2, 0.8] * 255.
  for (int64_t i = 1; i < set.count; ++i) {
    if (set.labels[static_cast<size_t>(i)] != set.labels[0]) continue;
    const auto a = set.image(0);
    const auto b = set.image(i);
    CHECK(std::vector<uint8_t>(a.begin(), a.end()) == std::vector<uint8_t>(b.begin(), b.end()));
  }
  for (const uint8_t v : set.pixels) {
    CHECK(v >= 51);
    CHECK(v <= 204);
  }
  const datasets::ChannelStats s = datasets::channel_stats(set);
  CHECK(set.mean == s.mean);
  CHECK(set.stddev[0] == std::max(s.stddev[0], 1e-3f));
  // Default options: 3x32x32 and a mean near the middle of [0.2, 0.8].
  const Dataset def = datasets::make_synthetic({});
  CHECK(def.count == 1024);
  CHECK(def.image_size() == 3 * 32 * 32);
  for (const float m : def.mean) CHECK(m == Approx(0.5).margin(0.1));
}

TEST_CASE("synthetic: bad options", "[datasets]") {
  SyntheticOptions o;
  o.classes = 0;
  CHECK_THAT(error_message([&] { datasets::make_synthetic(o); }),
             Catch::Contains("make_synthetic") && Catch::Contains("0 classes"));
  o = {};
  o.count = -1;
  CHECK_THAT(error_message([&] { datasets::make_synthetic(o); }), Catch::Contains("count -1"));
  o = {};
  o.noise = -0.5f;
  CHECK_THAT(error_message([&] { datasets::make_synthetic(o); }),
             Catch::Contains("expected noise >= 0"));
  // An empty set is valid.
  o = {};
  o.count = 0;
  CHECK(datasets::make_synthetic(o).count == 0);
}

}  // namespace
}  // namespace bitgrad::test
