// l2_normalize.cpp: F.normalize over dimension 1 from autograd primitives (no new op needed).
#include "distill/l2_normalize.hpp"

#include <cmath>
#include <limits>
#include <string>

#include "autograd/ops.hpp"
#include "core/error.hpp"

namespace bitgrad::distill {

autograd::Variable l2_normalize_rows(const autograd::Variable& x, float eps) {
  check_lazy(x.rank() == 2, [&] {
    return "l2_normalize_rows: expected a 2-D input [N, D], got " + x.shape().to_string();
  });
  check_lazy(eps > 0.0f && std::isfinite(eps), [&] {
    return "l2_normalize_rows: expected a positive finite eps, got " + std::to_string(eps);
  });
  // Clamping the squared norm (not the norm) keeps sqrt's backward finite at a zero row.
  const autograd::Variable squared = autograd::sum(autograd::pow(x, 2.0f), {1}, true);  // [N, 1]
  const autograd::Variable norm =
      autograd::sqrt(autograd::clamp(squared, eps * eps, std::numeric_limits<float>::max()));
  return autograd::div(x, norm);
}

}  // namespace bitgrad::distill
