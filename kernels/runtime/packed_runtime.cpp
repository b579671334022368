// packed_runtime.cpp: see packed_runtime.hpp. Layouts inside the trunk are NHWC: codes uint8, block
// activations float32, accumulators int32, one buffer of each kind per plan (two for codes and
// activations, swapped from block to block).
#include "kernels/runtime/packed_runtime.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "core/conv.hpp"
#include "core/error.hpp"
#include "core/eval_epilogue.hpp"
#include "core/tensor_ops.hpp"
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

// codes[i] = q.code(x[i]) for n values.
void float_codes(const FloatQuantizer& q, const float* x, int64_t n, uint8_t* codes) {
  parallel_chunks(n, 4096, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) codes[i] = q.code(x[i]);
  });
}

}  // namespace

struct PackedRuntime::Plan {
  struct Layer {
    ConvSpec spec;
    std::unique_ptr<QConv> conv;
  };
  int64_t batch = 0;
  std::vector<Layer> layers;  // conv1, conv2 of every block
  AlignedVector<std::byte> packed;
  std::vector<int32_t> acc;
  std::vector<uint8_t> codes_a, codes_b;
  std::vector<float> act_a, act_b, residual;
};

PackedRuntime::PackedRuntime(PackedResNet model, RuntimeOptions options)
    : model_(std::move(model)), options_(options) {
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
  size_t packed = 0, acc = 0, codes = 0, act = 0;
  for (const PackedBlock& block : model_.blocks) {
    for (const PackedConv* pc : {&block.conv1, &block.conv2}) {
      ConvSpec spec = pc->spec;
      spec.batch = batch;
      std::string why;
      const ConvKernelRow* row = nullptr;
      if (options_.family) {
        row = best_row(*options_.family, spec, pc->weights, tier_, why);
      } else {
        if (spec.act_bits <= 2) row = best_row(Family::kBitserial, spec, pc->weights, tier_, why);
        if (row == nullptr) row = best_row(Family::kInt8, spec, pc->weights, tier_, why);
      }
      check_lazy(row != nullptr, [&] {
        return "packed runtime: " + pc->name + ": no " +
               (options_.family ? std::string(family_name(*options_.family)) + " " : std::string()) +
               "kernel up to tier " + std::string(tier_name(tier_)) + " runs " + spec.describe() +
               (why.empty() ? std::string() : " (" + why + ")");
      });
      Plan::Layer layer{spec, row->prepare(spec, pc->weights)};
      packed = std::max(packed, layer.conv->packed_input_bytes());
      acc = std::max(acc, static_cast<size_t>(spec.output_elements()));
      codes = std::max(codes, static_cast<size_t>(std::max(spec.input_elements(), spec.output_elements())));
      act = std::max(act, static_cast<size_t>(std::max(spec.input_elements(), spec.output_elements())));
      plan->layers.push_back(std::move(layer));
    }
  }
  plan->packed.resize(std::max<size_t>(packed, 64));
  plan->acc.resize(acc);
  plan->codes_a.resize(codes);
  plan->codes_b.resize(codes);
  plan->act_a.resize(act);
  plan->act_b.resize(act);
  plan->residual.resize(act);
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
  const int64_t n = images.dim(0);
  Plan& plan = plan_for(n);
  const ThresholdKernelRow& threshold_row = best_threshold_row(tier_);

  // Stem: float convolution and batch norm + ReLU through the QAT model's own core functions, then
  // NCHW -> NHWC floats (the first block's residual) and codes.
  core::Conv2dOptions stem_options;
  stem_options.stride = 1;
  stem_options.padding = 1;
  core::Tensor stem = core::conv2d_forward(images.contiguous(), m.stem_weight, core::Tensor(), stem_options);
  const int64_t planes0 = m.stem_weight.dim(0), hw0 = m.height * m.width;
  float* ps = stem.data();
  parallel_chunks(n * planes0, 16, [&](int64_t b, int64_t e) {
    for (int64_t row = b; row < e; ++row) {
      const auto c = static_cast<size_t>(row % planes0);
      core::batch_norm_row(ps + row * hw0, nullptr, hw0,
                           {m.stem_bn_mean[c], m.stem_bn_scale[c], m.stem_bn_offset[c]}, true,
                           ps + row * hw0);
    }
  });
  float* block_in = plan.act_a.data();
  float* block_out = plan.act_b.data();
  uint8_t* codes = plan.codes_a.data();
  uint8_t* mid_codes = plan.codes_b.data();
  parallel_chunks(n, 1, [&](int64_t b, int64_t e) {
    for (int64_t img = b; img < e; ++img)
      for (int64_t p = 0; p < hw0; ++p)
        for (int64_t c = 0; c < planes0; ++c) {
          const float v = ps[(img * planes0 + c) * hw0 + p];
          block_in[(img * hw0 + p) * planes0 + c] = v;
          codes[(img * hw0 + p) * planes0 + c] = m.stem_codes.code(v);
        }
  });

  auto run_conv = [&](const Plan::Layer& layer, const PackedConv& pc, const uint8_t* in) {
    layer.conv->pack_input(in, plan.packed.data());
    layer.conv->run(plan.packed.data(), plan.acc.data());
    const int64_t o = layer.spec.out_channels, pixels = layer.spec.out_pixels();
    if (!pc.acc_offset.empty()) {
      int32_t* acc = plan.acc.data();
      parallel_chunks(pixels, 256, [&](int64_t b, int64_t e) {
        for (int64_t p = b; p < e; ++p)
          for (int64_t c = 0; c < o; ++c) acc[p * o + c] += pc.acc_offset[static_cast<size_t>(c)];
      });
    }
    if (trace != nullptr)
      trace->push_back({pc.name, layer.spec, std::vector<uint8_t>(in, in + layer.spec.input_elements()),
                        std::vector<int32_t>(plan.acc.data(), plan.acc.data() + layer.spec.output_elements())});
  };

  for (size_t bi = 0; bi < m.blocks.size(); ++bi) {
    const PackedBlock& block = m.blocks[bi];
    const Plan::Layer& l1 = plan.layers[2 * bi];
    const Plan::Layer& l2 = plan.layers[2 * bi + 1];
    // conv1 -> threshold epilogue -> conv2's codes, all integer.
    run_conv(l1, block.conv1, codes);
    epilogues_[bi].run(threshold_row, plan.acc.data(), l1.spec.out_pixels(), mid_codes);
    if (!is_identity(block.conv1.out_levels)) {
      const int64_t count = l1.spec.output_elements();
      for (int64_t i = 0; i < count; ++i) mid_codes[i] = block.conv1.out_levels[mid_codes[i]];
    }
    // conv2 -> rescale, batch norm, residual add, ReLU (float) -> next block's codes.
    run_conv(l2, block.conv2, mid_codes);
    const int64_t planes = l2.spec.out_channels, ho = l2.spec.out_height(), wo = l2.spec.out_width();
    const float* residual = block_in;
    if (block.downsample) {
      // Option A: x[:, :, ::2, ::2] with planes/4 zero channels on each side, NHWC.
      const int64_t in_planes = l1.spec.in_channels, hi = l1.spec.height, wi = l1.spec.width;
      const int64_t pad = planes / 4;
      float* r = plan.residual.data();
      parallel_chunks(n * ho, 1, [&](int64_t b, int64_t e) {
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
    const int32_t* acc = plan.acc.data();
    parallel_chunks(l2.spec.out_pixels(), 64, [&](int64_t b, int64_t e) {
      core::quantized_tail_nhwc(acc + b * planes, residual + b * planes, e - b, planes, tail,
                                block_out + b * planes);
    });
    if (bi + 1 < m.blocks.size()) float_codes(block.out_codes, block_out, l2.spec.output_elements(), codes);
    std::swap(block_in, block_out);
  }

  // Head: global average pool (double sums over pixels in row-major order, as the QAT model's
  // global_avg_pool2d) and the float classifier through core::matmul.
  const PackedConv& last = m.blocks.back().conv2;
  const int64_t planes = last.spec.out_channels, hw = last.spec.out_height() * last.spec.out_width();
  core::Tensor pooled(core::Shape{n, planes});
  float* pp = pooled.data();
  for (int64_t img = 0; img < n; ++img)
    for (int64_t c = 0; c < planes; ++c) {
      double s = 0.0;
      for (int64_t p = 0; p < hw; ++p) s += block_in[(img * hw + p) * planes + c];
      pp[img * planes + c] = static_cast<float>(s / static_cast<double>(hw));
    }
  core::Tensor logits = core::matmul(pooled, m.fc_weight, false, true);
  float* pl = logits.data();
  for (int64_t img = 0; img < n; ++img)
    for (int64_t k = 0; k < m.num_classes; ++k) pl[img * m.num_classes + k] += m.fc_bias[static_cast<size_t>(k)];
  return logits;
}

}  // namespace bitgrad::kernels
