// batch_norm.hpp: BatchNorm1d ([N, C]) and BatchNorm2d ([N, C, H, W]) layers: learnable gamma ("weight")
// and beta ("bias"), buffers running_mean / running_var, and the counter num_batches_tracked (saved as
// an I64 scalar, as PyTorch does). Forward calls autograd::batch_norm with training = is_training().
// Optionally records the mean and variance of its last input, for data-free distillation (GDFQ's BN
// statistics loss). Not here: momentum = None (cumulative averages), affine = false, SyncBN.
#pragma once

#include <cstdint>

#include "autograd/ops.hpp"
#include "nn/module.hpp"

namespace bitgrad::nn {

struct BatchNormConfig {
  float momentum = 0.1f;  // running = (1 - momentum) running + momentum batch (PyTorch convention)
  float eps = 1e-5f;
};

// Per-channel statistics of a BN layer's input, [C] each, as differentiable Variables (their graph
// reaches back to whatever produced the input, e.g. a generator).
struct BatchNormInputStats {
  Variable mean;  // mean over N (and H, W)
  Variable var;   // biased variance over the same axes
};

// kDims = 1: input [N, C]; kDims = 2: input [N, C, H, W]. Use the aliases BatchNorm1d / BatchNorm2d.
// Parameters: "weight" = gamma [C] (ParamKind::kNormScale, init 1), "bias" = beta [C] (kNormShift,
// init 0). Buffers: "running_mean" [C] (init 0), "running_var" [C] (init 1). Counter:
// "num_batches_tracked" (+1 per training forward).
template <int kDims>
class BatchNorm final : public Module {
  static_assert(kDims == 1 || kDims == 2, "BatchNorm: kDims is 1 ([N, C]) or 2 ([N, C, H, W])");

 public:
  explicit BatchNorm(int64_t num_features, const BatchNormConfig& config = {});

  // Training: normalises with the batch statistics, updates the running statistics in place and
  // counts the batch. Eval: normalises with the running statistics. Throws Error on a wrong rank
  // or channel count. When recording is on, first stores the input statistics (both modes).
  Variable forward(const Variable& x);
  // relu(forward(x) + residual) (residual undefined: relu(forward(x))) as one fused op with the
  // same values, gradients and side effects (running statistics, counter, recorded statistics),
  // fewer passes over memory (autograd/ops/batch_norm_relu.hpp). Throws Error as forward does, or
  // when residual's shape differs from x's.
  Variable forward_relu(const Variable& x, const Variable& residual = Variable());

  int64_t num_features() const { return num_features_; }
  const BatchNormConfig& config() const { return config_; }
  Variable& weight() { return gamma_; }
  const Variable& weight() const { return gamma_; }
  Variable& bias() { return beta_; }
  const Variable& bias() const { return beta_; }
  Tensor& running_mean() { return running_mean_; }
  const Tensor& running_mean() const { return running_mean_; }
  Tensor& running_var() { return running_var_; }
  const Tensor& running_var() const { return running_var_; }
  int64_t num_batches_tracked() const { return num_batches_tracked_; }

  // Turns the recording of input statistics on or off (off by default: it costs two reductions and
  // keeps their graph alive). Turning it off drops the last record.
  void set_record_input_stats(bool on);
  bool records_input_stats() const { return record_input_stats_; }
  // The statistics of the last forward's input; undefined Variables when nothing was recorded.
  const BatchNormInputStats& last_input_stats() const { return last_input_stats_; }

 private:
  int64_t num_features_;
  BatchNormConfig config_;
  Variable gamma_;
  Variable beta_;
  Tensor running_mean_;
  Tensor running_var_;
  int64_t num_batches_tracked_ = 0;
  bool record_input_stats_ = false;
  BatchNormInputStats last_input_stats_;

  // Checks x and records its statistics when asked; the options for this forward.
  autograd::BatchNormOptions prepare(const Variable& x);
};

using BatchNorm1d = BatchNorm<1>;
using BatchNorm2d = BatchNorm<2>;

extern template class BatchNorm<1>;
extern template class BatchNorm<2>;

}  // namespace bitgrad::nn
