// minmax.hpp: MinMaxQuantizer, the asymmetric uniform quantizer of GDFQ (inherited from ZeroQ),
// ALGORITHMS.md §5.3: a 2^b-level grid over the observed range [m, M], per tensor or per output
// channel for weights, per tensor with a bias-corrected EMA range for activations.
// Not here: the code function itself (quant/uniform_math.hpp: minmax_affine, minmax_code), which
// layers get one (quant/policy.hpp).
#pragma once

#include <cstdint>
#include <utility>

#include "quant/quantizer.hpp"

namespace bitgrad::quant {

// Forward (b bits, L = 2^b): scale = width / (L-1) with width = max(M - m, 1e-8), zero_point =
// -round(m / scale), code = clamp(round(x / scale + zero_point), 0, L-1), value = scale * (code -
// zero_point), exactly in float32 (GDFQ's (j + round(S m)) / S with S = 1/scale; see
// uniform_math.hpp for the extra width floor on near-constant ranges far from 0).
//   Code map: unsigned codes 0..L-1 (levels), one scale and zero_point per tensor or per channel.
//   The grid contains 0 exactly whenever m <= 0 <= M.
// Range [m, M]:
//   Weights: the current min and max of the whole tensor (kPerTensor) or of each output channel
//     (kPerChannel: dimension 0, e.g. a Conv2d's O or a Linear's output row), recomputed every
//     forward in training and eval alike. No state.
//   Activations (kPerTensor only; kPerChannel throws Error): an EMA of each training batch's min
//     and max with momentum beta, bias-corrected the standard way: raw <- beta raw + (1 - beta)
//     batch (raw starts at 0, kept in buffers "ema_min" / "ema_max", shape [1]), t <- t + 1
//     (counter "ema_steps"), range = raw / (1 - beta^t). DEVIATION from GDFQ, whose code divides
//     the already corrected value again every step (a transient of up to ~3900x, ALGORITHMS.md
//     §5.3). A training forward first updates the EMA with its own batch, then quantizes with the
//     updated range (as GDFQ's QuantAct). While frozen (freeze(true)) or in eval mode the stored
//     range is used unchanged; using it before any training batch has been seen throws Error.
// Pseudo-gradient: GDFQ's pure straight-through estimator, dx = g for EVERY element (no clip mask).
//   With a non-STE estimator (EWGS / DSQ / DAQ) the factor of estimator_grad() applies where the
//   clamp does not bind (-1/2 <= x/scale + zero_point <= (L-1) + 1/2), with positions normalised to
//   [0, 1] (p = t/(L-1), p_q = code/(L-1), step 1/(L-1)); elsewhere dx = g. No parameters are
//   learned.
// Estimators: STE (default), EWGS, DSQ, DAQ. bits in 2..8, else Error.
class MinMaxQuantizer final : public TensorQuantizer {
 public:
  // momentum: beta of the activation EMA, in [0, 1) (ignored for weights).
  MinMaxQuantizer(Role role, int bits, Granularity granularity, float momentum = 0.9f);

  Variable fake_quant(const Variable& x) override;
  // Weights: the codes of x under its own current range. Activations: under the stored EMA range
  // (Error before any training batch); no state update.
  Encoded encode(const Tensor& x) const override;
  int bits() const override { return bits_; }
  // {"kind": "minmax", "bits", "role", "granularity": "tensor"|"channel", "estimator", the
  // estimator's numbers, and for activations "momentum", "frozen", "ema_steps"}.
  core::Json describe() const override;
  // Throws Error for estimator numbers outside their formula's domain (uniform_math.hpp).
  void set_estimator(const Estimator& estimator) override;
  // d out / d p (p the normalised position the estimator sees) = scale * (L-1), the range width:
  // activations the stored range's (1 before any), weights the last forward's (per channel: the
  // root mean square of the channel widths, one number for the per-tensor Hessian trace).
  double ewgs_unit() const override;

  // Frozen activation ranges are no longer updated by training forwards (GDFQ's freeze/unfreeze);
  // not saved in checkpoints (a training-schedule switch). No effect on weights.
  void freeze(bool frozen) { frozen_ = frozen; }
  bool frozen() const { return frozen_; }
  // The activation range in use, raw EMA / (1 - beta^t) ({m, M}); Error before any training batch.
  // For weights: Error (their range is the tensor's own).
  std::pair<float, float> activation_range() const;

 private:
  Role role_;
  int bits_;
  Granularity granularity_;
  float momentum_;
  bool frozen_ = false;
  Tensor ema_min_;  // [1], raw (uncorrected) EMA of batch minima; activations only
  Tensor ema_max_;  // [1]
  int64_t ema_steps_ = 0;
  double weight_unit_ = 1.0;  // ewgs_unit() of weights, from the last fake_quant
};

}  // namespace bitgrad::quant
