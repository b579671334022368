// pact.hpp: PactQuantizer, PACT's activation quantizer (Choi et al. 2018): a learnable clipping
// value alpha and a 2^b-level uniform grid on [0, alpha].
// Not here: weight quantization (PACT pairs with DoReFa weights; use another quantizer), the code
// function (quant/uniform_math.hpp: pact_scale, pact_code).
#pragma once

#include "quant/quantizer.hpp"

namespace bitgrad::quant {

// Forward (activations only; b bits, L = 2^b, per tensor):
//   y = clamp(x, 0, alpha), code = round(y (L-1) / alpha), out = code * alpha / (L-1)
//   computed as scale = alpha / (L-1) (one float), code = clamp(round(x / scale), 0, L-1),
//   out = scale * code exactly in float32.
// Code map: scale alpha/(L-1), zero_point 0, codes 0..L-1.
// Pseudo-gradient (PACT paper, round through the estimator):
//   dx     = g for 0 <= x <= alpha, else 0; inside, times the estimator's factor (positions
//            normalised to [0, 1]: p = x/scale/(L-1), p_q = code/(L-1), step 1/(L-1))
//   dalpha = sum of g over elements with x >= alpha (not affected by the estimator)
// Parameter: "alpha" (shape [1], ParamKind::kBias: no weight decay here; the PACT paper applies L2
//   regularisation to alpha, which is the optimizer groups' call). Every forward checks that alpha
//   is finite and > 0 (Error naming the value otherwise). calibrate() keeps alpha_init (PACT has no
//   data-dependent initialisation).
// Estimators: STE (default), EWGS, DSQ, DAQ. bits in 2..8, else Error.
class PactQuantizer final : public TensorQuantizer {
 public:
  explicit PactQuantizer(int bits, float alpha_init = 6.0f);

  Variable fake_quant(const Variable& x) override;
  Encoded encode(const Tensor& x) const override;
  int bits() const override { return bits_; }
  // {"kind": "pact", "bits", "role": "activation", "granularity": "tensor", "estimator", the
  // estimator's numbers}.
  core::Json describe() const override;
  // Throws Error for estimator numbers outside their formula's domain (uniform_math.hpp).
  void set_estimator(const Estimator& estimator) override;
  // d out / d p (p = code/(L-1) the normalised position the estimator sees) = alpha.
  double ewgs_unit() const override { return static_cast<double>(alpha_.value().item()); }

  Variable& alpha() { return alpha_; }

 private:
  float checked_alpha() const;  // Error unless finite and > 0

  int bits_;
  Variable alpha_;
};

}  // namespace bitgrad::quant
