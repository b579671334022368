// transforms_test.cpp: transform_image() on hand examples (normalisation values, crop offsets with
// zero padding, flips, crop + flip), draw_crop_flip() as a pure function with the right ranges and
// flip rate, and the default augmentation of each data set.
#include <catch2/catch.hpp>

#include <set>
#include <vector>

#include "datasets/transforms.hpp"
#include "test_util.hpp"

namespace bitgrad::test {
namespace {

using datasets::Augment;
using datasets::CropFlip;

// A 1-channel 3x3 image holding 1..9 row-major, transformed with mean 0 and stddev 1, returned as
// pixel values (out * 255, exact for these integers), so each output names its source pixel.
std::vector<int> apply_3x3(const CropFlip& t) {
  const std::vector<uint8_t> src = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  std::vector<float> dst(9, -1.0f);
  const std::vector<float> mean = {0.0f};
  const std::vector<float> stddev = {1.0f};
  datasets::transform_image(src, 1, 3, 3, t, mean, stddev, dst);
  std::vector<int> out;
  for (const float v : dst) {
    const float px = v * 255.0f;
    out.push_back(static_cast<int>(px + 0.5f));
    CHECK(v == static_cast<float>(out.back()) / 255.0f);  // exactly (v / 255 - 0) / 1
  }
  return out;
}

TEST_CASE("transforms: normalisation per channel", "[datasets]") {
  // Two channels of 1x2: (x / 255 - mean[c]) / stddev[c], bit-exact.
  const std::vector<uint8_t> src = {0, 255, 51, 128};
  const std::vector<float> mean = {0.5f, 0.2f};
  const std::vector<float> stddev = {0.25f, 0.5f};
  std::vector<float> dst(4);
  datasets::transform_image(src, 2, 1, 2, CropFlip{}, mean, stddev, dst);
  CHECK(dst[0] == -2.0f);
  CHECK(dst[1] == 2.0f);
  CHECK(dst[2] == (51.0f / 255.0f - 0.2f) / 0.5f);
  CHECK(dst[2] == Approx(0.0).margin(1e-6));
  CHECK(dst[3] == (128.0f / 255.0f - 0.2f) / 0.5f);
  CHECK(dst[3] == Approx((128.0 / 255.0 - 0.2) / 0.5).epsilon(1e-6));
}

TEST_CASE("transforms: crop offsets read from the zero-padded image", "[datasets]") {
  // The identity: padding 1, offset (1, 1), no flip.
  CHECK(apply_3x3({1, 1, 1, false}) == std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK(apply_3x3({0, 0, 0, false}) == std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8, 9});
  // Offset (0, 0): the window starts in the padding, so the image moves down and right.
  CHECK(apply_3x3({1, 0, 0, false}) == std::vector<int>{0, 0, 0, 0, 1, 2, 0, 4, 5});
  // Offset (2, 2): up and left.
  CHECK(apply_3x3({1, 2, 2, false}) == std::vector<int>{5, 6, 0, 8, 9, 0, 0, 0, 0});
  // Offset (0, 2): down and left.
  CHECK(apply_3x3({1, 0, 2, false}) == std::vector<int>{0, 0, 0, 2, 3, 0, 5, 6, 0});
  // Padding 2, offset (4, 1): two rows up, one column right.
  CHECK(apply_3x3({2, 4, 1, false}) == std::vector<int>{0, 7, 8, 0, 0, 0, 0, 0, 0});
  // Padding larger than the image: all padding.
  CHECK(apply_3x3({5, 0, 0, false}) == std::vector<int>(9, 0));
}

TEST_CASE("transforms: horizontal flip, alone and after a crop", "[datasets]") {
  CHECK(apply_3x3({0, 0, 0, true}) == std::vector<int>{3, 2, 1, 6, 5, 4, 9, 8, 7});
  CHECK(apply_3x3({1, 1, 1, true}) == std::vector<int>{3, 2, 1, 6, 5, 4, 9, 8, 7});
  // Crop at (1, 0) gives rows [0 1 2], [0 4 5], [0 7 8]; the flip mirrors that crop.
  CHECK(apply_3x3({1, 1, 0, true}) == std::vector<int>{2, 1, 0, 5, 4, 0, 8, 7, 0});
  // Padding pixels are black before normalisation: (0 / 255 - mean) / stddev.
  const std::vector<uint8_t> src = {200, 200, 200, 200};
  const std::vector<float> mean = {0.4f};
  const std::vector<float> stddev = {0.2f};
  std::vector<float> dst(4);
  datasets::transform_image(src, 1, 2, 2, {1, 0, 0, true}, mean, stddev, dst);
  const float black = (0.0f - 0.4f) / 0.2f;
  const float white = (200.0f / 255.0f - 0.4f) / 0.2f;
  CHECK(dst == std::vector<float>{black, black, white, black});
}

TEST_CASE("transforms: draw_crop_flip is a pure function with the documented ranges",
          "[datasets]") {
  const Augment none{};
  const CropFlip id = datasets::draw_crop_flip(none, 1, 2, 3);
  CHECK(id.padding == 0);
  CHECK(id.dy == 0);
  CHECK(id.dx == 0);
  CHECK_FALSE(id.flip);

  const Augment cifar{4, true};
  std::set<int64_t> dys;
  std::set<int64_t> dxs;
  int flips = 0;
  int same_as_next_epoch = 0;
  const int n = 4000;
  for (int i = 0; i < n; ++i) {
    const CropFlip t = datasets::draw_crop_flip(cifar, 11, 5, i);
    const CropFlip again = datasets::draw_crop_flip(cifar, 11, 5, i);
    REQUIRE(t.dy == again.dy);
    REQUIRE(t.dx == again.dx);
    REQUIRE(t.flip == again.flip);
    CHECK(t.padding == 4);
    dys.insert(t.dy);
    dxs.insert(t.dx);
    flips += t.flip;
    const CropFlip other = datasets::draw_crop_flip(cifar, 11, 6, i);
    same_as_next_epoch += other.dy == t.dy && other.dx == t.dx && other.flip == t.flip;
  }
  CHECK(dys == std::set<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8});
  CHECK(dxs == std::set<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8});
  CHECK(flips > n * 45 / 100);
  CHECK(flips < n * 55 / 100);
  // Another epoch draws anew: a match has probability 1/162 per item.
  CHECK(same_as_next_epoch < n / 50);

  // Flip only: offsets stay at zero.
  for (int i = 0; i < 50; ++i) {
    const CropFlip t = datasets::draw_crop_flip({0, true}, 0, 0, i);
    CHECK(t.dy == 0);
    CHECK(t.dx == 0);
  }
  // Crop only: never flipped.
  for (int i = 0; i < 50; ++i) CHECK_FALSE(datasets::draw_crop_flip({2, false}, 0, 0, i).flip);
}

TEST_CASE("transforms: default augmentation per data set", "[datasets]") {
  auto is = [](const Augment& a, int64_t pad, bool flip) {
    return a.crop_padding == pad && a.flip == flip;
  };
  CHECK(is(datasets::default_augment("cifar10"), 4, true));
  CHECK(is(datasets::default_augment("cifar100"), 4, true));
  CHECK(is(datasets::default_augment("cifar100-coarse"), 4, true));
  CHECK(is(datasets::default_augment("fashion-mnist"), 2, true));
  CHECK(is(datasets::default_augment("mnist"), 2, false));
  CHECK(is(datasets::default_augment("synthetic"), 0, false));
  CHECK_THAT(error_message([] { datasets::default_augment("svhn"); }),
             Catch::Contains("unknown data set 'svhn'") && Catch::Contains("fashion-mnist"));
}

}  // namespace
}  // namespace bitgrad::test
