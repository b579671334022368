// lint.hpp: LearnedIntervalQuantizer ("lint"), the learned-interval uniform quantizer of EWGS
// (QIL style), ALGORITHMS.md §2.1: learnable lower and upper clipping values, a 2^b-level grid on
// the normalised interval, no rescale back to input units.
// Not here: the output scale |s| (QuantizedLayer's "output_scale"), delta from the Hessian trace
// (quant/hessian.hpp), the code function (quant/uniform_math.hpp: lint_position, lint_index).
#pragma once

#include <utility>

#include "quant/quantizer.hpp"

namespace bitgrad::quant {

// Forward (b bits, L = 2^b; l = "lower", u = "upper", per tensor):
//   z = clamp((x - l) / (u - l), 0, 1), D(z) = round(z (L-1)) / (L-1)
//   weights:     out = 2 D(z) - 1 in [-1, 1]   (2 bits: {-1, -1/3, 1/3, 1}, no zero level)
//   activations: out = D(z) in [0, 1]          (2 bits: {0, 1/3, 2/3, 1})
//   No rescale by (u - l): the layer's output scale |s| and the next BN absorb the magnitude.
// Code map: scale 1/(L-1), zero_point 0; weights: odd codes 2j - (L-1) (2 bits {-3, -1, 1, 3}),
//   activations: codes j = 0..L-1. value = scale * code exactly in float32. The codes depend on l
//   and u, not only on the scale: export needs the parameters too.
// Pseudo-gradient (autograd through the affine map and the clamp, EWGS's code): with G the
//   estimator's dL/dz = estimator_grad(z, D(z), 1/(L-1), dL/dD) (dL/dD = 2 g for weights, g for
//   activations; STE: G = dL/dD), for elements with 0 <= (x - l)/(u - l) <= 1:
//     dx = G / (u - l),  du = -G (x - l) / (u - l)^2,  dl = -G (u - x) / (u - l)^2
//   (dl, du summed over elements). Clipped elements (the clamp binds) give ZERO gradient to x, l
//   and u (QIL-like; unlike PACT/LSQ, clipped elements do not push the bounds). EWGS: dL/dz =
//   dL/dD (1 + delta sign(dL/dD) (z - D(z))) with z, D(z) in the normalised [0, 1] domain.
// Parameters: "lower", "upper" (shape [1], ParamKind::kBias: no weight decay), initialised to -1, 1
//   (weights) or 0, 1 (activations) until calibrate(). Every forward checks that both are finite
//   and lower < upper (Error naming the values otherwise).
// Granularity: per tensor. Estimators: STE (default; EWGS with delta = 0), EWGS, DSQ, DAQ.
// bits in 2..8, else Error.
class LearnedIntervalQuantizer final : public TensorQuantizer {
 public:
  LearnedIntervalQuantizer(Role role, int bits);

  Variable fake_quant(const Variable& x) override;
  Encoded encode(const Tensor& x) const override;
  int bits() const override { return bits_; }
  // EWGS's init_quant_model, from x (std: unbiased, like torch.std):
  //   weights: u = 3 std(x), l = -3 std(x); activations: u = 3 std(x) / sqrt(1 - 2/pi), l = min(x).
  // Error when x has fewer than 2 elements or the result is not a finite l < u.
  void calibrate(const Tensor& x) override;
  // {"kind": "lint", "bits", "role", "granularity": "tensor", "estimator", the estimator's
  // numbers}.
  core::Json describe() const override;
  // Throws Error for estimator numbers outside their formula's domain (uniform_math.hpp).
  void set_estimator(const Estimator& estimator) override;
  // d out / d D: 2 for weights (out = 2 D - 1), 1 for activations.
  double ewgs_unit() const override { return role_ == Role::kWeight ? 2.0 : 1.0; }

  Variable& lower() { return lower_; }
  Variable& upper() { return upper_; }

 private:
  // The current (l, u); Error unless finite with l < u.
  std::pair<float, float> interval() const;

  Role role_;
  int bits_;
  Variable lower_;
  Variable upper_;
};

}  // namespace bitgrad::quant
