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
        float* pd = needs[0] ? dx.data() : nullptr;
        const float* px = xc.data();
        const float* pg = gc.data();
        const auto top_f = static_cast<float>(uniform_levels(bits) - 1);
        const float step = 1.0f / top_f;
        const float d_out = is_signed ? 2.0f : 1.0f;  // dout/dD: out = 2 D - 1 for weights
        const double inv_w2 = 1.0 / (static_cast<double>(width) * width);
        // sums[0] = dL/dl, sums[1] = dL/du.
        const auto sums =
            block_sums<2>(xc.numel(), [&](int64_t b, int64_t e, std::array<double, 2>& acc) {
              for (int64_t i = b; i < e; ++i) {
                const float z = (px[i] - l) / width;
                if (z >= 0.0f && z <= 1.0f) {
                  const float zq = static_cast<float>(lint_index(z, bits)) / top_f;
                  const float gz = estimator_grad(est, z, zq, step, d_out * pg[i]);
                  if (pd) pd[i] = gz / width;
                  acc[0] -= gz * (static_cast<double>(u) - px[i]) * inv_w2;
                  acc[1] -= gz * (static_cast<double>(px[i]) - l) * inv_w2;
                } else if (pd) {
                  pd[i] = 0.0f;
                }
              }
            });
        return {dx, needs[1] ? Tensor::full(core::Shape{1}, static_cast<float>(sums[0])) : Tensor(),
                needs[2] ? Tensor::full(core::Shape{1}, static_cast<float>(sums[1])) : Tensor()};
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
  for (int64_t i = 0; i < xc.numel(); ++i)
    enc.codes[static_cast<size_t>(i)] =
        lint_code(lint_index(lint_position(px[i], l, width), bits_), is_signed, bits_);
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
