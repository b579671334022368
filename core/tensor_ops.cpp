// tensor_ops.cpp: broadcasting element-wise kernels, reductions and the Eigen GEMM.
#include "core/tensor_ops.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <string>

#include "core/eigen_view.hpp"
#include "core/error.hpp"
#include "core/eval_epilogue.hpp"

namespace bitgrad::core {

namespace {

constexpr int64_t kParallelMin = 1 << 16;  // elements below which a loop stays on one thread

// Strides of t as seen from a broadcast output of rank `rank`: 0 along stretched or missing axes.
Tensor::Strides broadcast_strides(const Tensor& t, int rank) {
  Tensor::Strides s{};
  const int shift = rank - t.rank();
  for (int i = 0; i < t.rank(); ++i)
    s[static_cast<size_t>(i + shift)] = t.dim(i) == 1 ? 0 : t.strides()[static_cast<size_t>(i)];
  return s;
}

// out[idx] = f(a[idx], b[idx]) over the broadcast shape, innermost axis in a tight loop.
template <typename F>
Tensor broadcast_binary(const Tensor& a, const Tensor& b, std::string_view op, F f) {
  const Shape out_shape = broadcast_shapes(a.shape(), b.shape(), op);
  Tensor out = Tensor::empty(out_shape);
  float* o = out.data();
  const int64_t n = out.numel();
  if (n == 0) return out;
  if (a.shape() == b.shape() && a.is_contiguous() && b.is_contiguous()) {
    const float* pa = a.data();
    const float* pb = b.data();
    for (int64_t i = 0; i < n; ++i) o[i] = f(pa[i], pb[i]);
    return out;
  }
  const int rank = out_shape.rank();
  if (rank == 0) {
    o[0] = f(a.data()[0], b.data()[0]);
    return out;
  }
  const Tensor::Strides sa = broadcast_strides(a, rank);
  const Tensor::Strides sb = broadcast_strides(b, rank);
  const int64_t inner = out_shape[rank - 1];
  const int64_t ia = sa[static_cast<size_t>(rank - 1)];
  const int64_t ib = sb[static_cast<size_t>(rank - 1)];
  const int64_t outer = n / inner;
  std::array<int64_t, kMaxRank> idx{};
  const float* pa = a.data();
  const float* pb = b.data();
  for (int64_t r = 0; r < outer; ++r) {
    int64_t oa = 0, ob = 0;
    for (int d = 0; d < rank - 1; ++d) {
      oa += idx[static_cast<size_t>(d)] * sa[static_cast<size_t>(d)];
      ob += idx[static_cast<size_t>(d)] * sb[static_cast<size_t>(d)];
    }
    const float* ra = pa + oa;
    const float* rb = pb + ob;
    float* ro = o + r * inner;
    for (int64_t j = 0; j < inner; ++j) ro[j] = f(ra[j * ia], rb[j * ib]);
    for (int d = rank - 2; d >= 0; --d) {
      if (++idx[static_cast<size_t>(d)] < out_shape[d]) break;
      idx[static_cast<size_t>(d)] = 0;
    }
  }
  return out;
}

}  // namespace

Shape broadcast_shapes(const Shape& a, const Shape& b, std::string_view op) {
  const int rank = std::max(a.rank(), b.rank());
  std::vector<int64_t> dims(static_cast<size_t>(rank));
  for (int i = 0; i < rank; ++i) {
    const int ia = a.rank() - rank + i;
    const int ib = b.rank() - rank + i;
    const int64_t da = ia >= 0 ? a[ia] : 1;
    const int64_t db = ib >= 0 ? b[ib] : 1;
    check_lazy(da == db || da == 1 || db == 1, [&] {
      return std::string(op) + ": shapes " + a.to_string() + " and " + b.to_string() +
             " do not broadcast (axis " + std::to_string(i) + ": " + std::to_string(da) + " vs " +
             std::to_string(db) + ")";
    });
    dims[static_cast<size_t>(i)] = da == 1 ? db : da;
  }
  return Shape(dims);
}

Tensor add(const Tensor& a, const Tensor& b) {
  return broadcast_binary(a, b, "add", [](float x, float y) { return x + y; });
}
Tensor sub(const Tensor& a, const Tensor& b) {
  return broadcast_binary(a, b, "sub", [](float x, float y) { return x - y; });
}
Tensor mul(const Tensor& a, const Tensor& b) {
  return broadcast_binary(a, b, "mul", [](float x, float y) { return x * y; });
}
Tensor div(const Tensor& a, const Tensor& b) {
  return broadcast_binary(a, b, "div", [](float x, float y) { return x / y; });
}
Tensor add_scalar(const Tensor& a, float s) {
  return map(a, [s](float x) { return x + s; });
}
Tensor mul_scalar(const Tensor& a, float s) {
  return map(a, [s](float x) { return x * s; });
}

Tensor scale_channels(const Tensor& x, std::span<const float> scale, std::span<const float> bias) {
  check_lazy(x.rank() >= 2 && static_cast<int64_t>(scale.size()) == x.dim(1) &&
                 (bias.empty() || bias.size() == scale.size()),
             [&] {
               return "scale_channels: expected x [N, C, ...] with C scales (and C biases or none), "
                      "got x " + x.shape().to_string() + ", " + std::to_string(scale.size()) +
                      " scales, " + std::to_string(bias.size()) + " biases";
             });
  const Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(xc.shape());
  const int64_t channels = xc.dim(1);
  const int64_t inner = xc.numel() / (xc.dim(0) * channels);
  const float* px = xc.data();
  float* po = out.data();
  for (int64_t row = 0; row < xc.dim(0) * channels; ++row) {
    const auto c = static_cast<size_t>(row % channels);
    scale_shift_row(px + row * inner, inner, scale[c], bias.empty() ? nullptr : &bias[c],
                    po + row * inner);
  }
  return out;
}

Tensor sum(const Tensor& t, std::span<const int> axes, bool keepdim) {
  const int rank = t.rank();
  std::array<bool, kMaxRank> reduce{};
  if (axes.empty()) {
    reduce.fill(true);
  } else {
    for (int a : axes) reduce[static_cast<size_t>(t.shape().axis(a))] = true;
  }
  std::vector<int64_t> kept;  // output dims with keepdim
  for (int i = 0; i < rank; ++i) kept.push_back(reduce[static_cast<size_t>(i)] ? 1 : t.dim(i));
  Tensor out = Tensor::empty(Shape(kept));
  // Accumulate in double per output element for accuracy; walk the input in row-major order.
  std::vector<double> acc(static_cast<size_t>(out.numel()), 0.0);
  const Tensor c = t.contiguous();
  const float* p = c.data();
  const auto ostr = contiguous_strides(out.shape());
  std::array<int64_t, kMaxRank> idx{};
  const int64_t n = c.numel();
  for (int64_t k = 0; k < n; ++k) {
    int64_t o = 0;
    for (int d = 0; d < rank; ++d)
      if (!reduce[static_cast<size_t>(d)]) o += idx[static_cast<size_t>(d)] * ostr[static_cast<size_t>(d)];
    acc[static_cast<size_t>(o)] += p[k];
    for (int d = rank - 1; d >= 0; --d) {
      if (++idx[static_cast<size_t>(d)] < t.dim(d)) break;
      idx[static_cast<size_t>(d)] = 0;
    }
  }
  float* po = out.data();
  for (size_t i = 0; i < acc.size(); ++i) po[i] = static_cast<float>(acc[i]);
  if (keepdim) return out;
  std::vector<int64_t> dims;
  for (int i = 0; i < rank; ++i)
    if (!reduce[static_cast<size_t>(i)]) dims.push_back(t.dim(i));
  return out.reshape(std::span<const int64_t>(dims));
}

double sum_all(const Tensor& t) {
  const Tensor c = t.contiguous();
  double s = 0.0;
  for (float v : c.span()) s += v;
  return s;
}

double mean_abs(const Tensor& t) {
  const Tensor c = t.contiguous();
  double s = 0.0;
  for (float v : c.span()) s += std::fabs(v);
  return c.numel() > 0 ? s / static_cast<double>(c.numel()) : 0.0;
}

Tensor sum_to(const Tensor& t, const Shape& target) {
  if (t.shape() == target) return t;
  check_lazy(broadcast_shapes(target, t.shape(), "sum_to") == t.shape(), [&] {
    return "sum_to: shape " + target.to_string() + " does not broadcast to " + t.shape().to_string();
  });
  std::vector<int> axes;
  const int shift = t.rank() - target.rank();
  for (int i = 0; i < t.rank(); ++i) {
    if (i < shift || (target[i - shift] == 1 && t.dim(i) != 1)) axes.push_back(i);
  }
  if (axes.empty()) return t.reshape(target);
  return sum(t, axes, true).reshape(target);
}

Tensor broadcast_to(const Tensor& t, const Shape& target) {
  check_lazy(broadcast_shapes(t.shape(), target, "broadcast_to") == target, [&] {
    return "broadcast_to: shape " + t.shape().to_string() + " does not broadcast to " +
           target.to_string();
  });
  return add(Tensor(target), t);
}

void axpy_(Tensor& dst, float alpha, const Tensor& src) {
  check_lazy(dst.shape() == src.shape(), [&] {
    return "axpy_: expected source shape " + dst.shape().to_string() + ", got " +
           src.shape().to_string();
  });
  assert(dst.is_contiguous());
  const Tensor s = src.contiguous();
  float* d = dst.data();
  const float* p = s.data();
  const int64_t n = dst.numel();
  // Element-wise, so splitting across threads cannot change the result.
  auto body = [&](int64_t lo, int64_t hi) {
    if (alpha == 1.0f) {
      for (int64_t i = lo; i < hi; ++i) d[i] += p[i];
    } else {
      for (int64_t i = lo; i < hi; ++i) d[i] += alpha * p[i];
    }
  };
  if (n < kParallelMin) {
    body(0, n);
    return;
  }
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, kParallelMin / 2),
                    [&](const tbb::blocked_range<int64_t>& r) { body(r.begin(), r.end()); });
}

void scale_(Tensor& dst, float s) {
  assert(dst.is_contiguous());
  for (float& v : dst.span()) v *= s;
}

Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_a, bool transpose_b) {
  check_lazy(a.rank() == 2 && b.rank() == 2, [&] {
    return "matmul: expected 2-D operands, got " + a.shape().to_string() + " and " +
           b.shape().to_string();
  });
  const int64_t m = transpose_a ? a.dim(1) : a.dim(0);
  const int64_t ka = transpose_a ? a.dim(0) : a.dim(1);
  const int64_t kb = transpose_b ? b.dim(1) : b.dim(0);
  const int64_t n = transpose_b ? b.dim(0) : b.dim(1);
  check_lazy(ka == kb, [&] {
    return "matmul: inner dimensions differ: " + a.shape().to_string() +
           (transpose_a ? "^T" : "") + " x " + b.shape().to_string() + (transpose_b ? "^T" : "");
  });
  const Tensor ca = a.contiguous();
  const Tensor cb = b.contiguous();
  if (ka == 0) return Tensor(Shape{m, n});
  Tensor out = Tensor::empty(Shape{m, n});
  auto ma = as_matrix(ca, ca.dim(0), ca.dim(1));
  auto mb = as_matrix(cb, cb.dim(0), cb.dim(1));
  auto mo = as_matrix(out, m, n);
  if (!transpose_a && !transpose_b) mo.noalias() = ma * mb;
  else if (transpose_a && !transpose_b) mo.noalias() = ma.transpose() * mb;
  else if (!transpose_a && transpose_b) mo.noalias() = ma * mb.transpose();
  else mo.noalias() = ma.transpose() * mb.transpose();
  return out;
}

Tensor zip_check(const Tensor& a, const Tensor& b, std::string_view op) {
  check_lazy(a.shape() == b.shape(), [&] {
    return std::string(op) + ": expected equal shapes, got " + a.shape().to_string() + " and " +
           b.shape().to_string();
  });
  return a.contiguous();
}

float max_abs_diff(const Tensor& a, const Tensor& b) {
  const Tensor ca = zip_check(a, b, "max_abs_diff");
  const Tensor cb = b.contiguous();
  float m = 0.0f;
  for (int64_t i = 0; i < ca.numel(); ++i) m = std::max(m, std::fabs(ca.data()[i] - cb.data()[i]));
  return m;
}

bool all_finite(const Tensor& t) {
  const Tensor c = t.contiguous();
  for (float v : c.span())
    if (!std::isfinite(v)) return false;
  return true;
}

}  // namespace bitgrad::core
