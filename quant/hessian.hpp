// hessian.hpp: Hessian traces by Hutchinson's method, and EWGS's delta from them (ALGORITHMS.md §2.3).
//
// Hutchinson: tr(H) = E[v^T H v] for Rademacher v (entries +-1). Hessian-vector products are central
// differences of gradients, H v ~ (g(x + eps v) - g(x - eps v)) / (2 eps): exact for quadratics, and
// bitgrad's autograd has no second derivatives. The stopping rule is the EWGS code's: after each probe,
// stop when |mean_new - mean_old| / (mean_old + 1e-6) < tolerance (mean_old starts at 0), at most
// max_probes probes; the estimate is the mean of the recorded v^T H v.
//
// EWGS delta (update_grad_scales): for each quantizer output x_q of the model (the weight and the input
// of every quantized layer whose quantizer uses the EWGS estimator), on each of K batches,
//   contribution = (trace / numel(x_q)) / (3 * std(dL/dx_q))   (unbiased std, in EWGS's normalised
//   units: TensorQuantizer::ewgs_unit() converts), delta = max(0, mean of the K contributions).
// Deviations from the official code, both for cost on a CPU: all quantizers are probed at once (each
// with its own v; the cross terms v_k^T H_kj v_j have zero mean, so each estimate stays unbiased, with
// more variance), and every probe costs two forward/backward passes rather than one double-backward.
// The model's buffers and counters (BN running statistics, min-max EMA ranges) are restored afterwards,
// so the estimation leaves no side effect (the official code updates BN three extra times).
// Not here: when to update (the training loop: every N epochs, from the CLI).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "autograd/variable.hpp"
#include "core/rng.hpp"
#include "core/tensor.hpp"
#include "nn/module.hpp"

namespace bitgrad::quant {

struct HutchinsonOptions {
  int max_probes = 50;      // the EWGS code's 50
  double tolerance = 1e-3;  // relative change of the running mean that stops the probes
  float epsilon = 1e-3f;    // central-difference step
};

struct TraceEstimate {
  double trace = 0.0;
  int probes = 0;
};

// The trace of the Hessian of a scalar function at x, given its gradient: grad(x) -> dF/dx (same
// shape as x). Throws Error when grad returns another shape.
TraceEstimate hutchinson_trace(const std::function<core::Tensor(const core::Tensor&)>& grad,
                               const core::Tensor& x, core::Rng& rng, const HutchinsonOptions& options);

// One delta per quantizer that uses EWGS, in quant::quantized_layers() order, weight before input.
struct EwgsDelta {
  std::string name;  // e.g. "layer1.0.conv1.quant.weight"
  float delta = 0.0f;
  double trace_per_element = 0.0;  // mean over the batches, in normalised units
  int probes = 0;                  // the largest probe count over the batches
};

// Estimates EWGS's delta for every EWGS quantizer of `model` over `batches` calls of `loss`
// (loss(k) runs batch k through the model and returns the scalar loss; the model's mode is the
// caller's: EWGS uses train mode), sets it on the quantizers (TensorQuantizer::set_estimator) and
// returns the values. Returns an empty list when no quantizer uses EWGS.
std::vector<EwgsDelta> update_ewgs_deltas(nn::Module& model, int batches,
                                          const std::function<autograd::Variable(int)>& loss,
                                          core::Rng& rng, const HutchinsonOptions& options = {});

}  // namespace bitgrad::quant
