// gradcheck_rows_nn.cpp: gradient-check rows for conv2d, batch_norm and the pooling ops
// (autograd/ops/{conv,norm,pool}.cpp). Small shapes so the whole table runs in seconds. Linear ops
// use a large eps: central differences are exact for them, so only float rounding remains.
#include <vector>

#include "autograd/gradcheck.hpp"

namespace bitgrad::test {

namespace {

using autograd::Variable;
using core::Shape;
using core::Tensor;

GradcheckRow conv_row(const char* name, Shape x, Shape w, bool bias, core::Conv2dOptions opt) {
  GradcheckRow row;
  row.name = name;
  row.input_shapes = {x, w};
  if (bias) row.input_shapes.push_back(Shape{w[0]});
  row.f = [bias, opt](const std::vector<Variable>& v) {
    return autograd::conv2d(v[0], v[1], bias ? v[2] : Variable(), opt);
  };
  row.eps = 1e-2f;
  return row;
}

// Training mode updates the running statistics in place, so each call gets fresh ones.
GradcheckRow batch_norm_row(const char* name, Shape x, bool training) {
  const int64_t c = x[1];
  GradcheckRow row;
  row.name = name;
  row.input_shapes = {x, Shape{c}, Shape{c}};
  row.f = [c, training](const std::vector<Variable>& v) {
    Tensor running_mean(Shape{c});
    Tensor running_var(Shape{c});
    for (int64_t i = 0; i < c; ++i) {
      running_mean.data()[i] = 0.1f * static_cast<float>(i) - 0.05f;
      running_var.data()[i] = 0.5f + 0.25f * static_cast<float>(i);
    }
    autograd::BatchNormOptions opt;
    opt.training = training;
    return autograd::batch_norm(v[0], v[1], v[2], running_mean, running_var, opt);
  };
  // gamma away from 0 so the input gradient is not tiny relative to rounding.
  row.prepare = [](std::vector<Tensor>& xs, core::Rng& rng) {
    xs[1] = rng.uniform_tensor(xs[1].shape(), 0.5f, 1.5f);
  };
  return row;
}

GradcheckRow pool_row(const char* name, Shape x, std::function<Variable(const Variable&)> op) {
  GradcheckRow row;
  row.name = name;
  row.input_shapes = {x};
  row.f = [op](const std::vector<Variable>& v) { return op(v[0]); };
  row.eps = 1e-2f;
  return row;
}

}  // namespace

std::vector<GradcheckRow> gradcheck_rows_nn() {
  std::vector<GradcheckRow> rows;
  rows.push_back(conv_row("conv2d 3x3 pad 1 with bias", Shape{2, 3, 5, 5}, Shape{4, 3, 3, 3}, true,
                          {1, 1, 1}));
  rows.push_back(conv_row("conv2d 3x3 no bias", Shape{2, 2, 5, 5}, Shape{3, 2, 3, 3}, false,
                          {1, 0, 1}));
  rows.push_back(conv_row("conv2d stride 2 pad 1", Shape{2, 2, 7, 7}, Shape{3, 2, 3, 3}, true,
                          {2, 1, 1}));
  rows.push_back(conv_row("conv2d dilation 2", Shape{2, 2, 7, 6}, Shape{3, 2, 3, 3}, false,
                          {1, 2, 2}));
  rows.push_back(conv_row("conv2d 1x1", Shape{2, 3, 4, 5}, Shape{5, 3, 1, 1}, true, {1, 0, 1}));
  rows.push_back(conv_row("conv2d 1x1 stride 2", Shape{2, 3, 5, 5}, Shape{2, 3, 1, 1}, false,
                          {2, 0, 1}));
  rows.push_back(conv_row("conv2d non-square input and kernel, C_in != C_out", Shape{2, 3, 5, 7},
                          Shape{2, 3, 2, 3}, true, {1, 1, 1}));

  rows.push_back(batch_norm_row("batch_norm train 4-D", Shape{2, 3, 4, 4}, true));
  rows.push_back(batch_norm_row("batch_norm train 2-D", Shape{6, 3}, true));
  rows.push_back(batch_norm_row("batch_norm eval 4-D", Shape{2, 3, 3, 3}, false));

  rows.push_back(pool_row("avg_pool2d 3x3 stride 2 pad 1", Shape{2, 2, 7, 7},
                          [](const Variable& x) { return autograd::avg_pool2d(x, 3, 2, 1); }));
  rows.push_back(pool_row("avg_pool2d 2x2 stride 2", Shape{2, 2, 6, 5},
                          [](const Variable& x) { return autograd::avg_pool2d(x, 2, 2); }));
  GradcheckRow max_row = pool_row("max_pool2d 3x3 stride 2 pad 1", Shape{2, 2, 7, 7}, [](const Variable& x) {
    return autograd::max_pool2d(x, 3, 2, 1);
  });
  // Distinct values spaced 2/numel apart (> 2*eps): no ties, and +-eps never changes a window's max.
  max_row.prepare = [](std::vector<Tensor>& xs, core::Rng& rng) {
    const int64_t n = xs[0].numel();
    const std::vector<int64_t> perm = rng.permutation(n);
    for (int64_t i = 0; i < n; ++i)
      xs[0].data()[i] = -1.0f + 2.0f * (static_cast<float>(perm[static_cast<size_t>(i)]) + 0.5f) /
                                    static_cast<float>(n);
  };
  max_row.eps = 1e-3f;
  rows.push_back(max_row);
  rows.push_back(pool_row("global_avg_pool2d", Shape{2, 3, 4, 5},
                          [](const Variable& x) { return autograd::global_avg_pool2d(x); }));
  rows.push_back(pool_row("upsample_nearest2d x2", Shape{2, 2, 3, 4},
                          [](const Variable& x) { return autograd::upsample_nearest2d(x, 2); }));
  return rows;
}

}  // namespace bitgrad::test
