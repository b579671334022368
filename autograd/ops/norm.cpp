// norm.cpp: batch_norm over [N, C] or [N, C, H, W] (ops.hpp), forward and backward side by side.
// Per channel: one pass for the statistics (shifted sums, double across rows), one pass to normalise;
// channels run in parallel (oneTBB). Not here: layer/group norm, or the BatchNorm2d module (nn/).
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <array>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "autograd/ops.hpp"
#include "core/error.hpp"

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

template <typename F>
void for_each_channel(int64_t channels, F&& f) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, channels, 1),
                    [&](const tbb::blocked_range<int64_t>& r) {
                      for (int64_t ch = r.begin(); ch < r.end(); ++ch) f(ch);
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

Variable batch_norm(const Variable& x, const Variable& gamma, const Variable& beta,
                    Tensor& running_mean, Tensor& running_var, const BatchNormOptions& options) {
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

  const Tensor cx = x.value().contiguous();
  const Tensor cgamma = gamma.defined() ? gamma.value().contiguous() : Tensor::ones(Shape{channels});
  const Tensor cbeta = beta.defined() ? beta.value().contiguous() : Tensor(Shape{channels});
  // Per channel: the mean and 1/sqrt(var + eps) used to normalise (batch or running statistics).
  auto mean = std::make_shared<std::vector<float>>(static_cast<size_t>(channels));
  auto invstd = std::make_shared<std::vector<float>>(static_cast<size_t>(channels));
  Tensor out(xs);
  const float* px = cx.data();
  float* py = out.data();
  const float* pgamma = cgamma.data();
  const float* pbeta = cbeta.data();
  const double m = static_cast<double>(lay.count());

  for_each_channel(channels, [&](int64_t ch) {
    const auto uc = static_cast<size_t>(ch);
    double mu = 0.0, var = 0.0;
    if (use_batch) {
      const float shift = px[lay.row(0, ch)];  // shifted sums keep var accurate when |mean| >> std
      double s1 = 0.0, s2 = 0.0;
      for (int64_t i = 0; i < lay.n; ++i) {
        const Sums r = row_sums(px + lay.row(i, ch), lay.s, shift);
        s1 += r.s1;
        s2 += r.s2;
      }
      const double d = s1 / m;
      mu = shift + d;
      var = std::max(s2 / m - d * d, 0.0);
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
    const double is = 1.0 / std::sqrt(var + options.eps);
    (*mean)[uc] = static_cast<float>(mu);
    (*invstd)[uc] = static_cast<float>(is);
    const auto fmu = static_cast<float>(mu);
    const auto scale = static_cast<float>(pgamma[ch] * is);
    const float offset = pbeta[ch];
    for (int64_t i = 0; i < lay.n; ++i) {
      const float* xr = px + lay.row(i, ch);
      float* yr = py + lay.row(i, ch);
      for (int64_t k = 0; k < lay.s; ++k) yr[k] = (xr[k] - fmu) * scale + offset;
    }
  });

  std::vector<Variable> inputs{x};
  const int gamma_slot = gamma.defined() ? static_cast<int>(inputs.size()) : -1;
  if (gamma.defined()) inputs.push_back(gamma);
  const int beta_slot = beta.defined() ? static_cast<int>(inputs.size()) : -1;
  if (beta.defined()) inputs.push_back(beta);

  // Training: dx = gamma*invstd * (g - mean(g) - xhat * mean(g*xhat)), through the batch statistics.
  // Eval: the statistics are constants, so dx = gamma*invstd*g. Both: dgamma = sum(g*xhat),
  // dbeta = sum(g), with xhat = (x - mean)*invstd.
  return make_node(
      std::move(out), inputs, "batch_norm",
      [cx, cgamma, mean, invstd, lay, use_batch, gamma_slot, beta_slot](
          const Tensor& grad, const std::vector<bool>& needs) {
        const Tensor cg = grad.contiguous();
        const int64_t channels = lay.c;
        Tensor dx = needs[0] ? Tensor(cx.shape()) : Tensor();
        Tensor dgamma(Shape{channels});
        Tensor dbeta(Shape{channels});
        const float* pg = cg.data();
        const float* px = cx.data();
        const double m = static_cast<double>(lay.count());
        for_each_channel(channels, [&](int64_t ch) {
          const auto uc = static_cast<size_t>(ch);
          const float mu = (*mean)[uc];
          const double is = (*invstd)[uc];
          double sum_g = 0.0, sum_gx = 0.0;  // sum(g), sum(g * (x - mean))
          for (int64_t i = 0; i < lay.n; ++i) {
            const Sums r = row_grad_sums(pg + lay.row(i, ch), px + lay.row(i, ch), lay.s, mu);
            sum_g += r.s1;
            sum_gx += r.s2;
          }
          dgamma.data()[ch] = static_cast<float>(sum_gx * is);
          dbeta.data()[ch] = static_cast<float>(sum_g);
          if (!dx.defined()) return;
          const double a = cgamma.data()[ch] * is;
          // dx = a*g + b*(x - mean) + c per channel (the training formula expanded; eval has
          // b = c = 0).
          double b = 0.0, c = 0.0;
          if (use_batch) {
            b = -a * is * is * sum_gx / m;
            c = -a * sum_g / m;
          }
          const auto fa = static_cast<float>(a), fb = static_cast<float>(b),
                     fc = static_cast<float>(c);
          for (int64_t i = 0; i < lay.n; ++i) {
            const float* gr = pg + lay.row(i, ch);
            const float* xr = px + lay.row(i, ch);
            float* dr = dx.data() + lay.row(i, ch);
            for (int64_t k = 0; k < lay.s; ++k) dr[k] = fa * gr[k] + fb * (xr[k] - mu) + fc;
          }
        });
        std::vector<Tensor> grads(needs.size());
        grads[0] = dx;
        if (gamma_slot >= 0) grads[static_cast<size_t>(gamma_slot)] = dgamma;
        if (beta_slot >= 0) grads[static_cast<size_t>(beta_slot)] = dbeta;
        return grads;
      });
}

}  // namespace bitgrad::autograd
