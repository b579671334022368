// pool.cpp: avg_pool2d, max_pool2d, global_avg_pool2d and upsample_nearest2d on [N, C, H, W]
// (ops.hpp), forward and backward side by side, each parallel over the N*C planes (oneTBB).
// Not here: ceil_mode, count_include_pad=false, or adaptive / fractional pooling.
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "autograd/ops.hpp"
#include "core/error.hpp"

namespace bitgrad::autograd {

namespace {

template <typename F>
void for_each_plane(int64_t planes, F&& f) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, planes),
                    [&](const tbb::blocked_range<int64_t>& r) {
                      for (int64_t p = r.begin(); p < r.end(); ++p) f(p);
                    });
}

void check_4d(const Shape& s, const char* op) {
  check_lazy(s.rank() == 4, [&] {
    return std::string(op) + ": expected x [N, C, H, W], got " + s.to_string();
  });
}

// Window geometry shared by avg_pool2d and max_pool2d (PyTorch's rules, ceil_mode=false).
struct Pool {
  int64_t planes, h, w, ho, wo, k, s, p;
};

Pool pool_geometry(const Shape& xs, int kernel, int stride, int padding, const char* op) {
  check_4d(xs, op);
  check_lazy(kernel >= 1 && stride >= 1 && padding >= 0 && 2 * padding <= kernel, [&] {
    return std::string(op) + ": expected kernel >= 1, stride >= 1, 0 <= padding <= kernel/2, got kernel " +
           std::to_string(kernel) + ", stride " + std::to_string(stride) + ", padding " +
           std::to_string(padding);
  });
  const int64_t ph = xs[2] + 2 * int64_t{padding}, pw = xs[3] + 2 * int64_t{padding};
  check_lazy(ph >= kernel && pw >= kernel, [&] {
    return std::string(op) + ": kernel " + std::to_string(kernel) + " is larger than the padded input " +
           std::to_string(ph) + "x" + std::to_string(pw) + " (x " + xs.to_string() + ", padding " +
           std::to_string(padding) + ")";
  });
  return {xs[0] * xs[1], xs[2], xs[3], (ph - kernel) / stride + 1, (pw - kernel) / stride + 1,
          kernel, stride, padding};
}

// [lo, hi) of input indices covered by window `o` along an axis of length n.
struct Window {
  int64_t lo, hi;
};
Window window(int64_t o, const Pool& g, int64_t n) {
  const int64_t start = o * g.s - g.p;
  return {std::max<int64_t>(start, 0), std::min(start + g.k, n)};
}

}  // namespace

Variable avg_pool2d(const Variable& x, int kernel, int stride, int padding) {
  const Shape xs = x.shape();
  const Pool g = pool_geometry(xs, kernel, stride, padding, "avg_pool2d");
  const Tensor cx = x.value().contiguous();
  Tensor out(Shape{xs[0], xs[1], g.ho, g.wo});
  const float inv = 1.0f / static_cast<float>(g.k * g.k);  // count_include_pad: always k*k
  const float* px = cx.data();
  float* po = out.data();
  for_each_plane(g.planes, [&](int64_t pl) {
    const float* xp = px + pl * g.h * g.w;
    float* op = po + pl * g.ho * g.wo;
    for (int64_t oh = 0; oh < g.ho; ++oh) {
      const Window wh = window(oh, g, g.h);
      for (int64_t ow = 0; ow < g.wo; ++ow) {
        const Window ww = window(ow, g, g.w);
        float s = 0.0f;
        for (int64_t ih = wh.lo; ih < wh.hi; ++ih)
          for (int64_t iw = ww.lo; iw < ww.hi; ++iw) s += xp[ih * g.w + iw];
        op[oh * g.wo + ow] = s * inv;
      }
    }
  });
  // dx[i] = sum over the windows containing i of g / k^2.
  return make_node(std::move(out), {x}, "avg_pool2d",
                   [xs, g, inv](const Tensor& grad, const std::vector<bool>&) {
                     const Tensor cg = grad.contiguous();
                     Tensor dx(xs);
                     const float* pg = cg.data();
                     float* pdx = dx.data();
                     for_each_plane(g.planes, [&](int64_t pl) {
                       const float* gp = pg + pl * g.ho * g.wo;
                       float* dp = pdx + pl * g.h * g.w;
                       for (int64_t oh = 0; oh < g.ho; ++oh) {
                         const Window wh = window(oh, g, g.h);
                         for (int64_t ow = 0; ow < g.wo; ++ow) {
                           const Window ww = window(ow, g, g.w);
                           const float v = gp[oh * g.wo + ow] * inv;
                           for (int64_t ih = wh.lo; ih < wh.hi; ++ih)
                             for (int64_t iw = ww.lo; iw < ww.hi; ++iw) dp[ih * g.w + iw] += v;
                         }
                       }
                     });
                     return std::vector<Tensor>{dx};
                   });
}

Variable max_pool2d(const Variable& x, int kernel, int stride, int padding) {
  const Shape xs = x.shape();
  const Pool g = pool_geometry(xs, kernel, stride, padding, "max_pool2d");
  const Tensor cx = x.value().contiguous();
  Tensor out(Shape{xs[0], xs[1], g.ho, g.wo});
  // Index within its plane of each output's maximum (ih*W + iw), for the backward scatter.
  auto argmax = std::make_shared<std::vector<int32_t>>(static_cast<size_t>(out.numel()));
  const float* px = cx.data();
  float* po = out.data();
  for_each_plane(g.planes, [&](int64_t pl) {
    const float* xp = px + pl * g.h * g.w;
    float* op = po + pl * g.ho * g.wo;
    int32_t* ap = argmax->data() + pl * g.ho * g.wo;
    for (int64_t oh = 0; oh < g.ho; ++oh) {
      const Window wh = window(oh, g, g.h);
      for (int64_t ow = 0; ow < g.wo; ++ow) {
        const Window ww = window(ow, g, g.w);
        // padding <= kernel/2 guarantees a non-empty window; -inf padding never wins.
        int64_t best = wh.lo * g.w + ww.lo;
        float bv = xp[best];
        for (int64_t ih = wh.lo; ih < wh.hi; ++ih)
          for (int64_t iw = ww.lo; iw < ww.hi; ++iw) {
            const float v = xp[ih * g.w + iw];
            if (v > bv || (std::isnan(v) && !std::isnan(bv))) {  // first maximum wins; NaN propagates
              bv = v;
              best = ih * g.w + iw;
            }
          }
        op[oh * g.wo + ow] = bv;
        ap[oh * g.wo + ow] = static_cast<int32_t>(best);
      }
    }
  });
  // dx[argmax] += g for every window.
  return make_node(std::move(out), {x}, "max_pool2d",
                   [xs, g, argmax](const Tensor& grad, const std::vector<bool>&) {
                     const Tensor cg = grad.contiguous();
                     Tensor dx(xs);
                     const float* pg = cg.data();
                     float* pdx = dx.data();
                     for_each_plane(g.planes, [&](int64_t pl) {
                       const int64_t hw = g.ho * g.wo;
                       const int32_t* ap = argmax->data() + pl * hw;
                       const float* gp = pg + pl * hw;
                       float* dp = pdx + pl * g.h * g.w;
                       for (int64_t i = 0; i < hw; ++i) dp[ap[i]] += gp[i];
                     });
                     return std::vector<Tensor>{dx};
                   });
}

Variable global_avg_pool2d(const Variable& x) {
  const Shape xs = x.shape();
  check_4d(xs, "global_avg_pool2d");
  check_lazy(xs[2] * xs[3] > 0, [&] {
    return "global_avg_pool2d: expected a non-empty spatial size, got x " + xs.to_string();
  });
  const int64_t planes = xs[0] * xs[1], hw = xs[2] * xs[3];
  const Tensor cx = x.value().contiguous();
  Tensor out(Shape{xs[0], xs[1]});
  const float* px = cx.data();
  float* po = out.data();
  for_each_plane(planes, [&](int64_t pl) {
    double s = 0.0;
    for (int64_t i = 0; i < hw; ++i) s += px[pl * hw + i];
    po[pl] = static_cast<float>(s / static_cast<double>(hw));
  });
  // dx[n, c, h, w] = g[n, c] / (H*W).
  return make_node(std::move(out), {x}, "global_avg_pool2d",
                   [xs, planes, hw](const Tensor& grad, const std::vector<bool>&) {
                     const Tensor cg = grad.contiguous();
                     Tensor dx(xs);
                     const float* pg = cg.data();
                     float* pdx = dx.data();
                     const float inv = 1.0f / static_cast<float>(hw);
                     for_each_plane(planes, [&](int64_t pl) {
                       std::fill(pdx + pl * hw, pdx + (pl + 1) * hw, pg[pl] * inv);
                     });
                     return std::vector<Tensor>{dx};
                   });
}

Variable upsample_nearest2d(const Variable& x, int scale) {
  const Shape xs = x.shape();
  check_4d(xs, "upsample_nearest2d");
  check_lazy(scale >= 1, [&] {
    return "upsample_nearest2d: expected scale >= 1, got " + std::to_string(scale);
  });
  const int64_t planes = xs[0] * xs[1], h = xs[2], w = xs[3], s = scale;
  const Shape os{xs[0], xs[1], h * s, w * s};
  const Tensor cx = x.value().contiguous();
  Tensor out(os);
  const float* px = cx.data();
  float* po = out.data();
  for_each_plane(planes, [&](int64_t pl) {
    const float* xp = px + pl * h * w;
    float* op = po + pl * h * w * s * s;
    for (int64_t oh = 0; oh < h * s; ++oh) {
      const float* xr = xp + (oh / s) * w;
      float* orow = op + oh * w * s;
      for (int64_t ow = 0; ow < w * s; ++ow) orow[ow] = xr[ow / s];
    }
  });
  // dx[n, c, i, j] = sum of g over the scale x scale block that copies x[n, c, i, j].
  return make_node(std::move(out), {x}, "upsample_nearest2d",
                   [xs, planes, h, w, s](const Tensor& grad, const std::vector<bool>&) {
                     const Tensor cg = grad.contiguous();
                     Tensor dx(xs);
                     const float* pg = cg.data();
                     float* pdx = dx.data();
                     for_each_plane(planes, [&](int64_t pl) {
                       const float* gp = pg + pl * h * w * s * s;
                       float* dp = pdx + pl * h * w;
                       for (int64_t oh = 0; oh < h * s; ++oh) {
                         const float* gr = gp + oh * w * s;
                         float* dr = dp + (oh / s) * w;
                         for (int64_t ow = 0; ow < w * s; ++ow) dr[ow / s] += gr[ow];
                       }
                     });
                     return std::vector<Tensor>{dx};
                   });
}

}  // namespace bitgrad::autograd
