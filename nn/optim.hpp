// optim.hpp: optimizers that update Variables in place from their accumulated gradients.
// Sgd follows torch.optim.SGD exactly (weight decay added to the gradient, then momentum buffer
// b = mu*b + g (first step: b = g), Nesterov g + mu*b, then w -= lr*update). Parameter groups carry their own
// learning-rate multiplier and weight decay (e.g. no decay on BN and biases). The step is the single
// place where a data-parallel all-reduce of gradients would go (DESIGN.md section 8).
// Not here: learning-rate schedules (the caller sets lr each step), Adam (a later issue).
#pragma once

#include <vector>

#include "autograd/variable.hpp"
#include "nn/module.hpp"

namespace bitgrad::nn {

struct ParamGroup {
  std::vector<autograd::Variable> params;
  float weight_decay = 0.0f;
  float lr_scale = 1.0f;  // this group's lr = optimizer lr * lr_scale
};

// Two groups from a module: conv/linear weights with `weight_decay`, and BN scales/shifts and biases
// without decay (Module::parameter_groups decides which is which).
std::vector<ParamGroup> decay_groups(const Module& module, float weight_decay);

struct SgdOptions {
  float lr = 0.1f;
  float momentum = 0.0f;
  float weight_decay = 0.0f;  // default for groups built from a flat parameter list
  bool nesterov = false;
};

class Sgd {
 public:
  Sgd(std::vector<ParamGroup> groups, const SgdOptions& options);
  Sgd(const std::vector<autograd::Variable>& params, const SgdOptions& options);

  // One update of every parameter that has a gradient (parameters without one are skipped).
  void step();
  // Clears every parameter's gradient.
  void zero_grad();
  void set_lr(float lr) { options_.lr = lr; }
  float lr() const { return options_.lr; }
  const std::vector<ParamGroup>& groups() const { return groups_; }

 private:
  std::vector<ParamGroup> groups_;
  SgdOptions options_;
  std::vector<std::vector<core::Tensor>> momentum_;  // per group, per parameter; undefined until used
};

}  // namespace bitgrad::nn
