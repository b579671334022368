// uniform_math.hpp: the scalar code functions of the four uniform quantizers (min-max, learned
// interval, PACT, LSQ): the one definition of each code that fake_quant (training) and encode /
// the packed export (deploy) share, plus the affine map back, value = scale * (code - zero_point).
// Header-only, no autograd, no tensors: usable by the deploy path. Also the valid parameter domains
// of the rounding-step estimators on a uniform grid (quant/estimator_math.hpp holds their
// formulas). Not here: learnable parameters, running ranges, gradients (quant/minmax.hpp, lint.hpp,
// pact.hpp, lsq.hpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "quant/estimator_math.hpp"

namespace bitgrad::quant {

// Number of levels of a b-bit uniform grid, 2^b (b in 2..8 for every quantizer here).
inline int32_t uniform_levels(int bits) { return int32_t{1} << bits; }

// round(v) (half to even, like torch.round), then clamped to [lo, hi]; NaN maps to lo (no UB).
inline int32_t round_to_code(float v, int32_t lo, int32_t hi) {
  const float r = std::nearbyint(v);
  if (!(r >= static_cast<float>(lo))) return lo;
  if (r >= static_cast<float>(hi)) return hi;
  return static_cast<int32_t>(r);
}

// The affine map back to reals shared by every quantizer: scale * (code - zero_point), in float32,
// the integer difference converted once and multiplied by the one float scale.
inline float code_value(int32_t code, float scale, int32_t zero_point) {
  return scale * static_cast<float>(code - zero_point);
}

// ---- min-max (GDFQ / ZeroQ, ALGORITHMS.md §5.3) ------------------------------------------------
// For a range [m, M] and b bits, GDFQ computes S = (2^b-1)/max(M-m, 1e-8), j = clamp(round(S x -
// round(S m)), 0, 2^b-1), value = (j + round(S m)) / S. Our integer form: scale = width/(2^b-1) =
// 1/S, zero_point = -round(m / scale), code = j = clamp(round(x / scale + zero_point), 0, 2^b-1)
// (unsigned codes 0..2^b-1), value = scale * (code - zero_point). The width is max(M - m, 1e-8,
// 2^-15 max(|m|, |M|)): the last floor (not in GDFQ; it only acts on a near-constant range far from
// zero) keeps |zero_point| below 2^24 so that code - zero_point is an exact float.
struct MinMaxAffine {
  float scale = 1.0f;
  int32_t zero_point = 0;
};

inline MinMaxAffine minmax_affine(float lo, float hi, int bits) {
  const float floor_rel = std::ldexp(std::max(std::fabs(lo), std::fabs(hi)), -15);
  const float width = std::max({hi - lo, 1e-8f, floor_rel});
  MinMaxAffine a;
  a.scale = width / static_cast<float>(uniform_levels(bits) - 1);
  a.zero_point = static_cast<int32_t>(-std::nearbyint(lo / a.scale));
  return a;
}

// The position on the grid before rounding, t = x / scale + zero_point (codes are round(t)).
inline float minmax_position(float x, const MinMaxAffine& a) {
  return x / a.scale + static_cast<float>(a.zero_point);
}

inline int32_t minmax_code(float x, const MinMaxAffine& a, int bits) {
  return round_to_code(minmax_position(x, a), 0, uniform_levels(bits) - 1);
}

// ---- learned interval (EWGS / QIL, ALGORITHMS.md §2.1) ------------------------------------------
// z = clamp((x - lower) / (upper - lower), 0, 1); the index j = round(z (L-1)) in 0..L-1 (L = 2^b).
// Activations: code = j, value = j / (L-1). Weights: value = 2 j/(L-1) - 1, so code = 2 j - (L-1)
// (odd integers -(L-1)..L-1; 2 bits: {-3, -1, 1, 3}). Both: scale = 1/(L-1), zero_point 0. The
// value is NOT rescaled by (upper - lower): EWGS's output scale |s| and the next BN absorb the
// magnitude.
inline float lint_position(float x, float lower, float width) {
  const float z = (x - lower) / width;
  return z < 0.0f ? 0.0f : (z > 1.0f ? 1.0f : z);  // NaN stays NaN; its index is 0
}

inline int32_t lint_index(float z, int bits) {
  const int32_t top = uniform_levels(bits) - 1;
  return round_to_code(z * static_cast<float>(top), 0, top);
}

inline int32_t lint_code(int32_t index, bool is_signed, int bits) {
  return is_signed ? 2 * index - (uniform_levels(bits) - 1) : index;
}

inline float lint_scale(int bits) { return 1.0f / static_cast<float>(uniform_levels(bits) - 1); }

// ---- PACT (Choi et al. 2018) --------------------------------------------------------------------
// y = clamp(x, 0, alpha), code = round(y (2^b-1) / alpha), computed as clamp(round(x / scale), 0,
// 2^b-1) with scale = alpha / (2^b-1) (the same codes: the bounds are integers), zero_point 0.
inline float pact_scale(float alpha, int bits) {
  return alpha / static_cast<float>(uniform_levels(bits) - 1);
}

inline int32_t pact_code(float x, float scale, int bits) {
  return round_to_code(x / scale, 0, uniform_levels(bits) - 1);
}

// ---- LSQ (Esser et al. 2020) --------------------------------------------------------------------
// Signed (weights): Qn = 2^(b-1), Qp = 2^(b-1) - 1; unsigned (activations): Qn = 0, Qp = 2^b - 1.
// code = round(clamp(x / step, -Qn, Qp)), scale = step, zero_point 0.
struct LsqBounds {
  int32_t qn = 0;
  int32_t qp = 0;
};

inline LsqBounds lsq_bounds(bool is_signed, int bits) {
  LsqBounds b;
  b.qn = is_signed ? uniform_levels(bits - 1) : 0;
  b.qp = is_signed ? uniform_levels(bits - 1) - 1 : uniform_levels(bits) - 1;
  return b;
}

inline int32_t lsq_code(float x, float step, const LsqBounds& b) {
  return round_to_code(x / step, -b.qn, b.qp);
}

// Estimators: the quantizers hand estimator_grad() (quant/estimator_math.hpp) positions normalised to
// [0, 1] over the clip range (step 1/(L-1), as EWGS measures x - x_q), so one EWGS delta means the
// same thing for all four.

}  // namespace bitgrad::quant
