// lsq.hpp: LsqQuantizer, Learned Step Size Quantization (Esser et al., ICLR 2020): a learnable step
// s, signed codes for weights and unsigned codes for activations, and the gradient scale
// 1/sqrt(numel * Qp) on the step's gradient.
// Not here: the code function (quant/uniform_math.hpp: lsq_bounds, lsq_code).
#pragma once

#include "quant/quantizer.hpp"

namespace bitgrad::quant {

// Forward (b bits, per tensor): weights Qn = 2^(b-1), Qp = 2^(b-1) - 1; activations Qn = 0,
//   Qp = 2^b - 1.  v = x / s, code = round(clamp(v, -Qn, Qp)), out = s * code exactly in float32.
// Code map: scale s, zero_point 0, codes -Qn..Qp.
// Pseudo-gradient, with G = estimator_grad(p, p_q, 1/(Qn+Qp), g) on normalised positions
//   p = (v + Qn)/(Qn + Qp), p_q = (code + Qn)/(Qn + Qp) (STE: G = g):
//     inside (-Qn <= v <= Qp):  dx = G,  ds = g code - G v
//     below (v < -Qn):          dx = 0,  ds = -Qn g
//     above (v > Qp):           dx = 0,  ds =  Qp g
//   ds summed over elements and multiplied by the gradient scale 1/sqrt(numel(x) Qp). With STE the
//   inside term is the paper's g (round(v) - v); with another estimator the rounding's derivative
//   in ds is the estimator's too (d(s round(x/s))/ds = round(v) - round'(v) v). numel(x) is the
//   whole tensor (for activations: the batch included), as in common LSQ code; the paper's N_F
//   counts the features of one example.
// Parameter: "step" (shape [1], ParamKind::kBias: no weight decay), 1 until calibrate(); every
//   forward checks that it is finite and > 0 (Error naming the value otherwise).
// Estimators: STE (default), EWGS, DSQ, DAQ. bits in 2..8, else Error.
class LsqQuantizer final : public TensorQuantizer {
 public:
  LsqQuantizer(Role role, int bits);

  Variable fake_quant(const Variable& x) override;
  Encoded encode(const Tensor& x) const override;
  int bits() const override { return bits_; }
  // The paper's initialisation s = 2 mean|x| / sqrt(Qp); Error when that is not finite and > 0
  // (e.g. x all zeros).
  void calibrate(const Tensor& x) override;
  // {"kind": "lsq", "bits", "role", "granularity": "tensor", "estimator", the estimator's numbers,
  // "qn", "qp"}.
  core::Json describe() const override;
  // Throws Error for estimator numbers outside their formula's domain (uniform_math.hpp).
  void set_estimator(const Estimator& estimator) override;
  // d out / d p (p = (code + Qn)/(Qn + Qp) the normalised position the estimator sees) = s (Qn +
  // Qp).
  double ewgs_unit() const override;

  Variable& step() { return step_; }

 private:
  float checked_step() const;  // Error unless finite and > 0

  Role role_;
  int bits_;
  Variable step_;
};

}  // namespace bitgrad::quant
