// batch_norm.cpp: BatchNorm1d / BatchNorm2d (one template, instantiated for both).
#include "nn/batch_norm.hpp"

#include <string>
#include <vector>

#include "autograd/ops/batch_norm_relu.hpp"
#include "core/error.hpp"

namespace bitgrad::nn {

template <int kDims>
BatchNorm<kDims>::BatchNorm(int64_t num_features, const BatchNormConfig& config)
    : Module(kDims == 1 ? "BatchNorm1d" : "BatchNorm2d"),
      num_features_(num_features),
      config_(config) {
  check_lazy(
      num_features > 0 && config.eps > 0.0f && config.momentum >= 0.0f && config.momentum <= 1.0f,
      [&] {
        return type_name() + ": expected num_features > 0, eps > 0, momentum in [0, 1], got " +
               std::to_string(num_features) + ", " + std::to_string(config.eps) + ", " +
               std::to_string(config.momentum);
      });
  const core::Shape c{num_features};
  gamma_ = Variable(Tensor::ones(c), true);
  beta_ = Variable(Tensor::zeros(c), true);
  running_mean_ = Tensor::zeros(c);
  running_var_ = Tensor::ones(c);
  register_parameter("weight", gamma_, ParamKind::kNormScale);
  register_parameter("bias", beta_, ParamKind::kNormShift);
  register_buffer("running_mean", running_mean_);
  register_buffer("running_var", running_var_);
  register_counter("num_batches_tracked", num_batches_tracked_);
}

template <int kDims>
autograd::BatchNormOptions BatchNorm<kDims>::prepare(const Variable& x) {
  constexpr int kRank = kDims == 1 ? 2 : 4;
  check_lazy(x.defined() && x.rank() == kRank && x.dim(1) == num_features_, [&] {
    return type_name() + ": expected input " +
           (kDims == 1 ? "[N, " + std::to_string(num_features_) + "]"
                       : "[N, " + std::to_string(num_features_) + ", H, W]") +
           ", got " + (x.defined() ? x.shape().to_string() : std::string("<undefined>"));
  });
  if (record_input_stats_) {
    const std::vector<int> axes = kDims == 1 ? std::vector<int>{0} : std::vector<int>{0, 2, 3};
    const Variable mean_keep = autograd::mean(x, axes, /*keepdim=*/true);
    const Variable centered = x - mean_keep;
    last_input_stats_.mean = autograd::reshape(mean_keep, {num_features_});
    last_input_stats_.var = autograd::mean(centered * centered, axes, /*keepdim=*/false);
  }
  autograd::BatchNormOptions options;
  options.training = is_training();
  options.momentum = config_.momentum;
  options.eps = config_.eps;
  return options;
}

template <int kDims>
Variable BatchNorm<kDims>::forward(const Variable& x) {
  const autograd::BatchNormOptions options = prepare(x);
  Variable y = autograd::batch_norm(x, gamma_, beta_, running_mean_, running_var_, options);
  if (options.training) ++num_batches_tracked_;
  return y;
}

template <int kDims>
Variable BatchNorm<kDims>::forward_relu(const Variable& x, const Variable& residual) {
  const autograd::BatchNormOptions options = prepare(x);
  Variable y =
      autograd::batch_norm_relu(x, gamma_, beta_, running_mean_, running_var_, options, residual);
  if (options.training) ++num_batches_tracked_;
  return y;
}

template <int kDims>
void BatchNorm<kDims>::set_record_input_stats(bool on) {
  record_input_stats_ = on;
  if (!on) last_input_stats_ = {};
}

template class BatchNorm<1>;
template class BatchNorm<2>;

}  // namespace bitgrad::nn
