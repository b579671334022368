// loader.cpp: the epoch order, batch preparation as a parallel_for, and one batch of look-ahead
// held in a tbb::task_group (whose wait() also runs the task itself when no worker has taken it).
#include "datasets/loader.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_group.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <utility>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "datasets/derive_seed.hpp"

namespace bitgrad::datasets {

namespace {
constexpr uint64_t kOrderStream = 0x4f52'4445;  // "ORDE"
}  // namespace

struct Loader::Impl {
  Impl(const Dataset& d, LoaderOptions o) : dataset(d), options(std::move(o)) {}

  const Dataset& dataset;
  LoaderOptions options;
  int64_t items = 0;
  int64_t batches = 0;
  int64_t epoch = -1;  // -1 until start_epoch()
  int64_t next_batch = 0;
  std::vector<int64_t> order;
  tbb::task_group group;
  bool in_flight = false;
  Batch pending;  // written by the task, read after group.wait()
  double wait_seconds = 0.0;

  // The item indices of batch b of the current epoch.
  std::vector<int64_t> batch_indices(int64_t b) const {
    const int64_t first = b * options.batch_size;
    const int64_t last = std::min(items, first + options.batch_size);
    return {order.begin() + first, order.begin() + last};
  }

  // Reads only the dataset and its arguments, so it may run on any thread.
  Batch prepare(std::vector<int64_t> indices, int64_t for_epoch) const {
    const Dataset& d = dataset;
    const auto n = static_cast<int64_t>(indices.size());
    Batch batch;
    batch.images = core::Tensor(core::Shape{n, d.channels, d.height, d.width});
    batch.labels.resize(indices.size());
    const int64_t size = d.image_size();
    float* out = batch.images.data();
    tbb::parallel_for(
        tbb::blocked_range<int64_t>(0, n, 4), [&](const tbb::blocked_range<int64_t>& r) {
          for (int64_t i = r.begin(); i != r.end(); ++i) {
            const int64_t item = indices[static_cast<size_t>(i)];
            const CropFlip t = draw_crop_flip(options.augment, options.seed, for_epoch, item);
            transform_image(d.image(item), d.channels, d.height, d.width, t, d.mean, d.stddev,
                            {out + i * size, static_cast<size_t>(size)});
            batch.labels[static_cast<size_t>(i)] = d.labels[static_cast<size_t>(item)];
          }
        });
    batch.indices = std::move(indices);
    return batch;
  }

  void launch(int64_t b) {
    in_flight = true;
    // tbb::task_group calls the functor as const, so the indices are copied once more inside.
    group.run([this, indices = batch_indices(b), e = epoch] { pending = prepare(indices, e); });
  }

  Batch collect() {
    in_flight = false;
    group.wait();  // rethrows an exception of the task
    return std::move(pending);
  }
};

Loader::Loader(const Dataset& dataset, LoaderOptions options)
    : impl_(std::make_unique<Impl>(dataset, std::move(options))) {
  dataset.validate();
  const LoaderOptions& o = impl_->options;
  check_lazy(o.batch_size >= 1, [&] {
    return "Loader: expected batch_size >= 1, got " + std::to_string(o.batch_size);
  });
  check_lazy(o.augment.crop_padding >= 0, [&] {
    return "Loader: expected augment.crop_padding >= 0, got " +
           std::to_string(o.augment.crop_padding);
  });
  check_lazy(!o.limit || *o.limit >= 0, [&] {
    return "Loader: expected limit >= 0, got " + std::to_string(o.limit.value_or(0));
  });
  impl_->items = o.limit ? std::min(*o.limit, dataset.count) : dataset.count;
  impl_->batches =
      o.drop_last ? impl_->items / o.batch_size : (impl_->items + o.batch_size - 1) / o.batch_size;
}

Loader::~Loader() {
  try {
    impl_->group.wait();
  } catch (...) {
    // A failed preparation nobody will collect: nothing to report from a destructor.
  }
}

void Loader::start_epoch(int64_t epoch) {
  check_lazy(epoch >= 0, [&] {
    return "Loader::start_epoch: expected epoch >= 0, got " + std::to_string(epoch);
  });
  Impl& m = *impl_;
  if (m.in_flight) {
    try {
      m.collect();
    } catch (...) {
      // The abandoned batch's failure does not concern the new epoch.
    }
  }
  m.epoch = epoch;
  m.next_batch = 0;
  if (m.options.shuffle) {
    core::Rng rng(derive_seed(m.options.seed, {kOrderStream, static_cast<uint64_t>(epoch)}));
    m.order = rng.permutation(m.items);
  } else {
    m.order.resize(static_cast<size_t>(m.items));
    std::iota(m.order.begin(), m.order.end(), int64_t{0});
  }
  if (m.options.prefetch && m.batches > 0) m.launch(0);
}

std::optional<Batch> Loader::next() {
  Impl& m = *impl_;
  check(m.epoch >= 0, "Loader::next: no epoch started; call start_epoch(epoch) first");
  if (m.next_batch >= m.batches) return std::nullopt;
  const auto start = std::chrono::steady_clock::now();
  // Without a batch in flight (no prefetch, or its preparation failed last time) prepare it here.
  Batch batch = m.in_flight ? m.collect() : m.prepare(m.batch_indices(m.next_batch), m.epoch);
  m.wait_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ++m.next_batch;
  if (m.options.prefetch && m.next_batch < m.batches) m.launch(m.next_batch);
  return batch;
}

int64_t Loader::batches_per_epoch() const { return impl_->batches; }
int64_t Loader::size() const { return impl_->items; }
double Loader::wait_seconds() const { return impl_->wait_seconds; }
const Dataset& Loader::dataset() const { return impl_->dataset; }
const LoaderOptions& Loader::options() const { return impl_->options; }

}  // namespace bitgrad::datasets
