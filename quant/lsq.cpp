// lsq.cpp: LsqQuantizer (Esser et al. 2020): code = round(clamp(x/s, -Qn, Qp)), and the step
// gradient with its scale 1/sqrt(numel Qp).
#include "quant/lsq.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "core/tensor_ops.hpp"
#include "quant/blocks.hpp"
#include "quant/uniform_math.hpp"

namespace bitgrad::quant {


LsqQuantizer::LsqQuantizer(Role role, int bits)
    : TensorQuantizer("LsqQuantizer"), role_(role), bits_(bits) {
  check_lazy(bits >= 2 && bits <= 8,
             [&] { return "LsqQuantizer: expected bits in 2..8, got " + std::to_string(bits); });
  step_ = Variable(Tensor::full(core::Shape{1}, 1.0f), true);
  register_parameter("step", step_, nn::ParamKind::kBias);
}

void LsqQuantizer::set_estimator(const Estimator& estimator) {
  const std::string problem = estimator_problem(estimator);
  check_lazy(problem.empty(), [&] { return "LsqQuantizer: expected " + problem; });
  estimator_ = estimator;
}

double LsqQuantizer::ewgs_unit() const {
  const LsqBounds b = lsq_bounds(role_ == Role::kWeight, bits_);
  return static_cast<double>(step_.value().item()) * (b.qn + b.qp);
}

float LsqQuantizer::checked_step() const {
  const float s = step_.value().item();
  check_lazy(std::isfinite(s) && s > 0.0f, [&] {
    return "LsqQuantizer: expected a finite learned step > 0, found step = " + std::to_string(s) +
           (std::isnan(s) ? " (NaN in learned clipping parameters)" : "");
  });
  return s;
}

Variable LsqQuantizer::fake_quant(const Variable& x) {
  const float s = checked_step();
  const LsqBounds bounds = lsq_bounds(role_ == Role::kWeight, bits_);
  const Tensor xc = x.value().contiguous();
  check_lazy(xc.numel() > 0, [&] {
    return "LsqQuantizer: expected a non-empty tensor, got " + xc.shape().to_string();
  });
  Tensor out = Tensor::empty(xc.shape());
  {
    const float* px = xc.data();
    float* po = out.data();
    parallel_blocks(xc.numel(), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) po[i] = code_value(lsq_code(px[i], s, bounds), s, 0);
    });
  }
  return autograd::make_node(
      std::move(out), {x, step_}, "lsq_fake_quant",
      [xc, s, bounds, est = estimator_](const Tensor& g,
                                        const std::vector<bool>& needs) -> std::vector<Tensor> {
        const Tensor gc = g.contiguous();
        Tensor dx = needs[0] ? Tensor::empty(xc.shape()) : Tensor();
        float* pd = needs[0] ? dx.data() : nullptr;
        const float* px = xc.data();
        const float* pg = gc.data();
        const auto qn = static_cast<float>(bounds.qn);
        const auto qp = static_cast<float>(bounds.qp);
        const float span = qn + qp;
        const float step = 1.0f / span;
        const auto sums =
            block_sums<1>(xc.numel(), [&](int64_t b, int64_t e, std::array<double, 1>& acc) {
              for (int64_t i = b; i < e; ++i) {
                const float v = px[i] / s;
                const float gi = pg[i];
                if (v < -qn) {
                  acc[0] -= static_cast<double>(qn) * gi;
                  if (pd) pd[i] = 0.0f;
                } else if (v > qp) {
                  acc[0] += static_cast<double>(qp) * gi;
                  if (pd) pd[i] = 0.0f;
                } else {
                  const auto code = static_cast<float>(lsq_code(px[i], s, bounds));
                  const float gx =
                      estimator_grad(est, (v + qn) / span, (code + qn) / span, step, gi);
                  acc[0] += static_cast<double>(gi) * code - static_cast<double>(gx) * v;
                  if (pd) pd[i] = gx;
                }
              }
            });
        const double grad_scale =
            1.0 / std::sqrt(static_cast<double>(xc.numel()) * static_cast<double>(bounds.qp));
        return {dx, needs[1]
                        ? Tensor::full(core::Shape{1}, static_cast<float>(sums[0] * grad_scale))
                        : Tensor()};
      });
}

Encoded LsqQuantizer::encode(const Tensor& x) const {
  const float s = checked_step();
  const LsqBounds bounds = lsq_bounds(role_ == Role::kWeight, bits_);
  const Tensor xc = x.contiguous();
  Encoded enc;
  enc.codes.resize(static_cast<size_t>(xc.numel()));
  const float* px = xc.data();
  for (int64_t i = 0; i < xc.numel(); ++i)
    enc.codes[static_cast<size_t>(i)] = lsq_code(px[i], s, bounds);
  enc.map.scale = {s};
  enc.map.zero_point = {0};
  for (int32_t code = -bounds.qn; code <= bounds.qp; ++code) enc.map.levels.push_back(code);
  return enc;
}

void LsqQuantizer::calibrate(const Tensor& x) {
  const LsqBounds bounds = lsq_bounds(role_ == Role::kWeight, bits_);
  const double mean_abs = core::mean_abs(x);
  const auto s = static_cast<float>(2.0 * mean_abs / std::sqrt(static_cast<double>(bounds.qp)));
  check_lazy(std::isfinite(s) && s > 0.0f, [&] {
    return "LsqQuantizer: calibrate expected 2 mean|x| / sqrt(Qp) finite and > 0, got " +
           std::to_string(s) + " from " + x.shape().to_string();
  });
  step_.set_value(Tensor::full(core::Shape{1}, s));
}

core::Json LsqQuantizer::describe() const {
  const LsqBounds bounds = lsq_bounds(role_ == Role::kWeight, bits_);
  core::Json out = core::Json::object();
  out.set("kind", "lsq");
  out.set("bits", bits_);
  out.set("role", role_ == Role::kWeight ? "weight" : "activation");
  out.set("granularity", "tensor");
  out.set("estimator", estimator_name(estimator_.kind));
  for (const auto& [name, value] : estimator_numbers(estimator_)) out.set(name, value);
  out.set("qn", bounds.qn);
  out.set("qp", bounds.qp);
  return out;
}

}  // namespace bitgrad::quant
