// memory_test.cpp: a ResNet-20 training loop (the `bitgrad train` step: loader with prefetch and
// augmentation, forward, cross-entropy, backward, Nesterov SGD with decay groups) runs 100 steps and
// its memory does not grow after the first few: the tensor storage live after each step returns to
// the same byte count (parameters, gradients, momentum; plus or minus the one batch the loader may
// be preparing), the bytes live at the peak of a step stay the same, and the process's resident set
// size stays within a small slack (allocator noise).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "autograd/ops.hpp"
#include "core/memory.hpp"
#include "core/rng.hpp"
#include "core/tensor.hpp"
#include "datasets/loader.hpp"
#include "datasets/synthetic.hpp"
#include "nn/optim.hpp"
#include "nn/resnet_cifar.hpp"

namespace bitgrad {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitizer = true;  // ASan's quarantine keeps freed memory resident
#else
constexpr bool kAddressSanitizer = false;
#endif

TEST_CASE("Training: 100 ResNet-20 steps do not grow memory after the first few", "[nn][memory][slow]") {
  constexpr int64_t kBatch = 16;
  constexpr int kSteps = 100;
  constexpr int kWarmup = 5;
  datasets::SyntheticOptions data;
  data.count = kBatch * 25;  // several epochs of 25 batches: epoch changes are part of the loop
  data.channels = 1;
  data.height = data.width = 28;
  const datasets::Dataset dataset = datasets::make_synthetic(data);
  datasets::LoaderOptions options;
  options.batch_size = kBatch;
  options.drop_last = true;
  options.seed = 1;
  options.augment = datasets::default_augment("fashion-mnist");
  datasets::Loader loader(dataset, options);

  core::Rng rng(7);
  nn::ResNetCifar model = nn::resnet_cifar(20, 10, 1, nn::Shortcut::kA, rng);
  model.train();
  nn::Sgd sgd(nn::decay_groups(model, 5e-4f), nn::SgdOptions{0.05f, 0.9f, 0.0f, true});

  std::vector<int64_t> live_after, peak_during, rss_after;
  int64_t epoch = 0;
  loader.start_epoch(epoch);
  for (int step = 0; step < kSteps; ++step) {
    auto batch = loader.next();
    if (!batch) {
      loader.start_epoch(++epoch);
      batch = loader.next();
    }
    REQUIRE(batch);
    core::reset_peak_storage_bytes();
    {
      const autograd::Variable loss =
          autograd::cross_entropy(model.forward(autograd::Variable(batch->images)), batch->labels);
      REQUIRE(std::isfinite(loss.item()));
      sgd.zero_grad();
      loss.backward();
      sgd.step();
    }
    batch.reset();
    const core::StorageStats stats = core::storage_stats();
    live_after.push_back(stats.live_bytes);
    peak_during.push_back(stats.peak_live_bytes);
    rss_after.push_back(core::resident_bytes());
  }
  REQUIRE(epoch >= 3);

  const auto warm = static_cast<size_t>(kWarmup);
  INFO("live after step " << kWarmup << ": " << live_after[warm] << " B, after step " << kSteps << ": "
                          << live_after.back() << " B; peak in a step " << peak_during[warm] << " B");
  // Live storage between steps: the same byte count every step, up to the next batch, which the
  // loader's prefetch task may or may not have allocated yet when we look.
  const int64_t batch_bytes = kBatch * 28 * 28 * static_cast<int64_t>(sizeof(float));
  int64_t live_max = 0, live_min = std::numeric_limits<int64_t>::max(), peak_max = 0, peak_min = std::numeric_limits<int64_t>::max();
  for (size_t s = warm; s < live_after.size(); ++s) {
    live_max = std::max(live_max, live_after[s]);
    live_min = std::min(live_min, live_after[s]);
    peak_max = std::max(peak_max, peak_during[s]);
    peak_min = std::min(peak_min, peak_during[s]);
  }
  CHECK(live_max - live_min <= batch_bytes);
  // The peak within a step: the same graph every step, again up to the batch in flight.
  CHECK(peak_max - peak_min <= batch_bytes);
  // Activations are more than parameters: the engine really frees them between steps.
  CHECK(peak_min > 2 * live_min);

  // Resident set size: after warm-up it may move by allocator noise, not grow with the step count.
  if (!kAddressSanitizer && rss_after[warm] > 0) {
    const int64_t slack = int64_t{8} << 20;
    INFO("RSS after step " << kWarmup << ": " << rss_after[warm] / 1024 << " KiB, after step " << kSteps
                           << ": " << rss_after.back() / 1024 << " KiB");
    for (size_t s = warm; s < rss_after.size(); ++s) CHECK(rss_after[s] <= rss_after[warm] + slack);
  }
}

TEST_CASE("Memory: resident and peak resident sizes are plausible", "[core][memory]") {
  const int64_t before = core::resident_bytes();
  REQUIRE(before > 0);
  std::vector<char> block(size_t{64} << 20, 1);  // touch 64 MiB
  const int64_t during = core::resident_bytes();
  CHECK(during >= before + (int64_t{60} << 20));
  CHECK(core::peak_resident_bytes() >= during - (int64_t{1} << 20));
  CHECK(block[12345] == 1);
}

TEST_CASE("Memory: storage accounting follows tensors in and out of scope", "[core][memory]") {
  const core::StorageStats base = core::storage_stats();
  {
    const core::Tensor big(core::Shape{256, 1024});  // 1 MiB: a cached size class
    const core::Tensor small(core::Shape{10});       // 40 B, rounded to 64
    const core::StorageStats live = core::storage_stats();
    CHECK(live.live_bytes - base.live_bytes == (int64_t{1} << 20) + 64);
    CHECK(live.peak_live_bytes >= live.live_bytes);
  }
  const core::StorageStats after = core::storage_stats();
  CHECK(after.live_bytes == base.live_bytes);
  CHECK(after.cached_bytes >= int64_t{1} << 20);  // the 1 MiB buffer went to the cache
}

}  // namespace
}  // namespace bitgrad
