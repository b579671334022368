// packed_runtime.cpp: see packed_runtime.hpp. Layouts inside the trunk are NHWC: codes uint8, block
// activations float32, accumulators int32, one buffer of each kind per plan (two for codes and
// activations, swapped from block to block).
#include "kernels/runtime/packed_runtime.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>
#include <utility>

#include "core/conv.hpp"
#include "core/error.hpp"
#include "core/eval_epilogue.hpp"
#include "core/tensor_ops.hpp"
#include "core/threads.hpp"
#include "kernels/aligned.hpp"
#include "kernels/registry.hpp"

namespace bitgrad::kernels {

namespace {

// The fastest row of `family` up to `cap` that this CPU runs and that accepts the layer, or null;
// `why` collects the other rows' reasons.
const ConvKernelRow* best_row(Family family, const ConvSpec& spec, std::span<const int8_t> weights, Tier cap,
                              std::string& why) {
  const ConvKernelRow* best = nullptr;
  for (const ConvKernelRow& row : conv_kernels()) {
    if (row.family != family || row.tier > cap || !cpu_supports(row)) continue;
    if (std::string reason = row.rejects(spec, weights); !reason.empty()) {
      why += std::string(why.empty() ? "" : "; ") + std::string(row.name) + ": " + reason;
      continue;
    }
    best = &row;  // rows are listed slowest first
  }
  return best;
}

const ThresholdKernelRow& best_threshold_row(Tier cap) {
  const ThresholdKernelRow* best = nullptr;
  for (const ThresholdKernelRow& row : threshold_kernels())
    if (row.tier <= cap && row.tier <= cpu_tier()) best = &row;
  check(best != nullptr, "packed runtime: no threshold epilogue kernel for this CPU");
  return *best;
}

// Seconds for pack_input + run of one layer (the best of a few calls on pad-code input; the kernels'
// speed does not depend on the values).
double time_layer(const QConv& conv) {
  const ConvSpec& spec = conv.spec();
  std::vector<uint8_t> codes(static_cast<size_t>(spec.input_elements()), spec.pad_code);
  AlignedVector<std::byte> packed(std::max<size_t>(conv.packed_input_bytes(), 64));
  std::vector<int32_t> acc(static_cast<size_t>(spec.output_elements()));
  double best = 1e30;
  for (int i = 0; i < 4; ++i) {
    const auto start = std::chrono::steady_clock::now();
    conv.pack_input(codes.data(), packed.data());
    conv.run(packed.data(), acc.data());
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (i > 0) best = std::min(best, t);  // the first call warms caches
  }
  return best;
}

bool is_identity(const std::vector<uint8_t>& levels) {
  for (size_t i = 0; i < levels.size(); ++i)
    if (levels[i] != i) return false;
  return true;
}

// f(begin, end) over [0, count) in chunks of at least `grain`, in parallel.
template <typename F>
void parallel_chunks(int64_t count, int64_t grain, F&& f) {
  if (count <= grain) {
    f(int64_t{0}, count);
    return;
  }
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, count, grain),
                    [&](const tbb::blocked_range<int64_t>& r) { f(r.begin(), r.end()); },
                    tbb::static_partitioner());
}

// codes[i] = q.code(x[i]) for n values (core::float_level_codes: vectorised, any levels).
void float_codes(const FloatQuantizer& q, const float* x, int64_t n, uint8_t* codes) {
  core::float_level_codes(x, n, q.thresholds.data(), q.levels.data(), static_cast<int>(q.levels.size()), codes);
}

// Element-wise passes below this many values run on the calling thread (batch-1 layers are a few
// thousand values: a oneTBB fork costs more than the work).
constexpr int64_t kParallelElements = 1 << 16;

// Images per micro-batch when a batch is split across threads: each micro-batch runs the whole
// network on one thread, its activations staying in that core's L2.
constexpr int64_t kMicroBatch = 8;

}  // namespace

struct PackedRuntime::Plan {
  struct Layer {
    ConvSpec spec;
    std::unique_ptr<QConv> conv;
  };
  int64_t batch = 0;
  std::vector<Layer> layers;  // conv1, conv2 of every block
  size_t packed = 0, acc = 0, codes = 0, act = 0;  // buffer sizes
};

// The working memory of one forward pass over one plan's batch; reused across calls. `serial` is a
// one-thread arena: a single image runs inside it, so the kernels' own parallel loops run inline on
// the calling thread (measured here: ResNet-20 at 28x28 takes 236-272 us on one thread, 285-295 us
// with its layers split over two, whose fork and join cost more than the second core gives back).
struct PackedRuntime::Buffers {
  tbb::task_arena serial{1, 1};
  AlignedVector<std::byte> packed;
  std::vector<int32_t> acc;
  std::vector<uint8_t> codes_a, codes_b;
  std::vector<float> act_a, act_b, residual;
  void fit(const Plan& p) {
    if (packed.size() < p.packed) packed.resize(p.packed);
    if (acc.size() < p.acc) acc.resize(p.acc);
    for (auto* v : {&codes_a, &codes_b})
      if (v->size() < p.codes) v->resize(p.codes);
    for (auto* v : {&act_a, &act_b, &residual})
      if (v->size() < p.act) v->resize(p.act);
  }
};

// Buffers handed to concurrent micro-batches: a task takes a free set (or a new one) and returns it.
// A pool rather than thread-local storage: a thread waiting inside a nested parallel loop may run
// another micro-batch, which must not share its buffers.
struct PackedRuntime::BufferPool {
  std::mutex mutex;
  std::vector<std::unique_ptr<Buffers>> all;
  std::vector<Buffers*> free;
  Buffers& acquire() {
    std::lock_guard<std::mutex> lock(mutex);
    if (free.empty()) {
      all.push_back(std::make_unique<Buffers>());
      return *all.back();
    }
    Buffers* b = free.back();
    free.pop_back();
    return *b;
  }
  void release(Buffers& b) {
    std::lock_guard<std::mutex> lock(mutex);
    free.push_back(&b);
  }
};

PackedRuntime::PackedRuntime(PackedResNet model, RuntimeOptions options)
    : model_(std::move(model)), options_(options), pool_(std::make_unique<BufferPool>()) {
  model_.validate();
  tier_ = options_.tier.value_or(max_tier());
  check_lazy(tier_ <= cpu_tier(), [&] {
    return "packed runtime: tier " + std::string(tier_name(tier_)) + " requested, this CPU runs up to " +
           std::string(tier_name(cpu_tier())) + " (" + cpu_feature_summary() + ")";
  });
  for (const PackedBlock& b : model_.blocks) epilogues_.emplace_back(b.conv1.thresholds);
}

PackedRuntime::~PackedRuntime() = default;
PackedRuntime::PackedRuntime(PackedRuntime&&) noexcept = default;
PackedRuntime& PackedRuntime::operator=(PackedRuntime&&) noexcept = default;

std::string PackedRuntime::threshold_kernel_name() const {
  return std::string(best_threshold_row(tier_).name);
}

PackedRuntime::Plan& PackedRuntime::plan_for(int64_t batch) {
  if (auto it = plans_.find(batch); it != plans_.end()) return *it->second;
  auto plan = std::make_unique<Plan>();
  plan->batch = batch;
  for (const PackedBlock& block : model_.blocks) {
    for (const PackedConv* pc : {&block.conv1, &block.conv2}) {
      ConvSpec spec = pc->spec;
      spec.batch = batch;
      std::string why;
      std::vector<const ConvKernelRow*> candidates;
      if (options_.family) {
        candidates.push_back(best_row(*options_.family, spec, pc->weights, tier_, why));
      } else {
        if (spec.act_bits <= 2) candidates.push_back(best_row(Family::kBitserial, spec, pc->weights, tier_, why));
        candidates.push_back(best_row(Family::kInt8, spec, pc->weights, tier_, why));
      }
      std::erase(candidates, nullptr);
      check_lazy(!candidates.empty(), [&] {
        return "packed runtime: " + pc->name + ": no " +
               (options_.family ? std::string(family_name(*options_.family)) + " " : std::string()) +
               "kernel up to tier " + std::string(tier_name(tier_)) + " runs " + spec.describe() +
               (why.empty() ? std::string() : " (" + why + ")");
      });
      Plan::Layer layer{spec, candidates.front()->prepare(spec, pc->weights)};
      if (candidates.size() > 1 && options_.autotune) {
        // Every row computes the same integers; keep the one that runs this layer fastest here.
        double best = time_layer(*layer.conv);
        for (size_t k = 1; k < candidates.size(); ++k) {
          std::unique_ptr<QConv> other = candidates[k]->prepare(spec, pc->weights);
          if (const double t = time_layer(*other); t < best) {
            best = t;
            layer.conv = std::move(other);
          }
        }
      } else if (candidates.size() > 1) {
        layer.conv = candidates.back()->prepare(spec, pc->weights);  // the static rule: int8
      }
      const auto io = static_cast<size_t>(std::max(spec.input_elements(), spec.output_elements()));
      plan->packed = std::max(plan->packed, std::max<size_t>(layer.conv->packed_input_bytes(), 64));
      plan->acc = std::max(plan->acc, static_cast<size_t>(spec.output_elements()));
      plan->codes = std::max(plan->codes, io);
      plan->act = std::max(plan->act, io);
      plan->layers.push_back(std::move(layer));
    }
  }
  Plan& ref = *plan;
  plans_.emplace(batch, std::move(plan));
  return ref;
}

std::vector<std::string> PackedRuntime::kernel_names(int64_t batch) {
  std::vector<std::string> names;
  for (const Plan::Layer& layer : plan_for(batch).layers) names.emplace_back(layer.conv->kernel_name());
  return names;
}

core::Tensor PackedRuntime::forward(const core::Tensor& images, std::vector<LayerTrace>* trace) {
  const PackedResNet& m = model_;
  check_lazy(images.defined() && images.rank() == 4 && images.dim(0) >= 1 && images.dim(1) == m.in_channels &&
                 images.dim(2) == m.height && images.dim(3) == m.width,
             [&] {
               return "packed model: expected images [N, " + std::to_string(m.in_channels) + ", " +
                      std::to_string(m.height) + ", " + std::to_string(m.width) + "], got " +
                      (images.defined() ? images.shape().to_string() : std::string("<undefined>"));
             });
  const core::Tensor x = images.contiguous();
  const int64_t n = x.dim(0);
  const int64_t planes = m.blocks.back().conv2.spec.out_channels;
  core::Tensor pooled(core::Shape{n, planes});
  const int threads = core::num_threads();
  if (trace != nullptr || n == 1 || threads == 1) {
    // One pass over the whole batch: a single image on this thread alone, a traced batch with each
    // layer threaded inside.
    Plan& plan = plan_for(n);
    Buffers& buffers = pool_->acquire();
    buffers.fit(plan);
    if (n == 1)
      buffers.serial.execute([&] { run_batch(x.data(), plan, buffers, pooled.data(), trace); });
    else
      run_batch(x.data(), plan, buffers, pooled.data(), trace);
    pool_->release(buffers);
  } else {
    // Micro-batches in parallel, each through the whole network on one thread.
    const int64_t micro = std::clamp<int64_t>(n / threads, 1, kMicroBatch);
    const int64_t chunks = (n + micro - 1) / micro;
    Plan& full = plan_for(micro);  // plans are created here, never inside the parallel region
    Plan* tail = n % micro != 0 ? &plan_for(n % micro) : nullptr;
    const int64_t image_size = m.in_channels * m.height * m.width;
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, chunks, 1),
                      [&](const tbb::blocked_range<int64_t>& r) {
                        for (int64_t k = r.begin(); k < r.end(); ++k) {
                          const int64_t first = k * micro;
                          Plan& plan = first + micro <= n ? full : *tail;
                          Buffers& buffers = pool_->acquire();
                          buffers.fit(plan);
                          run_batch(x.data() + first * image_size, plan, buffers, pooled.data() + first * planes,
                                    nullptr);
                          pool_->release(buffers);
                        }
                      },
                      tbb::simple_partitioner());
  }
  // The float classifier through core::matmul over the whole batch, as the QAT model's linear layer.
  core::Tensor logits = core::matmul(pooled, m.fc_weight, false, true);
  float* pl = logits.data();
  for (int64_t img = 0; img < n; ++img)
    for (int64_t k = 0; k < m.num_classes; ++k) pl[img * m.num_classes + k] += m.fc_bias[static_cast<size_t>(k)];
  return logits;
}

void PackedRuntime::run_batch(const float* images, Plan& plan, Buffers& buf, float* pooled,
                              std::vector<LayerTrace>* trace) {
  const PackedResNet& m = model_;
  const int64_t n = plan.batch;
  const ThresholdKernelRow& threshold_row = best_threshold_row(tier_);

  // Stem: float convolution fused with batch norm + ReLU (core::conv2d_forward_fused, whose epilogue
  // is the QAT model's core::batch_norm_row), then NCHW -> NHWC floats (the first block's residual)
  // and codes.
  core::Conv2dOptions stem_options;
  stem_options.stride = 1;
  stem_options.padding = 1;
  core::Tensor input(core::Shape{n, m.in_channels, m.height, m.width});
  std::copy(images, images + input.numel(), input.data());
  const core::Conv2dEpilogue stem_epilogue{m.stem_bn_mean, m.stem_bn_scale, m.stem_bn_offset, core::Tensor(), true};
  const core::Tensor stem = core::conv2d_forward_fused(input, m.stem_weight, core::Tensor(), stem_epilogue, stem_options);
  const int64_t planes0 = m.stem_weight.dim(0), hw0 = m.height * m.width;
  const float* ps = stem.data();
  float* block_in = buf.act_a.data();
  float* block_out = buf.act_b.data();
  uint8_t* codes = buf.codes_a.data();
  uint8_t* mid_codes = buf.codes_b.data();
  parallel_chunks(n, n * hw0 * planes0 >= kParallelElements ? 1 : n, [&](int64_t b, int64_t e) {
    for (int64_t img = b; img < e; ++img) {
      float* dst = block_in + img * hw0 * planes0;
      for (int64_t p = 0; p < hw0; ++p)
        for (int64_t c = 0; c < planes0; ++c) dst[p * planes0 + c] = ps[(img * planes0 + c) * hw0 + p];
      float_codes(m.stem_codes, dst, hw0 * planes0, codes + img * hw0 * planes0);
    }
  });

  auto run_conv = [&](const Plan::Layer& layer, const PackedConv& pc, const uint8_t* in) {
    layer.conv->pack_input(in, buf.packed.data());
    layer.conv->run(buf.packed.data(), buf.acc.data());
    const int64_t o = layer.spec.out_channels, pixels = layer.spec.out_pixels();
    if (!pc.acc_offset.empty()) {
      int32_t* acc = buf.acc.data();
      parallel_chunks(pixels, pixels * o >= kParallelElements ? 256 : pixels, [&](int64_t b, int64_t e) {
        for (int64_t p = b; p < e; ++p)
          for (int64_t c = 0; c < o; ++c) acc[p * o + c] += pc.acc_offset[static_cast<size_t>(c)];
      });
    }
    if (trace != nullptr)
      trace->push_back({pc.name, layer.spec, std::vector<uint8_t>(in, in + layer.spec.input_elements()),
                        std::vector<int32_t>(buf.acc.data(), buf.acc.data() + layer.spec.output_elements())});
  };

  for (size_t bi = 0; bi < m.blocks.size(); ++bi) {
    const PackedBlock& block = m.blocks[bi];
    const Plan::Layer& l1 = plan.layers[2 * bi];
    const Plan::Layer& l2 = plan.layers[2 * bi + 1];
    // conv1 -> threshold epilogue -> conv2's codes, all integer.
    run_conv(l1, block.conv1, codes);
    epilogues_[bi].run(threshold_row, buf.acc.data(), l1.spec.out_pixels(), mid_codes);
    if (!is_identity(block.conv1.out_levels))
      core::index_level_codes(mid_codes, l1.spec.output_elements(), block.conv1.out_levels.data(),
                              static_cast<int>(block.conv1.out_levels.size()));
    // conv2 -> rescale, batch norm, residual add, ReLU (float) -> next block's codes.
    run_conv(l2, block.conv2, mid_codes);
    const int64_t planes = l2.spec.out_channels, ho = l2.spec.out_height(), wo = l2.spec.out_width();
    const float* residual = block_in;
    if (block.downsample) {
      // Option A: x[:, :, ::2, ::2] with planes/4 zero channels on each side, NHWC.
      const int64_t in_planes = l1.spec.in_channels, hi = l1.spec.height, wi = l1.spec.width;
      const int64_t pad = planes / 4;
      float* r = buf.residual.data();
      parallel_chunks(n * ho, n * ho * wo * planes >= kParallelElements ? 1 : n * ho, [&](int64_t b, int64_t e) {
        for (int64_t row = b; row < e; ++row) {
          const int64_t img = row / ho, y = row % ho;
          for (int64_t x = 0; x < wo; ++x) {
            float* dst = r + ((img * ho + y) * wo + x) * planes;
            const float* src = block_in + ((img * hi + 2 * y) * wi + 2 * x) * in_planes;
            std::fill(dst, dst + planes, 0.0f);
            std::memcpy(dst + pad, src, static_cast<size_t>(in_planes) * sizeof(float));
          }
        }
      });
      residual = r;
    }
    core::ChannelTail tail;
    tail.scale = block.conv2.scale.data();
    tail.bias = block.conv2.bias.empty() ? nullptr : block.conv2.bias.data();
    tail.mean = block.conv2.bn_mean.data();
    tail.bn_scale = block.conv2.bn_scale.data();
    tail.offset = block.conv2.bn_offset.data();
    tail.relu = true;
    // The tail and the next block's codes, chunk by chunk while the floats are in cache.
    const int32_t* acc = buf.acc.data();
    const bool last = bi + 1 == m.blocks.size();
    const int64_t pixels = l2.spec.out_pixels();
    const int64_t grain = std::max<int64_t>(64, kParallelElements / 4 / planes);
    parallel_chunks(pixels, pixels * planes >= kParallelElements ? grain : pixels, [&](int64_t b, int64_t e) {
      core::quantized_tail_nhwc(acc + b * planes, residual + b * planes, e - b, planes, tail,
                                block_out + b * planes);
      if (!last) float_codes(block.out_codes, block_out + b * planes, (e - b) * planes, codes + b * planes);
    });
    std::swap(block_in, block_out);
  }

  // Global average pool: double sums over pixels in row-major order, as the QAT model's
  // global_avg_pool2d.
  const PackedConv& last = m.blocks.back().conv2;
  const int64_t planes = last.spec.out_channels, hw = last.spec.out_height() * last.spec.out_width();
  for (int64_t img = 0; img < n; ++img)
    for (int64_t c = 0; c < planes; ++c) {
      double s = 0.0;
      for (int64_t p = 0; p < hw; ++p) s += block_in[(img * hw + p) * planes + c];
      pooled[img * planes + c] = static_cast<float>(s / static_cast<double>(hw));
    }
}

}  // namespace bitgrad::kernels
