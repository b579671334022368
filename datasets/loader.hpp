// loader.hpp: Loader, mini-batches of a Dataset for training and evaluation: a deterministic order
// per (seed, epoch), per-item augmentation, conversion to normalised float, and preparation of the
// next batch on oneTBB while the caller computes on the current one. Not here: sampling with
// replacement, class balancing, distributed sharding.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "core/tensor.hpp"
#include "datasets/dataset.hpp"
#include "datasets/transforms.hpp"

namespace bitgrad::datasets {

struct LoaderOptions {
  int64_t batch_size = 128;  // >= 1
  bool shuffle = true;       // false: items in data set order every epoch
  bool drop_last = false;    // true: skip a final batch smaller than batch_size
  uint64_t seed = 0;         // drives both the order and the augmentation
  Augment augment;           // {}: no augmentation (evaluation); see default_augment()
  // Use only items [0, limit) of the data set (all of them when unset or when limit >= count).
  std::optional<int64_t> limit;
  // true: batch k + 1 is prepared on oneTBB while the caller works on batch k. false: each batch is
  // prepared inside next(). The batches are identical either way.
  bool prefetch = true;
};

// One mini-batch; owns its data.
struct Batch {
  core::Tensor images;  // [B, C, H, W] float32, contiguous: (pixel / 255 - mean[c]) / stddev[c]
  std::vector<int64_t> labels;   // [B]
  std::vector<int64_t> indices;  // [B], the data set item behind each row
};

// Usage:
//   LoaderOptions options;
//   options.seed = 1;
//   options.augment = default_augment(train.name);
//   Loader loader(train, options);
//   for (int64_t epoch = 0; epoch < epochs; ++epoch) {
//     loader.start_epoch(epoch);
//     while (std::optional<Batch> batch = loader.next()) step(batch->images, batch->labels);
//   }
// Semantics. With n = min(limit, count) items, an epoch visits every item in [0, n) exactly once
// (minus the n % batch_size left-over items when drop_last), in the order
// core::Rng(derive_seed(seed, {order stream, epoch})).permutation(n) when shuffle, else 0, 1, ...
// Item i in epoch e is transformed by draw_crop_flip(augment, seed, e, i) and transform_image(). So
// a batch is a pure function of (dataset, options except prefetch, epoch, batch number): it does
// not depend on prefetching, on the number of threads or on timing. Threading: a Loader is driven
// by one thread (not thread-safe). Batch preparation runs as a oneTBB task (a parallel_for over the
// images of the batch) in the calling thread's arena; with one thread allowed
// (core::set_num_threads(1)) it runs when next() waits for it, i.e. synchronously. Ownership: the
// Loader keeps a reference to the Dataset, which must outlive it and stay unchanged. Destroying a
// Loader, or calling start_epoch(), in the middle of an epoch waits for the batch in preparation
// and discards it.
class Loader {
 public:
  // Throws Error when dataset.validate() fails, batch_size < 1, augment.crop_padding < 0 or
  // limit < 0.
  Loader(const Dataset& dataset, LoaderOptions options);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Begins epoch `epoch` (>= 0, else Error) from its first batch, abandoning the current one, and
  // (with prefetch) starts preparing that first batch.
  void start_epoch(int64_t epoch);
  // The next batch of the current epoch, or nullopt after the last one. Throws Error before the
  // first start_epoch(). Rethrows any exception raised while preparing the batch.
  std::optional<Batch> next();

  // ceil(size() / batch_size), or floor with drop_last.
  int64_t batches_per_epoch() const;
  // Items used per epoch: min(limit, count).
  int64_t size() const;
  // Total wall time the caller has spent inside next() since construction, in seconds: the time it
  // waited for a batch that was not ready yet (with prefetch), or the whole preparation (without).
  // A trainer reports it as loader stall time.
  double wait_seconds() const;

  const Dataset& dataset() const;
  const LoaderOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace bitgrad::datasets
