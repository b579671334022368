// norm.cpp: batch_norm over [N, C] or [N, C, H, W] (ops.hpp), forward and backward side by side.
// Each pass streams the NCHW data in memory order, in parallel over images (oneTBB): per-channel
// reductions (shifted sums; float lanes within a row, double across rows) are summed per chunk of
// images, then over a fixed number of chunks in order, so results do not depend on the thread
// count. Not here: layer/group norm, or the BatchNorm2d module (nn/).
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "autograd/ops.hpp"
#include "autograd/ops/batch_norm_relu.hpp"
#include "core/error.hpp"
#include "core/eval_epilogue.hpp"

namespace bitgrad::autograd {

namespace {

// x viewed as N rows of S contiguous values per channel: element (n, c, s) at (n*C + c)*S + s.
struct Layout {
  int64_t n, c, s;
  int64_t count() const { return n * s; }  // values per channel
  int64_t row(int64_t i, int64_t ch) const { return (i * c + ch) * s; }
};

// Sums of (v - shift) and (v - shift)^2 over one row: float lanes within the row (vectorisable),
// returned in double so the per-channel total is accumulated in double.
struct Sums {
  double s1 = 0.0, s2 = 0.0;
};
constexpr int kLanes = 16;
Sums row_sums(const float* p, int64_t len, float shift) {
  std::array<float, kLanes> a{}, b{};
  int64_t i = 0;
  for (; i + kLanes <= len; i += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const float d = p[i + l] - shift;
      a[static_cast<size_t>(l)] += d;
      b[static_cast<size_t>(l)] += d * d;
    }
  Sums r;
  for (; i < len; ++i) {
    const double d = static_cast<double>(p[i]) - shift;
    r.s1 += d;
    r.s2 += d * d;
  }
  for (int l = 0; l < kLanes; ++l) {
    r.s1 += a[static_cast<size_t>(l)];
    r.s2 += b[static_cast<size_t>(l)];
  }
  return r;
}

// Sums of g and g * (x - shift) over one row (the two reductions of the backward pass).
Sums row_grad_sums(const float* g, const float* x, int64_t len, float shift) {
  std::array<float, kLanes> a{}, b{};
  int64_t i = 0;
  for (; i + kLanes <= len; i += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      a[static_cast<size_t>(l)] += g[i + l];
      b[static_cast<size_t>(l)] += g[i + l] * (x[i + l] - shift);
    }
  Sums r;
  for (; i < len; ++i) {
    r.s1 += g[i];
    r.s2 += static_cast<double>(g[i]) * (static_cast<double>(x[i]) - shift);
  }
  for (int l = 0; l < kLanes; ++l) {
    r.s1 += a[static_cast<size_t>(l)];
    r.s2 += b[static_cast<size_t>(l)];
  }
  return r;
}

// 1/sqrt(var + eps) in double, shared by batch_norm and batch_norm_eval_affine.
double inverse_std(double var, float eps) { return 1.0 / std::sqrt(var + eps); }

// Image chunks of the per-channel reductions: a fixed count, independent of the thread count.
constexpr int64_t kReduceChunks = 16;

// Per channel, the sums of one chunk of images (or their total).
using ChannelSums = std::vector<Sums>;

// Sums over all images per channel: row(i, ch) reduced by f(i, ch) -> Sums, per chunk of images in
// parallel, then the chunks added in order.
template <typename F>
ChannelSums reduce_channels(const Layout& lay, F&& f) {
  const int64_t chunks = std::clamp<int64_t>(lay.n, 1, kReduceChunks);
  std::vector<ChannelSums> partial(static_cast<size_t>(chunks),
                                   ChannelSums(static_cast<size_t>(lay.c)));
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, chunks, 1),
                    [&](const tbb::blocked_range<int64_t>& r) {
                      for (int64_t k = r.begin(); k < r.end(); ++k) {
                        ChannelSums& p = partial[static_cast<size_t>(k)];
                        for (int64_t i = k * lay.n / chunks; i < (k + 1) * lay.n / chunks; ++i)
                          for (int64_t ch = 0; ch < lay.c; ++ch) {
                            const Sums s = f(i, ch);
                            p[static_cast<size_t>(ch)].s1 += s.s1;
                            p[static_cast<size_t>(ch)].s2 += s.s2;
                          }
                      }
                    });
  ChannelSums total(static_cast<size_t>(lay.c));
  for (const ChannelSums& p : partial)
    for (size_t ch = 0; ch < total.size(); ++ch) {
      total[ch].s1 += p[ch].s1;
      total[ch].s2 += p[ch].s2;
    }
  return total;
}

// f(i, ch) for every row (image i, channel ch), in parallel over rows.
template <typename F>
void for_each_row(const Layout& lay, F&& f) {
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(lay.s, 1));
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, lay.n * lay.c, grain),
                    [&](const tbb::blocked_range<int64_t>& r) {
                      for (int64_t row = r.begin(); row < r.end(); ++row)
                        f(row / lay.c, row % lay.c);
                    });
}

void check_channel_vector(const Tensor& t, int64_t channels, const Shape& x_shape, const char* what) {
  check_lazy(t.defined() && t.rank() == 1 && t.dim(0) == channels, [&] {
    return std::string("batch_norm: expected ") + what + " of shape [" + std::to_string(channels) +
           "] for x " + x_shape.to_string() + ", got " +
           (t.defined() ? t.shape().to_string() : std::string("<undefined>"));
  });
}

}  // namespace

namespace {

// batch_norm, or with relu: relu(batch_norm(x) + residual) (residual may be undefined), computed
// with the same float operations in the same order as the separate ops, so with identical results.
Variable batch_norm_impl(const Variable& x, const Variable& gamma, const Variable& beta,
                         Tensor& running_mean, Tensor& running_var, const BatchNormOptions& options,
                         const Variable& residual, bool relu) {
  const Shape& xs = x.shape();
  check_lazy(xs.rank() == 2 || xs.rank() == 4, [&] {
    return "batch_norm: expected x [N, C] or [N, C, H, W], got " + xs.to_string();
  });
  const Layout lay{xs[0], xs[1], xs.rank() == 4 ? xs[2] * xs[3] : 1};
  const int64_t channels = lay.c;
  // Undefined gamma / beta mean the identity affine map (gamma 1, beta 0).
  if (gamma.defined()) check_channel_vector(gamma.value(), channels, xs, "gamma");
  if (beta.defined()) check_channel_vector(beta.value(), channels, xs, "beta");
  const bool use_batch = options.training;
  if (!use_batch || running_mean.defined() || running_var.defined()) {
    check_channel_vector(running_mean, channels, xs, "running_mean");
    check_channel_vector(running_var, channels, xs, "running_var");
  }
  check_lazy(!use_batch || lay.count() > 1, [&] {
    return "batch_norm: training needs more than one value per channel, got x " + xs.to_string();
  });
  check_lazy(options.eps >= 0.0f, [&] {
    return "batch_norm: expected eps >= 0, got " + std::to_string(options.eps);
  });

  if (residual.defined())
    check_lazy(residual.shape() == xs, [&] {
      return "batch_norm_relu: expected a residual of shape " + xs.to_string() + ", got " +
             residual.shape().to_string();
    });
  const Tensor cx = x.value().contiguous();
  const Tensor cres = residual.defined() ? residual.value().contiguous() : Tensor();
  const Tensor cgamma = gamma.defined() ? gamma.value().contiguous() : Tensor::ones(Shape{channels});
  const Tensor cbeta = beta.defined() ? beta.value().contiguous() : Tensor(Shape{channels});
  // Per channel: the mean and 1/sqrt(var + eps) used to normalise (batch or running statistics).
  auto mean = std::make_shared<std::vector<float>>(static_cast<size_t>(channels));
  auto invstd = std::make_shared<std::vector<float>>(static_cast<size_t>(channels));
  Tensor out = Tensor::empty(xs);
  const float* px = cx.data();
  float* py = out.data();
  const float* pgamma = cgamma.data();
  const float* pbeta = cbeta.data();
  const double m = static_cast<double>(lay.count());

  ChannelSums sums;
  if (use_batch) {
    // Shifted sums keep var accurate when |mean| >> std: the shift is each channel's first value.
    sums = reduce_channels(lay, [&](int64_t i, int64_t ch) {
      return row_sums(px + lay.row(i, ch), lay.s, px[lay.row(0, ch)]);
    });
  }
  std::vector<float> scale(static_cast<size_t>(channels));
  for (int64_t ch = 0; ch < channels; ++ch) {
    const auto uc = static_cast<size_t>(ch);
    double mu = 0.0, var = 0.0;
    if (use_batch) {
      const float shift = px[lay.row(0, ch)];
      const double d = sums[uc].s1 / m;
      mu = shift + d;
      var = std::max(sums[uc].s2 / m - d * d, 0.0);
      if (running_mean.defined()) {
        const double mom = options.momentum;
        float& rm = running_mean.data()[ch];
        float& rv = running_var.data()[ch];
        rm = static_cast<float>((1.0 - mom) * rm + mom * mu);
        rv = static_cast<float>((1.0 - mom) * rv + mom * var * m / (m - 1.0));
      }
    } else {
      mu = running_mean.data()[ch];
      var = running_var.data()[ch];
    }
    const double is = inverse_std(var, options.eps);
    (*mean)[uc] = static_cast<float>(mu);
    (*invstd)[uc] = static_cast<float>(is);
    scale[uc] = static_cast<float>(pgamma[ch] * is);
  }
  const float* pres = cres.defined() ? cres.data() : nullptr;
  for_each_row(lay, [&](int64_t i, int64_t ch) {
    const auto uc = static_cast<size_t>(ch);
    core::batch_norm_row(px + lay.row(i, ch), pres != nullptr ? pres + lay.row(i, ch) : nullptr, lay.s,
                         {(*mean)[uc], scale[uc], pbeta[ch]}, relu, py + lay.row(i, ch));
  });

  std::vector<Variable> inputs{x};
  const int gamma_slot = gamma.defined() ? static_cast<int>(inputs.size()) : -1;
  if (gamma.defined()) inputs.push_back(gamma);
  const int beta_slot = beta.defined() ? static_cast<int>(inputs.size()) : -1;
  if (beta.defined()) inputs.push_back(beta);
  const int residual_slot = residual.defined() ? static_cast<int>(inputs.size()) : -1;
  if (residual.defined()) inputs.push_back(residual);
  // With relu the output is saved for the mask (y > 0 exactly where relu passed its input).
  const Tensor saved_y = relu ? out : Tensor();

  // Training: dx = gamma*invstd * (g - mean(g) - xhat * mean(g*xhat)), through the batch
  // statistics. Eval: the statistics are constants, so dx = gamma*invstd*g. Both:
  // dgamma = sum(g*xhat), dbeta = sum(g), with xhat = (x - mean)*invstd.
  // With relu, g is first masked (gm = g where y > 0, else 0): gm is the residual's gradient and
  // the normalisation's output gradient, written during the first reduction pass.
  return make_node(
      std::move(out), inputs, relu ? "batch_norm_relu" : "batch_norm",
      [cx, saved_y, cgamma, mean, invstd, lay, use_batch, gamma_slot, beta_slot, residual_slot](
          const Tensor& grad, const std::vector<bool>& needs) {
        const Tensor cg = grad.contiguous();
        const int64_t channels = lay.c;
        Tensor dx = needs[0] ? Tensor::empty(cx.shape()) : Tensor();
        Tensor dgamma = Tensor::empty(Shape{channels});
        Tensor dbeta = Tensor::empty(Shape{channels});
        Tensor gm = saved_y.defined() ? Tensor::empty(cx.shape()) : cg;
        float* pmask = saved_y.defined() ? gm.data() : nullptr;
        const float* pg = gm.data();
        const float* px = cx.data();
        const double m = static_cast<double>(lay.count());
        // sum(g), sum(g * (x - mean)) per channel
        const ChannelSums sums = reduce_channels(lay, [&](int64_t i, int64_t ch) {
          const int64_t row = lay.row(i, ch);
          if (pmask != nullptr) {
            const float* gr = cg.data() + row;
            const float* yr = saved_y.data() + row;
            float* mr = pmask + row;
            for (int64_t k = 0; k < lay.s; ++k) mr[k] = yr[k] > 0.0f ? gr[k] : 0.0f;
          }
          return row_grad_sums(pg + row, px + row, lay.s, (*mean)[static_cast<size_t>(ch)]);
        });
        // dx = a*g + b*(x - mean) + c per channel (the training formula expanded; in eval
        // b = c = 0).
        std::vector<std::array<float, 3>> coef(static_cast<size_t>(channels));
        for (int64_t ch = 0; ch < channels; ++ch) {
          const auto uc = static_cast<size_t>(ch);
          const double is = (*invstd)[uc];
          const double sum_g = sums[uc].s1, sum_gx = sums[uc].s2;
          dgamma.data()[ch] = static_cast<float>(sum_gx * is);
          dbeta.data()[ch] = static_cast<float>(sum_g);
          const double a = cgamma.data()[ch] * is;
          double b = 0.0, c = 0.0;
          if (use_batch) {
            b = -a * is * is * sum_gx / m;
            c = -a * sum_g / m;
          }
          coef[uc] = {static_cast<float>(a), static_cast<float>(b), static_cast<float>(c)};
        }
        if (dx.defined()) {
          float* pdx = dx.data();
          for_each_row(lay, [&](int64_t i, int64_t ch) {
            const auto uc = static_cast<size_t>(ch);
            const float fa = coef[uc][0], fb = coef[uc][1], fc = coef[uc][2], mu = (*mean)[uc];
            const float* gr = pg + lay.row(i, ch);
            const float* xr = px + lay.row(i, ch);
            float* dr = pdx + lay.row(i, ch);
            for (int64_t k = 0; k < lay.s; ++k) dr[k] = fa * gr[k] + fb * (xr[k] - mu) + fc;
          });
        }
        std::vector<Tensor> grads(needs.size());
        grads[0] = dx;
        if (gamma_slot >= 0) grads[static_cast<size_t>(gamma_slot)] = dgamma;
        if (beta_slot >= 0) grads[static_cast<size_t>(beta_slot)] = dbeta;
        if (residual_slot >= 0) grads[static_cast<size_t>(residual_slot)] = gm;
        return grads;
      });
}

}  // namespace

Variable batch_norm(const Variable& x, const Variable& gamma, const Variable& beta,
                    Tensor& running_mean, Tensor& running_var, const BatchNormOptions& options) {
  return batch_norm_impl(x, gamma, beta, running_mean, running_var, options, Variable(), false);
}

Variable batch_norm_relu(const Variable& x, const Variable& gamma, const Variable& beta,
                         Tensor& running_mean, Tensor& running_var, const BatchNormOptions& options,
                         const Variable& residual) {
  return batch_norm_impl(x, gamma, beta, running_mean, running_var, options, residual, true);
}

BatchNormAffine batch_norm_eval_affine(const Tensor& gamma, const Tensor& beta,
                                       const Tensor& running_mean, const Tensor& running_var,
                                       float eps) {
  const int64_t channels = running_mean.defined() ? running_mean.numel() : 0;
  auto is_channel_vector = [&](const Tensor& t) {
    return t.defined() && t.rank() == 1 && t.dim(0) == channels;
  };
  check_lazy(running_mean.defined() && running_mean.rank() == 1 && is_channel_vector(running_var) &&
                 (!gamma.defined() || is_channel_vector(gamma)) &&
                 (!beta.defined() || is_channel_vector(beta)),
             [&] {
               auto name = [](const Tensor& t) {
                 return t.defined() ? t.shape().to_string() : std::string("<undefined>");
               };
               return "batch_norm_eval_affine: expected running_mean, running_var (and gamma, beta "
                      "when given) of one shape [C], got " +
                      name(running_mean) + ", " + name(running_var) + ", " + name(gamma) + ", " +
                      name(beta);
             });
  const Tensor rm = running_mean.contiguous(), rv = running_var.contiguous();
  const Tensor cg = gamma.defined() ? gamma.contiguous() : Tensor();
  const Tensor cb = beta.defined() ? beta.contiguous() : Tensor();
  BatchNormAffine a;
  for (int64_t ch = 0; ch < channels; ++ch) {
    const double mu = rm.data()[ch], var = rv.data()[ch];
    const double is = inverse_std(var, eps);
    const float g = cg.defined() ? cg.data()[ch] : 1.0f;
    a.mean.push_back(static_cast<float>(mu));
    a.scale.push_back(static_cast<float>(g * is));
    a.offset.push_back(cb.defined() ? cb.data()[ch] : 0.0f);
  }
  return a;
}

}  // namespace bitgrad::autograd
