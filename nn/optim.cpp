// optim.cpp: SGD with momentum, Nesterov and weight decay (torch.optim.SGD semantics).
#include "nn/optim.hpp"

#include <cassert>

#include "core/error.hpp"

namespace bitgrad::nn {

std::vector<ParamGroup> decay_groups(const Module& module, float weight_decay) {
  const ParameterGroups named = module.parameter_groups();
  std::vector<ParamGroup> groups(2);
  groups[0].weight_decay = weight_decay;
  for (const NamedParameter& p : named.decay) groups[0].params.push_back(p.variable);
  for (const NamedParameter& p : named.no_decay) groups[1].params.push_back(p.variable);
  return groups;
}

Sgd::Sgd(std::vector<ParamGroup> groups, const SgdOptions& options)
    : groups_(std::move(groups)), options_(options) {
  check(options.lr >= 0.0f, "Sgd: expected lr >= 0");
  check(options.momentum >= 0.0f, "Sgd: expected momentum >= 0");
  check(!options.nesterov || options.momentum > 0.0f, "Sgd: Nesterov momentum needs momentum > 0");
  momentum_.resize(groups_.size());
  for (size_t i = 0; i < groups_.size(); ++i) momentum_[i].resize(groups_[i].params.size());
}

Sgd::Sgd(const std::vector<autograd::Variable>& params, const SgdOptions& options)
    : Sgd(std::vector<ParamGroup>{ParamGroup{params, options.weight_decay, 1.0f}}, options) {}

void Sgd::step() {
  const float mu = options_.momentum;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const ParamGroup& group = groups_[gi];
    const float lr = options_.lr * group.lr_scale;
    const float wd = group.weight_decay;
    for (size_t pi = 0; pi < group.params.size(); ++pi) {
      const autograd::Variable& p = group.params[pi];
      const core::Tensor& grad = p.grad();
      if (!grad.defined()) continue;
      core::Tensor w = p.value();
      assert(w.is_contiguous() && grad.is_contiguous());
      float* pw = w.data();
      const float* pg = grad.data();
      const int64_t n = w.numel();
      core::Tensor& buf = momentum_[gi][pi];
      const bool first = !buf.defined();
      if (mu != 0.0f && first) buf = core::Tensor(w.shape());
      float* pb = mu != 0.0f ? buf.data() : nullptr;
      for (int64_t i = 0; i < n; ++i) {
        float d = pg[i] + wd * pw[i];
        if (pb != nullptr) {
          pb[i] = first ? d : mu * pb[i] + d;
          d = options_.nesterov ? d + mu * pb[i] : pb[i];
        }
        pw[i] -= lr * d;
      }
    }
  }
}

void Sgd::zero_grad() {
  for (ParamGroup& group : groups_)
    for (autograd::Variable& p : group.params) p.zero_grad();
}

}  // namespace bitgrad::nn
