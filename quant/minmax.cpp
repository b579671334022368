// minmax.cpp: MinMaxQuantizer (GDFQ / ZeroQ asymmetric uniform, ALGORITHMS.md §5.3): range scans,
// the bias-corrected activation EMA, and the straight-through backward.
#include "quant/minmax.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_reduce.h>

#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "quant/blocks.hpp"
#include "quant/uniform_math.hpp"

namespace bitgrad::quant {

namespace {

// Min and max of n values; `poison` is NaN when any value is NaN or infinite (v - v), so the scan
// stays one vectorisable pass. Min and max are exact, so the parallel split cannot change them.
struct Scan {
  float lo = std::numeric_limits<float>::infinity();
  float hi = -std::numeric_limits<float>::infinity();
  float poison = 0.0f;
};

Scan scan_block(const float* p, int64_t begin, int64_t end, Scan s) {
  for (int64_t i = begin; i < end; ++i) {
    const float v = p[i];
    s.lo = v < s.lo ? v : s.lo;
    s.hi = v > s.hi ? v : s.hi;
    s.poison += v - v;
  }
  return s;
}

Scan scan(const float* p, int64_t n) {
  if (n < kParallelMin) return scan_block(p, 0, n, Scan{});
  return tbb::parallel_reduce(
      tbb::blocked_range<int64_t>(0, n, kBlockSize), Scan{},
      [p](const tbb::blocked_range<int64_t>& r, Scan s) {
        return scan_block(p, r.begin(), r.end(), s);
      },
      [](Scan a, const Scan& b) {
        a.lo = b.lo < a.lo ? b.lo : a.lo;
        a.hi = b.hi > a.hi ? b.hi : a.hi;
        a.poison += b.poison;
        return a;
      });
}

const char* role_name(Role role) { return role == Role::kWeight ? "weight" : "activation"; }

std::string range_text(float lo, float hi) {
  return "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
}

}  // namespace

MinMaxQuantizer::MinMaxQuantizer(Role role, int bits, Granularity granularity, float momentum)
    : TensorQuantizer("MinMaxQuantizer"),
      role_(role),
      bits_(bits),
      granularity_(granularity),
      momentum_(momentum) {
  check_lazy(bits >= 2 && bits <= 8,
             [&] { return "MinMaxQuantizer: expected bits in 2..8, got " + std::to_string(bits); });
  check(!(role == Role::kActivation && granularity == Granularity::kPerChannel),
        "MinMaxQuantizer: expected per-tensor granularity for activations, got per-channel "
        "(per-channel ranges are for weights only)");
  check_lazy(momentum >= 0.0f && momentum < 1.0f, [&] {
    return "MinMaxQuantizer: expected momentum in [0, 1), got " + std::to_string(momentum);
  });
  if (role_ == Role::kActivation) {
    ema_min_ = Tensor::zeros(core::Shape{1});
    ema_max_ = Tensor::zeros(core::Shape{1});
    register_buffer("ema_min", ema_min_);
    register_buffer("ema_max", ema_max_);
    register_counter("ema_steps", ema_steps_);
  }
}

void MinMaxQuantizer::set_estimator(const Estimator& estimator) {
  const std::string problem = estimator_problem(estimator);
  check_lazy(problem.empty(), [&] { return "MinMaxQuantizer: expected " + problem; });
  estimator_ = estimator;
}

double MinMaxQuantizer::ewgs_unit() const {
  if (role_ == Role::kWeight) return weight_unit_;
  if (ema_steps_ == 0) return 1.0;
  const auto [lo, hi] = activation_range();
  return static_cast<double>(minmax_affine(lo, hi, bits_).scale) * (uniform_levels(bits_) - 1);
}

std::pair<float, float> MinMaxQuantizer::activation_range() const {
  check(role_ == Role::kActivation,
        "MinMaxQuantizer: activation_range() expected an activation quantizer, got a weight one");
  check_lazy(ema_steps_ > 0, [&] {
    return "MinMaxQuantizer: no activation range yet: expected at least one training-mode batch "
           "before eval, encode or a frozen forward, found ema_steps = " +
           std::to_string(ema_steps_);
  });
  const double correction = 1.0 - std::pow(static_cast<double>(momentum_), ema_steps_);
  const auto lo = static_cast<float>(ema_min_.item() / correction);
  const auto hi = static_cast<float>(ema_max_.item() / correction);
  check_lazy(std::isfinite(lo) && std::isfinite(hi) && lo <= hi, [&] {
    return "MinMaxQuantizer: expected a finite activation range with min <= max, found " +
           range_text(lo, hi);
  });
  return {lo, hi};
}

namespace {

// One affine map per channel (one for per-tensor), from each channel's min and max.
std::vector<MinMaxAffine> weight_affines(const Tensor& x, bool per_channel, int bits) {
  const int64_t channels = per_channel ? x.dim(0) : 1;
  const int64_t per = x.numel() / channels;
  std::vector<MinMaxAffine> out(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; ++c) {
    const Scan s = scan(x.data() + c * per, per);
    check_lazy(s.poison == 0.0f, [&] {
      return "MinMaxQuantizer: expected finite weights, found NaN or Inf in " +
             x.shape().to_string() + (per_channel ? " (channel " + std::to_string(c) + ")" : "");
    });
    out[static_cast<size_t>(c)] = minmax_affine(s.lo, s.hi, bits);
  }
  return out;
}

}  // namespace

Variable MinMaxQuantizer::fake_quant(const Variable& x) {
  const Tensor xc = x.value().contiguous();
  const bool per_channel = granularity_ == Granularity::kPerChannel;
  check_lazy(xc.numel() > 0 && (!per_channel || xc.rank() >= 1), [&] {
    return "MinMaxQuantizer: expected a non-empty tensor (rank >= 1 per channel), got " +
           xc.shape().to_string();
  });
  std::vector<MinMaxAffine> affines;
  if (role_ == Role::kWeight) {
    affines = weight_affines(xc, per_channel, bits_);
  } else {
    if (is_training() && !frozen_) {
      const Scan s = scan(xc.data(), xc.numel());
      check_lazy(s.poison == 0.0f, [&] {
        return "MinMaxQuantizer: expected finite activations, found NaN or Inf in " +
               xc.shape().to_string();
      });
      float* raw_min = ema_min_.data();
      float* raw_max = ema_max_.data();
      raw_min[0] = momentum_ * raw_min[0] + (1.0f - momentum_) * s.lo;
      raw_max[0] = momentum_ * raw_max[0] + (1.0f - momentum_) * s.hi;
      ++ema_steps_;
    }
    const auto [lo, hi] = activation_range();
    affines.push_back(minmax_affine(lo, hi, bits_));
  }

  const int64_t channels = static_cast<int64_t>(affines.size());
  const int64_t per = xc.numel() / channels;
  const int bits = bits_;
  if (role_ == Role::kWeight) {
    double sum_sq = 0.0;
    for (const MinMaxAffine& a : affines) {
      const double width = static_cast<double>(a.scale) * (uniform_levels(bits) - 1);
      sum_sq += width * width;
    }
    weight_unit_ = std::sqrt(sum_sq / static_cast<double>(channels));
  }
  Tensor out = Tensor::empty(xc.shape());
  {
    const float* px = xc.data();
    float* po = out.data();
    for (int64_t c = 0; c < channels; ++c) {
      const MinMaxAffine a = affines[static_cast<size_t>(c)];
      parallel_blocks(per, [&](int64_t b, int64_t e) {
        for (int64_t i = c * per + b; i < c * per + e; ++i)
          po[i] = code_value(minmax_code(px[i], a, bits), a.scale, a.zero_point);
      });
    }
  }

  if (estimator_.kind == EstimatorKind::kSte) {
    // GDFQ: dx = g everywhere, no clip mask.
    return autograd::make_node(
        std::move(out), {x}, "minmax_fake_quant",
        [](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> { return {g}; });
  }
  return autograd::make_node(
      std::move(out), {x}, "minmax_fake_quant",
      [xc, affines = std::move(affines), est = estimator_, bits](
          const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
        const Tensor gc = g.contiguous();
        Tensor dx = Tensor::empty(xc.shape());
        const int32_t top = uniform_levels(bits) - 1;
        const auto top_f = static_cast<float>(top);
        const float step = 1.0f / top_f;
        const int64_t n_channels = static_cast<int64_t>(affines.size());
        const int64_t n_per = xc.numel() / n_channels;
        const float* px = xc.data();
        const float* pg = gc.data();
        float* pd = dx.data();
        for (int64_t c = 0; c < n_channels; ++c) {
          const MinMaxAffine a = affines[static_cast<size_t>(c)];
          parallel_blocks(n_per, [&](int64_t b, int64_t e) {
            for (int64_t i = c * n_per + b; i < c * n_per + e; ++i) {
              const float t = minmax_position(px[i], a);
              if (t >= -0.5f && t <= top_f + 0.5f) {
                const int32_t code = round_to_code(t, 0, top);
                pd[i] =
                    estimator_grad(est, t / top_f, static_cast<float>(code) / top_f, step, pg[i]);
              } else {
                pd[i] = pg[i];
              }
            }
          });
        }
        return {dx};
      });
}

Encoded MinMaxQuantizer::encode(const Tensor& x) const {
  const Tensor xc = x.contiguous();
  const bool per_channel = granularity_ == Granularity::kPerChannel;
  check_lazy(xc.numel() > 0 && (!per_channel || xc.rank() >= 1), [&] {
    return "MinMaxQuantizer: expected a non-empty tensor (rank >= 1 per channel), got " +
           xc.shape().to_string();
  });
  std::vector<MinMaxAffine> affines;
  if (role_ == Role::kWeight) {
    affines = weight_affines(xc, per_channel, bits_);
  } else {
    const auto [lo, hi] = activation_range();
    affines.push_back(minmax_affine(lo, hi, bits_));
  }
  Encoded enc;
  const int64_t channels = static_cast<int64_t>(affines.size());
  const int64_t per = xc.numel() / channels;
  enc.codes.resize(static_cast<size_t>(xc.numel()));
  const float* px = xc.data();
  int32_t* codes = enc.codes.data();
  const int bits = bits_;
  if (channels == 1) {
    const MinMaxAffine a = affines[0];
    parallel_blocks(xc.numel(), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) codes[i] = minmax_code(px[i], a, bits);
    });
  } else {
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t i = c * per; i < (c + 1) * per; ++i)
        codes[i] = minmax_code(px[i], affines[static_cast<size_t>(c)], bits);
  }
  for (int64_t c = 0; c < channels; ++c) {
    const MinMaxAffine a = affines[static_cast<size_t>(c)];
    enc.map.scale.push_back(a.scale);
    enc.map.zero_point.push_back(a.zero_point);
  }
  for (int32_t code = 0; code < uniform_levels(bits_); ++code) enc.map.levels.push_back(code);
  return enc;
}

core::Json MinMaxQuantizer::describe() const {
  core::Json out = core::Json::object();
  out.set("kind", "minmax");
  out.set("bits", bits_);
  out.set("role", role_name(role_));
  out.set("granularity", granularity_ == Granularity::kPerChannel ? "channel" : "tensor");
  out.set("estimator", estimator_name(estimator_.kind));
  for (const auto& [name, value] : estimator_numbers(estimator_)) out.set(name, value);
  if (role_ == Role::kActivation) {
    out.set("momentum", momentum_);
    out.set("frozen", frozen_);
    out.set("ema_steps", ema_steps_);
  }
  return out;
}

}  // namespace bitgrad::quant
