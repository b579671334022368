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

namespace {

// lsq_code(x, s, b) as a float, branch-free so the element loops vectorise: the same value (round half
// to even, then the clamp, NaN to -qn as round_to_code does); + 0.0f turns the -0 that rounding a
// small negative gives into the +0 of the integer code 0.
// (Comparisons, not std::fmin/fmax: GCC calls libm for those unless told NaNs cannot occur.)
inline float lsq_code_float(float x, float s, float lo, float hi) {
  const float r = std::nearbyint(x / s);
  const float at_least_lo = r >= lo ? r : lo;  // NaN -> lo
  return (at_least_lo <= hi ? at_least_lo : hi) + 0.0f;
}

// What the backward of one fake_quant call reads and writes.
struct LsqBackward {
  const float* x;
  const float* g;
  float* dx;  // nullptr when x needs no gradient
  float s, qn, qp;
};

// The backward over [begin, end) (the formulas in lsq.hpp): below the range dL/ds gets -qn g, above it
// qp g, inside g (code - v) with the estimator's gx = est(g) in place of g on the v term, and
// dx = gx inside, 0 outside. Branch-free on local copies, specialised per estimator and per "x needs a
// gradient"; the step sum runs in kLanes float lanes per block (then added in double, in order).
template <EstimatorKind kKind, bool kWriteDx>
void lsq_backward_block(const LsqBackward& lb, const Estimator& est, int64_t begin, int64_t end,
                        std::array<double, 1>& acc) {
  constexpr int kLanes = 16;
  float sum[kLanes] = {};
  const float* __restrict x = lb.x;
  const float* __restrict g = lb.g;
  float* __restrict dx = lb.dx;
  const float s = lb.s, qn = lb.qn, qp = lb.qp;
  const float span = qn + qp;
  const float step = 1.0f / span;
  auto element = [&](int64_t i, int lane) {
    const float v = x[i] / s;
    const float gi = g[i];
    const bool below = v < -qn;
    const bool above = v > qp;
    const float code = lsq_code_float(x[i], s, -qn, qp);
    float gx = gi;
    if constexpr (kKind != EstimatorKind::kSte) {
      if (!below && !above) gx = estimator_grad(est, (v + qn) / span, (code + qn) / span, step, gi);
    }
    const float inside_term = gi * code - gx * v;
    sum[lane] += below ? -qn * gi : (above ? qp * gi : inside_term);
    if constexpr (kWriteDx) dx[i] = (below || above) ? 0.0f : gx;
  };
  int64_t i = begin;
  for (; i + kLanes <= end; i += kLanes)
    for (int lane = 0; lane < kLanes; ++lane) element(i + lane, lane);
  for (int lane = 0; i < end; ++i, ++lane) element(i, lane);
  for (int lane = 0; lane < kLanes; ++lane) acc[0] += sum[lane];
}

}  // namespace

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
    // code_value(lsq_code(x, s, b), s, 0) = s * code, with the code kept as an exact float.
    const auto lo = static_cast<float>(-bounds.qn), hi = static_cast<float>(bounds.qp);
    parallel_blocks(xc.numel(), [&](int64_t b, int64_t e) {
      const float* __restrict in = px;
      float* __restrict o = po;
      for (int64_t i = b; i < e; ++i) o[i] = s * lsq_code_float(in[i], s, lo, hi);
    });
  }
  return autograd::make_node(
      std::move(out), {x, step_}, "lsq_fake_quant",
      [xc, s, bounds, est = estimator_](const Tensor& g,
                                        const std::vector<bool>& needs) -> std::vector<Tensor> {
        const Tensor gc = g.contiguous();
        Tensor dx = needs[0] ? Tensor::empty(xc.shape()) : Tensor();
        const LsqBackward lb{xc.data(), gc.data(), needs[0] ? dx.data() : nullptr, s,
                             static_cast<float>(bounds.qn), static_cast<float>(bounds.qp)};
        const auto sums =
            block_sums<1>(xc.numel(), [&](int64_t b, int64_t e, std::array<double, 1>& acc) {
              with_estimator_kind(est.kind, [&](auto kind) {
                constexpr EstimatorKind k = decltype(kind)::value;
                if (lb.dx != nullptr) {
                  lsq_backward_block<k, true>(lb, est, b, e, acc);
                } else {
                  lsq_backward_block<k, false>(lb, est, b, e, acc);
                }
              });
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
  int32_t* codes = enc.codes.data();
  parallel_blocks(xc.numel(), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) codes[i] = lsq_code(px[i], s, bounds);
  });
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
