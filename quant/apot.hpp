// apot.hpp: ApotQuantizer, the PoT / APoT quantizer of Li, Dong, Wang (ICLR 2020) as its official
// CIFAR code runs it (ALGORITHMS.md §1): per-tensor weight normalisation, learnable clipping
// threshold alpha, additive (APoT) or plain (PoT) power-of-two level sets, ternary 2-bit weights.
// Not here: the scalar code functions (quant/apot_math.hpp), the 8-bit first/last layers
// (quant/int8_max.hpp), which layers get which quantizer (quant/policy.hpp).
#pragma once

#include <cstdint>
#include <vector>

#include "core/json.hpp"
#include "quant/apot_math.hpp"
#include "quant/quantizer.hpp"

namespace bitgrad::quant {

// ApotQuantizer(role, bits, additive, alpha_init): bits 2, 3 or 4; additive = true for APoT, false
// for "vanilla" PoT (build_power_value's non-additive mode). Granularity: per tensor. Parameter:
// "alpha" (shape [1], ParamKind::kBias; initial values used by the APoT recipe: 3.0 for
// weights, 8.0 for activations; the recipe's weight decay 1e-4 on alpha is an optimizer-group
// matter, not done here).
//
// Weights (Role::kWeight; any shape, the whole tensor shares one alpha):
//   forward   w^ = (w - mean) / std      mean, unbiased std of this tensor, DETACHED (constants)
//             u = w^ / alpha,  c = clamp(u, -1, 1),  code = sign(c) * project(|c|),  q = code / den
//             out = (alpha / den) * code   (= alpha * q)
//   grid      2-bit: ternary {-1, 0, 1}, den 1, whatever `additive` says (§1.2, §1.7)
//             3-bit: ±{0,1,2,4}/4 (APoT = PoT)
//             4-bit: APoT ±{0,1,2,3,4,6,8,10}/10, PoT ±{0,1,2,4,...,64}/64
//   backward  dL/dw = g / std for EVERY element (|u| > 1 included: the CIFAR code's unclipped
//             "calibrated gradient"); with EWGS (below) scaled inside |u| <= 1
//             dL/dalpha = sum g * (sign(u) if |u| > 1 else q - u)
// Activations (Role::kActivation; inputs are post-ReLU in the CIFAR ResNet):
//   forward   v = x / alpha,  c = clamp(v, 0, 1),  code = project(c),  out = (alpha / den) * code
//             (the CIFAR code clamps only above; its nearest-level projection sends negative v to
//             0, which is what the lower clamp does too, so the codes are identical)
//   grid      APoT 2-bit {0,1,2,4}/4, 3-bit {0,1,2,3,4,6,8,10}/10, 4-bit {0,1,2,...,36,48}/48;
//             PoT 2-bit {0,1,2,4}/4, 3-bit {0,1,2,...,64}/64, 4-bit {0,1,2,...,2^14}/2^14
//   backward  dL/dx = g * 1[v <= 1] (negative v included, as in the CIFAR code; EWGS-scaled)
//             dL/dalpha = sum g * (1 if v > 1 else q - v)
// Code map: zero_point 0, scale alpha / den, levels = every code of the grid (weights: signed,
// -den..den). fake_quant's value is exactly scale * code in float32; encode returns the same codes.
//
// Estimators (set_estimator), applied to dL/dx inside the clip range only; the alpha gradient keeps
// the STE form above:
//   ste   (default) dL/dx as above.
//   ewgs  dL/dx(position) = g * (1 + delta * sign(g) * (c - q)), c and q in the alpha-normalised
//         domain where the largest level is 1 (NOT lattice units). For weights this is EWGS applied
//         to the magnitude discretizer |c| -> project(|c|) with the chain rule through the sign
//         (sign(c) * (|c| - |q|) = c - q), i.e. measured in the signed, increasing direction like
//         EWGS's own [0, 1] weight domain; on positive elements it equals "x = |c|". Units: EWGS's
//         own weight domain is [0, 1] for the whole range [-1, 1] here, so the same delta acts
//         twice as strongly per unit of c on weights (ALGORITHMS.md §2.6); on activations the
//         domains agree. delta must be finite and >= 0.
//   dsq, daq  defined for uniform grids only: accepted for 2-bit (ternary, step 1) weights, where
//         the position is c in [-1, 1]; every other grid here is non-uniform and throws Error.
// Threading: the element loops run on oneTBB over fixed chunks whose partial alpha gradients are
// added in chunk order, so results do not depend on the thread count.
// Errors (bitgrad::Error): bits outside 2..4, alpha_init not finite and > 0, an unsupported
// estimator, alpha not finite and > 0 at fake_quant/encode time, a weight tensor with fewer than 2
// elements or zero / non-finite std, non-finite activation inputs.
class ApotQuantizer final : public TensorQuantizer {
 public:
  // The CIFAR QuantConv2d's initial thresholds (ALGORITHMS.md §1.3).
  static constexpr float kWeightAlphaInit = 3.0f;
  static constexpr float kActivationAlphaInit = 8.0f;

  ApotQuantizer(Role role, int bits, bool additive, float alpha_init);

  Variable fake_quant(const Variable& x) override;
  Encoded encode(const Tensor& x) const override;
  int bits() const override { return bits_; }
  // {"kind": "apot"|"pot", "bits", "role": "weight"|"activation", "granularity": "tensor",
  //  "estimator", "ewgs_delta" (ewgs only), "denominator", "levels" (the code list),
  //  "weight_normalisation": "mean_std_unbiased" (weights only)}.
  core::Json describe() const override;
  void set_estimator(const Estimator& estimator) override;
  // alpha: the output is alpha * q, with q (and EWGS's c - q) in the alpha-normalised domain.
  double ewgs_unit() const override { return alpha_.value().item(); }

  Role role() const { return role_; }
  bool additive() const { return additive_; }
  Variable& alpha() { return alpha_; }
  const Variable& alpha() const { return alpha_; }
  // The magnitude grid (weights: before the sign).
  const apot::PowerGrid& grid() const { return grid_; }
  // scale {alpha / den}, zero_point {0}, levels: every code (weights signed), with the current
  // alpha.
  CodeMap code_map() const;
  // Every code, ascending (weights: -den..den over the grid's magnitudes).
  std::vector<int32_t> levels() const;

 private:
  float checked_alpha() const;
  Variable fake_quant_weight(const Variable& x);
  Variable fake_quant_activation(const Variable& x);

  Role role_;
  int bits_;
  bool additive_;
  apot::PowerGrid grid_;
  Variable alpha_;
};

}  // namespace bitgrad::quant
