// loader_test.cpp: Loader semantics on a small synthetic set: batch counts with and without
// drop_last, every item exactly once per epoch, contents equal to the documented transform, orders
// fixed by (seed, epoch), limit, prefetching identical to synchronous preparation and to one
// thread, restarting and destroying mid-epoch, the stall timer, and option errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>
#include <optional>
#include <vector>

#include "core/threads.hpp"
#include "datasets/loader.hpp"
#include "datasets/synthetic.hpp"
#include "datasets/transforms.hpp"
#include "test_util.hpp"

namespace bitgrad::test {
namespace {

using datasets::Batch;
using datasets::Dataset;
using datasets::Loader;
using datasets::LoaderOptions;

const Dataset& small_set() {
  static const Dataset set = [] {
    datasets::SyntheticOptions o;
    o.count = 37;
    o.channels = 3;
    o.height = 6;
    o.width = 5;
    o.classes = 4;
    o.seed = 5;
    return datasets::make_synthetic(o);
  }();
  return set;
}

LoaderOptions options(int64_t batch_size, uint64_t seed = 1) {
  LoaderOptions o;
  o.batch_size = batch_size;
  o.seed = seed;
  o.augment = {2, true};
  return o;
}

// All batches of one epoch.
std::vector<Batch> epoch_batches(Loader& loader, int64_t epoch) {
  loader.start_epoch(epoch);
  std::vector<Batch> out;
  while (std::optional<Batch> b = loader.next()) out.push_back(std::move(*b));
  return out;
}

std::vector<int64_t> order_of(const std::vector<Batch>& batches) {
  std::vector<int64_t> order;
  for (const Batch& b : batches) order.insert(order.end(), b.indices.begin(), b.indices.end());
  return order;
}

bool same_batches(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].indices != b[i].indices || a[i].labels != b[i].labels) return false;
    if (!(a[i].images.shape() == b[i].images.shape())) return false;
    if (a[i].images.to_vector() != b[i].images.to_vector()) return false;  // bit-exact
  }
  return true;
}

TEST_CASE("loader: batch counts with and without drop_last", "[datasets]") {
  const Dataset& set = small_set();
  Loader keep(set, options(8));
  CHECK(keep.size() == 37);
  CHECK(keep.batches_per_epoch() == 5);
  std::vector<Batch> batches = epoch_batches(keep, 0);
  REQUIRE(batches.size() == 5);
  for (size_t i = 0; i < 4; ++i) CHECK(batches[i].images.shape() == core::Shape{8, 3, 6, 5});
  CHECK(batches[4].images.shape() == core::Shape{5, 3, 6, 5});
  CHECK(batches[4].labels.size() == 5);

  LoaderOptions o = options(8);
  o.drop_last = true;
  Loader drop(set, o);
  CHECK(drop.batches_per_epoch() == 4);
  batches = epoch_batches(drop, 0);
  CHECK(batches.size() == 4);
  CHECK(order_of(batches).size() == 32);
  // Once exhausted, next() keeps returning nullopt.
  CHECK_FALSE(drop.next().has_value());

  // Exact multiple, and one batch larger than the set.
  CHECK(Loader(set, options(37)).batches_per_epoch() == 1);
  o = options(64);
  CHECK(Loader(set, o).batches_per_epoch() == 1);
  o.drop_last = true;
  Loader none(set, o);
  CHECK(none.batches_per_epoch() == 0);
  CHECK(epoch_batches(none, 0).empty());
}

TEST_CASE("loader: every item once per epoch, with the documented contents", "[datasets]") {
  const Dataset& set = small_set();
  const LoaderOptions o = options(8, 9);
  Loader loader(set, o);
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    const std::vector<Batch> batches = epoch_batches(loader, epoch);
    std::vector<int64_t> order = order_of(batches);
    std::sort(order.begin(), order.end());
    std::vector<int64_t> all(37);
    std::iota(all.begin(), all.end(), int64_t{0});
    CHECK(order == all);
    // Each row is transform_image() of its item with draw_crop_flip(augment, seed, epoch, item).
    int wrong = 0;
    for (const Batch& b : batches) {
      const auto size = static_cast<size_t>(set.image_size());
      std::vector<float> want(size);
      for (size_t r = 0; r < b.indices.size(); ++r) {
        const int64_t item = b.indices[r];
        CHECK(b.labels[r] == set.labels[static_cast<size_t>(item)]);
        const datasets::CropFlip t = datasets::draw_crop_flip(o.augment, o.seed, epoch, item);
        datasets::transform_image(set.image(item), 3, 6, 5, t, set.mean, set.stddev, want);
        const float* got = b.images.data() + r * size;
        wrong += !std::equal(want.begin(), want.end(), got);
      }
    }
    CHECK(wrong == 0);
  }
}

TEST_CASE("loader: the order is a function of (seed, epoch)", "[datasets]") {
  const Dataset& set = small_set();
  Loader a(set, options(8, 1));
  Loader b(set, options(8, 1));
  Loader c(set, options(8, 2));
  const std::vector<Batch> a0 = epoch_batches(a, 0);
  const std::vector<Batch> a1 = epoch_batches(a, 1);
  CHECK(same_batches(a0, epoch_batches(b, 0)));
  CHECK(same_batches(a1, epoch_batches(b, 1)));
  CHECK(order_of(a0) != order_of(a1));
  CHECK(order_of(a0) != order_of(epoch_batches(c, 0)));
  // Repeating an epoch repeats it exactly, whatever came before.
  CHECK(same_batches(a0, epoch_batches(a, 0)));

  // Without shuffling: data set order, every epoch; the augmentation still changes per epoch.
  LoaderOptions o = options(8, 1);
  o.shuffle = false;
  Loader fixed(set, o);
  const std::vector<Batch> f0 = epoch_batches(fixed, 0);
  const std::vector<Batch> f1 = epoch_batches(fixed, 1);
  std::vector<int64_t> all(37);
  std::iota(all.begin(), all.end(), int64_t{0});
  CHECK(order_of(f0) == all);
  CHECK(order_of(f1) == all);
  CHECK(f0[0].images.to_vector() != f1[0].images.to_vector());
  // Without augmentation either, every epoch is the same.
  o.augment = {};
  Loader plain(set, o);
  CHECK(same_batches(epoch_batches(plain, 0), epoch_batches(plain, 4)));
}

TEST_CASE("loader: limit uses the first N items", "[datasets]") {
  const Dataset& set = small_set();
  LoaderOptions o = options(4);
  o.limit = 10;
  Loader loader(set, o);
  CHECK(loader.size() == 10);
  CHECK(loader.batches_per_epoch() == 3);
  std::vector<int64_t> order = order_of(epoch_batches(loader, 2));
  std::sort(order.begin(), order.end());
  std::vector<int64_t> first(10);
  std::iota(first.begin(), first.end(), int64_t{0});
  CHECK(order == first);

  o.limit = 1000;
  CHECK(Loader(set, o).size() == 37);
  o.limit = 0;
  Loader empty(set, o);
  CHECK(empty.batches_per_epoch() == 0);
  CHECK(epoch_batches(empty, 0).empty());
}

TEST_CASE("loader: prefetching, synchronous and single-threaded batches are identical",
          "[datasets]") {
  const Dataset& set = small_set();
  LoaderOptions o = options(8, 4);
  const int saved_threads = core::num_threads();

  core::set_num_threads(2);
  Loader prefetch(set, o);
  const std::vector<Batch> p0 = epoch_batches(prefetch, 0);
  const std::vector<Batch> p1 = epoch_batches(prefetch, 1);

  o.prefetch = false;
  Loader sync(set, o);
  CHECK(same_batches(p0, epoch_batches(sync, 0)));
  CHECK(same_batches(p1, epoch_batches(sync, 1)));

  core::set_num_threads(1);
  o.prefetch = true;
  Loader one(set, o);
  CHECK(same_batches(p0, epoch_batches(one, 0)));
  CHECK(same_batches(p1, epoch_batches(one, 1)));
  core::set_num_threads(saved_threads);
}

TEST_CASE("loader: restarting and destroying mid-epoch", "[datasets]") {
  const Dataset& set = small_set();
  const std::vector<Batch> reference = [&] {
    Loader l(set, options(4));
    return epoch_batches(l, 3);
  }();
  {
    Loader loader(set, options(4));
    loader.start_epoch(3);
    REQUIRE(loader.next().has_value());
    // The second batch is in preparation now; start over.
    loader.start_epoch(3);
    CHECK(same_batches(reference, [&] {
      std::vector<Batch> out;
      while (std::optional<Batch> b = loader.next()) out.push_back(std::move(*b));
      return out;
    }()));
  }
  for (int k = 0; k < 20; ++k) {
    // Destroyed with a batch in flight (right after start_epoch, or after some batches).
    Loader loader(set, options(4));
    loader.start_epoch(k);
    for (int i = 0; i < k % 4; ++i) REQUIRE(loader.next().has_value());
  }
  { Loader never_started(set, options(4)); }
  SUCCEED("no crash, hang or leak (run under the sanitizer build to check the last two)");
}

TEST_CASE("loader: stall time", "[datasets]") {
  const Dataset& set = small_set();
  LoaderOptions o = options(8);
  o.prefetch = false;
  Loader loader(set, o);
  CHECK(loader.wait_seconds() == 0.0);
  loader.start_epoch(0);
  CHECK(loader.wait_seconds() == 0.0);
  REQUIRE(loader.next().has_value());
  const double after_one = loader.wait_seconds();
  CHECK(after_one > 0.0);
  REQUIRE(loader.next().has_value());
  CHECK(loader.wait_seconds() > after_one);
  CHECK(loader.wait_seconds() < 10.0);
}

TEST_CASE("loader: option and usage errors", "[datasets]") {
  const Dataset& set = small_set();
  LoaderOptions o = options(0);
  CHECK_THAT(error_message([&] { Loader l(set, o); }),
             Catch::Contains("expected batch_size >= 1, got 0"));
  o = options(4);
  o.augment.crop_padding = -1;
  CHECK_THAT(error_message([&] { Loader l(set, o); }),
             Catch::Contains("expected augment.crop_padding >= 0, got -1"));
  o = options(4);
  o.limit = -3;
  CHECK_THAT(error_message([&] { Loader l(set, o); }),
             Catch::Contains("expected limit >= 0, got -3"));
  Dataset broken = set;
  broken.labels[0] = 99;
  CHECK_THAT(error_message([&] { Loader l(broken, options(4)); }),
             Catch::Contains("label 99 of item 0"));

  Loader loader(set, options(4));
  CHECK_THAT(error_message([&] { loader.next(); }), Catch::Contains("call start_epoch"));
  CHECK_THAT(error_message([&] { loader.start_epoch(-1); }),
             Catch::Contains("expected epoch >= 0, got -1"));
  CHECK(&loader.dataset() == &set);
  CHECK(loader.options().batch_size == 4);
}

}  // namespace
}  // namespace bitgrad::test
