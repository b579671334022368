// loss.cpp: softmax, log_softmax, cross_entropy, kl_div (Hinton distillation, T^2 scaled) and mse.
// Softmax-family forwards subtract the lane maximum, so large logits never overflow. kl_div
// computes its (small, [N, K]) gradient during the forward pass, which already has both
// distributions at hand. Not here: feature or attention distillation losses (distill/).
#include <algorithm>
#include <cmath>
#include <string>

#include "autograd/ops.hpp"
#include "core/error.hpp"
#include "core/tensor_ops.hpp"

namespace bitgrad::autograd {

namespace {

// x viewed as [outer, n, inner] around one axis: lane (a, b) holds n elements `inner` apart.
struct Lanes {
  int64_t outer = 1, n = 1, inner = 1;
  Lanes(const Shape& shape, int ax) : n(shape[ax]) {
    for (int i = 0; i < ax; ++i) outer *= shape[i];
    for (int i = ax + 1; i < shape.rank(); ++i) inner *= shape[i];
  }
  // Calls f(first, stride) for every lane; the lane's elements are first[k * stride], k < n.
  template <typename F>
  void for_each(F f) const {
    for (int64_t a = 0; a < outer; ++a)
      for (int64_t b = 0; b < inner; ++b) f(a * n * inner + b, inner);
  }
};

int checked_axis(const Shape& shape, int axis, const char* op) {
  check_lazy(axis >= -shape.rank() && axis < shape.rank(), [&] {
    return std::string(op) + ": axis " + std::to_string(axis) + " out of range for shape " +
           shape.to_string();
  });
  return shape.axis(axis);
}

// out = log_softmax(x) (log = true) or softmax(x) along the lanes, stable: the lane max is
// subtracted.
Tensor softmax_forward(const Tensor& x, const Lanes& lanes, bool log) {
  const Tensor c = x.contiguous();
  Tensor out(c.shape());
  const float* p = c.data();
  float* o = out.data();
  const int64_t n = lanes.n;
  lanes.for_each([&](int64_t first, int64_t s) {
    const float* xi = p + first;
    float* yi = o + first;
    float m = xi[0];
    for (int64_t k = 1; k < n; ++k) m = std::max(m, xi[k * s]);
    float total = 0.0f;
    for (int64_t k = 0; k < n; ++k) {
      const float e = std::exp(xi[k * s] - m);
      yi[k * s] = e;
      total += e;
    }
    if (log) {
      const float lse = std::log(total);
      for (int64_t k = 0; k < n; ++k) yi[k * s] = xi[k * s] - m - lse;
    } else {
      const float inv = 1.0f / total;
      for (int64_t k = 0; k < n; ++k) yi[k * s] *= inv;
    }
  });
  return out;
}

// Rows of a [N, K] tensor that must be a matrix for a loss; names op and the shape otherwise.
void check_matrix(const Shape& shape, const char* op, const char* what) {
  check_lazy(shape.rank() == 2 && shape[0] > 0, [&] {
    return std::string(op) + ": expected " + what + " [N, K] with N >= 1, got " + shape.to_string();
  });
}

}  // namespace

Variable softmax(const Variable& x, int axis) {
  const Lanes lanes(x.shape(), checked_axis(x.shape(), axis, "softmax"));
  Tensor y = softmax_forward(x.value(), lanes, false);
  return make_node(y, {x}, "softmax",
                   [y, lanes](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
                     // dx = y * (g - sum_k g_k y_k)
                     const Tensor cg = g.contiguous();
                     Tensor dx(y.shape());
                     const float* pg = cg.data();
                     const float* py = y.data();
                     float* d = dx.data();
                     const int64_t n = lanes.n;
                     lanes.for_each([&](int64_t first, int64_t s) {
                       float dot = 0.0f;
                       for (int64_t k = 0; k < n; ++k) dot += pg[first + k * s] * py[first + k * s];
                       for (int64_t k = 0; k < n; ++k) {
                         const int64_t i = first + k * s;
                         d[i] = py[i] * (pg[i] - dot);
                       }
                     });
                     return {dx};
                   });
}

Variable log_softmax(const Variable& x, int axis) {
  const Lanes lanes(x.shape(), checked_axis(x.shape(), axis, "log_softmax"));
  Tensor y = softmax_forward(x.value(), lanes, true);
  return make_node(y, {x}, "log_softmax",
                   [y, lanes](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
                     // dx = g - softmax * sum_k g_k, with softmax = exp(y)
                     const Tensor cg = g.contiguous();
                     Tensor dx(y.shape());
                     const float* pg = cg.data();
                     const float* py = y.data();
                     float* d = dx.data();
                     const int64_t n = lanes.n;
                     lanes.for_each([&](int64_t first, int64_t s) {
                       float total = 0.0f;
                       for (int64_t k = 0; k < n; ++k) total += pg[first + k * s];
                       for (int64_t k = 0; k < n; ++k) {
                         const int64_t i = first + k * s;
                         d[i] = pg[i] - std::exp(py[i]) * total;
                       }
                     });
                     return {dx};
                   });
}

Variable cross_entropy(const Variable& logits, std::span<const int64_t> targets,
                       Reduction reduction) {
  check_matrix(logits.shape(), "cross_entropy", "logits");
  const int64_t n = logits.dim(0), k = logits.dim(1);
  check_lazy(static_cast<int64_t>(targets.size()) == n, [&] {
    return "cross_entropy: expected " + std::to_string(n) + " targets for logits " +
           logits.shape().to_string() + ", got " + std::to_string(targets.size());
  });
  for (size_t i = 0; i < targets.size(); ++i) {
    check_lazy(targets[i] >= 0 && targets[i] < k, [&] {
      return "cross_entropy: target " + std::to_string(targets[i]) + " at index " +
             std::to_string(i) + " is out of range [0, K) with K = " + std::to_string(k);
    });
  }
  const Tensor logp = softmax_forward(logits.value(), Lanes(logits.shape(), 1), true);
  const float* lp = logp.data();
  Tensor per_row(Shape{n});
  for (int64_t i = 0; i < n; ++i) per_row.data()[i] = -lp[i * k + targets[static_cast<size_t>(i)]];
  Tensor y;
  if (reduction == Reduction::kNone) {
    y = per_row;
  } else {
    const double total = core::sum_all(per_row);
    y = Tensor::scalar(static_cast<float>(reduction == Reduction::kMean ? total / n : total));
  }
  std::vector<int64_t> t(targets.begin(), targets.end());
  return make_node(std::move(y), {logits}, "cross_entropy",
                   [logp, t = std::move(t), n, k, reduction](
                       const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
                     // dlogits[i] = w_i * (softmax[i] - onehot(t_i)), w_i the row's output grad
                     const Tensor cg = g.contiguous();
                     Tensor dx(Shape{n, k});
                     const float* pl = logp.data();
                     float* d = dx.data();
                     for (int64_t i = 0; i < n; ++i) {
                       float w = cg.data()[reduction == Reduction::kNone ? i : 0];
                       if (reduction == Reduction::kMean) w /= static_cast<float>(n);
                       for (int64_t j = 0; j < k; ++j) d[i * k + j] = w * std::exp(pl[i * k + j]);
                       d[i * k + t[static_cast<size_t>(i)]] -= w;
                     }
                     return {dx};
                   });
}

Variable kl_div(const Variable& student_logits, const Tensor& teacher_logits, float temperature) {
  check_matrix(student_logits.shape(), "kl_div", "student logits");
  check_lazy(teacher_logits.shape() == student_logits.shape(), [&] {
    return "kl_div: student logits " + student_logits.shape().to_string() + " and teacher logits " +
           teacher_logits.shape().to_string() + " differ in shape";
  });
  check_lazy(temperature > 0.0f && std::isfinite(temperature), [&] {
    return "kl_div: expected a positive temperature, got " + std::to_string(temperature);
  });
  const int64_t n = student_logits.dim(0);
  const Lanes rows(student_logits.shape(), 1);
  const float inv_t = 1.0f / temperature;
  const Tensor log_q = softmax_forward(core::mul_scalar(student_logits.value(), inv_t), rows, true);
  const Tensor log_p = softmax_forward(core::mul_scalar(teacher_logits, inv_t), rows, true);
  // loss = T^2/N sum p (log p - log q); terms with p == 0 contribute 0 (x log x -> 0).
  // dloss/ds = (T/N) (q - p), kept for backward.
  const float* lq = log_q.data();
  const float* lp = log_p.data();
  Tensor dlogits(student_logits.shape());
  float* d = dlogits.data();
  const float grad_scale = temperature / static_cast<float>(n);
  double total = 0.0;
  for (int64_t i = 0; i < log_q.numel(); ++i) {
    const float p = std::exp(lp[i]);
    if (p > 0.0f) total += static_cast<double>(p) * (lp[i] - lq[i]);
    d[i] = grad_scale * (std::exp(lq[i]) - p);
  }
  const double t2 = static_cast<double>(temperature) * temperature;
  Tensor y = Tensor::scalar(static_cast<float>(t2 * total / static_cast<double>(n)));
  return make_node(std::move(y), {student_logits}, "kl_div",
                   [dlogits](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
                     return {core::mul_scalar(dlogits, g.item())};
                   });
}

Variable mse(const Variable& a, const Variable& b) {
  check_lazy(a.shape() == b.shape(), [&] {
    return "mse: expected equal shapes, got " + a.shape().to_string() + " and " +
           b.shape().to_string();
  });
  check_lazy(a.numel() > 0,
             [&] { return "mse: expected a non-empty input, got shape " + a.shape().to_string(); });
  const Tensor diff = core::sub(a.value(), b.value());
  const int64_t count = diff.numel();
  double total = 0.0;
  for (float v : diff.span()) total += static_cast<double>(v) * v;
  Tensor y = Tensor::scalar(static_cast<float>(total / static_cast<double>(count)));
  return make_node(
      std::move(y), {a, b}, "mse",
      [diff, count](const Tensor& g, const std::vector<bool>& needs) -> std::vector<Tensor> {
        // da = 2 g (a - b) / count, db = -da
        const float w = 2.0f * g.item() / static_cast<float>(count);
        return {needs[0] ? core::mul_scalar(diff, w) : Tensor(),
                needs[1] ? core::mul_scalar(diff, -w) : Tensor()};
      });
}

}  // namespace bitgrad::autograd
