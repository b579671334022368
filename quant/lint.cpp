// lint.cpp: LearnedIntervalQuantizer (EWGS's learned-interval quantizer, ALGORITHMS.md §2.1): the
// forward through the shared code function and the backward of the affine map + clamp, with the
// estimator acting on the discretizer D.
#include "quant/lint.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>
#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "quant/blocks.hpp"
#include "quant/uniform_math.hpp"

namespace bitgrad::quant {

namespace {

// What the backward of one fake_quant call reads and writes.
struct LintBackward {
  const float* x;
  const float* g;
  float* dx;  // nullptr when x needs no gradient
  float lower, upper, width;
  float top;    // L - 1
  float d_out;  // dout/dD
};

// The backward over [begin, end): with z = (x - l)/w inside [0, 1] and gz = estimator(d_out * g),
// dx = gz / w, and the interval sums gz (u - x) and gz (x - l) (dL/dl and dL/du up to -1/w^2).
// Branch-free on local copies and specialised per estimator and per "x needs a gradient", so the STE
// and EWGS loops vectorise; the sums run in kLanes float lanes (a thousand terms each per block) and
// are added to the block's double accumulators at the end.
template <EstimatorKind kKind, bool kWriteDx>
void lint_backward_block(const LintBackward& lb, const Estimator& est, int64_t begin, int64_t end,
                         std::array<double, 2>& acc) {
  constexpr int kLanes = 16;
  float sum_u[kLanes] = {};
  float sum_l[kLanes] = {};
  const float* __restrict x = lb.x;
  const float* __restrict g = lb.g;
  float* __restrict dx = lb.dx;
  const float lower = lb.lower, upper = lb.upper, width = lb.width, top = lb.top, d_out = lb.d_out;
  const float inv_top = 1.0f / top;
  const float delta = est.ewgs_delta;
  auto element = [&](int64_t i, int lane) {
    const float xi = x[i];
    const float z = (xi - lower) / width;
    const bool inside = z >= 0.0f && z <= 1.0f;
    float gz = d_out * g[i];
    if constexpr (kKind == EstimatorKind::kEwgs) {
      // zq = lint_index(z, bits) / (L - 1) for z in [0, 1] (outside, gz is masked to 0 below).
      const float zq = std::nearbyint(std::fmin(std::fmax(z, 0.0f), 1.0f) * top) / top;
      const float sign = gz > 0.0f ? 1.0f : (gz < 0.0f ? -1.0f : 0.0f);
      gz = gz * (1.0f + delta * sign * (z - zq));
    } else if constexpr (kKind != EstimatorKind::kSte) {
      const float zq = std::nearbyint(std::fmin(std::fmax(z, 0.0f), 1.0f) * top) / top;
      if (inside) gz = estimator_grad(est, z, zq, inv_top, gz);
    }
    gz = inside ? gz : 0.0f;
    if constexpr (kWriteDx) dx[i] = gz / width;
    sum_u[lane] += gz * (upper - xi);
    sum_l[lane] += gz * (xi - lower);
  };
  int64_t i = begin;
  for (; i + kLanes <= end; i += kLanes)
    for (int lane = 0; lane < kLanes; ++lane) element(i + lane, lane);
  for (int lane = 0; i < end; ++i, ++lane) element(i, lane);
  for (int lane = 0; lane < kLanes; ++lane) {
    acc[0] += sum_u[lane];
    acc[1] += sum_l[lane];
  }
}

}  // namespace

LearnedIntervalQuantizer::LearnedIntervalQuantizer(Role role, int bits)
    : TensorQuantizer("LearnedIntervalQuantizer"), role_(role), bits_(bits) {
  check_lazy(bits >= 2 && bits <= 8, [&] {
    return "LearnedIntervalQuantizer: expected bits in 2..8, got " + std::to_string(bits);
  });
  const float lower = role == Role::kWeight ? -1.0f : 0.0f;
  lower_ = Variable(Tensor::full(core::Shape{1}, lower), true);
  upper_ = Variable(Tensor::full(core::Shape{1}, 1.0f), true);
  register_parameter("lower", lower_, nn::ParamKind::kBias);
  register_parameter("upper", upper_, nn::ParamKind::kBias);
}

void LearnedIntervalQuantizer::set_estimator(const Estimator& estimator) {
  const std::string problem = estimator_problem(estimator);
  check_lazy(problem.empty(), [&] { return "LearnedIntervalQuantizer: expected " + problem; });
  estimator_ = estimator;
}

std::pair<float, float> LearnedIntervalQuantizer::interval() const {
  const float l = lower_.value().item();
  const float u = upper_.value().item();
  check_lazy(std::isfinite(l) && std::isfinite(u) && l < u && std::isfinite(u - l), [&] {
    const bool nan = std::isnan(l) || std::isnan(u);
    return std::string("LearnedIntervalQuantizer: expected finite learned clipping parameters ") +
           "with lower < upper, found lower = " + std::to_string(l) +
           ", upper = " + std::to_string(u) + (nan ? " (NaN in learned clipping parameters)" : "");
  });
  return {l, u};
}

Variable LearnedIntervalQuantizer::fake_quant(const Variable& x) {
  const std::pair<float, float> interval_now = interval();
  const float l = interval_now.first;
  const float u = interval_now.second;
  const float width = u - l;
  const Tensor xc = x.value().contiguous();
  check_lazy(xc.numel() > 0, [&] {
    return "LearnedIntervalQuantizer: expected a non-empty tensor, got " + xc.shape().to_string();
  });
  const bool is_signed = role_ == Role::kWeight;
  const int bits = bits_;
  const float scale = lint_scale(bits);
  Tensor out = Tensor::empty(xc.shape());
  {
    const float* px = xc.data();
    float* po = out.data();
    parallel_blocks(xc.numel(), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const int32_t j = lint_index(lint_position(px[i], l, width), bits);
        po[i] = code_value(lint_code(j, is_signed, bits), scale, 0);
      }
    });
  }
  return autograd::make_node(
      std::move(out), {x, lower_, upper_}, "lint_fake_quant",
      [xc, l, u, width, is_signed, bits, est = estimator_](
          const Tensor& g, const std::vector<bool>& needs) -> std::vector<Tensor> {
        const Tensor gc = g.contiguous();
        Tensor dx = needs[0] ? Tensor::empty(xc.shape()) : Tensor();
        const LintBackward lb{xc.data(), gc.data(), needs[0] ? dx.data() : nullptr, l, u, width,
                              static_cast<float>(uniform_levels(bits) - 1),
                              is_signed ? 2.0f : 1.0f};  // dout/dD: out = 2 D - 1 for weights
        // sums[0] = sum gz (u - x), sums[1] = sum gz (x - l) over the clip range.
        const auto sums =
            block_sums<2>(xc.numel(), [&](int64_t b, int64_t e, std::array<double, 2>& acc) {
              with_estimator_kind(est.kind, [&](auto kind) {
                constexpr EstimatorKind k = decltype(kind)::value;
                if (lb.dx != nullptr) {
                  lint_backward_block<k, true>(lb, est, b, e, acc);
                } else {
                  lint_backward_block<k, false>(lb, est, b, e, acc);
                }
              });
            });
        const double inv_w2 = 1.0 / (static_cast<double>(width) * width);
        return {dx, needs[1] ? Tensor::full(core::Shape{1}, static_cast<float>(-sums[0] * inv_w2)) : Tensor(),
                needs[2] ? Tensor::full(core::Shape{1}, static_cast<float>(-sums[1] * inv_w2)) : Tensor()};
      });
}

Encoded LearnedIntervalQuantizer::encode(const Tensor& x) const {
  const std::pair<float, float> interval_now = interval();
  const float l = interval_now.first;
  const float width = interval_now.second - l;
  const Tensor xc = x.contiguous();
  const bool is_signed = role_ == Role::kWeight;
  Encoded enc;
  enc.codes.resize(static_cast<size_t>(xc.numel()));
  const float* px = xc.data();
  int32_t* codes = enc.codes.data();
  const int bits = bits_;
  parallel_blocks(xc.numel(), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      codes[i] = lint_code(lint_index(lint_position(px[i], l, width), bits), is_signed, bits);
  });
  enc.map.scale = {lint_scale(bits_)};
  enc.map.zero_point = {0};
  for (int32_t j = 0; j < uniform_levels(bits_); ++j)
    enc.map.levels.push_back(lint_code(j, is_signed, bits_));
  return enc;
}

void LearnedIntervalQuantizer::calibrate(const Tensor& x) {
  const Tensor xc = x.contiguous();
  const int64_t n = xc.numel();
  check_lazy(n >= 2, [&] {
    return "LearnedIntervalQuantizer: calibrate expected at least 2 values, got " +
           xc.shape().to_string();
  });
  const float* px = xc.data();
  double sum = 0.0;
  float lo = px[0];
  for (int64_t i = 0; i < n; ++i) {
    sum += px[i];
    lo = px[i] < lo ? px[i] : lo;
  }
  const double mean = sum / static_cast<double>(n);
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += (px[i] - mean) * (px[i] - mean);
  const double sd = std::sqrt(ss / static_cast<double>(n - 1));
  double l = 0.0;
  double u = 0.0;
  if (role_ == Role::kWeight) {
    l = -3.0 * sd;
    u = 3.0 * sd;
  } else {
    l = lo;
    u = 3.0 * sd / std::sqrt(1.0 - 2.0 / std::numbers::pi);
  }
  const auto lf = static_cast<float>(l);
  const auto uf = static_cast<float>(u);
  check_lazy(std::isfinite(lf) && std::isfinite(uf) && lf < uf, [&] {
    return "LearnedIntervalQuantizer: calibrate expected a finite interval with lower < upper, got "
           "lower = " +
           std::to_string(lf) + ", upper = " + std::to_string(uf) + " from " +
           xc.shape().to_string();
  });
  lower_.set_value(Tensor::full(core::Shape{1}, lf));
  upper_.set_value(Tensor::full(core::Shape{1}, uf));
}

core::Json LearnedIntervalQuantizer::describe() const {
  core::Json out = core::Json::object();
  out.set("kind", "lint");
  out.set("bits", bits_);
  out.set("role", role_ == Role::kWeight ? "weight" : "activation");
  out.set("granularity", "tensor");
  out.set("estimator", estimator_name(estimator_.kind));
  for (const auto& [name, value] : estimator_numbers(estimator_)) out.set(name, value);
  return out;
}

}  // namespace bitgrad::quant
