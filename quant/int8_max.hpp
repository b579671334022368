// int8_max.hpp: Int8MaxQuantizer, the "8-bit" weight fake quantization that the APoT CIFAR code
// applies to the first conv and the last FC layer (ALGORITHMS.md §1.4), made exact on integer
// codes. Not here: the code function (quant/apot_math.hpp: int8max_code, int8max_scale), which
// layers use it (quant/policy.hpp).
#pragma once

#include <cstdint>
#include <vector>

#include "core/json.hpp"
#include "quant/quantizer.hpp"

namespace bitgrad::quant {

// Int8MaxQuantizer(): weights only, per tensor, no parameters, no state.
//   forward   m = max(w) (the MAXIMUM, not the absolute maximum; detached)
//             code = round(w / m * 127) (half to even, float32, in this order), no clamp
//             out = (m / 127) * code          (the official w_q = round(w / m * 127) / 127 * m)
//   backward  STE: dL/dw = g for every element (no clip range)
// Code map: scale {m / 127} of the tensor being encoded, zero_point {0}, levels = every integer
// from min(-127, lowest code) to 127. Codes never exceed 127 (w <= m), but since nothing is
// clamped, weights below -m give codes below -127: the codes of one tensor need not fit in int8,
// and bits() = 8 is the nominal width only. Estimator: STE only (set_estimator throws Error for the
// others). Errors (bitgrad::Error): a tensor whose maximum is not finite and > 0 (the scale is m /
// 127), a non-finite element, or a minimum so far below -m that codes pass -2^24.
class Int8MaxQuantizer final : public TensorQuantizer {
 public:
  Int8MaxQuantizer();

  Variable fake_quant(const Variable& x) override;
  Encoded encode(const Tensor& x) const override;
  int bits() const override { return 8; }
  // {"kind": "int8max", "bits": 8, "role": "weight", "granularity": "tensor", "estimator": "ste",
  //  "scale": "max/127"}.
  core::Json describe() const override;
  void set_estimator(const Estimator& estimator) override;
};

}  // namespace bitgrad::quant
