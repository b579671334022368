// hessian.cpp: Hutchinson trace estimates by central differences of gradients, and EWGS's delta.
#include "quant/hessian.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.hpp"
#include "core/tensor_ops.hpp"
#include "quant/blocks.hpp"
#include "quant/policy.hpp"
#include "quant/quantizer.hpp"

namespace bitgrad::quant {

namespace {

double dot(const core::Tensor& a, const core::Tensor& b) {
  const core::Tensor ca = a.contiguous(), cb = b.contiguous();
  return quant::dot(ca.data(), cb.data(), ca.numel());
}

double unbiased_std(const core::Tensor& t) {
  const core::Tensor c = t.contiguous();
  const auto s = c.span();
  if (s.size() < 2) return 0.0;
  double mean = 0.0;
  for (float v : s) mean += v;
  mean /= static_cast<double>(s.size());
  double ss = 0.0;
  for (float v : s) ss += (v - mean) * (v - mean);
  return std::sqrt(ss / static_cast<double>(s.size() - 1));
}

// The EWGS code's stopping rule, fed one v^T H v at a time.
class RunningTrace {
 public:
  explicit RunningTrace(double tolerance) : tolerance_(tolerance) {}
  // Adds a sample; returns true when the estimate has converged.
  bool add(double sample) {
    sum_ += sample;
    ++count_;
    const double mean_new = sum_ / count_;
    const bool converged = std::fabs(mean_new - mean_old_) / (mean_old_ + 1e-6) < tolerance_;
    mean_old_ = mean_new;
    return converged;
  }
  double mean() const { return count_ > 0 ? sum_ / count_ : 0.0; }
  int count() const { return count_; }

 private:
  double tolerance_;
  double sum_ = 0.0;
  double mean_old_ = 0.0;
  int count_ = 0;
};

// Saves every buffer and counter of a module, to undo the side effects of extra training forwards.
class StateSnapshot {
 public:
  explicit StateSnapshot(nn::Module& module) : buffers_(module.named_buffers()), counters_(module.named_counters()) {
    for (const nn::NamedBuffer& b : buffers_) buffer_values_.push_back(b.tensor->clone());
    for (const nn::NamedCounter& c : counters_) counter_values_.push_back(*c.value);
  }
  void restore() {
    for (size_t i = 0; i < buffers_.size(); ++i) buffers_[i].tensor->copy_(buffer_values_[i]);
    for (size_t i = 0; i < counters_.size(); ++i) *counters_[i].value = counter_values_[i];
  }

 private:
  std::vector<nn::NamedBuffer> buffers_;
  std::vector<nn::NamedCounter> counters_;
  std::vector<core::Tensor> buffer_values_;
  std::vector<int64_t> counter_values_;
};

// One probed quantizer output.
struct Probe {
  std::string name;
  TensorQuantizer* quantizer = nullptr;
  QuantizedLayer::ProbeSlot slot;
  core::Tensor v;
  core::Tensor g_plus;
  double contribution_sum = 0.0;
  double trace_sum = 0.0;
  int max_probes = 0;
};

}  // namespace

TraceEstimate hutchinson_trace(const std::function<core::Tensor(const core::Tensor&)>& grad,
                               const core::Tensor& x, core::Rng& rng, const HutchinsonOptions& options) {
  check(options.max_probes >= 1 && options.epsilon > 0.0f,
        "hutchinson_trace: expected max_probes >= 1 and epsilon > 0");
  RunningTrace running(options.tolerance);
  for (int p = 0; p < options.max_probes; ++p) {
    const core::Tensor v = rng.rademacher_tensor(x.shape());
    const core::Tensor step = core::mul_scalar(v, options.epsilon);
    const core::Tensor g_plus = grad(core::add(x, step));
    const core::Tensor g_minus = grad(core::sub(x, step));
    check_lazy(g_plus.shape() == x.shape() && g_minus.shape() == x.shape(), [&] {
      return "hutchinson_trace: expected gradients of shape " + x.shape().to_string() + ", got " +
             g_plus.shape().to_string();
    });
    const double vhv = (dot(v, g_plus) - dot(v, g_minus)) / (2.0 * options.epsilon);
    if (running.add(vhv)) break;
  }
  return TraceEstimate{running.mean(), running.count()};
}

std::vector<EwgsDelta> update_ewgs_deltas(nn::Module& model, int batches,
                                          const std::function<autograd::Variable(int)>& loss,
                                          core::Rng& rng, const HutchinsonOptions& options) {
  check(batches >= 1, "update_ewgs_deltas: expected at least one batch");
  const std::vector<QuantizedLayerInfo> layers = quantized_layers(model);
  std::vector<Probe> probes;
  probes.reserve(layers.size() * 2);  // slots are pointed to: no reallocation after this
  std::vector<std::pair<QuantizedLayer*, std::pair<Probe*, Probe*>>> wiring;  // layer -> (input, weight)
  for (const QuantizedLayerInfo& l : layers) {
    Probe* weight = nullptr;
    Probe* input = nullptr;
    if (l.layer->weight().estimator().kind == EstimatorKind::kEwgs) {
      probes.push_back(Probe{l.name + ".quant.weight", &l.layer->weight(), {}, {}, {}, 0.0, 0.0, 0});
      weight = &probes.back();
    }
    if (l.layer->input() != nullptr && l.layer->input()->estimator().kind == EstimatorKind::kEwgs) {
      probes.push_back(Probe{l.name + ".quant.input", l.layer->input(), {}, {}, {}, 0.0, 0.0, 0});
      input = &probes.back();
    }
    if (weight != nullptr || input != nullptr) wiring.push_back({l.layer, {input, weight}});
  }
  if (probes.empty()) return {};

  StateSnapshot snapshot(model);
  const auto attach = [&](bool on) {
    for (auto& [layer, slots] : wiring)
      layer->set_probes(on && slots.first ? &slots.first->slot : nullptr,
                        on && slots.second ? &slots.second->slot : nullptr);
  };
  const auto run = [&](int batch) {
    model.zero_grad();
    loss(batch).backward();
  };
  attach(true);
  try {
    for (int b = 0; b < batches; ++b) {
      // The unperturbed gradient, for the 3-sigma normalisation.
      for (Probe& p : probes) p.slot.perturbation = core::Tensor();
      run(b);
      std::vector<double> grad_std(probes.size());
      std::vector<int64_t> numel(probes.size());
      for (size_t k = 0; k < probes.size(); ++k) {
        check_lazy(probes[k].slot.grad.defined(), [&] {
          return "update_ewgs_deltas: no gradient reached " + probes[k].name + " (is the model in a mode that uses it?)";
        });
        grad_std[k] = unbiased_std(probes[k].slot.grad);
        numel[k] = probes[k].slot.grad.numel();
      }
      std::vector<RunningTrace> running(probes.size(), RunningTrace(options.tolerance));
      std::vector<bool> done(probes.size(), false);
      for (int n = 0; n < options.max_probes; ++n) {
        for (Probe& p : probes) {
          p.v = rng.rademacher_tensor(p.slot.grad.shape());
          p.slot.perturbation = core::mul_scalar(p.v, options.epsilon);
        }
        run(b);
        for (Probe& p : probes) {
          p.g_plus = p.slot.grad;
          p.slot.perturbation = core::mul_scalar(p.v, -options.epsilon);
        }
        run(b);
        bool all_done = true;
        for (size_t k = 0; k < probes.size(); ++k) {
          if (done[k]) continue;
          Probe& p = probes[k];
          const double vhv = (dot(p.v, p.g_plus) - dot(p.v, p.slot.grad)) / (2.0 * options.epsilon);
          done[k] = running[k].add(vhv);
          all_done = all_done && done[k];
        }
        if (all_done) break;
      }
      for (size_t k = 0; k < probes.size(); ++k) {
        Probe& p = probes[k];
        // Normalised units: H scales by unit^2, the gradient by unit.
        const double unit = p.quantizer->ewgs_unit();
        const double trace_per_element = running[k].mean() / static_cast<double>(numel[k]) * unit * unit;
        const double sigma = grad_std[k] * unit;
        p.trace_sum += trace_per_element;
        p.contribution_sum += sigma > 0.0 ? trace_per_element / (3.0 * sigma) : 0.0;
        p.max_probes = std::max(p.max_probes, running[k].count());
        p.slot.perturbation = core::Tensor();
      }
    }
  } catch (...) {
    attach(false);
    snapshot.restore();
    model.zero_grad();
    throw;
  }
  attach(false);
  snapshot.restore();
  model.zero_grad();

  std::vector<EwgsDelta> out;
  for (Probe& p : probes) {
    const float delta = static_cast<float>(std::max(0.0, p.contribution_sum / batches));
    p.quantizer->set_ewgs_delta(delta);
    out.push_back(EwgsDelta{p.name, delta, p.trace_sum / batches, p.max_probes});
  }
  return out;
}

}  // namespace bitgrad::quant
