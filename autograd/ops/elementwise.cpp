// elementwise.cpp: broadcasting binary ops, scalar ops, unary math and activations, each forward
// beside its backward (autograd/ops.hpp documents the formulas).
// Same-shape operands run as one flat loop, split across oneTBB threads above kParallelMin
// elements; broadcasting operands fall back to core's strided kernels. Not here: reductions,
// losses, shape ops.
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <cmath>
#include <string>

#include "autograd/ops.hpp"
#include "core/error.hpp"
#include "core/tensor_ops.hpp"

namespace bitgrad::autograd {

namespace {

constexpr int64_t kParallelMin = 1 << 16;  // below this a loop is not worth waking threads for
constexpr int64_t kGrain = 1 << 15;

// body(begin, end) over [0, n), in parallel chunks when n is large.
template <typename Body>
void parallel_range(int64_t n, const Body& body) {
  if (n < kParallelMin) {
    body(int64_t{0}, n);
    return;
  }
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, kGrain),
                    [&](const tbb::blocked_range<int64_t>& r) { body(r.begin(), r.end()); });
}

// out[i] = f(x[i]).
template <typename F>
Tensor map_par(const Tensor& x, F f) {
  const Tensor c = x.contiguous();
  Tensor out = Tensor::empty(c.shape());
  const float* p = c.data();
  float* o = out.data();
  parallel_range(c.numel(), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) o[i] = f(p[i]);
  });
  return out;
}

// out[i] = f(a[i], b[i]) for same-shape tensors.
template <typename F>
Tensor zip_par(const Tensor& a, const Tensor& b, F f) {
  const Tensor ca = a.contiguous();
  const Tensor cb = b.contiguous();
  Tensor out = Tensor::empty(ca.shape());
  const float* pa = ca.data();
  const float* pb = cb.data();
  float* o = out.data();
  parallel_range(ca.numel(), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) o[i] = f(pa[i], pb[i]);
  });
  return out;
}

// Broadcasting binary math: the flat parallel loop when shapes match, core's kernels otherwise.
Tensor t_add(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return core::add(a, b);
  return zip_par(a, b, [](float x, float y) { return x + y; });
}
Tensor t_sub(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return core::sub(a, b);
  return zip_par(a, b, [](float x, float y) { return x - y; });
}
Tensor t_mul(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return core::mul(a, b);
  return zip_par(a, b, [](float x, float y) { return x * y; });
}
Tensor t_div(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return core::div(a, b);
  return zip_par(a, b, [](float x, float y) { return x / y; });
}
Tensor t_scale(const Tensor& a, float s) {
  return map_par(a, [s](float x) { return x * s; });
}

}  // namespace

// ---- binary -------------------------------------------------------------------------------------

Variable add(const Variable& a, const Variable& b) {
  Tensor y = t_add(a.value(), b.value());
  return make_node(std::move(y), {a, b}, "add",
                   [sa = a.shape(), sb = b.shape()](
                       const Tensor& g, const std::vector<bool>& needs) -> std::vector<Tensor> {
                     return {needs[0] ? core::sum_to(g, sa) : Tensor(),
                             needs[1] ? core::sum_to(g, sb) : Tensor()};
                   });
}

Variable sub(const Variable& a, const Variable& b) {
  Tensor y = t_sub(a.value(), b.value());
  return make_node(std::move(y), {a, b}, "sub",
                   [sa = a.shape(), sb = b.shape()](
                       const Tensor& g, const std::vector<bool>& needs) -> std::vector<Tensor> {
                     return {needs[0] ? core::sum_to(g, sa) : Tensor(),
                             needs[1] ? t_scale(core::sum_to(g, sb), -1.0f) : Tensor()};
                   });
}

Variable mul(const Variable& a, const Variable& b) {
  Tensor y = t_mul(a.value(), b.value());
  return make_node(std::move(y), {a, b}, "mul",
                   [va = a.value(), vb = b.value()](
                       const Tensor& g, const std::vector<bool>& needs) -> std::vector<Tensor> {
                     return {needs[0] ? core::sum_to(t_mul(g, vb), va.shape()) : Tensor(),
                             needs[1] ? core::sum_to(t_mul(g, va), vb.shape()) : Tensor()};
                   });
}

Variable div(const Variable& a, const Variable& b) {
  Tensor y = t_div(a.value(), b.value());
  return make_node(std::move(y), {a, b}, "div",
                   [va = a.value(), vb = b.value()](
                       const Tensor& g, const std::vector<bool>& needs) -> std::vector<Tensor> {
                     Tensor da, db;
                     if (needs[0]) da = core::sum_to(t_div(g, vb), va.shape());
                     if (needs[1]) {
                       // db = -g a / b^2
                       const Tensor b2 = t_mul(vb, vb);
                       db = t_scale(core::sum_to(t_div(t_mul(g, va), b2), vb.shape()), -1.0f);
                     }
                     return {da, db};
                   });
}

// ---- scalar -------------------------------------------------------------------------------------

Variable add_scalar(const Variable& x, float s) {
  Tensor y = map_par(x.value(), [s](float v) { return v + s; });
  return make_node(
      std::move(y), {x}, "add_scalar",
      [](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> { return {g}; });
}

Variable scale(const Variable& x, float s) {
  Tensor y = t_scale(x.value(), s);
  return make_node(std::move(y), {x}, "scale",
                   [s](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
                     return {t_scale(g, s)};
                   });
}

Variable neg(const Variable& x) {
  Tensor y = t_scale(x.value(), -1.0f);
  return make_node(std::move(y), {x}, "neg",
                   [](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
                     return {t_scale(g, -1.0f)};
                   });
}

// ---- unary math ---------------------------------------------------------------------------------

Variable exp(const Variable& x) {
  Tensor y = map_par(x.value(), [](float v) { return std::exp(v); });
  return make_node(y, {x}, "exp",
                   [y](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
                     return {t_mul(g, y)};
                   });
}

Variable log(const Variable& x) {
  Tensor y = map_par(x.value(), [](float v) { return std::log(v); });
  return make_node(
      std::move(y), {x}, "log",
      [vx = x.value()](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
        return {t_div(g, vx)};
      });
}

Variable sqrt(const Variable& x) {
  Tensor y = map_par(x.value(), [](float v) { return std::sqrt(v); });
  return make_node(y, {x}, "sqrt",
                   [y](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
                     return {zip_par(g, y, [](float gv, float yv) { return gv / (2.0f * yv); })};
                   });
}

Variable pow(const Variable& x, float exponent) {
  Tensor y = map_par(x.value(), [exponent](float v) { return std::pow(v, exponent); });
  return make_node(
      std::move(y), {x}, "pow",
      [vx = x.value(), exponent](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
        return {zip_par(g, vx, [exponent](float gv, float xv) {
          return gv * exponent * std::pow(xv, exponent - 1.0f);
        })};
      });
}

Variable abs(const Variable& x) {
  Tensor y = map_par(x.value(), [](float v) { return std::fabs(v); });
  return make_node(
      std::move(y), {x}, "abs",
      [vx = x.value()](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
        return {zip_par(
            g, vx, [](float gv, float xv) { return xv > 0.0f ? gv : (xv < 0.0f ? -gv : 0.0f); })};
      });
}

Variable sign(const Variable& x) {
  Tensor y =
      map_par(x.value(), [](float v) { return v > 0.0f ? 1.0f : (v < 0.0f ? -1.0f : 0.0f); });
  // The true derivative is zero almost everywhere; returned explicitly so grad() is defined.
  return make_node(
      std::move(y), {x}, "sign",
      [sx = x.shape()](const Tensor&, const std::vector<bool>&) -> std::vector<Tensor> {
        return {Tensor(sx)};
      });
}

Variable clamp(const Variable& x, float lo, float hi) {
  check_lazy(lo <= hi, [&] {
    return "clamp: expected lo <= hi, got lo=" + std::to_string(lo) + " hi=" + std::to_string(hi);
  });
  Tensor y = map_par(x.value(), [lo, hi](float v) { return v < lo ? lo : (v > hi ? hi : v); });
  return make_node(
      std::move(y), {x}, "clamp",
      [vx = x.value(), lo, hi](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
        return {zip_par(
            g, vx, [lo, hi](float gv, float xv) { return (xv >= lo && xv <= hi) ? gv : 0.0f; })};
      });
}

Variable where(const Tensor& cond, const Variable& a, const Variable& b) {
  const Shape ab = core::broadcast_shapes(a.shape(), b.shape(), "where");
  const Shape out_shape = core::broadcast_shapes(cond.shape(), ab, "where");
  auto expand = [&](const Tensor& t) {
    return t.shape() == out_shape ? t.contiguous() : core::broadcast_to(t, out_shape);
  };
  const Tensor mask = expand(cond);
  const Tensor ea = expand(a.value());
  const Tensor eb = expand(b.value());
  Tensor y = Tensor::empty(out_shape);
  {
    const float* m = mask.data();
    const float* pa = ea.data();
    const float* pb = eb.data();
    float* o = y.data();
    parallel_range(y.numel(), [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) o[i] = m[i] != 0.0f ? pa[i] : pb[i];
    });
  }
  return make_node(
      std::move(y), {a, b}, "where",
      [mask, sa = a.shape(), sb = b.shape()](
          const Tensor& g, const std::vector<bool>& needs) -> std::vector<Tensor> {
        Tensor da, db;
        if (needs[0])
          da = core::sum_to(
              zip_par(g, mask, [](float gv, float m) { return m != 0.0f ? gv : 0.0f; }), sa);
        if (needs[1])
          db = core::sum_to(
              zip_par(g, mask, [](float gv, float m) { return m != 0.0f ? 0.0f : gv; }), sb);
        return {da, db};
      });
}

// ---- activations --------------------------------------------------------------------------------

Variable relu(const Variable& x) {
  Tensor y = map_par(x.value(), [](float v) { return v > 0.0f ? v : 0.0f; });
  // y > 0 exactly where x > 0, so the output alone is saved.
  return make_node(
      y, {x}, "relu", [y](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
        return {zip_par(g, y, [](float gv, float yv) { return yv > 0.0f ? gv : 0.0f; })};
      });
}

Variable leaky_relu(const Variable& x, float slope) {
  Tensor y = map_par(x.value(), [slope](float v) { return v > 0.0f ? v : slope * v; });
  return make_node(
      std::move(y), {x}, "leaky_relu",
      [vx = x.value(), slope](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
        return {
            zip_par(g, vx, [slope](float gv, float xv) { return xv > 0.0f ? gv : slope * gv; })};
      });
}

Variable tanh(const Variable& x) {
  Tensor y = map_par(x.value(), [](float v) { return std::tanh(v); });
  return make_node(
      y, {x}, "tanh", [y](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
        return {zip_par(g, y, [](float gv, float yv) { return gv * (1.0f - yv * yv); })};
      });
}

Variable sigmoid(const Variable& x) {
  // exp(-v) overflows to inf for very negative v, giving exactly 0; never NaN.
  Tensor y = map_par(x.value(), [](float v) { return 1.0f / (1.0f + std::exp(-v)); });
  return make_node(
      y, {x}, "sigmoid", [y](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
        return {zip_par(g, y, [](float gv, float yv) { return gv * yv * (1.0f - yv); })};
      });
}

}  // namespace bitgrad::autograd
