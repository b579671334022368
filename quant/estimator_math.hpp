// estimator_math.hpp: the gradient estimators of the rounding step, as scalar functions (header-only,
// no autograd), shared by every quantizer's backward. A quantizer maps its input to a normalised
// position x on a grid of spacing `step` (levels at multiples of step, e.g. step = 1/(L-1) on [0, 1]),
// rounds it to x_q, and calls estimator_grad() for dL/dx given g = dL/dx_q, inside its clip range
// (what happens outside the range is the quantizer's own rule, stated in its header).
// Formulas (ALGORITHMS.md §2.2, §7.1, §7.2):
//   STE   dL/dx = g
//   EWGS  dL/dx = g * (1 + delta * sign(g) * (x - x_q))                  (x, x_q in the grid's units)
//   DSQ   dL/dx = g * (s k / 2) * (1 - tanh^2(k (t - m)))   t = x / step, m = floor(t) + 1/2,
//         k = ln(2/alpha - 1), s = 1 / (1 - alpha): the slope of the tanh soft quantizer (in step units)
//   DAQ   dL/dx = g * (1 + 2c) sigma(T) sigma(-T) T (s0 + s1) / |s0 - s1|   on f = t - floor(t),
//         s_q = exp(-|f - q|) exp(-(q - q*)^2 / sigma^2), q* = round(f), c = 1 / (e^T - 1)
// The forward of all four is hard rounding to the nearest level (DSQ and DAQ as in MQBench and the DAQ
// code: their soft curves only shape the backward). Not here: the quantizers, δ from the Hessian.
#pragma once

#include <cmath>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace bitgrad::quant {

enum class EstimatorKind { kSte, kEwgs, kDsq, kDaq };

struct Estimator {
  EstimatorKind kind = EstimatorKind::kSte;
  // EWGS scaling factor delta >= 0 (per quantizer; updated from the Hessian trace, quant/hessian.hpp).
  float ewgs_delta = 0.0f;
  // DSQ characteristic variable alpha in (0, 1): smaller is sharper. Fixed (MQBench's 0.4 by default),
  // not learned: a documented deviation from the DSQ paper's learned alpha.
  float dsq_alpha = 0.4f;
  // DAQ kernel width sigma and temperature T (the DAQ code: weights sigma 1, activations sigma 2, T 2).
  float daq_sigma = 1.0f;
  float daq_temperature = 2.0f;
};

// dL/dx for one element: x the position before rounding, x_q = the level it rounded to, `step` the
// grid spacing in the same units, g = dL/dx_q.
inline float estimator_grad(const Estimator& e, float x, float x_q, float step, float g) {
  switch (e.kind) {
    case EstimatorKind::kSte:
      return g;
    case EstimatorKind::kEwgs: {
      const float sign = g > 0.0f ? 1.0f : (g < 0.0f ? -1.0f : 0.0f);
      return g * (1.0f + e.ewgs_delta * sign * (x - x_q));
    }
    case EstimatorKind::kDsq: {
      const float t = x / step;
      const float m = std::floor(t) + 0.5f;
      const float k = std::log(2.0f / e.dsq_alpha - 1.0f);
      const float s = 1.0f / (1.0f - e.dsq_alpha);
      const float th = std::tanh(k * (t - m));
      return g * 0.5f * s * k * (1.0f - th * th);
    }
    case EstimatorKind::kDaq: {
      const float t = x / step;
      const float f = t - std::floor(t);
      const float nearest = f <= 0.5f ? 0.0f : 1.0f;  // argmax of exp(-|f - q|), first on a tie
      const float inv_sigma2 = 1.0f / (e.daq_sigma * e.daq_sigma);
      const float s0 = std::exp(-f) * std::exp(-(0.0f - nearest) * (0.0f - nearest) * inv_sigma2);
      const float s1 = std::exp(-(1.0f - f)) * std::exp(-(1.0f - nearest) * (1.0f - nearest) * inv_sigma2);
      const float temp = e.daq_temperature;
      const float c = 1.0f / std::expm1(temp);
      const float sig = 1.0f / (1.0f + std::exp(-temp));
      return g * (1.0f + 2.0f * c) * sig * (1.0f - sig) * temp * (s0 + s1) / std::fabs(s0 - s1);
    }
  }
  return g;
}

// "ste" | "ewgs" | "dsq" | "daq".
// Calls body(std::integral_constant<EstimatorKind, K>{}) with K = kind, so that a quantizer's element
// loop can be compiled once per estimator (branch-free and vectorised) and chosen at run time.
template <typename Body>
void with_estimator_kind(EstimatorKind kind, Body&& body) {
  switch (kind) {
    case EstimatorKind::kSte:
      body(std::integral_constant<EstimatorKind, EstimatorKind::kSte>{});
      return;
    case EstimatorKind::kEwgs:
      body(std::integral_constant<EstimatorKind, EstimatorKind::kEwgs>{});
      return;
    case EstimatorKind::kDsq:
      body(std::integral_constant<EstimatorKind, EstimatorKind::kDsq>{});
      return;
    case EstimatorKind::kDaq:
      body(std::integral_constant<EstimatorKind, EstimatorKind::kDaq>{});
      return;
  }
}

inline const char* estimator_name(EstimatorKind kind) {
  switch (kind) {
    case EstimatorKind::kSte:
      return "ste";
    case EstimatorKind::kEwgs:
      return "ewgs";
    case EstimatorKind::kDsq:
      return "dsq";
    case EstimatorKind::kDaq:
      return "daq";
  }
  return "unknown";
}

// Empty when the estimator's numbers lie in the domain where its formula is defined, else what is
// wrong: EWGS delta finite and >= 0 (the factor 1 + delta sign(g)(x - x_q) stays positive for
// delta < 2(L-1); larger values are allowed but flip gradients), DSQ alpha in (0, 1) (k =
// ln(2/alpha
// - 1) > 0), DAQ sigma > 0 and temperature > 0.
inline std::string estimator_problem(const Estimator& e) {
  auto bad = [](float v) { return !std::isfinite(v); };
  switch (e.kind) {
    case EstimatorKind::kSte:
      return {};
    case EstimatorKind::kEwgs:
      if (bad(e.ewgs_delta) || e.ewgs_delta < 0.0f)
        return "EWGS delta >= 0, got " + std::to_string(e.ewgs_delta);
      return {};
    case EstimatorKind::kDsq:
      if (bad(e.dsq_alpha) || e.dsq_alpha <= 0.0f || e.dsq_alpha >= 1.0f)
        return "DSQ alpha in (0, 1), got " + std::to_string(e.dsq_alpha);
      return {};
    case EstimatorKind::kDaq:
      if (bad(e.daq_sigma) || e.daq_sigma <= 0.0f || bad(e.daq_temperature) ||
          e.daq_temperature <= 0.0f)
        return "DAQ sigma > 0 and temperature > 0, got sigma " + std::to_string(e.daq_sigma) +
               ", temperature " + std::to_string(e.daq_temperature);
      return {};
  }
  return "a known estimator kind";
}

// The numbers of the selected estimator, for describe(): {"ewgs_delta"} / {"dsq_alpha"} /
// {"daq_sigma", "daq_temperature"}; none for STE.
inline std::vector<std::pair<const char*, float>> estimator_numbers(const Estimator& e) {
  switch (e.kind) {
    case EstimatorKind::kSte:
      return {};
    case EstimatorKind::kEwgs:
      return {{"ewgs_delta", e.ewgs_delta}};
    case EstimatorKind::kDsq:
      return {{"dsq_alpha", e.dsq_alpha}};
    case EstimatorKind::kDaq:
      return {{"daq_sigma", e.daq_sigma}, {"daq_temperature", e.daq_temperature}};
  }
  return {};
}

}  // namespace bitgrad::quant
