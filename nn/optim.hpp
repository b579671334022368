// optim.hpp: optimizers that update Variables in place from their accumulated gradients, behind one
// abstract interface (Optimizer) that a trainer holds without templates. Sgd follows
// torch.optim.SGD and Adam follows torch.optim.Adam / AdamW (PyTorch 1.13), checked against golden
// fixtures. Parameter groups carry their own learning-rate multiplier and weight decay (e.g. no
// decay on BN and biases). step() is the single place where a data-parallel all-reduce of gradients
// would go (DESIGN.md section 8). State export/import (per-parameter buffers and step counters)
// feeds nn/checkpoint.hpp. Not here: learning-rate schedules (nn/schedule.hpp; the caller calls
// set_lr), AMSGrad, gradient clipping, sparse gradients.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "autograd/variable.hpp"
#include "core/json.hpp"
#include "core/tensor.hpp"
#include "nn/module.hpp"

namespace bitgrad::nn {

struct ParamGroup {
  std::vector<autograd::Variable> params;
  float weight_decay = 0.0f;
  float lr_scale = 1.0f;  // this group's lr = optimizer lr * lr_scale
};

// Two groups from a module: conv/linear weights with `weight_decay`, and BN scales/shifts and
// biases without decay (Module::parameter_groups decides which is which).
std::vector<ParamGroup> decay_groups(const Module& module, float weight_decay);

// What an optimizer keeps for one parameter. `buffers[i]` is the buffer named buffer_names()[i]
// (same shape as the parameter), undefined until the parameter's first update creates it.
struct ParamState {
  int64_t steps = 0;  // updates applied to this parameter (it is skipped while it has no gradient)
  std::vector<core::Tensor> buffers;
};

// An optimizer's complete mutable state (the hyperparameters are constructor arguments, not state).
struct OptimizerState {
  float lr = 0.0f;
  int64_t steps = 0;                            // step() calls
  std::vector<std::vector<ParamState>> params;  // [group][index], aligned with groups()
};

// The interface a trainer holds (std::unique_ptr<Optimizer>). Not copyable or movable: it refers to
// the model's parameters, and a copy would silently fork the state. Not thread-safe.
class Optimizer {
 public:
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;
  virtual ~Optimizer() = default;

  // One update of every parameter that has a gradient (parameters without one are skipped, and
  // their step counters do not advance, as in PyTorch). Counts one step() call.
  virtual void step() = 0;
  // "sgd" or "adam" (AdamW is "adam" with decoupled decay; see options()).
  virtual std::string_view kind() const = 0;
  // Names of the per-parameter buffers, e.g. {"momentum"} or {"exp_avg", "exp_avg_sq"}.
  virtual std::vector<std::string> buffer_names() const = 0;
  // The hyperparameters as a JSON object (for checkpoint metadata and logs).
  virtual core::Json options() const = 0;

  // Clears every parameter's gradient.
  void zero_grad();
  // The base learning rate; each group uses lr() * lr_scale. Throws Error when lr < 0 or not
  // finite.
  void set_lr(float lr);
  float lr() const { return lr_; }
  int64_t steps() const { return steps_; }
  const std::vector<ParamGroup>& groups() const { return groups_; }

  // A deep copy of the state (buffers are cloned).
  OptimizerState state() const;
  // Replaces the state with a copy of `state`. Throws Error (and changes nothing) when its layout
  // does not match this optimizer: group or parameter counts, buffer counts, a buffer whose shape
  // differs from its parameter's, a missing buffer on a parameter that has taken steps, or negative
  // counters.
  void load_state(const OptimizerState& state);

 protected:
  // `buffer_count` is buffer_names().size() of the derived optimizer.
  Optimizer(std::vector<ParamGroup> groups, float lr, size_t buffer_count);

  std::vector<ParamGroup> groups_;
  float lr_ = 0.0f;
  int64_t steps_ = 0;
  std::vector<std::vector<ParamState>> state_;  // [group][index]
};

struct SgdOptions {
  float lr = 0.1f;
  float momentum = 0.0f;
  float weight_decay = 0.0f;  // default for groups built from a flat parameter list
  bool nesterov = false;
};

// torch.optim.SGD (dampening 0): d = g + wd * w; with momentum b = mu * b + d (first update: b = d)
// and d = Nesterov ? d + mu * b : b; then w -= lr * lr_scale * d. Buffer: "momentum" (only when
// momentum > 0). Float32 arithmetic, element by element, in that order.
class Sgd final : public Optimizer {
 public:
  // Throws Error when lr < 0, momentum < 0, or Nesterov without momentum.
  Sgd(std::vector<ParamGroup> groups, const SgdOptions& options);
  Sgd(const std::vector<autograd::Variable>& params, const SgdOptions& options);

  void step() override;
  std::string_view kind() const override { return "sgd"; }
  std::vector<std::string> buffer_names() const override;
  core::Json options() const override;

 private:
  SgdOptions options_;
};

struct AdamOptions {
  float lr = 1e-3f;
  // Double, like PyTorch's Python floats: 1 - 0.999f is 1.3e-5 away from 1 - 0.999, which shows
  // in exp_avg_sq.
  double beta1 = 0.9;
  double beta2 = 0.999;
  float eps = 1e-8f;
  float weight_decay = 0.0f;            // default for groups built from a flat parameter list
  bool decoupled_weight_decay = false;  // true: AdamW
};

// torch.optim.Adam (amsgrad off), per parameter with t = its step count after incrementing:
//   Adam:  g += wd * w
//   AdamW: w *= 1 - lr * wd                (decoupled decay, applied before the moments)
//   m = beta1 * m + (1 - beta1) * g
//   v = beta2 * v + (1 - beta2) * g * g
//   w -= (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// with lr the group's lr (lr() * lr_scale) and wd the group's weight decay. The bias corrections
// are computed in double, the element-wise update in float32. Buffers: "exp_avg" (m), "exp_avg_sq"
// (v).
class Adam final : public Optimizer {
 public:
  // Throws Error unless lr >= 0, 0 <= beta1, beta2 < 1, eps >= 0, weight decay >= 0.
  Adam(std::vector<ParamGroup> groups, const AdamOptions& options);
  Adam(const std::vector<autograd::Variable>& params, const AdamOptions& options);

  void step() override;
  std::string_view kind() const override { return "adam"; }
  std::vector<std::string> buffer_names() const override { return {"exp_avg", "exp_avg_sq"}; }
  core::Json options() const override;

 private:
  AdamOptions options_;
};

// Gradient-norm clipping (torch.nn.utils.clip_grad_norm_ with the L2 norm): with N the L2 norm of all
// the parameters' gradients together, every gradient is multiplied by max_norm / (N + 1e-6) when that is
// below 1, and left alone otherwise. Parameters without a gradient are skipped. Returns N (before
// clipping). Throws Error when max_norm is not positive and finite.
double clip_grad_norm(const std::vector<autograd::Variable>& params, double max_norm);

}  // namespace bitgrad::nn
