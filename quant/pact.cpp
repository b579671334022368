// pact.cpp: PactQuantizer (PACT, Choi et al. 2018): clip to [0, alpha], round on the grid of step
// alpha/(2^b-1); dalpha collects the gradient of the clipped-above elements.
#include "quant/pact.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "quant/blocks.hpp"
#include "quant/uniform_math.hpp"

namespace bitgrad::quant {


PactQuantizer::PactQuantizer(int bits, float alpha_init)
    : TensorQuantizer("PactQuantizer"), bits_(bits) {
  check_lazy(bits >= 2 && bits <= 8,
             [&] { return "PactQuantizer: expected bits in 2..8, got " + std::to_string(bits); });
  check_lazy(std::isfinite(alpha_init) && alpha_init > 0.0f, [&] {
    return "PactQuantizer: expected a finite alpha_init > 0, got " + std::to_string(alpha_init);
  });
  alpha_ = Variable(Tensor::full(core::Shape{1}, alpha_init), true);
  register_parameter("alpha", alpha_, nn::ParamKind::kBias);
}

void PactQuantizer::set_estimator(const Estimator& estimator) {
  const std::string problem = estimator_problem(estimator);
  check_lazy(problem.empty(), [&] { return "PactQuantizer: expected " + problem; });
  estimator_ = estimator;
}

float PactQuantizer::checked_alpha() const {
  const float alpha = alpha_.value().item();
  check_lazy(std::isfinite(alpha) && alpha > 0.0f, [&] {
    return "PactQuantizer: expected a finite learned clipping value alpha > 0, found alpha = " +
           std::to_string(alpha) +
           (std::isnan(alpha) ? " (NaN in learned clipping parameters)" : "");
  });
  return alpha;
}

Variable PactQuantizer::fake_quant(const Variable& x) {
  const float alpha = checked_alpha();
  const int bits = bits_;
  const float scale = pact_scale(alpha, bits);
  const Tensor xc = x.value().contiguous();
  Tensor out = Tensor::empty(xc.shape());
  {
    const float* px = xc.data();
    float* po = out.data();
    parallel_blocks(xc.numel(), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) po[i] = code_value(pact_code(px[i], scale, bits), scale, 0);
    });
  }
  return autograd::make_node(
      std::move(out), {x, alpha_}, "pact_fake_quant",
      [xc, alpha, scale, bits, est = estimator_](
          const Tensor& g, const std::vector<bool>& needs) -> std::vector<Tensor> {
        const Tensor gc = g.contiguous();
        Tensor dx = needs[0] ? Tensor::empty(xc.shape()) : Tensor();
        float* pd = needs[0] ? dx.data() : nullptr;
        const float* px = xc.data();
        const float* pg = gc.data();
        const int32_t top = uniform_levels(bits) - 1;
        const auto top_f = static_cast<float>(top);
        const float step = 1.0f / top_f;
        const auto sums =
            block_sums<1>(xc.numel(), [&](int64_t b, int64_t e, std::array<double, 1>& acc) {
              for (int64_t i = b; i < e; ++i) {
                const float v = px[i];
                if (v >= alpha) acc[0] += pg[i];
                if (!pd) continue;
                if (v >= 0.0f && v <= alpha) {
                  const float t = v / scale;
                  const int32_t code = round_to_code(t, 0, top);
                  pd[i] =
                      estimator_grad(est, t / top_f, static_cast<float>(code) / top_f, step, pg[i]);
                } else {
                  pd[i] = 0.0f;
                }
              }
            });
        return {dx,
                needs[1] ? Tensor::full(core::Shape{1}, static_cast<float>(sums[0])) : Tensor()};
      });
}

Encoded PactQuantizer::encode(const Tensor& x) const {
  const float scale = pact_scale(checked_alpha(), bits_);
  const Tensor xc = x.contiguous();
  Encoded enc;
  enc.codes.resize(static_cast<size_t>(xc.numel()));
  const float* px = xc.data();
  int32_t* codes = enc.codes.data();
  const int bits = bits_;
  parallel_blocks(xc.numel(), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) codes[i] = pact_code(px[i], scale, bits);
  });
  enc.map.scale = {scale};
  enc.map.zero_point = {0};
  for (int32_t code = 0; code < uniform_levels(bits_); ++code) enc.map.levels.push_back(code);
  return enc;
}

core::Json PactQuantizer::describe() const {
  core::Json out = core::Json::object();
  out.set("kind", "pact");
  out.set("bits", bits_);
  out.set("role", "activation");
  out.set("granularity", "tensor");
  out.set("estimator", estimator_name(estimator_.kind));
  for (const auto& [name, value] : estimator_numbers(estimator_)) out.set(name, value);
  return out;
}

}  // namespace bitgrad::quant
