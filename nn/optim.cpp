// optim.cpp: the Optimizer base (groups, lr, state export/import), SGD with momentum, Nesterov and
// weight decay (torch.optim.SGD) and Adam / AdamW (torch.optim.Adam / AdamW, PyTorch 1.13).
#include "nn/optim.hpp"

#include <cassert>
#include <cmath>
#include <string>

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

// ---- Optimizer ----------------------------------------------------------------------------------

Optimizer::Optimizer(std::vector<ParamGroup> groups, float lr, size_t buffer_count)
    : groups_(std::move(groups)) {
  set_lr(lr);
  state_.resize(groups_.size());
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const ParamGroup& group = groups_[gi];
    check_lazy(group.weight_decay >= 0.0f && group.lr_scale >= 0.0f, [&] {
      return "Optimizer: group " + std::to_string(gi) +
             " expects weight_decay >= 0 and lr_scale >= 0, got " +
             std::to_string(group.weight_decay) + " and " + std::to_string(group.lr_scale);
    });
    for (size_t pi = 0; pi < group.params.size(); ++pi)
      check_lazy(group.params[pi].defined(), [&] {
        return "Optimizer: group " + std::to_string(gi) + " parameter " + std::to_string(pi) +
               " is an undefined Variable";
      });
    state_[gi].resize(group.params.size(), ParamState{0, std::vector<core::Tensor>(buffer_count)});
  }
}

void Optimizer::zero_grad() {
  for (ParamGroup& group : groups_)
    for (autograd::Variable& p : group.params) p.zero_grad();
}

void Optimizer::set_lr(float lr) {
  check_lazy(std::isfinite(lr) && lr >= 0.0f, [&] {
    return "Optimizer::set_lr: expected a finite lr >= 0, got " + std::to_string(lr);
  });
  lr_ = lr;
}

OptimizerState Optimizer::state() const {
  OptimizerState out{lr_, steps_, state_};
  for (auto& group : out.params)
    for (ParamState& p : group)
      for (core::Tensor& b : p.buffers)
        if (b.defined()) b = b.clone();
  return out;
}

void Optimizer::load_state(const OptimizerState& state) {
  const auto where = [](size_t gi, size_t pi) {
    return "group " + std::to_string(gi) + " parameter " + std::to_string(pi);
  };
  check_lazy(state.params.size() == groups_.size(), [&] {
    return "Optimizer::load_state: expected " + std::to_string(groups_.size()) + " groups, got " +
           std::to_string(state.params.size());
  });
  check_lazy(state.steps >= 0, [&] {
    return "Optimizer::load_state: expected steps >= 0, got " + std::to_string(state.steps);
  });
  const size_t buffer_count = buffer_names().size();
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    check_lazy(state.params[gi].size() == groups_[gi].params.size(), [&] {
      return "Optimizer::load_state: group " + std::to_string(gi) + " expects " +
             std::to_string(groups_[gi].params.size()) + " parameters, got " +
             std::to_string(state.params[gi].size());
    });
    for (size_t pi = 0; pi < groups_[gi].params.size(); ++pi) {
      const ParamState& p = state.params[gi][pi];
      check_lazy(p.steps >= 0, [&] {
        return "Optimizer::load_state: " + where(gi, pi) + " has steps " + std::to_string(p.steps) +
               ", expected >= 0";
      });
      check_lazy(p.buffers.size() == buffer_count, [&] {
        return "Optimizer::load_state: " + where(gi, pi) + " expects " +
               std::to_string(buffer_count) + " buffers, got " + std::to_string(p.buffers.size());
      });
      const core::Shape& shape = groups_[gi].params[pi].shape();
      for (size_t bi = 0; bi < buffer_count; ++bi) {
        const core::Tensor& b = p.buffers[bi];
        check_lazy(b.defined() || p.steps == 0, [&] {
          return "Optimizer::load_state: " + where(gi, pi) + " has taken " +
                 std::to_string(p.steps) + " steps but has no buffer " + buffer_names()[bi];
        });
        check_lazy(!b.defined() || b.shape() == shape, [&] {
          return "Optimizer::load_state: " + where(gi, pi) + " buffer " + buffer_names()[bi] +
                 " expects " + shape.to_string() + ", got " + b.shape().to_string();
        });
      }
    }
  }
  set_lr(state.lr);
  steps_ = state.steps;
  state_ = state.params;
  for (auto& group : state_)
    for (ParamState& p : group)
      for (core::Tensor& b : p.buffers)
        if (b.defined()) b = b.contiguous().clone();
}

// ---- SGD ----------------------------------------------------------------------------------------

Sgd::Sgd(std::vector<ParamGroup> groups, const SgdOptions& options)
    : Optimizer(std::move(groups), options.lr, options.momentum != 0.0f ? 1 : 0),
      options_(options) {
  check_lazy(options.momentum >= 0.0f, [&] {
    return "Sgd: expected momentum >= 0, got " + std::to_string(options.momentum);
  });
  check(!options.nesterov || options.momentum > 0.0f, "Sgd: Nesterov momentum needs momentum > 0");
}

Sgd::Sgd(const std::vector<autograd::Variable>& params, const SgdOptions& options)
    : Sgd(std::vector<ParamGroup>{ParamGroup{params, options.weight_decay, 1.0f}}, options) {}

std::vector<std::string> Sgd::buffer_names() const {
  if (options_.momentum != 0.0f) return {"momentum"};
  return {};
}

core::Json Sgd::options() const {
  return core::Json::object()
      .set("lr", options_.lr)
      .set("momentum", options_.momentum)
      .set("weight_decay", options_.weight_decay)
      .set("nesterov", options_.nesterov);
}

void Sgd::step() {
  const float mu = options_.momentum;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const ParamGroup& group = groups_[gi];
    const float lr = lr_ * group.lr_scale;
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
      ParamState& st = state_[gi][pi];
      float* pb = nullptr;
      const bool first = st.steps == 0;
      if (mu != 0.0f) {
        if (!st.buffers[0].defined()) st.buffers[0] = core::Tensor(w.shape());
        pb = st.buffers[0].data();
      }
      for (int64_t i = 0; i < n; ++i) {
        float d = pg[i] + wd * pw[i];
        if (pb != nullptr) {
          pb[i] = first ? d : mu * pb[i] + d;
          d = options_.nesterov ? d + mu * pb[i] : pb[i];
        }
        pw[i] -= lr * d;
      }
      ++st.steps;
    }
  }
  ++steps_;
}

// ---- Adam / AdamW -------------------------------------------------------------------------------

Adam::Adam(std::vector<ParamGroup> groups, const AdamOptions& options)
    : Optimizer(std::move(groups), options.lr, 2), options_(options) {
  check_lazy(
      options.beta1 >= 0.0 && options.beta1 < 1.0 && options.beta2 >= 0.0 && options.beta2 < 1.0,
      [&] {
        return "Adam: expected betas in [0, 1), got (" + std::to_string(options.beta1) + ", " +
               std::to_string(options.beta2) + ")";
      });
  check_lazy(options.eps >= 0.0f,
             [&] { return "Adam: expected eps >= 0, got " + std::to_string(options.eps); });
}

Adam::Adam(const std::vector<autograd::Variable>& params, const AdamOptions& options)
    : Adam(std::vector<ParamGroup>{ParamGroup{params, options.weight_decay, 1.0f}}, options) {}

core::Json Adam::options() const {
  return core::Json::object()
      .set("lr", options_.lr)
      .set("beta1", options_.beta1)
      .set("beta2", options_.beta2)
      .set("eps", options_.eps)
      .set("weight_decay", options_.weight_decay)
      .set("decoupled_weight_decay", options_.decoupled_weight_decay);
}

void Adam::step() {
  const double beta1 = options_.beta1, beta2 = options_.beta2;
  // PyTorch passes these as Python floats (doubles) that the float32 kernels round once.
  const auto b1 = static_cast<float>(beta1), c1 = static_cast<float>(1.0 - beta1);
  const auto b2 = static_cast<float>(beta2), c2 = static_cast<float>(1.0 - beta2);
  const float eps = options_.eps;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const ParamGroup& group = groups_[gi];
    const double lr = static_cast<double>(lr_) * static_cast<double>(group.lr_scale);
    const float wd = group.weight_decay;
    const bool decoupled = options_.decoupled_weight_decay;
    for (size_t pi = 0; pi < group.params.size(); ++pi) {
      const autograd::Variable& p = group.params[pi];
      const core::Tensor& grad = p.grad();
      if (!grad.defined()) continue;
      core::Tensor w = p.value();
      assert(w.is_contiguous() && grad.is_contiguous());
      ParamState& st = state_[gi][pi];
      for (core::Tensor& b : st.buffers)
        if (!b.defined()) b = core::Tensor(w.shape());  // zeros
      const int64_t t = ++st.steps;
      const double bias1 = 1.0 - std::pow(beta1, static_cast<double>(t));
      const double bias2 = 1.0 - std::pow(beta2, static_cast<double>(t));
      const auto step_size = static_cast<float>(lr / bias1);
      const auto bias2_sqrt = static_cast<float>(std::sqrt(bias2));
      const auto decay = static_cast<float>(1.0 - lr * static_cast<double>(wd));
      float* pw = w.data();
      const float* pg = grad.data();
      float* pm = st.buffers[0].data();
      float* pv = st.buffers[1].data();
      const int64_t n = w.numel();
      for (int64_t i = 0; i < n; ++i) {
        float g = pg[i];
        if (decoupled) {
          pw[i] *= decay;
        } else {
          g += wd * pw[i];
        }
        pm[i] = b1 * pm[i] + c1 * g;
        pv[i] = b2 * pv[i] + c2 * g * g;
        const float denom = std::sqrt(pv[i]) / bias2_sqrt + eps;
        pw[i] -= step_size * (pm[i] / denom);
      }
    }
  }
  ++steps_;
}

double clip_grad_norm(const std::vector<autograd::Variable>& params, double max_norm) {
  check_lazy(std::isfinite(max_norm) && max_norm > 0.0, [&] {
    return "clip_grad_norm: expected a positive, finite max_norm, got " + std::to_string(max_norm);
  });
  double sum = 0.0;
  for (const autograd::Variable& p : params) {
    if (!p.grad().defined()) continue;
    const core::Tensor g = p.grad().contiguous();
    for (int64_t i = 0; i < g.numel(); ++i) sum += static_cast<double>(g.data()[i]) * g.data()[i];
  }
  const double norm = std::sqrt(sum);
  const double factor = max_norm / (norm + 1e-6);
  if (factor >= 1.0) return norm;
  for (autograd::Variable p : params) {
    if (!p.grad().defined()) continue;
    const core::Tensor g = p.grad().contiguous();
    core::Tensor scaled = core::Tensor::empty(g.shape());  // a new tensor: the gradient may be shared
    for (int64_t i = 0; i < g.numel(); ++i) scaled.data()[i] = static_cast<float>(g.data()[i] * factor);
    p.mutable_grad() = scaled;
  }
  return norm;
}

}  // namespace bitgrad::nn
